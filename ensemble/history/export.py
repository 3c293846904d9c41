"""The vote history as JSON Lines or CSV, streamed in constant memory (manage.py export_votes).

JSONL has one request per line with its candidates and ballots (and each ballot's marks) nested, and
its human feedback (or null); CSV has one row per candidate, the request's columns (feedback's
included) repeated on each. Requests come oldest first.
Memory stays flat however long the history: requests are read `chunk_size` at a time, and each
chunk's children are fetched with one query per table (a few queries per chunk, never per request).
"""
from __future__ import annotations

import csv
from datetime import datetime
from decimal import Decimal

import orjson
from django.db.models import Exists, OuterRef, Prefetch, QuerySet

from ..formats.costs import cost_number
from ..models import Ballot, BallotMark, Candidate, CompletionRequest
from .filters import RequestFilter

REQUEST_COLUMNS = (
    "id", "created_at", "ensemble", "status", "error", "winner_model", "winner_index",
    "voter_count", "latency_ms", "generation_ms", "voting_ms", "prompt_tokens",
    "completion_tokens", "total_tokens", "prompt_excerpt", "aggregation_method", "parent_id",
    "cost_total", "cost_unknown_calls",
    "metadata", "user",
)
CANDIDATE_COLUMNS = (
    "index", "model", "status", "error", "is_winner", "rank", "accepted_count", "preferred_count",
    "finish_reason", "latency_ms", "prompt_tokens", "completion_tokens", "total_tokens", "content",
    "tool_calls", "cost_usd",
)
BALLOT_COLUMNS = (
    "voter_index", "voter_model", "shown_order", "status", "error", "raw_text", "latency_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
)
MARK_COLUMNS = ("position", "accepted", "preferred", "is_self", "counted")
FEEDBACK_COLUMNS = ("score", "preferred_index", "comment", "source", "created_at", "updated_at")


def requests_for_export(*, since: datetime | None, model: str | None, chunk_size: int,
                        ensemble: str = "", request_filter: RequestFilter | None = None):
    """Return an iterator over the matching requests, oldest first, children prefetched per chunk;
    `request_filter` keeps the tags, user and key (history.filters)."""
    requests: QuerySet = CompletionRequest.objects.order_by("created_at", "id")
    if ensemble:
        requests = requests.filter(ensemble=ensemble)
    if request_filter:
        requests = requests.filter(request_filter.q())
    if since is not None:
        requests = requests.filter(created_at__gte=since)
    if model:
        # Every member has a candidate row (failed and cancelled calls included), so this is
        # "was a member"; EXISTS keeps one row per request, and uses the (model, status) index.
        requests = requests.filter(Exists(Candidate.objects.filter(request=OuterRef("pk"), model=model)))
    # select_related: the feedback (at most one per request) comes in the requests' own query.
    return requests.select_related("feedback__preferred_candidate").prefetch_related(
        Prefetch("candidates", queryset=Candidate.objects.order_by("index")),
        Prefetch("ballots", queryset=Ballot.objects.order_by("voter_index").prefetch_related(
            Prefetch("marks", queryset=BallotMark.objects.order_by("position")))),
    ).iterator(chunk_size=chunk_size)


def write_jsonl(requests, out) -> int:
    """Write one JSON object per request; return how many were written."""
    count = 0
    for request in requests:
        out.write(orjson.dumps(request_document(request), default=_json_number).decode() + "\n")
        count += 1
    return count


def write_csv(requests, out) -> int:
    """Write one row per candidate (a request without any still gets a row); return the request count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f"request_{c}" for c in REQUEST_COLUMNS] + [f"feedback_{c}" for c in FEEDBACK_COLUMNS]
                    + [f"candidate_{c}" for c in CANDIDATE_COLUMNS])
    count = 0
    for request in requests:
        feedback = _feedback_fields(request) or dict.fromkeys(FEEDBACK_COLUMNS)
        head = [_cell(v) for v in [*_request_fields(request).values(), *feedback.values()]]
        candidates = list(request.candidates.all()) or [None]
        for candidate in candidates:
            tail = _candidate_fields(candidate).values() if candidate else [""] * len(CANDIDATE_COLUMNS)
            writer.writerow(head + [_cell(v) for v in tail])
        count += 1
    return count


def request_document(request: CompletionRequest) -> dict:
    """Return the request as nested plain data: its fields, conversation, candidates and ballots."""
    index_of = {c.pk: c.index for c in request.candidates.all()}
    return {
        **_request_fields(request),
        "members": request.members,
        "messages": request.messages,
        "params": request.params,
        "candidates": [_candidate_fields(c) for c in request.candidates.all()],
        "ballots": [
            {
                **{name: getattr(ballot, name) for name in BALLOT_COLUMNS},
                "marks": [
                    {"candidate_index": index_of[mark.candidate_id], **{n: getattr(mark, n) for n in MARK_COLUMNS}}
                    for mark in ballot.marks.all()
                ],
            }
            for ballot in request.ballots.all()
        ],
        "feedback": _feedback_fields(request),
    }


def _request_fields(request: CompletionRequest) -> dict:
    fields = {name: getattr(request, name) for name in REQUEST_COLUMNS}
    fields["id"] = request.public_id  # the id clients saw in the API response
    fields["parent_id"] = f"trio-{request.parent_id.hex}" if request.parent_id else None  # nested ensembles
    return fields


def _feedback_fields(request: CompletionRequest) -> dict | None:
    """Return the request's feedback as plain data, or None when it has none."""
    feedback = getattr(request, "feedback", None)  # a missing reverse one-to-one raises an AttributeError
    return {name: getattr(feedback, name) for name in FEEDBACK_COLUMNS} if feedback else None


def _candidate_fields(candidate: Candidate) -> dict:
    return {name: getattr(candidate, name) for name in CANDIDATE_COLUMNS}


def _json_number(value):
    """Write a cost (a Decimal, which orjson does not know) as a JSON number; null stays null."""
    if isinstance(value, Decimal):
        return cost_number(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _cell(value) -> str:
    """Return a CSV cell: ISO datetimes, empty for None, lists and objects as JSON, everything else as str()."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return orjson.dumps(value).decode()
    return str(value)
