"""Ballots naming numbers no candidate has, however long, end to end: the fake backend's
`huge_number_ballot` voters write a 5000-digit number (more than int() reads) in both ballot lines."""
import json

import httpx
import openai
import pytest

from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest

QUESTION = [{"role": "user", "content": "Name a prime number."}]
INVALID_PREFERENCE = "PREFERRED 999999…(5000 digits)"


@pytest.fixture
def sdk(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def members(*models):
    return [{"model": m} for m in models]


def assert_stored_with_invalid_marks_noted(voters: int):
    request = CompletionRequest.objects.get()
    assert request.status == "ok" and request.voter_count == voters
    assert Candidate.objects.filter(request=request, status="ok").count() >= 2
    huge = Ballot.objects.filter(request=request, raw_text__contains="9" * 5000)
    assert huge.count() >= 1
    for ballot in huge:
        # The ballot counts: its valid acceptances are marks, its invalid numbers are named, not counted.
        assert ballot.status == "ok" and INVALID_PREFERENCE in ballot.error and "ACCEPTED 999999…" in ballot.error
        assert BallotMark.objects.filter(ballot=ballot, accepted=True).exists()
        assert not BallotMark.objects.filter(ballot=ballot, preferred=True).exists()
    return request


def test_a_chat_completion_counts_the_rest_of_a_ballot_that_names_a_5000_digit_number(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,huge_number_ballot", "beta@quality=0.6", "gamma@quality=0.3"]

    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    assert raw.parse().choices[0].message.content.startswith("[alpha quality=0.90]")
    header = json.loads(raw.headers["X-Trio-Details"])
    # Every voter accepts alpha and beta; only the two honest voters' preferences for alpha count.
    assert [(c["accepted"], c["preferred"]) for c in header["candidates"]] == [(3, 2), (3, 0), (0, 0)]
    assert_stored_with_invalid_marks_noted(voters=3)
    assert Ballot.objects.filter(error="").count() == 2


def test_a_judge_naming_a_5000_digit_number_falls_back_to_the_ensemble_order(trio, trio_settings):
    model = {"ensemble": members("alpha@quality=0.6", "beta@quality=0.9"), "aggregation_method": "judge",
             "judge_model": "arbiter@huge_number_ballot"}

    response = httpx.post(f"{trio}/v1/chat/completions", json={"model": model, "messages": QUESTION}, timeout=30)

    assert response.status_code == 200, response.text
    # The judge accepts both and prefers no shown candidate: the tie goes to the first member.
    assert response.json()["choices"][0]["message"]["content"].startswith("[alpha quality=0.60]")
    request = assert_stored_with_invalid_marks_noted(voters=1)
    assert (request.aggregation_method, request.winner_model) == ("judge", "alpha@quality=0.6")


def test_the_responses_api_answers_and_stores_a_vote_with_5000_digit_numbers(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,huge_number_ballot", "beta@quality=0.6,huge_number_ballot"]

    response = sdk.responses.create(model="trio", input="Name a prime number.")

    assert response.status == "completed" and response.output_text.startswith("[alpha quality=0.90]")
    assert response.id == assert_stored_with_invalid_marks_noted(voters=2).public_id


def test_a_chat_stream_ends_with_the_answer_and_done(trio, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,huge_number_ballot,latency=0.2", "beta@huge_number_ballot"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05  # the stream begins before the vote
    body = {"model": "trio", "messages": QUESTION, "stream": True}

    response = httpx.post(f"{trio}/v1/chat/completions", json=body, timeout=30)

    blocks = [block for block in response.text.split("\n\n") if block]
    assert blocks[0] == ": keep-alive" and blocks[-1] == "data: [DONE]"
    chunks = [json.loads(b.removeprefix("data: ")) for b in blocks if b.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == Candidate.objects.get(is_winner=True).content
    assert_stored_with_invalid_marks_noted(voters=2)


def test_a_responses_stream_ends_completed(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,huge_number_ballot,latency=0.2", "beta@huge_number_ballot"]
    trio_settings.TRIO_STREAM_KEEPALIVE = 0.05

    events = list(sdk.responses.create(model="trio", input="Name a prime number.", stream=True))

    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == Candidate.objects.get(is_winner=True).content
    assert_stored_with_invalid_marks_noted(voters=2)
