"""API keys: /v1/ is open until a key exists, then needs `Authorization: Bearer <key>`; keys are stored hashed."""
import asyncio
import hashlib
import io
import logging
from datetime import timedelta

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from ensemble.api.auth import ApiKeyAuthentication
from ensemble.keys import KeysRequired, api_key_check, api_key_create, api_keys_revoke, keys_required
from ensemble.models import ApiKey, CompletionRequest

from .test_bad_input import GOOD, assert_openai_error


@pytest.fixture(autouse=True)
def forget_keys():
    """Keys are remembered for a few seconds per process; the test database is emptied without signals."""
    keys_required.clear()
    yield
    keys_required.clear()


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_the_api_is_open_while_no_key_exists_whatever_key_is_sent(http):
    assert http.post("/v1/chat/completions", json=GOOD).status_code == 200
    # OpenAI SDKs always send a key; an open API must not refuse theirs.
    assert http.post("/v1/chat/completions", json=GOOD, headers=bearer("sk-anything")).status_code == 200
    assert CompletionRequest.objects.filter(api_key=None).count() == 2


def test_an_open_api_logs_a_warning_once_per_process(http, caplog, monkeypatch):
    monkeypatch.setattr(ApiKeyAuthentication, "warned_open", False)
    with caplog.at_level(logging.WARNING, logger="ensemble.api.auth"):
        http.get("/v1/models")
        http.get("/v1/models")
    warnings = [r for r in caplog.records if r.name == "ensemble.api.auth"]
    assert len(warnings) == 1 and "open" in warnings[0].getMessage()


@pytest.mark.parametrize("path, method", [("/v1/chat/completions", "post"), ("/v1/models", "get")])
def test_once_a_key_exists_a_request_without_one_is_401(http, path, method):
    api_key_create(name="someone")
    response = http.request(method.upper(), path, json=GOOD if method == "post" else None)
    error = assert_openai_error(response, 401, code="invalid_api_key")
    assert error["type"] == "invalid_request_error" and error["param"] is None
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer trio-not-a-real-key", "Basic dXNlcjpwYXNz", "Bearer", "trio-x"])
def test_a_wrong_or_malformed_key_is_401(http, header):
    api_key_create(name="someone")
    response = http.post("/v1/chat/completions", json=GOOD, headers={"Authorization": header})
    assert_openai_error(response, 401, code="invalid_api_key")
    assert CompletionRequest.objects.count() == 0


def test_a_revoked_key_is_401(http):
    kept, _ = api_key_create(name="kept")
    revoked, key = api_key_create(name="revoked")
    assert api_keys_revoke(ApiKey.objects.filter(pk=revoked.pk)) == 1
    assert_openai_error(http.post("/v1/chat/completions", json=GOOD, headers=bearer(key)), 401, code="invalid_api_key")


def test_revoking_the_last_key_does_not_open_the_api(http):
    # Revoking a leaked key is the usual answer to a leak: it must lock its holder out, not let everyone in.
    leaked, key = api_key_create(name="leaked")
    api_keys_revoke(ApiKey.objects.filter(pk=leaked.pk))
    assert_openai_error(http.post("/v1/chat/completions", json=GOOD, headers=bearer(key)), 401, code="invalid_api_key")
    assert_openai_error(http.post("/v1/chat/completions", json=GOOD), 401, code="invalid_api_key")
    assert CompletionRequest.objects.count() == 0


def test_a_valid_key_is_answered_and_the_stored_request_records_it(http):
    api_key, key = api_key_create(name="open-webui")
    response = http.post("/v1/chat/completions", json=GOOD, headers=bearer(key))
    assert response.status_code == 200, response.text
    stored = CompletionRequest.objects.get()
    assert stored.public_id == response.json()["id"]
    assert stored.api_key == api_key
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_the_command_prints_a_key_that_works(http):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "ci", stdout=out, stderr=err)
    key = out.getvalue().strip()
    assert key.startswith("trio-") and len(key) > 40
    assert "only this once" in err.getvalue()
    assert http.get("/v1/models", headers=bearer(key)).status_code == 200
    assert http.get("/v1/models").status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("name, complaint", [("  ", "cannot be blank"), ("x" * 101, "at most 100 characters")])
