"""Tags and users (issue 24 item 3): `metadata` and `user` stored from chat completions and the Responses
API, never sent to the members, and the `?tag=`, `?user=` and (staff) `?key=` filters of the history,
the leaderboard and the export."""
import csv
import io

import pytest

from ensemble.models import CompletionRequest, RequestTag

from .test_bad_input import GOOD, assert_openai_error

TAGS = {"team": "search", "product": "web"}


def chat(http, **fields):
    response = http.post("/v1/chat/completions", json={**GOOD, **fields})
    assert response.status_code == 200, response.text
    return stored(response.json()["id"])


def stored(public_id: str) -> CompletionRequest:
    return CompletionRequest.objects.get(id=public_id[-32:])  # trio-<hex>, resp_<hex>


# --- storing ---------------------------------------------------------------------------------------


def test_chat_completions_store_metadata_as_tags_and_the_user(http):
    request = chat(http, metadata=TAGS, user="user-42")
    assert (request.metadata, request.user) == (TAGS, "user-42")
    assert {(t.key, t.value) for t in RequestTag.objects.filter(request=request)} == set(TAGS.items())


def test_the_responses_api_stores_metadata_and_user_and_still_echoes_them(http):
    response = http.post("/v1/responses", json={"model": "trio", "input": "hi", "metadata": TAGS, "user": "u7"})
    assert response.status_code == 200, response.text
    assert (response.json()["metadata"], response.json()["user"]) == (TAGS, "u7")
    request = stored(response.json()["id"])
    assert (request.metadata, request.user) == (TAGS, "u7")
    assert RequestTag.objects.filter(request=request).count() == 2


def test_a_request_without_them_stores_no_tags_and_a_blank_user(http):
    request = chat(http)
    assert (request.metadata, request.user) == ({}, "")
    assert not RequestTag.objects.exists()


def test_metadata_and_user_are_not_sent_to_the_members(http, backend):
    request = chat(http, metadata=TAGS, user="user-42")
    assert backend.calls, "the members were called"
    assert all("metadata" not in call.body and "user" not in call.body for call in backend.calls)
    assert "metadata" not in request.params and "user" not in request.params


@pytest.mark.parametrize("metadata", [
    {f"k{n}": "v" for n in range(17)},  # 17 keys
    {"k" * 65: "v"},  # a key over 64 characters
    {"k": "v" * 513},  # a value over 512 characters
    {"k": 1},  # not a string
    {"k": None},
    ["team", "search"],  # not an object
    "team:search",
])
@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", GOOD), ("/v1/responses", {"model": "trio", "input": "hi"})])
def test_metadata_beyond_openais_limits_is_a_400_naming_metadata(http, path, body, metadata):
    assert_openai_error(http.post(path, json={**body, "metadata": metadata}), 400, param="metadata")
    assert not CompletionRequest.objects.exists()


def test_metadata_at_openais_limits_is_accepted(http):
    metadata = {f"{n:02d}" + "k" * 62: "v" * 512 for n in range(16)}
    assert chat(http, metadata=metadata).metadata == metadata


@pytest.mark.parametrize("user", ["u" * 257, 42, ["u"]])
def test_a_user_that_is_not_a_string_of_at_most_256_characters_is_a_400_naming_user(http, user):
    assert_openai_error(http.post("/v1/chat/completions", json={**GOOD, "user": user}), 400, param="user")
