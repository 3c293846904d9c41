"""Vote history: one row per request, per candidate, per ballot and per ballot mark.

History is append-only. A few columns are denormalized on purpose (the winner's model on the
request, voter and author models on each mark) so that leaderboards are single GROUP BY queries
over indexed columns instead of joins across four tables.
"""
import uuid

from django.db import models
from django.urls import reverse


class RequestStatus(models.TextChoices):
    OK = "ok", "ok"  # every member answered
    PARTIAL = "partial", "partial"  # a winner, but some members failed, or an internal error stopped the vote
    FAILED = "failed", "failed"  # no candidate succeeded
    CANCELLED = "cancelled", "cancelled"  # the client went away before the answer


# The statuses of a request that answered (a winner, or concat's joined answer).
ANSWERED = (RequestStatus.OK, RequestStatus.PARTIAL)


class CallStatus(models.TextChoices):
    OK = "ok", "ok"
    TIMEOUT = "timeout", "timeout"
    ERROR = "error", "error"
    TOO_LARGE = "too_large", "too_large"  # the reply passed TRIO_MAX_ANSWER_BYTES; not read further
    LATE = "late", "late"  # abandoned by a straggler cut-off
    CANCELLED = "cancelled", "cancelled"


class BallotStatus(models.TextChoices):
    OK = "ok", "ok"
    UNPARSEABLE = "unparseable", "unparseable"
    TIMEOUT = "timeout", "timeout"
    ERROR = "error", "error"
    TOO_LARGE = "too_large", "too_large"
    LATE = "late", "late"
    CANCELLED = "cancelled", "cancelled"


class BallotFormat(models.TextChoices):
    """How a ballot was asked (ensemble.voting.formats)."""

    JSON_SCHEMA = "json_schema", "json_schema"
    JSON_OBJECT = "json_object", "json_object"
    TEXT = "text", "text"


class UsageFields(models.Model):
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


def cost_field(help_text: str) -> models.DecimalField:
    """Return a cost column in USD (ensemble.formats.costs): null is unknown, never 0. Decimal, not float, so
    that PostgreSQL's sums are exact; 18 digits with 10 places hold up to 10**8 USD."""
    return models.DecimalField(max_digits=18, decimal_places=10, null=True, blank=True, help_text=help_text)


class CompletionRequest(UsageFields):
    """One call to /v1/chat/completions and its outcome. Usage fields are the ensemble's total."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by request_created_id (created_at, id), which serves every created_at lookup too.
    created_at = models.DateTimeField()
    ensemble = models.CharField(max_length=200, default="trio")
    members = models.JSONField(default=list, help_text="Backend model names, in ensemble order.")
    messages = models.JSONField(default=list)
    params = models.JSONField(default=dict, help_text="Sampling parameters passed to the backend.")
    prompt_excerpt = models.CharField(max_length=300, blank=True, help_text="Start of the last user message.")
    status = models.CharField(max_length=16, choices=RequestStatus.choices)
    error = models.TextField(blank=True)
    winner_model = models.CharField(max_length=200, blank=True, db_index=True)
    winner_index = models.PositiveSmallIntegerField(null=True, blank=True)
    voter_count = models.PositiveSmallIntegerField(default=0, help_text="Ballots that counted.")
    latency_ms = models.PositiveIntegerField(default=0)
    generation_ms = models.PositiveIntegerField(default=0)
    voting_ms = models.PositiveIntegerField(default=0)
    api_key = models.ForeignKey("ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="requests")
    aggregation_method = models.CharField(max_length=32, default="acceptance_voting", help_text="How the answers became one reply (ensemble.aggregation), or passthrough.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children", help_text="The request this nested ensemble answered a member of.")
    # The consensus on the winner (ensemble.voting.consensus); null for a method without ballots
    # (random, concat, synthesize, pass-through), a request without a winner, and rows stored before it.
    consensus_score = models.FloatField(null=True, blank=True, help_text="Share of the other voters' parsed ballots that accepted the winner.")
    consensus_preferred_share = models.FloatField(null=True, blank=True, help_text="Share of them that also preferred it.")
    consensus_margin = models.IntegerField(null=True, blank=True, help_text="The winner's counted acceptances minus the runner-up's.")
    consensus_low = models.BooleanField(null=True, blank=True, help_text="Score below TRIO_LOW_CONSENSUS when stored, or no other voter judged the winner.")
    # Over every backend call of the request, nested ensembles' included (CompletionOutcome.cost_total).
    cost_total = cost_field("USD: the sum of its calls' known costs; empty when none is known.")
    cost_unknown_calls = models.PositiveIntegerField(default=0, help_text="Its calls whose cost is unknown.")
    # The client's `metadata` and `user` (never sent to the members); each metadata pair is also a
    # RequestTag row, which is what `?tag=` filters read.
    metadata = models.JSONField(default=dict, blank=True, help_text="The request's metadata: its tags.")
    user = models.CharField(max_length=256, blank=True, db_index=True, help_text="The client's end user (the request's `user`).")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="request_status_created"),
            # Leaderboard filtered by ensemble (and window).
            models.Index(fields=["ensemble", "created_at"], name="request_ensemble_created"),
            # History pages: newest first with the id tie-break, so a deep page's OFFSET walks
            # this index alone (history.reads.request_history_page).
            models.Index(fields=["created_at", "id"], name="request_created_id"),
            # "Low consensus only": the few low rows, newest first, and their count, without reading the rest.
            models.Index(fields=["created_at", "id"], condition=models.Q(consensus_low=True),
                         name="request_low_consensus_created"),
        ]

    def __str__(self):
        return f"trio-{self.id.hex}"

    @property
    def public_id(self) -> str:
        return f"trio-{self.id.hex}"

    def get_absolute_url(self) -> str:
        return reverse("pages:vote-detail", args=[self.pk])


class RequestTag(models.Model):
    """One `metadata` pair of a request, for filtering by tag: the index (key, value, request) finds a
    tag's requests without reading any JSON."""

    request = models.ForeignKey(CompletionRequest, on_delete=models.CASCADE, related_name="tags", db_index=False)
    key = models.CharField(max_length=64)
    value = models.CharField(max_length=512)

    class Meta:
        indexes = [
            models.Index(fields=["key", "value", "request"], name="request_tag_key_value"),
            models.Index(fields=["request"], name="request_tag_request"),  # cascade deletes, prune
        ]

    def __str__(self):
        return f"{self.key}:{self.value}"


