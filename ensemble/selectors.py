"""Every read query behind the vote history and the leaderboard.

Rates are SQL aggregates (GROUP BY over indexed columns); the only Python arithmetic runs on
those few aggregated rows: intervals, the Bradley–Terry fit on the pairwise table, sorting.

The leaderboard adds up two sources (see `leaderboard`): the daily rollup of closed UTC days
(written by ensemble.rollups from `day_aggregates`, the same GROUP BYs grouped by day) and live
GROUP BYs over whatever is not rolled up, at most the open day(s) once the rollup is current.

Definitions used by the leaderboard (per model, over the chosen window and ensemble):

- participated: the model had a candidate in a request that decided a winner (status ok or
  partial, and not concat, which picks none), failed candidates included: a member that failed
  lost that request;
- win rate: wins / participated, with a 95% Wilson interval;
- acceptance / preference rate received: share of the counted marks on its candidates that
  accept / prefer them (self-votes are in when the ensemble counts them);
- self-preference: how often its own ballots prefer its own candidate (every self mark, counted
  or not) against how often other models' ballots prefer it;
- invalid-ballot rate: unparseable ballots / ballots it answered (ok + unparseable);
- error/timeout rate: generation calls that ended in error, timeout or late (abandoned by the
  straggler cut-off) / its generation calls, cancelled ones left out (the client left);
- median latency: of its successful generation calls; exact over live rows, within ±2.2% over
  rolled-up days (a log-bucket histogram per day and model, HISTOGRAM_STEPS);
- head-to-head (PAIR RULE), the only pairs the Bradley–Terry ratings are fitted on: each ballot
  ranks the candidates it saw preferred > accepted (not preferred) > not accepted, a preference
  counting only when the voter also accepted it, as in the tally. A ballot that ranks A's
  candidate above B's is one win of A over B, unless A's candidate is the judge's own: a judge
  placing its own candidate above another's says nothing a rival should be rated on, but placing
  it below another's is an admission against interest and counts. So a pair of two other models'
  candidates always counts, a pair involving the judge's own only when it ranks its own lower,
  and candidates in the same rank (a tie) give no comparison. This holds whatever the ensemble's
  self-vote policy (`counted`), which decides winners, not ratings: a judge that always prefers
  itself gives itself no win at all. With three members each pair has one outside judge, whose
  comparisons all count; the judged pair's own members add theirs only when they concede.
"""
from __future__ import annotations

import math
import operator
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from functools import reduce

from django.db import connection
from django.db.models import (
    BooleanField, CharField, Count, Exists, Expression, F, Func, IntegerField, Min, OuterRef, Prefetch, Q, QuerySet,
    Subquery, Sum, Value,
)
from django.db.models.functions import Cast, Floor, Greatest, Ln
from django.utils import timezone

from . import aggregation, ratings, voting
from .backend import Usage
from .db import releases_connection
from .models import (
    Ballot, BallotMark, CallStatus, Candidate, CompletionRequest, ModelDayRollup, PairDayRollup, RequestStatus,
    RollupDay,
)
from .tools import answer_text

DECIDED = (RequestStatus.OK, RequestStatus.PARTIAL)
CALL_FAILURES = (CallStatus.ERROR, CallStatus.TIMEOUT, CallStatus.LATE)

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

# Columns fetched for history rows: never the conversation or answers (large JSON/text).
HISTORY_FIELDS = ("id", "created_at", "ensemble", "prompt_excerpt", "status", "winner_model",
                  "winner_index", "voter_count", "latency_ms", "total_tokens")


# --- vote history ------------------------------------------------------------------------------

