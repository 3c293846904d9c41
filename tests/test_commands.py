"""Usage errors of `manage.py ensure_admin` and `manage.py fakebackend`, from real invocations."""
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

ROOT = Path(__file__).resolve().parent.parent


def ensure_admin() -> str:
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


# --- ensure_admin --------------------------------------------------------------------------------

@pytest.mark.django_db
def test_ensure_admin_creates_the_named_superuser_once(settings):
    settings.TRIO_ADMIN_USERNAME, settings.TRIO_ADMIN_PASSWORD = "root", "correct-horse"

    assert "Created admin user 'root' (password from TRIO_ADMIN_PASSWORD)." in ensure_admin()
    assert "already exists; nothing to do" in ensure_admin()
    assert get_user_model().objects.get(username="root").check_password("correct-horse")


@pytest.mark.django_db
def test_ensure_admin_refuses_a_weak_password_in_production_and_warns_elsewhere(settings):
    settings.TRIO_ADMIN_USERNAME, settings.TRIO_ADMIN_PASSWORD = "root", "1"

    settings.TRIO_ENV = "production"
    with pytest.raises(CommandError, match="too weak for production: This password is too short"):
        ensure_admin()
    assert not get_user_model().objects.exists()

    settings.TRIO_ENV = "development"
    err = io.StringIO()
    call_command("ensure_admin", stdout=io.StringIO(), stderr=err)
    assert "TRIO_ADMIN_PASSWORD is weak" in err.getvalue()
    assert get_user_model().objects.get(username="root").check_password("1")


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["", "  "])
def test_ensure_admin_rejects_an_empty_username(settings, username):
    settings.TRIO_ADMIN_USERNAME = username

    with pytest.raises(CommandError, match="TRIO_ADMIN_USERNAME is empty"):
        ensure_admin()
    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_ensure_admin_does_not_promote_an_existing_user_of_that_name(settings):
    settings.TRIO_ADMIN_USERNAME = "admin"
    get_user_model().objects.create_user("admin", password="someone-elses")

    with pytest.raises(CommandError, match="A user named 'admin' exists but is not a superuser") as error:
        ensure_admin()

    assert "Set TRIO_ADMIN_USERNAME to another name" in str(error.value)
    user = get_user_model().objects.get()
    assert not (user.is_superuser or user.is_staff) and user.check_password("someone-elses")


# --- fakebackend ---------------------------------------------------------------------------------

def fakebackend(*args: str) -> subprocess.CompletedProcess:
    """Run `manage.py fakebackend *args` in a child process, which must exit by itself."""
    # A child process: before these were checked, a bad port served forever on another port.
    return subprocess.run([sys.executable, "manage.py", "fakebackend", *args], cwd=ROOT, env=os.environ,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "http"])
def test_fakebackend_rejects_a_port_outside_0_to_65535(port):
    result = fakebackend(f"--port={port}")

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument --port: '{port}' is not a port number from 0 to 65535" in result.stderr
    assert "Fake backend on" not in result.stdout


def test_fakebackend_rejects_an_unknown_log_level():
    result = fakebackend("--log-level", "loud")

    assert result.returncode == 2, result.stdout + result.stderr
    assert "argument --log-level: invalid choice: 'loud'" in result.stderr


def test_fakebackend_offers_exactly_the_log_levels_uvicorn_knows():
    from uvicorn.config import LOG_LEVELS

    from ensemble.management.commands import fakebackend as command

    assert set(command.LOG_LEVELS) == set(LOG_LEVELS)
