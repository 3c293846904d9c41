"""What-if re-tally: the stored ballots of a leaderboard window counted again under other rules.

Reads only. Each rule re-decides every stored request it can re-count with the live vote's own
functions (`voting.tally`, `voting.rank` and its tie-break, `voting.Mark`), and says how many
got another winner than the stored one:

    borda               Borda points from each ballot's order preferred > accepted > not accepted
                        (`voting.borda_points`), then the live tie-break
    approval            acceptances only: preferences ignored, ties straight to ensemble order
    exclude_self_votes  each voter's marks on its own answer left out (requests stored including them)
    include_self_votes  ... counted (requests stored excluding them)
    without:<model>     that model's candidate and its ballot dropped, the rest re-tallied (requests
                        it took part in; none left: no winner, which is a change)

Every rule but the self-vote ones keeps the request's stored self-vote policy. A request records
its policy only in its self marks (`BallotMark.counted` of the marks with `is_self`); one without
a self mark has no policy to flip and neither self-vote rule re-counts it.

Which requests: acceptance voting, answered with a winner (ok or partial), with marks stored,
whose re-tally under their own stored rule gives the stored winner. The last condition leaves out
the few decided by the service's fallback after an internal error (ensemble order, no tally): a
rule cannot "change" a winner the tally did not choose. They are counted in `not_reproduced`.

Scale: requests are read in chunks (`chunk_size`, keyset pagination on (created_at, id)), each chunk's
candidates and marks with two `values_list` queries, so memory is bounded by one chunk whatever
the window; the totals kept are counters and the first `CHANGED_IDS` ids per rule.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from .. import voting
from ..formats.costs import COST_PLACES
from ..models import ANSWERED, Ballot, BallotMark, BallotStatus, Candidate, CallStatus, CompletionRequest
from ..voting.methods import MEMBERS_VOTE
from .windows import DEFAULT_WINDOW, WINDOWS, window_start

CHUNK_SIZE = 1000
CHANGED_IDS = 20  # ids listed per rule; `changed` counts them all


@dataclass(frozen=True)
class StoredVote:
    """One stored acceptance vote, as the re-tally reads it: indexes are ensemble positions."""

    id: uuid.UUID
    winner: int
    models: dict[int, str]  # every candidate's model, by index
    answered: tuple[int, ...]  # the candidates that answered: the ones the vote ranked
    marks: tuple[voting.Mark, ...]  # of the parsed ballots
    self_vote: bool | None  # the stored policy, from the self marks' `counted`; None: no self mark

    @property
    def policy(self) -> bool:
        return self.self_vote is not False  # no self mark: either policy counts the same

    def winner_by(self, *, self_vote: bool, without: str | None = None, points=None) -> int | None:
        """Return the winner the live tally and rank give (None if no candidate is left)."""
        answered = [c for c in self.answered if self.models[c] != without]
        marks = [m for m in self.marks if without not in (self.models.get(m.voter), self.models[m.candidate])]
        totals = voting.tally(answered, marks, self_vote=self_vote)
        ranking = voting.rank(totals, points=points(answered, marks, self_vote=self_vote) if points else None)
        return ranking[0] if ranking else None


# --- the rules: one small class each -------------------------------------------------------------

class Rule:
    """A way of counting a stored vote again: `recounts` says whether it applies, `winner` decides."""

    name: str

    def recounts(self, vote: StoredVote) -> bool:
        return True

    def winner(self, vote: StoredVote) -> int | None:
        raise NotImplementedError


class Borda(Rule):
    name = "borda"

    def winner(self, vote):
        return vote.winner_by(self_vote=vote.policy, points=voting.borda_points)


class Approval(Rule):
    name = "approval"

    def winner(self, vote):
        totals = voting.tally(vote.answered, vote.marks, self_vote=vote.policy)
        ranking = voting.rank({c: voting.Tally(accepted=t.accepted) for c, t in totals.items()})
        return ranking[0] if ranking else None


class SelfVotes(Rule):
    """Count the self marks (`include`) or not, on the requests stored under the other policy."""

    def __init__(self, include: bool):
        self.include = include
        self.name = "include_self_votes" if include else "exclude_self_votes"

    def recounts(self, vote):
        return vote.self_vote is (not self.include)

    def winner(self, vote):
        return vote.winner_by(self_vote=self.include)


class Without(Rule):
    """Drop one model's candidate and ballot; re-tally the rest."""

    prefix = "without:"

    def __init__(self, model: str):
        self.model = model
        self.name = f"{self.prefix}{model}"

    def recounts(self, vote):
        return self.model in vote.models.values()

    def winner(self, vote):
        return vote.winner_by(self_vote=vote.policy, without=self.model)


