"""The leaderboard: every model's standing, head-to-head, ratings and win rates over time.

Rates are SQL aggregates (GROUP BY over indexed columns); the only Python arithmetic runs on
those few aggregated rows: intervals, the Bradley–Terry fit on the pairwise table, sorting.

It adds up two sources (see `leaderboard`): the daily rollup of closed UTC days (written by
`rollups` from `rollups.day_aggregates`, the same GROUP BYs grouped by day) and live GROUP BYs
over whatever is not rolled up, at most the open day(s) once the rollup is current.

A tag, user or key filter (`history.filters`) reads the whole window live: the rollup has no such
dimension (a day's rows are summed over every tag), so it cannot say what one tag's requests did.
Live over a tag's share of the history is fast enough (bench/history_scale.py's tagged lines:
figures in bench/README.md); a rollup per tag would multiply the rollup by every key:value pair.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property

from django.db.models import Min, Q, Sum
from django.utils import timezone

from ..formats.costs import COST_PLACES
from ..models import CompletionRequest, EnsembleDayRollup, ModelDayRollup, PairDayRollup
from . import ratings
from .feedback import HumanFigures, human_figures
from .counts import (
    BALLOT_COUNTS, CANDIDATE_COUNTS, MARK_COUNTS, PREFERENCE_COUNTS, REQUEST_COSTS, ballot_counts,
    candidate_counts, latency_counts, mark_counts, pair_counts, preference_counts, request_costs,
)
from .judges import Slots, VoterAudit, slots_from_json, voter_audits
from .expressions import bucket_start
from .sorting import DEFAULT_SORT, sort_standings
from .standing import Standing
from .statistics import latency_bucket_value, weighted_median
from .windows import (
    DEFAULT_WINDOW, WINDOWS, days_q, live_ranges, request_scope, requests_in, rolled_up_runs, utc_midnight,
    window_start,
)


@dataclass
class Leaderboard:
    window: str
    ensemble: str
    since: datetime | None
    standings: list[Standing]
    head_to_head: dict[tuple[str, str], int]
    ratings: list[ratings.Rating]
    over_time: list[tuple[datetime, str, int, int]]  # (bucket start, model, participated, wins)
    voters: list[VoterAudit] = field(default_factory=list)  # the judges' audit, by model
    cost_per_request: Decimal | None = None  # mean known cost of a top-level request; None: none known
    request_filter: Q = field(default_factory=Q)

    @cached_property
    def human(self) -> HumanFigures:
        """Return what feedback says of the models and judges, read live (two queries, only when asked for)."""
        return human_figures(since=self.since, ensemble=self.ensemble, request_filter=self.request_filter)

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
                request_filter: Q | None = None, now: datetime | None = None,
                bootstrap_rounds: int = 200) -> Leaderboard:
    """Return every model's standing, the head-to-head table, ratings and the win-rate series.

    Windows (`window_start`): "24h" is the rolling last 24 hours; "7d" and "30d" are 7 or 30 whole
    UTC days, today included; "all" is everything. Closed UTC days already rolled up
    (`rollups`) are read from the rollup, the rest (today, yesterday until SETTLE has
    passed, any closed day not rolled up yet) live: once the rollup is up to date the live part is
    at most 24 hours + SETTLE, whatever the window. Hour-bucketed charts (24 hours, or history of
    up to two days) are read live entirely. Counts are exactly the same either way; the median
    latency is exact over live rows and within ±2.2% over rolled-up days
    (statistics.HISTOGRAM_STEPS). `request_filter` is a condition on CompletionRequest (the
    tags, user and key of `history.filters.RequestFilter.q`); with one, every day is read live:
    the rollup is not kept per tag, user or key (see the module docstring).
    """
    request_filter = request_filter or Q()
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    now = now or timezone.now()
    since = window_start(window, now)
    unit = _bucket_unit(since, ensemble, request_filter, now)
    runs = [] if unit == "hour" or request_filter else rolled_up_runs(since, now)
    totals = _Totals(unit)
    ranges = live_ranges(since, runs)
    _add_live(totals, request_scope(ranges, ensemble, request_filter))
    totals.add_request_costs(request_costs(requests_in(ranges, ensemble, request_filter)))
    if runs:
        _add_rollup(totals, days_q(runs), ensemble)
    standings = totals.finished_standings()
    fitted = ratings.bradley_terry_ratings(sorted(standings), totals.pairs, rounds=bootstrap_rounds, seed=0)
    return Leaderboard(
        window=window, ensemble=ensemble, since=since,
        standings=sort_standings(list(standings.values()), sort),
        head_to_head=dict(totals.pairs), ratings=fitted, over_time=totals.series_rows(),
        voters=voter_audits(standings, totals.slots),
        cost_per_request=totals.cost_per_request,
        request_filter=request_filter,
    )


def _bucket_unit(since: datetime | None, ensemble: str, request_filter: Q, now: datetime) -> str:
    """Return the chart's bucket: hours up to two days of history, days up to ~4 months, else months."""
    if since is None:
        requests = CompletionRequest.objects.filter(ensemble=ensemble) if ensemble else CompletionRequest.objects.all()
        if request_filter:
            requests = requests.filter(request_filter)
        since = requests.aggregate(first=Min("created_at"))["first"] or now
    span = now - since
    return "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=120) else "month"


