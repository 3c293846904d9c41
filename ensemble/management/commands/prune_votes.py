"""``manage.py prune_votes``: delete vote history older than a given age.

    python manage.py prune_votes --older-than 90d --dry-run    # count only
    python manage.py prune_votes --older-than 90d
    python manage.py prune_votes --older-than 36h

Requests are deleted in batches of `--batch-size` primary keys, each batch in its own short
transaction, so that a large prune never holds the database (SQLite's single writer above all)
for long and can be interrupted without losing more than one batch of work. Candidates, ballots
and marks go with their request (ON DELETE CASCADE, done by Django). Each batch also forgets the
leaderboard rollup of the days up to the cutoff's (ensemble.leaderboard.rollups), in the same transaction:
those days are rolled up again from what is left the next time a leaderboard needs them.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from ensemble.leaderboard import rollups
from ensemble.management.arguments import positive_int
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest

_AGE_RE = re.compile(r"(?P<amount>\d+)(?P<unit>[dh])")
_UNITS = {"d": "days", "h": "hours"}


def parse_age(value: str) -> timedelta:
    """Return the age written as Nd (days) or Nh (hours), e.g. 90d."""
    match = _AGE_RE.fullmatch(value.strip().lower())
    if match is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an age like 90d or 12h")
    try:
        age = timedelta(**{_UNITS[match["unit"]]: int(match["amount"])})
        timezone.now() - age  # handle()'s cutoff: it must be a date no earlier than the year 1
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{value!r} reaches back before the year 1") from None
    return age


@dataclass
class PruneCounts:
    """Rows deleted (or that would be), per table."""

    requests: int = 0
    candidates: int = 0
    ballots: int = 0
    marks: int = 0

    def add(self, deleted: dict[str, int]) -> None:
        """Add the per-model counts of a QuerySet.delete() result."""
        self.requests += deleted.get(CompletionRequest._meta.label, 0)
        self.candidates += deleted.get(Candidate._meta.label, 0)
        self.ballots += deleted.get(Ballot._meta.label, 0)
        self.marks += deleted.get(BallotMark._meta.label, 0)

    def __str__(self) -> str:
        return (f"{self.requests} request(s), {self.candidates} candidate(s), "
                f"{self.ballots} ballot(s), {self.marks} mark(s)")


def votes_count_before(cutoff: datetime) -> PruneCounts:
    """Return how many rows of each table belong to requests created before `cutoff`."""
    return PruneCounts(
        requests=CompletionRequest.objects.filter(created_at__lt=cutoff).count(),
        candidates=Candidate.objects.filter(request__created_at__lt=cutoff).count(),
        ballots=Ballot.objects.filter(request__created_at__lt=cutoff).count(),
        marks=BallotMark.objects.filter(request__created_at__lt=cutoff).count(),
    )


def votes_delete_before(cutoff: datetime, *, batch_size: int) -> PruneCounts:
    """Delete the requests created before `cutoff` and their children, one batch at a time; return the counts."""
    counts = PruneCounts()
    old = CompletionRequest.objects.filter(created_at__lt=cutoff).order_by()
    while batch := list(old.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            # only("pk"): the collector need not load conversations just to delete them.
            _, deleted = CompletionRequest.objects.filter(pk__in=batch).only("pk").delete()
            rollups.rollup_invalidate(until=cutoff.astimezone(dt_timezone.utc).date())
        counts.add(deleted)
    return counts


class Command(BaseCommand):
    help = "Delete requests older than --older-than (e.g. 90d, 12h) with their candidates, ballots and marks."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--older-than", type=parse_age, required=True, metavar="AGE",
                            help="age of the history to delete: Nd (days) or Nh (hours)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
        parser.add_argument("--batch-size", type=positive_int, default=1000, help="requests deleted per transaction")

    def handle(self, *args, **options) -> None:
        cutoff = timezone.now() - options["older_than"]
        if options["dry_run"]:
            counts = votes_count_before(cutoff)
            self.stdout.write(f"Would delete {counts} created before {cutoff:%Y-%m-%d %H:%M} UTC (dry run).")
            return
        counts = votes_delete_before(cutoff, batch_size=options["batch_size"])
        self.stdout.write(self.style.SUCCESS(f"Deleted {counts} created before {cutoff:%Y-%m-%d %H:%M} UTC."))
