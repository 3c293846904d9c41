"""Admit chat completions a few at a time, in arrival order, until each one waits on the backend.

When a burst of requests arrives together, the event loop runs their first steps round-robin:
the API-key check, validation, the ensemble lookup, building every member's call. A request
needs a dozen turns of the loop before its backend calls go out, so in a burst of 64 each
request's calls leave only once nearly all 64 have been through those steps: the median request
waits as long as the last one, and the backend then gets the whole burst as one wave. Holding
all but `TRIO_ADMISSION_SLOTS` requests at the door lets each finish its start in arrival order,
so the first calls leave after a few requests' work instead of all of them, and the next rounds
(ballots, the write, the response) arrive spread out as well. Measured in bench/README.md.

A request gives its slot back as soon as it starts waiting on the backend (`admission_release`,
called before every backend call) or when its view returns, whichever comes first: a slow or
hanging model never holds the door. Nothing is refused here; waiting requests go in arrival order.
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import time

from django.conf import settings

from ..loops import PerLoop
from ..metrics import ADMISSION_WAIT


class _Slot:
    """One request's hold on its loop's gate, given back once."""

    def __init__(self, gate: asyncio.Semaphore):
        self.gate, self.held = gate, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.gate.release()


# The slot of the request being served. Tasks the view starts (a round's backend calls, a stream)
# copy the context, so they see the same slot and any of them can give it back.
_current_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("admission_slot", default=None)
_gates: PerLoop[tuple[int, asyncio.Semaphore]] = PerLoop()  # each loop's gate, with the size it was made for


def admitted(view):
    """Wrap an async view so that it starts only once a slot is free, and runs holding it."""

    @functools.wraps(view)
    async def admitted_view(request, *args, **kwargs):
        gate = _gate_for_running_loop()
        if gate is None:
            return await view(request, *args, **kwargs)
        waiting_since = time.monotonic()
        await gate.acquire()  # cancelled while waiting (the client left): nothing is held
        slot = _Slot(gate)
        token = _current_slot.set(slot)
        try:
            ADMISSION_WAIT.observe(time.monotonic() - waiting_since)
            return await view(request, *args, **kwargs)
        finally:
            slot.release()
            _current_slot.reset(token)

    return admitted_view


def admission_release() -> None:
    """Give back the current request's slot, if it still holds one: it is about to wait on the backend."""
    slot = _current_slot.get()
    if slot is not None:
        slot.release()


def _gate_for_running_loop() -> asyncio.Semaphore | None:
    """Return this event loop's gate, sized by `TRIO_ADMISSION_SLOTS` (None when 0: no gate)."""
    size = settings.TRIO_ADMISSION_SLOTS
    if not size:
        return None
    sized = _gates.peek()
    if sized is None or sized[0] != size:  # a changed setting (tests) takes effect for new requests
        sized = _gates.replace((size, asyncio.Semaphore(size)))
    return sized[1]
