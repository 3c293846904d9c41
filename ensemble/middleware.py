"""Keep every error under /v1/ in the OpenAI JSON shape, whatever part of Django produced it."""
from __future__ import annotations

from http import HTTPStatus

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .api.errors import openai_error

API_PREFIX = "/v1/"

_CODES = {404: "unknown_url", 405: "method_not_allowed", 413: "request_too_large", 500: "internal_error"}


class OpenAIErrorMiddleware:
    """Replace a non-JSON error response under /v1/ (Django's HTML 404, 400, 500 pages) with JSON.

    Written as a native async middleware: Django's MiddlewareMixin would run each call in the
    single sync thread, which serializes concurrent requests.
    """

    async_capable = True
    sync_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._convert(request, self.get_response(request))

    async def _acall(self, request):
        return self._convert(request, await self.get_response(request))

    @staticmethod
    def _convert(request, response):
        if (
            response.status_code < 400
            or not request.path.startswith(API_PREFIX)
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
        return openai_error(status, message, type=kind, code=_CODES.get(status))
