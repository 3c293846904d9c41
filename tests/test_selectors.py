"""Read queries (ensemble.history.reads, ensemble.leaderboard) on hand-built history whose every number is worked out below.

Every leaderboard test runs twice: on the live history, and with the closed days rolled up
(ensemble.leaderboard.rollups), where r4 (10 days ago) comes from the daily rollup instead.
"""
from datetime import datetime, timedelta
from datetime import timezone as tz

import pytest
from django.utils import timezone

from ensemble.history import reads
from ensemble.leaderboard import board as leaderboards
from ensemble.leaderboard import rollups, sorting, standing, statistics, windows
from ensemble.models import CompletionRequest, RollupDay
from tests.factories import ago, build_vote, save_votes, vote

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    """Four requests between models a, b, c. Comments give what each contributes.

    r1-r3 are minutes old, so they always fall in a day still read live (a day closes an hour after
    its midnight); hours old, they fell in yesterday's rolled-up day between 01:00 and 03:00 UTC.

    r1 ok, trio, 1 min ago. a prefers itself; b prefers a; c prefers itself. Winner a (2 accepts, 2 prefs).
    r2 partial, trio, 2 min ago. c timed out; a prefers b; b's ballot is unparseable. Winner b.
    r3 failed, trio, 3 min ago. Everyone errored: no winner, nobody "participated".
    r4 ok, duo (self-votes excluded), 10 days ago. a prefers itself (not counted); b prefers a. Winner a.
    """
    r1 = vote(members=["a", "b", "c"], created_at=ago(minutes=1), prompt="What is the capital of France?",
              ballots={0: ([0, 1], 0), 1: ([0, 1, 2], 0), 2: ([2], 2)}, latency_ms={0: 100, 1: 110, 2: 400})
    r2 = vote(members=["a", "b", "c"], created_at=ago(minutes=2), prompt="Write a haiku about rain",
              failed={2: "timeout"}, ballots={0: ([1], 1), 1: "unparseable"}, latency_ms={0: 300, 1: 150, 2: 5000})
    r3 = vote(members=["a", "b", "c"], created_at=ago(minutes=3), prompt="Explain monads",
              failed={0: "error", 1: "error", 2: "error"}, latency_ms={0: 9000, 1: 9000, 2: 9000})
    r4 = vote(members=["a", "b"], ensemble="duo", self_vote=False, created_at=ago(days=10), prompt="Capital of Peru?",
              ballots={0: ([0, 1], 0), 1: ([0, 1], 0)}, latency_ms={0: 200, 1: 130})
    return r1, r2, r3, r4


@pytest.fixture(params=["live", "rolled up"])
def board_history(request, history):
    """The same history, read live, or with its closed days (r4's) rolled up."""
    if request.param == "rolled up":
        rollups.rollup_closed_days()
        assert RollupDay.objects.filter(day=history[3].created_at.date()).exists()
    return history


def rolled_up(board_history) -> bool:
    return RollupDay.objects.exists()


def standings(**kwargs) -> dict[str, standing.Standing]:
    return {s.model: s for s in leaderboards.leaderboard(bootstrap_rounds=20, **kwargs).standings}


def test_the_fixture_is_what_its_docstring_says(history):
    r1, r2, r3, r4 = (CompletionRequest.objects.get(pk=r.pk) for r in history)
    assert [(r.status, r.winner_model, r.voter_count) for r in (r1, r2, r3, r4)] == [
        ("ok", "a", 3), ("partial", "b", 1), ("failed", "", 0), ("ok", "a", 2)]


def test_win_counts_and_rates_with_wilson_bounds(board_history):
    board = standings()

    assert {m: (s.participated, s.wins) for m, s in board.items()} == {"a": (3, 2), "b": (3, 1), "c": (2, 0)}
    assert board["a"].win_rate == pytest.approx(2 / 3)
    # Wilson 95% for 2/3, 1/3 and 0/2, worked by hand from the closed form.
    assert board["a"].win_interval == pytest.approx((0.2077, 0.9385), abs=1e-4)
    assert board["b"].win_interval == pytest.approx((0.0615, 0.7923), abs=1e-4)
    assert board["c"].win_interval == pytest.approx((0.0, 0.6576), abs=1e-4)


