"""The upstream request DSL: `model` as an ensemble object, every aggregation method, limits, nesting."""
import random
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ensemble.catalog.spec import Ensemble
from ensemble.formats.usage import Usage
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest
from ensemble.outcomes import BallotResult, CandidateResult, CompletionOutcome
from ensemble.history.writer import completion_record
from ensemble.voting import Mark

QUESTION = [{"role": "user", "content": "Name a prime number."}]


def ask(http, model, **extra):
    return http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION, **extra})


def members(*models):
    return [{"model": m} for m in models]


def generations(backend):
    return [call for call in backend.calls if not call.is_ballot]


def test_acceptance_voting_in_the_request_answers_like_a_named_ensemble(http, backend):
    response = ask(http, {"ensemble": [{"model": "alpha@quality=0.9", "system_prompt": "Be terse."},
                                       {"model": "beta@quality=0.6"}]})

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "ensemble(alpha@quality=0.9,beta@quality=0.6)"
    assert body["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]")
    assert body["trio"]["aggregation_method"] == "acceptance_voting" and len(body["trio"]["ballots"]) == 2
    alpha = next(call for call in generations(backend) if call.model.startswith("alpha"))
    assert alpha.body["messages"][0] == {"role": "system", "content": "Be terse."}
    request = CompletionRequest.objects.get()
    assert (request.ensemble, request.aggregation_method, request.members) == (
        body["model"], "acceptance_voting", ["alpha@quality=0.9", "beta@quality=0.6"])


def test_judge_lets_one_extra_model_pick_and_stores_its_ballot(http, backend):
    response = ask(http, {"ensemble": members("alpha@quality=0.6", "beta@quality=0.9"),
                          "aggregation_method": "judge", "judge_model": "arbiter"})

    body = response.json()
    assert body["model"] == "judge(alpha@quality=0.6,beta@quality=0.9)"
    assert body["choices"][0]["message"]["content"].startswith("[beta quality=0.90]")
    assert [call.model for call in backend.calls if call.is_ballot] == ["arbiter"]  # the members do not vote
    request = CompletionRequest.objects.get()
    assert (request.aggregation_method, request.winner_model, request.voter_count) == ("judge", "beta@quality=0.9", 1)
    ballot = Ballot.objects.get(request=request)
    assert (ballot.voter_index, ballot.voter_model, ballot.status) == (2, "arbiter", "ok")
    marks = BallotMark.objects.filter(ballot=ballot)
    assert marks.count() == 2 and marks.get(preferred=True).author_model == "beta@quality=0.9"
    assert not marks.filter(is_self=True).exists()


def test_an_unreadable_judge_falls_back_to_the_ensemble_order(http):
    body = ask(http, {"ensemble": members("alpha@quality=0.6", "beta@quality=0.9"),
                      "aggregation_method": "judge", "judge_model": "arbiter@garbage_ballot"}).json()

    assert body["choices"][0]["message"]["content"].startswith("[alpha quality=0.60]")
    assert Ballot.objects.get().status == "unparseable"
    assert CompletionRequest.objects.get().winner_model == "alpha@quality=0.6"


def test_synthesize_stores_the_combined_answer_as_the_winning_candidate(http, backend):
    body = ask(http, {"ensemble": members("alpha@quality=0.9", "beta@quality=0.6"),
                      "aggregation_method": "synthesize", "synthesize_model": "writer@quality=0.8"}).json()

    assert body["choices"][0]["message"]["content"].startswith("[writer quality=0.80]")
    assert not Ballot.objects.exists()
    synthesis = next(call for call in generations(backend) if call.model.startswith("writer"))
    prompt = synthesis.body["messages"][-1]["content"]
    assert "[alpha quality=0.90]" in prompt and "[beta quality=0.60]" in prompt and "<candidate number=" in prompt
    candidates = list(Candidate.objects.order_by("index").values_list("index", "model", "is_winner", "rank"))
    assert candidates == [(0, "alpha@quality=0.9", False, 2), (1, "beta@quality=0.6", False, 3),
                          (2, "writer@quality=0.8", True, 1)]
    assert CompletionRequest.objects.get().winner_model == "writer@quality=0.8"


