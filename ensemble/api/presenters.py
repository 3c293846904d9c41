"""Shape a `CompletionOutcome` as an OpenAI chat.completion body and the X-Trio-Details header."""
from __future__ import annotations

import json

from ..outcomes import BallotResult, CandidateResult, CompletionOutcome

# nginx's default proxy buffer is 4-8 KiB and many load balancers cap a header near there; the
# full details always travel in the body under "trio".
DETAILS_HEADER_MAX_BYTES = 8 * 1024


def chat_completion_body(outcome: CompletionOutcome) -> dict:
    """Return the OpenAI `chat.completion` object for a decided outcome, with details under `trio`."""
    winner = outcome.winner
    return {
        "id": outcome.public_id,
        "object": "chat.completion",
        "created": int(outcome.created_at.timestamp()),
        "model": outcome.ensemble.name,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": winner.content, "refusal": None},
                "logprobs": None,
                "finish_reason": winner.finish_reason or "stop",
            }
        ],
        "usage": winner.usage.as_dict(),
        "trio": details(outcome),
    }


def details(outcome: CompletionOutcome) -> dict:
    """Return everything about the vote: candidates, ballots, timings and total usage."""
    return {
        "request_id": outcome.public_id,
        "ensemble": outcome.ensemble.name,
        "status": outcome.status,
        "winner_index": outcome.winner_index,
        "self_vote": outcome.ensemble.self_vote,
        "latency_ms": outcome.latency_ms,
        "generation_ms": outcome.generation_ms,
        "voting_ms": outcome.voting_ms,
        "usage_total": outcome.total_usage.as_dict(),
        "candidates": [_candidate(c) for c in outcome.candidates],
        "ballots": [_ballot(b) for b in outcome.ballots],
    }


def _candidate(c: CandidateResult) -> dict:
    return {
        "index": c.index, "model": c.model, "status": c.status,
        "response": c.content if c.ok else None, "error": c.error or None,
        "accepted": c.accepted, "preferred": c.preferred, "rank": c.rank,
        "finish_reason": c.finish_reason or None, "latency_ms": c.latency_ms,
        "usage": c.usage.as_dict(),
    }


def _ballot(b: BallotResult) -> dict:
    return {
        "voter_index": b.voter_index, "voter_model": b.voter_model, "status": b.status,
        "shown_order": b.shown_order,
        "accepted": [m.candidate for m in b.marks if m.accepted],
        "preferred": next((m.candidate for m in b.marks if m.preferred), None),
        "raw_text": b.raw_text, "error": b.error or None, "latency_ms": b.latency_ms,
        "usage": b.usage.as_dict(),
    }


def details_header(outcome: CompletionOutcome, limit: int = DETAILS_HEADER_MAX_BYTES) -> str:
    """Return the X-Trio-Details JSON (ASCII), responses truncated so it fits in `limit` bytes."""
    candidates = [
        {"model": c.model, "response": c.content if c.ok else None, "accepted": c.accepted,
         "preferred": c.preferred, "status": c.status}
        for c in outcome.candidates
    ]
    header = {"winner_index": outcome.winner_index, "request_id": outcome.public_id, "candidates": candidates}
    text = json.dumps(header, separators=(",", ":"))
    # First try an equal share of the limit per candidate, then halve while it does not fit.
    budget = 2 * min(limit // max(len(candidates), 1), max((len(c.content) for c in outcome.candidates), default=0))
    while len(text) > limit and budget > 0:
        # Non-ASCII text grows up to 6x when escaped, so shrink until the encoded form fits.
        budget //= 2
        for candidate, source in zip(candidates, outcome.candidates):
            if source.ok and len(source.content) > budget:
                candidate["response"] = source.content[:budget]
                candidate["truncated"] = True
        header["truncated"] = True
        text = json.dumps(header, separators=(",", ":"))
    return text