@dataclass
class _Totals:
    """Leaderboard sums, added to from live rows and rollup rows alike."""

    unit: str
    standings: dict[str, Standing] = field(default_factory=dict)
    series: dict[tuple[datetime, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    latencies: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    pairs: Counter = field(default_factory=Counter)
    slots: dict[str, Slots] = field(default_factory=lambda: defaultdict(Slots))  # voter's preferences per slot
    request_costs: dict = field(default_factory=lambda: {"costed_requests": 0, "cost_usd": Decimal(0)})

    def row(self, model: str) -> Standing:
        return self.standings.setdefault(model, Standing(model))

    def add_counts(self, model: str, values: dict) -> None:
        standing = self.row(model)
        for name, value in values.items():
            setattr(standing, name, getattr(standing, name) + _exact(value))

    def add_series(self, bucket: datetime, model: str, participated: int, wins: int) -> None:
        point = self.series[(bucket, model)]
        point[0] += participated
        point[1] += wins

    def add_request_costs(self, values: dict) -> None:
        for name in REQUEST_COSTS:
            self.request_costs[name] += _exact(values[name])

    @property
    def cost_per_request(self) -> Decimal | None:
        costed = self.request_costs["costed_requests"]
        return self.request_costs["cost_usd"] / costed if costed else None

    def finished_standings(self) -> dict[str, Standing]:
        for model, counts in self.latencies.items():
            self.row(model).median_latency_ms = weighted_median(counts)
        return self.standings

    def series_rows(self) -> list[tuple[datetime, str, int, int]]:
        return [(bucket, model, n, wins) for (bucket, model), (n, wins) in sorted(self.series.items()) if n]


def _exact(value):
    """Return a count as it is, a sum of costs rounded to the cost columns' places: SQLite sums
    them as floats (PostgreSQL exactly), and the rollup stores each day's sum rounded so."""
    return value.quantize(COST_PLACES) if isinstance(value, Decimal) else value


def _add_live(totals: _Totals, scope: Q) -> None:
    """Add the live history rows inside `scope` to `totals`: six GROUP BY queries."""
    for row in candidate_counts(scope, unit=totals.unit):
        totals.add_counts(row["model"], {name: row[name] for name in CANDIDATE_COUNTS})
        totals.add_series(bucket_start(row["bucket"]), row["model"], row["participated"], row["wins"])
    for row in mark_counts(scope):
        totals.add_counts(row["author_model"], {name: row[name] for name in MARK_COUNTS})
    for row in ballot_counts(scope):
        totals.add_counts(row["voter_model"], {name: row[name] for name in BALLOT_COUNTS})
    for row in preference_counts(scope):
        totals.add_counts(row["voter_model"], {name: row[name] for name in PREFERENCE_COUNTS})
        totals.slots[row["voter_model"]][(row["shown"], row["position"])] += row["preferences"]
    for row in latency_counts(scope):
        totals.latencies[row["model"]][row["latency_ms"]] += row["n"]
    for row in pair_counts(scope):
        # The same model on both sides (a model listed twice in one ensemble) is no comparison.
        if row["winner"] != row["loser"]:
            totals.pairs[(row["winner"], row["loser"])] += row["n"]


def _add_rollup(totals: _Totals, days: Q, ensemble: str) -> None:
    """Add the rolled-up days matching `days` (and the ensemble) to `totals`: three queries."""
    rows = ModelDayRollup.objects.filter(days)
    pairs = PairDayRollup.objects.filter(days)
    costs = EnsembleDayRollup.objects.filter(days)
    if ensemble:
        rows, pairs = rows.filter(ensemble=ensemble), pairs.filter(ensemble=ensemble)
        costs = costs.filter(ensemble=ensemble)
    totals.add_request_costs({name: value or 0 for name, value in costs.aggregate(
        costed_requests=Sum("costed_requests"), cost_usd=Sum("cost_usd")).items()})
    histograms: dict[str, Counter] = defaultdict(Counter)
    fields = (*CANDIDATE_COUNTS, *MARK_COUNTS, *BALLOT_COUNTS, *PREFERENCE_COUNTS)
    for row in rows.values("day", "model", "latency_histogram", "preference_slots", *fields):
        model, day = row.pop("model"), row.pop("day")
        histograms[model].update(row.pop("latency_histogram"))
        totals.slots[model].update(slots_from_json(row.pop("preference_slots")))
        totals.add_counts(model, row)
        bucket = utc_midnight(day if totals.unit == "day" else day.replace(day=1))
        totals.add_series(bucket, model, row["participated"], row["wins"])
    for model, histogram in histograms.items():
        for bucket, n in histogram.items():
            totals.latencies[model][latency_bucket_value(int(bucket))] += n
    for row in pairs.values("winner", "loser").annotate(n=Sum("wins")).order_by():
        totals.pairs[(row["winner"], row["loser"])] += row["n"]
