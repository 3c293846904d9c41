"""One completion, top to bottom: fan out to the members → aggregate (the method's step) → decide →
hand the outcome to history.

Nothing touches the database until the answer is decided; then the whole history of the request
is written in one transaction (`completion_record`), nested ensembles' requests included.

No exception loses a request once its fan-out began: `_run` is the one guarded place. A bug in
reading a ballot, tallying or deciding (anything but cancellation) is logged with the request id,
and the request is decided by `fallback.fall_back` from what was gathered (see its docstring);
either way its error names the internal error, and it is stored with every candidate and ballot
gathered so far.

How the answers become one reply depends on the ensemble's aggregation method (`Ensemble.method`,
see ensemble.voting.methods): acceptance voting, a judge's ballot, a synthesizer's combined answer,
one randomly chosen member, every answer concatenated, or a plain model passed through. A nested
ensemble answers for its member as a request of its own (`parent` set), run inside the outer one.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid

from django.conf import settings
from django.utils import timezone

from ..backend import BackendClient, client_for_running_loop
from ..catalog.prices import prices_current
from ..catalog.spec import Ensemble
from ..formats.usage import monotonic_ms
from ..metrics import completion_observe
from ..history.writer import completion_record_async
from ..outcomes import CandidateResult, CompletionOutcome
from . import calls, steps
from .fallback import fall_back
from .rounds import run_round

logger = logging.getLogger(__name__)

# Parameters a caller may set that are passed to every member's generation call and the
# synthesizer's (not to ballots, which are asked in a ballot format: ensemble.voting.formats).
GENERATION_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice", "parallel_tool_calls",
)


class NoCandidates(Exception):
    """No member answered (or an internal error came first: `outcome.internal_error`); `.outcome`
    holds the (already stored) failures."""

    def __init__(self, outcome: CompletionOutcome):
        super().__init__(outcome.error)
        self.outcome = outcome


async def completion_create(
    *, messages: list[dict], params: dict, ensemble: Ensemble, client: BackendClient | None = None,
    api_key_id: int | None = None, metadata: dict[str, str] | None = None, user: str = "",
) -> CompletionOutcome:
    """Return the decided and stored outcome of asking `ensemble`; raise NoCandidates if none answered.

    `metadata` and `user` are stored with the request (and its nested ensembles' requests) only:
    they describe the client's request, not the question, so no member is sent them.
    """
    client = client or client_for_running_loop()
    outcome = _new_outcome(ensemble, messages, _forwarded(params, ensemble), api_key_id)
    outcome.prices = await prices_current()  # once per request, nested ensembles' included
    outcome.metadata, outcome.user = dict(metadata or {}), user
    deadline_at = time.monotonic() + settings.TRIO_DEADLINE
    try:
        await _run(outcome, client, deadline_at)
    except asyncio.CancelledError:
        # The client hung up (Django cancels the view, or the stream). Keep what was learned, then stop.
        outcome.status, outcome.error = "cancelled", "client disconnected before the answer"
        await _store(outcome)
        raise
    await _store(outcome)
    if not outcome.answered:
        raise NoCandidates(outcome)
    return outcome


def _forwarded(params: dict, ensemble: Ensemble) -> dict:
    """Return the parameters sent to the backend with every generation call.

    `n` goes only to a pass-through model, which answers all n choices itself; an ensemble's
    members answer once each and `n` picks among their ranked answers.
    """
    names = GENERATION_PARAMS + (("n",) if ensemble.method.passes_through else ())
    return {k: params[k] for k in names if k in params}


def _new_outcome(ensemble: Ensemble, messages: list[dict], params: dict, api_key_id: int | None,
                 parent: CompletionOutcome | None = None) -> CompletionOutcome:
    return CompletionOutcome(
        id=uuid.uuid4(), created_at=timezone.now(), ensemble=ensemble, messages=messages, params=params,
        api_key_id=api_key_id, parent_id=parent.id if parent else None,
        prices=parent.prices if parent else {},
        metadata=parent.metadata if parent else {}, user=parent.user if parent else "",
    )


async def _store(outcome: CompletionOutcome) -> None:
    """Store `outcome` (nested ensembles' outcomes with it), then count it in the metrics: stored
    first, so that a bug in counting cannot cost the request its history."""
    try:
        await asyncio.shield(completion_record_async(outcome))
    finally:
        for member in outcome.family():
            completion_observe(member)


async def _run(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fan out, aggregate (the method's step) and decide `outcome` in place; nothing is stored here. An unexpected
    exception is not raised: `outcome` is decided by `fall_back` instead (see the module docstring)."""
    started = time.monotonic()
    stage = "generation"
    try:
        await _generate_all(outcome, client, deadline_at)
        outcome.generation_ms = monotonic_ms(started)
        method = outcome.ensemble.method
        if method.step is not None and sum(c.ok for c in outcome.candidates) > 1:
            stage, aggregating = method.name, time.monotonic()
            await steps.STEPS[method.step](outcome, client, deadline_at)
            outcome.voting_ms = monotonic_ms(aggregating)
        stage = "the decision"
        steps.decide(outcome)
    except Exception as exc:  # not CancelledError, a BaseException: a hang-up is handled by the caller
        logger.exception("%s: internal error in %s; decided by the fallback rule", outcome.public_id, stage)
        fall_back(outcome, f"internal error in {stage} ({type(exc).__name__}, logged with the request id)")
    finally:
        outcome.latency_ms = monotonic_ms(started)


def _positions(outcome: CompletionOutcome) -> list[int]:
    """Return the ensemble positions of the members that answer: all, or for `random` the chosen one."""
    return outcome.ensemble.method.positions(outcome.id.hex, len(outcome.ensemble.members))


async def _generate_all(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.candidates`, calling the answering members in parallel; stragglers end up `late`."""
    positions = _positions(outcome)
    members = outcome.ensemble.members
    # Placeholders first: if we are cancelled mid-way, unfinished calls stay recorded as such.
    outcome.candidates = [CandidateResult(index=i, model=members[p], status="cancelled") for i, p in enumerate(positions)]
    started = time.monotonic()

    async def generate(index: int, position: int) -> bool:
        outcome.candidates[index] = await _generate(client, index, position, outcome, deadline_at)
        return outcome.candidates[index].ok

    generations = [generate(i, p) for i, p in enumerate(positions)]
    nested = frozenset(i for i, p in enumerate(positions) if outcome.ensemble.subensemble(p) is not None)
    try:
        abandoned = await run_round(generations, calls.round_policy(len(generations), deadline_at), patient=nested)
    except asyncio.CancelledError:
        # The client hung up: the calls still running ran until now, not for the placeholders' 0 ms.
        outcome.generation_ms = monotonic_ms(started)
        for index, candidate in enumerate(outcome.candidates):
            if candidate.status == "cancelled":
                outcome.candidates[index] = dataclasses.replace(candidate, latency_ms=outcome.generation_ms)
        raise
    for index in abandoned:
        outcome.candidates[index] = dataclasses.replace(
            outcome.candidates[index], status="late", latency_ms=monotonic_ms(started),
            error="abandoned: the quorum had answered and the grace period ran out",
        )


async def _generate(client, index: int, position: int, outcome: CompletionOutcome,
                    deadline_at: float) -> CandidateResult:
    ensemble = outcome.ensemble
    messages = _with_system_prompt(outcome.messages, ensemble.system_prompt(position))
    inner = ensemble.subensemble(position)
    if inner is not None:
        # Held like a backend member: a nested concat, say, joins JSON answers into prose.
        candidate = await _generate_nested(client, index, inner, messages, outcome, deadline_at)
    else:
        candidate = await calls.call_model(client, index, ensemble.members[position], messages, outcome.params,
                                           ensemble.timeout, deadline_at, outcome.prices)
    return calls.held_to_format(candidate, outcome)


def _with_system_prompt(messages: list[dict], prompt: str) -> list[dict]:
    return [{"role": "system", "content": prompt}, *messages] if prompt else messages


async def _generate_nested(client, index: int, ensemble: Ensemble, messages: list[dict],
                           outcome: CompletionOutcome, deadline_at: float) -> CandidateResult:
    """Return candidate `index` as answered by a nested ensemble, decided as a request of its own.

    Its usage is everything the nested ensemble spent, so the outer request's total stays the cost
    of the whole request.
    """
    inner = _new_outcome(ensemble, messages, outcome.params, outcome.api_key_id, parent=outcome)
    outcome.children.append(inner)
    outcome.candidates[index].request_id = inner.id
    started = time.monotonic()
    try:
        await _run(inner, client, deadline_at)
    except asyncio.CancelledError:
        inner.status, inner.error = "cancelled", "abandoned: the outer ensemble stopped waiting for it"
        raise
    candidate = CandidateResult(index, ensemble.name, "ok", latency_ms=monotonic_ms(started),
                                usage=inner.total_usage, request_id=inner.id, cost_usd=inner.cost_total)
    if not inner.answered:
        candidate.status = "timeout" if inner.all_timed_out else "error"
        candidate.error = f"{inner.public_id}: {inner.error}"
        return candidate
    reply = inner.replies(1)[0]
    candidate.content, candidate.finish_reason = reply.content, reply.finish_reason
    candidate.tool_calls = reply.tool_calls
    return candidate
