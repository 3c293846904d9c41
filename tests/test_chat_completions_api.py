"""End to end: the official openai SDK → Trio under uvicorn → the fake backend over HTTP → the database."""
import json

import openai
import pytest

from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest

QUESTION = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def test_it_returns_the_voted_answer_with_details_in_header_and_body(client, backend):
    raw = client.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)
    completion = raw.parse()

    # alpha has the best quality, so the fake voters accept and prefer it.
    assert completion.model == "trio"
    assert completion.id.startswith("trio-")
    assert completion.choices[0].message.content.startswith("[alpha quality=0.90]")
    assert completion.choices[0].finish_reason == "stop"
    header = json.loads(raw.headers["X-Trio-Details"])
    assert header["winner_index"] == 0
    assert [c["model"] for c in header["candidates"]] == ["alpha@quality=0.9", "beta@quality=0.6", "gamma@quality=0.3"]
    # Every one of the three voters accepts alpha and beta (quality >= 0.5), prefers alpha.
    assert [(c["accepted"], c["preferred"]) for c in header["candidates"]] == [(3, 3), (3, 0), (0, 0)]

    details = completion.model_extra["trio"]
    assert details["status"] == "ok" and len(details["ballots"]) == 3
    assert details["usage_total"]["total_tokens"] > completion.usage.total_tokens > 0
    assert completion.usage.total_tokens == details["candidates"][0]["usage"]["total_tokens"]


def test_the_whole_conversation_and_sampling_parameters_reach_every_model(client, backend):
    client.chat.completions.create(model="trio", messages=QUESTION, temperature=0.3, max_tokens=50, seed=7)

    generations = [call for call in backend.calls if not call.is_ballot]
    assert sorted(call.model.split("@")[0] for call in generations) == ["alpha", "beta", "gamma"]
    for call in generations:
        assert call.body["messages"] == QUESTION
        assert (call.body["temperature"], call.body["max_tokens"], call.body["seed"]) == (0.3, 50, 7)
        assert call.headers["authorization"] == "Bearer sk-test-master-key"
    ballots = [call for call in backend.calls if call.is_ballot]
    assert len(ballots) == 3
    assert all(call.body["temperature"] == 0 and call.body["max_tokens"] <= 200 for call in ballots)
    assert all("What is the capital of France?" in call.body["messages"][-1]["content"] for call in ballots)


TOOL_CONVERSATION = [
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    ]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


def test_a_conversation_with_tool_calls_reaches_every_model_and_the_database_whole(client, backend):
    # A tool message must follow the assistant turn that made the call: an OpenAI backend answers 400
    # to a conversation whose `tool_calls` were dropped (and to an assistant turn with neither).
    client.chat.completions.create(model="trio", messages=TOOL_CONVERSATION)

    generations = [call for call in backend.calls if not call.is_ballot]
    assert len(generations) == 3
    assert all(call.body["messages"] == TOOL_CONVERSATION for call in generations)
    assert CompletionRequest.objects.get().messages == TOOL_CONVERSATION


def test_every_vote_is_stored(client):
    completion = client.chat.completions.create(model="trio", messages=QUESTION)

    request = CompletionRequest.objects.get()
    assert request.public_id == completion.id
    assert (request.status, request.winner_model, request.voter_count) == ("ok", "alpha@quality=0.9", 3)
    assert request.messages == QUESTION
    assert request.prompt_excerpt == "What is the capital of France?"
    candidates = list(Candidate.objects.filter(request=request).order_by("index"))
    assert [c.is_winner for c in candidates] == [True, False, False]
    assert [c.rank for c in candidates] == [1, 2, 3]
    ballots = list(Ballot.objects.filter(request=request))
    assert len(ballots) == 3 and all(b.status == "ok" and sorted(b.shown_order) == [0, 1, 2] for b in ballots)
    assert BallotMark.objects.filter(request=request).count() == 9
    assert BallotMark.objects.filter(request=request, is_self=True).count() == 3
    assert BallotMark.objects.filter(request=request, preferred=True, author_model="alpha@quality=0.9").count() == 3


