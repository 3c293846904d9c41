"""``manage.py prune_votes``: delete vote history older than a given age.

    python manage.py prune_votes --older-than 90d --dry-run    # count only
    python manage.py prune_votes --older-than 90d
    python manage.py prune_votes --older-than 36h

Batches, transactions and the rollup of the days it touches: ensemble.history.prune.
"""
from __future__ import annotations

import argparse
import re
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from ensemble.history.prune import votes_count_before, votes_delete_before
from ensemble.management.arguments import positive_int

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
