"""Request ids and log formatting: every log line of a request carries its X-Request-ID.

`RequestIdMiddleware` takes the caller's X-Request-ID (when it is a sane token) or makes one,
keeps it in a context variable for the duration of the request (asyncio tasks and sync_to_async
threads inherit it), and echoes it on the response. `RequestIdFilter` puts it on log records;
`JsonFormatter` writes one JSON object per line when TRIO_LOG_JSON=1.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import uuid

from .serving.hybrid import HybridMiddleware

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Accept what proxies and clients commonly send (UUIDs, hex, base64url) and nothing that could
# smuggle a second header or a log line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware(HybridMiddleware):
    """Bind a request id for the request's lifetime and return it as X-Request-ID."""

    def enter(self, request) -> contextvars.Token:
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        return request_id_var.set(request.request_id)

    def leave(self, request, token: contextvars.Token) -> None:
        request_id_var.reset(token)

    def process(self, request, response):
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Add `request_id` to every record (\"-\" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Django logs a 4xx/5xx response (`extra={"request": ...}`) after the middleware has
        # returned, when the context variable is already reset: take the id from the request then.
        record.request_id = request_id_var.get()
        if record.request_id == "-":
            record.request_id = getattr(getattr(record, "request", None), "request_id", "-")
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=` and is data.
# uvicorn's `color_message` repeats the message with terminal colour codes.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id", "color_message"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, request id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
