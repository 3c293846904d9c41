"""The ASGI application: routes, authentication, error payloads, send helpers, endless bodies, refusals.

See the package docstring for the behaviour reference.
"""

import asyncio
import collections
import itertools
import json
import random
import time
import typing

from ...formats.text import last_user_text as _last_user_text, message_text as _content_text
from .answers import (FILLER, count_words, format_type, generation_answer, structured_answer, tool_call,
                      truncate_words)
from .behaviour import Behaviour, Call, parse_cached
from .voters import GARBAGE_BALLOT, ballot_json, ballot_lines, is_ballot_prompt

MAX_RECORDED_CALLS = 10_000
MAX_CHOICES = 128  # OpenAI's own limit on `n`


# ---------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error",
                403: "permission_error", 404: "not_found_error",
                429: "rate_limit_error"}


RETRY_AFTER_SECONDS = b"7"  # what a fake 429 asks for: distinct from any default backoff


def _error_payload(status: int, message: str, code: str | None = None) -> dict:
    """Return an OpenAI-shaped error body for `status`."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def _send_bytes(send, status: int, body: bytes,
                      content_type: bytes = b"application/json", cost: str | None = None) -> None:
    """Send a complete response with `body`; a 429 says when to come back, as OpenAI and LiteLLM do;
    `cost` is sent as LiteLLM's response-cost header."""
    headers = [(b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]
    if cost is not None:
        headers.append((b"x-litellm-response-cost", cost.encode("latin-1", "replace")))
    if status == 429:
        headers.append((b"retry-after", RETRY_AFTER_SECONDS))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send, status: int, payload: typing.Any, cost: str | None = None) -> None:
    """Send `payload` as a JSON response."""
    await _send_bytes(send, status, json.dumps(payload).encode(), cost=cost)


class _ClientGone(Exception):
    """The client disconnected before the request body was complete."""


async def _read_body(receive) -> bytes:
    """Return the full request body; raise _ClientGone on disconnect."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


ENDLESS_CHUNK = (FILLER * (65536 // len(FILLER))).encode()
ENDLESS_MAX_BYTES = 8 * 1024**3  # a client that never stops reading is let go here


async def _send_endless(send, receive) -> typing.AsyncIterator[int]:
    """Send a chat completion whose content never ends until the client hangs up; yield the byte
    count after each chunk."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    gone = asyncio.ensure_future(_wait_for_disconnect(receive))
    chunk = b'{"object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "'
    sent = 0
    try:
        while not gone.done() and sent < ENDLESS_MAX_BYTES:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            yield sent
            chunk = ENDLESS_CHUNK
            await asyncio.sleep(0)  # once the client is gone send() returns at once: let `gone` see it
    finally:
        gone.cancel()


async def _wait_for_disconnect(receive) -> None:
    """Return once the client has gone.

    Once the body is consumed, the server's receive() blocks until the
    connection drops, so this waits without polling.
    """
    while (await receive())["type"] != "http.disconnect":
        pass



def _format_refusal(behaviour: Behaviour, body: dict) -> tuple[int, dict] | None:
    """Return the ``(status, error body)`` refusing the request's response_format, or None."""
    kind = format_type(body)
    status = {"json_schema": behaviour.refuse_json_schema, "json_object": behaviour.refuse_json_object}.get(kind)
    if status is None:
        return None
    if status >= 500:  # llama.cpp's server: a 500 whose message names what it cannot do
        message = f"Unsupported response_format: {kind} is not supported (cannot build a grammar for it)"
        return status, {"error": {"code": status, "message": message, "type": "server_error"}}
    payload = _error_payload(status, f"Invalid parameter: response_format of type {kind!r} is not supported "
                                     "with this model.", "unsupported_response_format")
    payload["error"]["param"] = "response_format"
    return status, payload


# ---------------------------------------------------------------------------
# The application
# ---------------------------------------------------------------------------


