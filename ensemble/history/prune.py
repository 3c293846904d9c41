"""Deleting old vote history in short batches (manage.py prune_votes).

Requests are deleted in batches of `batch_size` primary keys, each batch in its own short
transaction, so that a large prune never holds the database (SQLite's single writer above all)
for long and can be interrupted without losing more than one batch of work. Candidates, ballots,
marks and feedback go with their request (ON DELETE CASCADE, done by Django). Each batch also forgets the
leaderboard rollup of the days up to the cutoff's (ensemble.leaderboard.rollups), in the same
transaction: those days are read live until they are rolled up again from what is left.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import transaction

from ..leaderboard import rollups
from ..models import Ballot, BallotMark, Candidate, CompletionRequest, Feedback, RequestTag


@dataclass
class PruneCounts:
    """Rows deleted (or that would be), per table."""

    requests: int = 0
    candidates: int = 0
    ballots: int = 0
    marks: int = 0
    feedback: int = 0
    tags: int = 0

    def add(self, deleted: dict[str, int]) -> None:
        """Add the per-model counts of a QuerySet.delete() result."""
        self.requests += deleted.get(CompletionRequest._meta.label, 0)
        self.candidates += deleted.get(Candidate._meta.label, 0)
        self.ballots += deleted.get(Ballot._meta.label, 0)
        self.marks += deleted.get(BallotMark._meta.label, 0)
        self.feedback += deleted.get(Feedback._meta.label, 0)
        self.tags += deleted.get(RequestTag._meta.label, 0)

    def __str__(self) -> str:
        return (f"{self.requests} request(s), {self.candidates} candidate(s), "
                f"{self.ballots} ballot(s), {self.marks} mark(s), {self.feedback} feedback, {self.tags} tag(s)")


def votes_count_before(cutoff: datetime) -> PruneCounts:
    """Return how many rows of each table belong to requests created before `cutoff`."""
    return PruneCounts(
        requests=CompletionRequest.objects.filter(created_at__lt=cutoff).count(),
        candidates=Candidate.objects.filter(request__created_at__lt=cutoff).count(),
        ballots=Ballot.objects.filter(request__created_at__lt=cutoff).count(),
        marks=BallotMark.objects.filter(request__created_at__lt=cutoff).count(),
        feedback=Feedback.objects.filter(request__created_at__lt=cutoff).count(),
        tags=RequestTag.objects.filter(request__created_at__lt=cutoff).count(),
    )


def votes_delete_before(cutoff: datetime, *, batch_size: int) -> PruneCounts:
    """Delete the requests created before `cutoff` and their children, one batch at a time; return the counts."""
    counts = PruneCounts()
    old = CompletionRequest.objects.filter(created_at__lt=cutoff).order_by()
    while batch := list(old.values_list("pk", flat=True)[:batch_size]):
        with transaction.atomic():
            # only("pk"): the collector need not load conversations just to delete them.
            _, deleted = CompletionRequest.objects.filter(pk__in=batch).only("pk").delete()
            rollups.rollup_invalidate(until=cutoff.astimezone(dt_timezone.utc).date())
        counts.add(deleted)
    return counts
