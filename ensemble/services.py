"""Orchestration of one completion: fan out → vote → decide → persist.

Nothing touches the database until the answer is decided; then the whole history of the request
is written in one transaction (`completion_record`).
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid

from django.conf import settings
from django.utils import timezone

from . import voting
from .backend import (
    BackendClient, BackendError, BackendHTTPError, BackendTimeout, BackendUnavailable, ChatResult,
    client_for_running_loop, monotonic_ms,
)
from .ensembles import Ensemble
from .metrics import completion_observe
from .recording import completion_record_async
from .outcomes import BallotResult, CandidateResult, CompletionOutcome
from .rounds import RoundPolicy, run_round

logger = logging.getLogger(__name__)

# Sampling parameters a caller may set that are passed to every member's generation call.
GENERATION_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty",
)


# Statuses worth one retry: the backend says "not now", not "never".
RETRY_STATUSES = (429, 503)


class NoCandidates(Exception):
    """Every member failed; `.outcome` holds the (already stored) failures."""

    def __init__(self, outcome: CompletionOutcome):
        super().__init__(outcome.error)
        self.outcome = outcome


async def completion_create(
    *, messages: list[dict], params: dict, ensemble: Ensemble, client: BackendClient | None = None,
    api_key_id: int | None = None,
) -> CompletionOutcome:
    """Return the decided and stored outcome of asking `ensemble`; raise NoCandidates if none answered."""
    client = client or client_for_running_loop()
    outcome = CompletionOutcome(
        id=uuid.uuid4(), created_at=timezone.now(), ensemble=ensemble,
        messages=messages, params={k: params[k] for k in GENERATION_PARAMS if k in params},
        api_key_id=api_key_id,
    )
    started = time.monotonic()
    deadline_at = started + settings.TRIO_DEADLINE
    try:
        await _generate_all(outcome, client, deadline_at)
        outcome.generation_ms = monotonic_ms(started)
        if sum(c.ok for c in outcome.candidates) > 1:
            voting_started = time.monotonic()
            await _vote_all(outcome, client, deadline_at)
            outcome.voting_ms = monotonic_ms(voting_started)
        _decide(outcome)
    except asyncio.CancelledError:
        # The client hung up (Django cancels the view). Keep what was learned, then stop.
        outcome.status, outcome.error = "cancelled", "client disconnected before the answer"
        outcome.latency_ms = monotonic_ms(started)
        completion_observe(outcome)
        await asyncio.shield(completion_record_async(outcome))
        raise
    outcome.latency_ms = monotonic_ms(started)
    completion_observe(outcome)
    await completion_record_async(outcome)
    if outcome.winner is None:
        raise NoCandidates(outcome)
    return outcome


def _round_policy(size: int, deadline_at: float) -> RoundPolicy:
    grace_seconds, grace_factor = settings.TRIO_STRAGGLER_GRACE
    # All but one, but never a single call: with two voters, "all but one" would let the fastest
    # ballot alone decide the vote.
    quorum = settings.TRIO_QUORUM or max(size - 1, min(size, 2))
    return RoundPolicy(quorum, grace_seconds, grace_factor, deadline_at)


async def _generate_all(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.candidates`, calling every member in parallel; stragglers end up `late`."""
    members = outcome.ensemble.members
    # Placeholders first: if we are cancelled mid-way, unfinished calls stay recorded as such.
    outcome.candidates = [CandidateResult(index=i, model=m, status="cancelled") for i, m in enumerate(members)]
    started = time.monotonic()

    async def generate(index: int, model: str) -> bool:
        outcome.candidates[index] = await _generate(client, index, model, outcome, deadline_at)
        return outcome.candidates[index].ok

    late = await run_round([generate(i, m) for i, m in enumerate(members)], _round_policy(len(members), deadline_at))
    for index in late:
        outcome.candidates[index] = CandidateResult(
            index, members[index], "late", error="abandoned: the quorum had answered and the grace period ran out",
            latency_ms=monotonic_ms(started),
        )


async def _generate(client, index: int, model: str, outcome: CompletionOutcome, deadline_at: float) -> CandidateResult:
    started = time.monotonic()
    try:
        result = await _chat(client, model, outcome.messages, outcome.params, outcome.ensemble.timeout, deadline_at)
    except BackendError as exc:
        status = "timeout" if exc.reason == "timeout" else "error"
        return CandidateResult(index, model, status, error=str(exc), latency_ms=monotonic_ms(started))
    return CandidateResult(
        index, model, "ok", content=result.content, finish_reason=result.finish_reason,
        latency_ms=monotonic_ms(started), usage=result.usage,
    )


