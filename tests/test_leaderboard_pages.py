"""/leaderboard/ and /leaderboard.json: staff only, sortable, filterable, the selector's numbers."""
import io
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ensemble.keys import api_key_create, api_keys_revoke
from ensemble.models import ApiKey
from tests.factories import ago, build_vote, save_votes

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


@pytest.fixture
def history():
    """Forty requests: alpha wins 30 (one from 10 days ago, in the 'duo' ensemble), beta 8, gamma 2."""
    rows = []
    for i in range(40):
        winner = 0 if i < 30 else 1 if i < 38 else 2
        ballots = {v: ([winner], winner) for v in range(3)}
        rows.append(build_vote(members=["alpha", "beta", "gamma"], ballots=ballots, created_at=ago(minutes=i),
                               latency_ms={0: 100 + i, 1: 200, 2: 300}))
    rows.append(build_vote(members=["alpha", "beta"], ensemble="duo", created_at=ago(days=10),
                           ballots={0: ([0], 0), 1: ([0], 0)}))
    return save_votes(rows)


def table_models(html: str) -> list[str]:
    body = re.search(r'<table class="leaderboard">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return re.findall(r'<th scope="row"><a href="/votes/\?model=[^"]*">([^<]*)</a>', body)


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = client.get("/leaderboard/")
    assert response.status_code == 302 and response.url == "/admin/login/?next=/leaderboard/"


