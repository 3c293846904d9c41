"""The judges' audit: how each model votes, one `VoterAudit` per model that answered a ballot.

Definitions (per voter model, over the leaderboard's window and ensemble):

- ballots: ballots it answered (ok + unparseable); unparseable_rate: unparseable / ballots, the
  leaderboard's invalid-ballot rate;
- preferences: its counted preferences (a preferred candidate it also accepted, as the tally
  counts them) on ballots that showed it at least two candidates: with one, there is no slot to
  choose. Every preference is in, its own candidate's too, whatever the self-vote policy: this
  audits the judge, not the winner;
- first_slot_preference_rate: share of those preferences given to whichever candidate it was
  shown first (BallotMark.position 1: positions are the numbers the voter saw, from 1);
- position_bias_p: chi-square goodness of fit of those preferences over the slots against
  uniform. Ballots that showed different numbers of candidates (a failed member leaves fewer)
  are grouped by that number, each group tested against its own k uniform slots, and the
  groups' statistics and degrees of freedom added (statistics.uniform_chi_square). None under
  MIN_PREFERENCES preferences: too few for the chi-square approximation to mean anything;
- self_preference_rate / others_preference_rate: the leaderboard's self-preference, one
  definition (standing.Standing): the share of its ballots that saw its own candidate and
  preferred it, against the share of other models' marks on its candidate that preferred it.
  Comparing a judge with the other judges of the same answers keeps quality out of it: an
  honest judge of the best answer prefers its own every time, and so do the others. (Its rate on
  the other candidates it judged would flag exactly that judge.) With three members, a judge's
  "others" are two judges: one biased judge halves the others' rate of the best answer;
- agreement_with_winner: of its ballots whose preference went to another model's candidate in a
  request that picked a winner, the share whose preferred candidate won.

A judge is marked (`flags`) when position_bias_p < POSITION_BIAS_P, or when it saw its own
candidate on at least MIN_PREFERENCES ballots and prefers it at least SELF_PREFERENCE_RATIO times
as often as the others do (and at all).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

from .standing import Standing
from .statistics import chi_square_sf, rate, uniform_chi_square

MIN_PREFERENCES = 20
POSITION_BIAS_P = 0.01
SELF_PREFERENCE_RATIO = 2.0

# Preferences of one voter: (number of candidates shown, slot it preferred) -> count.
Slots = Counter


def slots_to_json(slots: Slots) -> dict[str, int]:
    """Return `slots` as the rollup stores them: {"<shown>:<slot>": count}."""
    return {f"{shown}:{slot}": n for (shown, slot), n in sorted(slots.items())}


def slots_from_json(stored: dict[str, int]) -> Slots:
    return Slots({tuple(int(part) for part in key.split(":")): n for key, n in stored.items()})


@dataclass(frozen=True)
class VoterAudit:
    """One row of the judges' audit (leaderboard.json's voters[]); rates are None without a denominator."""

    model: str
    ballots: int
    unparseable_rate: float | None
    preferences: int
    first_slot_preference_rate: float | None
    position_bias_p: float | None
    self_marks: int
    self_preference_rate: float | None
    others_marks: int
    others_preference_rate: float | None
    agreement_ballots: int
    agreement_with_winner: float | None

    @property
    def position_biased(self) -> bool:
        return self.position_bias_p is not None and self.position_bias_p < POSITION_BIAS_P

    @property
    def self_favouring(self) -> bool:
        if self.self_marks < MIN_PREFERENCES or self.self_preference_rate is None:
            return False
        if self.others_preference_rate is None:
            return False
        return self.self_preference_rate > 0 and (
            self.self_preference_rate >= SELF_PREFERENCE_RATIO * self.others_preference_rate)

    @property
    def flags(self) -> list[str]:
        return [name for name, on in (("position_bias", self.position_biased),
                                      ("self_preference", self.self_favouring)) if on]

    def as_dict(self) -> dict:
        return {**asdict(self), "flags": self.flags}


def voter_audits(standings: dict[str, Standing], slots: dict[str, Slots]) -> list[VoterAudit]:
    """Return the audit of every model that answered a ballot, by model name."""
    return [voter_audit(s, slots.get(s.model, Slots())) for _, s in sorted(standings.items()) if s.ballots_answered]


def voter_audit(standing: Standing, slots: Slots) -> VoterAudit:
    """Return one voter's audit from its leaderboard counts and its preferences per slot."""
    chosen = Counter({key: n for key, n in slots.items() if key[0] >= 2})
    preferences = sum(chosen.values())
    first = sum(n for (_, slot), n in chosen.items() if slot == 1)
    return VoterAudit(
        model=standing.model, ballots=standing.ballots_answered, unparseable_rate=standing.invalid_ballot_rate,
        preferences=preferences, first_slot_preference_rate=rate(first, preferences),
        position_bias_p=position_bias_p(chosen),
        self_marks=standing.self_marks, self_preference_rate=standing.self_preference_rate,
        others_marks=standing.others_marks, others_preference_rate=standing.others_preference_rate,
        agreement_ballots=standing.agreement_ballots,
        agreement_with_winner=rate(standing.agreed_with_winner, standing.agreement_ballots),
    )


def position_bias_p(slots: Slots) -> float | None:
    """Return the p-value of preferences spread uniformly over the slots shown (None under MIN_PREFERENCES)."""
    groups: dict[int, dict[int, int]] = defaultdict(dict)
    for (shown, slot), n in slots.items():
        groups[shown][slot] = groups[shown].get(slot, 0) + n
    statistic, df = uniform_chi_square(groups)
    if sum(slots.values()) < MIN_PREFERENCES or not df:
        return None
    return chi_square_sf(statistic, df)
