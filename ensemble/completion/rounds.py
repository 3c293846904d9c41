"""Run one round of parallel backend calls under a quorum, a straggler grace period and a deadline.

One slow model must not set the pace of every answer: once `quorum` calls have succeeded, the
rest get a grace period (seconds plus a factor of the quorum's median latency) and are then
abandoned. Calls marked patient (a nested ensemble, which needs rounds of its own and so always
finishes after single calls, but has its own quorum and grace inside) are left running past the
grace period. Nothing runs past `deadline_at` either way.
"""
from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence


@dataclass(frozen=True)
class RoundPolicy:
    quorum: int
    grace_seconds: float
    grace_factor: float
    deadline_at: float  # on the `clock` below

    def grace(self, latencies: Sequence[float]) -> float:
        """Return how long stragglers may still take once the quorum has answered in `latencies`."""
        return self.grace_seconds + self.grace_factor * statistics.median(latencies)


async def run_round(
    calls: Sequence[Awaitable[bool]], policy: RoundPolicy, clock: Callable[[], float] = time.monotonic,
    patient: frozenset[int] = frozenset(),
) -> set[int]:
    """Run `calls` (each returns whether it succeeded) concurrently; return the indexes abandoned as late.

    The calls whose indexes are in `patient` are abandoned only at the deadline, not when the grace
    period ends.
    """
    started = clock()
    tasks = {asyncio.ensure_future(call): index for index, call in enumerate(calls)}
    pending = set(tasks)
    abandoned: set[asyncio.Future] = set()
    succeeded: list[float] = []
    cutoff, graced = policy.deadline_at, False
    try:
        while pending:
            done, pending = await asyncio.wait(
                pending, timeout=max(0.0, cutoff - clock()), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:  # the cut-off passed with calls still running
                impatient = {task for task in pending if tasks[task] not in patient}
                if cutoff >= policy.deadline_at or impatient == pending:
                    break
                await _cancel(impatient)  # the grace period is over; the patient wait on
                abandoned |= impatient
                pending -= impatient
                cutoff = policy.deadline_at
                continue
            succeeded += [clock() - started for task in done if task.result()]
            if pending and not graced and len(succeeded) >= policy.quorum:
                cutoff, graced = min(policy.deadline_at, clock() + policy.grace(succeeded)), True
    finally:
        # Reached on the cut-off and when our own task is cancelled (the client hung up).
        await _cancel(pending)
    return {tasks[task] for task in pending | abandoned}


async def _cancel(tasks: set[asyncio.Future]) -> None:
    """Cancel `tasks` and wait until each has finished."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