def test_a_failed_synthesis_falls_back_to_the_best_member(http):
    body = ask(http, {"ensemble": members("alpha@quality=0.9", "beta@quality=0.6"),
                      "aggregation_method": "synthesize", "synthesize_model": "writer@status=500"}).json()

    assert body["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]")
    assert body["trio"]["status"] == "partial"
    assert Candidate.objects.get(index=2).status == "error"


def test_random_calls_only_the_member_drawn_from_the_request_id(http, backend):
    models = ["alpha", "beta", "gamma", "delta"]
    body = ask(http, {"ensemble": members(*models), "aggregation_method": "random"}).json()

    request = CompletionRequest.objects.get()
    chosen = models[random.Random(request.id.hex).randrange(len(models))]
    assert [call.model for call in backend.calls] == [chosen]
    assert body["choices"][0]["message"]["content"].startswith(f"[{chosen} ")
    assert list(Candidate.objects.values_list("model", "is_winner")) == [(chosen, True)]
    assert (request.members, request.winner_model, request.aggregation_method) == (models, chosen, "random")


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
CONCAT = {"ensemble": members("alpha", "beta"), "aggregation_method": "concat"}


@pytest.mark.parametrize("extra, param", [
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}}},
     "response_format"),
    ({"tools": TOOLS}, "tools"),
    ({"tools": TOOLS, "tool_choice": "required"}, "tools"),
])
def test_a_concat_ensemble_refuses_a_json_format_or_tools_its_joined_text_cannot_honour(http, backend, extra, param):
    response = ask(http, CONCAT, **extra)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error") and "concat" in error["message"]
    assert not backend.calls and not CompletionRequest.objects.exists()


def test_a_concat_ensemble_answers_a_text_format_and_tools_it_may_not_call(http):
    assert ask(http, CONCAT, response_format={"type": "text"}).status_code == 200
    assert ask(http, CONCAT, tools=TOOLS, tool_choice="none").status_code == 200


def test_concat_returns_every_answer_with_its_model_and_no_winner(http):
    body = ask(http, {"ensemble": members("alpha", "beta@status=500", "gamma"), "aggregation_method": "concat"}).json()

    text = body["choices"][0]["message"]["content"]
    assert text.startswith("### alpha\n\n[alpha ") and "\n\n### gamma\n\n[gamma " in text
    assert "beta" not in text
    assert body["trio"]["winner_index"] is None and not body["trio"]["ballots"]
    request = CompletionRequest.objects.get()
    assert (request.status, request.winner_model, request.winner_index) == ("partial", "", None)
    assert not Candidate.objects.filter(is_winner=True).exists()


def test_a_nested_ensemble_runs_as_its_own_stored_request(http, backend):
    inner = {"ensemble": members("beta@quality=0.9", "gamma@quality=0.3"), "aggregation_method": "acceptance_voting"}
    body = ask(http, {"ensemble": [{"model": "alpha@quality=0.5"}, {"model": inner, "system_prompt": "Be exact."}]}).json()

    label = "ensemble(beta@quality=0.9,gamma@quality=0.3)"
    assert body["model"] == f"ensemble(alpha@quality=0.5,{label})"
    # The inner ensemble's answer (beta's) beats alpha in the outer vote.
    assert body["choices"][0]["message"]["content"].startswith("[beta quality=0.90]")
    outer_details = body["trio"]
    assert [c["model"] for c in outer_details["candidates"]] == ["alpha@quality=0.5", label]
    # The nested ensemble votes through its lead model.
    assert [b["voter_model"] for b in outer_details["ballots"]] == ["alpha@quality=0.5", "beta@quality=0.9"]
    outer = CompletionRequest.objects.get(parent=None)
    child = CompletionRequest.objects.get(parent=outer)
    assert outer_details["candidates"][1]["request_id"] == child.public_id
    assert (child.ensemble, child.winner_model, child.status) == (label, "beta@quality=0.9", "ok")
    assert child.messages[0] == {"role": "system", "content": "Be exact."}
    assert Ballot.objects.filter(request=child).count() == 2
    assert outer.winner_model == label
    assert outer.total_tokens > child.total_tokens > 0  # the outer total includes what the inner spent
    beta = next(call for call in generations(backend) if call.model.startswith("beta"))
    assert beta.body["messages"][0]["content"] == "Be exact."