def request_history(
    *, model: str = "", status: str = "", date_from: date | None = None, date_to: date | None = None,
    search: str = "",
) -> QuerySet[CompletionRequest]:
    """Return requests newest first, filtered, each with `winner_accepted` (the winner's acceptances)."""
    requests = _with_winner_accepted(CompletionRequest.objects.only(*HISTORY_FIELDS))
    if model:
        # "The model had a candidate": EXISTS, one probe per request of the (model, request)
        # index, so counting every match reads no candidate row and newest-first pages stop early.
        requests = requests.filter(Exists(Candidate.objects.filter(request=OuterRef("pk"), model=model)))
    if status:
        requests = requests.filter(status=status)
    if date_from:
        requests = requests.filter(created_at__gte=_day_start(date_from))
    if date_to and date_to < date.max:  # the last representable day has no next day: no bound
        requests = requests.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    if search:
        matches = Q(prompt_excerpt__icontains=search)
        if request_id := _request_id(search):  # the id a client was answered with, in error messages too
            matches |= Q(pk=request_id)
        requests = requests.filter(matches)
    return requests.order_by("-created_at", "-pk")


def request_history_count(**filters) -> int:
    """Return how many requests `request_history(**filters)` holds.

    Filtered by model alone, it counts that model's range of the (model, request) index, where
    counting `request_history` probes the index once per request: 41 against 374 ms on SQLite
    over 100 000 requests that all had the model (bench/history_scale.py).
    """
    model = filters.get("model")
    if model and not any(value for name, value in filters.items() if name != "model"):
        return Candidate.objects.filter(model=model).values("request_id").distinct().count()
    return request_history(**filters).count()


def _request_id(text: str) -> uuid.UUID | None:
    """Return the request id `text` spells (a public id `trio-<hex>`, or the UUID itself), or None."""
    try:
        return uuid.UUID(text.lower().removeprefix("trio-"))
    except ValueError:
        return None


@dataclass(frozen=True)
class StoredResponse:
    """A stored top-level request as the Responses API sees it: the request and the answer it gave."""

    request: CompletionRequest
    answer: dict | None = None  # the assistant message (text, tool calls); None when it has none
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)


@releases_connection
def stored_response(*, response_id: str, api_key_id: int | None) -> StoredResponse | None:
    """Return the top-level request `response_id` (`trio-<hex>`) made with the API key `api_key_id` (None:
    without a stored key) and its answer: the winner's, or `concat`'s joined one; None when there is no
    such request (two queries)."""
    request_id = _request_id(response_id)
    request = request_id and CompletionRequest.objects.filter(
        pk=request_id, parent__isnull=True, api_key_id=api_key_id).first()
    if not request:
        return None
    if request.status not in DECIDED:
        return StoredResponse(request)
    answered = list(request.candidates.filter(status=CallStatus.OK).order_by("index"))
    if request.aggregation_method == aggregation.CONCAT:
        text = aggregation.concat_reply([(c.model, answer_text(c.content, c.tool_calls)) for c in answered])
        usage = reduce(Usage.__add__, (_usage(c) for c in answered), Usage())
        return StoredResponse(request, {"role": "assistant", "content": text}, "stop", usage)
    winner = next((c for c in answered if c.is_winner), None)
    if winner is None:
        return StoredResponse(request)
    answer = {"role": "assistant", "content": winner.content}
    if winner.tool_calls:
        answer.update(content=winner.content or None, tool_calls=winner.tool_calls)
    return StoredResponse(request, answer, winner.finish_reason or "stop", _usage(winner))


def _usage(candidate: Candidate) -> Usage:
    return Usage(candidate.prompt_tokens, candidate.completion_tokens, candidate.total_tokens)


def request_history_page(requests: QuerySet[CompletionRequest], start: int, end: int) -> QuerySet[CompletionRequest]:
    """Return rows [start, end) of `requests` (a `request_history`), in one query that stays fast on deep pages.

    `LIMIT 50 OFFSET 99950` over the rows themselves builds (PostgreSQL) or reads (SQLite) every
    skipped row, winner subquery included: 0.6-0.9 s for the last page of 100k. Here only the
    inner `SELECT id ... OFFSET` skips, along the (created_at, id) index; the 50 rows it picks
    are then read with their subquery.
    """
    keys = requests.values("pk")[start:end]
    return (_with_winner_accepted(CompletionRequest.objects.only(*HISTORY_FIELDS))
            .filter(pk__in=keys).order_by("-created_at", "-pk"))


