"""Counting the ballots: marks in candidate indexes, the tally, the ranking with its tie-break, and
the consensus on the winner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from .parse import ParsedBallot

@dataclass(frozen=True)
class Mark:
    """One voter's verdict on one candidate, in candidate indexes."""

    voter: int
    candidate: int
    accepted: bool
    preferred: bool

    @property
    def is_self(self) -> bool:
        return self.voter == self.candidate


def ballot_marks(voter: int, ballot: ParsedBallot, order: Sequence[int]) -> list[Mark]:
    """Return one mark per shown candidate, translating shown positions back through `order`."""
    return [
        Mark(
            voter=voter,
            candidate=candidate,
            accepted=position in ballot.accepted,
            preferred=position == ballot.preferred,
        )
        for position, candidate in enumerate(order, start=1)
    ]


@dataclass
class Tally:
    accepted: int = 0
    preferred: int = 0


def counts(mark: Mark, *, self_vote: bool) -> bool:
    """Return whether `mark` counts towards the tally under the self-vote policy."""
    return self_vote or not mark.is_self


def tally(candidates: Iterable[int], marks: Iterable[Mark], *, self_vote: bool = True) -> dict[int, Tally]:
    """Return acceptances and preferences per candidate index from the counted marks."""
    totals = {candidate: Tally() for candidate in candidates}
    for mark in marks:
        if mark.candidate not in totals or not counts(mark, self_vote=self_vote):
            continue
        if mark.accepted:
            totals[mark.candidate].accepted += 1
            if mark.preferred:
                totals[mark.candidate].preferred += 1
    return totals


def borda_points(candidates: Iterable[int], marks: Iterable[Mark], *, self_vote: bool = True) -> dict[int, int]:
    """Return Borda points per candidate index from the counted marks (the what-if re-tally's rule).

    Each ballot orders the candidates it was shown in three levels: preferred > accepted > not
    accepted (a preference counts only with an acceptance, as in `tally`). On each ballot a
    candidate scores one point per candidate that ballot puts on a strictly lower level: of k
    shown, the preferred one scores k - 1, another accepted one the number not accepted, a
    candidate not accepted 0. A mark the self-vote policy does not count, or on a candidate
    outside `candidates`, is left off its ballot, as if that candidate had not been shown.
    """
    points = {candidate: 0 for candidate in candidates}
    ballots: dict[int, list[tuple[int, int]]] = {}
    for mark in marks:
        if mark.candidate in points and counts(mark, self_vote=self_vote):
            level = (2 if mark.preferred else 1) if mark.accepted else 0
            ballots.setdefault(mark.voter, []).append((mark.candidate, level))
    for shown in ballots.values():
        for candidate, level in shown:
            points[candidate] += sum(other < level for _, other in shown)
    return points


def rank(totals: dict[int, Tally], *, points: dict[int, int] | None = None) -> list[int]:
    """Return candidate indexes best first: acceptances, then preferences, then ensemble order;
    with `points` (a re-tally's score, e.g. `borda_points`), most points before all of those."""
    first = points or {}
    return sorted(totals, key=lambda c: (-first.get(c, 0), -totals[c].accepted, -totals[c].preferred, c))


@dataclass(frozen=True)
class Consensus:
    """How far the panel agreed with the winner (see `consensus`)."""

    score: float | None  # share of the other voters' parsed ballots that accepted the winner
    preferred_share: float | None  # share of them that also preferred it
    margin: int  # the winner's counted acceptances minus the runner-up's
    low: bool  # score below the threshold, or no other voter judged the winner

    def as_dict(self) -> dict:
        return {"score": self.score, "preferred_share": self.preferred_share, "margin": self.margin,
                "low": self.low}


def consensus(totals: dict[int, Tally], marks: Iterable[Mark], winner: int, *, low_below: float) -> Consensus:
    """Return the consensus on `winner`, from the marks of the parsed ballots and their `tally`.

    `score` and `preferred_share` count every parsed ballot that was shown the winner except the
    winner's own (voter index = the winner's index): a model accepting its own answer says nothing
    about agreement. So the self-vote policy does not move them; `margin` is the tally's, and does
    (with a single candidate it is the winner's counted acceptances). A preference counts only
    where the voter also accepted the winner, as in the tally.

    With no other parsed ballot (every other ballot unparseable or failed, or no vote was held:
    only one member answered) there is no agreement to measure: `score` and `preferred_share` are
    None and `low` is True, so the answer is flagged, not vouched for. A judge's ballot is the
    only ballot and never the winner's own: score 1 when the judge accepted the answer it chose,
    0 when it accepted none (the answer then won by ensemble order).
    """
    others = [m for m in marks if m.candidate == winner and m.voter != winner]
    runner_up = max((t.accepted for c, t in totals.items() if c != winner), default=0)
    margin = totals[winner].accepted - runner_up
    if not others:
        return Consensus(score=None, preferred_share=None, margin=margin, low=True)
    score = sum(m.accepted for m in others) / len(others)
    preferred_share = sum(m.accepted and m.preferred for m in others) / len(others)
    return Consensus(score=score, preferred_share=preferred_share, margin=margin, low=score < low_below)
