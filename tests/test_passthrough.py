"""Pass-through: a name that is no ensemble goes straight to that backend model and is recorded as such."""
import openai
import pytest

from ensemble.devtools.fakebackend import RETRY_AFTER_SECONDS
from ensemble.models import Ballot, Candidate, CompletionRequest

QUESTION = [{"role": "user", "content": "What is the boiling point of water?"}]


@pytest.fixture
def client(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def test_a_backend_model_answers_alone_in_its_own_format(client, backend):
    raw = client.chat.completions.with_raw_response.create(
        model="solo@quality=0.7", messages=QUESTION, temperature=0.2, max_tokens=40)
    completion = raw.parse()

    assert completion.model == "solo@quality=0.7"
    assert completion.choices[0].message.content.startswith("[solo quality=0.70]")
    assert "trio" not in completion.model_extra  # answered as the model would, without voting details
    assert completion.usage.total_tokens > 0
    assert [(call.model, call.is_ballot) for call in backend.calls] == [("solo@quality=0.7", False)]
    assert backend.calls[0].body["messages"] == QUESTION
    assert (backend.calls[0].body["temperature"], backend.calls[0].body["max_tokens"]) == (0.2, 40)
    assert completion.id in raw.headers["X-Trio-Details"]
    # The backend's own JSON is relayed (the fake's message has no `refusal`, ours would), with
    # the stored request's id.
    body = raw.http_response.json()
    assert body["choices"][0]["message"] == {"role": "assistant", "content": completion.choices[0].message.content}
    assert body["id"].startswith("trio-") and body["object"] == "chat.completion"


def test_it_is_recorded_as_a_one_candidate_request(client):
    completion = client.chat.completions.create(model="solo", messages=QUESTION)

    request = CompletionRequest.objects.get()
    assert request.public_id == completion.id
    assert (request.ensemble, request.aggregation_method, request.members) == ("solo", "passthrough", ["solo"])
    assert (request.status, request.winner_model, request.voter_count) == ("ok", "solo", 0)
    assert list(Candidate.objects.values_list("model", "is_winner", "rank")) == [("solo", True, 1)]
    assert not Ballot.objects.exists()
    assert request.total_tokens == completion.usage.total_tokens


def test_a_model_the_backend_does_not_know_is_our_404_model_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="ghost@status=404", messages=QUESTION)

    error = caught.value.body
    assert (error["code"], error["param"]) == ("model_not_found", "model")
    assert "ghost@status=404" in error["message"]
    request = CompletionRequest.objects.get()
    assert (request.status, request.aggregation_method) == ("failed", "passthrough")


@pytest.mark.parametrize("model, status, code", [
    ("broken@status=500", 502, "backend_error"),
    ("locked@status=401", 502, "backend_error"),  # Trio's backend key is wrong: not the caller's to fix
    ("sleepy@hang", 504, "backend_timeout"),
    # Refusals that are the caller's to act on keep the backend's status, as a proxy's would.
    ("picky@status=400", 400, "backend_refused"),
    ("busy@status=429", 429, "rate_limit_exceeded"),
])
def test_backend_failures_are_relayed_or_502_or_504_in_the_openai_shape(http, trio_settings, model, status, code):
    trio_settings.TRIO_TIMEOUT = 0.3

    response = http.post("/v1/chat/completions", json={"model": model, "messages": QUESTION})

    assert response.status_code == status
    assert response.json()["error"]["code"] == code and model in response.json()["error"]["message"]
    assert CompletionRequest.objects.get().status == "failed"  # stored either way


def test_a_relayed_429_says_when_to_retry_as_the_backend_did(http):
    response = http.post("/v1/chat/completions", json={"model": "busy@status=429", "messages": QUESTION})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == RETRY_AFTER_SECONDS.decode()  # the SDKs wait that long


def test_an_ensemble_member_refused_with_a_400_is_a_failed_member_not_a_400(http, trio_settings):
    trio_settings.TRIO_MODELS = ["picky@status=400", "busy@status=429"]

    response = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION})

    assert response.status_code == 502 and response.json()["error"]["code"] == "backend_error"


def test_an_ensemble_name_is_never_passed_through(client, backend):
    client.chat.completions.create(model="trio", messages=QUESTION)

    assert "trio" not in {call.model for call in backend.calls}


def test_it_streams_too(client, backend):
    chunks = list(client.chat.completions.create(model="solo@quality=0.7", messages=QUESTION, stream=True))

    assert {chunk.model for chunk in chunks} == {"solo@quality=0.7"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[solo quality=0.70]")
    assert not any("trio" in (chunk.model_extra or {}) for chunk in chunks)
    assert len(backend.calls) == 1


def test_n_goes_to_the_backend_which_answers_every_choice(client, backend):
    completion = client.chat.completions.create(model="solo", messages=QUESTION, n=3)

    assert backend.calls[0].body["n"] == 3
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert completion.choices[1].message.content == completion.choices[0].message.content + " (choice 2)"


def test_n_choices_stream_too_with_the_usage_counted_once(client, backend):
    whole = client.chat.completions.create(model="solo", messages=QUESTION, n=2)
    chunks = list(client.chat.completions.create(model="solo", messages=QUESTION, n=2, stream=True,
                                                 stream_options={"include_usage": True}))

    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens
    assert backend.calls[-1].body["n"] == 2
