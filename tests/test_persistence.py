"""Every completion is stored, completely, in a bounded number of statements, under concurrency."""
import asyncio
import uuid

import httpx
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ensemble.catalog.spec import Ensemble
from ensemble.formats.usage import Usage
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest
from ensemble.outcomes import BallotResult, CandidateResult, CompletionOutcome
from ensemble.history.writer import completion_record, completions_record
from ensemble.voting import Mark


@pytest.mark.parametrize("concurrent", [32, 64])
def test_concurrent_requests_are_all_stored_with_every_candidate_and_ballot(trio, trio_settings, caplog, concurrent):
    trio_settings.TRIO_MODELS = ["alpha@latency=0.05,jitter=0.1,quality=0.9", "beta@jitter=0.1", "gamma@jitter=0.1"]

    async def fire():
        async with httpx.AsyncClient(base_url=trio, timeout=30, limits=httpx.Limits(max_connections=concurrent)) as client:
            body = {"model": "trio", "messages": [{"role": "user", "content": "count me"}]}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(concurrent)))

    responses = asyncio.run(fire())

    assert [r.status_code for r in responses] == [200] * concurrent
    ids = {r.json()["id"] for r in responses}
    assert {r.public_id for r in CompletionRequest.objects.all()} == ids
    assert Candidate.objects.count() == concurrent * 3
    assert Ballot.objects.filter(status="ok").count() == concurrent * 3
    assert BallotMark.objects.count() == concurrent * 9
    assert set(CompletionRequest.objects.values_list("status", flat=True)) == {"ok"}
    assert not [r for r in caplog.records if "locked" in r.getMessage() or r.levelname == "ERROR"]


def _outcome(members: int) -> CompletionOutcome:
    ensemble = Ensemble(name="trio", members=tuple(f"m{i}" for i in range(members)))
    outcome = CompletionOutcome(
        id=uuid.uuid4(), created_at=timezone.now(), ensemble=ensemble,
        messages=[{"role": "user", "content": "q"}], params={}, status="ok", winner_index=0,
    )
    outcome.candidates = [CandidateResult(i, f"m{i}", "ok", content=f"a{i}", usage=Usage(1, 2, 3))
                          for i in range(members)]
    outcome.ballots = [
        BallotResult(v, f"m{v}", list(range(members)), "ok", raw_text="ACCEPTED: 1",
                     marks=[Mark(v, c, accepted=c == 0, preferred=False) for c in range(members)])
        for v in range(members)
    ]
    return outcome


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("members", [1, 3, 9])
def test_storing_a_completion_takes_at_most_four_inserts_whatever_the_ensemble_size(members):
    with CaptureQueriesContext(connection) as queries:
        completion_record(_outcome(members))

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    others = [q["sql"] for q in queries.captured_queries
              if not q["sql"].lstrip().upper().startswith(("INSERT", "BEGIN", "SAVEPOINT", "RELEASE", "COMMIT"))]
    assert len(inserts) <= 4, inserts
    assert others == []
    assert Candidate.objects.count() == members and BallotMark.objects.count() == members * members


@pytest.mark.django_db(transaction=True)
def test_a_failed_request_is_stored_with_its_failures():
    outcome = _outcome(2)
    outcome.status, outcome.winner_index, outcome.ballots = "failed", None, []
    for candidate in outcome.candidates:
        candidate.status, candidate.content, candidate.error = "timeout", "", "no answer within 1s"

    completion_record(outcome)

    request = CompletionRequest.objects.get()
    assert request.status == "failed" and request.winner_index is None
    assert list(request.candidates.values_list("status", "error")) == [("timeout", "no answer within 1s")] * 2


@pytest.mark.django_db(transaction=True)
def test_backend_text_with_nul_characters_is_stored_without_them():
    # Requests are refused with NUL (PostgreSQL text and jsonb cannot hold it), but the backend's own
    # text is not ours to refuse: an answer, a ballot or an error body with NUL made PostgreSQL reject
    # the whole write, and after its retries the request's history was lost.
    outcome = _outcome(2)
    outcome.candidates[0].content = "an\x00answer"
    outcome.candidates[1].status, outcome.candidates[1].content = "error", ""
    outcome.candidates[1].error = outcome.error = "m1: HTTP 500: bad\x00body"
    outcome.ballots[0].raw_text = "ACCEPTED: 1\x00"

    completion_record(outcome)

    stored = [CompletionRequest.objects.get().error, *Ballot.objects.values_list("raw_text", flat=True)]
    for content, error in Candidate.objects.values_list("content", "error"):
        stored += [content, error]
    assert not [text for text in stored if "\x00" in text]
    assert Candidate.objects.get(index=0).content == "an\ufffdanswer"


