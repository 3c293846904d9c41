"""API keys: a client's key for /v1/, stored as its SHA-256 (ensemble.auth)."""
from django.db import models


class ApiKey(models.Model):
    """A client's key for /v1/. Only its SHA-256 is stored: the key itself is shown once, at creation.

    A plain SHA-256 (no salt, no slow hash) is enough because keys are 256-bit random strings, not
    passwords: there is no dictionary to try, and a fast hash lets a request find its key with one
    lookup on a unique index.
    """

    name = models.CharField(max_length=100, help_text="Who or what uses this key.")
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False, help_text="SHA-256 of the key, hex.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, help_text="Updated at most once a minute.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
