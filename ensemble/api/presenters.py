"""Shape a `CompletionOutcome` as OpenAI chat.completion bodies and chunks, and the X-Trio-Details and
X-Trio-Consensus headers."""
from __future__ import annotations

import json
import re

from ..formats.costs import cost_number
from ..formats.usage import Usage
from ..outcomes import BallotResult, CandidateResult, CompletionOutcome, Reply
from ..voting import Consensus

# nginx's default proxy buffer is 4-8 KiB and many load balancers cap a header near there; the
# full details always travel in the body under "trio".
DETAILS_HEADER_MAX_BYTES = 8 * 1024
# Streamed answers are cut into pieces of about this many characters, at word boundaries.
CHUNK_CHARS = 64


def chat_completion_body(outcome: CompletionOutcome, n: int = 1) -> dict:
    """Return the OpenAI `chat.completion` object for a decided outcome, with details under `trio`.

    A pass-through request is answered with the backend's own JSON, whatever fields it carries
    (Trio forwards the sampling parameters, `response_format` and `tools`, not `logprobs`), its `id`
    and `model` those of the stored request.
    """
    if outcome.ensemble.method.passes_through and outcome.winner and outcome.winner.backend_body:
        return {**outcome.winner.backend_body, "id": outcome.public_id, "model": outcome.ensemble.name}
    replies = outcome.replies(n)
    body = {
        **_envelope(outcome, "chat.completion"),
        "choices": [
            {
                "index": index,
                "message": _message(reply),
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
            for index, reply in enumerate(replies)
        ],
        "usage": _usage(replies).as_dict(),
    }
    if not outcome.ensemble.method.passes_through:
        body["trio"] = details(outcome, n)
    return body


def _message(reply: Reply) -> dict:
    """Return the assistant message of one choice: its text (null when it only calls tools), its tool calls."""
    if not reply.tool_calls:
        return {"role": "assistant", "content": reply.content, "refusal": None}
    return {"role": "assistant", "content": reply.content or None, "refusal": None, "tool_calls": reply.tool_calls}


def chat_completion_chunks(outcome: CompletionOutcome, n: int = 1, *, include_usage: bool = False) -> list[dict]:
    """Return the `chat.completion.chunk` objects streaming a decided outcome's answer.

    Per choice a role chunk, content chunks and one chunk per tool call (whole, as OpenAI's `delta.tool_calls`
    with its index); then each choice's finish chunk, the last one carrying the details under `trio`;
    then, if asked for, the usage chunk (no choices).
    """
    envelope = _envelope(outcome, "chat.completion.chunk")
    if include_usage:
        envelope["usage"] = None  # as OpenAI does: every chunk but the last says "not here"
    replies = outcome.replies(n)

    def chunk(index: int, delta: dict, finish_reason: str | None = None) -> dict:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**envelope, "choices": [choice]}

    chunks = []
    for index, reply in enumerate(replies):
        chunks.append(chunk(index, {"role": "assistant", "content": None if reply.tool_calls else "",
                                    "refusal": None}))
        chunks += [chunk(index, {"content": piece}) for piece in text_pieces(reply.content)]
        chunks += [chunk(index, {"tool_calls": [{"index": position, **call}]})
                   for position, call in enumerate(reply.tool_calls)]
    chunks += [chunk(index, {}, reply.finish_reason) for index, reply in enumerate(replies)]
    if not outcome.ensemble.method.passes_through:
        chunks[-1]["trio"] = details(outcome, n)
    if include_usage:
        chunks.append({**envelope, "choices": [], "usage": _usage(replies).as_dict()})
    return chunks