def test_the_json_without_key_or_session_is_a_json_401_not_the_login_page(client):
    response = client.get("/leaderboard.json")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_logged_in_users_who_are_not_staff_get_403(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-123"))
    assert client.get("/leaderboard/").status_code == 403
    assert client.get("/leaderboard.json").status_code == 403


def test_an_empty_database_shows_a_friendly_empty_state(staff):
    response = staff.get("/leaderboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No votes yet" in html and "/v1/chat/completions" in html
    assert staff.get("/leaderboard.json").json()["models"] == []


def test_the_table_has_one_row_per_model_best_win_rate_first(staff, history):
    html = staff.get("/leaderboard/").content.decode()
    assert table_models(html) == ["alpha", "beta", "gamma"]
    alpha_row = re.search(r'<tr>\s*<th scope="row"><a href="/votes/\?model=alpha">.*?</tr>', html, re.S).group(0)
    cells = [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in re.findall(r"<td[^>]*>(.*?)</td>", alpha_row, re.S)]
    # 41 requests, 31 wins: 76% with Wilson [61–86]; every ballot accepted only the winner.
    assert cells[:3] == ["41", "31", "76% [61–86]"]


def test_sorting_by_a_column_and_reversing_it(staff, history):
    html = staff.get("/leaderboard/", {"sort": "median_latency_ms"}).content.decode()
    assert table_models(html) == ["alpha", "beta", "gamma"]  # alpha answers fastest
    # The active header links to the reverse order, and says which way it is sorted.
    header = re.search(r'<th scope="col" aria-sort="ascending"[^>]*>\s*<a href="([^"]*)" data-sort="median_latency_ms"', html)
    assert header and "sort=-median_latency_ms" in header.group(1)
    assert table_models(staff.get("/leaderboard/", {"sort": "-median_latency_ms"}).content.decode()) == ["gamma", "beta", "alpha"]
    assert table_models(staff.get("/leaderboard/", {"sort": "model"}).content.decode()) == ["alpha", "beta", "gamma"]
    assert table_models(staff.get("/leaderboard/", {"sort": "nonsense"}).content.decode()) == ["alpha", "beta", "gamma"]


def test_sort_links_keep_the_window_and_ensemble(staff, history):
    html = staff.get("/leaderboard/", {"window": "7d", "ensemble": "trio"}).content.decode()
    link = re.search(r'<a href="([^"]*)" data-sort="wins"', html).group(1).replace("&amp;", "&")
    assert "window=7d" in link and "ensemble=trio" in link and "sort=-wins" in link


def test_window_and_ensemble_filters(staff, history):
    seven_days = staff.get("/leaderboard.json", {"window": "7d"}).json()
    assert {m["model"]: m["participated"] for m in seven_days["models"]} == {"alpha": 40, "beta": 40, "gamma": 40}
    duo = staff.get("/leaderboard.json", {"ensemble": "duo"}).json()
    assert {m["model"]: (m["participated"], m["wins"]) for m in duo["models"]} == {"alpha": (1, 1), "beta": (1, 0)}
    html = staff.get("/leaderboard/", {"window": "24h", "ensemble": "duo"}).content.decode()
    assert "No requests in this window" in html


def test_an_ensemble_without_any_request_is_not_told_to_try_a_longer_window(staff, history):
    html = staff.get("/leaderboard/", {"window": "all", "ensemble": "nobody"}).content.decode()
    assert "No requests for ensemble “nobody”" in html
    assert "longer window" not in html  # all time is the longest there is


def test_an_ensemble_name_with_a_nul_is_a_400_not_a_500(staff, history):
    # PostgreSQL refuses NUL in a query; ensemble.serving.middleware.RefuseNulCharacters answers first.
    assert staff.get("/leaderboard.json", {"ensemble": "duo\x00"}).json()["error"]["code"] == "invalid_value"
    assert staff.get("/leaderboard/", {"window": "all", "ensemble": "duo\x00"}).status_code == 400


def test_json_has_the_same_numbers_as_the_page(staff, history):
    body = staff.get("/leaderboard.json").json()

    assert body["window"] == "all" and body["ensemble"] is None
    alpha = next(m for m in body["models"] if m["model"] == "alpha")
    assert (alpha["participated"], alpha["wins"]) == (41, 31)
    assert alpha["win_rate"] == pytest.approx(31 / 41)
    assert (alpha["win_rate_low"], alpha["win_rate_high"]) == pytest.approx((0.6066, 0.8618), abs=1e-4)
    assert alpha["median_latency_ms"] == 119  # 100..139 and the duo's 100: the 21st of 41 is 119
    # Each of the 40 trio requests: 3 ballots preferring the winner over the two others, of which
    # the winner's own judge's count for nothing (it ranked its own first): 2 wins over each loser.
    h2h = {(p["winner"], p["loser"]): p["wins"] for p in body["head_to_head"]}
    # The duo request adds one: beta's ballot preferred alpha over beta; alpha's own ballot does not count.
    assert h2h[("alpha", "beta")] == 30 * 2 + 1 and h2h[("beta", "alpha")] == 8 * 2 and h2h[("gamma", "beta")] == 2 * 2
    ratings = {r["model"]: r for r in body["ratings"]}
    assert ratings["alpha"]["rank"] == 1 and not ratings["alpha"]["provisional"]
    assert ratings["alpha"]["low"] <= ratings["alpha"]["rating"] <= ratings["alpha"]["high"]
    assert sum(p["wins"] for p in body["win_rate_over_time"] if p["model"] == "alpha") == 31


def test_head_to_head_ratings_and_charts_are_on_the_page(staff, history):
    html = staff.get("/leaderboard/").content.decode()
    h2h = re.search(r'<table class="h2h">.*?</table>', html, re.S).group(0)
    assert "61/77" in h2h  # alpha over beta: 61 wins of 61 + 16 comparisons
    assert '<table class="ratings">' in html
    assert html.count('<svg class="chart"') == 2
    assert "alpha: 75.6% (31 of 41), 95% interval 60.7%–86.2%" in html


def test_model_names_are_escaped_everywhere(staff):
    evil = '<img src=x onerror="alert(1)">'
    save_votes([build_vote(members=[evil, "ok"], ballots={0: ([0], 0), 1: ([0], 0)})])
    for url in ("/leaderboard/", "/votes/"):
        html = staff.get(url).content.decode()
        assert "<img src=x" not in html and "&lt;img src=x" in html


def test_the_page_runs_a_bounded_number_of_queries(staff, history):
    call_command("rollup_votes", stdout=io.StringIO())
    with CaptureQueriesContext(connection) as queries:
        staff.get("/leaderboard/", {"window": "7d"})
    # Once the closed days are rolled up, the same count on both databases, whatever the history:
    # 12 since the judges' audit added one live GROUP BY (counts.preference_counts), and two more
    # for the cost per request (the live requests', the rolled-up days').
    assert len(queries) == 14


def test_the_json_answers_a_valid_api_key_for_dashboards_without_a_session(client, history):
    _, key = api_key_create(name="grafana")
    body = client.get("/leaderboard.json", HTTP_AUTHORIZATION=f"Bearer {key}").json()
    assert [m["model"] for m in body["models"]] == ["alpha", "beta", "gamma"]
    assert client.get("/leaderboard/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 302  # the page stays staff-only


def test_the_json_refuses_a_wrong_or_revoked_key_with_the_api_401(client):
    revoked, key = api_key_create(name="old")
    api_keys_revoke(ApiKey.objects.filter(pk=revoked.pk))
    for header in (f"Bearer {key}", "Bearer trio-not-a-key"):
        response = client.get("/leaderboard.json", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
