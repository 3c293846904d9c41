"""The environment-reading helpers `settings.py` reads every variable through.

Each fails loudly (ImproperlyConfigured) on a value it cannot understand instead of guessing; nothing
outside `trio_site/` reads the environment.
"""
import math
import os
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str = "") -> str:
    """Return the variable's value, or `default` when it is unset or empty.

    Empty means unset for every variable: a blank `TRIO_BACKEND_URL=` left in a template or an
    env file means "the default", not a value to refuse.
    """
    value = os.environ.get(name, "")
    return value if value.strip() else default


def env_bool(name: str, default: bool = False) -> bool:
    """Return the variable as a boolean; anything but a yes/no word is an error.

    Empty means unset (`env_str`): `TRIO_HTTPS=` left blank in a template must not quietly turn
    off what production turns on by default.
    """
    raw = env_str(name)
    if not raw:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_number(name: str, default: float, *, cast=float, minimum: float | None = None,
               maximum: float | None = None):
    """Return the variable parsed by `cast` (int or float), checked against `minimum` and `maximum`;
    empty means unset."""
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a valid {cast.__name__}.") from None
    if not math.isfinite(value):  # nan passes every comparison below, and inf bounds nothing
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number.")
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at most {maximum}.")
    return value


def env_list(name: str, default: str) -> list[str]:
    """Return the comma-separated variable as a list of non-empty, stripped items."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_grace(name: str, default: str) -> tuple[float, float]:
    """Return a grace period as (seconds, factor of the quorum's median latency): "2" or "0.5x"."""
    raw = env_str(name, default).strip().lower()
    relative = raw.endswith("x")
    try:
        value = float(raw[:-1] if relative else raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} must be seconds (e.g. 2) or a factor (e.g. 0.5x).") from None
    if not math.isfinite(value) or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} must be a finite number, not negative.")
    return (0.0, value) if relative else (value, 0.0)


def env_http_url(name: str, default: str) -> str:
    """Return the variable, which must be an http(s) URL with a host."""
    value = env_str(name, default).strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} must be an http:// or https:// URL with a host.")
    return value


def env_header_value(name: str) -> str | None:
    """Return the variable stripped of surrounding whitespace (a secret file's trailing newline),
    or None when empty; it is sent in an HTTP header, so it must be printable ASCII."""
    value = env_str(name).strip()
    if not (value.isascii() and value.isprintable()):
        raise ImproperlyConfigured(f"{name} contains a control or non-ASCII character; "
                                   "an HTTP header cannot carry it.")
    return value or None


def env_database(name: str, default: str) -> dict:
    """Return Django's settings for the database URL in the variable."""
    try:
        database = dj_database_url.parse(env_str(name, default), conn_max_age=0)
    except ValueError as exc:  # an unknown scheme, an unparsable URL
        raise ImproperlyConfigured(f"{name} is not a database URL Trio can use: {exc}") from None
    if database["ENGINE"] == "django.db.backends.sqlite3" and database["NAME"] in ("", ":memory:"):
        # Each connection (each thread) would get its own empty database, without tables.
        raise ImproperlyConfigured(f"{name}: an in-memory SQLite database cannot be shared; give a file, "
                                   "e.g. sqlite:////var/lib/trio/trio.sqlite3.")
    return database


def env_writable_dir(name: str) -> str:
    """Return the variable, which when set must name an existing directory this process can write."""
    value = env_str(name)
    if value and not (os.path.isdir(value) and os.access(value, os.W_OK)):
        raise ImproperlyConfigured(f"{name}={value!r} must be an existing directory this process can write.")
    return value


def env_choice(name: str, default: str, choices: set[str]) -> str:
    """Return the variable, which must be one of `choices`."""
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {sorted(choices)}.")
    return value