def test_a_nested_ensemble_beside_single_models_is_waited_for_not_abandoned(http, trio_settings):
    # It needs two rounds where its siblings need one, so the default straggler grace (half the
    # siblings' latency) would always cut it off; only the deadline applies to it.
    trio_settings.TRIO_STRAGGLER_GRACE = (0.0, 0.5)
    inner = {"ensemble": members("gamma@latency=0.2", "delta@latency=0.2")}
    body = ask(http, {"ensemble": members("alpha@latency=0.2", "beta@latency=0.2") + [{"model": inner}]}).json()

    assert [c["status"] for c in body["trio"]["candidates"]] == ["ok", "ok", "ok"], body["trio"]
    assert body["trio"]["status"] == "ok"
    assert CompletionRequest.objects.get(parent__isnull=False).status == "ok"


def test_null_dsl_options_mean_their_defaults(http):
    body = ask(http, {"ensemble": [{"model": "alpha", "system_prompt": None}, {"model": "beta"}],
                      "aggregation_method": None, "judge_model": None}).json()

    assert body["model"] == "ensemble(alpha,beta)"


def test_a_nested_ensemble_may_stand_directly_in_the_member_list(http):
    body = ask(http, {"ensemble": [{"ensemble": members("alpha", "beta"), "aggregation_method": "concat"}],
                      "aggregation_method": "random"}).json()

    assert body["model"] == "random(concat(alpha,beta))"
    assert "### alpha" in body["choices"][0]["message"]["content"]
    assert CompletionRequest.objects.count() == 2


def test_a_failing_nested_ensemble_is_a_failed_candidate_of_the_outer_one(http):
    inner = {"ensemble": members("beta@status=500", "gamma@status=500")}
    body = ask(http, {"ensemble": [{"model": "alpha"}, {"model": inner}]}).json()

    assert body["trio"]["candidates"][1]["status"] == "error" and body["trio"]["status"] == "partial"
    assert CompletionRequest.objects.get(parent__isnull=False).status == "failed"


def nested(depth):
    spec = {"ensemble": members("alpha")}
    for _ in range(depth - 1):
        spec = {"ensemble": [{"model": spec}]}
    return spec


@pytest.mark.parametrize("model, param, complaint", [
    ({"ensemble": members(*(f"m{i}" for i in range(10)))}, "model.ensemble", "at most 9 members"),
    ({"ensemble": []}, "model.ensemble", "non-empty"),
    ({"aggregation_method": "judge"}, "model.ensemble", "non-empty"),
    ({"ensemble": [{"model": ""}]}, "model.ensemble[0].model", "must not be empty"),
    ({"ensemble": [{"model": "   "}]}, "model.ensemble[0].model", "must not be empty"),
    ({"ensemble": [{"system_prompt": "hi"}]}, "model.ensemble[0].model", "model name"),
    ({"ensemble": ["alpha"]}, "model.ensemble[0]", "A member is an object"),
    ({"ensemble": members("a"), "aggregation_method": "vote"}, "model.aggregation_method", "Must be one of"),
    ({"ensemble": members("a"), "aggregation_method": "judge"}, "model.judge_model", "Required when"),
    ({"ensemble": members("a"), "aggregation_method": "judge", "judge_model": {"ensemble": members("b")}},
     "model.judge_model", "model name (a string)"),
    # A falsy value of the wrong type is an error, not the default (null is the default).
    ({"ensemble": members("a"), "aggregation_method": []}, "model.aggregation_method", "Must be one of"),
    ({"ensemble": members("a"), "aggregation_method": False}, "model.aggregation_method", "Must be one of"),
    ({"ensemble": [{"model": "a", "system_prompt": False}]}, "model.ensemble[0].system_prompt", "string"),
    ({"ensemble": [{"model": "a", "system_prompt": {}}]}, "model.ensemble[0].system_prompt", "string"),
    ({"ensemble": members("a"), "aggregation_method": "synthesize", "synthesize_model": ""},
     "model.synthesize_model", "must not be empty"),
    ({"ensemble": members("a"), "aggregation": "judge"}, "model.aggregation", "Unknown field"),
    ({"ensemble": [{"model": "a", "weight": 2}]}, "model.ensemble[0].weight", "Unknown field"),
    ({"ensemble": [{"model": "a", "system_prompt": 7}]}, "model.ensemble[0].system_prompt", "string"),
    (nested(4), "model.ensemble[0].model.ensemble[0].model.ensemble[0].model", "at most 3 levels"),
    ({"ensemble": [{"model": {"ensemble": members(*(f"m{i}" for i in range(9)))}}] * 3},
     "model.ensemble[2].model.ensemble", "at most 27 members in all"),
])
def test_ensembles_the_service_cannot_run_are_400_naming_the_fault(http, model, param, complaint):
    response = ask(http, model)

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and complaint in error["message"], error
    assert not CompletionRequest.objects.exists()