def test_acceptance_and_preference_received_use_counted_marks_only(board_history):
    board = standings()

    # a: r1 marks by a, b, c (2 accept, 2 prefer) + r2 its own rejecting mark + r4 b's preferring mark;
    #    r4's self mark is not counted (duo excludes self-votes).
    assert (board["a"].marks_received, board["a"].accepted_received, board["a"].preferred_received) == (5, 3, 3)
    assert board["a"].acceptance_rate == pytest.approx(3 / 5)
    # b: r1 by a, b, c (2 accept) + r2 by a (accept, prefer) + r4 by a (accept); r4 self not counted.
    assert (board["b"].marks_received, board["b"].accepted_received, board["b"].preferred_received) == (5, 4, 1)
    # c: r1 by a (reject), b (accept), c (accept, prefer); r2 c failed, so nobody judged it.
    assert (board["c"].marks_received, board["c"].accepted_received, board["c"].preferred_received) == (3, 2, 1)
    assert board["c"].preference_rate == pytest.approx(1 / 3)


def test_self_preference_counts_every_self_mark_against_others_preference(board_history):
    board = standings()

    # a prefers itself in r1 and r4 (r4 uncounted but still a self-preference), not in r2.
    assert (board["a"].self_preferred, board["a"].self_marks) == (2, 3)
    # others prefer a: r1 b yes, c no; r4 b yes.
    assert (board["a"].others_preferred, board["a"].others_marks) == (2, 3)
    assert (board["b"].self_preferred, board["b"].self_marks, board["b"].others_preferred, board["b"].others_marks) == (0, 2, 1, 4)
    assert board["c"].self_preference_rate == 1.0 and board["c"].others_preference_rate == 0.0


def test_invalid_ballot_and_error_rates(board_history):
    board = standings()

    assert (board["b"].ballots_unparseable, board["b"].ballots_answered) == (1, 3)
    assert board["a"].invalid_ballot_rate == 0.0
    assert (board["a"].failed_calls, board["a"].calls) == (1, 4)  # r3 error
    assert (board["c"].failed_calls, board["c"].calls) == (2, 3)  # r2 timeout, r3 error
    assert board["c"].error_rate == pytest.approx(2 / 3)


def test_median_latency_of_successful_calls(board_history):
    # Exact from live rows; from the rollup's histogram r4's latency is within half a bucket (2.2%).
    precision = statistics.HISTOGRAM_PRECISION if rolled_up(board_history) else 0
    board = standings()
    # a: 100, 200 (r4), 300; r3's 9000 ms failure is left out.
    assert board["a"].median_latency_ms == pytest.approx(200, rel=precision)
    assert board["b"].median_latency_ms == pytest.approx(130, rel=precision)  # 110, 130 (r4), 150
    assert board["c"].median_latency_ms == 400
    assert standings(window="7d")["a"].median_latency_ms == 200  # 100 and 300: today is always exact


def test_median_of_an_even_number_of_calls_is_the_mean_of_the_middle_two():
    for latency in (100, 400, 200, 1000):
        vote(members=["solo"], latency_ms={0: latency})
    assert standings()["solo"].median_latency_ms == 300


def test_head_to_head_counts_what_each_ballot_ranked_above_what_but_never_a_judge_over_its_own(board_history):
    board = leaderboards.leaderboard(bootstrap_rounds=20)

    # Ballots rank preferred > accepted > not accepted; a judge's own candidate only loses.
    # r1: ballot a (a > b > c) → b>c only, a is its own; ballot b (a > b = c) → a>b, a>c;
    #     ballot c (c > a = b) → nothing: c is its own, a and b tie.
    # r2: ballot a (b > a) → b>a.  r4 (self-votes excluded from the tally, not from this):
    #     ballot a (a > b) → nothing; ballot b (a > b) → a>b.
    assert board.head_to_head == {("a", "b"): 2, ("a", "c"): 1, ("b", "c"): 1, ("b", "a"): 1}
    rows = dict(board.head_to_head_rows())
    assert rows["a"] == [("a", 0, 0), ("b", 2, 3), ("c", 1, 1)]


def test_ratings_cover_every_model_and_are_provisional_on_little_data(board_history):
    board = leaderboards.leaderboard(bootstrap_rounds=20)
    assert sorted(r.model for r in board.ratings) == ["a", "b", "c"]
    assert all(r.provisional and r.rank is None for r in board.ratings)
    assert {r.model: r.comparisons for r in board.ratings} == {"a": 4, "b": 4, "c": 2}


def test_time_window_keeps_only_recent_requests(board_history):
    board = standings(window="7d")
    assert {m: (s.participated, s.wins) for m, s in board.items()} == {"a": (2, 1), "b": (2, 1), "c": (2, 0)}
    # Without r4, b's marks received are r1's three and r2's one.
    assert board["b"].marks_received == 4
    assert standings(window="24h").keys() == {"a", "b", "c"}
    assert standings(window="24h", now=timezone.now() + timedelta(days=2)) == {}