class Candidate(UsageFields):
    """One ensemble member's answer (or failure) for a request."""

    # No index of its own: candidate_unique_index (request, index) serves lookups by request.
    request = models.ForeignKey(CompletionRequest, on_delete=models.CASCADE, related_name="candidates",
                                db_index=False)
    index = models.PositiveSmallIntegerField(help_text="Position of the member in the ensemble.")
    model = models.CharField(max_length=200)
    content = models.TextField(blank=True)
    tool_calls = models.JSONField(default=list, blank=True,
                                  help_text="The tool calls it answered with, as the backend gave them.")
    status = models.CharField(max_length=16, choices=CallStatus.choices)
    error = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    accepted_count = models.PositiveSmallIntegerField(default=0)
    preferred_count = models.PositiveSmallIntegerField(default=0)
    rank = models.PositiveSmallIntegerField(null=True, blank=True, help_text="1 is the winner.")
    is_winner = models.BooleanField(default=False)
    cost_usd = cost_field("USD; a nested ensemble's is its whole request's. Empty: unknown.")

    class Meta:
        ordering = ["request", "index"]
        constraints = [models.UniqueConstraint(fields=["request", "index"], name="candidate_unique_index")]
        indexes = [
            # Leaderboard median latency: the middle rows of one model's successful calls, in order
            # (and every (model, status) lookup).
            models.Index(fields=["model", "status", "latency_ms"], name="candidate_model_latency"),
            # History filtered by model: "had a candidate" probed per request without reading candidates.
            models.Index(fields=["model", "request"], name="candidate_model_request"),
        ]

    def __str__(self):
        return f"{self.model} #{self.index}"


class Ballot(UsageFields):
    """One voter's reply in the voting round, with the order of candidates it was shown."""

    # No index of its own: ballot_unique_voter (request, voter_index) serves lookups by request.
    request = models.ForeignKey(CompletionRequest, on_delete=models.CASCADE, related_name="ballots", db_index=False)
    voter_index = models.PositiveSmallIntegerField()
    voter_model = models.CharField(max_length=200)
    shown_order = models.JSONField(default=list, help_text="Candidate indexes as shown: position 1 first.")
    raw_text = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=BallotStatus.choices)
    error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    format = models.CharField(max_length=16, choices=BallotFormat.choices, default=BallotFormat.TEXT,
                              help_text="How the ballot was asked: a JSON-constrained response_format or text.")
    cost_usd = cost_field("USD; empty: unknown.")

    class Meta:
        ordering = ["request", "voter_index"]
        constraints = [models.UniqueConstraint(fields=["request", "voter_index"], name="ballot_unique_voter")]
        indexes = [models.Index(fields=["voter_model", "status"], name="ballot_voter_status")]

    def __str__(self):
        return f"ballot by {self.voter_model}"


class BallotMark(models.Model):
    """One voter's verdict on one candidate. `counted` is False for self-votes when they are excluded."""

    # No index of its own: mark_unique_candidate (ballot, candidate) serves lookups by ballot.
    ballot = models.ForeignKey(Ballot, on_delete=models.CASCADE, related_name="marks", db_index=False)
    request = models.ForeignKey(CompletionRequest, on_delete=models.CASCADE, related_name="marks")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="marks")
    voter_model = models.CharField(max_length=200)
    author_model = models.CharField(max_length=200)
    position = models.PositiveSmallIntegerField(help_text="Number the voter saw this candidate under.")
    accepted = models.BooleanField()
    preferred = models.BooleanField()
    is_self = models.BooleanField()
    counted = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ballot", "candidate"], name="mark_unique_candidate")]
        indexes = [
            models.Index(fields=["author_model", "voter_model"], name="mark_author_voter"),
            # Head-to-head: the rank of every mark of a ballot and its model, without the table
            # (leaderboard.counts.pair_counts joins each mark to the other marks of its ballot).
            models.Index(fields=["ballot", "accepted", "preferred", "author_model"], name="mark_ballot_rank"),
        ]

    def __str__(self):
        return f"{self.voter_model} → {self.author_model}"
