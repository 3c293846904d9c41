"""The round runner with real asyncio timing: quorum, straggler grace, deadline, cancellation."""
import asyncio
import time

import pytest

from ensemble.completion.rounds import RoundPolicy, run_round


def policy(quorum, grace_seconds=0.0, grace_factor=0.0, deadline=5.0):
    return RoundPolicy(quorum, grace_seconds, grace_factor, time.monotonic() + deadline)


async def call(delay, ok=True, finished=None):
    await asyncio.sleep(delay)
    if finished is not None:
        finished.append(delay)
    return ok


def test_all_calls_finish_when_they_are_quick():
    assert asyncio.run(run_round([call(0.01), call(0.02), call(0.03)], policy(2, grace_seconds=1))) == set()


def test_a_straggler_is_abandoned_after_the_grace_period():
    async def scenario():
        started = time.monotonic()
        late = await run_round([call(0.05), call(5), call(0.05)], policy(2, grace_seconds=0.1))
        return late, time.monotonic() - started

    late, elapsed = asyncio.run(scenario())
    assert late == {1}
    assert 0.1 <= elapsed < 1.0


def test_the_grace_can_be_a_multiple_of_the_quorums_median_latency():
    async def scenario():
        started = time.monotonic()
        late = await run_round([call(0.2), call(0.2), call(0.35), call(3)], policy(2, grace_factor=1.0))
        return late, time.monotonic() - started

    late, elapsed = asyncio.run(scenario())
    assert late == {3}  # the 0.35 s call made it within 0.2 + 1.0 × 0.2; the 3 s one did not
    assert elapsed < 1.0


def test_failed_calls_do_not_count_towards_the_quorum():
    # Two quick failures must not cut off the only model that will answer.
    assert asyncio.run(run_round([call(0.01, ok=False), call(0.01, ok=False), call(0.3)], policy(2))) == set()


def test_a_patient_call_outlives_the_grace_period_but_not_the_deadline():
    async def scenario(deadline):
        finished, started = [], time.monotonic()
        late = await run_round([call(0.05), call(0.05), call(0.4, finished=finished), call(5)],
                               policy(2, grace_seconds=0.1, deadline=deadline), patient=frozenset({2}))
        return late, finished, time.monotonic() - started

    late, finished, elapsed = asyncio.run(scenario(deadline=3.0))
    assert late == {3} and finished == [0.4]  # the impatient straggler went at 0.15 s; the patient one ran on
    assert 0.4 <= elapsed < 1.0

    late, finished, elapsed = asyncio.run(scenario(deadline=0.25))
    assert late == {2, 3} and finished == [] and elapsed < 1.0


def test_nothing_runs_past_the_deadline():
    async def scenario():
        started = time.monotonic()
        late = await run_round([call(3), call(3)], policy(1, deadline=0.2))
        return late, time.monotonic() - started

    late, elapsed = asyncio.run(scenario())
    assert late == {0, 1} and elapsed < 1.0


def test_cancelling_the_round_cancels_every_call():
    finished = []

    async def scenario():
        task = asyncio.ensure_future(run_round([call(0.5, finished=finished), call(0.5, finished=finished)], policy(2)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.6)

    asyncio.run(scenario())
    assert finished == []
