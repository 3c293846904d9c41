"""`stream: true`: the answer as server-sent events of `chat.completion.chunk` objects.

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
from typing import AsyncIterator, Awaitable

import orjson
from django.conf import settings
from django.http import StreamingHttpResponse

from .. import services
from ..outcomes import CompletionOutcome
from .errors import completion_failed, error_body
from .presenters import chat_completion_chunks

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


async def chat_completion_stream(
    work: Awaitable[CompletionOutcome], *, n: int = 1, include_usage: bool = False
) -> StreamingHttpResponse:
    """Return the event-stream response for `work` (a completion); raise its error if it fails at once."""
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
    response = StreamingHttpResponse(_events(task, n, include_usage), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response


async def _events(task: asyncio.Future, n: int, include_usage: bool) -> AsyncIterator[bytes]:
    try:
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=settings.TRIO_STREAM_KEEPALIVE)
            if not done:
                yield KEEPALIVE
        try:
            outcome = task.result()
        except services.NoCandidates as exc:
            error = completion_failed(exc.outcome)
            yield _event(error_body(error.message, type=error.error_type, param=error.param, code=error.code))
        else:
            for chunk in chat_completion_chunks(outcome, n, include_usage=include_usage):
                yield _event(chunk)
        yield DONE
    finally:
        # Reached when Django stops iterating because the client went away (and at the normal end).
        if not task.done():
            task.cancel()


def _event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"
