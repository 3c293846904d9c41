"""The judges' audit (ensemble.leaderboard.judges): leaderboard.json's voters[] and the page's Judges table.

The chi-square survival function and the position test on plain counts first; agreement with the
winner on hand-built ballots; then through the real service: Trio under uvicorn, the fake backend
over HTTP (its `first_slot`, `self_favour` and `garbage_ballot` voters), the database, the
leaderboard read back as JSON and as the staff page.
"""
import math
import re
from html import unescape

import pytest

from ensemble.leaderboard import board as leaderboards
from ensemble.leaderboard.judges import Slots, position_bias_p
from ensemble.leaderboard.statistics import chi_square_sf
from tests.factories import vote

# (statistic, degrees of freedom, P(X >= statistic)) from published chi-square tables.
CHI_SQUARE_TABLE = [
    (3.841, 1, 0.05), (6.635, 1, 0.01), (1.0, 1, 0.3173), (9.21, 2, 0.01), (5.991, 2, 0.05),
    (11.34, 3, 0.01), (7.815, 3, 0.05), (20.09, 8, 0.01), (18.307, 10, 0.05), (100.0, 50, 3.455e-5),
]


@pytest.mark.parametrize("statistic, df, p", CHI_SQUARE_TABLE)
def test_the_chi_square_survival_function_matches_the_tables(statistic, df, p):
    assert chi_square_sf(statistic, df) == pytest.approx(p, rel=3e-3)  # tables give 4 significant digits


def test_the_chi_square_survival_function_is_its_closed_forms_at_the_edges():
    assert chi_square_sf(0, 3) == 1.0
    for x in (0.1, 2.0, 30.0):
        assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)))
        assert chi_square_sf(x, 2) == pytest.approx(math.exp(-x / 2))
    assert 0 <= chi_square_sf(2000, 3) < 1e-300  # far in the tail: tiny, never negative or NaN
    assert chi_square_sf(1500, 1000) == pytest.approx(1.05e-22, rel=0.01)  # no overflow with many terms


def test_position_bias_adds_the_groups_of_each_ballot_size():
    # 30 three-way preferences all in slot 1 (chi-square 60, 2 df), 20 two-way ones evenly (0, 1 df).
    slots = Slots({(3, 1): 30, (2, 1): 10, (2, 2): 10})

    assert position_bias_p(slots) == pytest.approx(chi_square_sf(60, 3))
    assert position_bias_p(Slots({(3, 1): 7, (3, 2): 6, (3, 3): 6})) is None  # 19 preferences: too few
    assert position_bias_p(Slots({(3, 1): 10, (3, 2): 10, (3, 3): 10})) == pytest.approx(1.0)


@pytest.mark.django_db
def test_agreement_with_the_winner_counts_only_preferences_for_another_models_answer():
    members = ["a", "b", "c"]
    vote(members=members, ballots={0: ([1], 1), 1: ([1], 1), 2: ([1], 1)})  # b wins: a and c agree
    vote(members=members, ballots={0: ([2], 2), 1: ([1, 2], 1), 2: ([1], 1)})  # b wins: a preferred c
    vote(members=members, ballots={0: ([0], 0), 1: ([1], 1), 2: ([1], 1)})  # b wins; a preferred itself
    vote(members=members, ballots={0: ([1], 1)}, status="cancelled")  # no winner: nobody to agree with

    voters = {v.model: v for v in leaderboards.leaderboard(bootstrap_rounds=0).voters}

    assert (voters["a"].agreement_ballots, voters["a"].agreement_with_winner) == (2, 0.5)
    assert (voters["c"].agreement_ballots, voters["c"].agreement_with_winner) == (3, 1.0)
    assert (voters["b"].agreement_ballots, voters["b"].agreement_with_winner) == (0, None)  # only ever itself


# --- through the service -----------------------------------------------------------------------

REQUESTS = 30
FAIR, BIASED, WEAK = "fair@quality=0.9", "biased@quality=0.6,first_slot", "weak@quality=0.3"