def _with_winner_accepted(requests: QuerySet[CompletionRequest]) -> QuerySet[CompletionRequest]:
    # order_by(): (request, index) is unique, and Candidate's default ordering would join the request.
    winner = Candidate.objects.filter(request=OuterRef("pk"), index=OuterRef("winner_index")).order_by()
    return requests.annotate(winner_accepted=Subquery(winner.values("accepted_count")[:1]))


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def history_models() -> list[str]:
    """Return every model that ever had a candidate, for the filters."""
    return _distinct_values(Candidate, "model")


def history_ensembles() -> list[str]:
    """Return every ensemble name in the history, for the filters."""
    return _distinct_values(CompletionRequest, "ensemble")


def _distinct_values(model, field: str) -> list[str]:
    """Return the distinct values of an indexed column in order, one index probe per value.

    A loose index scan (neither database does one for DISTINCT): SELECT DISTINCT read every
    index entry, 30-60 ms over 370k candidates on PostgreSQL, for the five names it found.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    sql = (f"WITH RECURSIVE found(value) AS (SELECT MIN({column}) FROM {table} UNION ALL "
           f"SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > found.value) FROM found "
           f"WHERE found.value IS NOT NULL) SELECT value FROM found WHERE value IS NOT NULL")
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [value for (value,) in cursor.fetchall()]


@dataclass
class MatrixCell:
    candidate: Candidate
    mark: BallotMark | None  # None: the voter was not shown this candidate (it failed)


@dataclass
class BallotRow:
    ballot: Ballot
    cells: list[MatrixCell]
    shown: list[Candidate]  # the candidates in the order this voter saw them


@dataclass
class RequestDetail:
    request: CompletionRequest
    conversation: list[tuple[str, str]]  # (role, text)
    # each with `nested`: the request of the nested ensemble that answered it, or None; and `answer`:
    # its text and tool calls as voters read them
    candidates: list[Candidate]
    ballots: list[BallotRow]


def request_detail(*, request_id) -> RequestDetail | None:
    """Return one request with its candidates, ballots, ballot matrix and nested requests (five queries), or None."""
    nested = Prefetch("children", CompletionRequest.objects.only("id", "ensemble", "parent_id"))
    request = (CompletionRequest.objects.filter(pk=request_id)
               .prefetch_related("candidates", "ballots", "marks", nested).first())
    if request is None:
        return None
    candidates = sorted(request.candidates.all(), key=lambda c: c.index)
    # A nested ensemble's candidate is labelled with the ensemble its own request records.
    children = {child.ensemble: child for child in request.children.all()}
    for candidate in candidates:
        candidate.nested = children.get(candidate.model)
        candidate.answer = answer_text(candidate.content, candidate.tool_calls)
    by_index = {c.index: c for c in candidates}
    marks = {(m.ballot_id, m.candidate_id): m for m in request.marks.all()}
    ballots = [
        BallotRow(
            ballot=b,
            cells=[MatrixCell(c, marks.get((b.pk, c.pk))) for c in candidates],
            shown=[by_index[i] for i in b.shown_order if i in by_index],
        )
        for b in sorted(request.ballots.all(), key=lambda b: b.voter_index)
    ]
    conversation = [(m.get("role", "?"), voting.turn_text(m)) for m in request.messages]
    return RequestDetail(request, conversation, candidates, ballots)


# --- leaderboard -------------------------------------------------------------------------------

@dataclass
class Standing:
    """One model's row on the leaderboard; rates are None when their denominator is 0."""

    model: str
    participated: int = 0
    wins: int = 0
    marks_received: int = 0
    accepted_received: int = 0
    preferred_received: int = 0
    self_marks: int = 0
    self_preferred: int = 0
    others_marks: int = 0
    others_preferred: int = 0
    ballots_answered: int = 0
    ballots_unparseable: int = 0
    calls: int = 0
    failed_calls: int = 0
    ok_calls: int = 0
    median_latency_ms: float | None = None

    @property
    def win_rate(self):
        return _rate(self.wins, self.participated)

    @property
    def win_interval(self):
        return ratings.wilson_interval(self.wins, self.participated)

    @property
    def acceptance_rate(self):
        return _rate(self.accepted_received, self.marks_received)

    @property
    def preference_rate(self):
        return _rate(self.preferred_received, self.marks_received)

    @property
    def self_preference_rate(self):
        return _rate(self.self_preferred, self.self_marks)

    @property
    def others_preference_rate(self):
        return _rate(self.others_preferred, self.others_marks)

    @property
    def invalid_ballot_rate(self):
        return _rate(self.ballots_unparseable, self.ballots_answered)

    @property
    def error_rate(self):
        return _rate(self.failed_calls, self.calls)

    def as_dict(self) -> dict:
        interval = self.win_interval
        return {
            "model": self.model, "participated": self.participated, "wins": self.wins,
            "win_rate": self.win_rate,
            "win_rate_low": interval[0] if interval else None,
            "win_rate_high": interval[1] if interval else None,
            "marks_received": self.marks_received, "acceptance_rate": self.acceptance_rate,
            "preference_rate": self.preference_rate,
            "self_marks": self.self_marks, "self_preference_rate": self.self_preference_rate,
            "others_marks": self.others_marks, "others_preference_rate": self.others_preference_rate,
            "ballots_answered": self.ballots_answered, "invalid_ballot_rate": self.invalid_ballot_rate,
            "calls": self.calls, "error_rate": self.error_rate,
            "median_latency_ms": self.median_latency_ms,
        }


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# Sort keys offered on the page (`?sort=win_rate`, `?sort=-win_rate`); missing values sort last.
SORTS = {
    "model": lambda s: s.model,
    "participated": lambda s: s.participated,
    "wins": lambda s: s.wins,
    "win_rate": lambda s: s.win_rate,
    "acceptance_rate": lambda s: s.acceptance_rate,
    "preference_rate": lambda s: s.preference_rate,
    "self_preference_rate": lambda s: s.self_preference_rate,
    "invalid_ballot_rate": lambda s: s.invalid_ballot_rate,
    "error_rate": lambda s: s.error_rate,
    "median_latency_ms": lambda s: s.median_latency_ms,
}
DEFAULT_SORT = "-win_rate"


