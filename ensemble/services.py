"""Orchestration of one completion: fan out → aggregate → decide → persist.

Nothing touches the database until the answer is decided; then the whole history of the request
is written in one transaction (`completion_record`), nested ensembles' requests included.

No exception loses a request once its fan-out began: `_run` is the one guarded place. A bug in
reading a ballot, tallying or deciding (anything but cancellation) is logged with the request id,
and the request is decided by `_fall_back` from what was gathered: the first candidate that
answered, in ensemble order (the ranking's last tie-break), wins with status `partial`, or, if none
answered, the request is `failed`; either way its error names the internal error, and it is stored
with every candidate and ballot gathered so far.

How the answers become one reply depends on the ensemble's aggregation method (see
ensemble.aggregation): acceptance voting, a judge's ballot, a synthesizer's combined answer, one
randomly chosen member, every answer concatenated, or a plain model passed through. A nested
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

from . import aggregation, ballot_formats, structured, voting
from .admission import admission_release
from .backend import (
    BackendClient, BackendError, BackendHTTPError, BackendTimeout, BackendUnavailable, ChatResult,
    client_for_running_loop, monotonic_ms,
)
from .catalog.spec import Ensemble
from .metrics import completion_observe
from .recording import completion_record_async
from .outcomes import BallotResult, CandidateResult, CompletionOutcome
from .rounds import RoundPolicy, run_round
from .tools import tool_choice_unmet

logger = logging.getLogger(__name__)

# Parameters a caller may set that are passed to every member's generation call and the
# synthesizer's (not to ballots, which are asked in a ballot format: ensemble.ballot_formats).
GENERATION_PARAMS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "response_format", "tools", "tool_choice", "parallel_tool_calls",
)


# Statuses worth one retry: the backend says "not now", not "never".
RETRY_STATUSES = (429, 503)


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
    names = GENERATION_PARAMS + (("n",) if ensemble.aggregation == aggregation.PASSTHROUGH else ())
    return {k: params[k] for k in names if k in params}


def _new_outcome(ensemble: Ensemble, messages: list[dict], params: dict, api_key_id: int | None,
                 parent: CompletionOutcome | None = None) -> CompletionOutcome:
    return CompletionOutcome(
        id=uuid.uuid4(), created_at=timezone.now(), ensemble=ensemble, messages=messages, params=params,
        api_key_id=api_key_id, parent_id=parent.id if parent else None,
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
    """Generate, aggregate and decide `outcome` in place; nothing is stored here. An unexpected
    exception is not raised: `outcome` is decided by `_fall_back` instead (see the module docstring)."""
    started = time.monotonic()
    stage = "generation"
    try:
        await _generate_all(outcome, client, deadline_at)
        outcome.generation_ms = monotonic_ms(started)
        aggregate = _AGGREGATE.get(outcome.ensemble.aggregation)
        if aggregate is not None and sum(c.ok for c in outcome.candidates) > 1:
            stage = outcome.ensemble.aggregation
            aggregating = time.monotonic()
            await aggregate(outcome, client, deadline_at)
            outcome.voting_ms = monotonic_ms(aggregating)
        stage = "the decision"
        _decide(outcome)
    except Exception as exc:  # not CancelledError, a BaseException: a hang-up is handled by the caller
        logger.exception("%s: internal error in %s; decided by the fallback rule", outcome.public_id, stage)
        _fall_back(outcome, f"internal error in {stage} ({type(exc).__name__}, logged with the request id)")
    finally:
        outcome.latency_ms = monotonic_ms(started)


def _fall_back(outcome: CompletionOutcome, error: str) -> None:
    """Decide `outcome` without its vote, after an unexpected error: the answered candidates ranked in
    ensemble order, the first one winning (`partial`), or `failed` if none answered. Tallies are
    cleared, since the error may have left them half counted; ballots and marks stay as gathered.
    The calls it left unfinished stay `cancelled`, which no leaderboard counts against their model:
    Trio stopped them, not the model."""
    for call in (*outcome.candidates, *outcome.ballots):
        if call.status == "cancelled":
            call.error = f"stopped unfinished by the {error}"
    answered = [c for c in outcome.candidates if c.ok]
    for candidate in outcome.candidates:
        candidate.accepted, candidate.preferred, candidate.rank = 0, 0, None
    for rank, candidate in enumerate(answered, start=1):
        candidate.rank = rank
    outcome.winner_index = answered[0].index if answered else None
    outcome.combined = None
    outcome.status = "partial" if answered else "failed"
    outcome.error = f"{error}; " + ("answered unvoted by the first member that answered, in ensemble order"
                                    if answered else "no member had answered")
    outcome.internal_error = True


def _round_policy(size: int, deadline_at: float) -> RoundPolicy:
    grace_seconds, grace_factor = settings.TRIO_STRAGGLER_GRACE
    # All but one, but never a single call: with two voters, "all but one" would let the fastest
    # ballot alone decide the vote.
    quorum = settings.TRIO_QUORUM or max(size - 1, min(size, 2))
    return RoundPolicy(quorum, grace_seconds, grace_factor, deadline_at)


def _positions(outcome: CompletionOutcome) -> list[int]:
    """Return the ensemble positions of the members that answer: all, or for `random` the chosen one."""
    size = len(outcome.ensemble.members)
    if outcome.ensemble.aggregation == aggregation.RANDOM:
        return [aggregation.random_member(outcome.id.hex, size)]
    return list(range(size))


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

    calls = [generate(i, p) for i, p in enumerate(positions)]
    nested = frozenset(i for i, p in enumerate(positions) if outcome.ensemble.subensemble(p) is not None)
    try:
        abandoned = await run_round(calls, _round_policy(len(calls), deadline_at), patient=nested)
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
        return _held_to_format(await _generate_nested(client, index, inner, messages, outcome, deadline_at), outcome)
    candidate = await _call(client, index, ensemble.members[position], messages, outcome.params, ensemble.timeout,
                            deadline_at)
    return _held_to_format(candidate, outcome)


def _held_to_format(candidate: CandidateResult, outcome: CompletionOutcome) -> CandidateResult:
    """Return `candidate`, failed if it calls no tool (or another one) where `tool_choice` demands a
    call, or if the client asked for JSON and it answered something else.

    A pass-through model's answer is relayed as the backend gave it: there is nothing to choose.
    An answer with tool calls is held to no format: it asks the client to run a tool first. Nor is
    one cut off at the client's own token limit (`length`): its JSON is unfinished, and OpenAI
    answers it as it is, with that finish reason.
    """
    if not candidate.ok or outcome.ensemble.aggregation == aggregation.PASSTHROUGH:
        return candidate
    unmet = tool_choice_unmet(outcome.params, candidate.tool_calls)
    if unmet:
        return dataclasses.replace(candidate, status="error", reason="tool_choice_unmet",
                                   error=f"{candidate.model}: {unmet}")
    if not structured.asks_for_json(outcome.params) or candidate.tool_calls or candidate.finish_reason == "length":
        return candidate
    text = structured.json_object_text(candidate.content)
    if text is None:
        return dataclasses.replace(
            candidate, status="error", reason="not_json",
            error=f"{candidate.model}: the answer is not a JSON object, which response_format asked for",
        )
    candidate.content = text
    return candidate


def _with_system_prompt(messages: list[dict], prompt: str) -> list[dict]:
    return [{"role": "system", "content": prompt}, *messages] if prompt else messages


async def _call(client, index: int, model: str, messages: list[dict], params: dict, timeout: float,
                deadline_at: float) -> CandidateResult:
    """Return candidate `index`: what one backend call of `model` answered, or why it did not."""
    started = time.monotonic()
    try:
        result = await _chat(client, model, messages, params, timeout, deadline_at)
    except BackendError as exc:
        return CandidateResult(index, model, exc.call_status, error=str(exc), latency_ms=monotonic_ms(started),
                               reason=exc.reason, retry_after=exc.retry_after)
    return CandidateResult(
        index, model, "ok", content=result.content, tool_calls=result.tool_calls,
        finish_reason=result.finish_reason, latency_ms=monotonic_ms(started), usage=result.usage,
        backend_body=result.body,
    )


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
                                usage=inner.total_usage, request_id=inner.id)
    if not inner.answered:
        candidate.status = "timeout" if inner.all_timed_out else "error"
        candidate.error = f"{inner.public_id}: {inner.error}"
        return candidate
    reply = inner.replies(1)[0]
    candidate.content, candidate.finish_reason = reply.content, reply.finish_reason
    candidate.tool_calls = reply.tool_calls
    return candidate


async def _chat(client, model, messages, params, timeout: float, deadline_at: float) -> ChatResult:
    """Return one backend completion, retrying once after a refused connection, 429 or 503."""
    admission_release()  # waiting on the backend now: let the next request in
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


# --- aggregation: what happens once more than one member has answered --------------------------

async def _vote_all(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.ballots`: every successful member judges every successful candidate.

    A nested ensemble votes through its lead model (its first backend member).
    """
    eligible = [c for c in outcome.candidates if c.ok]
    nonce = voting.fence_nonce(c.text for c in eligible)
    outcome.ballots = []
    for voter in eligible:
        shuffled = voting.ballot_order(outcome.id.hex, voter.index, len(eligible))
        shown = [eligible[j].index for j in shuffled]
        voter_model = outcome.ensemble.lead_model(voter.index)
        outcome.ballots.append(BallotResult(voter.index, voter_model, shown, status="cancelled"))
    started = time.monotonic()

    async def vote(slot: int) -> bool:
        outcome.ballots[slot] = await _ballot(client, outcome.ballots[slot], outcome, nonce, deadline_at)
        return outcome.ballots[slot].status == "ok"

    slots = range(len(outcome.ballots))
    for slot in await run_round([vote(s) for s in slots], _round_policy(len(slots), deadline_at)):
        pending = outcome.ballots[slot]
        pending.status, pending.latency_ms = "late", monotonic_ms(started)
        pending.error = "abandoned: the quorum had voted and the grace period ran out"


