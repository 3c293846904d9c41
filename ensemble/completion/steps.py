"""The aggregation steps, once more than one member has answered (each method's `step`: every member
votes, a judge votes, a synthesizer writes), and the decision that ranks the answers and picks the winner."""
from __future__ import annotations

import time

from django.conf import settings

from .. import voting
from ..backend import BackendClient
from ..formats.usage import monotonic_ms
from ..outcomes import BallotResult, CandidateResult, CompletionOutcome
from ..voting import methods
from . import calls
from .rounds import run_round


async def vote_all(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.ballots`: every successful member judges every successful candidate.

    A nested ensemble votes through its lead model (its first backend member).
    """
    eligible = [c for c in outcome.candidates if c.ok]
    nonce = voting.fence_nonce(c.text for c in eligible)
    outcome.ballots = []
    for voter in eligible:
        shuffled = voting.ballot_order(outcome.id.hex, voter.index, len(eligible))
        shown = [eligible[j].index for j in shuffled]
        voter_model = outcome.ensemble.lead_model(voter.index)
        outcome.ballots.append(BallotResult(voter.index, voter_model, shown, status="cancelled"))
    started = time.monotonic()

    async def vote(slot: int) -> bool:
        outcome.ballots[slot] = await calls.ballot_cast(client, outcome.ballots[slot], outcome, nonce, deadline_at)
        return outcome.ballots[slot].status == "ok"

    slots = range(len(outcome.ballots))
    for slot in await run_round([vote(s) for s in slots], calls.round_policy(len(slots), deadline_at)):
        pending = outcome.ballots[slot]
        pending.status, pending.latency_ms = "late", monotonic_ms(started)
        pending.error = "abandoned: the quorum had voted and the grace period ran out"


async def judge(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Fill `outcome.ballots` with the judge's ballot, the only one (voter index: after the members)."""
    eligible = [c for c in outcome.candidates if c.ok]
    judge_index = len(outcome.ensemble.members)
    shuffled = voting.ballot_order(outcome.id.hex, judge_index, len(eligible))
    pending = BallotResult(judge_index, outcome.ensemble.judge_model, [eligible[j].index for j in shuffled],
                           status="cancelled")
    outcome.ballots = [pending]
    nonce = voting.fence_nonce(c.text for c in eligible)
    outcome.ballots[0] = await calls.ballot_cast(client, pending, outcome, nonce, deadline_at)


async def synthesize(outcome: CompletionOutcome, client: BackendClient, deadline_at: float) -> None:
    """Append the synthesizer's combined answer to `outcome.candidates` (index: after the members)."""
    texts = [c.text for c in outcome.candidates if c.ok]
    prompt = methods.synthesis_messages(outcome.messages, texts, voting.fence_nonce(texts), calls.quote_limits())
    index, model = len(outcome.candidates), outcome.ensemble.synthesize_model
    outcome.candidates.append(CandidateResult(index, model, "cancelled"))
    combined = await calls.call_model(client, index, model, prompt, outcome.params, outcome.ensemble.timeout,
                                      deadline_at, outcome.prices)
    outcome.candidates[index] = calls.held_to_format(combined, outcome)


# The extra round each method's `step` names.
STEPS = {methods.VOTE: vote_all, methods.JUDGE_BALLOT: judge, methods.SYNTHESIS: synthesize}


def _failure(candidate: CandidateResult) -> str:
    """Return `model: why` for a failed candidate (the backend's own messages name the model already)."""
    why = candidate.error or candidate.status
    return why if why.startswith(f"{candidate.model}: ") else f"{candidate.model}: {why}"


def decide(outcome: CompletionOutcome) -> None:
    """Set tallies, ranks, the winner (or `concat`'s joined reply) and the status of `outcome`."""
    succeeded = [c for c in outcome.candidates if c.ok]
    if not succeeded:
        outcome.status = "failed"
        outcome.error = "; ".join(_failure(c) for c in outcome.candidates)
        return
    outcome.status = "ok" if len(succeeded) == len(outcome.candidates) else "partial"
    method = outcome.ensemble.method
    if method.joins_answers:
        outcome.combined = method.combined_reply([(c.model, c.text) for c in succeeded])
        return
    marks = [m for b in outcome.ballots if b.status == "ok" for m in b.marks]
    totals = voting.tally((c.index for c in succeeded), marks, self_vote=outcome.ensemble.self_vote)
    added = len(outcome.candidates) > len(outcome.ensemble.members) and outcome.candidates[-1].ok
    ranking = method.ranked(voting.rank(totals), outcome.candidates[-1].index if added else None)
    for rank, index in enumerate(ranking, start=1):
        candidate = outcome.candidates[index]
        candidate.accepted, candidate.preferred, candidate.rank = totals[index].accepted, totals[index].preferred, rank
    outcome.winner_index = ranking[0]
    if method.votes:
        outcome.consensus = voting.consensus(totals, marks, ranking[0], low_below=settings.TRIO_LOW_CONSENSUS)