@dataclass
class Leaderboard:
    window: str
    ensemble: str
    since: datetime | None
    standings: list[Standing]
    head_to_head: dict[tuple[str, str], int]
    ratings: list[ratings.Rating]
    over_time: list[tuple[datetime, str, int, int]]  # (bucket start, model, participated, wins)

    @property
    def models(self) -> list[str]:
        return sorted(s.model for s in self.standings)

    def head_to_head_rows(self) -> list[tuple[str, list[tuple[str, int, int]]]]:
        """Return, per model A, per model B: (B, A's wins over B, comparisons between A and B)."""
        models = self.models
        return [
            (a, [(b, self.head_to_head.get((a, b), 0),
                  self.head_to_head.get((a, b), 0) + self.head_to_head.get((b, a), 0)) for b in models])
            for a in models
        ]


def leaderboard(*, window: str = DEFAULT_WINDOW, ensemble: str = "", sort: str = DEFAULT_SORT,
                now: datetime | None = None, bootstrap_rounds: int = 200) -> Leaderboard:
    """Return every model's standing, the head-to-head table, ratings and the win-rate series.

    Windows (`window_start`): "24h" is the rolling last 24 hours; "7d" and "30d" are 7 or 30 whole
    UTC days, today included; "all" is everything. Closed UTC days already rolled up
    (ensemble.rollups) are read from the rollup, the rest (today, yesterday until SETTLE has
    passed, any closed day not rolled up yet) live: once the rollup is up to date the live part is
    at most 24 hours + SETTLE, whatever the window. Hour-bucketed charts (24 hours, or history of
    up to two days) are read live entirely. Counts are exactly the same either way; the median
    latency is exact over live rows and within ±2.2% over rolled-up days (HISTOGRAM_STEPS).
    """
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    now = now or timezone.now()
    since = window_start(window, now)
    unit = _bucket_unit(since, ensemble, now)
    runs = [] if unit == "hour" else _rolled_up_runs(since, now)
    totals = _Totals(unit)
    _add_live(totals, _request_scope(_live_ranges(since, runs), ensemble))
    if runs:
        _add_rollup(totals, _days_q(runs), ensemble)
    standings = totals.finished_standings()
    fitted = ratings.bradley_terry_ratings(sorted(standings), totals.pairs, rounds=bootstrap_rounds, seed=0)
    return Leaderboard(
        window=window, ensemble=ensemble, since=since,
        standings=sort_standings(list(standings.values()), sort),
        head_to_head=dict(totals.pairs), ratings=fitted, over_time=totals.series_rows(),
    )


