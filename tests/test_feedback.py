"""Human feedback: POST /v1/feedback with the key that made the request, the staff form on the vote page,
the admin's list, and what the leaderboard makes of it."""
import csv
import io
import json

import httpx
import openai
import pytest
from django.core.management import call_command

from ensemble.keys import api_key_create, keys_required
from ensemble.models import Feedback

from .factories import ago, vote
from .test_api_keys import bearer, forget_keys  # noqa: F401  (an autouse fixture: keys forgotten per test)
from .test_bad_input import GOOD, assert_openai_error


def answer_id(http, headers=None) -> str:
    response = http.post("/v1/chat/completions", json=GOOD, headers=headers or {})
    assert response.status_code == 200, response.text
    return response.json()["id"]


# --- the API -------------------------------------------------------------------------------------


def test_feedback_on_an_answer_is_stored_and_answered_with_what_was_stored(http):
    api_key, key = api_key_create(name="app")
    completion = http.post("/v1/chat/completions", json=GOOD, headers=bearer(key)).json()
    loser = next(c["index"] for c in completion["trio"]["candidates"] if c["index"] != completion["trio"]["winner_index"])
    response = http.post("/v1/feedback", headers=bearer(key), json={
        "id": completion["id"], "score": 0.25, "preferred_index": loser, "comment": "The other one was right."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "feedback" and body["id"] == completion["id"] and body["source"] == "api"
    assert (body["score"], body["preferred_index"], body["comment"]) == (0.25, loser, "The other one was right.")
    stored = Feedback.objects.get()
    assert stored.request.public_id == completion["id"] and stored.api_key == api_key and stored.user is None
    assert (stored.score, stored.preferred_candidate.index, stored.comment) == (0.25, loser, "The other one was right.")


def test_feedback_given_again_replaces_the_earlier_one(http):
    _, key = api_key_create(name="app")
    request_id = answer_id(http, bearer(key))
    first = http.post("/v1/feedback", headers=bearer(key),
                      json={"id": request_id, "score": 0, "preferred_index": 1, "comment": "bad"}).json()
    second = http.post("/v1/feedback", headers=bearer(key), json={"id": request_id, "score": 1})
    assert second.status_code == 200
    assert (second.json()["score"], second.json()["preferred_index"], second.json()["comment"]) == (1, None, "")
    assert second.json()["created_at"] == first["created_at"]
    stored = Feedback.objects.get()
    assert (stored.score, stored.preferred_candidate, stored.comment) == (1, None, "")


def test_an_unknown_id_and_another_keys_request_are_the_same_404(http):
    _, mine = api_key_create(name="mine")
    _, theirs = api_key_create(name="theirs")
    their_request = answer_id(http, bearer(theirs))
    errors = []
    for request_id in (their_request, "trio-" + "0" * 32, "not-an-id"):
        response = http.post("/v1/feedback", headers=bearer(mine), json={"id": request_id, "score": 1})
        errors.append(assert_openai_error(response, 404, param="id", code="request_not_found"))
    # Nothing in the answer tells another key's request from one that does not exist, but the id itself.
    assert len({e["message"].replace(their_request, "ID").replace("trio-" + "0" * 32, "ID")
                .replace("not-an-id", "ID") for e in errors}) == 1
    # Even an index its candidates do not have: the request is not found before its candidates are looked at.
    assert_openai_error(http.post("/v1/feedback", headers=bearer(mine),
                                  json={"id": their_request, "score": 1, "preferred_index": 99}), 404)
    assert not Feedback.objects.exists()


def test_feedback_needs_a_key_once_keys_exist(http):
    _, key = api_key_create(name="app")
    request_id = answer_id(http, bearer(key))
    assert_openai_error(http.post("/v1/feedback", json={"id": request_id, "score": 1}), 401, code="invalid_api_key")


def test_a_trio_api_keys_key_cannot_rate_requests_it_cannot_be_told_to_have_made(http, settings):
    settings.TRIO_API_KEYS = ["env-key-0123456789abcdef"]
    request_id = answer_id(http, bearer("env-key-0123456789abcdef"))
    response = http.post("/v1/feedback", headers=bearer("env-key-0123456789abcdef"), json={"id": request_id, "score": 1})
    assert_openai_error(response, 404, param="id", code="request_not_found")


def test_without_keys_feedback_is_as_open_as_the_completions(http):
    request_id = answer_id(http)
    response = http.post("/v1/feedback", json={"id": request_id, "score": 0.5}, headers=bearer("sk-anything"))
    assert response.status_code == 200, response.text
    assert Feedback.objects.get().api_key is None


def test_the_id_of_a_responses_api_answer_takes_feedback_too(http):
    _, key = api_key_create(name="app")
    response = http.post("/v1/responses", json={"model": "trio", "input": "hi"}, headers=bearer(key))
    assert response.status_code == 200, response.text
    feedback = http.post("/v1/feedback", headers=bearer(key), json={"id": response.json()["id"], "score": 0.75})
    assert feedback.status_code == 200, feedback.text
    assert Feedback.objects.get().request.public_id == response.json()["id"]


@pytest.mark.parametrize("change, param", [
    ({"score": True}, "score"),
    ({"score": "0.5"}, "score"),
    ({"score": "NaN"}, "score"),
    ({"score": 1.01}, "score"),
    ({"score": -0.1}, "score"),
    ({"score": None}, "score"),
    ({"score": [1]}, "score"),
    ({"preferred_index": 3}, "preferred_index"),
    ({"preferred_index": -1}, "preferred_index"),
    ({"preferred_index": True}, "preferred_index"),
    ({"preferred_index": 1.0}, "preferred_index"),
    ({"preferred_index": "1"}, "preferred_index"),
    ({"comment": "x" * 2001}, "comment"),
    ({"comment": 5}, "comment"),
    ({"comment": "nul \x00 here"}, "comment"),
    ({"id": 42}, "id"),
    ({"stars": 5}, "stars"),
])
def test_each_bad_field_is_an_openai_shaped_400_and_nothing_is_stored(http, change, param):
    body = {"id": answer_id(http), "score": 1, **change}
    assert_openai_error(http.post("/v1/feedback", json=body), 400, param=param)
    assert not Feedback.objects.exists()


@pytest.mark.parametrize("body", [{"score": 1}, {"id": "trio-" + "0" * 32}, {}])
def test_a_missing_id_or_score_is_a_400(http, body):
    assert_openai_error(http.post("/v1/feedback", json=body), 400)


@pytest.mark.parametrize("content", [b'{"id": "x", "score": NaN}', b"[1]", b"not json"])
def test_a_body_that_is_no_json_object_is_a_400(http, content):
    response = http.post("/v1/feedback", content=content, headers={"Content-Type": "application/json"})
    assert_openai_error(response, 400, code="invalid_json")


def test_a_candidate_that_failed_cannot_be_the_preferred_one(http, settings):
    settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@status=500", "gamma@quality=0.3"]
    request_id = answer_id(http)
    response = http.post("/v1/feedback", json={"id": request_id, "score": 1, "preferred_index": 1})
    assert "did not answer" in assert_openai_error(response, 400, param="preferred_index")["message"]
    assert http.post("/v1/feedback", json={"id": request_id, "score": 1, "preferred_index": 2}).status_code == 200


def test_the_readme_sdk_call_sends_feedback(trio, http):
    _, key = api_key_create(name="sdk")
    client = openai.OpenAI(base_url=f"{trio}/v1", api_key=key, max_retries=0, timeout=30)
    completion = client.chat.completions.create(model="trio", messages=[{"role": "user", "content": "hi"}])
    # As the README shows it:
    response = client.post("/feedback", body={"id": completion.id, "score": 1, "preferred_index": 0},
                           cast_to=httpx.Response)
    assert response.status_code == 200 and response.json()["preferred_index"] == 0
    assert Feedback.objects.get().request.public_id == completion.id
    with pytest.raises(openai.NotFoundError):
        client.post("/feedback", body={"id": "trio-" + "0" * 32, "score": 1}, cast_to=httpx.Response)


# --- the vote page and the admin -------------------------------------------------------------------


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True)


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def voted():
    return vote(members=["alpha", "beta", "gamma"], ballots={0: ([0, 1], 0), 1: ([0, 1], 1), 2: ([0], 0)})


@pytest.mark.django_db
def test_staff_give_feedback_from_the_vote_page_and_see_it_there(staff, staff_user, voted):
    page = staff.get(f"/votes/{voted.pk}/").content.decode()
    assert "No feedback yet." in page and 'action="/votes/' in page and "csrfmiddlewaretoken" in page
    response = staff.post(f"/votes/{voted.pk}/feedback/", {"score": "0.4", "preferred_index": "1", "comment": "Beta's <b>"})
    assert response.status_code == 302 and response["Location"] == f"/votes/{voted.pk}/#feedback"
    stored = Feedback.objects.get()
    assert (stored.score, stored.preferred_candidate.model, stored.source, stored.user) == (0.4, "beta", "staff", staff_user)
    page = staff.get(f"/votes/{voted.pk}/").content.decode()
    assert "Score <strong>0.40</strong>" in page and "preferred beta" in page and "eve (staff)" in page
    assert "Beta&#x27;s &lt;b&gt;" in page and "Replace feedback" in page
    staff.post(f"/votes/{voted.pk}/feedback/", {"score": "1", "preferred_index": ""})
    stored = Feedback.objects.get()
    assert (stored.score, stored.preferred_candidate, stored.comment) == (1, None, "")


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"score": "1.5"}, {"score": "nan"}, {"score": ""}, {"score": "1", "preferred_index": "7"},
                                  {"score": "1", "comment": "x" * 2001}])
