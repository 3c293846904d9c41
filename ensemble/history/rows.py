"""The rows a completion is stored as: one request, its candidates, its ballots and their marks, as
plain dicts for the `RowInserter`s below, with backend text made storable and token counts capped."""
from __future__ import annotations

from decimal import Decimal

from .. import voting
from ..formats.text import last_user_text
from ..formats.usage import MAX_TOKEN_COUNT, Usage
from ..models import Ballot, BallotMark, Candidate, CompletionRequest, RequestTag
from ..outcomes import BallotResult, CandidateResult, CompletionOutcome
from .inserts import RowInserter

REQUESTS = RowInserter(CompletionRequest, [
    "id", "created_at", "ensemble", "members", "messages", "params", "prompt_excerpt", "status", "error",
    "winner_model", "winner_index", "voter_count", "latency_ms", "generation_ms", "voting_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "api_key_id", "aggregation_method", "parent_id",
    "consensus_score", "consensus_preferred_share", "consensus_margin", "consensus_low",
    "cost_total", "cost_unknown_calls", "metadata", "user",
])
TAGS = RowInserter(RequestTag, ["request_id", "key", "value"])  # each metadata pair, for ?tag= filters
CANDIDATES = RowInserter(Candidate, [
    "request_id", "index", "model", "content", "tool_calls", "status", "error", "finish_reason", "latency_ms",
    "accepted_count", "preferred_count", "rank", "is_winner", "prompt_tokens", "completion_tokens",
    "total_tokens", "cost_usd",
], returning_pk=True)
BALLOTS = RowInserter(Ballot, [
    "request_id", "voter_index", "voter_model", "shown_order", "raw_text", "status", "error", "latency_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "format", "cost_usd",
], returning_pk=True)
MARKS = RowInserter(BallotMark, [
    "ballot_id", "request_id", "candidate_id", "voter_model", "author_model", "position", "accepted", "preferred",
    "is_self", "counted",
])


def request_row(outcome: CompletionOutcome) -> dict:
    winner = outcome.winner
    return dict(
        id=outcome.id, created_at=outcome.created_at, ensemble=outcome.ensemble.name,
        members=list(outcome.ensemble.members), messages=outcome.messages, params=outcome.params,
        prompt_excerpt=last_user_text(outcome.messages)[:300], status=outcome.status,
        error=_storable(outcome.error), winner_model=winner.model if winner else "",
        winner_index=outcome.winner_index, voter_count=outcome.counted_ballots,
        latency_ms=outcome.latency_ms, generation_ms=outcome.generation_ms,
        voting_ms=outcome.voting_ms, **_usage_columns(outcome.total_usage),
        api_key_id=outcome.api_key_id, aggregation_method=outcome.ensemble.aggregation,
        parent_id=outcome.parent_id, **_consensus_columns(outcome.consensus),
        cost_total=_storable_cost(outcome.cost_total), cost_unknown_calls=outcome.cost_unknown_calls,
        metadata=outcome.metadata, user=outcome.user,
    )


def _consensus_columns(consensus: voting.Consensus | None) -> dict:
    """Return the request row's consensus columns (`consensus_<field>`): all null without a consensus."""
    fields = consensus.as_dict() if consensus else dict.fromkeys(("score", "preferred_share", "margin", "low"))
    return {f"consensus_{name}": value for name, value in fields.items()}


def candidate_row(outcome: CompletionOutcome, c: CandidateResult) -> dict:
    return dict(
        request_id=outcome.id, index=c.index, model=c.model, content=_storable(c.content),
        tool_calls=[_storable_tool_call(call) for call in c.tool_calls], status=c.status,
        error=_storable(c.error), finish_reason=_storable(c.finish_reason)[:FINISH_REASON_MAX], latency_ms=c.latency_ms,
        accepted_count=c.accepted, preferred_count=c.preferred, rank=c.rank,
        is_winner=c.index == outcome.winner_index, **_usage_columns(c.usage), cost_usd=_storable_cost(c.cost_usd),
    )


# The backend's word, kept as it came; PostgreSQL refuses a longer value than the column holds.
FINISH_REASON_MAX = Candidate._meta.get_field("finish_reason").max_length


def ballot_row(outcome: CompletionOutcome, b: BallotResult) -> dict:
    return dict(
        request_id=outcome.id, voter_index=b.voter_index, voter_model=b.voter_model,
        shown_order=b.shown_order, raw_text=_storable(b.raw_text), status=b.status, error=_storable(b.error),
        latency_ms=b.latency_ms, **_usage_columns(b.usage), format=b.format, cost_usd=_storable_cost(b.cost_usd),
    )


def mark_row(outcome, ballot: BallotResult, ballot_id, candidate: tuple, position: int, mark) -> dict:
    candidate_id, author_model = candidate
    return dict(
        ballot_id=ballot_id, request_id=outcome.id, candidate_id=candidate_id, voter_model=ballot.voter_model,
        author_model=author_model, position=position, accepted=mark.accepted, preferred=mark.preferred,
        is_self=mark.is_self, counted=voting.counts(mark, self_vote=outcome.ensemble.self_vote),
    )


def _usage_columns(usage: Usage) -> dict:
    """Return `usage` as its three columns, each capped at what the column holds: the counts are
    the backend's (each call's at most MAX_TOKEN_COUNT, PostgreSQL's integer), but a request's sum
    over its calls can pass that, and must not make the database refuse the request's history."""
    return {column: min(count, MAX_TOKEN_COUNT) for column, count in usage.as_dict().items()}



# Each call's cost is at most costs.MAX_CALL_COST_USD, but a request's (or nested ensemble's) sum
# over its calls must still fit the column, or the database would refuse the request's history.
COST_COLUMN_MAX = Decimal(10) ** 8 - Decimal("1e-10")


def _storable_cost(cost: Decimal | None) -> Decimal | None:
    return None if cost is None or cost > COST_COLUMN_MAX else cost


def _storable(text: str) -> str:
    """Return backend-supplied `text` with any NUL replaced by U+FFFD.

    PostgreSQL refuses NUL in text columns, failing the whole batch's write; requests are refused
    with NUL at the API, but answers, ballots and error bodies come from the backend as they are.
    """
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _storable_tool_call(call: dict) -> dict:
    """Return a backend's tool call (as `tools.tool_calls_of` keeps it) with its strings `_storable`:
    PostgreSQL refuses NUL in jsonb too."""
    function = call["function"]
    return {"id": _storable(call["id"]), "type": "function",
            "function": {"name": _storable(function["name"]), "arguments": _storable(function["arguments"])}}