def window_start(window: str, now: datetime) -> datetime | None:
    """Return when `window` starts at `now` (None: all time); see WINDOWS."""
    length = WINDOWS[window][1]
    if isinstance(length, timedelta):
        return now - length
    if length is None:
        return None
    return utc_midnight(now.astimezone(dt_timezone.utc).date() - timedelta(days=length - 1))


def sort_standings(standings: list[Standing], sort: str) -> list[Standing]:
    """Return standings ordered by `sort` (a SORTS key, '-' for descending); missing values last."""
    if sort.lstrip("-") not in SORTS:
        sort = DEFAULT_SORT
    key, descending = SORTS[sort.lstrip("-")], sort.startswith("-")
    present = [s for s in standings if key(s) is not None]
    missing = [s for s in standings if key(s) is None]
    present.sort(key=lambda s: s.model)  # stable tie-break by name, whatever the direction
    present.sort(key=key, reverse=descending)
    return present + sorted(missing, key=lambda s: s.model)


# --- which days come from the rollup -----------------------------------------------------------

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


def _rolled_up_runs(since: datetime | None, now: datetime) -> list[tuple[date, date]]:
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


def _live_ranges(since: datetime | None, runs: list[tuple[date, date]]) -> list[Range]:
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


def _days_q(runs: list[tuple[date, date]]) -> Q:
    return _any([Q(day__gte=first, day__lt=end) for first, end in runs])


def _any(parts: list[Q]) -> Q:
    """Return the OR of `parts`: nothing for no part, everything if one part is empty (unbounded)."""
    if not parts:
        return Q(pk__in=[])
    if not all(parts):
        return Q()  # Q() | Q(x) would be Q(x), not "everything"
    return reduce(operator.or_, parts)


def _request_scope(ranges: list[Range], ensemble: str) -> Q:
    """Return the condition on a row's `request` that keeps it inside `ranges` and the ensemble."""
    if ranges == [(None, None)] and not ensemble:
        return Q()
    requests = CompletionRequest.objects.filter(_ranges_q(ranges))
    if ensemble:
        requests = requests.filter(ensemble=ensemble)
    return Q(RequestIn("request", requests.order_by().values("pk")))


class RequestIn(Expression):
    """`request_id IN (subquery)`, written `request_id = ANY(ARRAY(subquery))` on PostgreSQL.

    Either way the database should start from the requests' created_at index and probe each
    table's request_id index. With a JOIN, SQLite walked the whole table and probed the request
    of every row. With IN, PostgreSQL hash-joined a sequential scan of the 1.3M marks against the
    day's 1,700 requests (150 ms; 21 ms through the index): request ids are random UUIDs, so it
    prices the index probes as random reads. ANY(ARRAY(...)) runs the subquery first and makes
    the ids one indexable list.
    """

    output_field = BooleanField()

    def __init__(self, column: str, queryset: QuerySet):
        super().__init__()
        self.column, self.subquery = F(column), Subquery(queryset)

    def get_source_expressions(self):
        return [self.column, self.subquery]

    def set_source_expressions(self, expressions):
        self.column, self.subquery = expressions

    def as_sql(self, compiler, connection, template="%s IN %s"):
        column, column_params = compiler.compile(self.column)
        subquery, subquery_params = compiler.compile(self.subquery)  # "(SELECT ...)"
        return template % (column, subquery), (*column_params, *subquery_params)

    def as_postgresql(self, compiler, connection):
        return self.as_sql(compiler, connection, template="%s = ANY(ARRAY%s)")


