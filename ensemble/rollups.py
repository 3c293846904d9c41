"""The leaderboard rollup: per-UTC-day aggregates of closed days, written here and nowhere else.

Why: a leaderboard over months would otherwise GROUP BY millions of marks on every view, and the
request path cannot keep a running total (storing a request must stay four INSERTs). History is
append-only, so a day that can no longer receive requests never changes; its numbers are
computed once and kept.

A UTC day's life (selectors.closed_until, selectors.SETTLE):

- open until SETTLE after its midnight end: leaderboards read its rows live;
- closed afterwards: `rollup_closed_days` (run lazily by the leaderboard page, or by
  `manage.py rollup_votes`) materializes every closed day not rolled up yet with one GROUP BY
  per table (selectors.day_aggregates), 31 days at a time: ModelDayRollup and PairDayRollup
  rows, plus a RollupDay marker even for a day without requests;
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

from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from . import selectors
from .models import ModelDayRollup, PairDayRollup, RollupDay

CHUNK_DAYS = 31  # days aggregated and stored per transaction: bounds memory and lock time
LOCK_KEY = 0x7472696F  # "trio": PostgreSQL advisory lock shared by the rollup's writers


def rollup_closed_days(*, now: datetime | None = None) -> list[date]:
    """Roll up every closed day since the oldest request that is not rolled up yet; return the days stored."""
    now = now or timezone.now()
    first, end = selectors.first_request_day(), selectors.closed_until(now)
    if first is None or first >= end:
        return []
    done = selectors.rolled_up_days(first, end)
    missing = [day for day in _days(first, end) if day not in done]
    return rollup_days(missing, now=now)


def rollup_days(days: list[date], *, now: datetime | None = None) -> list[date]:
    """Aggregate and store `days` (closed days only), CHUNK_DAYS consecutive days at a time; return those stored."""
    now = now or timezone.now()
    if any(day >= selectors.closed_until(now) for day in days):
        raise ValueError("only closed days can be rolled up: an open day may still receive requests")
    stored = []
    for first, end in _chunks(sorted(set(days))):
        stored += _store(selectors.day_aggregates(first, end), _days(first, end), now)
    return stored


def rollup_invalidate(*, since: date | None = None, until: date | None = None) -> None:
    """Forget the rollup of the days in [since, until] (either end open): they are read live until rolled up again.

    Call it inside the transaction that changes those days' history.
    """
    with transaction.atomic():
        _lock()
        for model in (ModelDayRollup, PairDayRollup, RollupDay):
            rows = model.objects.all()
            if since is not None:
                rows = rows.filter(day__gte=since)
            if until is not None:
                rows = rows.filter(day__lte=until)
            rows.delete()


def _store(aggregates: selectors.DayAggregates, days: list[date], now: datetime) -> list[date]:
    """Write the rows of the days whose request count did not move since `aggregates` was read."""
    with transaction.atomic():
        _lock()
        current = selectors.requests_per_day(days[0], days[-1] + timedelta(days=1))
        settled = {day for day in days if current.get(day, 0) == aggregates.requests.get(day, 0)}
        for model in (ModelDayRollup, PairDayRollup, RollupDay):  # leftovers of an earlier run
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
        RollupDay.objects.bulk_create(
            [RollupDay(day=day, requests=aggregates.requests.get(day, 0), computed_at=now) for day in sorted(settled)]
        )
    return sorted(settled)


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