class FakeBackend:
    """ASGI app faking an OpenAI-compatible chat server (see the package docstring)."""

    def __init__(self, *, models: dict[str, Behaviour] | None = None,
                 default: Behaviour = Behaviour(), api_key: str | None = None,
                 seed: int = 0) -> None:
        self.models = dict(models or {})
        self.default = default
        self.api_key = api_key
        self.random = random.Random(seed)
        self.calls: collections.deque[Call] = collections.deque(maxlen=MAX_RECORDED_CALLS)
        self._attempts: collections.Counter[str] = collections.Counter()
        self.streamed_bytes: collections.Counter[str] = collections.Counter()  # endless bodies, per model
        self._ids = itertools.count(1)

    def reset(self) -> None:
        """Forget recorded calls, fail_first counters and streamed bytes; returns None."""
        self.calls.clear()
        self._attempts.clear()
        self.streamed_bytes.clear()

    def behaviour_for(self, model: str) -> tuple[str, Behaviour]:
        """Return ``(name without @spec, behaviour)`` for a requested model.

        Raises ValueError when an ``@`` spec is invalid.
        """
        name, sep, spec = model.partition("@")
        if not sep:
            return model, self.models.get(model, self.default)
        return name, parse_cached(spec, self.models.get(name, self.default))

    async def __call__(self, scope, receive, send) -> None:
        """Serve one ASGI connection scope; only ``http`` is handled."""
        if scope["type"] != "http":
            return  # lifespan and websockets: nothing to set up or serve
        method, path = scope["method"], scope["path"]
        try:
            if path in ("/v1/chat/completions", "/chat/completions") and method == "POST":
                await self._chat(scope, receive, send)
            elif path in ("/v1/models", "/models") and method == "GET":
                await _send_json(send, 200, self._model_list())
            elif path in ("/health", "/health/liveliness") and method == "GET":
                await _send_json(send, 200, {"status": "ok"})
            else:
                await _send_json(send, 404, _error_payload(
                    404, f"no route for {method} {path}", "not_found"))
        except _ClientGone:
            return

    def _model_list(self) -> dict:
        """Return the OpenAI ``/v1/models`` list body."""
        names = [*self.models, *(["fake"] if "fake" not in self.models else [])]
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]
        return {"object": "list", "data": data}

    def _authorized(self, scope) -> bool:
        """Return True when no key is required or the bearer token matches."""
        if self.api_key is None:
            return True
        expected = f"Bearer {self.api_key}".encode()
        return any(k == b"authorization" and v == expected for k, v in scope["headers"])

    async def _chat(self, scope, receive, send) -> None:
        """Handle one chat completion request."""
        if not self._authorized(scope):
            await _send_json(send, 401, _error_payload(
                401, "Incorrect API key provided.", "invalid_api_key"))
            return
        body = _parse_chat_body(await _read_body(receive))
        if isinstance(body, str):
            await _send_json(send, 400, _error_payload(400, body))
            return
        try:
            name, behaviour = self.behaviour_for(body["model"])
        except ValueError as exc:
            await _send_json(send, 400, _error_payload(400, str(exc), "invalid_behaviour"))
            return
        user_text = _last_user_text(body["messages"])
        is_ballot = is_ballot_prompt(user_text)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.calls.append(Call(body["model"], scope["path"], headers, body, is_ballot))

        if behaviour.hang:
            await _wait_for_disconnect(receive)
            return
        delay = behaviour.latency + (self.random.uniform(0, behaviour.jitter)
                                     if behaviour.jitter > 0 else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        status = self._failure_status(body["model"], behaviour)
        refusal = _format_refusal(behaviour, body) if status is None else None
        if status is not None:
            await _send_json(send, status, _error_payload(
                status, f"fake failure ({status}) for model {body['model']}", "fake_failure"))
        elif refusal is not None:
            await _send_json(send, *refusal)
        elif behaviour.malformed:
            await _send_bytes(send, 200, b'{"id": "chatcmpl-fake", "choices": [{"mess')
        elif behaviour.endless:
            async for sent in _send_endless(send, receive):
                self.streamed_bytes[body["model"]] = sent
        else:
            call = None if is_ballot or behaviour.empty else tool_call(name, behaviour, body, user_text)
            if call is not None:
                await _send_json(send, 200, self._completion(body, None, "tool_calls", [call]), behaviour.cost)
                return
            content, finish = self._answer(name, behaviour, body, user_text, is_ballot)
            await _send_json(send, 200, self._completion(body, content, finish), behaviour.cost)

    def _failure_status(self, model: str, behaviour: Behaviour) -> int | None:
        """Return the error status this call must get, or None to succeed."""
        if behaviour.fail_first > 0:
            self._attempts[model] += 1
            if self._attempts[model] <= behaviour.fail_first:
                return behaviour.status or 503
            return None
        return behaviour.status

    def _answer(self, name: str, behaviour: Behaviour, body: dict,
                user_text: str, is_ballot: bool) -> tuple[str, str]:
        """Return ``(content, finish_reason)`` for a successful call."""
        if behaviour.empty:
            return "", "stop"
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        constrained = not behaviour.ignore_format and format_type(body) in ("json_object", "json_schema")
        garbage = behaviour.garbage_ballot or (behaviour.constrained_only and not constrained)
        if is_ballot and not garbage:
            if constrained:
                return ballot_json(name, behaviour, user_text), "stop"
            reasoning, lines = ballot_lines(name, behaviour, user_text)
            content = f"{reasoning}\n{lines}"
            if isinstance(limit, int) and limit < count_words(content):
                content = lines  # a short ballot beats a broken one
            return content, "stop"
        content = (GARBAGE_BALLOT if is_ballot
                   else generation_answer(name, behaviour, user_text))
        if not is_ballot and constrained:
            content = json.dumps(structured_answer(body["response_format"], content))
        if isinstance(limit, int) and limit < count_words(content):
            return truncate_words(content, limit), "length"  # JSON too is cut, unfinished
        return content, "stop"

    def _completion(self, body: dict, content: str | None, finish_reason: str,
                    tool_calls: list[dict] | None = None) -> dict:
        """Return a ``chat.completion`` object answering `body` with `content` (None: with `tool_calls`)."""
        prompt_tokens = sum(count_words(_content_text(m.get("content")))
                            for m in body["messages"] if isinstance(m, dict))
        n = body.get("n")
        n = n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_CHOICES else 1
        if content is None:
            contents = [None] * n
            said = " ".join(call["function"]["arguments"] for call in tool_calls or ())
            completion_tokens = n * count_words(said)
        else:
            contents = [content] + [f"{content} (choice {i + 1})" for i in range(1, n)]
            completion_tokens = sum(count_words(text) for text in contents)
        extra = {"tool_calls": tool_calls} if tool_calls else {}
        return {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{
                "index": index,
                "message": {"role": "assistant", "content": text, **extra},
                "finish_reason": finish_reason,
            } for index, text in enumerate(contents)],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def _parse_chat_body(raw: bytes) -> dict | str:
    """Return the parsed chat body, or an error message string when invalid."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "request body is not valid JSON"
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' must be a non-empty string"
    if not isinstance(body.get("messages"), list):
        return "'messages' must be a list"
    return body
