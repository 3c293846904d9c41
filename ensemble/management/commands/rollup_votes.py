"""``manage.py rollup_votes``: materialize the leaderboard's daily rollup of closed days.

    python manage.py rollup_votes              # every closed day not rolled up yet
    python manage.py rollup_votes --rebuild    # forget the whole rollup first, then roll it all up again

Nothing else writes the rollup: a page view only reads it, and reads live whatever closed day
is not rolled up yet (the same numbers, more slowly as such days pile up). So this runs at start
(`make run`, the container's entry point) and hourly from cron (README); once every closed day
is rolled up it costs two queries. `--rebuild` is for history changed behind the rollup's back
(rows written or deleted by hand in past days).
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
