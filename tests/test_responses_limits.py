"""The Responses API's reads of stored conversations and its input limits, held to what chat's are.

A stored response belongs to the API key that asked for it; a continued conversation is a request
body in all but name, so it stays within TRIO_MAX_BODY_BYTES and MAX_CONTENT_PARTS like one.
"""
import httpx
import pytest

from ensemble.keys import keys_required
from ensemble.api.fields import MAX_CONTENT_PARTS
from ensemble.models import CompletionRequest

ENV_KEY_A = "trio-env-key-a-0123456789abcdef"
ENV_KEY_B = "trio-env-key-b-0123456789abcdef"


@pytest.fixture
def env_keys(trio_settings):
    trio_settings.TRIO_API_KEYS = [ENV_KEY_A, ENV_KEY_B]
    yield
    keys_required.clear()


def ask(http, key: str | None = None, **body):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return http.post("/v1/responses", json={"model": "trio", **body}, headers=headers)


def test_a_trio_api_keys_key_cannot_read_or_continue_another_such_keys_response(http, env_keys, backend):
    theirs = ask(http, ENV_KEY_A, input="A secret question.").json()["id"]
    backend.reset()

    read = http.get(f"/v1/responses/{theirs}", headers={"Authorization": f"Bearer {ENV_KEY_B}"})
    continued = ask(http, ENV_KEY_B, previous_response_id=theirs, input="What did they ask?")

    assert read.status_code == 404 and "secret" not in read.text
    assert continued.status_code == 404 and continued.json()["error"]["param"] == "previous_response_id"
    assert "TRIO_API_KEYS" in continued.json()["error"]["message"] and not backend.calls


def test_a_trio_api_keys_key_cannot_read_what_the_open_api_stored(http, trio_settings, backend):
    asked_while_open = ask(http, input="Asked before any key existed.").json()["id"]
    trio_settings.TRIO_API_KEYS = [ENV_KEY_A]
    try:
        read = http.get(f"/v1/responses/{asked_while_open}", headers={"Authorization": f"Bearer {ENV_KEY_A}"})
    finally:
        keys_required.clear()

    assert read.status_code == 404 and "Asked before" not in read.text


def test_more_than_ten_thousand_input_parts_are_400_as_in_chat(http, backend):
    part = {"type": "input_text", "text": ""}
    response = ask(http, input=[{"role": "user", "content": [part] * 6000},
                                {"role": "user", "content": [part] * (MAX_CONTENT_PARTS - 6000 + 1)}])

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input[1].content" and not backend.calls


def test_a_continued_conversation_over_the_body_limit_is_413_before_any_call(http, trio_settings, backend):
    trio_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20_000
    first = ask(http, model="alpha", input="x" * 15_000)
    assert first.status_code == 200, first.text
    backend.reset()

    continued = ask(http, model="alpha", previous_response_id=first.json()["id"], input="y" * 15_000)

    assert continued.status_code == 413, continued.text
    assert continued.json()["error"]["param"] == "previous_response_id" and not backend.calls
    assert CompletionRequest.objects.count() == 1
    assert ask(http, model="alpha", previous_response_id=first.json()["id"], input="Go on.").status_code == 200


def test_a_continued_conversation_over_ten_thousand_parts_is_400(http, backend):
    part = {"type": "input_text", "text": ""}
    first = ask(http, model="alpha", input=[{"role": "user", "content": [part] * MAX_CONTENT_PARTS}])
    assert first.status_code == 200, first.text
    backend.reset()

    continued = ask(http, model="alpha", previous_response_id=first.json()["id"],
                    input=[{"role": "user", "content": [part] * 2}])

    assert continued.status_code == 400, continued.text
    assert continued.json()["error"]["param"] == "previous_response_id" and not backend.calls


def test_a_key_of_the_database_still_continues_its_own_response(trio, backend):
    from ensemble.keys import api_key_create

    _, key = api_key_create(name="mine")
    try:
        with httpx.Client(base_url=trio, timeout=30) as http:
            first = ask(http, key, input="Name a prime.").json()["id"]
            continued = ask(http, key, previous_response_id=first, input="And another?")
            read = http.get(f"/v1/responses/{first}", headers={"Authorization": f"Bearer {key}"})
    finally:
        keys_required.clear()

    assert (continued.status_code, read.status_code) == (200, 200)