COUNTING_RULES: tuple[Rule, ...] = (Borda(), Approval(), SelfVotes(include=False), SelfVotes(include=True))
SELF_VOTE_RULES = frozenset(r.name for r in COUNTING_RULES if isinstance(r, SelfVotes))


# --- the pass ------------------------------------------------------------------------------------

@dataclass
class RuleOutcome:
    rule: str
    requests: int = 0  # stored requests the rule re-counted
    changed: int = 0  # of them, those it gave another winner
    changed_ids: list[str] = field(default_factory=list)  # the first CHANGED_IDS, as public ids
    cost_saved: float | None = 0.0  # a counting rule saves no call; without:<model>, `_calls_cost`

    def add(self, vote: StoredVote, winner: int | None) -> None:
        self.requests += 1
        if winner != vote.winner:
            self.changed += 1
            if len(self.changed_ids) < CHANGED_IDS:
                self.changed_ids.append(f"trio-{vote.id.hex}")

    def as_dict(self) -> dict:
        return {"rule": self.rule, "requests": self.requests, "changed": self.changed,
                "changed_ids": self.changed_ids, "cost_saved": self.cost_saved}


@dataclass
class WhatIf:
    window: str
    ensemble: str
    since: datetime | None
    requests: int  # stored requests re-counted (see the module docstring)
    not_reproduced: int  # left out: their stored winner is not their own rule's (fallback winners)
    rules: list[RuleOutcome]


def what_if(*, window: str = DEFAULT_WINDOW, ensemble: str = "", request_filter: Q | None = None,
            rules: Iterable[str] | None = None, now: datetime | None = None,
            chunk_size: int = CHUNK_SIZE) -> WhatIf:
    """Return, per rule, how many of the window's stored requests it re-counts and changes.

    `window`, `ensemble` and `request_filter` (a condition on CompletionRequest: the tags, user and
    key of `history.filters.RequestFilter.q`) filter as the leaderboard's do (an unknown window is all time);
    `rules` keeps only the rules named (`without` keeps every without:<model>), all if None.
    """
    window = window if window in WINDOWS else DEFAULT_WINDOW
    since = window_start(window, now or timezone.now())
    wanted = None if rules is None else set(rules)
    counting = [r for r in COUNTING_RULES if wanted is None or r.name in wanted]
    outcomes = {r.name: RuleOutcome(r.name) for r in counting}
    dropping: dict[str, Without] = {}
    requests = window_requests(since=since, ensemble=ensemble, request_filter=request_filter)
    total = not_reproduced = 0
    for vote in stored_votes(requests, chunk_size=chunk_size):
        if vote.winner_by(self_vote=vote.policy) != vote.winner:
            not_reproduced += 1
            continue
        total += 1
        for rule in (*counting, *_without_rules(vote, wanted, dropping, outcomes)):
            if rule.recounts(vote):
                outcomes[rule.name].add(vote, rule.winner(vote))
    for model, rule in dropping.items():
        outcomes[rule.name].cost_saved = _calls_cost(requests=requests, model=model)
    return WhatIf(window, ensemble, since, total, not_reproduced, _listed(outcomes, counting, dropping))


def _without_rules(vote: StoredVote, wanted: set[str] | None, dropping: dict[str, Without],
                   outcomes: dict[str, RuleOutcome]) -> list[Without]:
    """Return the wanted without:<model> rules of the models in `vote`, making those first seen."""
    models = set(vote.models.values())
    for model in models - dropping.keys():
        if wanted is None or {"without", f"{Without.prefix}{model}"} & wanted:
            dropping[model] = Without(model)
            outcomes[dropping[model].name] = RuleOutcome(dropping[model].name)
    return [dropping[model] for model in models & dropping.keys()]


def rule_known(name: str) -> bool:
    """Return whether `name` names a rule `what_if(rules=...)` can keep."""
    return name in {r.name for r in COUNTING_RULES} or name == "without" or name.startswith(Without.prefix)


def _listed(outcomes: dict[str, RuleOutcome], counting: list[Rule], dropping: dict[str, Without]) -> list[RuleOutcome]:
    """Return the outcomes in order: counting rules, then without:<model> by model.

    A self-vote rule shows where it re-counted something: the window's policy is the other one.
    A window without self marks shows both (with 0 requests), saying there is nothing to flip.
    """
    shown = [outcomes[r.name] for r in counting]
    flipping = [o for o in shown if o.rule in SELF_VOTE_RULES and o.requests]
    if flipping:
        shown = [o for o in shown if o.rule not in SELF_VOTE_RULES or o.requests]
    return shown + [outcomes[dropping[m].name] for m in sorted(dropping)]