def test_survivors_win_when_one_model_fails(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@status=500", "beta@quality=0.6", "gamma@quality=0.8"]

    raw = client.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    assert raw.parse().choices[0].message.content.startswith("[gamma quality=0.80]")
    header = json.loads(raw.headers["X-Trio-Details"])
    assert header["winner_index"] == 2 and header["candidates"][0]["status"] == "error"
    request = CompletionRequest.objects.get()
    assert request.status == "partial"
    failed = Candidate.objects.get(request=request, index=0)
    assert failed.status == "error" and "500" in failed.error
    assert Ballot.objects.filter(request=request).count() == 2  # the failed model does not vote


def test_a_single_survivor_wins_without_a_voting_round(client, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@malformed", "beta", "gamma@empty"]

    completion = client.chat.completions.create(model="trio", messages=QUESTION)

    assert completion.choices[0].message.content.startswith("[beta ")
    assert not any(call.is_ballot for call in backend.calls)
    errors = dict(Candidate.objects.values_list("index", "error"))
    assert "not JSON" in errors[0] and "empty" in errors[2]


def test_all_models_failing_is_a_502_and_is_still_stored(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@status=500", "beta@status=503"]

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="trio", messages=QUESTION)

    assert caught.value.status_code == 502
    error = caught.value.body
    assert error["code"] == "backend_error" and "alpha" in error["message"] and "beta" in error["message"]
    assert "alpha@status=500: HTTP 500" in error["message"]
    assert "alpha@status=500: alpha@status=500" not in error["message"]  # each model named once
    request = CompletionRequest.objects.get()
    assert request.status == "failed" and request.winner_model == ""
    assert list(Candidate.objects.values_list("status", flat=True)) == ["error", "error"]


def test_all_models_timing_out_is_a_504(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@hang", "beta@latency=5"]
    trio_settings.TRIO_TIMEOUT = 0.3

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="trio", messages=QUESTION)

    assert caught.value.status_code == 504
    assert list(Candidate.objects.values_list("status", flat=True)) == ["timeout", "timeout"]


def test_garbage_ballots_are_stored_as_unparseable_and_count_for_nothing(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,garbage_ballot", "beta@quality=0.6"]

    raw = client.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    header = json.loads(raw.headers["X-Trio-Details"])
    assert [c["accepted"] for c in header["candidates"]] == [1, 1]  # only beta's ballot counted
    garbage = Ballot.objects.get(voter_index=0)
    assert garbage.status == "unparseable" and garbage.raw_text
    assert not BallotMark.objects.filter(ballot=garbage).exists()
    assert CompletionRequest.objects.get().voter_count == 1


def test_self_votes_are_marked_and_can_be_excluded(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.6,self_favour", "beta@quality=0.9"]
    trio_settings.TRIO_SELF_VOTE = "exclude"

    raw = client.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    # alpha always prefers itself; with self-votes excluded that mark is stored but not counted.
    details = raw.parse().model_extra["trio"]
    assert details["self_vote"] is False
    assert BallotMark.objects.filter(is_self=True, counted=False).count() == 2
    assert BallotMark.objects.filter(is_self=False, counted=True).count() == 2
    assert BallotMark.objects.get(voter_model__startswith="alpha", is_self=True).preferred
    alpha = details["candidates"][0]
    assert alpha["preferred"] == 0 and alpha["accepted"] == 1  # only beta's vote on alpha counts


def test_answers_of_20_kb_per_candidate_parse_and_the_header_stays_bounded(client, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@size=20000,quality=0.9", "beta@size=20000", "gamma@size=20000"]

    raw = client.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    assert len(raw.parse().choices[0].message.content) >= 20000
    assert len(raw.headers["X-Trio-Details"]) <= 8192
    header = json.loads(raw.headers["X-Trio-Details"])
    assert header["truncated"] is True and header["winner_index"] == 0
    assert all(len(c["response"]) >= 20000 for c in raw.parse().model_extra["trio"]["candidates"])


def test_models_lists_trio_in_the_openai_shape(client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["trio"]
    assert models.data[0].object == "model" and models.data[0].owned_by == "trio"


def test_models_retrieve_answers_for_a_listed_model_and_404_for_others(client, http):
    model = client.models.retrieve("trio")
    assert (model.id, model.object, model.owned_by) == ("trio", "model", "trio")
    assert http.get("/v1/models/trio:trio").json()["id"] == "trio"
    error = http.get("/v1/models/gpt-4o").json()["error"]
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert http.get("/v1/models/gpt-4o").status_code == 404


def test_health_says_ok(http):
    response = http.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
