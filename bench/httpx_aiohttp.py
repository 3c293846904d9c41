"""Trio with its backend client on httpx + the `httpx-aiohttp` transport instead of bare aiohttp.

A bench-only variant (issue 21, item 8): the design names httpx for the fan-out, the client moved
to aiohttp for CPU (encode/httpx#3215), and `httpx-aiohttp` puts httpx's interface on aiohttp's
pool. `BackendClient` below makes the same calls with the same deadline and error translation as
`ensemble.backend.BackendClient`, through `httpx.AsyncClient` on an `AiohttpTransport` whose
aiohttp session is configured as Trio's. Served when the harness runs with
`TRIO_BENCH_CLIENT=httpx-aiohttp`, e.g.

    pip install httpx-aiohttp==0.2.0   # not in requirements.txt: Trio does not use it (bench/README.md)
    TRIO_BENCH_CLIENT=httpx-aiohttp python bench/concurrency.py --runs 3
"""
from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from ensemble.backend import client as backend


class BackendClient(backend.BackendClient):
    """`ensemble.backend.BackendClient` with httpx's interface on aiohttp's pool."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 60.0,
                 max_connections: int = 512, max_answer_bytes: int = backend.DEFAULT_MAX_ANSWER_BYTES):
        self.base_url = backend.normalize_base_url(base_url)
        self.timeout = timeout
        self.max_answer_bytes = max_answer_bytes  # not enforced: measured as the client was before the cap
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

        def session() -> aiohttp.ClientSession:  # made lazily, on the first call, inside the loop
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None))

        self._client = httpx.AsyncClient(headers=headers, timeout=None, transport=AiohttpTransport(client=session))

    async def _request(self, method: str, path: str, what: str, body: bytes | None,
                       timeout: float | None, max_bytes: int) -> backend._Reply:
        limit = timeout or self.timeout
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            async with asyncio.timeout(limit):
                response = await self._client.request(method, self.base_url + path, content=body, headers=headers)
                return backend._Reply(response.status_code, response.content, response.headers.get("Retry-After", ""))
        except TimeoutError as exc:
            raise backend.BackendTimeout(f"{what}: no answer within {limit:g}s") from exc
        except httpx.HTTPError as exc:
            raise backend.BackendUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


backend.BackendClient = BackendClient  # client_for_running_loop() builds this one from now on

from trio_site.asgi import application  # noqa: E402,F401  (served by gunicorn)
