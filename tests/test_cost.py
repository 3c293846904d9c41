"""Cost: every backend call's cost in USD, from LiteLLM's response-cost header, else ModelPrice × usage,
else unknown (null, never 0), in the answer, on the rows, the vote page, the leaderboard and /metrics.

Through the real service: Trio under uvicorn → the fake backend over HTTP → the database.
"""
import csv
import io
import json
import re
from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.core.management import call_command
from django.utils import timezone

from ensemble.models import Ballot, Candidate, CompletionRequest, EnsembleDayRollup, ModelDayRollup, ModelPrice
from tests.test_migration_ballot_format import migrate, migrate_to_latest

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


# --- the vote page, the leaderboard, /metrics ------------------------------------------------------

@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


def test_the_vote_page_shows_each_calls_cost_and_the_requests(http, trio_settings, staff):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,cost=0.001", "beta@quality=0.6,cost=0.002", "gamma@quality=0.3"]
    ask(http)

    html = staff.get(CompletionRequest.objects.get().get_absolute_url()).content.decode()

    assert re.search(r'class="cost-total">\$0\.006 <span class="muted">\(and 2 calls of unknown cost\)', html)
    costs = re.findall(r'<td class="num cost">([^<]*)</td>', html)
    assert sorted(costs) == sorted(["$0.001", "$0.002", "unknown"] * 2)


def days_back(days: int) -> None:
    """Move every stored request `days` UTC days back, so that those days are closed and may be rolled up."""
    CompletionRequest.objects.update(created_at=timezone.now() - timedelta(days=days))


def test_the_leaderboard_gives_each_models_cost_and_cost_per_win_live_and_rolled_up(http, trio_settings, staff):
    trio_settings.TRIO_MODELS = PRICED
    for _ in range(2):
        ask(http)  # alpha (quality .9) wins both
    days_back(3)

    live = staff.get("/leaderboard.json", {"window": "7d"}).json()
    call_command("rollup_votes", stdout=io.StringIO())
    rolled = staff.get("/leaderboard.json", {"window": "7d"}).json()

    assert EnsembleDayRollup.objects.exists() and ModelDayRollup.objects.filter(generation_costed_calls=2).exists()
    for board in (live, rolled):
        models = {m["model"].split("@")[0]: m for m in board["models"]}
        assert models["alpha"]["wins"] == 2
        assert models["alpha"]["cost"] == pytest.approx(0.004, abs=1e-12)  # 2 answers + 2 ballots
        assert models["alpha"]["cost_per_win"] == pytest.approx(0.002, abs=1e-12)
        assert models["beta"]["cost"] == pytest.approx(0.008, abs=1e-12) and models["beta"]["cost_per_win"] is None
        assert board["cost_per_request"] == pytest.approx(0.007, abs=1e-12)
    assert comparable(live) == comparable(rolled)


def comparable(board: dict) -> dict:
    """Return the leaderboard as the rollup must keep it: all but its clock and median latencies (±2.2%)."""
    models = [{k: v for k, v in m.items() if k != "median_latency_ms"} for m in board["models"]]
    return {**{k: v for k, v in board.items() if k != "generated_at"}, "models": models}


def test_the_leaderboard_says_null_where_no_cost_is_known(http, trio_settings, staff):
    trio_settings.TRIO_MODELS = UNPRICED
    ask(http)

    board = staff.get("/leaderboard.json").json()

    assert board["cost_per_request"] is None
    assert {(m["cost"], m["cost_per_win"]) for m in board["models"]} == {(None, None)}


def test_the_leaderboard_page_shows_cost_per_win_and_per_request(http, trio_settings, staff):
    trio_settings.TRIO_MODELS = PRICED
    ask(http)

    html = staff.get("/leaderboard/").content.decode()

    assert '<td class="num cost-per-win">$0.002</td>' in html  # alpha: 0.001 + 0.001, one win
    assert "Cost per request: $0.007" in html


def cost_counter(http, model: str) -> float:
    match = re.search(rf'^trio_backend_cost_usd_total{{model="{re.escape(model)}"}} (\S+)$',
                      http.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_each_models_known_cost(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED
    before = {model: cost_counter(http, model) for model in PRICED}

    ask(http)

    after = {model: cost_counter(http, model) for model in PRICED}
    assert [after[m] - before[m] for m in PRICED] == pytest.approx([0.002, 0.004, 0.001], abs=1e-12)


# --- export, prune, migration, admin -----------------------------------------------------------

def test_the_export_carries_every_cost(http, trio_settings):
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9,cost=0.001", "beta@quality=0.6", "gamma@quality=0.3,cost=0.0005"]
    ask(http)

    out = io.StringIO()
    call_command("export_votes", stdout=out)
    document = json.loads(out.getvalue())
    csv_out = io.StringIO()
    call_command("export_votes", "--format", "csv", stdout=csv_out)

    assert document["cost_total"] == pytest.approx(0.003) and document["cost_unknown_calls"] == 2
    assert [c["cost_usd"] for c in document["candidates"]] == [0.001, None, 0.0005]
    assert sorted(b["cost_usd"] or 0 for b in document["ballots"]) == [0, 0.0005, 0.001]
    rows = list(csv.DictReader(io.StringIO(csv_out.getvalue())))
    assert [Decimal(r["candidate_cost_usd"]) if r["candidate_cost_usd"] else None for r in rows] == [
        Decimal("0.001"), None, Decimal("0.0005")]
    assert {Decimal(r["request_cost_total"]) for r in rows} == {Decimal("0.003")}


def test_pruning_forgets_the_rolled_up_cost_of_the_days_it_deletes(http, trio_settings):
    trio_settings.TRIO_MODELS = PRICED
    ask(http)
    days_back(3)
    call_command("rollup_votes", stdout=io.StringIO())
    assert EnsembleDayRollup.objects.exists()

    call_command("prune_votes", "--older-than", "1d", stdout=io.StringIO())

    assert not EnsembleDayRollup.objects.exists() and not CompletionRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rows_stored_before_the_migration_have_unknown_cost():
    old = migrate([("ensemble", "0015_feedback")])
    try:
        request = old.get_model("ensemble", "CompletionRequest").objects.create(created_at=timezone.now(), status="ok")
        old.get_model("ensemble", "Candidate").objects.create(request=request, index=0, model="a", status="ok")
        old.get_model("ensemble", "Ballot").objects.create(request=request, voter_index=0, voter_model="a", status="ok")

        new = migrate([("ensemble", "0016_call_cost")])

        stored = new.get_model("ensemble", "CompletionRequest").objects.get()
        assert (stored.cost_total, stored.cost_unknown_calls) == (None, 0)
        assert new.get_model("ensemble", "Candidate").objects.get().cost_usd is None
        assert new.get_model("ensemble", "Ballot").objects.get().cost_usd is None
    finally:
        migrate_to_latest()


@pytest.mark.django_db
def test_staff_edit_model_prices_in_the_admin(admin_client):
    response = admin_client.post("/admin/ensemble/modelprice/add/", {
        "model": "alpha", "input_usd_per_million": "2.5", "output_usd_per_million": "10"})

    assert response.status_code == 302
    price = ModelPrice.objects.get()
    assert (price.model, price.input_usd_per_million, price.output_usd_per_million) == ("alpha", Decimal("2.5"), 10)
    assert "alpha" in admin_client.get("/admin/ensemble/modelprice/").content.decode()
