"""Storing completions: every request's history in one transaction, written by one thread.

Each process has a single writer thread (`WRITER`) with its own database connection. Completions
that finish while it is busy are queued and written together, in one transaction of four bulk
INSERTs (requests, candidates, ballots, marks), whatever their number, with SQL built once
(`ensemble.inserts`). Why not one
`sync_to_async` write per request: SQLite lets one writer in at a time and makes the others
sleep-poll for the lock (up to 100 ms a nap), which turned 64 concurrent completions into a
1.5 s p99 tail; one writer with group commit never contends inside a process, and PostgreSQL
gets fewer, larger transactions too.

If a write fails after the answer was decided (database locked, gone, a bad row), the caller
still gets its answer: the failure is logged with the completion id and each outcome of the
batch is retried on its own in the background. When the worker stops (`writer_drain`, at the
lifespan shutdown), the outcomes still waiting for a retry get one last attempt together, and
any that fails is logged as lost, with its content: the retries die with the process.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, transaction

from . import voting
from .backend import MAX_TOKEN_COUNT, Usage
from .formats.text import last_user_text
from .inserts import RowInserter
from .loops import PerLoop
from .models import Ballot, BallotMark, Candidate, CompletionRequest, RequestTag
from .outcomes import BallotResult, CandidateResult, CompletionOutcome

logger = logging.getLogger(__name__)

WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trio-writer")
RECORD_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60)


async def completion_record_async(outcome: CompletionOutcome) -> None:
    """Store the outcome, batched with any others finishing now; database trouble never raises here."""
    await _batchers.get().submit(outcome)


class _Batcher:
    """Collect outcomes on one event loop and hand them to the writer thread in batches."""

    def __init__(self):
        self.queue: list[tuple[CompletionOutcome, asyncio.Future]] = []
        self.flushing: asyncio.Task | None = None
        self.retrying: set[asyncio.Task] = set()  # outcomes whose write is retried in the background
        self.stopping = asyncio.Event()  # set by writer_drain: retries stop waiting

    async def submit(self, outcome: CompletionOutcome) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self.queue.append((outcome, done))
        if self.flushing is None or self.flushing.done():
            self.flushing = _keep(loop.create_task(self._flush()))
        await asyncio.shield(done)  # a caller giving up must not unqueue a decided outcome

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            batch, self.queue = self.queue, []
            outcomes = [outcome for outcome, _ in batch]
            try:
                await loop.run_in_executor(WRITER, _write_in_writer, outcomes)
            except Exception:
                for outcome in outcomes:
                    logger.exception("storing %s failed; retrying in the background", outcome.public_id)
                    retry = _keep(loop.create_task(_record_retrying(outcome, self.stopping)))
                    self.retrying.add(retry)
                    retry.add_done_callback(self.retrying.discard)
            for _, done in batch:
                done.set_result(None)


_batchers: PerLoop[_Batcher] = PerLoop(_Batcher)
_background: set[asyncio.Task] = set()  # strong references, or the loop may drop pending tasks


def _keep(task: asyncio.Task) -> asyncio.Task:
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def _write_in_writer(outcomes: list[CompletionOutcome]) -> None:
    try:
        completions_record(outcomes)
    except Exception:
        connection.close()  # a broken connection must not poison the next batch
        raise


async def _record_retrying(outcome: CompletionOutcome, stopping: asyncio.Event) -> CompletionOutcome | None:
    """Retry storing `outcome`; return it if the worker began stopping before it was stored."""
    loop = asyncio.get_running_loop()
    for attempt, delay in enumerate(RECORD_RETRY_DELAYS, start=2):
        if await _sleep_unless(stopping, delay):
            return outcome  # writer_drain makes the last attempt
        try:
            await loop.run_in_executor(WRITER, _write_in_writer, [outcome])
        except Exception:
            logger.warning("storing %s failed again (attempt %d)", outcome.public_id, attempt, exc_info=True)
        else:
            logger.info("stored %s after %d attempts", outcome.public_id, attempt)
            return None
    logger.error("gave up storing %s; its outcome is lost: %r", outcome.public_id, outcome)
    return None


async def _sleep_unless(event: asyncio.Event, seconds: float) -> bool:
    """Sleep `seconds`, less if `event` is set meanwhile; return whether it is set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass
    return event.is_set()


