"""The leaderboard rollup: per-UTC-day aggregates of closed days, written here and nowhere else.

Why: a leaderboard over months would otherwise GROUP BY millions of marks on every view, and the
request path cannot keep a running total (storing a request must stay four INSERTs). History is
append-only, so a day that can no longer receive requests never changes; its numbers are
computed once and kept.

A UTC day's life (windows.closed_until, windows.SETTLE):

- open until SETTLE after its midnight end: leaderboards read its rows live;
- closed afterwards: `rollup_closed_days` (`manage.py rollup_votes`, run at start and hourly
  by cron, see README; never by a page view) materializes every closed day not rolled up yet
  with one GROUP BY per table (`day_aggregates`, from the queries in `counts`), 31 days at a
  time: ModelDayRollup and PairDayRollup rows, plus a RollupDay marker even for a day without
  requests; until then, leaderboards read the day live: the same counts, only slower;
- invalidated when its history changes after all: prune_votes and seed_history call
  `rollup_invalidate` in the transaction that deletes or writes, and the day is rolled up again
  (or read live) afterwards.

Consistency: aggregating holds no lock (it can take seconds the first time). The write then runs
in a short transaction that excludes prune's batches (SQLite: the IMMEDIATE write lock;
PostgreSQL: an advisory lock also taken by `rollup_invalidate`) and first re-counts each day's
requests: a day whose count moved since it was aggregated is not stored, and leaderboards keep
reading it live until a later run stores it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from ..models import CompletionRequest, EnsembleDayRollup, ModelDayRollup, PairDayRollup, RollupDay
from .counts import (
    BALLOT_COUNTS, CANDIDATE_COUNTS, MARK_COUNTS, PREFERENCE_COUNTS, REQUEST_COSTS, ballot_counts,
    candidate_counts, latency_histograms, mark_counts, pair_counts, preference_counts, request_costs,
)
from .judges import Slots, slots_to_json
from .expressions import TimeBucket
from .windows import closed_until, utc_midnight


CHUNK_DAYS = 31  # days aggregated and stored per transaction: bounds memory and lock time
LOCK_KEY = 0x7472696F  # "trio": PostgreSQL advisory lock shared by the rollup's writers


def rollup_closed_days(*, now: datetime | None = None) -> list[date]:
    """Roll up every closed day since the oldest request that is not rolled up yet; return the days stored."""
    now = now or timezone.now()
    first, end = first_request_day(), closed_until(now)
    if first is None or first >= end:
        return []
    done = rolled_up_days(first, end)
    missing = [day for day in _days(first, end) if day not in done]
    return rollup_days(missing, now=now)


def rollup_days(days: list[date], *, now: datetime | None = None) -> list[date]:
    """Aggregate and store `days` (closed days only), CHUNK_DAYS consecutive days at a time; return those stored."""
    now = now or timezone.now()
    if any(day >= closed_until(now) for day in days):
        raise ValueError("only closed days can be rolled up: an open day may still receive requests")
    stored = []
    for first, end in _chunks(sorted(set(days))):
        stored += _store(day_aggregates(first, end), _days(first, end), now)
    return stored


def rollup_invalidate(*, since: date | None = None, until: date | None = None) -> None:
    """Forget the rollup of the days in [since, until] (either end open): they are read live until rolled up again.

    Call it inside the transaction that changes those days' history.
    """
    with transaction.atomic():
        _lock()
        for model in ROLLUP_TABLES:
            rows = model.objects.all()
            if since is not None:
                rows = rows.filter(day__gte=since)
            if until is not None:
                rows = rows.filter(day__lte=until)
            rows.delete()


def _store(aggregates: DayAggregates, days: list[date], now: datetime) -> list[date]:
    """Write the rows of the days whose request count did not move since `aggregates` was read."""
    with transaction.atomic():
        _lock()
        current = requests_per_day(days[0], days[-1] + timedelta(days=1))
        settled = {day for day in days if current.get(day, 0) == aggregates.requests.get(day, 0)}
        for model in ROLLUP_TABLES:  # leftovers of an earlier run
            model.objects.filter(day__in=settled).delete()
        ModelDayRollup.objects.bulk_create(
            [ModelDayRollup(day=day, ensemble=ensemble, model=model, **counts)
             for (day, ensemble, model), counts in aggregates.models.items() if day in settled],
            batch_size=500,
        )
        PairDayRollup.objects.bulk_create(
            [PairDayRollup(day=day, ensemble=ensemble, winner=winner, loser=loser, wins=n)
             for (day, ensemble, winner, loser), n in aggregates.pairs.items() if day in settled],
            batch_size=500,
        )
        EnsembleDayRollup.objects.bulk_create(
            [EnsembleDayRollup(day=day, ensemble=ensemble, **costs)
             for (day, ensemble), costs in aggregates.ensembles.items() if day in settled],
            batch_size=500,
        )
        RollupDay.objects.bulk_create(
            [RollupDay(day=day, requests=aggregates.requests.get(day, 0), computed_at=now) for day in sorted(settled)]
        )
    return sorted(settled)


ROLLUP_TABLES = (ModelDayRollup, PairDayRollup, EnsembleDayRollup, RollupDay)


def _lock() -> None:
    """Serialize the rollup's writers (SQLite's IMMEDIATE transactions already are)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def _days(first: date, end: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((end - first).days)]


