"""API keys for /v1/: creating, revoking and checking them, and the DRF authentication class.

The API is open while no key is configured (no `ApiKey` row and `TRIO_API_KEYS` unset), so a
fresh install answers at once; the first key created closes it, and revoking keys never reopens
it. Every process logs a warning on the first API request it serves while open: not at start-up,
because `AppConfig.ready()` runs before migrations (and in every management command), and the
ASGI module is imported before the database is known to be reachable, so neither can ask the
database whether keys exist.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from ..db import releases_connection
from ..models import ApiKey

logger = logging.getLogger(__name__)

KEY_PREFIX = "trio-"
PREFIX_LENGTH = 12  # "trio-" and 7 random characters: enough to tell keys apart in the admin
# last_used_at is for humans ("is this key still in use?"): a minute's precision saves a write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def api_key_hash(key: str) -> str:
    """Return the SHA-256 hex digest stored for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Return a new stored key and its plaintext, which is kept nowhere: show it once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
    api_key = ApiKey.objects.create(name=name, prefix=key[:PREFIX_LENGTH], key_hash=api_key_hash(key))
    return api_key, key


def api_keys_revoke(queryset) -> int:
    """Revoke the still-active keys in `queryset` and return how many there were."""
    count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    keys_required.clear()  # update() sends no post_save
    return count


def api_key_check(key: str) -> ApiKey | None:
    """Return the active key equal to `key`, or None; an environment key is an unsaved ApiKey."""
    digest = api_key_hash(key)
    if any(hmac.compare_digest(digest, api_key_hash(k)) for k in settings.TRIO_API_KEYS):
        return ApiKey(name="TRIO_API_KEYS", prefix=key[:PREFIX_LENGTH])  # no row: requests record no key
    # One query on the unique index. Its timing can only tell an attacker about prefixes of
    # SHA-256 digests, which say nothing about the keys themselves.
    try:
        api_key = ApiKey.objects.get(key_hash=digest, revoked_at__isnull=True)
    except ApiKey.DoesNotExist:
        return None
    _record_use(api_key)
    return api_key


def _record_use(api_key: ApiKey) -> None:
    """Set last_used_at, at most once a minute per key even across workers (conditional UPDATE)."""
    now = timezone.now()
    stale = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > stale:
        return  # the row we just read is fresh: no write at all
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=api_key.pk).update(
        last_used_at=now)


class KeysRequired:
    """Return whether /v1/ requires a key; remembered for `ttl` seconds, so an open API costs no query.

    A key created or revoked in this process takes effect at once (signals clear the memo); in
    other worker processes, within `ttl` seconds.
    """

    ttl = 5.0
    timer = time.monotonic

    def __init__(self):
        self._value: bool | None = None
        self._expires = 0.0

    def __call__(self) -> bool:
        if settings.TRIO_API_KEYS:
            return True
        now = self.timer()
        if self._value is None or now >= self._expires:
            # Any row, revoked ones included: revoking a leaked key (the usual answer to a leak)
            # must not open the API to everyone, its leaker included, once no active key is left.
            self._value = ApiKey.objects.exists()
            self._expires = now + self.ttl
        return self._value

    def clear(self) -> None:
        self._value = None


keys_required = KeysRequired()


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="trio-api-keys-changed")
def _api_keys_changed(**kwargs) -> None:
    keys_required.clear()


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