def test_the_command_refuses_a_name_the_admin_would_refuse(name, complaint):
    with pytest.raises(CommandError, match=complaint):
        call_command("create_api_key", name, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


def test_the_key_is_stored_hashed_and_its_plaintext_is_nowhere_in_the_database(http):
    api_key, key = api_key_create(name="secret")
    assert http.post("/v1/chat/completions", json=GOOD, headers=bearer(key)).status_code == 200
    assert api_key.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(api_key.prefix) and len(api_key.prefix) < len(key) / 3
    secret_part = key[len(api_key.prefix):]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                assert not any(secret_part in str(value) for value in row), table


def test_keys_from_trio_api_keys_close_the_api_and_work_without_a_row(http, settings):
    settings.TRIO_API_KEYS = ["env-key-0123456789abcdef"]
    assert http.get("/v1/models").status_code == 401
    assert http.post("/v1/chat/completions", json=GOOD, headers=bearer("env-key-0123456789abcdef")).status_code == 200
    assert CompletionRequest.objects.get().api_key is None


@pytest.mark.django_db
def test_last_used_at_is_written_at_most_once_a_minute(django_assert_num_queries):
    api_key, key = api_key_create(name="busy")
    with django_assert_num_queries(2):  # the lookup, then the first UPDATE
        api_key_check(key)
    with django_assert_num_queries(1):  # fresh: the lookup alone
        api_key_check(key)
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=two_minutes_ago)
    api_key_check(key)
    api_key.refresh_from_db()
    assert api_key.last_used_at > two_minutes_ago


@pytest.mark.django_db
def test_whether_keys_exist_is_asked_once_per_ttl_not_per_request(django_assert_num_queries):
    now = [0.0]
    required = KeysRequired()
    required.timer = lambda: now[0]
    with django_assert_num_queries(1):
        assert [required() for _ in range(50)] == [False] * 50
    api_key_create(name="late")
    now[0] += required.ttl
    assert required() is True


@pytest.mark.django_db
def test_the_admin_revokes_keys_and_cannot_show_or_add_one(admin_client):
    api_key, key = api_key_create(name="leaked")
    changelist = "/admin/ensemble/apikey/"
    page = admin_client.get(changelist)
    assert page.status_code == 200 and api_key.prefix in page.content.decode()
    assert admin_client.get(changelist + "add/").status_code == 403
    detail = admin_client.get(f"{changelist}{api_key.pk}/change/").content.decode()
    assert api_key.key_hash in detail and key not in detail
    admin_client.post(changelist, {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert api_key_check(key) is None


@pytest.mark.django_db
def test_staff_who_may_only_view_keys_cannot_revoke_them(client, django_user_model):
    from django.contrib.auth.models import Permission

    api_key, key = api_key_create(name="in-use")
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    client.force_login(viewer)
    changelist = "/admin/ensemble/apikey/"
    assert client.get(changelist).status_code == 200
    client.post(changelist, {"action": "revoke", "_selected_action": [api_key.pk]})
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert api_key_check(key) is not None


def test_concurrent_requests_with_keys_are_all_authenticated_and_attributed(trio):
    # The API's sync calls (key lookups included) share one thread per worker: under 32
    # concurrent requests, each must still see its own key, and none may be refused or lost.
    keys = [api_key_create(name=f"client-{n}") for n in range(4)]

    async def fire():
        async with httpx.AsyncClient(base_url=trio, timeout=30) as client:
            return await asyncio.gather(*(
                client.post("/v1/chat/completions", json=GOOD, headers=bearer(keys[n % 4][1])) for n in range(32)))

    responses = asyncio.run(fire())

    assert [r.status_code for r in responses] == [200] * 32
    stored = {request.public_id: request.api_key_id for request in CompletionRequest.objects.all()}
    assert stored == {r.json()["id"]: keys[n % 4][0].pk for n, r in enumerate(responses)}