def test_a_bad_staff_form_is_shown_again_with_its_error_and_stores_nothing(staff, voted, data):
    response = staff.post(f"/votes/{voted.pk}/feedback/", data)
    assert response.status_code == 400 and 'class="errorlist' in response.content.decode()
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_the_staff_form_needs_a_csrf_token(staff_user, voted):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)
    assert client.post(f"/votes/{voted.pk}/feedback/", {"score": "1"}).status_code == 403
    token = client.get(f"/votes/{voted.pk}/").context["csrf_token"]
    assert client.post(f"/votes/{voted.pk}/feedback/", {"score": "1", "csrfmiddlewaretoken": token}).status_code == 302
    assert Feedback.objects.count() == 1


@pytest.mark.django_db
def test_only_staff_may_give_feedback_on_the_vote_page(client, django_user_model, voted):
    response = client.post(f"/votes/{voted.pk}/feedback/", {"score": "1"})
    assert response.status_code == 302 and "/login" in response["Location"]
    client.force_login(django_user_model.objects.create_user("mallory", password="pw-mal-123"))
    assert client.post(f"/votes/{voted.pk}/feedback/", {"score": "1"}).status_code == 403
    assert client.get(f"/votes/{voted.pk}/feedback/").status_code in (403, 405)
    assert not Feedback.objects.exists()


