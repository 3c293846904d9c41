"""The Responses API's read of a stored response: a top-level request and the answer it gave."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce

from ..formats.usage import Usage
from ..db import releases_connection
from ..models import ANSWERED, CallStatus, Candidate, CompletionRequest
from ..formats.tools import answer_text
from ..voting import Consensus
from ..voting.methods import method_named
from .reads import parse_request_id


@dataclass(frozen=True)
class StoredResponse:
    """A stored top-level request as the Responses API sees it: the request and the answer it gave."""

    request: CompletionRequest
    answer: dict | None = None  # the assistant message (text, tool calls); None when it has none
    finish_reason: str = ""
    usage: Usage = field(default_factory=Usage)

    @property
    def consensus(self) -> Consensus | None:
        """Return the consensus stored with the request, or None (no ballots, or stored before consensus was)."""
        request = self.request
        if request.consensus_low is None:
            return None
        return Consensus(request.consensus_score, request.consensus_preferred_share, request.consensus_margin,
                         request.consensus_low)


@releases_connection
def stored_response(*, response_id: str, api_key_id: int | None) -> StoredResponse | None:
    """Return the top-level request `response_id` (`trio-<hex>`) made with the API key `api_key_id` (None:
    without a stored key) and its answer: the winner's, or `concat`'s joined one; None when there is no
    such request (two queries)."""
    request_id = parse_request_id(response_id)
    request = request_id and CompletionRequest.objects.filter(
        pk=request_id, parent__isnull=True, api_key_id=api_key_id).first()
    if not request:
        return None
    if request.status not in ANSWERED:
        return StoredResponse(request)
    answered = list(request.candidates.filter(status=CallStatus.OK).order_by("index"))
    method = method_named(request.aggregation_method)
    if method.joins_answers:
        text = method.combined_reply([(c.model, answer_text(c.content, c.tool_calls)) for c in answered])
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
