"""The DRF authentication class of /v1/ over ensemble.keys, and the bearer key of a request.

The API is open while no key is configured (see ensemble.keys). Every process logs a warning on
the first API request it serves while open: not at start-up, because `AppConfig.ready()` runs
before migrations (and in every management command), and the ASGI module is imported before the
database is known to be reachable, so neither can ask the database whether keys exist.
"""
from __future__ import annotations

import logging

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from ..db import releases_connection
from ..keys import api_key_check, keys_required

logger = logging.getLogger(__name__)


class ApiKeyAuthentication(BaseAuthentication):
    """Accept `Authorization: Bearer <key>`; refuse requests without a valid key once any key exists."""

    warned_open = False  # per process: the open-API warning is logged once

    @releases_connection
    def authenticate(self, request):
        if not keys_required():
            self._warn_open()
            return None  # open: ignore whatever key is sent (OpenAI SDKs always send one)
        key = bearer_key(request)
        if key is None:
            raise exceptions.NotAuthenticated(
                "You didn't provide an API key. Send it in an Authorization header: Bearer YOUR_KEY.")
        api_key = api_key_check(key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Incorrect API key provided.")
        return (None, api_key)

    def authenticate_header(self, request):
        # Returning a challenge is what makes DRF answer 401 rather than 403.
        return 'Bearer realm="trio"'

    @classmethod
    def _warn_open(cls) -> None:
        if not cls.warned_open:
            cls.warned_open = True
            logger.warning("The API is open: no API key exists and TRIO_API_KEYS is unset, so /v1/ "
                           "answers anyone. Create a key with `python manage.py create_api_key NAME`.")


def bearer_key(request) -> str | None:
    """Return the key of an `Authorization: Bearer <key>` header, or None when there is none."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Describe ApiKeyAuthentication in the OpenAPI schema as HTTP bearer auth."""

    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A Trio API key (`trio-…`), required once any key exists."}
