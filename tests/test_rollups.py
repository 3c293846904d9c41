"""The leaderboard's daily rollup (ensemble.leaderboard.rollups): same numbers as the live history, written once per closed day."""
import importlib
import io
import random
from collections import Counter, defaultdict
from dataclasses import asdict
from datetime import datetime, timedelta
from datetime import timezone as tz
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ensemble.leaderboard import board as leaderboards
from ensemble.leaderboard import rollups, statistics, windows
from ensemble.models import BallotMark, CompletionRequest, ModelDayRollup, PairDayRollup, RollupDay
from tests.factories import build_vote, save_votes, vote

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 20, 15, 0, tzinfo=tz.utc)
MIDNIGHT = datetime(2026, 6, 20, tzinfo=tz.utc)
MODELS = ["alpha", "beta", "gamma", "delta"]
COSTS = {"alpha": Decimal("0.001"), "beta": Decimal("0.0023"), "gamma": Decimal("0.0000007")}  # delta's: unknown


@pytest.fixture
def history():
    """Sixty varied requests a day over the 40 days before NOW, today included, in two ensembles."""
    rng = random.Random(7)
    rows = []
    for day in range(40):
        for _ in range(60):
            members = rng.sample(MODELS, rng.choice([2, 3]))
            failed = {i: rng.choice(["timeout", "error"]) for i in range(len(members)) if rng.random() < 0.1}
            ok = [i for i in range(len(members)) if i not in failed]
            ballots = {}
            for voter in ok:
                accepted = [c for c in ok if rng.random() < 0.6]
                ballots[voter] = "unparseable" if rng.random() < 0.05 else (
                    accepted, rng.choice(accepted) if accepted and rng.random() < 0.9 else None)
            rows.append(build_vote(
                members=members, failed=failed, ballots=ballots, self_vote=rng.random() < 0.5,
                ensemble=rng.choice(["trio", "duo"]), costs=COSTS,
                latency_ms={i: rng.randint(50, 5000) for i in range(len(members))},
                created_at=MIDNIGHT - timedelta(days=day, seconds=-rng.uniform(0, 86399 if day else 15 * 3600)),
            ))
    return save_votes(rows)


def leaderboard(**kwargs) -> leaderboards.Leaderboard:
    return leaderboards.leaderboard(now=NOW, bootstrap_rounds=10, **kwargs)


def numbers(board: leaderboards.Leaderboard) -> dict:
    """Everything on the board that must not depend on where it was read from (the median aside)."""
    return {
        "standings": [{k: v for k, v in asdict(s).items() if k != "median_latency_ms"} for s in board.standings],
        "head_to_head": board.head_to_head,
        "over_time": board.over_time,
        "ratings": [(r.model, round(r.rating, 6), r.comparisons) for r in board.ratings],
        "voters": [v.as_dict() for v in board.voters],  # the judges' audit (leaderboard.judges)
        "cost_per_request": board.cost_per_request,
    }


@pytest.mark.parametrize("window", ["24h", "7d", "30d", "all"])
@pytest.mark.parametrize("ensemble", ["", "duo"])
def test_the_rollup_gives_the_live_numbers(history, window, ensemble):
    live = leaderboard(window=window, ensemble=ensemble)

    rollups.rollup_closed_days(now=NOW)
    rolled = leaderboard(window=window, ensemble=ensemble)

    assert numbers(rolled) == numbers(live)
    assert live.standings and live.head_to_head
    assert any(v.position_bias_p is not None and v.agreement_ballots for v in live.voters)
    for r, l in zip(rolled.standings, live.standings):
        assert r.median_latency_ms == pytest.approx(l.median_latency_ms, rel=statistics.HISTOGRAM_PRECISION)


def pairs_by_the_rule() -> Counter:
    """Return the head-to-head of every stored ballot, by the PAIR RULE written out in Python."""
    ballots = defaultdict(list)
    for mark in BallotMark.objects.values("ballot_id", "author_model", "accepted", "preferred", "is_self"):
        ballots[mark["ballot_id"]].append(mark)
    pairs = Counter()
    for marks in ballots.values():
        rank = {id(m): 2 if m["accepted"] and m["preferred"] else 1 if m["accepted"] else 0 for m in marks}
        pairs.update((a["author_model"], b["author_model"]) for a in marks for b in marks
                     if rank[id(a)] > rank[id(b)] and not a["is_self"] and a["author_model"] != b["author_model"])
    return pairs


