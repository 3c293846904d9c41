"""One model's row on the leaderboard: its counts and the rates derived from them.

Definitions used by the leaderboard (per model, over the chosen window and ensemble):

- participated: the model had a candidate in a request that decided a winner (status ok or
  partial, and not concat, which picks none), failed candidates included: a member that failed
  lost that request;
- win rate: wins / participated, with a 95% Wilson interval;
- acceptance / preference rate received: share of the counted marks on its candidates that
  accept / prefer them (self-votes are in when the ensemble counts them);
- self-preference: how often its own ballots prefer its own candidate (every self mark, counted
  or not) against how often other models' ballots prefer it; the judges' audit uses this same
  pair of rates (leaderboard.judges);
- invalid-ballot rate: unparseable ballots / ballots it answered (ok + unparseable);
- error/timeout rate: generation calls that ended in error, timeout, too_large or late (abandoned by the
  straggler cut-off) / its generation calls, cancelled ones left out (the client left);
- cost: the known costs (ensemble.formats.costs) of its calls, its candidates' and its ballots'; null
  when none of its calls has a known cost; cost per win: that cost / wins (null without a win);
- median latency: of its successful generation calls; exact over live rows, within ±2.2% over
  rolled-up days (a log-bucket histogram per day and model, statistics.HISTOGRAM_STEPS);
- head-to-head (PAIR RULE), the only pairs the Bradley–Terry ratings are fitted on: each ballot
  ranks the candidates it saw preferred > accepted (not preferred) > not accepted, a preference
  counting only when the voter also accepted it, as in the tally. A ballot that ranks A's
  candidate above B's is one win of A over B, unless A's candidate is the judge's own: a judge
  placing its own candidate above another's says nothing a rival should be rated on, but placing
  it below another's is an admission against interest and counts. So a pair of two other models'
  candidates always counts, a pair involving the judge's own only when it ranks its own lower,
  and candidates in the same rank (a tie) give no comparison. This holds whatever the ensemble's
  self-vote policy (`counted`), which decides winners, not ratings: a judge that always prefers
  itself gives itself no win at all. With three members each pair has one outside judge, whose
  comparisons all count; the judged pair's own members add theirs only when they concede.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import ratings
from .statistics import rate


@dataclass
class Standing:
    """One model's row on the leaderboard; rates are None when their denominator is 0."""

    model: str
    participated: int = 0
    wins: int = 0
    marks_received: int = 0
    accepted_received: int = 0
    preferred_received: int = 0
    self_marks: int = 0
    self_preferred: int = 0
    others_marks: int = 0
    others_preferred: int = 0
    ballots_answered: int = 0
    ballots_unparseable: int = 0
    agreement_ballots: int = 0  # as a voter: preferences on another model's candidate in decided requests
    agreed_with_winner: int = 0  # of those, preferences that went to the winner (judges.VoterAudit)
    calls: int = 0
    failed_calls: int = 0
    ok_calls: int = 0
    generation_cost_usd: Decimal = Decimal(0)
    generation_costed_calls: int = 0
    ballot_cost_usd: Decimal = Decimal(0)
    ballot_costed_calls: int = 0
    median_latency_ms: float | None = None

    @property
    def cost(self) -> Decimal | None:
        """Return the known cost of its calls, generation and ballots; None when none is known."""
        if not (self.generation_costed_calls or self.ballot_costed_calls):
            return None
        return self.generation_cost_usd + self.ballot_cost_usd

    @property
    def cost_per_win(self) -> Decimal | None:
        cost = self.cost
        return None if cost is None or not self.wins else cost / self.wins

    @property
    def win_rate(self):
        return rate(self.wins, self.participated)

    @property
    def win_interval(self):
        return ratings.wilson_interval(self.wins, self.participated)

    @property
    def acceptance_rate(self):
        return rate(self.accepted_received, self.marks_received)

    @property
    def preference_rate(self):
        return rate(self.preferred_received, self.marks_received)

    @property
    def self_preference_rate(self):
        return rate(self.self_preferred, self.self_marks)

    @property
    def others_preference_rate(self):
        return rate(self.others_preferred, self.others_marks)

    @property
    def invalid_ballot_rate(self):
        return rate(self.ballots_unparseable, self.ballots_answered)

    @property
    def error_rate(self):
        return rate(self.failed_calls, self.calls)
