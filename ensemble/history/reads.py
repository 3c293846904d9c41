"""Reads behind the vote history pages: the filtered list, its count and deep pages, the filter
choices, and one request with its candidates, ballots and ballot matrix."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from .. import voting
from ..models import Ballot, BallotMark, Candidate, CompletionRequest
from ..formats.tools import answer_text
from .filters import RequestFilter

# Columns fetched for history rows: never the conversation or answers (large JSON/text).
HISTORY_FIELDS = ("id", "created_at", "ensemble", "prompt_excerpt", "status", "winner_model",
                  "winner_index", "voter_count", "latency_ms", "total_tokens", "consensus_score", "consensus_low")


def request_history(
    *, model: str = "", status: str = "", date_from: date | None = None, date_to: date | None = None,
    search: str = "", low_consensus: bool = False, request_filter: RequestFilter | None = None,
) -> QuerySet[CompletionRequest]:
    """Return requests newest first, filtered, each with `winner_accepted` (the winner's acceptances).

    `low_consensus` keeps the answers whose consensus was low (`voting.consensus`), through the
    partial index of those rows alone; `request_filter` the tags, user and key (history.filters).
    """
    requests = _with_winner_accepted(CompletionRequest.objects.only(*HISTORY_FIELDS))
    if request_filter:
        requests = requests.filter(request_filter.q())
    if model:
        # "The model had a candidate": EXISTS, one probe per request of the (model, request)
        # index, so counting every match reads no candidate row and newest-first pages stop early.
        requests = requests.filter(Exists(Candidate.objects.filter(request=OuterRef("pk"), model=model)))
    if status:
        requests = requests.filter(status=status)
    if low_consensus:
        requests = requests.filter(consensus_low=True)
    if date_from:
        requests = requests.filter(created_at__gte=_day_start(date_from))
    if date_to and date_to < date.max:  # the last representable day has no next day: no bound
        requests = requests.filter(created_at__lt=_day_start(date_to + timedelta(days=1)))
    if search:
        matches = Q(prompt_excerpt__icontains=search)
        if request_id := parse_request_id(search):  # the id a client was answered with, in error messages too
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


def parse_request_id(text: str) -> uuid.UUID | None:
    """Return the request id `text` spells (a public id `trio-<hex>`, or the UUID itself), or None."""
    try:
        return uuid.UUID(text.lower().removeprefix("trio-"))
    except ValueError:
        return None


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
    """Return one request with its feedback, candidates, ballots, ballot matrix and nested requests (five queries), or None."""
    nested = Prefetch("children", CompletionRequest.objects.only("id", "ensemble", "parent_id"))
    # The feedback (at most one, with who gave it) comes in the request's own query.
    request = (CompletionRequest.objects.filter(pk=request_id)
               .select_related("feedback__preferred_candidate", "feedback__user", "feedback__api_key")
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