def test_the_head_to_head_is_the_pair_rule_on_every_ballot_live_and_rolled_up(history):
    expected = pairs_by_the_rule()
    assert leaderboard().head_to_head == expected

    rollups.rollup_closed_days(now=NOW)
    assert PairDayRollup.objects.exists()
    assert leaderboard().head_to_head == expected


def test_rebuilding_the_rollup_replaces_pairs_counted_under_an_older_rule(history):
    rollups.rollup_closed_days(now=NOW)
    live = numbers(leaderboard())
    PairDayRollup.objects.update(wins=F("wins") + 7)  # as if counted by another rule
    assert numbers(leaderboard()) != live

    call_command("rollup_votes", "--rebuild", stdout=io.StringIO())

    assert numbers(leaderboard()) == live


def test_the_migration_forgets_rollups_counted_under_the_old_pair_rule(history):
    rollups.rollup_closed_days(now=NOW)
    live = numbers(leaderboard())
    PairDayRollup.objects.update(wins=F("wins") + 7)
    migration = importlib.import_module("ensemble.migrations.0011_mark_pair_index")

    migration.forget_rollups(django_apps, None)

    assert not (RollupDay.objects.exists() or PairDayRollup.objects.exists() or ModelDayRollup.objects.exists())
    assert numbers(leaderboard()) == live  # read live until rolled up again, then from the new rollup
    rollups.rollup_closed_days(now=NOW)
    assert numbers(leaderboard()) == live


def test_the_leaderboard_reads_closed_days_from_the_rollup(history):
    rollups.rollup_closed_days(now=NOW)
    before = {s.model: s.wins for s in leaderboard().standings}
    # Tamper with one rolled-up day: if the page read the history instead, this would not show.
    row = ModelDayRollup.objects.filter(model="alpha").order_by("day").first()
    ModelDayRollup.objects.filter(pk=row.pk).update(wins=row.wins + 1000)

    assert {s.model: s.wins for s in leaderboard().standings} == {**before, "alpha": before["alpha"] + 1000}


def test_closed_days_are_rolled_up_once_and_today_never(history):
    days = rollups.rollup_closed_days(now=NOW)
    assert days[0] == (NOW - timedelta(days=39)).date() and days[-1] == (NOW - timedelta(days=1)).date()
    assert len(days) == 39 and not RollupDay.objects.filter(day=NOW.date()).exists()
    stamps = dict(RollupDay.objects.values_list("day", "computed_at"))

    with CaptureQueriesContext(connection) as queries:
        assert rollups.rollup_closed_days(now=NOW + timedelta(hours=1)) == []
    assert len(queries) == 2  # the oldest request, the days already rolled up
    assert dict(RollupDay.objects.values_list("day", "computed_at")) == stamps


def test_yesterday_closes_only_settle_after_midnight(history):
    midnight = datetime(2026, 6, 21, tzinfo=tz.utc)
    rollups.rollup_closed_days(now=NOW)
    assert rollups.rollup_closed_days(now=midnight + windows.SETTLE - timedelta(minutes=1)) == []
    assert rollups.rollup_closed_days(now=midnight + windows.SETTLE) == [NOW.date()]
    with pytest.raises(ValueError, match="only closed days"):
        rollups.rollup_days([midnight.date()], now=midnight + windows.SETTLE)


def test_a_day_without_requests_is_rolled_up_as_empty():
    vote(members=["a", "b"], created_at=NOW - timedelta(days=3))
    vote(members=["a", "b"], created_at=NOW - timedelta(days=1))
    assert len(rollups.rollup_closed_days(now=NOW)) == 3
    assert RollupDay.objects.get(day=(NOW - timedelta(days=2)).date()).requests == 0
    assert not ModelDayRollup.objects.filter(day=(NOW - timedelta(days=2)).date()).exists()


def test_a_day_whose_history_moved_while_it_was_aggregated_is_not_stored():
    day = (NOW - timedelta(days=2)).date()
    vote(members=["a", "b"], created_at=NOW - timedelta(days=2))
    aggregates = rollups.day_aggregates(day, day + timedelta(days=1))
    vote(members=["a", "b"], created_at=NOW - timedelta(days=2))  # e.g. seeded, or a late write

    assert rollups._store(aggregates, [day], NOW) == []
    assert not RollupDay.objects.exists() and not ModelDayRollup.objects.exists()
    assert rollups.rollup_days([day], now=NOW) == [day]  # read again, it is stored
    assert RollupDay.objects.get(day=day).requests == 2


