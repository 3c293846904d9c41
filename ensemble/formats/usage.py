"""What a backend call cost: its token usage and its latency in whole milliseconds."""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_json(cls, data) -> "Usage":
        """Return the usage block of a completion; missing or odd values count as 0."""
        if not isinstance(data, dict):
            return cls()
        return cls(*(_as_int(data.get(key)) for key in ("prompt_tokens", "completion_tokens", "total_tokens")))

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


# No call uses anywhere near this many tokens; a count past it is a backend's bug, and sums of such
# counts would outgrow the database's integer columns and even JSON encoding (64 bits).
MAX_TOKEN_COUNT = 2**31 - 1


def _as_int(value) -> int:
    valid = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT
    return value if valid else 0


def monotonic_ms(start: float) -> int:
    """Return the whole milliseconds elapsed since `start` (a time.monotonic() reading)."""
    return int((time.monotonic() - start) * 1000)
