"""trio.consensus: how far the other voters agreed with the winner, in every answer, on the row, on the pages.

Through the real service: Trio under uvicorn → the fake backend over HTTP → the database.
"""
import json

import httpx
import openai
import pytest

from ensemble.models import CompletionRequest
from tests.factories import vote

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
UNANIMOUS = ["alpha@quality=0.9", "beta@quality=0.4", "gamma@quality=0.3"]  # everyone accepts alpha alone
EACH_FOR_ITSELF = ["alpha@accept_only_self", "beta@accept_only_self", "gamma@accept_only_self"]


@pytest.fixture
def sdk(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


def stored() -> CompletionRequest:
    request = CompletionRequest.objects.get()
    return (request.consensus_score, request.consensus_preferred_share, request.consensus_margin,
            request.consensus_low)


def test_a_unanimous_panel_answers_score_1_not_low_with_the_header(sdk, trio_settings):
    trio_settings.TRIO_MODELS = UNANIMOUS

    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    consensus = raw.parse().model_extra["trio"]["consensus"]
    # alpha: 3 acceptances (its own counted, as TRIO_SELF_VOTE=include), the runner-up none.
    assert consensus == {"score": 1.0, "preferred_share": 1.0, "margin": 3, "low": False}
    assert raw.headers["X-Trio-Consensus"] == "1.00"
    assert stored() == (1.0, 1.0, 3, False)


def test_excluded_self_votes_lower_the_margin_but_not_the_score(sdk, trio_settings):
    trio_settings.TRIO_MODELS = UNANIMOUS
    trio_settings.TRIO_SELF_VOTE = "exclude"

    consensus = sdk.chat.completions.create(model="trio", messages=QUESTION).model_extra["trio"]["consensus"]

    assert consensus == {"score": 1.0, "preferred_share": 1.0, "margin": 2, "low": False}


def test_three_models_that_each_accept_only_themselves_score_0_and_low(sdk, trio_settings):
    trio_settings.TRIO_MODELS = EACH_FOR_ITSELF

    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    # One acceptance each (its own): alpha wins on the ensemble order, by no margin, and nobody else took it.
    assert raw.parse().model_extra["trio"]["consensus"] == {"score": 0.0, "preferred_share": 0.0, "margin": 0,
                                                             "low": True}
    assert raw.headers["X-Trio-Consensus"] == "0.00"
    assert stored() == (0.0, 0.0, 0, True)


def test_a_split_panel_gives_the_share_of_the_other_voters_low_under_the_threshold(sdk, trio_settings):
    # alpha and beta accept alpha and beta and prefer alpha; gamma accepts only itself. alpha wins the
    # tie with beta (2 acceptances each) on preferences; of the two other voters, beta took it, gamma not.
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.6", "gamma@quality=0.3,accept_only_self"]
    trio_settings.TRIO_LOW_CONSENSUS = 0.6

    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    assert raw.parse().model_extra["trio"]["consensus"] == {"score": 0.5, "preferred_share": 0.5, "margin": 0,
                                                             "low": True}
    assert raw.headers["X-Trio-Consensus"] == "0.50"


def test_unparseable_ballots_leave_no_score_and_flag_the_answer_low(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.3,garbage_ballot", "gamma@quality=0.3,garbage_ballot"]

    raw = sdk.chat.completions.with_raw_response.create(model="trio", messages=QUESTION)

    # Only alpha's own ballot parsed: it says nothing about agreement.
    assert raw.parse().model_extra["trio"]["consensus"] == {"score": None, "preferred_share": None, "margin": 1,
                                                             "low": True}
    assert "X-Trio-Consensus" not in raw.headers
    assert stored() == (None, None, 1, True)


def test_a_judge_is_the_only_voter(http):
    body = http.post("/v1/chat/completions", json={"messages": QUESTION, "model": {
        "ensemble": [{"model": "alpha@quality=0.6"}, {"model": "beta@quality=0.9"}],
        "aggregation_method": "judge", "judge_model": "arbiter"}})

    assert body.json()["trio"]["consensus"] == {"score": 1.0, "preferred_share": 1.0, "margin": 0, "low": False}
    assert body.headers["X-Trio-Consensus"] == "1.00"


def test_a_method_without_ballots_has_no_consensus_and_no_header(http):
    response = http.post("/v1/chat/completions", json={"messages": QUESTION, "model": {
        "ensemble": [{"model": "alpha"}, {"model": "beta"}], "aggregation_method": "concat"}})

    assert response.json()["trio"]["consensus"] is None
    assert "X-Trio-Consensus" not in response.headers
    assert stored() == (None, None, None, None)


def test_the_last_chunk_of_a_stream_carries_it(sdk, trio_settings):
    trio_settings.TRIO_MODELS = EACH_FOR_ITSELF

    chunks = list(sdk.chat.completions.create(model="trio", messages=QUESTION, stream=True))

    assert chunks[-1].model_extra["trio"]["consensus"] == {"score": 0.0, "preferred_share": 0.0, "margin": 0,
                                                            "low": True}
    assert all("trio" not in (c.model_extra or {}) for c in chunks[:-1])


def test_the_responses_api_answers_it_live_and_read_back(sdk, trio_settings):
    trio_settings.TRIO_MODELS = UNANIMOUS

    raw = sdk.responses.with_raw_response.create(model="trio", input="Name a prime.")
    response = raw.parse()
    again = sdk.responses.retrieve(response.id)

    expected = {"score": 1.0, "preferred_share": 1.0, "margin": 3, "low": False}
    assert response.model_extra["trio"]["consensus"] == expected
    assert raw.headers["X-Trio-Consensus"] == "1.00"
    assert again.model_extra["trio"]["consensus"] == expected


def test_a_responses_stream_carries_it_in_the_completed_response(http, trio_settings):
    trio_settings.TRIO_MODELS = EACH_FOR_ITSELF

    text = http.post("/v1/responses", json={"model": "trio", "input": "Name a prime.", "stream": True}).text

    done = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")][-1]
    assert done["type"] == "response.completed"
    assert done["response"]["trio"]["consensus"]["low"] is True


def test_a_stored_response_from_before_consensus_reads_back_null(sdk, trio_settings):
    response = sdk.responses.create(model="trio", input="Name a prime.")
    CompletionRequest.objects.update(consensus_score=None, consensus_preferred_share=None, consensus_margin=None,
                                     consensus_low=None)  # as migration 0013 leaves existing rows

    assert sdk.responses.retrieve(response.id).model_extra["trio"]["consensus"] is None


@pytest.mark.django_db
def test_the_history_shows_the_consensus_and_filters_low_consensus_only(staff):
    vote(members=["a", "b", "c"], prompt="agreed on", ballots={0: ([0], 0), 1: ([0], 0), 2: ([0, 1], 0)})
    vote(members=["a", "b", "c"], prompt="split three ways", ballots={0: ([0], 0), 1: ([1], 1), 2: ([2], 2)})
    vote(members=["a", "b", "c"], prompt="split with a status", failed={2: "timeout"},
         ballots={0: ([0], 0), 1: ([1], 1)})
    old = vote(members=["a", "b"], prompt="stored before consensus", ballots={0: ([0], 0), 1: ([1], 1)})
    CompletionRequest.objects.filter(pk=old.pk).update(consensus_score=None, consensus_low=None)

    everything = staff.get("/votes/").content.decode()
    low = staff.get("/votes/", {"low_consensus": "1"}).content.decode()
    low_partial = staff.get("/votes/", {"low_consensus": "1", "status": "partial"}).content.decode()

    assert "4 requests," in everything
    assert 'data-label="Consensus">1.00</td>' in everything
    assert 'data-label="Consensus">0.00 <span class="badge low-consensus">low</span></td>' in everything
    assert 'data-label="Consensus">—</td>' in everything  # the old row
    assert "2 requests match" in low and "split three ways" in low and "split with a status" in low
    assert "agreed on" not in low and "stored before consensus" not in low
    assert 'name="low_consensus" value="1" checked' in low
    assert "1 request matches" in low_partial and "split with a status" in low_partial


@pytest.mark.django_db
def test_the_vote_page_shows_the_consensus(staff):
    # a and b have 2 acceptances each, b wins on preferences (2 to 1); of the other voters a took it, c not.
    request = vote(members=["a", "b", "c"], ballots={0: ([0, 1], 1), 1: ([1], 1), 2: ([0], 0)})

    html = staff.get(f"/votes/{request.pk}/").content.decode()

    row = CompletionRequest.objects.get()
    assert (row.winner_index, row.consensus_score, row.consensus_margin, row.consensus_low) == (1, 0.5, 0, False)
    assert "<dt>Consensus</dt><dd>0.50 <span class=\"muted\">(0.50 preferred it, margin 0)</span>" in html
