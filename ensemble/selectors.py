"""Every read query behind the vote history and the leaderboard.

Rates are SQL aggregates (GROUP BY over indexed columns); the only Python arithmetic runs on
those few aggregated rows: intervals, the Bradley–Terry fit on the pairwise table, sorting.

Definitions used by the leaderboard (per model, over the chosen window and ensemble):

- participated: the model had a candidate in a request that decided a winner (status ok or
  partial), failed candidates included: a member that failed lost that request;
- win rate: wins / participated, with a 95% Wilson interval;
- acceptance / preference rate received: share of the counted marks on its candidates that
  accept / prefer them (self-votes are in when the ensemble counts them);
- self-preference: how often its own ballots prefer its own candidate (every self mark, counted
  or not) against how often other models' ballots prefer it;
- invalid-ballot rate: unparseable ballots / ballots it answered (ok + unparseable);
- error/timeout rate: generation calls that ended in error, timeout or late (abandoned by the
  straggler cut-off) / its generation calls, cancelled ones left out (the client left);
- median latency: of its successful generation calls;
- head-to-head: a ballot whose preferred mark is on A's candidate and which also has a mark on
  B's candidate is one win of A over B; both marks must count.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import (
    Aggregate, CharField, Count, Exists, F, FloatField, Func, Min, OuterRef, Q, QuerySet, Subquery,
)
from django.utils import timezone

from . import ratings, voting
from .models import Ballot, BallotMark, CallStatus, Candidate, CompletionRequest, RequestStatus

DECIDED = (RequestStatus.OK, RequestStatus.PARTIAL)
CALL_FAILURES = (CallStatus.ERROR, CallStatus.TIMEOUT, CallStatus.LATE)

# Time windows of the leaderboard: (label, length).
WINDOWS = {
    "24h": ("24 hours", timedelta(hours=24)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
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
    winner = Candidate.objects.filter(request=OuterRef("pk"), index=OuterRef("winner_index"))
    requests = CompletionRequest.objects.only(*HISTORY_FIELDS).annotate(
        winner_accepted=Subquery(winner.values("accepted_count")[:1])
    )
    if model:
        # EXISTS, probed per request through the (request, index) key: newest-first pages stop early.
        requests = requests.filter(Exists(Candidate.objects.filter(request=OuterRef("pk"), model=model)))
    if status:
        requests = requests.filter(status=status)
    if date_from:
        requests = requests.filter(created_at__gte=_day_start(date_from))
    if date_to:
        requests = requests.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    if search:
        requests = requests.filter(prompt_excerpt__icontains=search)
    return requests.order_by("-created_at", "-pk")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def history_models() -> list[str]:
    """Return every model that ever had a candidate, for the filters."""
    return list(Candidate.objects.order_by("model").values_list("model", flat=True).distinct())


def history_ensembles() -> list[str]:
    """Return every ensemble name in the history, for the filters."""
    return list(CompletionRequest.objects.order_by("ensemble").values_list("ensemble", flat=True).distinct())


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
    candidates: list[Candidate]
    ballots: list[BallotRow]


def request_detail(*, request_id) -> RequestDetail | None:
    """Return one request with its candidates, ballots and ballot matrix (four queries), or None."""
    request = (CompletionRequest.objects.filter(pk=request_id)
               .prefetch_related("candidates", "ballots", "marks").first())
    if request is None:
        return None
    candidates = sorted(request.candidates.all(), key=lambda c: c.index)
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
    conversation = [(m.get("role", "?"), voting.message_text(m.get("content"))) for m in request.messages]
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
    """Return every model's standing, the head-to-head table, ratings and the win-rate series."""
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    now = now or timezone.now()
    length = WINDOWS[window][1]
    since = now - length if length else None
    scope = _request_scope(since, ensemble)
    standings, over_time = _candidate_stats(scope, _bucket_unit(since, ensemble, now))
    _mark_stats(scope, standings)
    _ballot_stats(scope, standings)
    _median_latencies(scope, standings)
    head_to_head = _head_to_head(scope)
    fitted = ratings.bradley_terry_ratings(sorted(standings), head_to_head, rounds=bootstrap_rounds, seed=0)
    return Leaderboard(
        window=window, ensemble=ensemble, since=since,
        standings=sort_standings(list(standings.values()), sort),
        head_to_head=head_to_head, ratings=fitted, over_time=over_time,
    )


def _request_scope(since: datetime | None, ensemble: str) -> Q:
    """Return the condition on a row's `request` that keeps it inside the window and ensemble."""
    if not since and not ensemble:
        return Q()
    requests = CompletionRequest.objects.all()
    if since:
        requests = requests.filter(created_at__gte=since)
    if ensemble:
        requests = requests.filter(ensemble=ensemble)
    # `request_id IN (subquery)`, not a JOIN: the database starts from the requests' created_at
    # index and probes each table's request_id index. With a JOIN, SQLite walked the whole
    # table and probed the request of every row (seconds at 100k requests, whatever the window).
    return Q(request__in=requests.values("pk"))


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