def test_ensemble_filter(board_history):
    board = leaderboards.leaderboard(ensemble="duo", bootstrap_rounds=20)
    assert {s.model: (s.participated, s.wins) for s in board.standings} == {"a": (1, 1), "b": (1, 0)}
    assert board.head_to_head == {("a", "b"): 1}  # b's ballot ranked a above b; a's own ranking of a does not count


def test_win_rate_over_time_has_one_point_per_model_and_bucket(board_history):
    board = leaderboards.leaderboard(window="30d", bootstrap_rounds=20)
    by_model = {}
    for bucket, model, participated, wins in board.over_time:
        by_model.setdefault(model, []).append((participated, wins))
        assert bucket.tzinfo is not None
    # Day buckets: r4's day and today (r1 and r2 are both within the last 3 minutes, maybe across midnight).
    assert sum(p for p, _ in by_model["a"]) == 3 and sum(w for _, w in by_model["a"]) == 2
    assert sum(p for p, _ in by_model["c"]) == 2 and sum(w for _, w in by_model["c"]) == 0


@pytest.mark.parametrize("rolled", [False, True], ids=["live", "rolled up"])
def test_a_concat_request_has_no_winner_so_it_counts_for_no_one(rolled):
    # concat joins every answer and picks no winner: its members neither won nor lost a request.
    for created_at in (ago(minutes=1), ago(days=3)):
        rows = build_vote(members=["a", "b"], created_at=created_at)
        rows.request.aggregation_method, rows.request.winner_index, rows.request.winner_model = "concat", None, ""
        for candidate in rows.candidates:
            candidate.is_winner, candidate.rank = False, None
        save_votes([rows])
    vote(members=["a", "b"], ballots={0: ([0], 0), 1: ([0, 1], 0)})
    if rolled:
        assert rollups.rollup_closed_days()

    board = leaderboards.leaderboard(bootstrap_rounds=5)
    assert {s.model: (s.participated, s.wins, s.calls) for s in board.standings} == {"a": (1, 1, 3), "b": (1, 0, 3)}
    assert sum(n for _, _, n, _ in board.over_time) == 2


def test_sorting_puts_missing_values_last_in_both_directions():
    vote(members=["fast", "slow"], ballots={0: ([0], 0), 1: ([0, 1], 0)}, latency_ms={0: 10, 1: 90})
    vote(members=["ghost"], failed={0: "timeout"})
    rows = leaderboards.leaderboard(bootstrap_rounds=5).standings
    assert [s.model for s in sorting.sort_standings(rows, "median_latency_ms")] == ["fast", "slow", "ghost"]
    assert [s.model for s in sorting.sort_standings(rows, "-median_latency_ms")] == ["slow", "fast", "ghost"]
    assert [s.model for s in sorting.sort_standings(rows, "-win_rate")] == ["fast", "slow", "ghost"]
    assert [s.model for s in sorting.sort_standings(rows, "model")] == ["fast", "ghost", "slow"]


def test_empty_history_gives_an_empty_leaderboard():
    board = leaderboards.leaderboard()
    assert (board.standings, board.head_to_head, board.ratings, board.over_time) == ([], {}, [], [])


# --- history -----------------------------------------------------------------------------------

def test_history_is_newest_first_with_the_winners_acceptances(history):
    r1, r2, r3, r4 = history
    rows = list(reads.request_history())
    assert [r.pk for r in rows] == [r1.pk, r2.pk, r3.pk, r4.pk]
    assert [(r.winner_accepted, r.voter_count) for r in rows] == [(2, 3), (1, 1), (None, 0), (1, 2)]


@pytest.mark.parametrize(("filters", "expected"), [
    ({"model": "c"}, [0, 1, 2]),
    ({"model": "nobody"}, []),
    ({"status": "partial"}, [1]),
    ({"search": "CAPITAL"}, [0, 3]),
    ({"model": "a", "status": "ok", "search": "capital"}, [0, 3]),
])
def test_history_filters(history, filters, expected):
    assert [r.pk for r in reads.request_history(**filters)] == [history[i].pk for i in expected]
    assert reads.request_history_count(**filters) == len(expected)


def test_a_model_twice_in_one_request_counts_that_request_once(history):
    vote(members=["a", "a"], created_at=ago(minutes=4), prompt="Twice", ballots={0: ([0, 1], 0)})

    assert reads.request_history_count(model="a") == 5 == reads.request_history(model="a").count()
    assert reads.request_history_count(model="a", date_from=timezone.now().date()) == 4


def test_history_date_range_is_inclusive_of_whole_days(history):
    today, r4_day = timezone.now().date(), history[3].created_at.date()
    assert [r.pk for r in reads.request_history(date_from=r4_day, date_to=r4_day)] == [history[3].pk]
    assert history[3].pk not in {r.pk for r in reads.request_history(date_from=r4_day + timedelta(days=1))}
    assert {r.pk for r in reads.request_history(date_to=today)} == {r.pk for r in history}


