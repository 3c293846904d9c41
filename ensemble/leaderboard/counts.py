"""The GROUP BY queries, shared by the live leaderboard and the rollup: per model (and per day and
ensemble for the rollup), over the rows of the requests a scope keeps."""
from __future__ import annotations

import math
from decimal import Decimal

from django.db.models import Count, DecimalField, F, IntegerField, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, Coalesce, Floor, Greatest, Ln

from ..models import ANSWERED, Ballot, BallotMark, CallStatus, Candidate
from .expressions import JsonArrayLength, TimeBucket
from .statistics import HISTOGRAM_STEPS


CALL_FAILURES = (CallStatus.ERROR, CallStatus.TIMEOUT, CallStatus.TOO_LARGE, CallStatus.LATE)

CANDIDATE_COUNTS = ("participated", "wins", "calls", "failed_calls", "ok_calls", "generation_cost_usd",
                    "generation_costed_calls")
MARK_COUNTS = ("marks_received", "accepted_received", "preferred_received", "self_marks", "self_preferred",
               "others_marks", "others_preferred")
BALLOT_COUNTS = ("ballots_answered", "ballots_unparseable", "ballot_cost_usd", "ballot_costed_calls")
PREFERENCE_COUNTS = ("agreement_ballots", "agreed_with_winner")
REQUEST_COSTS = ("costed_requests", "cost_usd")


def _known_cost(column: str) -> Coalesce:
    """Return the sum of `column`'s known costs (unknown ones are null, left out), 0 for none."""
    cost = DecimalField(max_digits=18, decimal_places=10)
    return Coalesce(Sum(column), Value(Decimal(0)), output_field=cost)


def _day_group(by_day: bool) -> dict:
    """Return the extra GROUP BY columns of a rollup query: the request's UTC day and ensemble."""
    return {"day": TimeBucket("request__created_at", "day"), "ensemble": F("request__ensemble")} if by_day else {}


def candidate_counts(scope: Q, *, unit: str, by_ensemble: bool = False) -> QuerySet:
    """Return per (time bucket[, ensemble], model): participated, wins, calls, failed and ok calls."""
    # concat's requests are ok but pick no winner: nobody won or lost them.
    decided = Q(request__status__in=ANSWERED, request__winner_index__isnull=False)
    group = {"bucket": TimeBucket("request__created_at", unit)}
    if by_ensemble:
        group["ensemble"] = F("request__ensemble")
    return (Candidate.objects.filter(scope).annotate(**group).values(*group, "model").annotate(
        participated=Count("pk", filter=decided),
        wins=Count("pk", filter=decided & Q(is_winner=True)),
        calls=Count("pk", filter=~Q(status=CallStatus.CANCELLED)),
        failed_calls=Count("pk", filter=Q(status__in=CALL_FAILURES)),
        ok_calls=Count("pk", filter=Q(status=CallStatus.OK)),
        generation_cost_usd=_known_cost("cost_usd"),
        generation_costed_calls=Count("pk", filter=Q(cost_usd__isnull=False)),
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
        ballot_cost_usd=_known_cost("cost_usd"),
        ballot_costed_calls=Count("pk", filter=Q(cost_usd__isnull=False)),
    ).order_by()


def preference_counts(scope: Q, *, by_day: bool = False) -> QuerySet:
    """Return per [day, ensemble,] voter model, number of candidates shown and slot: the
    preferences it gave there, and of those on another model's candidate in a request with a
    winner, how many went to the winner (judges.VoterAudit)."""
    group = _day_group(by_day)
    other_decided = Q(is_self=False, request__winner_index__isnull=False)
    # A preference counts only with an acceptance (ensemble.voting): both are asked, so that an
    # old row written otherwise cannot count as a preference the tally ignored.
    return (BallotMark.objects.filter(scope, accepted=True, preferred=True)
            .annotate(**group, shown=JsonArrayLength("ballot__shown_order"))
            .values(*group, "voter_model", "shown", "position").annotate(
                preferences=Count("pk"),
                agreement_ballots=Count("pk", filter=other_decided),
                agreed_with_winner=Count("pk", filter=other_decided & Q(candidate__is_winner=True)),
            ).order_by())


def request_costs(requests: QuerySet, *, by_day: bool = False):
    """Return [per day and ensemble] the top-level `requests` with a known cost and their cost: a
    nested ensemble's request is part of its parent's (cost_per_request)."""
    costed = requests.filter(parent__isnull=True, cost_total__isnull=False).order_by()
    sums = {"costed_requests": Count("pk"), "cost_usd": _known_cost("cost_total")}
    if not by_day:
        return costed.aggregate(**sums)
    return costed.annotate(day=TimeBucket("created_at", "day")).values("day", "ensemble").annotate(**sums)


def pair_counts(scope: Q, *, by_day: bool = False) -> QuerySet:
    """Return per [day, ensemble,] (winner, loser): ballots that ranked winner's candidate above loser's (PAIR RULE)."""
    group = _day_group(by_day)
    # Each mark joined to the other marks of its ballot. The winning mark is accepted and not the
    # judge's own; the losing one is not accepted, or the winning one is preferred and it is not.
    # `counted` is left out on purpose: which marks count for the winner is the self-vote
    # policy's business, which pairs count for ratings is the PAIR RULE's (leaderboard.standing).
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
