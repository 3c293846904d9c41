"""The only module that talks HTTP to the model backend (LiteLLM, Ollama's /v1, any OpenAI-compatible server).

Every failure is raised from `BackendClient.chat` as one of the errors in `errors.py`, translated here at
one boundary (`raise ... from exc`).

Django's ASGI handler has no lifespan hook, so there is nowhere to open and close one client for
the process. `client_for_running_loop()` creates one lazily per event loop instead: connections are
reused across requests, and a client never outlives (or crosses) the loop it was made on.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from decimal import Decimal

import aiohttp
import orjson

from ..formats.costs import cost_from_header
from ..formats.tools import tool_calls_of
from ..formats.usage import Usage
from ..loops import PerLoop
from .errors import BackendBadResponse, BackendHTTPError, BackendTimeout, BackendTooLarge, BackendUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatResult:
    """A successful backend completion: the assistant's text ("" when it only calls tools), its tool
    calls, and what it cost."""

    content: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)
    body: dict = field(default_factory=dict, repr=False)  # the whole JSON answer, for pass-through
    tool_calls: list[dict] = field(default_factory=list)
    cost_usd: Decimal | None = None  # what the backend said it cost (COST_HEADER); None: it did not say


# LiteLLM's statement of a call's cost in USD, a decimal string (read by formats.costs).
COST_HEADER = "x-litellm-response-cost"


def normalize_base_url(url: str) -> str:
    """Return the backend's API root ending in /v1, whether or not `url` already had it."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


# The longest real answers (a model's whole output window, as JSON) are a few hundred KB.
DEFAULT_MAX_ANSWER_BYTES = 1024 * 1024
# The model list is no answer (a router's, with every model's metadata, runs to megabytes), but it
# is a backend's reply all the same: bounded too.
MAX_MODEL_LIST_BYTES = 16 * 1024 * 1024
# How much of a reply is read at once: what aiohttp has buffered, up to this.
READ_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    retry_after: str = ""
    cut_at: int | None = None  # the limit the body was cut off at, unread beyond; None: complete
    cost: str | None = None  # the COST_HEADER value

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class BackendClient:
    """An OpenAI-compatible chat client with a per-call deadline and a translated error tree.

    Built on aiohttp rather than httpx: at 64 concurrent completions (192 backend calls in flight)
    httpx's connection pool cost 7 ms of CPU per completion more, most of it in its pool
    bookkeeping (encode/httpx#3215). httpx on aiohttp's pool (`httpx-aiohttp`) still cost 1.1-3.7 ms
    more than this client; bench/README.md has the figures. Create it inside the event loop that
    will use it.
    """

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 max_connections: int = 512, max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES):
        self.base_url = normalize_base_url(base_url)
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session = aiohttp.ClientSession(
            headers=headers,
            # One idle-connection pool for the whole process, bounded; aiohttp's lookup is O(1).
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=30),
            # The call deadline below bounds each call; aiohttp's own 5-minute default must not.
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def chat(self, model: str, messages: list[dict], params: dict | None = None,
                   *, timeout: float | None = None) -> ChatResult:
        """Return the completion of one chat call, or raise a `BackendError`."""
        body = orjson.dumps({**(params or {}), "model": model, "messages": messages})
        reply = await self._request("POST", "/chat/completions", model, body, timeout, self.max_answer_bytes)
        return _chat_result(model, reply)

    async def list_models(self, *, timeout: float | None = None) -> list[str]:
        """Return the model ids the backend advertises (used by readiness checks)."""
        reply = await self._request("GET", "/models", "/models", None, timeout, MAX_MODEL_LIST_BYTES)
        data = _json_or_raise("/models", reply, "MAX_MODEL_LIST_BYTES")
        return [item.get("id") for item in data.get("data", []) if isinstance(item, dict)]

    async def _request(self, method: str, path: str, what: str, body: bytes | None,
                       timeout: float | None, max_bytes: int) -> _Reply:
        """Return the status and body (read up to `max_bytes`) of one HTTP call, translating
        transport failures."""
        limit = timeout or self.timeout
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with asyncio.timeout(limit):
                async with self._session.request(method, self.base_url + path, data=body, headers=headers) as response:
                    content, complete = await _read_within(response, max_bytes)
                    return _Reply(response.status, content, response.headers.get("Retry-After", ""),
                                  None if complete else max_bytes, response.headers.get(COST_HEADER))
        except TimeoutError as exc:
            raise BackendTimeout(f"{what}: no answer within {limit:g}s") from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(f"{what}: {_transport_failure(exc)}") from exc
        except Exception as exc:
            # Not every failure of the client is a ClientError (a header value it refuses is a
            # ValueError). Whatever it is, it is this call's failure, never the whole request's.
            logger.warning("unexpected error calling the backend (%s)", what, exc_info=True)
            raise BackendUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._session.close()