async def _judge(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.ballots` with the judge's ballot, the only one (voter index: after the members)."""
    eligible = [c for c in outcome.candidates if c.ok]
    judge_index = len(outcome.ensemble.members)
    shuffled = voting.ballot_order(outcome.id.hex, judge_index, len(eligible))
    pending = BallotResult(judge_index, outcome.ensemble.judge_model, [eligible[j].index for j in shuffled],
                           status="cancelled")
    outcome.ballots = [pending]
    nonce = voting.fence_nonce(c.text for c in eligible)
    outcome.ballots[0] = await _ballot(client, pending, outcome, nonce, deadline_at)


async def _synthesize(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Append the synthesizer's combined answer to `outcome.candidates` (index: after the members)."""
    texts = [c.text for c in outcome.candidates if c.ok]
    prompt = aggregation.synthesis_messages(outcome.messages, texts, voting.fence_nonce(texts), _quote_limits())
    index, model = len(outcome.candidates), outcome.ensemble.synthesize_model
    outcome.candidates.append(CandidateResult(index, model, "cancelled"))
    combined = await _call(client, index, model, prompt, outcome.params, outcome.ensemble.timeout, deadline_at)
    outcome.candidates[index] = _held_to_format(combined, outcome)


def _quote_limits() -> voting.QuoteLimits:
    return voting.QuoteLimits(settings.TRIO_BALLOT_QUOTE_CHARS, settings.TRIO_BALLOT_PROMPT_QUOTE_CHARS)


_AGGREGATE = {aggregation.ACCEPTANCE_VOTING: _vote_all, aggregation.JUDGE: _judge,
              aggregation.SYNTHESIZE: _synthesize}


async def _ballot(client, ballot: BallotResult, outcome: CompletionOutcome, nonce: str,
                  deadline_at: float) -> BallotResult:
    """Return `ballot`, the voter's placeholder (`cancelled` until answered), with the voter's
    reply, the marks it means (`ok`), or why there are none (`unparseable`, `timeout`, `error`)."""
    started = time.monotonic()
    try:
        result = await _ballot_reply(client, ballot, outcome, nonce, deadline_at)
    except BackendError as exc:
        ballot.status = exc.call_status
        ballot.error, ballot.latency_ms = str(exc), monotonic_ms(started)
        return ballot
    ballot.latency_ms, ballot.raw_text, ballot.usage = monotonic_ms(started), result.content, result.usage
    try:
        parsed = voting.read_ballot(result.content, len(ballot.shown_order))
    except voting.UnreadableBallot as exc:
        ballot.status, ballot.error = "unparseable", str(exc)
        return ballot
    ballot.marks = voting.ballot_marks(ballot.voter_index, parsed, ballot.shown_order)
    ballot.status, ballot.error = "ok", parsed.note  # the numbers it named that were no candidate: ignored
    return ballot


async def _ballot_reply(client, ballot: BallotResult, outcome: CompletionOutcome, nonce: str,
                        deadline_at: float) -> ChatResult:
    """Return the voter's reply to its ballot, asked in the format it answers (TRIO_BALLOT_FORMAT;
    see ensemble.ballot_formats), and set `ballot.format` to the format asked. Under `auto`, a
    format the backend refuses is asked again at once in the next one, within the same deadline."""
    setting, model = settings.TRIO_BALLOT_FORMAT, ballot.voter_model
    shown_texts = [outcome.candidates[i].text for i in ballot.shown_order]
    formats = ballot_formats.formats_for(setting, model)
    for ballot_format in formats:
        ballot.format = ballot_format.name
        prompt = voting.ballot_messages(outcome.messages, shown_texts, nonce, _quote_limits(),
                                        instructions=ballot_format.instructions)
        params = {"temperature": 0, "max_tokens": settings.TRIO_BALLOT_MAX_TOKENS, **ballot_format.params}
        try:
            result = await _chat(client, model, prompt, params, outcome.ensemble.timeout, deadline_at)
        except BackendHTTPError as exc:
            body = str(exc).removeprefix(f"{model}: ")  # the model's name is no part of what the server said
            if ballot_format is formats[-1] or not ballot_formats.is_refusal(exc.status_code, body):
                raise
            logger.warning("%s refused a ballot in %s (%s); asking it in the next format", model,
                           ballot_format.name, body)
            continue
        ballot_formats.remember(setting, model, ballot_format)
        return result
    raise AssertionError("unreachable: the last format's error is raised")


def _failure(candidate: CandidateResult) -> str:
    """Return `model: why` for a failed candidate (the backend's own messages name the model already)."""
    why = candidate.error or candidate.status
    return why if why.startswith(f"{candidate.model}: ") else f"{candidate.model}: {why}"


def _decide(outcome: CompletionOutcome) -> None:
    """Set tallies, ranks, the winner (or `concat`'s joined reply) and the status of `outcome`."""
    succeeded = [c for c in outcome.candidates if c.ok]
    if not succeeded:
        outcome.status = "failed"
        outcome.error = "; ".join(_failure(c) for c in outcome.candidates)
        return
    outcome.status = "ok" if len(succeeded) == len(outcome.candidates) else "partial"
    if outcome.ensemble.aggregation == aggregation.CONCAT:
        outcome.combined = aggregation.concat_reply([(c.model, c.text) for c in succeeded])
        return
    marks = [m for b in outcome.ballots if b.status == "ok" for m in b.marks]
    totals = voting.tally((c.index for c in succeeded), marks, self_vote=outcome.ensemble.self_vote)
    ranking = voting.rank(totals)
    synthesized = len(outcome.candidates) > len(outcome.ensemble.members) and outcome.candidates[-1].ok
    if outcome.ensemble.aggregation == aggregation.SYNTHESIZE and synthesized:
        # The combined answer wins; the members' answers follow in the tie-break order.
        ranking = [outcome.candidates[-1].index] + [i for i in ranking if i != outcome.candidates[-1].index]
    for rank, index in enumerate(ranking, start=1):
        candidate = outcome.candidates[index]
        candidate.accepted, candidate.preferred, candidate.rank = totals[index].accepted, totals[index].preferred, rank
    outcome.winner_index = ranking[0]
    if outcome.ensemble.aggregation in aggregation.VOTING_METHODS:
        outcome.consensus = voting.consensus(totals, marks, ranking[0], low_below=settings.TRIO_LOW_CONSENSUS)
