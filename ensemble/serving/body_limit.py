"""`BodySizeLimit`, an ASGI wrapper rather than Django middleware (see trio_site/asgi.py): it must run
before Django's ASGI handler, which reads the whole body before any middleware sees the request."""
from __future__ import annotations

import re

import orjson
from django.conf import settings

from ..api.errors import error_body


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
