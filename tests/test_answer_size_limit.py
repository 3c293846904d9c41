"""Backend replies are bounded: TRIO_MAX_ANSWER_BYTES while reading, the ballots' quotes of long candidates."""
import asyncio
import json
import time

import pytest

from ensemble.backend import BackendClient, BackendTooLarge
from ensemble.models import Ballot, Candidate, CompletionRequest
from ensemble.voting import QuoteLimits, fenced_candidates, quote_shares
from tests.conftest import BACKEND_API_KEY, backend_answering

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


def test_the_model_list_is_not_held_to_the_answer_limit(backend):
    listing = {"object": "list", "data": [{"id": f"model-{i}", "object": "model"} for i in range(5000)]}

    async def models(url):
        client = BackendClient(url, max_answer_bytes=1024)
        try:
            return await client.list_models()
        finally:
            await client.aclose()

    with backend_answering(listing) as server:
        assert len(asyncio.run(models(server.url))) == 5000  # about 200 KB, a router's list runs to megabytes


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


def test_ballots_quote_long_candidates_only_up_to_the_limits(http, trio_settings, backend):
    trio_settings.TRIO_MODELS = ["alpha@size=20000,quality=0.9", "beta@size=20000", "gamma"]
    trio_settings.TRIO_BALLOT_QUOTE_CHARS, trio_settings.TRIO_BALLOT_PROMPT_QUOTE_CHARS = 5000, 6000

    response = http.post("/v1/chat/completions", json=BODY)

    assert response.status_code == 200, response.text
    ballots = [call for call in backend.calls if call.is_ballot]
    assert len(ballots) == 3
    for call in ballots:
        prompt = call.body["messages"][-1]["content"]
        assert len(prompt) < 6000 + 2000  # the quotes, the conversation, the instructions
        assert prompt.count("[… truncated ") == 2  # alpha's and beta's, gamma's is short
    # Cut or not, the voters still read the quality tags at the top: alpha wins.
    assert response.json()["trio"]["winner_index"] == 0
    assert len(response.json()["choices"][0]["message"]["content"]) == 20000  # the answer itself is whole


def test_quote_shares_give_short_texts_all_they_need_and_split_the_rest():
    limits = QuoteLimits(per_candidate=1000, per_prompt=1500)
    assert quote_shares([10, 100_000, 500_000], limits) == [10, 745, 745]
    assert quote_shares([10, 20], limits) == [10, 20]
    assert quote_shares([5000], limits) == [1000]


def test_a_cut_is_marked_inside_the_candidates_fence():
    text = fenced_candidates(["x" * 50, "short"], "n0nce", QuoteLimits(per_candidate=20, per_prompt=100))

    first, second = text.split("\n\n")
    assert first == ('<candidate number="1" fence="n0nce">\n' + "x" * 20
                     + '\n[… truncated 30 characters]\n</candidate fence="n0nce">')
    assert second == '<candidate number="2" fence="n0nce">\nshort\n</candidate fence="n0nce">'
