"""Storing completions: every request's history in one transaction, written by one thread.

Each process has a single writer thread (`WRITER`) with its own database connection. Completions
that finish while it is busy are queued and written together, in one transaction of four bulk
INSERTs (requests, candidates, ballots, marks), whatever their number, with SQL built once
(`history/inserts.py`; the rows are built in `history/rows.py`). Why not one
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

from ..loops import PerLoop
from ..models import CompletionRequest
from ..outcomes import CompletionOutcome
from .rows import BALLOTS, CANDIDATES, MARKS, REQUESTS, TAGS, ballot_row, candidate_row, mark_row, request_row

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
    requests = [request_row(o) for o in outcomes]
    candidates = [candidate_row(o, c) for o in outcomes for c in o.candidates]
    ballots = [ballot_row(o, b) for o in outcomes for b in o.ballots]
    with transaction.atomic():
        REQUESTS.insert(requests)
        candidate_ids = iter(CANDIDATES.insert(candidates))
        ballot_ids = iter(BALLOTS.insert(ballots))
        marks = []
        for outcome in outcomes:
            candidate_rows = [(next(candidate_ids), c.model) for c in outcome.candidates]
            for ballot in outcome.ballots:
                ballot_id = next(ballot_ids)
                marks.extend(mark_row(outcome, ballot, ballot_id, candidate_rows[m.candidate], position, m)
                             for position, m in enumerate(ballot.marks, start=1))
        MARKS.insert(marks)
        # Each request's metadata pairs, for the ?tag= filters.
        TAGS.insert([{"request_id": o.id, "key": key, "value": value}
                     for o in outcomes for key, value in o.metadata.items()])
    return requests


def _without_content(outcome: CompletionOutcome) -> CompletionOutcome:
    """Return a copy keeping metadata and votes but no prompt, answer or ballot text."""
    return dataclasses.replace(
        outcome,
        messages=[{"role": m.get("role")} for m in outcome.messages],
        candidates=[dataclasses.replace(c, content="", tool_calls=[]) for c in outcome.candidates],
        ballots=[dataclasses.replace(b, raw_text="") for b in outcome.ballots],
    )
