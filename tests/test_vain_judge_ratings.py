"""A judge that always prefers its own candidate cannot move the ratings or the head-to-head.

The pair rule (ensemble.selectors, PAIR RULE) on hand-built ballots first; then through the real
service: Trio under uvicorn, the fake backend over HTTP, the database, the leaderboard read back.
That panel is .9 / .7 / .3 and the .3 model always prefers itself (fakebackend's `self_favour`);
the honest members accept what has quality >= .5 and prefer the best.
"""
import pytest

from ensemble.leaderboard import board as leaderboards
from ensemble.models import BallotMark
from tests.factories import build_vote, save_votes, vote

# One ballot by a (the judge, index 0) on the candidates of a, b and c: (accepted, preferred).
PAIR_RULE_CASES = {
    "others in order count, the judge's own only below them": (([0, 1], 1), {("b", "a"): 1, ("b", "c"): 1}),
    "the judge's own above everyone gives nothing": (([0, 1, 2], 0), {}),
    "the judge's own first, the others in order: only the others' pair": (([0, 1], 0), {("b", "c"): 1}),
    "a tie between two others gives nothing between them": (([1, 2], None), {("b", "a"): 1, ("c", "a"): 1}),
    "a ballot accepting nothing gives nothing": (([], None), {}),
}


@pytest.mark.django_db
@pytest.mark.parametrize("self_vote", [True, False], ids=["self-votes counted", "self-votes excluded"])
@pytest.mark.parametrize("said, pairs", PAIR_RULE_CASES.values(), ids=PAIR_RULE_CASES.keys())
def test_the_pair_rule_on_one_ballot(said, pairs, self_vote):
    vote(members=["a", "b", "c"], ballots={0: said}, self_vote=self_vote)

    assert leaderboards.leaderboard(bootstrap_rounds=0).head_to_head == pairs


@pytest.mark.django_db
def test_a_preference_without_acceptance_ranks_as_not_accepted():
    rows = build_vote(members=["a", "b", "c"], ballots={0: ([2], None)})
    for _, candidate, mark in rows.marks:
        mark.preferred = candidate == 1  # b preferred but not accepted: the tally ignores such a preference
    save_votes([rows])
    assert BallotMark.objects.filter(author_model="b", preferred=True, accepted=False).exists()

    assert leaderboards.leaderboard(bootstrap_rounds=0).head_to_head == {("c", "a"): 1, ("c", "b"): 1}


@pytest.mark.django_db
def test_a_model_listed_twice_is_never_compared_with_itself():
    vote(members=["a", "b", "b"], ballots={0: ([1, 2], 1)})  # a ranks b's first answer above b's second

    assert leaderboards.leaderboard(bootstrap_rounds=0).head_to_head == {("b", "a"): 2}

REQUESTS = 40
STRONG, FAIR, VAIN = "strong@quality=0.9", "fair@quality=0.7", "vain@quality=0.3,self_favour"


@pytest.fixture
def vain_panel_history(http, trio_settings, request):
    """Forty requests answered by the .9 / .7 / .3 panel under the self-vote policy `request.param`."""
    trio_settings.TRIO_MODELS = [STRONG, FAIR, VAIN]
    trio_settings.TRIO_SELF_VOTE = request.param
    for i in range(REQUESTS):
        answer = http.post("/v1/chat/completions", json={
            "model": "trio", "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]})
        assert answer.status_code == 200, answer.text
    return leaderboards.leaderboard(bootstrap_rounds=200)


@pytest.mark.parametrize("vain_panel_history", ["include", "exclude"], indirect=True)
def test_the_vain_judge_is_rated_last_and_never_beats_the_strong_model(vain_panel_history):
    board = vain_panel_history

    assert [r.model for r in board.ratings] == [STRONG, FAIR, VAIN]
    points = [r.rating for r in board.ratings]
    assert points[0] > points[1] > points[2]  # no ties
    assert [r.rank for r in board.ratings] == [1, 2, 3]  # not even within the 95% intervals
    assert board.head_to_head.get((VAIN, STRONG), 0) == 0
    assert board.head_to_head.get((VAIN, FAIR), 0) == 0


@pytest.mark.parametrize("vain_panel_history", ["include"], indirect=True)
def test_the_leaderboard_page_says_which_comparisons_count(vain_panel_history, admin_client):
    page = admin_client.get("/leaderboard/").content.decode()

    assert "admission against interest" in page
    assert f"{VAIN}</th>" in page