def _calls_cost(*, requests: QuerySet, model: str) -> float | None:
    """Return the known cost in USD of `model`'s calls (its candidates and its ballots) in the
    re-countable requests of `requests`: what dropping it would have saved. None when none of
    those calls has a known cost (unknown costs are left out of the sum, as on the leaderboard)."""
    scope = requests.filter(aggregation_method__in=MEMBERS_VOTE, status__in=ANSWERED,
                            winner_index__isnull=False)
    known = Q(cost_usd__isnull=False)
    candidates = Candidate.objects.filter(known, request__in=scope, model=model).aggregate(
        n=Count("pk"), usd=Sum("cost_usd"))
    ballots = Ballot.objects.filter(known, request__in=scope, voter_model=model).aggregate(
        n=Count("pk"), usd=Sum("cost_usd"))
    if not candidates["n"] and not ballots["n"]:
        return None
    total = (candidates["usd"] or Decimal(0)) + (ballots["usd"] or Decimal(0))
    return float(Decimal(total).quantize(COST_PLACES))


def window_requests(*, since: datetime | None, ensemble: str, request_filter: Q | None = None) -> QuerySet:
    """Return the window's requests, every method and status (the leaderboard's scope)."""
    requests = CompletionRequest.objects.all()
    if since is not None:
        requests = requests.filter(created_at__gte=since)
    if request_filter:
        requests = requests.filter(request_filter)
    return requests.filter(ensemble=ensemble) if ensemble else requests


def recountable(method: str, status: str, winner: int | None) -> bool:
    """Return whether a request may be re-counted: a method where every member voted (acceptance
    voting), answered with a winner."""
    return method in MEMBERS_VOTE and status in ANSWERED and winner is not None


def stored_votes(requests: QuerySet, *, chunk_size: int = CHUNK_SIZE) -> Iterator[StoredVote]:
    """Yield the stored vote of each re-countable request of `requests` that has marks, oldest
    first, `chunk_size` requests read at a time.

    Keyset pagination on (created_at, id), the request_created_id index (request_ensemble_created
    with an ensemble), with nothing else in the WHERE: given `status IN (...)` too, SQLite walked
    request_status_created and sorted every matching row again for each chunk (a 100 000-request
    pass took 10 times a 20 000-request one). So `recountable` is applied here, not in SQL.
    """
    ordered = requests.order_by("created_at", "id")
    after = None
    while True:
        page = ordered if after is None else ordered.filter(created_at__gte=after[0]).exclude(
            created_at=after[0], id__lte=after[1])
        rows = list(page.values_list("created_at", "id", "aggregation_method", "status", "winner_index")[:chunk_size])
        if not rows:
            return
        after = rows[-1][:2]
        yield from _chunk_votes([(request_id, winner) for _, request_id, method, status, winner in rows
                                 if recountable(method, status, winner)])


def _chunk_votes(rows: list[tuple[uuid.UUID, int]]) -> Iterator[StoredVote]:
    """Return the stored votes of one chunk of (id, winner_index), read in two queries.

    Marks are read by their candidate's key, an integer, mapped back through the candidates, and
    rows are gathered by the request's place in the chunk: a request id per mark would be a UUID
    built and hashed per row, the pass's largest cost on SQLite.
    """
    slot = {request_id: place for place, (request_id, _) in enumerate(rows)}
    models: list[dict[int, str]] = [{} for _ in rows]
    answered: list[list[int]] = [[] for _ in rows]
    marks: list[list[voting.Mark]] = [[] for _ in rows]
    self_vote: list[bool | None] = [None] * len(rows)
    by_key: dict[int, tuple[int, int]] = {}
    for key, request_id, index, model, status in Candidate.objects.filter(request_id__in=slot).values_list(
            "pk", "request_id", "index", "model", "status").order_by():
        place = slot[request_id]
        models[place][index] = model
        by_key[key] = (place, index)
        if status == CallStatus.OK:
            answered[place].append(index)
    for key, voter, accepted, preferred, is_self, counted in BallotMark.objects.filter(
            request_id__in=slot, ballot__status=BallotStatus.OK).values_list(
            "candidate_id", "ballot__voter_index", "accepted", "preferred", "is_self", "counted").order_by():
        place, candidate = by_key[key]
        marks[place].append(voting.Mark(voter, candidate, accepted, preferred))
        if is_self:
            self_vote[place] = counted
    for place, (request_id, winner) in enumerate(rows):
        if marks[place]:
            yield StoredVote(request_id, winner, models[place], tuple(sorted(answered[place])),
                             tuple(marks[place]), self_vote[place])