# --- adding it up ------------------------------------------------------------------------------

class TimeBucket(Func):
    """The UTC hour, day or month a datetime falls in, as text ("2026-01-31 17", "2026-01-31", "2026-01").

    On SQLite Django's Trunc functions call back into Python for every row (seconds over a large
    history); Django stores datetimes there as UTC ISO text, so the bucket is a plain prefix.
    """

    output_field = CharField()
    FORMATS = {"hour": ("YYYY-MM-DD HH24", 13), "day": ("YYYY-MM-DD", 10), "month": ("YYYY-MM", 7)}

    def __init__(self, expression, unit: str):
        super().__init__(expression)
        self.pattern, self.length = self.FORMATS[unit]

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template=f"substr(%(expressions)s, 1, {self.length})")

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection,
                              template=f"to_char(%(expressions)s AT TIME ZONE 'UTC', '{self.pattern}')")


BUCKET_PARSE = {13: "%Y-%m-%d %H", 10: "%Y-%m-%d", 7: "%Y-%m"}


def _bucket_start(text: str) -> datetime:
    return datetime.strptime(text, BUCKET_PARSE[len(text)]).replace(tzinfo=dt_timezone.utc)


def _bucket_unit(since: datetime | None, ensemble: str, now: datetime) -> str:
    """Return the chart's bucket: hours up to two days of history, days up to ~4 months, else months."""
    if since is None:
        requests = CompletionRequest.objects.filter(ensemble=ensemble) if ensemble else CompletionRequest.objects
        since = requests.aggregate(first=Min("created_at"))["first"] or now
    span = now - since
    return "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=120) else "month"


# Latency histogram of the rollup: bucket b holds latencies in [2^(b/16), 2^((b+1)/16)) ms, 4.4%
# wide (0 ms counts as 1 ms). A bucket is read as its geometric middle, so a median taken from
# the rollup is within ±2.2% of the exact one; live rows keep their exact latency.
HISTOGRAM_STEPS = 16
HISTOGRAM_PRECISION = 2 ** (1 / (2 * HISTOGRAM_STEPS)) - 1  # 0.0219: the largest relative error


def latency_bucket_value(bucket: int) -> float:
    """Return the latency (ms) a histogram bucket stands for: its geometric middle."""
    return 2 ** ((bucket + 0.5) / HISTOGRAM_STEPS)


def weighted_median(counts: dict[float, int]) -> float | None:
    """Return the median of values given as {value: count}: the mean of the middle two for an even count."""
    total = sum(counts.values())
    if not total:
        return None
    low, high = (total - 1) // 2, total // 2  # positions (from 0) of the middle one or two
    middle, seen = [], 0
    for value in sorted(counts):
        seen += counts[value]
        while len(middle) < 2 and (high if middle else low) < seen:
            middle.append(value)
        if len(middle) == 2:
            return (middle[0] + middle[1]) / 2
    raise AssertionError("unreachable: the middle lies within the total")