async def _read_within(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Return the reply's body and True; or, once it is known to exceed `limit` bytes, what was read
    of it and False.

    Reading stops at the limit rather than after buffering the whole reply: a backend answering
    20 MB to each of three members took a worker past 1 GB. An unfinished reply's connection is
    closed, never reused. A declared Content-Length over the limit is refused unread.
    """
    if response.content_length is not None and response.content_length > limit:
        response.close()
        return b"", False
    body = bytearray()
    while len(body) <= limit:
        chunk = await response.content.read(min(READ_CHUNK_BYTES, limit + 1 - len(body)))
        if not chunk:
            return bytes(body), True
        body += chunk
    response.close()
    return bytes(body), False


def _transport_failure(exc: aiohttp.ClientError) -> str:
    """Return what went wrong with the connection, without the backend's address.

    The message reaches API clients (each member's error is in a 502) and /health/ready, which
    anyone may call; aiohttp's own for a failed connection names the backend's host and port.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"{type(exc).__name__}: cannot connect to the backend ({type(exc.os_error).__name__})"
    return f"{type(exc).__name__}: {exc}"


def _json_or_raise(what: str, response: _Reply, limit_name: str = "TRIO_MAX_ANSWER_BYTES") -> dict:
    # An error reply cut off keeps its status: only its start is ever shown.
    if not 200 <= response.status < 300:
        raise BackendHTTPError(response.status, f"{what}: HTTP {response.status}: {_snippet(response)}",
                               retry_after=response.retry_after)
    if response.cut_at is not None:
        raise BackendTooLarge(f"{what}: the reply is longer than {response.cut_at} bytes ({limit_name}); "
                              "stopped reading it")
    try:
        data = orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise BackendBadResponse(f"{what}: response is not JSON: {_snippet(response)}") from exc
    if not isinstance(data, dict):
        raise BackendBadResponse(f"{what}: response is not a JSON object")
    return data


def _text_of_parts(parts: list) -> str | None:
    """Return the text of a content given as parts, as some OpenAI-compatible servers answer
    (`[{"type": "thinking", ...}, {"type": "text", "text": "..."}]`): its text parts joined; None
    when it has none (the answer is then empty)."""
    texts = [part["text"] for part in parts
             if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)]
    return "".join(texts) if texts else None


def _chat_result(model: str, response: _Reply) -> ChatResult:
    """Return the answer of a chat completion: text, well-formed tool calls, or both; neither is a
    BackendBadResponse (malformed tool calls are not an answer)."""
    data = _json_or_raise(model, response)
    try:
        choice = data["choices"][0]
        message = choice["message"]
        # A message that only calls tools has null content, or (some servers) none at all.
        content = message["content"] if "tool_calls" not in message else message.get("content")
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendBadResponse(f"{model}: response has no choices[0].message.content") from exc
    if isinstance(content, list):
        content = _text_of_parts(content)
    content = content if isinstance(content, str) and content.strip() else ""
    tool_calls = tool_calls_of(message.get("tool_calls")) or []
    if not content and not tool_calls:
        raise BackendBadResponse(f"{model}: empty content (and no well-formed tool_calls)")
    finish_reason = choice.get("finish_reason")
    return ChatResult(
        content=content,
        # Relayed to clients, who expect a word; a missing or odd one is taken as a normal end.
        finish_reason=finish_reason if isinstance(finish_reason, str) and finish_reason
        else ("tool_calls" if tool_calls else "stop"),
        usage=Usage.from_json(data.get("usage")),
        body=data,
        tool_calls=tool_calls,
        cost_usd=cost_from_header(response.cost),
    )


def _snippet(response: _Reply, limit: int = 200) -> str:
    return response.text[:limit].replace("\n", " ")


# Per event loop, one client per backend configuration. Settings do not change in production, so
# that is one client; tests that repoint the backend get one each, all closed at shutdown.
_clients: PerLoop[dict[tuple, BackendClient]] = PerLoop(dict)


def client_for_running_loop() -> BackendClient:
    """Return this event loop's shared client for the current backend settings, creating it once."""
    from django.conf import settings  # imported late: the client itself is usable without Django

    config = (settings.TRIO_BACKEND_URL, settings.TRIO_BACKEND_API_KEY, settings.TRIO_TIMEOUT,
              settings.TRIO_BACKEND_MAX_CONNECTIONS, settings.TRIO_MAX_ANSWER_BYTES)
    clients = _clients.get()
    if config not in clients:
        url, api_key, timeout, max_connections, max_answer_bytes = config
        clients[config] = BackendClient(url, api_key=api_key, timeout=timeout, max_connections=max_connections,
                                        max_answer_bytes=max_answer_bytes)
    return clients[config]


async def clients_close_for_running_loop() -> None:
    """Close every client made on this event loop (called at ASGI lifespan shutdown)."""
    for client in (_clients.pop() or {}).values():
        await client.aclose()
