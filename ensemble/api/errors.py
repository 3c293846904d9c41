"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}` with the right status.

Every non-success answer under /v1/ goes through `openai_error`, whether it comes from a view
(`OpenAIError` subclasses, DRF exceptions via `openai_exception_handler`) or from Django itself
(unknown path, crash: see `ensemble.serving.middleware`).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """Return the OpenAI error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def openai_error(status_code: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> JsonResponse:
    """Return a JSON error response; usable outside DRF (middleware, Django handlers)."""
    return JsonResponse(error_body(message, type=type, param=param, code=code), status=status_code)


class OpenAIError(exceptions.APIException):
    """Base for errors raised by API views; subclasses set status, type and code."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_type = "invalid_request_error"
    default_code = None
    default_detail = "Invalid request."
    headers: Mapping[str, str] = MappingProxyType({})  # extra response headers (set per instance)

    def __init__(self, message: str | None = None, *, param: str | None = None, code: str | None = None):
        super().__init__(message or self.default_detail)
        self.message = message or self.default_detail
        self.param = param
        self.code = code or self.default_code


class InvalidRequest(OpenAIError):
    default_code = "invalid_value"


class ModelNotFound(OpenAIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "model_not_found"


class ResponseNotFound(OpenAIError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "response_not_found"


class UnsupportedMediaType(OpenAIError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"


class BodyTooLarge(OpenAIError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class BackendFailed(OpenAIError):
    status_code = status.HTTP_502_BAD_GATEWAY
    error_type = "api_error"
    default_code = "backend_error"


class BackendTimedOut(BackendFailed):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "backend_timeout"


class InternalFailure(OpenAIError):
    """Trio's own bug, not the backend's: what the middleware answers for a crash, raised where the
    request's id can be named."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    error_type = "api_error"
    default_code = "internal_error"
    default_detail = "The server had an error while processing your request."


class BackendRefused(OpenAIError):
    """A pass-through request the backend refused as the caller's to fix; its status is the backend's."""

    default_code = "backend_refused"

    def __init__(self, status_code: int, message: str, *, retry_after: str = ""):
        super().__init__(message, code="rate_limit_exceeded" if status_code == 429 else None)
        self.status_code = status_code
        self.error_type = "rate_limit_error" if status_code == 429 else "invalid_request_error"
        if _relayable(retry_after):
            # The SDKs wait as long as Retry-After says before retrying, instead of guessing.
            self.headers = {"Retry-After": retry_after}


def _relayable(header_value: str) -> bool:
    """Return whether a backend's header value is one to pass on: short, printable ASCII."""
    return 0 < len(header_value) <= 64 and header_value.isascii() and header_value.isprintable()


def completion_failed(outcome) -> OpenAIError:
    """Return the error for a stored outcome with no answer: 500 if an internal error decided it, 404
    for a model the backend lacks, the backend's own 4xx for a pass-through request it refused, else
    502/504."""
    if outcome.internal_error:
        return InternalFailure(f"The server had an error while processing your request ({outcome.public_id}); "
                               f"it is stored with what was gathered.")
    if outcome.model_not_found:
        return ModelNotFound(f"The model `{outcome.ensemble.name}` does not exist: it is not an ensemble, and "
                             f"the backend does not know it either ({outcome.public_id}).", param="model")
    refusal = outcome.passthrough_refusal
    if refusal is not None:
        # Relayed, as a proxy does: the SDK backs off on a 429 and does not retry a 400.
        retry_after = next((c.retry_after for c in outcome.candidates if c.retry_after), "")
        return BackendRefused(refusal, f"The backend model refused the request ({outcome.public_id}): "
                                       f"{outcome.error}", retry_after=retry_after)
    failure = BackendTimedOut if outcome.all_timed_out else BackendFailed
    who = "The backend model" if outcome.ensemble.origin == "passthrough" else "Every ensemble member"
    return failure(f"{who} failed ({outcome.public_id}): {outcome.error}")


# DRF's own exceptions (authentication, method, parsing) mapped to OpenAI codes.
_DRF_CODES = {
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAuthenticated: "invalid_api_key",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.ParseError: "invalid_json",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limit_exceeded",
}


def openai_exception_handler(exc, context):
    """DRF exception handler: return every API error in the OpenAI shape."""
    if isinstance(exc, OpenAIError):
        body = error_body(exc.message, type=exc.error_type, param=exc.param, code=exc.code)
        return Response(body, status=exc.status_code, headers=exc.headers)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None)
        # OpenAI answers a missing or wrong key with type invalid_request_error too.
        response = Response(error_body(str(exc.detail), code=code), status=exc.status_code)
        if getattr(exc, "auth_header", None):
            response["WWW-Authenticate"] = exc.auth_header  # set by DRF for 401s
        return response
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is unreachable, locked or cannot be opened (the API key check and named
        # ensembles read it): an outage, not a bug, so 503, which clients retry; the cause is logged.
        logger.error("database error: %s", exc, exc_info=exc)
        return Response(error_body("The service's database is unavailable; try again shortly.",
                                   type="api_error", code="database_unavailable"), status=503)
    return None  # anything else is a bug: the middleware turns it into a JSON 500 and logs it
