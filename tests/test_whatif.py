"""What-if re-tally (/leaderboard/what-if.json and /leaderboard/what-if/): stored ballots counted again.

First through the real service (Trio under uvicorn, the fake backend over HTTP): on a .9 / .7 / .3
panel the .9 model wins every request, so dropping it changes every one and dropping the .3 model
none. Then on hand-built ballots (tests.factories) where Borda, approval and the other self-vote
policy each pick another winner; chunking, the window and ensemble filters, access, the page and
`manage.py retally`.
"""
import io

from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from ensemble.keys import api_key_create
from ensemble.leaderboard import whatif
from ensemble.models import CompletionRequest, RequestTag
from tests.factories import ago, build_vote, save_votes, vote

STRONG, FAIR, WEAK = "strong@quality=0.9", "fair@quality=0.7", "weak@quality=0.3"
MEMBERS = ["a", "b", "c"]

# (a, b, c) ballots by voter index: (accepted, preferred).
# a and b tie on acceptances, b has the preferences: b wins; approval ignores them and a wins on order.
APPROVAL_DIFFERS = {0: ([0, 1], 1), 1: ([0, 1], 1), 2: ([2], 2)}
# a is accepted by all three, never preferred; b preferred by two: a wins, Borda gives b 4 points to a's 3.
BORDA_DIFFERS = {0: ([0, 1], 1), 1: ([0, 1], 1), 2: ([0, 2], 2)}
# b never accepts itself. Self-votes counted: all three tie (one acceptance, one preference each), a
# wins on order; excluded: a has nothing left and b wins the tie with c on order.
SELF_VOTES_DECIDE = {0: ([0], 0), 1: ([2], 2), 2: ([1], 1)}


def rules(body) -> dict:
    return {rule["rule"]: rule for rule in body["rules"]}


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


# --- through the service -------------------------------------------------------------------------

