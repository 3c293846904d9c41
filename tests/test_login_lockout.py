"""Admin logins are locked out per username and client address after repeated wrong passwords (django-axes).

The server trusts X-Forwarded-For from loopback, as gunicorn's uvicorn workers do by default
(FORWARDED_ALLOW_IPS), so a test names its client's address with that header.
"""
import io
import logging
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.db.models import F

from ensemble.keys import api_key_create, keys_required

from .test_configuration import ROOT

PASSWORD = "correct horse battery staple"
ATTACKER = "203.0.113.66"
ELSEWHERE = "198.51.100.7"


@pytest.fixture
def admins(trio, django_user_model):
    """Two superusers with the same password; the lockout settings of production, whatever the environment."""
    for name in ("alice", "bob"):
        django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)


@pytest.fixture
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


def log_in(trio: str, username: str, password: str, address: str = ATTACKER) -> httpx.Response:
    """Post the admin's login form as a new browser at `address` would; a success is a 302 to /admin/."""
    with httpx.Client(base_url=trio, headers={"X-Forwarded-For": address}, timeout=30) as browser:
        browser.get("/admin/login/")
        form = {"username": username, "password": password, "next": "/admin/",
                "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
        return browser.post("/admin/login/?next=/admin/", data=form)


def fail(trio: str, times: int, username: str = "alice", address: str = ATTACKER) -> list[int]:
    return [log_in(trio, username, "wrong", address).status_code for _ in range(times)]


def test_the_fifth_wrong_password_locks_the_pair_out_even_for_the_right_password(trio, admins, limits, caplog):
    assert fail(trio, 4) == [200] * 4  # the form again, with its error
    locked = log_in(trio, "alice", "wrong")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text and "15 minutes" in locked.text
    refused = log_in(trio, "alice", PASSWORD)
    assert refused.status_code == 429 and "sessionid" not in refused.cookies
    assert any("Locking out" in r.getMessage() and ATTACKER in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)


def test_the_same_username_elsewhere_and_another_username_here_still_log_in(trio, admins, limits):
    """The lock holds a username at one address: guessing an admin's name does not lock them out everywhere,
    and one address (an office behind NAT) keeps its other users."""
    fail(trio, 5)
    assert log_in(trio, "alice", PASSWORD).status_code == 429
    assert log_in(trio, "alice", PASSWORD, ELSEWHERE).status_code == 302
    assert log_in(trio, "bob", PASSWORD, ATTACKER).status_code == 302


def test_a_successful_login_resets_the_count(trio, admins, limits):
    fail(trio, 4)
    assert log_in(trio, "alice", PASSWORD).status_code == 302
    assert fail(trio, 4) == [200] * 4
    assert fail(trio, 1) == [429]


def let_time_pass(since_the_last_try: timedelta, username: str = "alice") -> None:
    """Make `username`'s stored attempts as old as if `since_the_last_try` had passed without a try.

    axes counts only attempts younger than the cool-off (by `attempt_time`), so this is the state
    the wait leaves, reached without a wall-clock race: a short real cool-off ran out under load
    before the test could see the lock.
    """
    moved = AccessAttempt.objects.filter(username=username).update(
        attempt_time=F("attempt_time") - since_the_last_try)
    assert moved, f"no attempts stored for {username}"


def test_the_lock_ends_after_the_cool_off(trio, admins, limits):
    fail(trio, 5)
    let_time_pass(timedelta(minutes=14))
    assert log_in(trio, "alice", PASSWORD).status_code == 429  # a minute before the end of 15
    let_time_pass(timedelta(minutes=15, seconds=1))  # since that refused try
    assert log_in(trio, "alice", PASSWORD).status_code == 302


def test_a_refused_try_during_the_lock_starts_the_wait_again(trio, admins, limits):
    fail(trio, 5)
    let_time_pass(timedelta(minutes=14))
    assert log_in(trio, "alice", PASSWORD).status_code == 429
    let_time_pass(timedelta(minutes=14))  # 28 minutes after the fifth failure, 14 after the last try
    assert log_in(trio, "alice", PASSWORD).status_code == 429


def test_the_reset_command_lifts_a_lock(trio, admins, limits):
    fail(trio, 5)
    assert log_in(trio, "alice", PASSWORD).status_code == 429
    call_command("axes_reset_ip_username", ATTACKER, "alice", stdout=io.StringIO())
    assert log_in(trio, "alice", PASSWORD).status_code == 302


def test_staff_see_the_lock_in_the_admin_and_lift_it_by_deleting_the_attempt(trio, admins, limits):
    fail(trio, 5)
    attempt = AccessAttempt.objects.get(username="alice")
    with httpx.Client(base_url=trio, headers={"X-Forwarded-For": ELSEWHERE}, timeout=30) as staff:
        staff.get("/admin/login/")
        staff.post("/admin/login/", data={"username": "bob", "password": PASSWORD,
                                          "csrfmiddlewaretoken": staff.cookies["csrftoken"]})
        listing = staff.get("/admin/axes/accessattempt/")
        assert listing.status_code == 200 and "alice" in listing.text and ATTACKER in listing.text
        deleted = staff.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/",
                             data={"post": "yes", "csrfmiddlewaretoken": staff.cookies["csrftoken"]})
        assert deleted.status_code == 302
    assert log_in(trio, "alice", PASSWORD).status_code == 302


def test_the_api_with_a_valid_key_keeps_working_during_a_lockout(trio, admins, limits):
    keys_required.clear()
    _, key = api_key_create(name="during-lockout")
    try:
        fail(trio, 5)
        assert log_in(trio, "alice", PASSWORD).status_code == 429
        with httpx.Client(base_url=trio, headers={"X-Forwarded-For": ATTACKER}, timeout=30) as client:
            answer = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and answer.json()["object"] == "list"
    finally:
        keys_required.clear()


@pytest.mark.parametrize("env, expected", [
    ({"TRIO_LOGIN_FAILURE_LIMIT": "", "TRIO_LOGIN_COOLOFF_MINUTES": ""}, "(5, 900.0)"),
    ({"TRIO_LOGIN_FAILURE_LIMIT": "10", "TRIO_LOGIN_COOLOFF_MINUTES": "2.5"}, "(10, 150.0)"),
])
def test_the_limit_and_the_cool_off_come_from_the_environment(env, expected):
    script = "from trio_site.settings import *; print((AXES_FAILURE_LIMIT, AXES_COOLOFF_TIME.total_seconds()))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**os.environ, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected
