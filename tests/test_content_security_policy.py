"""The pages and the admin send a strict Content-Security-Policy, from the real server.

What the policy does in a browser (nothing blocked on the pages, an injected script blocked) is in
tests/test_browser.py.
"""
import httpx
import pytest
from django.conf import settings
from django.test import Client

from tests.factories import vote

STRICT = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
    "frame-ancestors": {"'none'"},
}


def policy(response: httpx.Response) -> dict[str, set[str]]:
    """Return the response's Content-Security-Policy as {directive: sources}."""
    directives = (part.split() for part in response.headers["Content-Security-Policy"].split(";"))
    return {name: set(sources) for name, *sources in directives}


@pytest.fixture
def staff_http(http, django_user_model):
    """The `http` client, logged in as a superuser (a session made by Django's test client)."""
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("eve", "eve@example.com", "pw-eve-123"))
    http.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    return http


def test_the_pages_and_the_admin_send_the_strict_policy(trio, staff_http):
    request = vote(members=["a", "b"])
    for path in ("/votes/", f"/votes/{request.pk}/", "/leaderboard/", "/admin/",
                 "/admin/ensemble/completionrequest/"):
        response = staff_http.get(path)
        assert response.status_code == 200, path
        assert policy(response) == STRICT, path
    login = httpx.get(f"{trio}/admin/login/")
    assert login.status_code == 200
    assert policy(login) == STRICT

