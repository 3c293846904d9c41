"""The only module that talks HTTP to the model backend (LiteLLM, Ollama's /v1, any OpenAI-compatible server).

Errors, all raised from `BackendClient.chat` and translated here, at one boundary:

    BackendError                 any failed call; `.reason` is a short machine-readable word
    ├── BackendTimeout           no complete answer within the call's timeout       reason "timeout"
    ├── BackendUnavailable       connection refused / reset / DNS failure           reason "unavailable"
    ├── BackendHTTPError         a non-2xx status; `.status_code`                    reason "http_<status>"
    └── BackendBadResponse       2xx but not JSON, not a chat completion, or empty  reason "bad_response"

Django's ASGI handler has no lifespan hook, so there is nowhere to open and close one client for
the process. `client_for_running_loop()` creates one lazily per event loop instead: connections are
reused across requests, and a client never outlives (or crosses) the loop it was made on.
"""
from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field

import httpx
import orjson


class BackendError(Exception):
    reason = "error"


class BackendTimeout(BackendError):
    reason = "timeout"


class BackendUnavailable(BackendError):
    reason = "unavailable"


class BackendHTTPError(BackendError):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.reason = f"http_{status_code}"


class BackendBadResponse(BackendError):
    reason = "bad_response"


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, data) -> "Usage":
        """Return the usage block of a completion; missing or odd values count as 0."""
        if not isinstance(data, dict):
            return cls()
        return cls(*(_as_int(data.get(key)) for key in ("prompt_tokens", "completion_tokens", "total_tokens")))

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


def _as_int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


@dataclass(frozen=True)
class ChatResult:
    """A successful backend completion: the assistant's text and what it cost."""

    content: str
    finish_reason: str
    usage: Usage = field(default_factory=Usage)


def normalize_base_url(url: str) -> str:
    """Return the backend's API root ending in /v1, whether or not `url` already had it."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class BackendClient:
    """An OpenAI-compatible chat client with a per-call deadline and a translated error tree."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_connections: int = 512,
        max_keepalive_connections: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=normalize_base_url(base_url),
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
            ),
            transport=transport,
        )

    async def chat(self, model: str, messages: list[dict], params: dict | None = None,
                   *, timeout: float | None = None) -> ChatResult:
        """Return the completion of one chat call, or raise a `BackendError`."""
        body = {**(params or {}), "model": model, "messages": messages}
        # httpx's timeout bounds each read, not the whole call; the deadline bounds the call.
        try:
            async with asyncio.timeout(timeout or self.timeout):
                response = await self._http.post(
                    "/chat/completions",
                    content=orjson.dumps(body),
                    headers={"Content-Type": "application/json"},
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise BackendTimeout(f"{model}: no answer within {timeout or self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{model}: {type(exc).__name__}: {exc}") from exc
        return _chat_result(model, response)

    async def list_models(self, *, timeout: float | None = None) -> list[str]:
        """Return the model ids the backend advertises (used by readiness checks)."""
        try:
            async with asyncio.timeout(timeout or self.timeout):
                response = await self._http.get("/models")
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise BackendTimeout(f"/models: no answer within {timeout or self.timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"/models: {type(exc).__name__}: {exc}") from exc
        data = _json_or_raise("/models", response)
        return [item.get("id") for item in data.get("data", []) if isinstance(item, dict)]

    async def aclose(self) -> None:
        await self._http.aclose()


def _json_or_raise(what: str, response: httpx.Response) -> dict:
    if not response.is_success:
        raise BackendHTTPError(response.status_code, f"{what}: HTTP {response.status_code}: {_snippet(response)}")
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise BackendBadResponse(f"{what}: response is not JSON: {_snippet(response)}") from exc
    if not isinstance(data, dict):
        raise BackendBadResponse(f"{what}: response is not a JSON object")
    return data


def _chat_result(model: str, response: httpx.Response) -> ChatResult:
    data = _json_or_raise(model, response)
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendBadResponse(f"{model}: response has no choices[0].message.content") from exc
    if not isinstance(content, str) or not content.strip():
        raise BackendBadResponse(f"{model}: empty content")
    return ChatResult(
        content=content,
        finish_reason=choice.get("finish_reason") or "stop",
        usage=Usage.from_json(data.get("usage")),
    )


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    return response.text[:limit].replace("\n", " ")


_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple, BackendClient]]" = (
    weakref.WeakKeyDictionary()
)


def client_for_running_loop() -> BackendClient:
    """Return this event loop's shared client, (re)creating it when the backend settings change."""
    from django.conf import settings  # imported late: the client itself is usable without Django

    config = (
        settings.TRIO_BACKEND_URL, settings.TRIO_BACKEND_API_KEY, settings.TRIO_TIMEOUT,
        settings.TRIO_BACKEND_MAX_CONNECTIONS, settings.TRIO_BACKEND_MAX_KEEPALIVE,
    )
    loop = asyncio.get_running_loop()
    cached = _clients.get(loop)
    if cached is not None and cached[0] == config:
        return cached[1]
    url, api_key, timeout, max_connections, max_keepalive = config
    client = BackendClient(url, api_key=api_key, timeout=timeout, max_connections=max_connections,
                           max_keepalive_connections=max_keepalive)
    _clients[loop] = (config, client)
    if cached is not None:
        # Calls in flight on the old client finish first: close it once they are done.
        loop.create_task(_close_when_idle(cached[1]))
    return client


async def _close_when_idle(client: BackendClient, grace: float = 120.0) -> None:
    await asyncio.sleep(grace)
    await client.aclose()


def monotonic_ms(start: float) -> int:
    """Return the whole milliseconds elapsed since `start` (a time.monotonic() reading)."""
    return int((time.monotonic() - start) * 1000)
