"""Production settings pass Django's deploy check; HTTPS redirects spare /health; CORS only where configured."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://app.example.com"


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with only `env` (and PATH), as a container would: nothing leaks in from the tests."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


def production(**extra: str) -> dict[str, str]:
    return {"TRIO_ENV": "production", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "trio.example.com", **extra}


def test_production_settings_pass_the_deploy_check_without_a_warning():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_check_does_flag_development_settings():
    """So the test above would notice if production stopped differing from development."""
    result = manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stderr and "SESSION_COOKIE_SECURE" in result.stderr


@pytest.mark.parametrize("env, complaint", [
    ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY"),
    ({"DJANGO_DEBUG": "1"}, "DJANGO_DEBUG"),
    ({"TRIO_API_KEYS": "short"}, "TRIO_API_KEYS"),
])
def test_production_refuses_to_start_with_an_unsafe_setting(env, complaint):
    result = manage("check", **production(**env))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and complaint in result.stderr


@pytest.mark.parametrize("key", [
    "short-but-secret-9f3b",
    secrets.token_urlsafe(50)[:49],  # random, one character short of Django's 50
    "abcd" * 20,  # long, four different characters
    "django-insecure-" + secrets.token_urlsafe(50),  # what startproject writes, for development
], ids=["short", "49-characters", "4-distinct-characters", "django-insecure-prefix"])
def test_production_refuses_to_start_with_a_secret_key_djangos_deploy_check_calls_insecure(key):
    """Django itself only warns (security.W009), and only under `check --deploy`; Trio would then sign
    sessions and CSRF tokens with it."""
    result = manage("check", **production(DJANGO_SECRET_KEY=key))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY is too weak" in result.stderr
    assert "secrets.token_urlsafe(50)" in result.stderr  # how to make a good one
    assert key not in result.stderr + result.stdout  # the message never shows the secret


def test_production_starts_with_a_secret_key_just_strong_enough():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production(DJANGO_SECRET_KEY="abcde" * 10))
    assert result.returncode == 0, result.stderr


def test_development_still_starts_with_a_weak_secret_key():
    result = manage("check", DJANGO_SECRET_KEY="short")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def https(settings):
    """The HTTPS settings production gets by default (TRIO_HTTPS on)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31536000
    return settings


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_except_the_health_probes_and_metrics(https):
    client = Client()
    response = client.get("/v1/models")
    assert response.status_code == 301 and response["Location"] == "https://testserver/v1/models"
    assert client.get("/health").status_code == 200
    assert client.get("/health/ready").status_code != 301
    assert client.get("/metrics").status_code == 200
    assert client.get("/metricsx").status_code == 301
    secure = client.get("/v1/models", secure=True)
    assert secure.status_code == 200 and secure["Strict-Transport-Security"].startswith("max-age=31536000")


@pytest.mark.django_db
def test_behind_a_tls_proxy_its_forwarded_proto_is_trusted(https):
    https.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert Client().get("/v1/models", HTTP_X_FORWARDED_PROTO="https").status_code == 200


def preflight(client: Client, origin: str):
    return client.options("/v1/chat/completions", HTTP_ORIGIN=origin,
                          HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type")


@pytest.mark.django_db
def test_a_cors_preflight_from_an_allowed_origin_is_answered_without_a_key(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    settings.TRIO_API_KEYS = ["browser-key-0123456789"]  # browsers send no Authorization on a preflight
    response = preflight(Client(), ORIGIN)
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert {"authorization", "content-type"} <= set(response["Access-Control-Allow-Headers"].split(", "))
    refused = Client().get("/v1/models", HTTP_ORIGIN=ORIGIN)
    assert refused.status_code == 401 and refused["Access-Control-Allow-Origin"] == ORIGIN  # readable error
    answer = Client().get("/v1/models", HTTP_ORIGIN=ORIGIN, HTTP_AUTHORIZATION="Bearer browser-key-0123456789")
    assert answer.status_code == 200 and answer["Access-Control-Allow-Origin"] == ORIGIN
    assert answer["Access-Control-Expose-Headers"] == "X-Trio-Details"


@pytest.mark.django_db
def test_cors_is_off_by_default_and_for_other_origins_and_outside_v1(settings):
    assert "Access-Control-Allow-Origin" not in preflight(Client(), ORIGIN)
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    assert "Access-Control-Allow-Origin" not in preflight(Client(), "https://evil.example.com")
    outside = Client().options("/admin/login/", HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    assert "Access-Control-Allow-Origin" not in outside