@dataclass
class _Totals:
    """Leaderboard sums, added to from live rows and rollup rows alike."""

    unit: str
    standings: dict[str, Standing] = field(default_factory=dict)
    series: dict[tuple[datetime, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    latencies: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    pairs: Counter = field(default_factory=Counter)

    def row(self, model: str) -> Standing:
        return self.standings.setdefault(model, Standing(model))

    def add_counts(self, model: str, values: dict) -> None:
        standing = self.row(model)
        for name, value in values.items():
            setattr(standing, name, getattr(standing, name) + value)

    def add_series(self, bucket: datetime, model: str, participated: int, wins: int) -> None:
        point = self.series[(bucket, model)]
        point[0] += participated
        point[1] += wins

    def finished_standings(self) -> dict[str, Standing]:
        for model, counts in self.latencies.items():
            self.row(model).median_latency_ms = weighted_median(counts)
        return self.standings

    def series_rows(self) -> list[tuple[datetime, str, int, int]]:
        return [(bucket, model, n, wins) for (bucket, model), (n, wins) in sorted(self.series.items()) if n]


CANDIDATE_COUNTS = ("participated", "wins", "calls", "failed_calls", "ok_calls")
MARK_COUNTS = ("marks_received", "accepted_received", "preferred_received", "self_marks", "self_preferred",
               "others_marks", "others_preferred")
BALLOT_COUNTS = ("ballots_answered", "ballots_unparseable")


def _add_live(totals: _Totals, scope: Q) -> None:
    """Add the live history rows inside `scope` to `totals`: five GROUP BY queries."""
    for row in candidate_counts(scope, unit=totals.unit):
        totals.add_counts(row["model"], {name: row[name] for name in CANDIDATE_COUNTS})
        totals.add_series(_bucket_start(row["bucket"]), row["model"], row["participated"], row["wins"])
    for row in mark_counts(scope):
        totals.add_counts(row["author_model"], {name: row[name] for name in MARK_COUNTS})
    for row in ballot_counts(scope):
        totals.add_counts(row["voter_model"], {name: row[name] for name in BALLOT_COUNTS})
    for row in latency_counts(scope):
        totals.latencies[row["model"]][row["latency_ms"]] += row["n"]
    for row in pair_counts(scope):
        # The same model on both sides (a model listed twice in one ensemble) is no comparison.
        if row["winner"] != row["loser"]:
            totals.pairs[(row["winner"], row["loser"])] += row["n"]


def _add_rollup(totals: _Totals, days: Q, ensemble: str) -> None:
    """Add the rolled-up days matching `days` (and the ensemble) to `totals`: two queries."""
    rows = ModelDayRollup.objects.filter(days)
    pairs = PairDayRollup.objects.filter(days)
    if ensemble:
        rows, pairs = rows.filter(ensemble=ensemble), pairs.filter(ensemble=ensemble)
    histograms: dict[str, Counter] = defaultdict(Counter)
    for row in rows.values("day", "model", "latency_histogram", *CANDIDATE_COUNTS, *MARK_COUNTS, *BALLOT_COUNTS):
        model, day = row.pop("model"), row.pop("day")
        histograms[model].update(row.pop("latency_histogram"))
        totals.add_counts(model, row)
        bucket = utc_midnight(day if totals.unit == "day" else day.replace(day=1))
        totals.add_series(bucket, model, row["participated"], row["wins"])
    for model, histogram in histograms.items():
        for bucket, n in histogram.items():
            totals.latencies[model][latency_bucket_value(int(bucket))] += n
    for row in pairs.values("winner", "loser").annotate(n=Sum("wins")).order_by():
        totals.pairs[(row["winner"], row["loser"])] += row["n"]


# --- the GROUP BY queries, shared by the live leaderboard and the rollup ------------------------

def _day_group(by_day: bool) -> dict:
    """Return the extra GROUP BY columns of a rollup query: the request's UTC day and ensemble."""
    return {"day": TimeBucket("request__created_at", "day"), "ensemble": F("request__ensemble")} if by_day else {}


def candidate_counts(scope: Q, *, unit: str, by_ensemble: bool = False) -> QuerySet:
    """Return per (time bucket[, ensemble], model): participated, wins, calls, failed and ok calls."""
    # concat's requests are ok but pick no winner: nobody won or lost them.
    decided = Q(request__status__in=DECIDED, request__winner_index__isnull=False)
    group = {"bucket": TimeBucket("request__created_at", unit)}
    if by_ensemble:
        group["ensemble"] = F("request__ensemble")
    return (Candidate.objects.filter(scope).annotate(**group).values(*group, "model").annotate(
        participated=Count("pk", filter=decided),
        wins=Count("pk", filter=decided & Q(is_winner=True)),
        calls=Count("pk", filter=~Q(status=CallStatus.CANCELLED)),
        failed_calls=Count("pk", filter=Q(status__in=CALL_FAILURES)),
        ok_calls=Count("pk", filter=Q(status=CallStatus.OK)),
    ).order_by())


def mark_counts(scope: Q, *, by_day: bool = False) -> QuerySet:
    """Return per [day, ensemble,] author model: the marks its candidates received and its self-marks."""
    group = _day_group(by_day)
    return BallotMark.objects.filter(scope).annotate(**group).values(*group, "author_model").annotate(
        marks_received=Count("pk", filter=Q(counted=True)),
        accepted_received=Count("pk", filter=Q(counted=True, accepted=True)),
        preferred_received=Count("pk", filter=Q(counted=True, preferred=True)),
        # A self mark's voter and author are the same model, so grouping by author covers both.
        self_marks=Count("pk", filter=Q(is_self=True)),
        self_preferred=Count("pk", filter=Q(is_self=True, preferred=True)),
        others_marks=Count("pk", filter=Q(is_self=False, counted=True)),
        others_preferred=Count("pk", filter=Q(is_self=False, counted=True, preferred=True)),
    ).order_by()


def ballot_counts(scope: Q, *, by_day: bool = False) -> QuerySet:
    """Return per [day, ensemble,] voter model: ballots answered, and how many were unparseable."""
    group = _day_group(by_day)
    return Ballot.objects.filter(scope).annotate(**group).values(*group, "voter_model").annotate(
        ballots_answered=Count("pk", filter=Q(status__in=("ok", "unparseable"))),
        ballots_unparseable=Count("pk", filter=Q(status="unparseable")),
    ).order_by()


def pair_counts(scope: Q, *, by_day: bool = False) -> QuerySet:
    """Return per [day, ensemble,] (winner, loser): ballots that ranked winner's candidate above loser's (PAIR RULE)."""
    group = _day_group(by_day)
    # Each mark joined to the other marks of its ballot. The winning mark is accepted and not the
    # judge's own; the losing one is not accepted, or the winning one is preferred and it is not.
    # `counted` is left out on purpose: which marks count for the winner is the self-vote
    # policy's business, which pairs count for ratings is the PAIR RULE's.
    ranked_lower = Q(ballot__marks__accepted=False) | Q(preferred=True, ballot__marks__preferred=False)
    return (BallotMark.objects.filter(scope, Q(accepted=True, is_self=False) & ranked_lower)
            .annotate(**group)
            .values(*group, winner=F("author_model"), loser=F("ballot__marks__author_model"))
            .annotate(n=Count("pk")).order_by())


def latency_counts(scope: Q) -> QuerySet:
    """Return per (model, latency in ms): the successful calls, for exact medians."""
    return (Candidate.objects.filter(scope, status=CallStatus.OK)
            .values("model", "latency_ms").annotate(n=Count("pk")).order_by())


def latency_histograms(scope: Q) -> QuerySet:
    """Return per (day, ensemble, model, histogram bucket): the successful calls (see HISTOGRAM_STEPS)."""
    bucket = Floor(Ln(Greatest(F("latency_ms"), Value(1))) * (HISTOGRAM_STEPS / math.log(2)))
    return (Candidate.objects.filter(scope, status=CallStatus.OK)
            .annotate(**_day_group(True), bucket=Cast(bucket, IntegerField()))
            .values("day", "ensemble", "model", "bucket").annotate(n=Count("pk")).order_by())


# --- reads behind the rollup (ensemble.rollups writes it) ---------------------------------------

@dataclass
class DayAggregates:
    """Everything the rollup stores for some days: per (day, ensemble, model) counts, pairs, request counts."""

    models: dict[tuple[date, str, str], dict]
    pairs: dict[tuple[date, str, str, str], int]
    requests: dict[date, int]


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
    for row in latency_histograms(scope):
        histogram = models[(date.fromisoformat(row["day"]), row["ensemble"], row["model"])]["latency_histogram"]
        histogram[str(row["bucket"])] = row["n"]
    pairs = {(date.fromisoformat(p["day"]), p["ensemble"], p["winner"], p["loser"]): p["n"]
             for p in pair_counts(scope, by_day=True) if p["winner"] != p["loser"]}
    return DayAggregates(dict(models), pairs, requests_per_day(first, end))


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