@pytest.mark.django_db(transaction=True)
def test_a_backend_finish_reason_with_nul_is_stored_without_it():
    # The finish_reason is the backend's word, kept as it came (cut to its column): a NUL in it
    # made PostgreSQL refuse the request's whole write, as one in the answer's text did.
    outcome = _outcome(2)
    outcome.candidates[0].finish_reason = "stop\x00"

    completion_record(outcome)

    assert Candidate.objects.get(index=0).finish_reason == "stop\ufffd"


@pytest.mark.django_db(transaction=True)
def test_tool_calls_are_stored_with_their_candidates_nul_replaced_in_the_same_inserts():
    outcome = _outcome(3)
    call = {"id": "call_\x00", "type": "function", "function": {"name": "get\x00x", "arguments": '{"a": "\x00"}'}}
    outcome.candidates[1].content, outcome.candidates[1].tool_calls = "", [call]

    with CaptureQueriesContext(connection) as queries:
        completion_record(outcome)

    assert len([q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]) <= 4
    assert Candidate.objects.get(index=1).tool_calls == [{"id": "call_\ufffd", "type": "function", "function": {
        "name": "get\ufffdx", "arguments": '{"a": "\ufffd"}'}}]
    assert Candidate.objects.get(index=0).tool_calls == []


@pytest.mark.django_db(transaction=True)
def test_a_finish_reason_longer_than_its_column_is_stored_cut_to_fit():
    # The backend's word, stored as it came: PostgreSQL refuses a value longer than the column.
    outcome = _outcome(1)
    outcome.candidates[0].finish_reason = "x" * 40

    completion_record(outcome)

    assert Candidate.objects.get().finish_reason == "x" * Candidate._meta.get_field("finish_reason").max_length


@pytest.mark.django_db(transaction=True)
def test_a_token_count_too_large_for_its_column_is_stored_at_the_columns_maximum():
    # A backend's absurd usage (2**63 here) made the write fail (SQLite: OverflowError; PostgreSQL
    # past 2**31 - 1), and after the retries the request's history was lost.
    outcome = _outcome(2)
    outcome.candidates[0].usage = Usage(2**63 + 5, 3, 2**63 + 8)
    outcome.ballots[0].usage = Usage(2**40, 0, 2**40)

    completion_record(outcome)

    most = 2**31 - 1
    assert Candidate.objects.get(index=0).prompt_tokens == most
    assert Ballot.objects.get(voter_index=0).total_tokens == most
    request = CompletionRequest.objects.get()
    assert (request.prompt_tokens, request.completion_tokens) == (most, 3 + 2)  # the other candidate: 2


@pytest.mark.django_db(transaction=True)
def test_a_large_batch_is_split_under_the_parameter_limit_and_every_mark_points_at_its_own_rows():
    outcomes = [_outcome(3) for _ in range(64)]  # 192 candidates x 15 columns: past SQLite's 999 parameters
    for number, outcome in enumerate(outcomes):
        outcome.candidates[0].content = f"answer {number}"

    completions_record(outcomes)

    assert CompletionRequest.objects.count() == 64 and Candidate.objects.count() == 192
    assert BallotMark.objects.count() == 64 * 9
    for mark in BallotMark.objects.select_related("ballot", "candidate"):
        assert mark.ballot.request_id == mark.request_id == mark.candidate.request_id
        assert (mark.ballot.voter_model, mark.candidate.model) == (mark.voter_model, mark.author_model)
    first = {c.request_id: c.content for c in Candidate.objects.filter(index=0)}
    assert first == {o.id: f"answer {n}" for n, o in enumerate(outcomes)}


@pytest.mark.django_db
@pytest.mark.parametrize("model", [CompletionRequest, Candidate, Ballot, BallotMark])
def test_no_index_of_the_history_tables_is_a_prefix_of_another(model):
    """Every stored completion updates every index of these tables: one that another begins with only costs."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    # B-tree indexes and unique constraints only: not PostgreSQL's trigram index (GIN, no columns)
    # nor its "_like" twins (varchar_pattern_ops, for LIKE 'x%'), which share their base's columns.
    indexed = {name: c["columns"] for name, c in constraints.items()
               if (c["unique"] or c.get("type") == "idx") and c["columns"] and not c["primary_key"]
               and not name.endswith("_like")}
    unique = {name for name, c in constraints.items() if c["unique"]}
    # A partial index holds only the rows its condition picks: it neither replaces nor is replaced by another.
    partial = {index.name for index in model._meta.indexes if index.condition is not None}

    covered = [(name, other) for name, columns in indexed.items() if name not in unique | partial
               for other, longer in indexed.items()
               if other not in {name} | partial and longer[:len(columns)] == columns]
    assert covered == []
