"""`stream: true`: the answer as server-sent events of `chat.completion.chunk` objects (or, for
/v1/responses, of the Responses API's events: `response_stream`).

The answer only exists once the ensemble has decided, so a stream is:

    : keep-alive                     every TRIO_STREAM_KEEPALIVE seconds while the ensemble works,
                                     so that proxies and clients do not drop a silent connection
    data: {chunk}                    per choice: the role, then the text in pieces; then the finish
                                     chunks, the last one with the voting details under `trio`
                                     (`trio.consensus` too: the headers, sent first, carry neither
                                     X-Trio-Details nor X-Trio-Consensus)
    data: {chunk with usage}         when `stream_options.include_usage` asks for it
    data: [DONE]

The view waits up to one keep-alive interval before it starts the response, so a request that
fails quickly still gets its HTTP status (404, 502, 504). Once the headers are sent, a failure
travels as an error event (`data: {"error": ...}`), which the openai SDK raises as an APIError,
then `data: [DONE]`; a Responses stream ends with `response.failed`. Whatever breaks after the
headers (a bug in Trio, not only a failed ensemble) ends the stream that way too, as a 500's error
(a Responses stream: an `error` event), never by cutting it off mid-way.

A client hanging up makes Django cancel the response's iteration; the completion task is then
cancelled too, and the service records the request as `cancelled`.
"""
from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Awaitable, Callable, Iterable

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse

from ..completion import service as services
from ..outcomes import CompletionOutcome
from .errors import InternalFailure, OpenAIError, completion_failed, error_body
from .presenters import chat_completion_chunks
from .response_presenters import failed_response_events, response_events

logger = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"

Render = Callable[[CompletionOutcome], Iterable[bytes]]  # a decided outcome's events
# Those of an outcome with no answer; of None when Trio itself broke, and the outcome is not to be trusted.
RenderFailure = Callable[[CompletionOutcome | None, OpenAIError], Iterable[bytes]]


async def chat_completion_stream(
    work: Awaitable[CompletionOutcome], *, n: int = 1, include_usage: bool = False
) -> StreamingHttpResponse:
    """Return the chat.completion.chunk stream of `work` (a completion); raise its error if it fails at once."""
    def answer(outcome: CompletionOutcome) -> list[bytes]:
        return [*(_event(chunk) for chunk in chat_completion_chunks(outcome, n, include_usage=include_usage)), DONE]

    def failure(outcome: CompletionOutcome | None, error: OpenAIError) -> list[bytes]:
        return [_event(error_body(error.message, type=error.error_type, param=error.param, code=error.code)), DONE]

    return await event_stream(work, answer=answer, failure=failure)


async def response_stream(work: Awaitable[CompletionOutcome], *, echo: dict) -> StreamingHttpResponse:
    """Return the Responses API event stream of `work`; raise its error if it fails at once."""
    def answer(outcome: CompletionOutcome) -> list[bytes]:
        return [_named_event(event) for event in response_events(outcome, echo)]

    def failure(outcome: CompletionOutcome | None, error: OpenAIError) -> list[bytes]:
        if outcome is None:  # OpenAI's own event for a stream that broke
            return [_named_event({"type": "error", "code": error.code, "message": error.message,
                                  "param": error.param, "sequence_number": 0})]
        return [_named_event(event) for event in failed_response_events(outcome, error, echo)]

    return await event_stream(work, answer=answer, failure=failure)


async def event_stream(work: Awaitable[CompletionOutcome], *, answer: Render, failure: RenderFailure
                       ) -> StreamingHttpResponse:
    """Return the event-stream response for `work`, its events rendered by `answer` (or `failure` once
    the stream has begun); raise the completion's error if it fails within the first keep-alive interval."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=settings.TRIO_STREAM_KEEPALIVE)
    except asyncio.CancelledError:
        task.cancel()  # the client hung up before the stream began
        raise
    if task.done():
        try:
            task.result()
        except services.NoCandidates as exc:
            raise completion_failed(exc.outcome) from None
    response = StreamingHttpResponse(_events(task, answer, failure), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


async def _events(task: asyncio.Future, answer: Render, failure: RenderFailure) -> AsyncIterator[bytes]:
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=settings.TRIO_STREAM_KEEPALIVE)
            if not done:
                yield KEEPALIVE
        for event in _ending(task, answer, failure):
            yield event
    finally:
        # Reached when Django stops iterating because the client went away (and at the normal end).
        if not task.done():
            task.cancel()


def _ending(task: asyncio.Future, answer: Render, failure: RenderFailure) -> list[bytes]:
    """Return the events that end the stream of a finished `task`: its answer, or its failure. An
    unexpected exception becomes an internal error's events: the headers are sent, and raising
    would only cut the stream off without an error or its end."""
    try:
        return list(answer(task.result()))
    except services.NoCandidates as exc:
        failed = exc.outcome, completion_failed(exc.outcome)
    except Exception:
        logger.exception("the stream broke after its headers were sent; ending it with an error event")
        failed = None, InternalFailure()
    return list(failure(*failed))


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _named_event(data: dict) -> bytes:
    """Return a Responses API event: its type on an `event:` line, as OpenAI sends them."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