async def _chat(client, model, messages, params, timeout: float, deadline_at: float) -> ChatResult:
    """Return one backend completion, retrying once after a refused connection, 429 or 503."""
    for attempt in (1, 2):
        remaining = deadline_at - time.monotonic()
        if remaining <= 0:
            raise BackendTimeout(f"{model}: the request deadline passed")
        try:
            return await client.chat(model, messages, params, timeout=min(timeout, remaining))
        except (BackendUnavailable, BackendHTTPError) as exc:
            retryable = getattr(exc, "status_code", None) in RETRY_STATUSES or isinstance(exc, BackendUnavailable)
            backoff = settings.TRIO_RETRY_BACKOFF
            if attempt == 2 or not retryable or deadline_at - time.monotonic() < 2 * backoff:
                raise
            await asyncio.sleep(backoff)
    raise AssertionError("unreachable")


async def _vote_all(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.ballots`: every successful member judges every successful candidate."""
    eligible = [c for c in outcome.candidates if c.ok]
    nonce = voting.fence_nonce(c.content for c in eligible)
    outcome.ballots = []
    for voter in eligible:
        shuffled = voting.ballot_order(outcome.id.hex, voter.index, len(eligible))
        shown = [eligible[j].index for j in shuffled]
        outcome.ballots.append(BallotResult(voter.index, voter.model, shown, status="cancelled"))
    started = time.monotonic()

    async def vote(slot: int) -> bool:
        outcome.ballots[slot] = await _ballot(client, outcome.ballots[slot], outcome, nonce, deadline_at)
        return outcome.ballots[slot].status == "ok"

    slots = range(len(outcome.ballots))
    for slot in await run_round([vote(s) for s in slots], _round_policy(len(slots), deadline_at)):
        pending = outcome.ballots[slot]
        pending.status, pending.latency_ms = "late", monotonic_ms(started)
        pending.error = "abandoned: the quorum had voted and the grace period ran out"


async def _ballot(client, pending: BallotResult, outcome: CompletionOutcome, nonce: str,
                  deadline_at: float) -> BallotResult:
    shown_texts = [outcome.candidates[i].content for i in pending.shown_order]
    prompt = voting.ballot_messages(outcome.messages, shown_texts, nonce)
    params = {"temperature": 0, "max_tokens": settings.TRIO_BALLOT_MAX_TOKENS}
    started = time.monotonic()
    ballot = BallotResult(pending.voter_index, pending.voter_model, pending.shown_order, status="ok")
    try:
        result = await _chat(client, pending.voter_model, prompt, params, outcome.ensemble.timeout, deadline_at)
    except BackendError as exc:
        ballot.status = "timeout" if exc.reason == "timeout" else "error"
        ballot.error, ballot.latency_ms = str(exc), monotonic_ms(started)
        return ballot
    ballot.latency_ms, ballot.raw_text, ballot.usage = monotonic_ms(started), result.content, result.usage
    parsed = voting.parse_ballot(result.content, len(pending.shown_order))
    if parsed is None:
        ballot.status, ballot.error = "unparseable", "no ACCEPTED line in the reply"
    else:
        ballot.marks = voting.ballot_marks(pending.voter_index, parsed, pending.shown_order)
    return ballot


def _decide(outcome: CompletionOutcome) -> None:
    """Set tallies, ranks, the winner and the request status from the candidates and ballots."""
    succeeded = [c for c in outcome.candidates if c.ok]
    if not succeeded:
        outcome.status = "failed"
        outcome.error = "; ".join(f"{c.model}: {c.error or c.status}" for c in outcome.candidates)
        return
    marks = [m for b in outcome.ballots if b.status == "ok" for m in b.marks]
    totals = voting.tally((c.index for c in succeeded), marks, self_vote=outcome.ensemble.self_vote)
    for rank, index in enumerate(voting.rank(totals), start=1):
        candidate = outcome.candidates[index]
        candidate.accepted, candidate.preferred, candidate.rank = totals[index].accepted, totals[index].preferred, rank
    outcome.winner_index = voting.rank(totals)[0]
    outcome.status = "ok" if len(succeeded) == len(outcome.candidates) else "partial"
