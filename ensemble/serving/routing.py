"""Serve the JSON API through a Django handler with a lean, fully async middleware stack.

Django's built-in middleware (sessions, CSRF, auth, messages, ...) is sync-style: under ASGI each
of its hooks is a hop to a worker thread, about a dozen hops per request. The API needs none of
it (no cookies, no forms), so /v1/ and the probes go through a second `ASGIHandler` built from
`settings.API_MIDDLEWARE`, whose entries are all natively async. Pages and the admin keep the
full `settings.MIDDLEWARE`. Same settings, same URLconf, same views.
"""
from __future__ import annotations

from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

API_PREFIX = "/v1"
PROBE_PATHS = ("/health", "/metrics")


def is_api_path(path: str) -> bool:
    """Return whether `path` is the OpenAI API's: `/v1` itself or anything under `/v1/`."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


class APIHandler(ASGIHandler):
    """Django's ASGI handler, loading `settings.API_MIDDLEWARE` instead of `settings.MIDDLEWARE`."""

    def load_middleware(self, is_async=False):
        # BaseHandler.load_middleware reads settings.MIDDLEWARE; swap it only while loading,
        # which happens once, at import time, before any request is served.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full

    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, which starts a new thread for the
        # request's first sync call and joins it at the end: a thread start and join per request,
        # a sixth of the worker's CPU under load (py-spy). The API's few sync calls (Django's
        # request signals, DRF's initial() with at most one indexed API-key lookup) hold nothing
        # across calls, so they can share asgiref's one long-lived sync thread instead. The price:
        # those calls run one at a time per worker, so a slow database slows every API request's
        # authentication, not just one; completions are stored by their own writer thread.
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        await self.handle(scope, receive, send)


class PathRouter:
    """ASGI app sending API paths to `api` and everything else to `site`."""

    def __init__(self, *, api, site):
        self.api, self.site = api, site

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (is_api_path(scope["path"]) or scope["path"].startswith(PROBE_PATHS)):
            return await self.api(scope, receive, send)
        return await self.site(scope, receive, send)
