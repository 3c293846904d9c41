"""Keep every error under /v1/ in the OpenAI JSON shape, whatever part of Django produced it.

`BodySizeLimit` is not Django middleware but an ASGI wrapper (see trio_site/asgi.py): it must run
before Django's ASGI handler, which reads the whole body before any middleware sees the request.
"""
from __future__ import annotations

import re
from http import HTTPStatus

import orjson
from django.conf import settings
from django.http import HttpResponseBadRequest
from django.middleware import common, security

from .api.errors import error_body, openai_error
from .backend import clients_close_for_running_loop
from .middleware_base import HybridMiddleware
from .history.writer import writer_close, writer_drain

API_PREFIX = "/v1"


def is_api_path(path: str) -> bool:
    """Return whether `path` is the OpenAI API's: `/v1` itself or anything under `/v1/`."""
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


_CODES = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large", 500: "internal_error"}


class OpenAIErrorMiddleware(HybridMiddleware):
    """Replace a non-JSON error response under /v1/ (Django's HTML 404, 400, 500 pages) with JSON."""

    def process(self, request, response):
        return self._convert(request, response)

    @staticmethod
    def _convert(request, response):
        if (
            response.status_code < 400
            or not is_api_path(request.path)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status = response.status_code
        if status == 404:
            message = f"Unknown request URL: {request.method} {request.path}."
        elif status >= 500:
            message = "The server had an error while processing your request."
        else:
            message = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Bad request."
        kind = "api_error" if status >= 500 else "invalid_request_error"
        converted = openai_error(status, message, type=kind, code=_CODES.get(status))
        # Django logs an error response once, and marks it so; the copy must carry the mark, or
        # Django logs it again when it leaves the middleware.
        converted._has_been_logged = getattr(response, "_has_been_logged", False)
        return converted


class RefuseNulCharacters(HybridMiddleware):
    """Answer 400 to a request with a NUL character in its path, query, form fields or cookies.

    PostgreSQL refuses NUL in any text it is sent, so a NUL that reaches a query (an admin list
    filter, a session cookie's key) is a DataError and a 500 there, while SQLite answers. No name,
    filter or key Trio stores can contain one, so one rule here, before sessions and views, covers
    the admin, the pages and the API alike, on both databases. Under /v1/ and for `.json` pages
    the answer is an OpenAI-shaped error; elsewhere plain text.
    """

    def refuse(self, request):
        where = _nul_carrier(request)
        if where is None:
            return None
        message = f"{where} contains a NUL character (%00), which Trio does not accept."
        if is_api_path(request.path) or request.path.endswith(".json"):
            return openai_error(400, message, code="invalid_value")
        return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")


def _nul_carrier(request) -> str | None:
    """Return which part of `request` carries a NUL (e.g. "Query parameter 'status'"), or None."""
    if "\x00" in request.path:
        return "The URL path"
    parts = [("Query parameter", request.GET.lists()),
             ("Cookie", ((name, [value]) for name, value in request.COOKIES.items()))]
    # Only urlencoded forms (the admin's and the login's): reading a multipart body here would
    # parse it in the event loop, and Django's form fields refuse NUL in what they accept anyway.
    if request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        parts.append(("Form field", request.POST.lists()))
    for kind, pairs in parts:
        for name, values in pairs:
            if "\x00" in name or any("\x00" in value for value in values):
                shown = name.replace("\x00", "%00")
                return f"{kind} {shown!r}"
    return None


class BodySizeLimit:
    """ASGI wrapper: answer 413 to a body over DATA_UPLOAD_MAX_MEMORY_SIZE without receiving it.

    Django's ASGI handler spools every body to a temporary file before any middleware or view runs,
    so without this a 1 GB upload costs 1 GB of disk before `request.body` refuses it. A declared
    Content-Length is refused before a byte is read; a chunked body is cut off once it passes the limit.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is None:  # Django's "no limit"
            return await self.app(scope, receive, send)
        if _declared_length(scope) > limit:
            return await _send_too_large(scope, send)
        received = 0

        async def receive_within_limit():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Django treats a disconnect while reading the body as "send nothing", so
                    # the 413 below is the only response.
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, receive_within_limit, send)
        if received > limit:
            await _send_too_large(scope, send)


def _declared_length(scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0  # the server has already refused malformed ones
    return 0


async def _send_too_large(scope, send) -> None:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body = orjson.dumps(error_body(f"The request body is larger than the {limit}-byte limit.",
                                   code="request_too_large"))
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread rest of the body makes the connection unusable
        *_cors_headers(scope),
    ]})
    await send({"type": "http.response.body", "body": body})


def _cors_headers(scope) -> list[tuple[bytes, bytes]]:
    """Return the CORS headers django-cors-headers would add, so that a browser can read the 413.

    The refusal happens before Django's middleware runs. Trio configures CORS as an exact list of
    origins (TRIO_CORS_ALLOWED_ORIGINS) for CORS_URLS_REGEX, so the decision is a lookup.
    """
    origin = next((value for name, value in scope["headers"] if name == b"origin"), None)
    if origin is None or not re.match(settings.CORS_URLS_REGEX, scope["path"]):
        return []
    if origin.decode("latin-1") not in settings.CORS_ALLOWED_ORIGINS:
        return []
    return [(b"access-control-allow-origin", origin), (b"vary", b"origin")]


class Lifespan:
    """ASGI wrapper that speaks the lifespan protocol, which Django's handler does not.

    At shutdown it stores what the writer is still retrying (or logs it as lost), then closes the
    backend clients made on the worker's event loop and the writer thread's database connection.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await writer_drain()
                await clients_close_for_running_loop()
                await writer_close()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _InlineHooks:
    """Run a Django MiddlewareMixin's process_request/process_response in the event loop.

    Under ASGI, Django runs each hook of such middleware in a worker thread (a hop costing more
    than the hook). These hooks only read the request and compute headers or redirects (no I/O),
    so they can run inline.
    """

    async def __acall__(self, request):
        response = self.process_request(request)
        response = response or await self.get_response(request)
        return self.process_response(request, response)


class SecurityMiddleware(_InlineHooks, security.SecurityMiddleware):
    """Django's SecurityMiddleware (HTTPS redirect, HSTS, nosniff, ...) without thread hops."""


class CommonMiddleware(_InlineHooks, common.CommonMiddleware):
    """Django's CommonMiddleware (ALLOWED_HOSTS check, slash redirects) without thread hops."""
