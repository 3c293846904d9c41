"""API keys for /v1/: hashing, creating, revoking and checking them, and whether any is required.

Only a key's SHA-256 is stored. The API is open while no key is configured (no `ApiKey` row
and `TRIO_API_KEYS` unset), so a fresh install answers at once; the first key created closes
it, and revoking keys never reopens it. HTTP is api/auth's: this module reads no request.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import ApiKey

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


def api_keys_changed(**kwargs) -> None:
    """Forget whether keys are required (connected in EnsembleConfig.ready to saves and deletes of ApiKey)."""
    keys_required.clear()
