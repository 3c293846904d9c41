"""``manage.py rollup_votes``: materialize the leaderboard's daily rollup now, rather than on a page view.

    python manage.py rollup_votes              # every closed day not rolled up yet
    python manage.py rollup_votes --rebuild    # forget the whole rollup first, then roll it all up again

The leaderboard page does the first form lazily, so running this is optional; it moves the
one-off cost of rolling up a long history (seconds per 100k requests) off the first visitor,
e.g. right after `migrate` on a database that already has history. `--rebuild` is for history
changed behind the rollup's back (rows written or deleted by hand in past days).
"""
from __future__ import annotations

import time

from django.core.management.base import BaseCommand

from ensemble.leaderboard import rollups


class Command(BaseCommand):
    help = "Roll up every closed UTC day of vote history not rolled up yet (the leaderboard's daily rollup)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--rebuild", action="store_true", help="forget the rollup first and roll up every closed day")

    def handle(self, *args, rebuild: bool, **options) -> None:
        started = time.monotonic()
        if rebuild:
            rollups.rollup_invalidate()
        days = rollups.rollup_closed_days()
        elapsed = time.monotonic() - started
        if not days:
            self.stdout.write(f"Nothing to roll up: every closed day is rolled up ({elapsed:.1f}s).")
            return
        self.stdout.write(self.style.SUCCESS(
            f"Rolled up {len(days)} day(s), {days[0]} to {days[-1]}, in {elapsed:.1f}s."))
