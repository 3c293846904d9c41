"""What people's feedback says of each model and each judge, over a leaderboard's window and ensemble.

Per model (as the winner): `human_feedback`, how many requests it won have feedback, and
`human_approval_rate`, their mean score (None with none). Per judge (a ballot's voter model):
`human_agreement`, over its parsed ballots on requests with feedback, the share that agree with
the person: with a preferred_index, when the judge preferred that same candidate; with a score
only, when it accepted the winner exactly if the score is at least APPROVED. A ballot on a
score-only request that did not judge the winner (it was not shown it) is no comparison.

Read live, never rolled up: feedback is written after the vote and replaced at will, so a closed
day's figures could change under a rollup; and there is one row per rated request, few beside
the history (two queries: the feedback with its requests' winners, then the marks of the rated requests).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q

from ..models import ANSWERED, BallotMark, Feedback
from .windows import request_scope

APPROVED = 0.5  # a score at least this approves of the winner


@dataclass
class HumanFigures:
    """Feedback counts per winning model and agreement counts per judge; `model_json`/`voter_json` shape them."""

    models: dict[str, tuple[int, float]] = field(default_factory=dict)  # model: (feedback count, mean score)
    voters: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # [agreed, compared]

    def model_json(self, model: str) -> dict:
        count, mean = self.models.get(model, (0, None))
        return {"human_feedback": count, "human_approval_rate": mean}

    def voter_json(self, model: str) -> dict:
        agreed, compared = self.voters.get(model, (0, 0))
        return {"human_agreement": agreed / compared if compared else None, "human_compared": compared}


def human_figures(*, since: datetime | None, ensemble: str, request_filter: Q | None = None) -> HumanFigures:
    """Return the feedback figures of the requests created since `since` (None: ever) in `ensemble` ('' : any)
    that `request_filter` keeps."""
    rated = Feedback.objects.filter(request_scope([(since, None)], ensemble, request_filter))
    figures = HumanFigures()
    verdicts, scores = {}, defaultdict(list)
    for row in rated.values("request_id", "score", "preferred_candidate_id", "request__winner_model",
                            "request__winner_index", "request__status").order_by():
        verdicts[row["request_id"]] = (row["score"], row["preferred_candidate_id"])
        if row["request__status"] in ANSWERED and row["request__winner_index"] is not None and row["request__winner_model"]:
            scores[row["request__winner_model"]].append(row["score"])
    figures.models = {model: (len(won), sum(won) / len(won)) for model, won in scores.items()}
    for voter, agrees in _ballot_agreements(verdicts, rated):
        counts = figures.voters[voter]
        counts[0] += agrees
        counts[1] += 1
    return figures


def _ballot_agreements(verdicts: dict, rated):
    """Yield (voter model, whether its ballot agrees with the person) for each parsed ballot on a rated request."""
    ballots: dict[int, dict] = {}
    marks = (BallotMark.objects.filter(request_id__in=rated.values("request_id"))
             .values("ballot_id", "request_id", "voter_model", "candidate_id", "candidate__is_winner",
                     "accepted", "preferred").order_by())
    for mark in marks.iterator(chunk_size=2000):
        ballot = ballots.setdefault(mark["ballot_id"], {"request": mark["request_id"], "voter": mark["voter_model"],
                                                         "preferred": None, "accepts_winner": None})
        if mark["preferred"]:
            ballot["preferred"] = mark["candidate_id"]
        if mark["candidate__is_winner"]:
            ballot["accepts_winner"] = mark["accepted"]
    for ballot in ballots.values():
        score, preferred = verdicts[ballot["request"]]
        if preferred is not None:
            yield ballot["voter"], ballot["preferred"] == preferred
        elif ballot["accepts_winner"] is not None:
            yield ballot["voter"], ballot["accepts_winner"] == (score >= APPROVED)