def _bucket_unit(since: datetime | None, ensemble: str, now: datetime) -> str:
    """Return the chart's bucket: hours up to two days of history, days up to ~4 months, else months."""
    if since is None:
        requests = CompletionRequest.objects.filter(ensemble=ensemble) if ensemble else CompletionRequest.objects
        since = requests.aggregate(first=Min("created_at"))["first"] or now
    span = now - since
    return "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=120) else "month"


def _candidate_stats(scope: Q, unit: str) -> tuple[dict[str, Standing], list[tuple[datetime, str, int, int]]]:
    """Return standings with the candidate counts, and the win-rate series, from one GROUP BY."""
    decided = Q(request__status__in=DECIDED)
    rows = (Candidate.objects.filter(scope)
            .annotate(bucket=TimeBucket("request__created_at", unit))
            .values("bucket", "model")
            .annotate(
                participated=Count("pk", filter=decided),
                wins=Count("pk", filter=decided & Q(is_winner=True)),
                calls=Count("pk", filter=~Q(status=CallStatus.CANCELLED)),
                failed_calls=Count("pk", filter=Q(status__in=CALL_FAILURES)),
                ok_calls=Count("pk", filter=Q(status=CallStatus.OK)),
            ).order_by("bucket", "model"))
    standings: dict[str, Standing] = {}
    over_time = []
    for row in rows:
        standing = standings.setdefault(row["model"], Standing(row["model"]))
        for name in ("participated", "wins", "calls", "failed_calls", "ok_calls"):
            setattr(standing, name, getattr(standing, name) + row[name])
        if row["participated"]:
            bucket = datetime.strptime(row["bucket"], BUCKET_PARSE[len(row["bucket"])])
            over_time.append((bucket.replace(tzinfo=dt_timezone.utc), row["model"], row["participated"], row["wins"]))
    return standings, over_time


def _row(standings: dict[str, Standing], model: str) -> Standing:
    return standings.setdefault(model, Standing(model))


def _mark_stats(scope: Q, standings: dict[str, Standing]) -> None:
    """Add the marks each model's candidates received, and its self-marks, to `standings`."""
    marks = BallotMark.objects.filter(scope).values("author_model").annotate(
        marks_received=Count("pk", filter=Q(counted=True)),
        accepted_received=Count("pk", filter=Q(counted=True, accepted=True)),
        preferred_received=Count("pk", filter=Q(counted=True, preferred=True)),
        # A self mark's voter and author are the same model, so grouping by author covers both.
        self_marks=Count("pk", filter=Q(is_self=True)),
        self_preferred=Count("pk", filter=Q(is_self=True, preferred=True)),
        others_marks=Count("pk", filter=Q(is_self=False, counted=True)),
        others_preferred=Count("pk", filter=Q(is_self=False, counted=True, preferred=True)),
    )
    for values in marks.order_by():
        _row(standings, values.pop("author_model")).__dict__.update(values)


def _ballot_stats(scope: Q, standings: dict[str, Standing]) -> None:
    """Add how many ballots each model answered, and how many were unparseable, to `standings`."""
    ballots = Ballot.objects.filter(scope).values("voter_model").annotate(
        ballots_answered=Count("pk", filter=Q(status__in=("ok", "unparseable"))),
        ballots_unparseable=Count("pk", filter=Q(status="unparseable")),
    )
    for values in ballots.order_by():
        _row(standings, values.pop("voter_model")).__dict__.update(values)


class Median(Aggregate):
    """PostgreSQL's continuous median (percentile_cont); SQLite has no percentile function."""

    function = "PERCENTILE_CONT"
    name = "median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _median_latencies(scope: Q, standings: dict[str, Standing]) -> None:
    """Set each model's median latency of successful calls: one query on PostgreSQL, one per model elsewhere."""
    successful = Candidate.objects.filter(scope, status=CallStatus.OK)
    if connection.vendor == "postgresql":
        medians = successful.values("model").annotate(median=Median("latency_ms")).order_by()
        for row in medians:
            _row(standings, row["model"]).median_latency_ms = row["median"]
        return
    for standing in standings.values():
        # The middle one or two rows in latency order, walking the (model, status, latency_ms) index.
        count = standing.ok_calls
        if count:
            ordered = successful.filter(model=standing.model).order_by("latency_ms").values_list("latency_ms", flat=True)
            middle = list(ordered[(count - 1) // 2: count // 2 + 1])
            standing.median_latency_ms = sum(middle) / len(middle)
def _head_to_head(scope: Q) -> dict[tuple[str, str], int]:
    """Return {(a, b): how often a ballot preferred a's candidate while also judging b's}."""
    # `loser` is every counted mark; `ballot__marks` is the same ballot's counted preferred mark.
    pairs = (BallotMark.objects.filter(scope, counted=True, ballot__marks__preferred=True,
                                       ballot__marks__counted=True)
             .values(winner=F("ballot__marks__author_model"), loser=F("author_model"))
             .annotate(n=Count("pk")).order_by())
    # The same model on both sides (its own preferred mark, or a model listed twice) is no comparison.
    return {(p["winner"], p["loser"]): p["n"] for p in pairs if p["winner"] != p["loser"]}
