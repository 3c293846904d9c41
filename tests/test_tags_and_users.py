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


def test_a_stored_response_is_read_back_with_its_metadata_and_user(http):
    created = http.post("/v1/responses", json={"model": "trio", "input": "hi", "metadata": TAGS, "user": "u7"}).json()
    again = http.get(f"/v1/responses/{created['id']}")
    assert again.status_code == 200, again.text
    assert (again.json()["metadata"], again.json()["user"]) == (TAGS, "u7")


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


# --- filtering ---------------------------------------------------------------------------------------

from django.core.management import CommandError, call_command  # noqa: E402

from ensemble.keys import api_key_create, keys_required  # noqa: E402
from ensemble.leaderboard.rollups import rollup_closed_days  # noqa: E402

from .factories import ago  # noqa: E402


@pytest.fixture(autouse=True)
def forget_keys():
    """Keys are remembered for a few seconds per process; the test database is emptied without signals."""
    keys_required.clear()
    yield
    keys_required.clear()


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


@pytest.fixture
def tagged(http):
    """Four requests through the API: both tags (key "app"), one tag only, the other only, neither (user u2)."""
    _, key = api_key_create(name="app")
    _, other = api_key_create(name="other")

    def ask(metadata, user, bearer):
        response = http.post("/v1/chat/completions", json={**GOOD, "metadata": metadata, "user": user},
                             headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 200, response.text
        return stored(response.json()["id"])

    return {
        "both": ask({"team": "search", "product": "web:v2"}, "u1", key),
        "team": ask({"team": "search", "product": "app"}, "u1", other),
        "product": ask({"team": "ads", "product": "web:v2"}, "u1", other),
        "neither": ask({}, "u2", other),
    }


def participated(board: dict) -> int:
    """Return how many decided requests a leaderboard counted (every request here has all three members)."""
    counts = {row["participated"] for row in board["models"]}
    assert len(counts) <= 1, board["models"]
    return counts.pop() if counts else 0


def shown(html: str, requests) -> set[str]:
    return {name for name, request in requests.items() if f"/votes/{request.pk}/" in html}


BOTH_TAGS = {"tag": ["team:search", "product:web:v2"]}  # a value may hold colons: split on the first


def test_the_history_keeps_requests_with_every_tag_given(staff, tagged):
    assert shown(staff.get("/votes/", BOTH_TAGS).content.decode(), tagged) == {"both"}
    assert shown(staff.get("/votes/", {"tag": "team:search"}).content.decode(), tagged) == {"both", "team"}


def test_the_history_filters_by_user_and_by_api_key_name(staff, tagged):
    assert shown(staff.get("/votes/", {"user": "u2"}).content.decode(), tagged) == {"neither"}
    assert shown(staff.get("/votes/", {"key": "app"}).content.decode(), tagged) == {"both"}
    assert shown(staff.get("/votes/", {"key": "other", "user": "u1", "tag": "team:ads"}).content.decode(),
                 tagged) == {"product"}


def test_the_history_shows_the_filters_in_its_controls(staff, tagged):
    html = staff.get("/votes/", {**BOTH_TAGS, "user": "u1", "key": "app"}).content.decode()
    for value in ("team:search", "product:web:v2", "u1", "app"):
        assert f'value="{value}"' in html
    assert "1 request match" in html


@pytest.mark.parametrize("query", [{"tag": "no-colon"}, {"tag": ":value"}, {"tag": "k" * 65 + ":v"},
                                   {"user": "u" * 257}, {"key": "k" * 101}])
def test_a_bad_filter_is_a_form_error_on_the_pages_and_not_applied(staff, tagged, query):
    for path in ("/votes/", "/leaderboard/"):
        response = staff.get(path, query)
        assert response.status_code == 200
        assert 'class="errors"' in response.content.decode(), path
    assert shown(staff.get("/votes/", query).content.decode(), tagged) == set(tagged)


@pytest.mark.parametrize("query,param", [({"tag": "no-colon"}, "tag"), ({"tag": "k:" + "v" * 513}, "tag"),
                                         ({"user": "u" * 257}, "user"), ({"key": "k" * 101}, "key")])
def test_a_bad_filter_is_a_400_naming_it_on_the_json(staff, tagged, query, param):
    assert_openai_error(staff.get("/leaderboard.json", query), 400, param=param)


def test_the_leaderboard_counts_only_requests_with_every_tag(staff, tagged):
    assert participated(staff.get("/leaderboard.json").json()) == 4
    assert participated(staff.get("/leaderboard.json", {"tag": "team:search"}).json()) == 2
    board = staff.get("/leaderboard.json", BOTH_TAGS).json()
    assert participated(board) == 1 and board["tags"] == BOTH_TAGS["tag"]
    assert participated(staff.get("/leaderboard.json", {"tag": "team:nobody"}).json()) == 0


def test_the_leaderboard_filters_by_user_and_for_staff_by_key(staff, tagged):
    assert participated(staff.get("/leaderboard.json", {"user": "u1"}).json()) == 3
    board = staff.get("/leaderboard.json", {"key": "other", "user": "u1"}).json()
    assert participated(board) == 2 and (board["user"], board["key"]) == ("u1", "other")


def test_an_api_key_may_filter_the_leaderboard_by_tag_but_not_by_key(http, tagged):
    _, key = api_key_create(name="dashboard")
    headers = {"Authorization": f"Bearer {key}"}
    assert participated(http.get("/leaderboard.json", params={"tag": "team:search"}, headers=headers).json()) == 2
    assert_openai_error(http.get("/leaderboard.json", params={"key": "app"}, headers=headers), 403, param="key")


def test_the_filters_compose_with_window_and_ensemble(staff, tagged):
    CompletionRequest.objects.filter(pk=tagged["team"].pk).update(created_at=ago(days=10))
    CompletionRequest.objects.filter(pk=tagged["product"].pk).update(ensemble="other")
    team = {"tag": "team:search"}
    assert participated(staff.get("/leaderboard.json", {**team, "window": "7d"}).json()) == 1
    assert participated(staff.get("/leaderboard.json", {**team, "window": "all"}).json()) == 2
    assert participated(staff.get("/leaderboard.json", {"tag": "product:web:v2", "ensemble": "other"}).json()) == 1
    assert participated(staff.get("/leaderboard.json", {"tag": "product:web:v2", "ensemble": "trio"}).json()) == 1
    assert shown(staff.get("/votes/", {**team, "date_from": ago(days=2).date()}).content.decode(), tagged) == {"both"}


def test_a_filtered_leaderboard_reads_rolled_up_days_live(staff, tagged):
    # Every request on a closed, rolled-up day: the rollup sums all four, whatever their tags.
    CompletionRequest.objects.update(created_at=ago(days=3))
    assert rollup_closed_days()
    assert participated(staff.get("/leaderboard.json", {"window": "7d"}).json()) == 4
    assert participated(staff.get("/leaderboard.json", {"window": "7d", **BOTH_TAGS}).json()) == 1
    assert participated(staff.get("/leaderboard.json", {"window": "30d", "user": "u2"}).json()) == 1


def test_the_leaderboard_page_shows_the_filters_and_counts_the_tagged_requests(staff, tagged):
    html = staff.get("/leaderboard/", {"tag": "team:nobody"}).content.decode()
    assert 'value="team:nobody"' in html and "No requests" in html
    html = staff.get("/leaderboard/", BOTH_TAGS).content.decode()
    assert 'value="product:web:v2"' in html and "tag team:search" in html and "read live" in html


def export(*args) -> list[dict]:
    import json
    out = io.StringIO()
    call_command("export_votes", *args, stdout=out, stderr=io.StringIO())
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_the_export_filters_by_tags_user_key_and_ensemble_and_carries_metadata(tagged):
    rows = export("--tag", "team:search", "--tag", "product:web:v2")
    assert [row["id"] for row in rows] == [tagged["both"].public_id]
    assert (rows[0]["metadata"], rows[0]["user"]) == ({"team": "search", "product": "web:v2"}, "u1")
    assert {row["id"] for row in export("--user", "u2")} == {tagged["neither"].public_id}
    assert {row["id"] for row in export("--key", "other", "--tag", "team:search")} == {tagged["team"].public_id}
    assert len(export("--ensemble", "trio", "--user", "u1")) == 3 and not export("--ensemble", "nope")
    out = io.StringIO()
    call_command("export_votes", "--format", "csv", "--user", "u2", stdout=out, stderr=io.StringIO())
    assert {row["request_user"] for row in csv.DictReader(io.StringIO(out.getvalue()))} == {"u2"}


def test_a_bad_export_filter_is_a_command_error(tagged):
    with pytest.raises(CommandError, match="--tag"):
        export("--tag", "no-colon")


def test_prune_deletes_the_tags_with_their_requests(tagged):
    CompletionRequest.objects.filter(pk=tagged["both"].pk).update(created_at=ago(days=100))
    out = io.StringIO()
    call_command("prune_votes", "--older-than", "30d", stdout=out, stderr=io.StringIO())
    assert "2 tag(s)" in out.getvalue()
    assert RequestTag.objects.count() == 4 and not RequestTag.objects.filter(request=tagged["both"]).exists()