@pytest.mark.django_db
def test_the_admin_lists_feedback_read_only(admin_client, voted):
    Feedback.objects.create(request=voted, score=0.9, comment="spot on", source="api")
    response = admin_client.get("/admin/ensemble/feedback/")
    assert response.status_code == 200
    html = response.content.decode()
    assert voted.public_id in html and "spot on" in html and "alpha" in html
    assert admin_client.get("/admin/ensemble/feedback/", {"q": "spot"}).status_code == 200
    assert admin_client.get("/admin/ensemble/feedback/add/").status_code == 403


# --- the leaderboard -------------------------------------------------------------------------------

MEMBERS = ["alpha", "beta", "gamma"]


def rated(ballots, *, score, preferred=None, **kwargs):
    request = vote(members=MEMBERS, ballots=ballots, **kwargs)
    Feedback.objects.create(request=request, score=score, source="staff",
                            preferred_candidate=request.candidates.get(index=preferred) if preferred is not None else None)
    return request


@pytest.fixture
def rated_history():
    # alpha wins; the person preferred beta, which only beta's own ballot did.
    rated({0: ([0, 1], 0), 1: ([0, 1], 1), 2: ([0], 0)}, score=1.0, preferred=1)
    # alpha wins, which every judge accepted; the person disapproves (0.2 < 0.5): nobody agrees.
    rated({0: ([0, 1], 0), 1: ([0, 1], 1), 2: ([0], 0)}, score=0.2)
    # beta wins, accepted by alpha and beta, not gamma; the person approves.
    rated({0: ([1], 1), 1: ([1], 1), 2: ([2], 2)}, score=0.8)
    # No feedback: counts for nothing here.
    vote(members=MEMBERS, ballots={0: ([0], 0), 1: ([0], 0), 2: ([0], 0)})
    # Forty days ago, gamma won and everyone preferred it, as the person did.
    rated({0: ([2], 2), 1: ([2], 2), 2: ([2], 2)}, score=0.0, preferred=2, created_at=ago(days=40))
    # No answer: no winner to credit, no ballots to judge.
    rated({}, score=0.0, failed={0: "error", 1: "error", 2: "error"})