def ask(http, n: int) -> None:
    for i in range(n):
        answer = http.post("/v1/chat/completions", json={
            "model": "trio", "messages": [{"role": "user", "content": f"Question {i}: what is {i} * {i}?"}]})
        assert answer.status_code == 200, answer.text


def voters_json(admin_client) -> dict[str, dict]:
    body = admin_client.get("/leaderboard.json").json()
    return {row["model"]: row for row in body["voters"]}


def judge_flags(page: str, model: str) -> list[str]:
    """Return the badges the page's Judges table shows on `model`'s row."""
    rows = {unescape(name): row for name, row in re.findall(r'<tr data-judge="([^"]*)"[^>]*>(.*?)</tr>', page, re.S)}
    return re.findall(r'data-flag="([a-z_]+)"', rows[model])


@pytest.mark.parametrize("ballot_format", ["auto", "text"])
def test_a_judge_that_always_prefers_the_first_answer_shown_is_caught(http, trio_settings, admin_client,
                                                                      ballot_format):
    trio_settings.TRIO_MODELS = [FAIR, BIASED, WEAK]
    trio_settings.TRIO_BALLOT_FORMAT = ballot_format
    ask(http, REQUESTS)

    voters = voters_json(admin_client)

    assert set(voters) == {FAIR, BIASED, WEAK}
    biased, fair = voters[BIASED], voters[FAIR]
    assert biased["ballots"] == fair["ballots"] == REQUESTS
    assert biased["preferences"] == REQUESTS and biased["first_slot_preference_rate"] >= 0.9
    assert fair["preferences"] == REQUESTS and fair["first_slot_preference_rate"] <= 0.6
    assert biased["position_bias_p"] < 0.01 and "position_bias" in biased["flags"]
    page = admin_client.get("/leaderboard/").content.decode()
    assert "position_bias" in judge_flags(page, BIASED)
    assert judge_flags(page, FAIR) == [] or fair["position_bias_p"] < 0.01  # a 1-in-100 chance, by design


def test_a_judge_that_prefers_itself_is_marked_and_honest_judges_are_not(http, trio_settings, admin_client):
    # Four members: with three, the best model's other judges are two, and one vain judge alone
    # halves how often they prefer it (judges module docstring).
    vain = "vain@quality=0.3,self_favour"
    honest = ["alpha@quality=0.9", "beta@quality=0.7", "delta@quality=0.6"]
    trio_settings.TRIO_MODELS = [*honest, vain]
    ask(http, REQUESTS)

    voters = voters_json(admin_client)

    assert voters[vain]["self_preference_rate"] == 1.0 and voters[vain]["others_preference_rate"] == 0.0
    assert "self_preference" in voters[vain]["flags"]
    # The best model's judge prefers its own answer every time too, as the other judges do.
    assert voters[honest[0]]["self_preference_rate"] == 1.0
    assert voters[honest[0]]["others_preference_rate"] == pytest.approx(2 / 3)
    assert not any("self_preference" in voters[model]["flags"] for model in honest)
    page = admin_client.get("/leaderboard/").content.decode()
    assert "self_preference" in judge_flags(page, vain)
    assert all("self_preference" not in judge_flags(page, model) for model in honest)


def test_a_judge_answering_garbage_has_every_ballot_unparseable(http, trio_settings, admin_client):
    junk = "junk@quality=0.5,garbage_ballot"
    trio_settings.TRIO_MODELS = ["alpha@quality=0.9", "beta@quality=0.7", junk]
    ask(http, 5)

    voters = voters_json(admin_client)

    assert (voters[junk]["ballots"], voters[junk]["unparseable_rate"]) == (5, 1.0)
    assert voters[junk]["preferences"] == 0 and voters[junk]["first_slot_preference_rate"] is None
    assert voters["alpha@quality=0.9"]["unparseable_rate"] == 0.0
