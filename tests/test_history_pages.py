"""/votes/ and /votes/<id>/: staff only, filters that survive pagination, escaping, bounded queries."""
import re
import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test.utils import CaptureQueriesContext
from django.db import connection

from ensemble.models import CompletionRequest
from tests.factories import ago, build_vote, save_votes, vote

pytestmark = pytest.mark.django_db

XSS_SCRIPT = "<script>alert('candidate')</script>"
XSS_IMG = '<img src=x onerror="alert(1)">'


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True))
    return client


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for url in ("/votes/", f"/votes/{uuid.uuid4()}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url == f"/admin/login/?next={url}"


def test_logged_in_users_who_are_not_staff_get_403(client, django_user_model):
    r = vote(members=["a", "b"])
    client.force_login(django_user_model.objects.create_user("bob", password="pw-bob-123"))
    assert client.get("/votes/").status_code == 403
    assert client.get(f"/votes/{r.pk}/").status_code == 403


def test_a_vote_page_also_answers_to_the_id_api_clients_get(staff):
    r = vote(members=["a", "b"])

    by_api_id = staff.get(f"/votes/{r.public_id}/")

    assert by_api_id.status_code == 200 and r.public_id in by_api_id.content.decode()
    assert staff.get(f"/votes/trio-{uuid.uuid4().hex}/").status_code == 404
    assert r.get_absolute_url() == f"/votes/{r.pk}/"  # links keep the one canonical form


def test_an_empty_history_says_how_to_send_a_first_request(staff):
    html = staff.get("/votes/").content.decode()
    assert "No votes yet" in html
    assert "/v1/chat/completions" in html and "curl" in html


def test_the_list_shows_one_row_per_request_newest_first(staff):
    vote(members=["a", "b", "c"], created_at=ago(hours=2), prompt="Older question about tides and moons",
         ballots={0: ([0], 0), 1: ([0], 0), 2: ([1], 1)})
    vote(members=["a", "b", "c"], created_at=ago(hours=1), failed={2: "timeout"},
         prompt="one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
         ballots={0: ([0, 1], 1), 1: ([1], 1)}, latency_ms={0: 1234, 1: 1500, 2: 4000})

    html = staff.get("/votes/").content.decode()
    rows = re.findall(r"<tr>\s*<td class=\"nowrap when\">.*?</tr>", html, re.S)
    assert len(rows) == 2
    newest, older = rows
    assert "one two three four five six seven eight nine ten eleven twelve …" in newest  # first words only
    assert "thirteen" not in newest
    assert ">b<" in newest and "status-partial" in newest and "2/2" in newest
    assert "4040 ms" in newest  # the factory: slowest generation call (4000) + voting (40)
    assert "Older question" in older and "2/3" in older
    # The meter draws the figure next to it: screen readers read the figure, not a nameless meter.
    assert re.findall(r"<meter [^>]*>", newest) == ['<meter min="0" max="2" value="2" aria-hidden="true">']


def test_filters_survive_pagination(staff):
    save_votes([build_vote(members=["a", "b"], prompt=f"rain question {i}", created_at=ago(minutes=i),
                           ballots={0: ([0], 0), 1: ([0], 0)}) for i in range(7)])
    vote(members=["a", "b"], prompt="sunshine", ballots={0: ([1], 1), 1: ([1], 1)})

    first = staff.get("/votes/", {"search": "rain", "model": "a", "per_page": 3}).content.decode()
    assert "7 requests match" in first and "Page 1 of 3" in first
    next_link = re.search(r'href="(\?[^"]*)" rel="next"', first).group(1).replace("&amp;", "&")
    assert "search=rain" in next_link and "model=a" in next_link and "per_page=3" in next_link and "page=2" in next_link

    second = staff.get("/votes/" + next_link).content.decode()
    assert "Page 2 of 3" in second and "sunshine" not in second
    assert second.count("rain question") == 3
    assert 'value="rain"' in second  # the form still shows the filter


def test_the_id_a_client_was_answered_with_finds_its_request(staff):
    wanted = vote(members=["a", "b"], prompt="the one a client complained about")
    vote(members=["a", "b"], prompt="another one")
    for search in (wanted.public_id, str(wanted.pk), wanted.public_id.upper()):
        html = staff.get("/votes/", {"search": search}).content.decode()
        assert "1 request matches" in html and "the one a client complained about" in html, search


def test_a_bad_filter_value_is_reported_and_the_others_still_apply(staff):
    vote(members=["a"], prompt="kept")
    vote(members=["a"], prompt="dropped")
    html = staff.get("/votes/", {"date_from": "not-a-date", "search": "kept"}).content.decode()
    assert "date_from" in html and "(ignored)" in html
    assert "kept" in html and "dropped" not in html
    # A date input cannot show "not-a-date" (Chromium logs a console warning if asked to): it is left empty.
    assert '<input type="date" name="date_from" value="">' in html
    html = staff.get("/votes/", {"date_from": "2026-01-31"}).content.decode()
    assert '<input type="date" name="date_from" value="2026-01-31">' in html


def test_the_last_representable_day_is_a_valid_upper_bound(staff):
    vote(members=["a"], prompt="kept")
    html = staff.get("/votes/", {"date_to": "9999-12-31"}).content.decode()
    assert "kept" in html


def test_the_list_runs_the_same_number_of_queries_whatever_the_page_size(staff):
    save_votes([build_vote(members=["a", "b", "c"], created_at=ago(minutes=i),
                           ballots={0: ([0], 0), 1: ([1], 1), 2: ([0], 0)}) for i in range(60)])
    counts = []
    for per_page in (2, 60):
        with CaptureQueriesContext(connection) as queries:
            response = staff.get("/votes/", {"per_page": per_page, "model": "a"})
        assert response.content.decode().count('<td class="prompt">') == per_page
        counts.append(len(queries))
    # session, user, COUNT, the page's rows (winner acceptances in a subquery), the models for the filter
    assert counts == [5, 5]


def test_model_output_is_shown_as_text_never_as_markup(staff):
    r = vote(members=["a", "b"], prompt=f"Say {XSS_SCRIPT}", contents={0: XSS_SCRIPT, 1: XSS_IMG},
             ballots={0: ([0, 1], 0), 1: ([0], 0)}, raw_text={1: f"ACCEPTED: 1\n{XSS_IMG}"})
    r.error = XSS_IMG
    r.save(update_fields=["error"])

    for url in ("/votes/", f"/votes/{r.pk}/"):
        html = staff.get(url).content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html
    html = staff.get(f"/votes/{r.pk}/").content.decode()
    assert "&lt;script&gt;alert(&#x27;candidate&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


@pytest.fixture
def partial_request():
    return vote(
        members=["alpha", "beta", "gamma"], failed={1: "timeout"}, prompt="Capital of Chile?",
        contents={0: "Santiago.", 2: "Valparaíso."},
        ballots={0: ([0, 2], 0), 2: "unparseable"}, shown_order={0: [2, 0]},
        raw_text={2: "I think both are fine, hard to say."}, latency_ms={0: 800, 1: 5000, 2: 950},
    )


def test_the_detail_page_shows_the_whole_request(staff, partial_request):
    html = staff.get(f"/votes/{partial_request.pk}/").content.decode()

    assert partial_request.public_id in html
    assert "Capital of Chile?" in html and "Be brief." in html  # the conversation
    assert html.count('<article class="candidate') == 3
    assert re.search(r'class="candidate winner".*?<strong>alpha</strong>', html, re.S)
    assert "Santiago." in html and "Valparaíso." in html
    assert "timeout from backend" in html  # why beta has no answer
    assert "unparseable ballot" in html and "I think both are fine" in html
    # alpha saw gamma first, then itself.
    assert re.search(r"1 = gamma.*?2 = alpha", html, re.S)
    assert '<svg class="chart"' in html and "alpha answer" in html  # the timeline
    admin_url = f"/admin/ensemble/completionrequest/{partial_request.pk}/change/"
    assert f'href="{admin_url}"' in html


def test_the_ballot_matrix_marks_accepted_preferred_self_and_unshown(staff, partial_request):
    html = staff.get(f"/votes/{partial_request.pk}/").content.decode()
    matrix = re.search(r'<table class="matrix">.*?</table>', html, re.S).group(0)
    alpha_row = re.search(r'<tr class="ballot-ok">.*?</tr>', matrix, re.S).group(0)
    cells = re.findall(r'<td class="cell[^"]*">(.*?)</td>', alpha_row, re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells] == [
        "★ preferred self", "—", "✓ accepted"]
    assert '<tr class="ballot-unparseable">' in matrix


def test_usage_per_call_and_in_total(staff, partial_request):
    html = staff.get(f"/votes/{partial_request.pk}/").content.decode()
    usage = re.search(r'<table class="usage">.*?</table>', html, re.S).group(0)
    assert usage.count("<tr><td>") == 5  # three answers, two ballots
    total = re.search(r"<tfoot>.*?</tfoot>", usage, re.S).group(0)
    assert f">{partial_request.total_tokens}<" in total and partial_request.total_tokens == 3 * 20 + 2 * 11


def test_the_detail_page_runs_a_fixed_number_of_queries(staff, partial_request, django_assert_num_queries):
    with django_assert_num_queries(7):  # session, user, request, candidates, ballots, marks, nested requests
        assert staff.get(f"/votes/{partial_request.pk}/").status_code == 200


@pytest.mark.parametrize(("method", "rows", "reason"), [
    ("concat", {}, "concat returns every answer and picks no winner"),
    ("synthesize", {}, "synthesize combines the answers into one instead"),
    ("acceptance_voting", {"failed": {1: "error", 2: "error"}}, "fewer than two candidates to compare"),
    ("acceptance_voting", {"failed": {1: "cancelled", 2: "cancelled"}, "status": "cancelled"},
     "the client hung up before it"),
])
def test_a_request_without_ballots_says_why_there_was_no_vote(staff, method, rows, reason):
    built = build_vote(members=["a", "b", "c"], **rows)
    built.request.aggregation_method = method
    request = save_votes([built])[0]
    html = staff.get(f"/votes/{request.pk}/").content.decode()
    assert reason in html
    if reason != "fewer than two candidates to compare":
        assert "fewer than two candidates" not in html


def test_a_nested_ensemble_links_its_own_vote_and_back(staff):
    outer = build_vote(members=["a", "ensemble(b,c)"], ballots={0: ([0, 1], 1), 1: ([1], 1)})
    inner = build_vote(members=["b", "c"], ensemble="ensemble(b,c)", ballots={0: ([0], 0), 1: ([0, 1], 0)})
    inner.request.parent = outer.request
    outer_request, inner_request = save_votes([outer, inner])

    html = staff.get(f"/votes/{outer_request.pk}/").content.decode()
    candidate = re.search(r'<article[^>]*aria-label="Candidate 1".*?</article>', html, re.S).group(0)
    assert f'href="/votes/{inner_request.pk}/"' in candidate  # the nested ensemble's own vote
    assert html.count(f"/votes/{inner_request.pk}/") == 1  # and nowhere else
    assert f'href="/votes/{outer_request.pk}/"' in staff.get(f"/votes/{inner_request.pk}/").content.decode()


def test_an_unknown_request_is_404(staff):
    assert staff.get(f"/votes/{uuid.uuid4()}/").status_code == 404


def test_the_admin_links_to_the_pages_and_back(admin_client, partial_request):
    staff = admin_client
    index = staff.get("/admin/").content.decode()
    assert 'href="/votes/"' in index and 'href="/leaderboard/"' in index

    change = staff.get(f"/admin/ensemble/completionrequest/{partial_request.pk}/change/").content.decode()
    content_type = ContentType.objects.get_for_model(CompletionRequest)
    view_on_site = f"/admin/r/{content_type.pk}/{partial_request.pk}/"
    assert view_on_site in change
    assert staff.get(view_on_site).url.endswith(f"/votes/{partial_request.pk}/")


def test_the_site_root_leads_to_the_vote_history(staff):
    # The admin's "View site" link points at /, which must not be a 404.
    response = staff.get("/")
    assert response.status_code == 302 and response.url == "/votes/"


def test_a_login_without_a_usable_next_page_lands_on_the_vote_history(client, django_user_model):
    django_user_model.objects.create_user("eve", password="pw-eve-123", is_staff=True)
    for next_page in ("https://evil.example/", ""):
        response = client.post(f"/admin/login/?next={next_page}", {"username": "eve", "password": "pw-eve-123"})
        assert response.status_code == 302 and response.url == "/votes/", next_page