def test_the_largest_allowed_request_is_accepted(http, backend):
    assert ask(http, nested(3)).status_code == 200
    assert ask(http, {"ensemble": members(*(f"m{i}@quality=0.{i + 1}" for i in range(9)))}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_a_request_with_nested_ensembles_is_stored_in_four_inserts():
    def outcome(ensemble, parent=None):
        o = CompletionOutcome(id=uuid.uuid4(), created_at=timezone.now(), ensemble=ensemble,
                              messages=QUESTION, params={}, winner_index=0, parent_id=parent)
        o.candidates = [CandidateResult(i, m, "ok", content=m, usage=Usage(1, 1, 2), rank=i + 1)
                        for i, m in enumerate(ensemble.members)]
        o.ballots = [BallotResult(0, ensemble.members[0], [0, 1], "ok",
                                  marks=[Mark(0, 0, True, True), Mark(0, 1, True, False)])]
        return o

    top = outcome(Ensemble("ensemble(a,ensemble(b,c))", ("a", "ensemble(b,c)")))
    top.children = [outcome(Ensemble("ensemble(b,c)", ("b", "c")), parent=top.id)]
    top.children[0].children = [outcome(Ensemble("ensemble(d,e)", ("d", "e")), parent=top.children[0].id)]

    with CaptureQueriesContext(connection) as queries:
        completion_record(top)

    inserts = [q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 4
    assert CompletionRequest.objects.count() == 3 and Candidate.objects.count() == 6 and BallotMark.objects.count() == 6
    assert CompletionRequest.objects.filter(parent__parent__id=top.id).count() == 1


@pytest.mark.parametrize("model", [
    {"ensemble": members("alpha@quality=0.6", "beta@quality=0.9"), "aggregation_method": "judge", "judge_model": "arbiter"},
    {"ensemble": members("alpha", "beta"), "aggregation_method": "synthesize", "synthesize_model": "writer"},
    {"ensemble": members("alpha", "beta"), "aggregation_method": "concat"},
    {"ensemble": members("alpha", "beta"), "aggregation_method": "random"},
    {"ensemble": [{"model": "alpha"}, {"model": {"ensemble": members("beta", "gamma")}}]},
    "solo",
], ids=["judge", "synthesize", "concat", "random", "nested", "passthrough"])
def test_every_kind_of_request_shows_in_the_history_pages_and_the_admin(http, admin_client, model):
    assert ask(http, model).status_code == 200

    for request in CompletionRequest.objects.all():
        assert admin_client.get(f"/votes/{request.pk}/").status_code == 200
        assert admin_client.get(f"/admin/ensemble/completionrequest/{request.pk}/change/").status_code == 200
    for page in ("/votes/", "/leaderboard/", "/leaderboard.json"):
        assert admin_client.get(page).status_code == 200
