"""The backend calls of a completion and the policy they follow: a member's call held to the format
the client asked for, one retry of a call the backend said "not now" to, a round's quorum and
deadline, and a ballot asked in the format its model answers (with the fallback to the next one)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping

from django.conf import settings

from .. import voting
from ..backend import BackendError, BackendHTTPError, BackendTimeout, BackendUnavailable, ChatResult
from ..formats import structured
from ..formats.costs import Price, call_cost
from ..formats.tools import tool_choice_unmet
from ..formats.usage import monotonic_ms
from ..outcomes import BallotResult, CandidateResult, CompletionOutcome
from ..voting import formats as ballot_formats
from .admission import admission_release
from .rounds import RoundPolicy

logger = logging.getLogger(__name__)

# Statuses worth one retry: the backend says "not now", not "never".
RETRY_STATUSES = (429, 503)


def round_policy(size: int, deadline_at: float) -> RoundPolicy:
    """Return the quorum, straggler grace and deadline of a round of `size` calls (TRIO_QUORUM,
    TRIO_STRAGGLER_GRACE)."""
    grace_seconds, grace_factor = settings.TRIO_STRAGGLER_GRACE
    # All but one, but never a single call: with two voters, "all but one" would let the fastest
    # ballot alone decide the vote.
    quorum = settings.TRIO_QUORUM or max(size - 1, min(size, 2))
    return RoundPolicy(quorum, grace_seconds, grace_factor, deadline_at)


def held_to_format(candidate: CandidateResult, outcome: CompletionOutcome) -> CandidateResult:
    """Return `candidate`, failed if it calls no tool (or another one) where `tool_choice` demands a
    call, or if the client asked for JSON and it answered something else.

    A pass-through model's answer is relayed as the backend gave it: there is nothing to choose.
    An answer with tool calls is held to no format: it asks the client to run a tool first. Nor is
    one cut off at the client's own token limit (`length`): its JSON is unfinished, and OpenAI
    answers it as it is, with that finish reason.
    """
    if not candidate.ok or outcome.ensemble.method.passes_through:
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


async def call_model(client, index: int, model: str, messages: list[dict], params: dict, timeout: float,
                     deadline_at: float, prices: Mapping[str, Price]) -> CandidateResult:
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
        backend_body=result.body, cost_usd=call_cost(result.cost_usd, model, result.usage, prices),
    )


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


def quote_limits() -> voting.QuoteLimits:
    """Return how much of the candidates a ballot or synthesis prompt quotes (TRIO_BALLOT_*QUOTE_CHARS)."""
    return voting.QuoteLimits(settings.TRIO_BALLOT_QUOTE_CHARS, settings.TRIO_BALLOT_PROMPT_QUOTE_CHARS)


async def ballot_cast(client, ballot: BallotResult, outcome: CompletionOutcome, nonce: str,
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
    ballot.cost_usd = call_cost(result.cost_usd, ballot.voter_model, result.usage, outcome.prices)
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
    see ensemble.voting.formats), and set `ballot.format` to the format asked. Under `auto`, a
    format the backend refuses is asked again at once in the next one, within the same deadline."""
    setting, model = settings.TRIO_BALLOT_FORMAT, ballot.voter_model
    shown_texts = [outcome.candidates[i].text for i in ballot.shown_order]
    formats = ballot_formats.formats_for(setting, model)
    for ballot_format in formats:
        ballot.format = ballot_format.name
        prompt = voting.ballot_messages(outcome.messages, shown_texts, nonce, quote_limits(),
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