async def writer_drain() -> None:
    """At shutdown: store the outcomes still waiting for a retry, in one last attempt; log any lost."""
    loop = asyncio.get_running_loop()
    batcher = _batchers.peek()
    if batcher is None:
        return
    if batcher.flushing is not None:
        # A batch may still be on its way (a stream whose client hung up does not wait for it): its
        # failures become retries too.
        await batcher.flushing
    if not batcher.retrying:
        return
    batcher.stopping.set()
    # An attempt already running is awaited, not cancelled: its thread would go on writing anyway.
    unstored = [o for o in await asyncio.gather(*batcher.retrying) if o is not None]
    if not unstored:
        return
    try:
        await loop.run_in_executor(WRITER, _write_in_writer, unstored)
    except Exception:
        for outcome in unstored:
            logger.exception("stopping: gave up storing %s; its outcome is lost: %r", outcome.public_id, outcome)
    else:
        logger.info("stopping: stored %d outcome(s) whose write was being retried", len(unstored))


async def writer_close() -> None:
    """Close the writer thread's database connection (at shutdown, or before dropping a test DB)."""
    await asyncio.get_running_loop().run_in_executor(WRITER, _close_connection)


def _close_connection() -> None:
    connection.close()  # resolved here, in the writer thread: connections are per thread


def completion_record(outcome: CompletionOutcome) -> CompletionRequest:
    """Write one outcome's rows in one transaction and return its request row (built, not re-read)."""
    request = CompletionRequest(**completions_record([outcome])[0])
    request._state.adding, request._state.db = False, "default"
    return request


def completions_record(outcomes: list[CompletionOutcome]) -> list[dict]:
    """Write the requests, candidates, ballots and marks of `outcomes` in one transaction of four
    INSERTs (more only past SQLite's limit of 999 parameters a statement); return the request rows."""
    outcomes = [member for outcome in outcomes for member in outcome.family()]  # nested ensembles' too
    if not settings.TRIO_STORE_CONTENT:
        outcomes = [_without_content(o) for o in outcomes]
    requests = [_request_row(o) for o in outcomes]
    candidates = [_candidate_row(o, c) for o in outcomes for c in o.candidates]
    ballots = [_ballot_row(o, b) for o in outcomes for b in o.ballots]
    with transaction.atomic():
        REQUESTS.insert(requests)
        candidate_ids = iter(CANDIDATES.insert(candidates))
        ballot_ids = iter(BALLOTS.insert(ballots))
        marks = []
        for outcome in outcomes:
            candidate_rows = [(next(candidate_ids), c.model) for c in outcome.candidates]
            for ballot in outcome.ballots:
                ballot_id = next(ballot_ids)
                marks.extend(_mark_row(outcome, ballot, ballot_id, candidate_rows[m.candidate], position, m)
                             for position, m in enumerate(ballot.marks, start=1))
        MARKS.insert(marks)
        # -- tags (issue 24): each request's metadata pairs, for ?tag= filters --
        TAGS.insert([{"request_id": o.id, "key": key, "value": value}
                     for o in outcomes for key, value in o.metadata.items()])
        # -- end tags --
    return requests


def _without_content(outcome: CompletionOutcome) -> CompletionOutcome:
    """Return a copy keeping metadata and votes but no prompt, answer or ballot text."""
    return dataclasses.replace(
        outcome,
        messages=[{"role": m.get("role")} for m in outcome.messages],
        candidates=[dataclasses.replace(c, content="", tool_calls=[]) for c in outcome.candidates],
        ballots=[dataclasses.replace(b, raw_text="") for b in outcome.ballots],
    )


REQUESTS = RowInserter(CompletionRequest, [
    "id", "created_at", "ensemble", "members", "messages", "params", "prompt_excerpt", "status", "error",
    "winner_model", "winner_index", "voter_count", "latency_ms", "generation_ms", "voting_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "api_key_id", "aggregation_method", "parent_id",
    "consensus_score", "consensus_preferred_share", "consensus_margin", "consensus_low",
    "metadata", "user",  # tags (issue 24)
])
TAGS = RowInserter(RequestTag, ["request_id", "key", "value"])  # tags (issue 24)
CANDIDATES = RowInserter(Candidate, [
    "request_id", "index", "model", "content", "tool_calls", "status", "error", "finish_reason", "latency_ms",
    "accepted_count", "preferred_count", "rank", "is_winner", "prompt_tokens", "completion_tokens",
    "total_tokens",
], returning_pk=True)
BALLOTS = RowInserter(Ballot, [
    "request_id", "voter_index", "voter_model", "shown_order", "raw_text", "status", "error", "latency_ms",
    "prompt_tokens", "completion_tokens", "total_tokens", "format",
], returning_pk=True)
MARKS = RowInserter(BallotMark, [
    "ballot_id", "request_id", "candidate_id", "voter_model", "author_model", "position", "accepted", "preferred",
    "is_self", "counted",
])


