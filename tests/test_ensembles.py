"""Named ensembles: defined in the admin, chosen by `model`, listed by /v1/models, recorded with each request."""
import openai
import pytest
from asgiref.sync import async_to_sync
from django.db import connection

from ensemble.catalog.registry import EnsembleCache, ensemble_cache
from ensemble.models import Ballot, Candidate, CompletionRequest, EnsembleDefinition, EnsembleMember

QUESTION = [{"role": "user", "content": "Which is the largest planet?"}]


def define(name, *members, **options):
    """Create ensemble `name`; each member is a model name or (model, system prompt)."""
    ensemble = EnsembleDefinition.objects.create(name=name, **options)
    for position, member in enumerate(members):
        model, prompt = member if isinstance(member, tuple) else (member, "")
        EnsembleMember.objects.create(ensemble=ensemble, position=position, model=model, system_prompt=prompt)
    return ensemble


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


@pytest.mark.parametrize("asked", ["duo", "trio:duo"])
def test_an_admin_defined_ensemble_answers_by_name_or_with_the_trio_prefix(client, backend, asked):
    define("duo", ("alpha@quality=0.6", "Answer like a pirate."), "beta@quality=0.9")

    completion = client.chat.completions.create(model=asked, messages=QUESTION)

    assert completion.model == "duo"
    assert completion.choices[0].message.content.startswith("[beta quality=0.90]")
    details = completion.model_extra["trio"]
    assert [c["model"] for c in details["candidates"]] == ["alpha@quality=0.6", "beta@quality=0.9"]
    generations = {call.model: call.body["messages"] for call in backend.calls if not call.is_ballot}
    # The member's system prompt is prepended to its own copy of the conversation only.
    assert generations["alpha@quality=0.6"] == [{"role": "system", "content": "Answer like a pirate."}, *QUESTION]
    assert generations["beta@quality=0.9"] == QUESTION
    assert not any(call.model.startswith("gamma") for call in backend.calls)  # TRIO_MODELS is not asked


def test_an_unknown_trio_name_is_404_model_not_found_and_lists_the_ensembles(http):
    define("duo", "alpha", "beta")

    response = http.post("/v1/chat/completions", json={"model": "trio:nope", "messages": QUESTION})

    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "trio:nope" in error["message"] and "trio, duo" in error["message"]
    assert not CompletionRequest.objects.exists()


def test_models_lists_every_ensemble_in_the_openai_shape(client):
    define("solo", "alpha")
    define("duo", "alpha", "beta")

    models = client.models.list()

    assert [m.id for m in models.data] == ["trio", "duo", "solo"]
    assert {(m.object, m.owned_by) for m in models.data} == {("model", "trio")}


def test_a_row_named_trio_replaces_the_trio_models_default(client, backend):
    define("trio", "gamma@quality=0.8")

    completion = client.chat.completions.create(model="trio", messages=QUESTION)

    assert completion.choices[0].message.content.startswith("[gamma quality=0.80]")
    assert {call.model for call in backend.calls} == {"gamma@quality=0.8"}
    assert [m.id for m in client.models.list().data] == ["trio"]


def test_the_stored_request_records_the_ensemble_and_its_members_as_they_were(client):
    duo = define("duo", "alpha@quality=0.9", "beta")
    client.chat.completions.create(model="duo", messages=QUESTION)
    duo.members.filter(position=1).update(model="gamma")  # edited afterwards
    ensemble_cache.clear()  # update() sends no signal
    client.chat.completions.create(model="duo", messages=QUESTION)

    first, second = CompletionRequest.objects.order_by("created_at")
    assert (first.ensemble, first.members, first.aggregation_method) == (
        "duo", ["alpha@quality=0.9", "beta"], "acceptance_voting")
    assert second.members == ["alpha@quality=0.9", "gamma"]
    assert first.parent is None


def test_the_leaderboard_filters_on_the_ensemble_that_answered(client, admin_client):
    define("duo", "alpha@quality=0.9", "beta@quality=0.6")
    client.chat.completions.create(model="duo", messages=QUESTION)
    client.chat.completions.create(model="trio", messages=QUESTION)

    duo = admin_client.get("/leaderboard.json", {"ensemble": "duo"}).json()

    assert {m["model"]: m["participated"] for m in duo["models"]} == {"alpha@quality=0.9": 1, "beta@quality=0.6": 1}


