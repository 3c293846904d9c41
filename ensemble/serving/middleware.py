"""Trio's Django middleware: every error under /v1/ in the OpenAI JSON shape, whatever part of
Django produced it; NUL characters refused before any view; Django's security and common
middleware without thread hops. (The body-size limit is an ASGI wrapper: body_limit.py.)
"""
from __future__ import annotations

from http import HTTPStatus

from django.http import HttpResponseBadRequest
from django.middleware import common, security

from ..api.errors import openai_error
from .hybrid import HybridMiddleware
from .routing import is_api_path

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