def text_pieces(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Return `text` cut into pieces of about `size` characters, at whitespace where possible."""
    pieces, current = [], ""
    for word in re.findall(r"\s*\S+\s*|\s+", text):
        if current and len(current) + len(word) > size:
            pieces.append(current)
            current = ""
        current += word
    return pieces + [current] if current else pieces


def _envelope(outcome: CompletionOutcome, kind: str) -> dict:
    return {
        "id": outcome.public_id,
        "object": kind,
        "created": int(outcome.created_at.timestamp()),
        "model": outcome.ensemble.name,
        "system_fingerprint": None,
    }


def _usage(replies: list[Reply]) -> Usage:
    """Return the usage a single model would report for `replies`: the prompt once, every completion."""
    if len(replies) <= 1:
        return replies[0].usage if replies else Usage()
    prompt = replies[0].usage.prompt_tokens
    completion = sum(r.usage.completion_tokens for r in replies)
    return Usage(prompt, completion, prompt + completion)


def details(outcome: CompletionOutcome, n: int = 1) -> dict:
    """Return everything about the vote: candidates, ballots, consensus, timings and total usage."""
    body = {
        "request_id": outcome.public_id,
        "ensemble": outcome.ensemble.name,
        "aggregation_method": outcome.ensemble.aggregation,
        "status": outcome.status,
        "winner_index": outcome.winner_index,
        "consensus": consensus_body(outcome.consensus),
        "self_vote": outcome.ensemble.self_vote,
        "latency_ms": outcome.latency_ms,
        "generation_ms": outcome.generation_ms,
        "voting_ms": outcome.voting_ms,
        "usage_total": outcome.total_usage.as_dict(),
        **cost_body(outcome.cost_total, outcome.cost_unknown_calls),
        "candidates": [_candidate(c) for c in outcome.candidates],
        "ballots": [_ballot(b) for b in outcome.ballots],
    }
    if n > 1:
        returned = len(outcome.replies(n))
        body["choices_requested"], body["choices_returned"] = n, returned
        if returned < n:
            body["choices_note"] = (f"n={n} asked for more answers than the ensemble has ({returned}); "
                                    "every answer is returned, best first.")
    return body


def _candidate(c: CandidateResult) -> dict:
    return {
        "index": c.index, "model": c.model, "status": c.status,
        "response": c.text if c.ok else None, "error": c.error or None,
        "accepted": c.accepted, "preferred": c.preferred, "rank": c.rank,
        "finish_reason": c.finish_reason or None, "latency_ms": c.latency_ms,
        "usage": c.usage.as_dict(), "cost_usd": cost_number(c.cost_usd),
        **({"request_id": f"trio-{c.request_id.hex}"} if c.request_id else {}),
    }


def _ballot(b: BallotResult) -> dict:
    return {
        "voter_index": b.voter_index, "voter_model": b.voter_model, "status": b.status,
        "shown_order": b.shown_order,
        "accepted": [m.candidate for m in b.marks if m.accepted],
        "preferred": next((m.candidate for m in b.marks if m.preferred), None),
        "raw_text": b.raw_text, "error": b.error or None, "latency_ms": b.latency_ms,
        "usage": b.usage.as_dict(), "cost_usd": cost_number(b.cost_usd),
    }


def cost_body(total, unknown_calls: int) -> dict:
    """Return `trio.cost_total` (USD, a JSON number; null when no call's cost is known) and, when some
    calls' cost is unknown, `trio.cost_unknown_calls`: the total is then a lower bound."""
    body = {"cost_total": cost_number(total)}
    if unknown_calls:
        body["cost_unknown_calls"] = unknown_calls
    return body


def consensus_body(consensus: Consensus | None) -> dict | None:
    """Return `trio.consensus`: its four figures, or None for a method without ballots."""
    return consensus.as_dict() if consensus else None


def consensus_header(outcome: CompletionOutcome) -> str | None:
    """Return the X-Trio-Consensus value, the consensus score with 2 decimals; None without a score
    (a method without ballots, or no other voter's parsed ballot)."""
    score = outcome.consensus.score if outcome.consensus else None
    return None if score is None else f"{score:.2f}"


def details_header(outcome: CompletionOutcome, limit: int = DETAILS_HEADER_MAX_BYTES) -> str:
    """Return the X-Trio-Details JSON (ASCII), responses truncated so it fits in `limit` bytes."""
    candidates = [
        {"model": c.model, "response": c.text if c.ok else None, "accepted": c.accepted,
         "preferred": c.preferred, "status": c.status}
        for c in outcome.candidates
    ]
    header = {"winner_index": outcome.winner_index, "request_id": outcome.public_id, "candidates": candidates}
    text = json.dumps(header, separators=(",", ":"))
    # First try an equal share of the limit per candidate, then halve while it does not fit.
    texts = [c.text for c in outcome.candidates]
    budget = 2 * min(limit // max(len(candidates), 1), max((len(text) for text in texts), default=0))
    while len(text) > limit and budget > 0:
        # Non-ASCII text grows up to 6x when escaped, so shrink until the encoded form fits.
        budget //= 2
        for candidate, source, source_text in zip(candidates, outcome.candidates, texts):
            if source.ok and len(source_text) > budget:
                candidate["response"] = source_text[:budget]
                candidate["truncated"] = True
        header["truncated"] = True
        text = json.dumps(header, separators=(",", ":"))
    return text