def test_an_ensemble_s_method_self_vote_and_timeout_apply(client, trio_settings):
    define("judged", "alpha@quality=0.9", "beta@quality=0.6", aggregation_method="judge",
           judge_model="arbiter", self_vote=False)
    define("hasty", "alpha@latency=2", "beta@quality=0.6", timeout=0.3)

    judged = client.chat.completions.create(model="judged", messages=QUESTION).model_extra["trio"]
    hasty = client.chat.completions.create(model="hasty", messages=QUESTION).model_extra["trio"]

    assert (judged["aggregation_method"], judged["self_vote"]) == ("judge", False)
    assert [b["voter_model"] for b in judged["ballots"]] == ["arbiter"]
    assert [c["status"] for c in hasty["candidates"]] == ["timeout", "ok"]


def test_the_admin_creates_an_ensemble_with_members_inline_and_it_answers_at_once(admin_client, client):
    response = admin_client.post("/admin/ensemble/ensembledefinition/add/", {
        "name": "panel", "description": "", "aggregation_method": "acceptance_voting", "judge_model": "",
        "synthesize_model": "", "self_vote": "on", "timeout": "",
        "members-TOTAL_FORMS": "2", "members-INITIAL_FORMS": "0", "members-MIN_NUM_FORMS": "1",
        "members-MAX_NUM_FORMS": "9",
        "members-0-position": "0", "members-0-model": "alpha@quality=0.9", "members-0-system_prompt": "Be brief.",
        "members-1-position": "1", "members-1-model": "beta", "members-1-system_prompt": "",
    })

    assert response.status_code == 302, response.content.decode()[:2000]
    completion = client.chat.completions.create(model="panel", messages=QUESTION)
    assert [c["model"] for c in completion.model_extra["trio"]["candidates"]] == ["alpha@quality=0.9", "beta"]
    assert admin_client.get("/admin/ensemble/ensembledefinition/").status_code == 200


def admin_form(**changes):
    form = {
        "name": "bad", "description": "", "aggregation_method": "acceptance_voting", "judge_model": "",
        "synthesize_model": "", "self_vote": "on", "timeout": "",
        "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "0", "members-MIN_NUM_FORMS": "1",
        "members-MAX_NUM_FORMS": "9", "members-0-position": "0", "members-0-model": "alpha",
        "members-0-system_prompt": "",
    }
    return {**form, **changes}


@pytest.mark.django_db
@pytest.mark.parametrize("changes, complaint", [
    ({"aggregation_method": "judge"}, "needs a judge model"),
    ({"aggregation_method": "synthesize"}, "needs a synthesize model"),
    ({"name": "trio:x"}, "Letters, digits"),
    ({"members-TOTAL_FORMS": "0"}, "Please submit at least 1 form"),
    ({"members-TOTAL_FORMS": "10", **{f"members-{i}-model": f"m{i}" for i in range(10)},
      **{f"members-{i}-position": str(i) for i in range(10)}}, "Please submit at most 9 forms"),
])
def test_the_admin_refuses_ensembles_that_cannot_answer(admin_client, changes, complaint):
    response = admin_client.post("/admin/ensemble/ensembledefinition/add/", admin_form(**changes))

    assert response.status_code == 200 and complaint in response.content.decode()
    assert not EnsembleDefinition.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_other_workers_see_an_admin_change_once_their_cache_expires():
    now = [100.0]
    cache = EnsembleCache()
    cache.timer = lambda: now[0]
    duo = define("duo", "alpha")
    assert async_to_sync(cache.rows)()["duo"].members == ("alpha",)

    EnsembleMember.objects.filter(ensemble=duo).update(model="beta")  # as another process would: no signal here
    assert async_to_sync(cache.rows)()["duo"].members == ("alpha",)
    now[0] += cache.ttl
    assert async_to_sync(cache.rows)()["duo"].members == ("beta",)


@pytest.mark.django_db(transaction=True)
def test_while_the_database_is_away_the_ensembles_loaded_before_still_answer():
    now = [100.0]
    cache = EnsembleCache()
    cache.timer = lambda: now[0]
    define("duo", "alpha")
    async_to_sync(cache.rows)()
    now[0] += cache.ttl
    table = EnsembleDefinition._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        assert async_to_sync(cache.rows)()["duo"].members == ("alpha",)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def test_requests_by_name_store_every_call_as_usual(client):
    define("duo", "alpha@quality=0.9", "beta@quality=0.6")

    client.chat.completions.create(model="duo", messages=QUESTION)

    request = CompletionRequest.objects.get()
    assert Candidate.objects.filter(request=request).count() == 2
    assert Ballot.objects.filter(request=request, status="ok").count() == 2
    assert request.winner_model == "alpha@quality=0.9"