def _request_row(outcome: CompletionOutcome) -> dict:
    winner = outcome.winner
    return dict(
        id=outcome.id, created_at=outcome.created_at, ensemble=outcome.ensemble.name,
        members=list(outcome.ensemble.members), messages=outcome.messages, params=outcome.params,
        prompt_excerpt=last_user_text(outcome.messages)[:300], status=outcome.status,
        error=_storable(outcome.error), winner_model=winner.model if winner else "",
        winner_index=outcome.winner_index, voter_count=outcome.counted_ballots,
        latency_ms=outcome.latency_ms, generation_ms=outcome.generation_ms,
        voting_ms=outcome.voting_ms, **_usage_columns(outcome.total_usage),
        api_key_id=outcome.api_key_id, aggregation_method=outcome.ensemble.aggregation,
        parent_id=outcome.parent_id, **_consensus_columns(outcome.consensus),
        metadata=outcome.metadata, user=outcome.user,  # tags (issue 24)
    )


def _consensus_columns(consensus: voting.Consensus | None) -> dict:
    """Return the request row's consensus columns (`consensus_<field>`): all null without a consensus."""
    fields = consensus.as_dict() if consensus else dict.fromkeys(("score", "preferred_share", "margin", "low"))
    return {f"consensus_{name}": value for name, value in fields.items()}


def _candidate_row(outcome: CompletionOutcome, c: CandidateResult) -> dict:
    return dict(
        request_id=outcome.id, index=c.index, model=c.model, content=_storable(c.content),
        tool_calls=[_storable_tool_call(call) for call in c.tool_calls], status=c.status,
        error=_storable(c.error), finish_reason=_storable(c.finish_reason)[:FINISH_REASON_MAX], latency_ms=c.latency_ms,
        accepted_count=c.accepted, preferred_count=c.preferred, rank=c.rank,
        is_winner=c.index == outcome.winner_index, **_usage_columns(c.usage),
    )


# The backend's word, kept as it came; PostgreSQL refuses a longer value than the column holds.
FINISH_REASON_MAX = Candidate._meta.get_field("finish_reason").max_length


def _ballot_row(outcome: CompletionOutcome, b: BallotResult) -> dict:
    return dict(
        request_id=outcome.id, voter_index=b.voter_index, voter_model=b.voter_model,
        shown_order=b.shown_order, raw_text=_storable(b.raw_text), status=b.status, error=_storable(b.error),
        latency_ms=b.latency_ms, **_usage_columns(b.usage), format=b.format,
    )


def _mark_row(outcome, ballot: BallotResult, ballot_id, candidate: tuple, position: int, mark) -> dict:
    candidate_id, author_model = candidate
    return dict(
        ballot_id=ballot_id, request_id=outcome.id, candidate_id=candidate_id, voter_model=ballot.voter_model,
        author_model=author_model, position=position, accepted=mark.accepted, preferred=mark.preferred,
        is_self=mark.is_self, counted=voting.counts(mark, self_vote=outcome.ensemble.self_vote),
    )


def _usage_columns(usage: Usage) -> dict:
    """Return `usage` as its three columns, each capped at what the column holds: the counts are
    the backend's (each call's at most MAX_TOKEN_COUNT, PostgreSQL's integer), but a request's sum
    over its calls can pass that, and must not make the database refuse the request's history."""
    return {column: min(count, MAX_TOKEN_COUNT) for column, count in usage.as_dict().items()}


def _storable(text: str) -> str:
    """Return backend-supplied `text` with any NUL replaced by U+FFFD.

    PostgreSQL refuses NUL in text columns, failing the whole batch's write; requests are refused
    with NUL at the API, but answers, ballots and error bodies come from the backend as they are.
    """
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _storable_tool_call(call: dict) -> dict:
    """Return a backend's tool call (as `tools.tool_calls_of` keeps it) with its strings `_storable`:
    PostgreSQL refuses NUL in jsonb too."""
    function = call["function"]
    return {"id": _storable(call["id"]), "type": "function",
            "function": {"name": _storable(function["name"]), "arguments": _storable(function["arguments"])}}