def _chunks(days: list[date]) -> list[tuple[date, date]]:
    """Return [first, end) ranges of consecutive days, at most CHUNK_DAYS long."""
    chunks: list[tuple[date, date]] = []
    for day in days:
        if chunks and chunks[-1][1] == day and (day - chunks[-1][0]).days < CHUNK_DAYS:
            chunks[-1] = (chunks[-1][0], day + timedelta(days=1))
        else:
            chunks.append((day, day + timedelta(days=1)))
    return chunks


# --- reads behind the rollup -------------------------------------------------------------------

@dataclass
class DayAggregates:
    """Everything the rollup stores for some days: per (day, ensemble, model) counts, pairs, request counts,
    per (day, ensemble) the costed top-level requests and their cost."""

    models: dict[tuple[date, str, str], dict]
    pairs: dict[tuple[date, str, str, str], int]
    requests: dict[date, int]
    ensembles: dict[tuple[date, str], dict]


def day_aggregates(first: date, end: date) -> DayAggregates:
    """Return the rollup's numbers for the UTC days [first, end), from one GROUP BY per table."""
    scope = Q(request__created_at__gte=utc_midnight(first), request__created_at__lt=utc_midnight(end))
    models: dict[tuple[date, str, str], dict] = defaultdict(lambda: {"latency_histogram": {}})

    def add(day: str, row: dict, model: str, names: tuple[str, ...]) -> None:
        models[(date.fromisoformat(day), row["ensemble"], row[model])].update({name: row[name] for name in names})

    for row in candidate_counts(scope, unit="day", by_ensemble=True):
        add(row["bucket"], row, "model", CANDIDATE_COUNTS)
    for row in mark_counts(scope, by_day=True):
        add(row["day"], row, "author_model", MARK_COUNTS)
    for row in ballot_counts(scope, by_day=True):
        add(row["day"], row, "voter_model", BALLOT_COUNTS)
    slots: dict[tuple[date, str, str], Slots] = defaultdict(Slots)
    for row in preference_counts(scope, by_day=True):  # several rows per voter and day: one per slot
        key = (date.fromisoformat(row["day"]), row["ensemble"], row["voter_model"])
        for name in PREFERENCE_COUNTS:
            models[key][name] = models[key].get(name, 0) + row[name]
        slots[key][(row["shown"], row["position"])] += row["preferences"]
    for key, counted in slots.items():
        models[key]["preference_slots"] = slots_to_json(counted)
    for row in latency_histograms(scope):
        histogram = models[(date.fromisoformat(row["day"]), row["ensemble"], row["model"])]["latency_histogram"]
        histogram[str(row["bucket"])] = row["n"]
    pairs = {(date.fromisoformat(p["day"]), p["ensemble"], p["winner"], p["loser"]): p["n"]
             for p in pair_counts(scope, by_day=True) if p["winner"] != p["loser"]}
    days = CompletionRequest.objects.filter(created_at__gte=utc_midnight(first), created_at__lt=utc_midnight(end))
    ensembles = {(date.fromisoformat(row["day"]), row["ensemble"]): {name: row[name] for name in REQUEST_COSTS}
                 for row in request_costs(days, by_day=True)}
    return DayAggregates(dict(models), pairs, requests_per_day(first, end), ensembles)


def requests_per_day(first: date, end: date) -> dict[date, int]:
    """Return how many requests each UTC day in [first, end) has (days without any are left out)."""
    rows = (CompletionRequest.objects.filter(created_at__gte=utc_midnight(first), created_at__lt=utc_midnight(end))
            .annotate(day=TimeBucket("created_at", "day")).values("day").annotate(n=Count("pk")).order_by())
    return {date.fromisoformat(row["day"]): row["n"] for row in rows}


def first_request_day() -> date | None:
    """Return the UTC day of the oldest request, or None without history."""
    first = CompletionRequest.objects.aggregate(first=Min("created_at"))["first"]
    return first.astimezone(dt_timezone.utc).date() if first else None


def rolled_up_days(first: date, end: date) -> set[date]:
    """Return the days in [first, end) whose rollup is materialized."""
    return set(RollupDay.objects.filter(day__gte=first, day__lt=end).values_list("day", flat=True))