def test_invalidating_forgets_the_days_and_their_rows(history):
    rollups.rollup_closed_days(now=NOW)
    cutoff = (NOW - timedelta(days=20)).date()

    rollups.rollup_invalidate(until=cutoff)

    for model in rollups.ROLLUP_TABLES:
        assert not model.objects.filter(day__lte=cutoff).exists()
        assert model.objects.filter(day__gt=cutoff).exists()
    live = numbers(leaderboard())  # the forgotten days are read live meanwhile
    assert len(rollups.rollup_closed_days(now=NOW)) == 20
    assert numbers(leaderboard()) == live


def closed_days_ago(days: int) -> datetime:
    """Return noon of the day `days` before the first still-open day, by the real clock.

    The page and the command read the real clock; counting back from "now" instead would put
    one day fewer behind the cut-off during the hour after each UTC midnight (SETTLE).
    """
    first_open = windows.closed_until(datetime.now(tz.utc))
    return windows.utc_midnight(first_open - timedelta(days=days)) + timedelta(hours=12)


def page_numbers(body: dict) -> dict:
    """Everything /leaderboard.json says but its clock, the median latency apart (see `numbers`)."""
    body = {k: v for k, v in body.items() if k != "generated_at"}
    body["models"] = [{k: v for k, v in m.items() if k != "median_latency_ms"} for m in body["models"]]
    return body


@pytest.mark.parametrize("query", [{"window": "all"}, {"window": "7d"}, {"window": "30d", "ensemble": "duo"}])
def test_the_leaderboard_page_reads_closed_days_not_rolled_up_live_and_writes_nothing(admin_client, query):
    rng = random.Random(11)
    rows = []
    for day in range(10):  # nine closed days before the open one(s), and some of today
        for _ in range(12):
            accepted = {v: [c for c in range(3) if rng.random() < 0.7] for v in range(3)}
            rows.append(build_vote(
                members=rng.sample(MODELS, 3), ensemble=rng.choice(["trio", "duo"]),
                ballots={v: (a, rng.choice(a) if a else None) for v, a in accepted.items()},
                latency_ms={i: rng.randint(50, 5000) for i in range(3)},
                created_at=closed_days_ago(day) if day else timezone.now() - timedelta(minutes=rng.randint(1, 50)),
            ))
    save_votes(rows)

    live = admin_client.get("/leaderboard.json", query).json()
    assert (RollupDay.objects.count(), ModelDayRollup.objects.count(), PairDayRollup.objects.count()) == (0, 0, 0)

    call_command("rollup_votes", stdout=io.StringIO())
    assert RollupDay.objects.count() >= 9
    rolled = admin_client.get("/leaderboard.json", query).json()

    assert live["models"] and live["head_to_head"] and len(live["win_rate_over_time"]) > 3
    assert page_numbers(rolled) == page_numbers(live)
    for r, l in zip(rolled["models"], live["models"]):
        assert r["median_latency_ms"] == pytest.approx(l["median_latency_ms"], rel=statistics.HISTOGRAM_PRECISION)


def test_rollup_votes_rolls_up_what_is_missing_and_rebuilds_on_demand():
    vote(members=["a", "b"], created_at=closed_days_ago(2))

    def run(*args) -> str:
        out = io.StringIO()
        call_command("rollup_votes", *args, stdout=out)
        return out.getvalue()

    assert "Rolled up 2 day(s)" in run()
    assert "Nothing to roll up" in run()
    first = RollupDay.objects.order_by("day").first()
    assert "Rolled up 2 day(s)" in run("--rebuild")
    assert RollupDay.objects.order_by("day").first().computed_at > first.computed_at


def test_seed_history_writes_history_the_pages_read_and_rolls_it_up(admin_client):
    call_command("seed_history", "--requests", "300", "--days", "5", "--batch", "120", stdout=io.StringIO())

    assert CompletionRequest.objects.count() == 300
    assert RollupDay.objects.count() >= 4  # every closed day of the five
    rolled = numbers(leaderboards.leaderboard(bootstrap_rounds=5))
    rollups.rollup_invalidate()
    assert numbers(leaderboards.leaderboard(bootstrap_rounds=5)) == rolled
    request = CompletionRequest.objects.order_by("created_at").first()
    detail = admin_client.get(f"/votes/{request.pk}/")
    assert detail.status_code == 200 and request.prompt_excerpt in detail.content.decode()
    # The ids it assigned itself leave the sequences ready for the next normal insert.
    vote(members=["a", "b"], ballots={0: ([0], 0), 1: ([0], 0)})
