"""Which time the leaderboard covers, and which of it comes from the rollup and which is read live."""
from __future__ import annotations

import operator
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import reduce

from django.db.models import Q, QuerySet

from ..models import CompletionRequest, RollupDay
from .expressions import RequestIn


# Time windows of the leaderboard: (label, length). "24 hours" is rolling; "7 days" and "30 days"
# are whole UTC days, today included ("7 days" starts at 00:00 UTC six days ago), so that every
# day of them but the open one(s) can come from the daily rollup.
WINDOWS = {
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", 7),
    "30d": ("30 days", 30),
    "all": ("all time", None),
}
DEFAULT_WINDOW = "all"


def window_start(window: str, now: datetime) -> datetime | None:
    """Return when `window` starts at `now` (None: all time); see WINDOWS."""
    length = WINDOWS[window][1]
    if isinstance(length, timedelta):
        return now - length
    if length is None:
        return None
    return utc_midnight(now.astimezone(dt_timezone.utc).date() - timedelta(days=length - 1))


# A UTC day is closed, and may be rolled up, once SETTLE has passed since its end. A request is
# stored with the time it started, and stored up to TRIO_DEADLINE plus the service's retry delays
# later (about four minutes with the defaults): an hour leaves room for a long deadline and skew.
SETTLE = timedelta(hours=1)

Range = tuple[datetime | None, datetime | None]  # [start, end) of created_at; None: unbounded


def closed_until(now: datetime) -> date:
    """Return the first UTC day that is still open at `now`: every earlier day is closed."""
    return (now - SETTLE).astimezone(dt_timezone.utc).date()


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=dt_timezone.utc)


def rolled_up_runs(since: datetime | None, now: datetime) -> list[tuple[date, date]]:
    """Return the runs [first, end) of consecutive rolled-up days lying wholly inside the window."""
    days = RollupDay.objects.filter(day__lt=closed_until(now))
    if since is not None:
        first = since.astimezone(dt_timezone.utc).date()
        days = days.filter(day__gte=first if utc_midnight(first) == since else first + timedelta(days=1))
    runs: list[tuple[date, date]] = []
    for day in days.order_by("day").values_list("day", flat=True):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def live_ranges(since: datetime | None, runs: list[tuple[date, date]]) -> list[Range]:
    """Return the parts of [since, ∞) outside the rolled-up runs."""
    ranges, start = [], since
    for first, end in runs:
        if start is None or start < utc_midnight(first):
            ranges.append((start, utc_midnight(first)))
        start = utc_midnight(end)
    return ranges + [(start, None)]


def _ranges_q(ranges: list[Range]) -> Q:
    """Return the condition `created_at` in any of `ranges` (an empty Q, all rows, for [(None, None)])."""
    parts = [Q(**{name: value for name, value in (("created_at__gte", start), ("created_at__lt", end)) if value})
             for start, end in ranges]
    return _any(parts)


def days_q(runs: list[tuple[date, date]]) -> Q:
    return _any([Q(day__gte=first, day__lt=end) for first, end in runs])


def _any(parts: list[Q]) -> Q:
    """Return the OR of `parts`: nothing for no part, everything if one part is empty (unbounded)."""
    if not parts:
        return Q(pk__in=[])
    if not all(parts):
        return Q()  # Q() | Q(x) would be Q(x), not "everything"
    return reduce(operator.or_, parts)


def requests_in(ranges: list[Range], ensemble: str, request_filter: Q | None = None) -> QuerySet:
    """Return the requests inside `ranges`, the ensemble (every one for [(None, None)] and "") and
    the request filter (tags, user, key)."""
    requests = CompletionRequest.objects.filter(_ranges_q(ranges))
    if ensemble:
        requests = requests.filter(ensemble=ensemble)
    return requests.filter(request_filter) if request_filter else requests


def request_scope(ranges: list[Range], ensemble: str, request_filter: Q | None = None) -> Q:
    """Return the condition on a row's `request` that keeps it inside `ranges`, the ensemble and the
    request filter (tags, user, key)."""
    if ranges == [(None, None)] and not ensemble and not request_filter:
        return Q()
    return Q(RequestIn("request", requests_in(ranges, ensemble, request_filter).order_by().values("pk")))
