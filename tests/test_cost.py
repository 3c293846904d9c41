"""Cost: every backend call's cost in USD, from LiteLLM's response-cost header, else ModelPrice × usage,
else unknown (null, never 0), in the answer, on the rows, the vote page, the leaderboard and /metrics.

Through the real service: Trio under uvicorn → the fake backend over HTTP → the database.
"""
import json
from decimal import Decimal

import openai
import pytest

from ensemble.models import Ballot, Candidate, CompletionRequest, ModelPrice

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# A panel whose three models cost 0.001, 0.002 and 0.0005 per call, generation and ballot alike.
PRICED = ["alpha@quality=0.9,cost=0.001", "beta@quality=0.6,cost=0.002", "gamma@quality=0.3,cost=0.0005"]
UNPRICED = ["alpha@quality=0.9", "beta@quality=0.6", "gamma@quality=0.3"]


@pytest.fixture
def sdk(trio):
    return openai.OpenAI(base_url=f"{trio}/v1", api_key="x", max_retries=0, timeout=30)


def ask(http, **extra) -> dict:
    response = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_three_answers_and_three_ballots_cost_the_sum_of_their_stated_costs(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED

    trio = ask(http)["trio"]

    assert trio["cost_total"] == pytest.approx(0.007, abs=1e-12)
    assert "cost_unknown_calls" not in trio
    assert [c["cost_usd"] for c in trio["candidates"]] == [0.001, 0.002, 0.0005]
    assert sorted(b["cost_usd"] for b in trio["ballots"]) == [0.0005, 0.001, 0.002]


def test_every_call_row_and_the_request_row_store_their_cost(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED

    ask(http)

    assert CompletionRequest.objects.get().cost_total == Decimal("0.007")
    assert CompletionRequest.objects.get().cost_unknown_calls == 0
    costs = {c.model.split("@")[0]: c.cost_usd for c in Candidate.objects.all()}
    assert costs == {"alpha": Decimal("0.001"), "beta": Decimal("0.002"), "gamma": Decimal("0.0005")}
    assert sorted(b.cost_usd for b in Ballot.objects.all()) == [Decimal("0.0005"), Decimal("0.001"), Decimal("0.002")]


def test_without_a_header_usage_is_priced_by_the_admins_model_prices(http, trio_settings, backend):
    trio_settings.TRIO_MODELS = UNPRICED
    for model in UNPRICED:
        ModelPrice.objects.create(model=model, input_usd_per_million=Decimal("1.5"), output_usd_per_million=Decimal(10))

    trio = ask(http)["trio"]

    expected = [(c["usage"]["prompt_tokens"] * 1.5 + c["usage"]["completion_tokens"] * 10) / 1e6
                for c in trio["candidates"] + trio["ballots"]]
    assert all(cost > 0 for cost in expected)
    assert [c["cost_usd"] for c in trio["candidates"] + trio["ballots"]] == pytest.approx(expected, abs=1e-10)
    assert trio["cost_total"] == pytest.approx(sum(expected), abs=1e-9)


def test_a_stated_cost_wins_over_the_models_price(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED
    ModelPrice.objects.create(model=PRICED[0], input_usd_per_million=1000, output_usd_per_million=1000)

    assert ask(http)["trio"]["cost_total"] == pytest.approx(0.007, abs=1e-12)


def test_a_price_saved_in_the_admin_prices_the_next_request_at_once(http, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.6,cost=0.002", "gamma@quality=0.3,cost=0.001"]
    assert ask(http)["trio"]["cost_unknown_calls"] == 2  # alpha's answer and ballot: the cache now holds no price

    ModelPrice.objects.create(model="alpha@quality=0.9", input_usd_per_million=1, output_usd_per_million=1)

    assert "cost_unknown_calls" not in ask(http)["trio"]


def test_unknown_costs_are_null_never_zero_and_counted(http, trio_settings):
    trio_settings.TRIO_MODELS = UNPRICED

    trio = ask(http)["trio"]

    assert trio["cost_total"] is None and trio["cost_unknown_calls"] == 6
    assert {c["cost_usd"] for c in trio["candidates"] + trio["ballots"]} == {None}
    assert CompletionRequest.objects.get().cost_total is None
    assert set(Candidate.objects.values_list("cost_usd", flat=True)) == {None}
    assert set(Ballot.objects.values_list("cost_usd", flat=True)) == {None}


def test_some_unknown_costs_leave_the_known_sum_and_count_the_rest(http, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,cost=0.001", "beta@quality=0.6", "gamma@quality=0.3,status=500"]

    trio = ask(http)["trio"]

    # alpha's answer and ballot are known; beta's two and gamma's failed call are not.
    assert trio["cost_total"] == pytest.approx(0.002, abs=1e-12)
    assert trio["cost_unknown_calls"] == 3


@pytest.mark.parametrize("garbage", ["nan", "inf", "-0.5", "1e30", "abc", "0x10", "", "snan"])
def test_a_header_that_is_no_cost_is_unknown_never_an_error(http, trio_settings, garbage):
    trio_settings.TRIO_MODELS = [f"alpha@quality=0.9,cost={garbage}", "beta@quality=0.6,cost=0.002",
                                 "gamma@quality=0.3,cost=0.0005"]

    trio = ask(http)["trio"]

    assert trio["cost_total"] == pytest.approx(0.005, abs=1e-12)
    assert trio["cost_unknown_calls"] == 2
    assert CompletionRequest.objects.get().cost_total == Decimal("0.005")


def test_the_streams_last_chunk_carries_the_cost(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED

    text = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION, "stream": True}).text

    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert chunks[-1]["trio"]["cost_total"] == pytest.approx(0.007, abs=1e-12)


def test_the_responses_api_carries_the_cost_live_and_read_back(sdk, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,cost=0.001", "beta@quality=0.6", "gamma@quality=0.3,cost=0.0005"]

    response = sdk.responses.create(model="trio", input="Name a prime.")
    again = sdk.responses.retrieve(response.id)

    for trio in (response.model_extra["trio"], again.model_extra["trio"]):
        assert trio["cost_total"] == pytest.approx(0.003, abs=1e-12)
        assert trio["cost_unknown_calls"] == 2