def test_without_the_best_model_every_request_changes_and_without_the_worst_none(http, trio_settings, admin_client):
    trio_settings.TRIO_MODELS = [FAIR, WEAK, STRONG]  # the best listed last: it wins on votes, not on order
    ids = set()
    for i in range(6):
        answer = http.post("/v1/chat/completions", json={
            "model": "trio", "messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["trio"]["winner_index"] == 2  # STRONG's
        ids.add(answer.json()["trio"]["request_id"])

    body = admin_client.get("/leaderboard/what-if.json").json()

    assert body["requests"] == 6
    by_rule = rules(body)
    assert {r for r in by_rule if r.startswith("without:")} == {f"without:{m}" for m in (STRONG, FAIR, WEAK)}
    assert (by_rule[f"without:{STRONG}"]["requests"], by_rule[f"without:{STRONG}"]["changed"]) == (6, 6)
    assert (by_rule[f"without:{WEAK}"]["requests"], by_rule[f"without:{WEAK}"]["changed"]) == (6, 0)
    assert set(by_rule[f"without:{STRONG}"]["changed_ids"]) == ids
    assert by_rule[f"without:{STRONG}"]["cost_saved"] is None  # calls store no cost yet
    assert by_rule["exclude_self_votes"]["requests"] == 6 and "include_self_votes" not in by_rule


# --- the counting rules on hand-built ballots ----------------------------------------------------

@pytest.mark.django_db
def test_borda_and_approval_each_change_the_request_they_count_differently():
    approval_differs = vote(members=MEMBERS, ballots=APPROVAL_DIFFERS)
    borda_differs = vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    assert (approval_differs.winner_model, borda_differs.winner_model) == ("b", "a")

    by_rule = {o.rule: o for o in whatif.what_if().rules}

    assert (by_rule["borda"].requests, by_rule["borda"].changed_ids) == (2, [borda_differs.public_id])
    assert (by_rule["approval"].requests, by_rule["approval"].changed_ids) == (2, [approval_differs.public_id])
    assert by_rule["borda"].cost_saved == by_rule["approval"].cost_saved == 0  # counting saves no call


@pytest.mark.django_db
def test_the_other_self_vote_policy_flips_a_request_self_votes_decided():
    stored_including = vote(members=MEMBERS, ballots=SELF_VOTES_DECIDE, self_vote=True)
    stored_excluding = vote(members=MEMBERS, ballots=SELF_VOTES_DECIDE, self_vote=False)
    vote(members=MEMBERS, ballots={v: ([1], 1) for v in range(3)}, self_vote=True)  # b wins either way
    assert (stored_including.winner_model, stored_excluding.winner_model) == ("a", "b")

    by_rule = {o.rule: o for o in whatif.what_if().rules}

    assert (by_rule["exclude_self_votes"].requests, by_rule["exclude_self_votes"].changed_ids) == (
        2, [stored_including.public_id])
    assert (by_rule["include_self_votes"].requests, by_rule["include_self_votes"].changed_ids) == (
        1, [stored_excluding.public_id])


@pytest.mark.django_db
def test_only_the_policy_the_window_did_not_use_is_listed():
    vote(members=MEMBERS, ballots=SELF_VOTES_DECIDE, self_vote=False)

    listed = [o.rule for o in whatif.what_if().rules]

    assert "include_self_votes" in listed and "exclude_self_votes" not in listed


@pytest.mark.django_db
def test_without_a_model_counts_only_the_requests_it_took_part_in():
    vote(members=MEMBERS, ballots=BORDA_DIFFERS)  # a wins; without c, b does (c's ballot preferred c over b)
    vote(members=["a", "b"], ballots={0: ([0], 0), 1: ([0], 0)})

    by_rule = {o.rule: o for o in whatif.what_if().rules}

    assert (by_rule["without:a"].requests, by_rule["without:a"].changed) == (2, 2)
    assert (by_rule["without:b"].requests, by_rule["without:b"].changed) == (2, 0)
    assert (by_rule["without:c"].requests, by_rule["without:c"].changed) == (1, 1)


@pytest.mark.django_db
def test_without_a_model_saves_the_known_cost_of_its_calls():
    costs = {"a": Decimal("0.001"), "b": Decimal("0.002")}  # c's calls: unknown
    vote(members=MEMBERS, ballots=BORDA_DIFFERS, costs=costs)
    vote(members=MEMBERS, ballots=BORDA_DIFFERS, costs=costs)

    by_rule = {o.rule: o for o in whatif.what_if().rules}

    # Two requests, each with the model's answer and its ballot.
    assert by_rule["without:a"].cost_saved == pytest.approx(0.004)
    assert by_rule["without:b"].cost_saved == pytest.approx(0.008)
    assert by_rule["without:c"].cost_saved is None  # nothing known: unknown, not 0
    assert by_rule["borda"].cost_saved == 0  # a counting rule drops no call


@pytest.mark.django_db
def test_a_winner_the_tally_did_not_choose_is_left_out_not_counted_as_changed():
    rows = build_vote(members=MEMBERS, ballots=BORDA_DIFFERS)  # the tally says a
    rows.request.winner_index, rows.request.winner_model = 2, "c"  # as the fallback after an internal error might
    save_votes([rows])
    unvoted = build_vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    unvoted.request.aggregation_method = "judge"
    save_votes([unvoted])

    result = whatif.what_if()

    assert (result.requests, result.not_reproduced) == (0, 1)
    assert all(o.requests == 0 for o in result.rules)


# --- scale: chunks ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_chunks_of_two_give_the_same_answer_as_one_chunk():
    ballots = [APPROVAL_DIFFERS, BORDA_DIFFERS, SELF_VOTES_DECIDE, {v: ([1], 1) for v in range(3)}]
    same_time = ago(minutes=1)  # five requests stored in one microsecond: the keyset's tie-break on id
    save_votes([build_vote(members=MEMBERS, ballots=ballots[i % 4], self_vote=i % 3 > 0,
                           created_at=same_time if i < 5 else None) for i in range(9)])
    save_votes([build_vote(members=MEMBERS, failed={0: "timeout", 1: "error", 2: "error"})
                for _ in range(3)])  # failed, not re-counted: chunks may hold none to re-count
    save_votes([build_vote(members=["a", "d"], ballots={0: ([1], 1), 1: ([1], 1)}, failed={}) for _ in range(2)])

    small, whole = whatif.what_if(chunk_size=2), whatif.what_if(chunk_size=1000)

    assert small.requests == whole.requests == 11
    assert [o.as_dict() for o in small.rules] == [o.as_dict() for o in whole.rules]
    assert {o.rule for o in small.rules} >= {"without:a", "without:b", "without:c", "without:d"}


# --- filters, access, the page, the command ------------------------------------------------------

@pytest.mark.django_db
def test_the_window_and_ensemble_filters_apply(staff):
    vote(members=MEMBERS, ballots=BORDA_DIFFERS, created_at=ago(minutes=5))
    vote(members=MEMBERS, ballots=BORDA_DIFFERS, created_at=ago(days=10))
    vote(members=["a", "b"], ballots={0: ([0], 0), 1: ([1], 1)}, ensemble="duo", created_at=ago(minutes=5))

    def counted(**query):
        return staff.get("/leaderboard/what-if.json", query).json()

    assert counted()["requests"] == 3
    assert counted(window="7d")["requests"] == 2
    week_trio = counted(window="7d", ensemble="trio")
    assert (week_trio["requests"], week_trio["ensemble"], rules(week_trio)["borda"]["changed"]) == (1, "trio", 1)
    assert counted(ensemble="duo")["requests"] == 1
    assert counted(ensemble="nobody")["requests"] == 0
    assert counted(window="nonsense")["window"] == "all"


@pytest.mark.django_db
def test_the_tag_and_user_filters_apply_as_on_the_leaderboard(staff):
    tagged = vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    RequestTag.objects.create(request=tagged, key="team", value="a")
    CompletionRequest.objects.filter(pk=tagged.pk).update(user="ann")
    vote(members=MEMBERS, ballots=BORDA_DIFFERS)

    def counted(**query):
        return staff.get("/leaderboard/what-if.json", query).json()

    assert counted()["requests"] == 2
    team_a = counted(tag="team:a")
    assert (team_a["requests"], team_a["tags"], rules(team_a)["borda"]["changed"]) == (1, ["team:a"], 1)
    assert counted(tag="team:b")["requests"] == 0
    assert counted(user="ann")["requests"] == 1
    bad = staff.get("/leaderboard/what-if.json", {"tag": "no-colon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tag"
    assert "team:a" in staff.get("/leaderboard/what-if/", {"tag": "team:a"}).content.decode()


@pytest.mark.django_db
def test_access_is_the_leaderboards(client, django_user_model):
    vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    response = client.get("/leaderboard/what-if.json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/leaderboard/what-if/").url == "/admin/login/?next=/leaderboard/what-if/"
    _, key = api_key_create(name="grafana")
    with_key = client.get("/leaderboard/what-if.json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert with_key.status_code == 200 and with_key.json()["requests"] == 1
    assert client.get("/leaderboard/what-if/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 302
    assert client.get("/leaderboard/what-if.json", HTTP_AUTHORIZATION="Bearer trio-wrong").status_code == 401
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-123"))
    assert client.get("/leaderboard/what-if.json").status_code == 403
    assert client.get("/leaderboard/what-if/").status_code == 403
    assert client.post("/leaderboard/what-if.json").status_code in (403, 405)


@pytest.mark.django_db
def test_the_page_links_each_changed_request_to_its_vote_page(staff):
    changed = vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    assert 'href="/leaderboard/what-if/' in staff.get("/leaderboard/", {"window": "7d"}).content.decode()

    html = staff.get("/leaderboard/what-if/", {"window": "7d"}).content.decode()

    link = f'href="/votes/{changed.public_id}/"'
    assert link in html and "without:c" in html and "borda" in html
    assert staff.get(f"/votes/{changed.public_id}/").status_code == 200


@pytest.mark.django_db
def test_retally_prints_the_same_figures():
    changed = vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    vote(members=MEMBERS, ballots=BORDA_DIFFERS, ensemble="duo")
    out = io.StringIO()

    call_command("retally", "--window", "7d", "--ensemble", "trio", stdout=out)

    lines = out.getvalue().splitlines()
    assert "1 request" in lines[0]
    borda = next(line for line in lines if line.startswith("borda"))
    assert borda.split()[1:3] == ["1", "1"] and changed.public_id in out.getvalue()


@pytest.mark.django_db
def test_retally_keeps_the_rules_asked_for_and_refuses_an_unknown_one():
    vote(members=MEMBERS, ballots=BORDA_DIFFERS)
    out = io.StringIO()

    call_command("retally", "--rule", "approval", "--rule", "without:c", stdout=out)

    assert [line.split()[0] for line in out.getvalue().splitlines()[1:]] == ["approval", "without:c"]
    with pytest.raises(CommandError, match="nonsense"):
        call_command("retally", "--rule", "nonsense")
