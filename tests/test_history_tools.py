"""`manage.py export_votes`, `prune_votes` and `seed_history`, on history stored by the service's own writer."""
import csv
import io
import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ensemble.catalog.spec import Ensemble
from ensemble.formats.usage import Usage
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest
from ensemble.outcomes import BallotResult, CandidateResult, CompletionOutcome
from ensemble.history.writer import completion_record
from ensemble.voting import Mark

pytestmark = pytest.mark.django_db

MEMBERS = ("alpha", "beta", "gamma")
ROOT = Path(__file__).resolve().parent.parent


def manage(database: Path, *args: str, **options) -> subprocess.CompletedProcess:
    """Run `manage.py *args` in a child process against the SQLite file `database`."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, **options)


def record(*, members=MEMBERS, age=timedelta(0), prompt="What is 2 + 2?") -> CompletionRequest:
    """Store one request, `age` old, in which every member answered and voted for the first answer."""
    outcome = CompletionOutcome(
        id=uuid.uuid4(), created_at=timezone.now() - age, ensemble=Ensemble("trio", tuple(members)),
        messages=[{"role": "user", "content": prompt}], params={"temperature": 0.2},
    )
    size = len(members)
    outcome.candidates = [
        CandidateResult(i, model, "ok", content=f"{model}: 4", finish_reason="stop", latency_ms=100 + i,
                        usage=Usage(5, 3, 8), accepted=size if i == 0 else 0, preferred=size if i == 0 else 0,
                        rank=i + 1)
        for i, model in enumerate(members)
    ]
    shown = list(reversed(range(size)))
    outcome.ballots = [
        BallotResult(v, model, shown, "ok", raw_text=f"ACCEPTED: {size}\nPREFERRED: {size}",
                     marks=[Mark(v, c, accepted=c == 0, preferred=c == 0) for c in shown])
        for v, model in enumerate(members)
    ]
    outcome.winner_index = 0
    return completion_record(outcome)


def export(*args) -> tuple[str, str]:
    """Return (stdout, stderr) of export_votes run with `args`."""
    out, err = io.StringIO(), io.StringIO()
    call_command("export_votes", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# --- export_votes --------------------------------------------------------------------------------

def test_jsonl_has_one_request_per_line_oldest_first_with_candidates_and_ballots_nested():
    older = record(age=timedelta(hours=2), prompt="first?")
    newer = record(prompt="second?")

    out, err = export("--format", "jsonl")

    documents = jsonl(out)
    assert [d["id"] for d in documents] == [older.public_id, newer.public_id]
    first = documents[0]
    assert (first["status"], first["winner_model"], first["winner_index"]) == ("ok", "alpha", 0)
    assert first["messages"] == [{"role": "user", "content": "first?"}]
    assert first["members"] == list(MEMBERS) and first["params"] == {"temperature": 0.2}
    assert [(c["index"], c["model"], c["content"], c["is_winner"]) for c in first["candidates"]] == [
        (0, "alpha", "alpha: 4", True), (1, "beta", "beta: 4", False), (2, "gamma", "gamma: 4", False)]
    ballot = first["ballots"][1]
    assert (ballot["voter_model"], ballot["shown_order"], ballot["status"]) == ("beta", [2, 1, 0], "ok")
    # Marks in the order the voter saw them, each naming the candidate it judged.
    assert [(m["position"], m["candidate_index"], m["accepted"], m["preferred"], m["is_self"])
            for m in ballot["marks"]] == [(1, 2, False, False, False), (2, 1, False, False, True), (3, 0, True, True, False)]
    assert "Exported 2 request(s)." in err


def test_csv_has_one_row_per_candidate_with_the_request_columns_repeated():
    request = record()

    out, _ = export("--format", "csv")

    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3
    assert {row["request_id"] for row in rows} == {request.public_id}
    assert [(r["candidate_index"], r["candidate_model"], r["candidate_is_winner"]) for r in rows] == [
        ("0", "alpha", "True"), ("1", "beta", "False"), ("2", "gamma", "False")]
    assert all(row["request_winner_model"] == "alpha" and row["request_status"] == "ok" for row in rows)
    assert rows[0]["request_created_at"] == request.created_at.isoformat()


def test_a_candidates_tool_calls_are_exported_as_json_in_both_formats():
    request = record()
    calls = [{"id": "call_1", "type": "function", "function": {"name": "add", "arguments": '{"a": 2, "b": 2}'}}]
    Candidate.objects.filter(request=request, index=1).update(tool_calls=calls)

    documents = jsonl(export("--format", "jsonl")[0])
    rows = list(csv.DictReader(io.StringIO(export("--format", "csv")[0])))

    assert [c["tool_calls"] for c in documents[0]["candidates"]] == [[], calls, []]
    assert [json.loads(r["candidate_tool_calls"]) for r in rows] == [[], calls, []]


def test_since_keeps_requests_created_from_that_moment_on():
    record(age=timedelta(days=10), prompt="old")
    recent = record(age=timedelta(days=1), prompt="recent")
    five_days_ago = timezone.now() - timedelta(days=5)

    by_date, _ = export("--since", five_days_ago.date().isoformat())
    by_datetime, _ = export("--since", five_days_ago.isoformat())

    assert [d["id"] for d in jsonl(by_date)] == [recent.public_id]
    assert [d["id"] for d in jsonl(by_datetime)] == [recent.public_id]


def test_model_keeps_requests_in_which_that_model_was_a_member_once_each():
    record(members=("alpha", "beta"))
    with_gamma = record(members=("gamma", "delta", "gamma"))  # a model may sit twice in an ensemble

    out, _ = export("--model", "gamma")

    assert [d["id"] for d in jsonl(out)] == [with_gamma.public_id]


def test_output_goes_to_the_named_file_and_only_the_summary_to_the_terminal(tmp_path):
    record()
    target = tmp_path / "votes.csv"

    out, err = export("--format", "csv", "-o", str(target))

    assert out == ""
    assert "Exported 1 request(s)." in err
    assert len(target.read_text().splitlines()) == 1 + 3


def test_it_reads_a_chunk_of_requests_at_a_time_not_one_query_per_request():
    for _ in range(25):
        record()

    with CaptureQueriesContext(connection) as queries:
        out, _ = export("--chunk-size", "10")

    assert len(jsonl(out)) == 25
    # 3 chunks × (requests + candidates + ballots + marks); per-request fetching would be 75+.
    assert len(queries) <= 3 * 4 + 2


def test_it_rejects_a_since_that_is_not_a_date():
    with pytest.raises(CommandError, match="not an ISO date"):
        export("--since", "last tuesday")


def test_it_stops_quietly_when_the_reader_of_its_output_goes_away(tmp_path):
    database = tmp_path / "db.sqlite3"
    for args in (("migrate",), ("seed_history", "--requests", "300", "--no-rollup")):
        assert manage(database, *args).returncode == 0
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}

    # As `export_votes | head -c 100`: far more than a pipe buffers, then the reader closes it.
    with subprocess.Popen([sys.executable, "manage.py", "export_votes"], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout.read(100).startswith(b'{"id":"trio-')
        process.stdout.close()
        stderr = process.stderr.read().decode()
        process.wait(timeout=60)

    assert stderr == ""  # neither BrokenPipeError nor "Cannot operate on a closed database"
    assert process.returncode == 1  # what Python's own docs recipe does for EPIPE


# --- prune_votes ---------------------------------------------------------------------------------

def prune(*args) -> str:
    out = io.StringIO()
    call_command("prune_votes", *args, stdout=out)
    return out.getvalue()


def table_sizes() -> tuple[int, int, int, int]:
    return tuple(model.objects.count() for model in (CompletionRequest, Candidate, Ballot, BallotMark))


def test_a_dry_run_counts_what_would_go_and_deletes_nothing():
    for _ in range(2):
        record(age=timedelta(days=100))
    record(age=timedelta(days=10))

    output = prune("--older-than", "90d", "--dry-run")

    assert "Would delete 2 request(s), 6 candidate(s), 6 ballot(s), 18 mark(s)" in output
    assert table_sizes() == (3, 9, 9, 27)


def test_it_deletes_old_requests_with_all_their_rows_in_batches_and_keeps_the_rest():
    for _ in range(5):
        record(age=timedelta(days=91))
    kept = record(age=timedelta(days=89))

    output = prune("--older-than", "90d", "--batch-size", "2")

    assert "Deleted 5 request(s), 15 candidate(s), 15 ballot(s), 45 mark(s)" in output
    assert list(CompletionRequest.objects.values_list("pk", flat=True)) == [kept.pk]
    assert table_sizes() == (1, 3, 3, 9)


def test_ages_can_be_given_in_hours():
    record(age=timedelta(hours=37))
    record(age=timedelta(hours=35))

    output = prune("--older-than", "36h")

    assert "Deleted 1 request(s)" in output
    assert CompletionRequest.objects.count() == 1


@pytest.mark.parametrize("age", ["90", "90m", "-1d", "d"])
def test_it_rejects_an_age_without_a_day_or_hour_unit(age):
    with pytest.raises(CommandError, match="not an age like 90d"):
        prune(f"--older-than={age}")


@pytest.mark.parametrize("age", ["1000000d", "99999999999999h"])
def test_it_rejects_an_age_that_reaches_back_before_the_year_1(age):
    with pytest.raises(CommandError, match=f"argument --older-than: '{age}' reaches back before the year 1"):
        prune(f"--older-than={age}", "--dry-run")


def test_the_oldest_age_it_takes_still_works():
    record(age=timedelta(days=700_001))  # in the year 110
    record(age=timedelta(days=100))

    assert "Would delete 1 request(s)" in prune("--older-than", "700000d", "--dry-run")
    assert "Deleted 1 request(s)" in prune("--older-than", "700000d")
    assert CompletionRequest.objects.count() == 1


def test_pruning_forgets_the_rollup_of_the_days_it_touched_and_only_those():
    from ensemble.leaderboard import board as leaderboards
    from ensemble.leaderboard import rollups
    from ensemble.models import ModelDayRollup, RollupDay

    old = record(age=timedelta(days=91))
    kept = record(age=timedelta(days=10))
    rollups.rollup_closed_days()
    assert RollupDay.objects.filter(day=old.created_at.date()).exists()
    prune("--older-than", "90d", "--dry-run")
    assert RollupDay.objects.filter(day=old.created_at.date()).exists()

    prune("--older-than", "90d")

    cutoff_day = (timezone.now() - timedelta(days=90)).date()
    assert not RollupDay.objects.filter(day__lte=cutoff_day).exists()
    assert not ModelDayRollup.objects.filter(day__lte=cutoff_day).exists()
    assert ModelDayRollup.objects.filter(day=kept.created_at.date()).count() == 3
    # What is left is counted once: the kept request, from the rollup.
    standings = leaderboards.leaderboard(bootstrap_rounds=5).standings
    assert {s.model: (s.participated, s.wins) for s in standings} == {"alpha": (1, 1), "beta": (1, 0), "gamma": (1, 0)}


# --- seed_history --------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value", [
    ("--requests", "-5"), ("--requests", "0"), ("--batch", "0"), ("--batch", "-1"), ("--days", "-3"),
])
def test_seed_history_rejects_counts_below_one_as_a_usage_error(tmp_path, option, value):
    # A child process: before this was checked, --batch 0 looped forever instead of failing.
    result = manage(tmp_path / "db.sqlite3", "seed_history", option, value)

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"argument {option}: '{value}' is not a whole number of at least 1" in result.stderr
    assert "Wrote" not in result.stdout
