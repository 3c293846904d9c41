"""Leaderboard rollups: per-UTC-day aggregates of closed days (ensemble.leaderboard.rollups)."""
from django.db import models

# --- leaderboard rollup ------------------------------------------------------------------------
# Per-UTC-day aggregates of closed days, so that a leaderboard over months reads a few hundred
# rows instead of millions. Written by ensemble.leaderboard.rollups only (`manage.py
# rollup_votes`, never on a page view); never by the request path, which must stay four
# INSERTs. A day is closed once it can no longer receive votes (leaderboard.windows.SETTLE
# after midnight); history is immutable, so a closed day's rows only change when prune_votes
# (or seed_history) touches it, and they invalidate it.


class RollupDay(models.Model):
    """A closed UTC day whose rollup rows are materialized (also when the day had no requests)."""

    day = models.DateField(primary_key=True)
    requests = models.PositiveIntegerField(help_text="Requests of that day when it was rolled up.")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["day"]

    def __str__(self):
        return f"rollup of {self.day}"


class ModelDayRollup(models.Model):
    """One model's leaderboard counts for one ensemble on one closed UTC day (see leaderboard.standing.Standing)."""

    day = models.DateField()
    ensemble = models.CharField(max_length=200)
    model = models.CharField(max_length=200)
    participated = models.PositiveIntegerField(default=0)
    wins = models.PositiveIntegerField(default=0)
    calls = models.PositiveIntegerField(default=0)
    failed_calls = models.PositiveIntegerField(default=0)
    ok_calls = models.PositiveIntegerField(default=0)
    marks_received = models.PositiveIntegerField(default=0)
    accepted_received = models.PositiveIntegerField(default=0)
    preferred_received = models.PositiveIntegerField(default=0)
    self_marks = models.PositiveIntegerField(default=0)
    self_preferred = models.PositiveIntegerField(default=0)
    others_marks = models.PositiveIntegerField(default=0)
    others_preferred = models.PositiveIntegerField(default=0)
    ballots_answered = models.PositiveIntegerField(default=0)
    ballots_unparseable = models.PositiveIntegerField(default=0)
    # As a voter (leaderboard.judges): its preferences per (candidates shown, slot), and the
    # agreement of those on other models' candidates with the winner.
    agreement_ballots = models.PositiveIntegerField(default=0)
    agreed_with_winner = models.PositiveIntegerField(default=0)
    preference_slots = models.JSONField(
        default=dict, help_text='Preferences it gave per slot: {"<candidates shown>:<slot>": count}.')
    generation_cost_usd = models.DecimalField(max_digits=18, decimal_places=10, default=0,
                                              help_text="The known costs of its candidates, USD.")
    generation_costed_calls = models.PositiveIntegerField(default=0, help_text="Its candidates with a known cost.")
    ballot_cost_usd = models.DecimalField(max_digits=18, decimal_places=10, default=0,
                                          help_text="The known costs of its ballots, USD.")
    ballot_costed_calls = models.PositiveIntegerField(default=0, help_text="Its ballots with a known cost.")
    latency_histogram = models.JSONField(
        default=dict, help_text="Successful calls per log latency bucket: {bucket: count} (ensemble.rollups).")

    class Meta:
        ordering = ["day", "ensemble", "model"]
        constraints = [models.UniqueConstraint(fields=["day", "ensemble", "model"], name="model_day_rollup_unique")]

    def __str__(self):
        return f"{self.model} in {self.ensemble} on {self.day}"


class EnsembleDayRollup(models.Model):
    """One ensemble's top-level requests with a known cost on one closed UTC day, and their cost (cost_per_request)."""

    day = models.DateField()
    ensemble = models.CharField(max_length=200)
    costed_requests = models.PositiveIntegerField()
    cost_usd = models.DecimalField(max_digits=18, decimal_places=10)

    class Meta:
        ordering = ["day", "ensemble"]
        constraints = [models.UniqueConstraint(fields=["day", "ensemble"], name="ensemble_day_rollup_unique")]

    def __str__(self):
        return f"{self.ensemble} on {self.day}"


class PairDayRollup(models.Model):
    """Head-to-head on one closed UTC day in one ensemble: ballots ranking `winner` above `loser` (the PAIR RULE, leaderboard.standing)."""

    day = models.DateField()
    ensemble = models.CharField(max_length=200)
    winner = models.CharField(max_length=200)
    loser = models.CharField(max_length=200)
    wins = models.PositiveIntegerField()

    class Meta:
        ordering = ["day", "ensemble", "winner", "loser"]
        constraints = [
            models.UniqueConstraint(fields=["day", "ensemble", "winner", "loser"], name="pair_day_rollup_unique"),
        ]

    def __str__(self):
        return f"{self.winner} > {self.loser} in {self.ensemble} on {self.day}"
