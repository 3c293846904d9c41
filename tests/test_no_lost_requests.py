"""No request is lost to an unexpected exception once its fan-out began: it is stored with what was
gathered and an error naming the internal error, and the client gets the answer or an OpenAI-shaped
error; a stream ends with an error event (and `[DONE]`), never cut off.

Fault injection: each test replaces one stage function (a ballot's reading, the tally, the metrics,
a presenter) with one that raises RuntimeError, standing in for a bug nobody has found yet. The code
under test, the service's guard and its fallback, runs as it is, against the fake backend.
"""
import json

import httpx
import openai
import pytest

from ensemble import voting
from ensemble.completion import calls, service
from ensemble.voting import methods
from ensemble.api import streaming, views
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest

QUESTION = [{"role": "user", "content": "Name a prime number."}]
MEMBERS = ["alpha@quality=0.9", "beta@quality=0.6", "gamma@quality=0.3"]


def failing(original=None, *, after: int = 0):
    """Return a stand-in for `original` that passes its first `after` calls through, then raises."""
    calls = 0

    def stage(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > after:
            raise RuntimeError("injected fault")
        return original(*args, **kwargs)

    return stage


def ensemble(method: str, **extra) -> dict:
    return {"ensemble": [{"model": m} for m in MEMBERS[:2]], "aggregation_method": method, **extra}


def chat(trio, model="trio", **extra) -> httpx.Response:
    return httpx.post(f"{trio}/v1/chat/completions", json={"model": model, "messages": QUESTION, **extra}, timeout=30)


def sse_blocks(response: httpx.Response) -> list[str]:
    return [block for block in response.text.split("\n\n") if block]


def assert_openai_error(body: dict, code: str = "internal_error"):
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == ("api_error", code)


# Where a fault strikes, what the fake backend answers meanwhile, and what the stored error names.
AFTER_FAN_OUT = {
    # The second member's answer breaks the generation round: the first one's stands.
    "generation": (calls, "tool_choice_unmet", 1, "trio", "internal error in generation"),
    "acceptance_voting": (voting, "read_ballot", 0, "trio", "internal error in acceptance_voting"),
    "judge": (voting, "read_ballot", 0, ensemble("judge", judge_model="arbiter"), "internal error in judge"),
    "synthesize": (methods, "synthesis_messages", 0, ensemble("synthesize", synthesize_model="writer"),
                   "internal error in synthesize"),
    "the decision": (voting, "tally", 0, "trio", "internal error in the decision"),
}


@pytest.mark.parametrize("stage", AFTER_FAN_OUT)
def test_a_fault_after_the_fan_out_still_answers_and_stores_what_was_gathered(trio, trio_settings, monkeypatch,
                                                                              stage):
    trio_settings.TRIO_MODELS = MEMBERS
    module, name, after, model, error = AFTER_FAN_OUT[stage]
    monkeypatch.setattr(module, name, failing(getattr(module, name), after=after))

    response = chat(trio, model)

    assert response.status_code == 200, response.text
    request = CompletionRequest.objects.get()
    assert request.status == "partial" and error in request.error and "RuntimeError" in request.error
    # The fallback rule: the first member that answered, in ensemble order, unvoted.
    winner = Candidate.objects.get(request=request, is_winner=True)
    assert response.json()["choices"][0]["message"]["content"] == winner.content
    assert winner.index == min(Candidate.objects.filter(request=request, status="ok").values_list("index", flat=True))
    assert response.json()["trio"]["status"] == "partial"
    # Calls the fault stopped are kept as such: Trio stopped them, not their model.
    unfinished = Candidate.objects.filter(request=request).exclude(status="ok")
    assert all(c.status == "cancelled" and error in c.error for c in unfinished)
    if stage == "the decision":  # every ballot had been cast: all of them and their marks are kept
        assert Ballot.objects.filter(request=request, status="ok").count() == 3
        assert BallotMark.objects.filter(request=request).count() == 9


def test_a_fault_before_any_member_answered_is_an_openai_shaped_500_and_the_request_is_stored(trio, trio_settings,
                                                                                               monkeypatch):
    monkeypatch.setattr(calls, "tool_choice_unmet", failing())

    response = chat(trio)

    assert response.status_code == 500
    assert_openai_error(response.json())
    request = CompletionRequest.objects.get()
    assert request.public_id in response.json()["error"]["message"]
    assert request.status == "failed" and "internal error in generation" in request.error
    assert Candidate.objects.filter(request=request, status="cancelled", error__contains="internal error").count() == 3


def test_a_fault_in_the_metrics_after_the_vote_is_stored_is_an_openai_shaped_500(trio, monkeypatch):
    monkeypatch.setattr(service, "completion_observe", failing())

    response = chat(trio)

    assert response.status_code == 500
    assert_openai_error(response.json())
    assert CompletionRequest.objects.get().status == "ok"  # stored before the metrics were counted
    assert Ballot.objects.count() == 3


def test_a_fault_shaping_the_answer_is_an_openai_shaped_500_and_the_vote_is_stored(trio, monkeypatch):
    monkeypatch.setattr(views, "chat_completion_body", failing())

    response = chat(trio)

    assert response.status_code == 500
    assert_openai_error(response.json())
    assert CompletionRequest.objects.get().status == "ok" and Candidate.objects.count() == 3


@pytest.fixture
def slow_members(trio_settings):
    """Members slow enough that each stream has begun (a keep-alive sent) before the fault strikes."""
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,latency=0.2", "beta@quality=0.6,latency=0.2"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05
    return trio_settings


def test_a_stream_whose_vote_breaks_still_streams_the_fallback_answer(trio, slow_members, monkeypatch):
    monkeypatch.setattr(voting, "tally", failing())

    blocks = sse_blocks(chat(trio, stream=True))

    assert blocks[0] == ": keep-alive" and blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b.removeprefix("data: ")) for b in blocks if b.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        Candidate.objects.get(is_winner=True).content)
    assert chunks[-1]["trio"]["status"] == "partial"
    assert "internal error in the decision" in CompletionRequest.objects.get().error