def test_history_rows_do_not_load_the_conversation(history):
    row = reads.request_history().first()
    assert "messages" in row.get_deferred_fields()


def test_detail_builds_the_ballot_matrix_in_five_queries(history, django_assert_num_queries):
    r2 = history[1]
    with django_assert_num_queries(5):  # the request, its candidates, ballots, marks and nested requests
        detail = reads.request_detail(request_id=r2.pk)
    assert [c.model for c in detail.candidates] == ["a", "b", "c"]
    assert detail.conversation == [("system", "Be brief."), ("user", "Write a haiku about rain")]
    voter_a, voter_b = detail.ballots
    assert voter_a.ballot.voter_model == "a" and voter_b.ballot.status == "unparseable"
    # a judged a (rejected, self) and b (preferred); c timed out and was never shown.
    cells = [(c.candidate.model, c.mark and (c.mark.accepted, c.mark.preferred, c.mark.is_self)) for c in voter_a.cells]
    assert cells == [("a", (False, False, True)), ("b", (True, True, False)), ("c", None)]
    assert [c.model for c in voter_a.shown] == ["a", "b"]


def test_detail_of_an_unknown_request_is_none():
    import uuid
    assert reads.request_detail(request_id=uuid.uuid4()) is None


@pytest.mark.parametrize("rolled", [False, True], ids=["live", "rolled up"])
def test_win_rate_buckets_follow_the_span_of_history(rolled):
    vote(members=["a", "b"], ballots={0: ([0], 0), 1: ([0], 0)}, created_at=datetime(2026, 1, 15, 9, 30, tzinfo=tz.utc))
    vote(members=["a", "b"], ballots={0: ([1], 1), 1: ([1], 1)}, created_at=datetime(2026, 6, 2, 23, 59, tzinfo=tz.utc))
    now = datetime(2026, 6, 3, 8, 0, tzinfo=tz.utc)
    if rolled:
        assert len(rollups.rollup_closed_days(now=now)) == 139  # 2026-01-15 to 2026-06-02

    months = leaderboards.leaderboard(now=now, bootstrap_rounds=5).over_time  # 140 days: months
    assert [(b, m, n, w) for b, m, n, w in months if m == "a"] == [
        (datetime(2026, 1, 1, tzinfo=tz.utc), "a", 1, 1), (datetime(2026, 6, 1, tzinfo=tz.utc), "a", 1, 0)]
    hours = leaderboards.leaderboard(window="24h", now=now, bootstrap_rounds=5).over_time
    assert hours == [(datetime(2026, 6, 2, 23, tzinfo=tz.utc), "a", 1, 0), (datetime(2026, 6, 2, 23, tzinfo=tz.utc), "b", 1, 1)]
    days = leaderboards.leaderboard(window="30d", now=now, bootstrap_rounds=5).over_time
    assert [b for b, *_ in days] == [datetime(2026, 6, 2, tzinfo=tz.utc)] * 2


def test_windows_of_days_are_whole_utc_days_today_included():
    now = datetime(2026, 6, 10, 15, 30, tzinfo=tz.utc)
    assert windows.window_start("24h", now) == datetime(2026, 6, 9, 15, 30, tzinfo=tz.utc)
    assert windows.window_start("7d", now) == datetime(2026, 6, 4, tzinfo=tz.utc)
    assert windows.window_start("30d", now) == datetime(2026, 5, 12, tzinfo=tz.utc)
    assert windows.window_start("all", now) is None
    vote(members=["a", "b"], created_at=datetime(2026, 6, 4, 0, 5, tzinfo=tz.utc))
    vote(members=["c", "d"], created_at=datetime(2026, 6, 3, 23, 55, tzinfo=tz.utc))
    assert set(standings(window="7d", now=now)) == {"a", "b"}


def test_a_day_closes_settle_after_its_midnight():
    midnight = datetime(2026, 6, 10, tzinfo=tz.utc)
    assert windows.closed_until(midnight + windows.SETTLE - timedelta(seconds=1)).isoformat() == "2026-06-09"
    assert windows.closed_until(midnight + windows.SETTLE).isoformat() == "2026-06-10"


@pytest.mark.parametrize(("counts", "median"), [
    ({}, None), ({7: 1}, 7), ({1: 1, 2: 1}, 1.5), ({1: 2, 9: 1}, 1), ({1: 1, 5: 2, 9: 1}, 5), ({1: 3, 2: 3}, 1.5),
])
def test_weighted_median(counts, median):
    assert statistics.weighted_median(counts) == median