def board(staff, **query):
    response = staff.get("/leaderboard.json", query)
    assert response.status_code == 200
    body = response.json()
    models = {m["model"]: (m["human_feedback"], m["human_approval_rate"]) for m in body["models"]}
    voters = {v["model"]: (v["human_agreement"], v["human_compared"]) for v in body["voters"]}
    return models, voters


@pytest.mark.django_db
def test_the_leaderboard_credits_feedback_to_the_winner_and_the_judges_who_agreed(staff, rated_history):
    models, voters = board(staff, window="all")
    assert models == {"alpha": (2, pytest.approx(0.6)), "beta": (1, pytest.approx(0.8)), "gamma": (1, 0.0)}
    assert voters == {"alpha": (pytest.approx(2 / 4), 4), "beta": (pytest.approx(3 / 4), 4),
                      "gamma": (pytest.approx(1 / 4), 4)}


@pytest.mark.django_db
def test_the_human_figures_follow_the_window_and_are_null_without_feedback(staff, rated_history):
    models, voters = board(staff, window="7d")
    assert models == {"alpha": (2, pytest.approx(0.6)), "beta": (1, pytest.approx(0.8)), "gamma": (0, None)}
    assert voters == {"alpha": (pytest.approx(1 / 3), 3), "beta": (pytest.approx(2 / 3), 3), "gamma": (0.0, 3)}
    models, voters = board(staff, window="all", ensemble="other")
    assert models == {} and voters == {}


@pytest.mark.django_db
def test_a_judge_without_rated_ballots_has_no_agreement(staff):
    vote(members=MEMBERS, ballots={0: ([0], 0), 1: ([0], 0), 2: ([0], 0)})
    models, voters = board(staff)
    assert models["alpha"] == (0, None)
    assert voters == {"alpha": (None, 0), "beta": (None, 0), "gamma": (None, 0)}


# --- export and prune ------------------------------------------------------------------------------


def run(command, *args) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_the_export_carries_each_requests_feedback_in_both_formats(voted):
    unrated = vote(members=MEMBERS, ballots={0: ([0], 0)})
    Feedback.objects.create(request=voted, score=0.7, preferred_candidate=voted.candidates.get(index=1),
                            comment="beta, really", source="api")
    documents = {d["id"]: d for d in map(json.loads, run("export_votes", "--format", "jsonl").splitlines())}
    feedback = documents[voted.public_id]["feedback"]
    assert {k: feedback[k] for k in ("score", "preferred_index", "comment", "source")} == {
        "score": 0.7, "preferred_index": 1, "comment": "beta, really", "source": "api"}
    assert documents[unrated.public_id]["feedback"] is None
    rows = list(csv.DictReader(io.StringIO(run("export_votes", "--format", "csv"))))
    assert {(r["request_id"], r["feedback_score"], r["feedback_preferred_index"], r["feedback_comment"]) for r in rows} == {
        (voted.public_id, "0.7", "1", "beta, really"), (unrated.public_id, "", "", "")}


@pytest.mark.django_db
def test_pruning_a_request_deletes_its_feedback_and_counts_it():
    old = vote(members=MEMBERS, ballots={0: ([0], 0)}, created_at=ago(days=100))
    kept = vote(members=MEMBERS, ballots={0: ([0], 0)})
    for request in (old, kept):
        Feedback.objects.create(request=request, score=1, preferred_candidate=request.candidates.get(index=0), source="api")
    assert "1 feedback" in run("prune_votes", "--older-than", "90d", "--dry-run")
    assert Feedback.objects.count() == 2
    assert "1 feedback" in run("prune_votes", "--older-than", "90d")
    assert list(Feedback.objects.values_list("request_id", flat=True)) == [kept.pk]
