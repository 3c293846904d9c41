"""Backend replies are bounded: TRIO_MAX_ANSWER_BYTES, enforced while reading."""
import asyncio
import json
import time

import pytest

from ensemble.backend import BackendClient, BackendTooLarge
from ensemble.models import Ballot, Candidate, CompletionRequest
from tests.conftest import BACKEND_API_KEY

LIMIT = 64 * 1024
BODY = {"model": "trio", "messages": [{"role": "user", "content": "Tell me everything."}]}


def chat(url, model, *, max_answer_bytes=LIMIT, timeout=5.0):
    async def call():
        client = BackendClient(url, api_key=BACKEND_API_KEY, timeout=timeout, max_answer_bytes=max_answer_bytes)
        try:
            return await client.chat(model, [{"role": "user", "content": "hello"}])
        finally:
            await client.aclose()

    return asyncio.run(call())


def test_a_reply_that_never_ends_is_cut_off_at_the_limit_not_read_until_the_timeout(backend):
    started = time.monotonic()
    with pytest.raises(BackendTooLarge) as caught:
        chat(backend.url, "alpha@endless", timeout=30.0)

    assert time.monotonic() - started < 10.0  # unbounded, the client reads until its 30 s timeout
    assert caught.value.reason == "too_large" and f"longer than {LIMIT} bytes" in str(caught.value)
    # The fake backend stops once the client hangs up; what it managed to send is the limit plus
    # what the loopback socket buffers, not the gigabytes 30 s of reading would take in.
    time.sleep(0.5)
    assert 0 < backend.streamed_bytes["alpha@endless"] < 64 * 1024 * 1024


def test_a_reply_declared_longer_than_the_limit_is_refused_and_a_shorter_one_read_whole(backend):
    with pytest.raises(BackendTooLarge):
        chat(backend.url, f"alpha@size={4 * LIMIT}")
    assert len(chat(backend.url, f"alpha@size={LIMIT // 2}").content) == LIMIT // 2


@pytest.fixture
def capped(trio_settings):
    trio_settings.TRIO_MAX_ANSWER_BYTES = LIMIT
    return trio_settings


def test_a_member_over_the_limit_is_stored_too_large_and_the_others_answer(http, capped):
    capped.TRIO_MODELS = ["alpha@quality=0.9", f"beta@size={4 * LIMIT}", "gamma@endless"]

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"].startswith("[alpha quality=0.90]")
    assert [c["status"] for c in response.json()["trio"]["candidates"]] == ["ok", "too_large", "too_large"]
    header = json.loads(response.headers["X-Trio-Details"])
    assert [c["status"] for c in header["candidates"]] == ["ok", "too_large", "too_large"]
    assert CompletionRequest.objects.get().status == "partial"
    for stored in Candidate.objects.filter(index__in=(1, 2)):
        assert stored.status == "too_large" and stored.content == ""
        assert "TRIO_MAX_ANSWER_BYTES" in stored.error
    assert Ballot.objects.count() == 0  # only alpha answered: nothing to vote on


def test_every_member_over_the_limit_is_an_openai_shaped_502(http, capped):
    capped.TRIO_MODELS = [f"alpha@size={4 * LIMIT}", "beta@endless"]

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "api_error" and error["code"] == "backend_error"
    assert "TRIO_MAX_ANSWER_BYTES" in error["message"]
    assert CompletionRequest.objects.get().status == "failed"
    assert set(Candidate.objects.values_list("status", flat=True)) == {"too_large"}


def test_a_ballot_over_the_limit_is_a_failed_ballot_and_the_request_still_answers(http, capped):
    body = {**BODY, "model": {"ensemble": [{"model": "alpha@quality=0.9"}, {"model": "beta"}], "aggregation_method": "judge",
                              "judge_model": "judge@endless"}}

    response = http.post("/v1/chat/completions", json=body)

    assert response.status_code == 200, response.text
    [ballot] = response.json()["trio"]["ballots"]
    assert ballot["status"] == "too_large"
    stored = Ballot.objects.get()
    assert stored.status == "too_large" and "TRIO_MAX_ANSWER_BYTES" in stored.error