@pytest.mark.parametrize("module, name", [(service, "completion_observe"), (streaming, "chat_completion_chunks")],
                         ids=["metrics", "presenter"])
def test_a_stream_that_breaks_after_the_vote_ends_with_an_error_event_and_done(trio, slow_members, monkeypatch,
                                                                               module, name):
    monkeypatch.setattr(module, name, failing())

    blocks = sse_blocks(chat(trio, stream=True))

    assert blocks[0] == ": keep-alive" and blocks[-1] == "data: [DONE]"
    assert_openai_error(json.loads(blocks[-2].removeprefix("data: ")))
    assert CompletionRequest.objects.get().status == "ok" and Ballot.objects.count() == 2


def test_the_openai_sdk_raises_the_error_event_of_a_broken_stream(trio, slow_members, monkeypatch):
    monkeypatch.setattr(streaming, "chat_completion_chunks", failing())
    sdk = openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)

    with pytest.raises(openai.APIError, match="error while processing your request"):
        list(sdk.chat.completions.create(model="trio", messages=QUESTION, stream=True))


def test_the_responses_api_answers_by_the_fallback_when_the_vote_breaks(trio, trio_settings, monkeypatch):
    monkeypatch.setattr(voting, "read_ballot", failing())
    sdk = openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)

    response = sdk.responses.create(model="trio", input="Name a prime number.")

    assert response.status == "completed"
    assert response.output_text == Candidate.objects.get(is_winner=True, index=0).content
    request = CompletionRequest.objects.get()
    assert response.id == request.public_id and request.status == "partial"
    assert Ballot.objects.filter(request=request, status="cancelled", error__contains="internal error").count() == 3


def test_a_responses_stream_with_no_answer_after_an_internal_error_ends_failed(trio, slow_members, monkeypatch):
    monkeypatch.setattr(calls, "tool_choice_unmet", failing())

    response = httpx.post(f"{trio}/v1/responses", json={"model": "trio", "input": "Hi", "stream": True}, timeout=30)

    last = json.loads(sse_blocks(response)[-1].split("\n")[1].removeprefix("data: "))
    assert last["type"] == "response.failed" and last["response"]["error"]["code"] == "server_error"
    assert last["response"]["id"] == CompletionRequest.objects.get(status="failed").public_id


def test_a_responses_stream_that_breaks_after_the_vote_ends_with_an_error_event(trio, slow_members, monkeypatch):
    monkeypatch.setattr(streaming, "response_events", failing())

    response = httpx.post(f"{trio}/v1/responses", json={"model": "trio", "input": "Hi", "stream": True}, timeout=30)

    event, data = sse_blocks(response)[-1].split("\n")
    assert event == "event: error"
    assert json.loads(data.removeprefix("data: "))["code"] == "internal_error"
    assert CompletionRequest.objects.get().status == "ok"
