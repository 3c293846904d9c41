"""Build vote history rows directly (no HTTP, no backend), the way the service stores them.

    vote(members=["a", "b", "c"], ballots={0: ([0, 1], 0), 1: ([0], 0), 2: "unparseable"})

`ballots` maps a voter's ensemble index to what it said: `(accepted indexes, preferred index or
None)`, or a ballot status ("unparseable", "timeout", "error", ...). Tallies, ranks, the winner,
the consensus, the request status and `counted` follow the same rules as the service
(ensemble.voting), so the rows are the ones a real acceptance-voting request would leave.
`costs` maps a model to what each of its answered calls cost (a model left out: unknown). `save_votes` writes many in four bulk INSERTs.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from ensemble import voting
from ensemble.models import Ballot, BallotMark, Candidate, CompletionRequest


@dataclass
class VoteRows:
    request: CompletionRequest
    candidates: list[Candidate]
    ballots: list[Ballot]
    marks: list[tuple[int, int, BallotMark]] = field(default_factory=list)  # (ballot slot, candidate index, mark)


def build_vote(
    *, members: list[str], ballots: dict | None = None, failed: dict[int, str] | None = None,
    created_at: datetime | None = None, ensemble: str = "trio", prompt: str = "What is 2 + 2?",
    contents: dict[int, str] | None = None, self_vote: bool = True, status: str | None = None,
    latency_ms: dict[int, int] | None = None, ballot_latency_ms: int = 40, raw_text: dict[int, str] | None = None,
    shown_order: dict[int, list[int]] | None = None, tokens: int = 10, costs: dict[str, Decimal] | None = None,
) -> VoteRows:
    """Return unsaved rows for one request (see the module docstring for `ballots`)."""
    failed, contents, latency_ms = failed or {}, contents or {}, latency_ms or {}
    raw_text, shown_order, costs = raw_text or {}, shown_order or {}, costs or {}
    created_at = created_at or timezone.now()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]
    request = CompletionRequest(
        id=uuid.uuid4(), created_at=created_at, ensemble=ensemble, members=list(members),
        messages=messages, prompt_excerpt=prompt[:300], latency_ms=0,
    )
    candidates = [
        Candidate(
            request=request, index=i, model=model, status=failed.get(i, "ok"),
            content="" if i in failed else contents.get(i, f"Answer from {model}."),
            error=f"{failed[i]} from backend" if i in failed else "",
            finish_reason="" if i in failed else "stop", latency_ms=latency_ms.get(i, 100 + 10 * i),
            prompt_tokens=tokens, completion_tokens=tokens, total_tokens=2 * tokens,
            cost_usd=None if i in failed else costs.get(model),
        )
        for i, model in enumerate(members)
    ]
    eligible = [c.index for c in candidates if c.status == "ok"]
    rows = VoteRows(request, candidates, [])
    all_marks = []
    for voter, said in sorted((ballots or {}).items()):
        order = shown_order.get(voter, eligible)
        ok = not isinstance(said, str)
        ballot = Ballot(
            request=request, voter_index=voter, voter_model=members[voter], shown_order=order,
            status="ok" if ok else said, latency_ms=ballot_latency_ms,
            raw_text=raw_text.get(voter, _ballot_text(said, order) if ok else ("I cannot decide." if said == "unparseable" else "")),
            error="" if ok or said == "unparseable" else f"{said} from backend",
            prompt_tokens=tokens, completion_tokens=1, total_tokens=tokens + 1,
            cost_usd=costs.get(members[voter]) if ok or said == "unparseable" else None,
        )
        rows.ballots.append(ballot)
        if ok:
            accepted, preferred = said
            for candidate in order:
                mark = voting.Mark(voter, candidate, candidate in accepted, candidate == preferred and candidate in accepted)
                all_marks.append(mark)
                rows.marks.append((len(rows.ballots) - 1, candidate, BallotMark(
                    request=request, voter_model=members[voter], author_model=members[candidate],
                    position=order.index(candidate) + 1, accepted=mark.accepted, preferred=mark.preferred,
                    is_self=mark.is_self, counted=voting.counts(mark, self_vote=self_vote),
                )))
    _decide(rows, eligible, all_marks, self_vote, status)
    timing = max([c.latency_ms for c in candidates] or [0])
    request.generation_ms = timing
    request.voting_ms = ballot_latency_ms if rows.ballots else 0
    request.latency_ms = request.generation_ms + request.voting_ms
    for usage in ("prompt_tokens", "completion_tokens", "total_tokens"):
        setattr(request, usage, sum(getattr(row, usage) for row in candidates + rows.ballots))
    known = [row.cost_usd for row in candidates + rows.ballots if row.cost_usd is not None]
    request.cost_total = sum(known) if known else None
    request.cost_unknown_calls = len(candidates) + len(rows.ballots) - len(known)
    return rows


def _decide(rows: VoteRows, eligible, marks, self_vote, status) -> None:
    request = rows.request
    request.voter_count = sum(b.status == "ok" for b in rows.ballots)
    if not eligible:
        request.status = status or "failed"
        request.error = "every member failed"
        return
    totals = voting.tally(eligible, marks, self_vote=self_vote)
    ranking = voting.rank(totals)
    for rank, index in enumerate(ranking, start=1):
        candidate = rows.candidates[index]
        candidate.accepted_count, candidate.preferred_count = totals[index].accepted, totals[index].preferred
        candidate.rank = rank
    if status == "cancelled":
        request.status = status
        return
    request.winner_index = ranking[0]
    consensus = voting.consensus(totals, marks, ranking[0], low_below=settings.TRIO_LOW_CONSENSUS)
    for name, value in consensus.as_dict().items():
        setattr(request, f"consensus_{name}", value)
    request.winner_model = rows.candidates[ranking[0]].model
    rows.candidates[ranking[0]].is_winner = True
    request.status = status or ("ok" if len(eligible) == len(rows.candidates) else "partial")


def _ballot_text(said, order) -> str:
    accepted, preferred = said
    positions = [str(order.index(c) + 1) for c in order if c in accepted]
    best = str(order.index(preferred) + 1) if preferred in accepted else "NONE"
    return f"ACCEPTED: {', '.join(positions) or 'NONE'}\nPREFERRED: {best}"


def save_votes(all_rows: list[VoteRows], batch_size: int = 2000) -> list[CompletionRequest]:
    """Write every request, candidate, ballot and mark in four bulk INSERTs; return the requests."""
    CompletionRequest.objects.bulk_create([r.request for r in all_rows], batch_size=batch_size)
    Candidate.objects.bulk_create([c for r in all_rows for c in r.candidates], batch_size=batch_size)
    Ballot.objects.bulk_create([b for r in all_rows for b in r.ballots], batch_size=batch_size)
    marks = []
    for rows in all_rows:
        for slot, candidate, mark in rows.marks:
            mark.ballot, mark.candidate = rows.ballots[slot], rows.candidates[candidate]
            marks.append(mark)
    BallotMark.objects.bulk_create(marks, batch_size=batch_size)
    return [r.request for r in all_rows]


def vote(**kwargs) -> CompletionRequest:
    """Save one request built by `build_vote` and return it."""
    return save_votes([build_vote(**kwargs)])[0]


def ago(**delta) -> datetime:
    return timezone.now() - timedelta(**delta)
