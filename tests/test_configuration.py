"""Configuration from the environment: a value Trio cannot use stops it at start, naming the variable."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from trio_site import env as config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name, raw, parse", [
    # nan passes every `<` check and then breaks each request (asyncio.timeout cannot take it)
    ("TRIO_TIMEOUT", "nan", lambda: config.env_number("TRIO_TIMEOUT", 60.0, minimum=0.001)),
    ("TRIO_DEADLINE", "inf", lambda: config.env_number("TRIO_DEADLINE", 120.0, minimum=0.001)),
    ("TRIO_STRAGGLER_GRACE", "nanx", lambda: config.env_grace("TRIO_STRAGGLER_GRACE", "0.5x")),
    ("TRIO_STRAGGLER_GRACE", "-1", lambda: config.env_grace("TRIO_STRAGGLER_GRACE", "0.5x")),
    ("TRIO_BACKEND_URL", "127.0.0.1:4000", lambda: config.env_http_url("TRIO_BACKEND_URL", "")),
    ("TRIO_BACKEND_URL", "ftp://models.example", lambda: config.env_http_url("TRIO_BACKEND_URL", "")),
    ("TRIO_BACKEND_API_KEY", "sk-a\x01b", lambda: config.env_header_value("TRIO_BACKEND_API_KEY")),
    ("TRIO_BACKEND_API_KEY", "sk-ä", lambda: config.env_header_value("TRIO_BACKEND_API_KEY")),
    ("DATABASE_URL", "garbage", lambda: config.env_database("DATABASE_URL", "")),
    ("DATABASE_URL", "sqlite://", lambda: config.env_database("DATABASE_URL", "")),
    ("PROMETHEUS_MULTIPROC_DIR", "/nonexistent/dir", lambda: config.env_writable_dir("PROMETHEUS_MULTIPROC_DIR")),
    ("TRIO_HTTPS", "maybe", lambda: config.env_bool("TRIO_HTTPS", True)),
])
def test_a_value_that_cannot_be_used_is_refused_naming_the_variable(monkeypatch, name, raw, parse):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ImproperlyConfigured, match=name):
        parse()


@pytest.mark.parametrize("name, raw, parse, expected", [
    ("TRIO_BACKEND_URL", "https://llm.example/v1/", lambda: config.env_http_url("TRIO_BACKEND_URL", ""),
     "https://llm.example/v1/"),
    # A secret mounted from a file, or a CRLF .env, ends with a newline.
    ("TRIO_BACKEND_API_KEY", "sk-abc\r\n", lambda: config.env_header_value("TRIO_BACKEND_API_KEY"), "sk-abc"),
    ("TRIO_BACKEND_API_KEY", "", lambda: config.env_header_value("TRIO_BACKEND_API_KEY"), None),
    # Empty means unset: a blank line in a template must not turn production's HTTPS off.
    ("TRIO_HTTPS", "", lambda: config.env_bool("TRIO_HTTPS", True), True),
    ("TRIO_HTTPS", " off ", lambda: config.env_bool("TRIO_HTTPS", True), False),
    ("TRIO_TIMEOUT", "2.5", lambda: config.env_number("TRIO_TIMEOUT", 60.0, minimum=0.001), 2.5),
])
def test_usable_values_are_read_as_meant(monkeypatch, name, raw, parse, expected):
    monkeypatch.setenv(name, raw)
    assert parse() == expected


# Every variable with a default that is a word, a list or a URL, and the default it stands for.
TEXT_DEFAULTS = {
    "TRIO_BACKEND_URL": ("TRIO_BACKEND_URL", "http://localhost:4000"),
    "TRIO_ENV": ("TRIO_ENV", "development"),
    "TRIO_SELF_VOTE": ("TRIO_SELF_VOTE", "include"),
    "TRIO_BALLOT_FORMAT": ("TRIO_BALLOT_FORMAT", "auto"),
    "TRIO_LOG_LEVEL": ("LOGGING['root']['level']", "INFO"),
    "TRIO_MODELS": ("TRIO_MODELS", ["default", "llama3.2-3b", "mistral"]),
    "TRIO_STRAGGLER_GRACE": ("TRIO_STRAGGLER_GRACE", (0.0, 0.5)),
    "DJANGO_ALLOWED_HOSTS": ("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"]),
    "DATABASE_URL": ("DATABASES['default']['NAME']", str(ROOT / "trio.sqlite3")),
    "TRIO_ADMIN_USERNAME": ("TRIO_ADMIN_USERNAME", "admin"),
}


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_variable_means_its_default(blank):
    """As the README says of every variable: a blank line in an env file must not stop the start."""
    names = ", ".join(expression for expression, _ in TEXT_DEFAULTS.values())
    script = f"from trio_site.settings import *; print(repr([{names}]))"
    env = {**os.environ, **{name: blank for name in TEXT_DEFAULTS}}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert ast.literal_eval(result.stdout) == [default for _, default in TEXT_DEFAULTS.values()]


def manage_check(**env: str) -> subprocess.CompletedProcess:
    """Run `manage.py check` as Trio starts: settings are read, nothing else is mocked."""
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_the_server_does_not_start_with_such_a_value():
    result = manage_check(TRIO_TIMEOUT="nan")
    assert result.returncode != 0
    assert "ImproperlyConfigured: TRIO_TIMEOUT='nan' must be a finite number." in result.stderr


@pytest.mark.parametrize("raw, why", [("1.5", "must be at most 1.0"), ("-0.1", "must be at least 0.0"),
                                      ("half", "is not a valid float")])
def test_a_low_consensus_threshold_outside_0_to_1_stops_the_start(raw, why):
    result = manage_check(TRIO_LOW_CONSENSUS=raw)
    assert result.returncode != 0
    assert f"ImproperlyConfigured: TRIO_LOW_CONSENSUS={raw!r} {why}." in result.stderr


def test_an_allowed_hosts_list_without_a_host_is_refused():
    result = manage_check(DJANGO_ALLOWED_HOSTS=" , ")
    assert result.returncode != 0 and "DJANGO_ALLOWED_HOSTS names no host" in result.stderr
