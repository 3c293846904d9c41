"""Admission: chat completions start a few at a time, in arrival order, and give their slot back
as soon as they wait on the backend, or when they are answered or refused."""
import asyncio
import time

import httpx
import pytest

from ensemble.completion.admission import admission_release, admitted

QUESTION = [{"role": "user", "content": "Name a prime number."}]


class Door:
    """Async views wrapped by `admitted` that record who is inside, and when."""

    def __init__(self):
        self.started, self.inside, self.most_inside = [], 0, 0

    def view(self, *, hold: float = 0.02, release_early: bool = False, fail: bool = False):
        @admitted
        async def view(request):
            self.started.append(request)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            try:
                if release_early:
                    admission_release()  # as services do before every backend call
                await asyncio.sleep(hold)
                if fail:
                    raise ValueError("refused")
                return request
            finally:
                self.inside -= 1

        return view

    def run(self, views) -> list:
        async def burst():
            tasks = []
            for number, view in enumerate(views):
                tasks.append(asyncio.ensure_future(view(number)))
                await asyncio.sleep(0)  # arrivals in this order
            return await asyncio.gather(*tasks, return_exceptions=True)

        return asyncio.run(asyncio.wait_for(burst(), timeout=5))  # a slot never given back: fail, not hang


def test_requests_are_admitted_a_few_at_a_time_in_arrival_order(settings):
    settings.TRIO_ADMISSION_SLOTS = 2
    door = Door()

    assert door.run([door.view() for _ in range(6)]) == list(range(6))
    assert door.started == list(range(6))
    assert door.most_inside == 2


def test_a_request_waiting_on_the_backend_no_longer_holds_the_door(settings):
    settings.TRIO_ADMISSION_SLOTS = 1
    door = Door()

    started = time.monotonic()
    door.run([door.view(hold=0.3, release_early=True) for _ in range(4)])

    assert door.most_inside == 4  # each let the next one in as soon as it "called the backend"
    assert time.monotonic() - started < 1.0  # 0.3 s in parallel, not 1.2 s in turn


def test_a_failed_request_gives_its_slot_back(settings):
    settings.TRIO_ADMISSION_SLOTS = 1
    door = Door()

    results = door.run([door.view(fail=True), door.view(fail=True), door.view()])

    assert [type(r) for r in results[:2]] == [ValueError, ValueError] and results[2] == 2


def test_zero_slots_means_no_door(settings):
    settings.TRIO_ADMISSION_SLOTS = 0
    door = Door()

    door.run([door.view() for _ in range(6)])

    assert door.most_inside == 6


def test_a_slow_model_does_not_hold_up_other_requests(trio, trio_settings, backend):
    trio_settings.TRIO_ADMISSION_SLOTS = 1

    async def scenario():
        async with httpx.AsyncClient(base_url=trio, timeout=30) as client:
            slow = asyncio.ensure_future(client.post(
                "/v1/chat/completions", json={"model": "slow@latency=2", "messages": QUESTION}))
            while not backend.calls:  # the slow request holds the only slot until its call goes out
                await asyncio.sleep(0.01)
            started = time.monotonic()
            quick = await client.post("/v1/chat/completions", json={"model": "quick", "messages": QUESTION})
            quick_seconds, slow_done = time.monotonic() - started, slow.done()
            return quick, quick_seconds, slow_done, await slow

    quick, quick_seconds, slow_done, slow = asyncio.run(scenario())
    assert (quick.status_code, slow.status_code) == (200, 200)
    assert not slow_done and quick_seconds < 1.0


def test_refused_requests_give_their_slot_back(http, trio_settings):
    trio_settings.TRIO_ADMISSION_SLOTS = 1

    refused = [http.post("/v1/chat/completions", json={"model": "trio", "messages": []}) for _ in range(3)]
    answered = http.post("/v1/chat/completions", json={"model": "trio", "messages": QUESTION}, timeout=5)

    assert [r.status_code for r in refused] == [400] * 3
    assert answered.status_code == 200
