"""What one completion produced, as plain data: built by the service, stored, then shaped for the API."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from functools import reduce
from typing import Iterator

from .catalog.spec import Ensemble
from .formats.costs import Price, cost_sum
from .formats.tools import answer_text, tool_calls_of
from .formats.usage import Usage
from .voting import Consensus, Mark


@dataclass
class CandidateResult:
    """One member's generation: its answer, or why it has none, and its tallies once voted on."""

    index: int
    model: str
    status: str
    content: str = ""
    tool_calls: list[dict] = field(default_factory=list)  # what it asked the client to run; content may be ""
    error: str = ""
    finish_reason: str = ""
    latency_ms: int = 0
    usage: Usage = field(default_factory=Usage)
    accepted: int = 0
    preferred: int = 0
    rank: int | None = None
    reason: str = ""  # the backend error's reason ("timeout", "http_404", ...); not stored
    retry_after: str = ""  # the Retry-After of a backend that refused the call; not stored
    request_id: uuid.UUID | None = None  # a nested ensemble's own request
    backend_body: dict | None = field(default=None, repr=False)  # the backend's own JSON; not stored
    cost_usd: Decimal | None = None  # ensemble.formats.costs; a nested ensemble's: its request's cost_total

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str:
        """Return the answer as voters read it: its text, then its tool calls as sentences."""
        return answer_text(self.content, self.tool_calls)


@dataclass(frozen=True)
class Reply:
    """One choice of the answer: a ranked candidate's text and tool calls, or the joined answers of `concat`."""

    content: str
    finish_reason: str
    usage: Usage
    tool_calls: list[dict] = field(default_factory=list)


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
    format: str = "text"  # the ballot format it was (last) asked in: ensemble.voting.formats
    cost_usd: Decimal | None = None  # ensemble.formats.costs


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
    metadata: dict[str, str] = field(default_factory=dict)  # the request's `metadata`: its tags; never sent upstream
    user: str = ""  # the request's `user`, the client's end user; never sent upstream
    parent_id: uuid.UUID | None = None  # set on a nested ensemble's outcome
    children: list[CompletionOutcome] = field(default_factory=list)  # nested ensembles' outcomes
    combined: str | None = None  # the reply of `concat`, which has no winner
    consensus: Consensus | None = None  # set by the decision of a voting method (`Method.votes`)
    internal_error: bool = False  # decided by the service's fallback after an unexpected error; not stored
    prices: Mapping[str, Price] = field(default_factory=dict, repr=False)  # read once per request; not stored

    @property
    def public_id(self) -> str:
        return f"trio-{self.id.hex}"

    @property
    def winner(self) -> CandidateResult | None:
        return None if self.winner_index is None else self.candidates[self.winner_index]

    @property
    def answered(self) -> bool:
        return self.winner is not None or self.combined is not None

    def replies(self, n: int = 1) -> list[Reply]:
        """Return the best `n` answers, best first (fewer when there are fewer); [] if none."""
        if self.combined is not None:
            usage = reduce(Usage.__add__, (c.usage for c in self.candidates if c.ok), Usage())
            return [Reply(self.combined, "stop", usage)]
        if self.ensemble.method.passes_through and self.winner and self.winner.backend_body:
            return _backend_replies(self.winner, n)
        ranked = sorted((c for c in self.candidates if c.rank is not None), key=lambda c: c.rank)
        return [Reply(c.content, c.finish_reason or "stop", c.usage, c.tool_calls) for c in ranked[:n]]

    def family(self) -> Iterator[CompletionOutcome]:
        """Yield this outcome, then its nested ensembles' outcomes (depth first): parents before children."""
        yield self
        for child in self.children:
            yield from child.family()

    @property
    def model_not_found(self) -> bool:
        """Return whether a pass-through request failed because the backend has no such model."""
        return (self.ensemble.method.passes_through and not self.answered
                and any(c.reason == "http_404" for c in self.candidates))

    @property
    def passthrough_refusal(self) -> int | None:
        """Return the status of a backend 4xx that refused a pass-through request for the caller's own
        reasons (400, 413, 422, 429: a bad parameter, too long a prompt, a rate limit), else None.

        Not 401/403 (Trio's backend key is at fault, not the caller) nor 404 (`model_not_found`).
        """
        if not self.ensemble.method.passes_through or self.answered:
            return None
        statuses = {c.reason.removeprefix("http_") for c in self.candidates if c.reason.startswith("http_")}
        return next((int(s) for s in ("429", "400", "413", "422") if s in statuses), None)

    @property
    def total_usage(self) -> Usage:
        """Return the usage of every backend call this request made, generation and voting."""
        calls = [c.usage for c in self.candidates] + [b.usage for b in self.ballots]
        return reduce(Usage.__add__, calls, Usage())

    def _costs(self) -> tuple[Decimal | None, int]:
        """Return (known total, unknown count) over every backend call of this request and its nested
        ensembles': a nested ensemble's candidate is no call of its own (its cost is its calls')."""
        return cost_sum(call.cost_usd for member in self.family()
                        for call in (*(c for c in member.candidates if c.request_id is None), *member.ballots))

    @property
    def cost_total(self) -> Decimal | None:
        """Return the sum of the known costs of the request's backend calls; None when none is known."""
        return self._costs()[0]

    @property
    def cost_unknown_calls(self) -> int:
        """Return how many of the request's backend calls have an unknown cost (failed ones included)."""
        return self._costs()[1]

    @property
    def counted_ballots(self) -> int:
        return sum(1 for b in self.ballots if b.status == "ok")

    @property
    def all_timed_out(self) -> bool:
        return bool(self.candidates) and all(c.status == "timeout" for c in self.candidates)


def _backend_replies(candidate: CandidateResult, n: int) -> list[Reply]:
    """Return a pass-through model's own choices (it was sent `n`), its usage counted once, on the first."""
    choices = [c for c in candidate.backend_body.get("choices") or [] if isinstance(c, dict)][:n]
    replies = []
    for position, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        usage = candidate.usage if position == 0 else Usage()
        tool_calls = tool_calls_of(message.get("tool_calls")) or []
        replies.append(Reply(content, choice.get("finish_reason") or "stop", usage, tool_calls))
    return replies or [Reply(candidate.content, candidate.finish_reason or "stop", candidate.usage,
                             candidate.tool_calls)]
