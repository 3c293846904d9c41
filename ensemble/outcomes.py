"""What one completion produced, as plain data: built by the service, stored, then shaped for the API."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce

from .backend import Usage
from .ensembles import Ensemble
from .voting import Mark


@dataclass
class CandidateResult:
    """One member's generation: its answer, or why it has none, and its tallies once voted on."""

    index: int
    model: str
    status: str
    content: str = ""
    error: str = ""
    finish_reason: str = ""
    latency_ms: int = 0
    usage: Usage = field(default_factory=Usage)
    accepted: int = 0
    preferred: int = 0
    rank: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class BallotResult:
    """One voter's call in the voting round: what it saw, what it said, what that meant."""

    voter_index: int
    voter_model: str
    shown_order: list[int]
    status: str
    raw_text: str = ""
    error: str = ""
    latency_ms: int = 0
    usage: Usage = field(default_factory=Usage)
    marks: list[Mark] = field(default_factory=list)


@dataclass
class CompletionOutcome:
    """Everything decided for one request, successful or not."""

    id: uuid.UUID
    created_at: datetime
    ensemble: Ensemble
    messages: list[dict]
    params: dict
    candidates: list[CandidateResult] = field(default_factory=list)
    ballots: list[BallotResult] = field(default_factory=list)
    status: str = "ok"
    error: str = ""
    winner_index: int | None = None
    latency_ms: int = 0
    generation_ms: int = 0
    voting_ms: int = 0
    api_key_id: int | None = None  # the API key that made the request, when keys are in use

    @property
    def public_id(self) -> str:
        return f"trio-{self.id.hex}"

    @property
    def winner(self) -> CandidateResult | None:
        return None if self.winner_index is None else self.candidates[self.winner_index]

    @property
    def total_usage(self) -> Usage:
        """Return the usage of every backend call this request made, generation and voting."""
        calls = [c.usage for c in self.candidates] + [b.usage for b in self.ballots]
        return reduce(Usage.__add__, calls, Usage())

    @property
    def counted_ballots(self) -> int:
        return sum(1 for b in self.ballots if b.status == "ok")

    @property
    def all_timed_out(self) -> bool:
        return bool(self.candidates) and all(c.status == "timeout" for c in self.candidates)
