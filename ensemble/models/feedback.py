"""Feedback: a person's verdict on a request's answer, given through POST /v1/feedback or the vote page."""
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from .history import Candidate, CompletionRequest

MAX_FEEDBACK_COMMENT = 2000  # characters, in POST /v1/feedback and the vote page's form alike


class FeedbackSource(models.TextChoices):
    API = "api", "api"  # POST /v1/feedback, with the key that made the request
    STAFF = "staff", "staff"  # the vote page's form


class Feedback(models.Model):
    """A person's verdict on one request's answer: one per request, replaced when given again.

    Not history (it is written after the vote, and rewritten): it goes with its request when that is
    pruned, and is read live by ensemble.leaderboard.feedback.
    """

    request = models.OneToOneField(CompletionRequest, on_delete=models.CASCADE, related_name="feedback")
    score = models.FloatField(validators=[MinValueValidator(0), MaxValueValidator(1)],
                              help_text="0 (bad answer) to 1 (good answer).")
    preferred_candidate = models.ForeignKey(Candidate, null=True, blank=True, on_delete=models.SET_NULL,
                                            related_name="+", help_text="The candidate the person preferred, if any.")
    comment = models.TextField(blank=True, max_length=MAX_FEEDBACK_COMMENT)
    source = models.CharField(max_length=8, choices=FeedbackSource.choices)
    api_key = models.ForeignKey("ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                help_text="The key that gave it (the request's own), for source api.")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text="The staff member who gave it, for source staff.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "feedback"

    def __str__(self):
        return f"feedback on trio-{self.request_id.hex}"

    @property
    def preferred_index(self) -> int | None:
        return self.preferred_candidate.index if self.preferred_candidate_id else None
