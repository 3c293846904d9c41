"""One value per running event loop: a shared client, a batcher, a gate.

asyncio objects belong to the loop that made them, and Django's ASGI handler has no lifespan to
make them at start, so each is made lazily on the loop that first asks. The registry holds its
loops weakly: a test's short-lived loop, once gone, takes its values with it.
"""
from __future__ import annotations

import asyncio
import weakref
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class PerLoop(Generic[T]):
    """Values keyed by the running event loop, made by `factory` on a loop's first `get()` (without a
    factory, only `peek` and `replace` set and read them)."""

    def __init__(self, factory: Callable[[], T] | None = None):
        self.factory = factory
        self._values: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """Return the running loop's value, making it on first use."""
        loop = asyncio.get_running_loop()
        value = self._values.get(loop)
        if value is None:
            value = self._values[loop] = self.factory()
        return value

    def peek(self) -> T | None:
        """Return the running loop's value, or None if it has none yet (never makes one)."""
        return self._values.get(asyncio.get_running_loop())

    def replace(self, value: T) -> T:
        """Make `value` the running loop's value and return it."""
        self._values[asyncio.get_running_loop()] = value
        return value

    def pop(self) -> T | None:
        """Remove the running loop's value and return it, or None if it had none."""
        return self._values.pop(asyncio.get_running_loop(), None)
