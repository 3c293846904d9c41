"""The no-lost-request rule: a completion whose aggregation or decision hit an unexpected error is still
answered (or failed) from what was gathered, and stored."""
from __future__ import annotations

from ..outcomes import CompletionOutcome


def fall_back(outcome: CompletionOutcome, error: str) -> None:
    """Decide `outcome` without its vote, after an unexpected error: the answered candidates ranked in
    ensemble order, the first one winning (`partial`), or `failed` if none answered. Tallies are
    cleared, since the error may have left them half counted; ballots and marks stay as gathered.
    The calls it left unfinished stay `cancelled`, which no leaderboard counts against their model:
    Trio stopped them, not the model."""
    for call in (*outcome.candidates, *outcome.ballots):
        if call.status == "cancelled":
            call.error = f"stopped unfinished by the {error}"
    answered = [c for c in outcome.candidates if c.ok]
    for candidate in outcome.candidates:
        candidate.accepted, candidate.preferred, candidate.rank = 0, 0, None
    for rank, candidate in enumerate(answered, start=1):
        candidate.rank = rank
    outcome.winner_index = answered[0].index if answered else None
    outcome.combined = None
    outcome.status = "partial" if answered else "failed"
    outcome.error = f"{error}; " + ("answered unvoted by the first member that answered, in ensemble order"
                                    if answered else "no member had answered")
    outcome.internal_error = True
