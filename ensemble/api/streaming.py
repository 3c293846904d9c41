"""`stream: true`: the answer as server-sent events of `chat.completion.chunk` objects (or, for
/v1/responses, of the Responses API's events: `response_stream`).

The answer only exists once the ensemble has decided, so a stream is:

    : keep-alive                     every TRIO_STREAM_KEEPALIVE seconds while the ensemble works,
                                     so that proxies and clients do not drop a silent connection
    data: {chunk}                    per choice: the role, then the text in pieces; then the finish
                                     chunks, the last one with the voting details under `trio`
    data: {chunk with usage}         when `stream_options.include_usage` asks for it
    data: [DONE]

The view waits up to one keep-alive interval before it starts the response, so a request that
fails quickly still gets its HTTP status (404, 502, 504). Once the headers are sent, a failure
travels as an error event (`data: {"error": ...}`), which the openai SDK raises as an APIError.

A client hanging up makes Django cancel the response's iteration; the completion task is then
cancelled too, and the service records the request as `cancelled`.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable, Iterable

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse

from .. import services
from ..outcomes import CompletionOutcome
from .errors import OpenAIError, completion_failed, error_body
from .presenters import chat_completion_chunks
from .response_presenters import failed_response_events, response_events

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"

Render = Callable[[CompletionOutcome], Iterable[bytes]]  # a decided outcome's events
RenderFailure = Callable[[CompletionOutcome, OpenAIError], Iterable[bytes]]  # those of an outcome with no answer


async def chat_completion_stream(
    work: Awaitable[CompletionOutcome], *, n: int = 1, include_usage: bool = False
) -> StreamingHttpResponse:
    """Return the chat.completion.chunk stream of `work` (a completion); raise its error if it fails at once."""
    def answer(outcome: CompletionOutcome) -> list[bytes]:
        return [*(_event(chunk) for chunk in chat_completion_chunks(outcome, n, include_usage=include_usage)), DONE]

    def failure(outcome: CompletionOutcome, error: OpenAIError) -> list[bytes]:
        return [_event(error_body(error.message, type=error.error_type, param=error.param, code=error.code)), DONE]

    return await event_stream(work, answer=answer, failure=failure)


async def response_stream(work: Awaitable[CompletionOutcome], *, echo: dict) -> StreamingHttpResponse:
    """Return the Responses API event stream of `work`; raise its error if it fails at once."""
    def answer(outcome: CompletionOutcome) -> list[bytes]:
        return [_named_event(event) for event in response_events(outcome, echo)]

    def failure(outcome: CompletionOutcome, error: OpenAIError) -> list[bytes]:
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
        try:
            outcome = task.result()
        except services.NoCandidates as exc:
            events = failure(exc.outcome, completion_failed(exc.outcome))
        else:
            events = answer(outcome)
        for event in events:
            yield event
    finally:
        # Reached when Django stops iterating because the client went away (and at the normal end).
        if not task.done():
            task.cancel()


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _named_event(data: dict) -> bytes:
    """Return a Responses API event: its type on an `event:` line, as OpenAI sends them."""
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
