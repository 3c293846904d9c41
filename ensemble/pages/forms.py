"""The query-string forms of the pages."""
from __future__ import annotations

from django import forms

from ..models import MAX_FEEDBACK_COMMENT, CallStatus, RequestStatus

MAX_PAGE_SIZE = 200


class HistoryFilters(forms.Form):
    model = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(required=False, choices=[("", "any")] + RequestStatus.choices)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    search = forms.CharField(required=False, max_length=300, strip=True)
    low_consensus = forms.BooleanField(required=False)  # ?low_consensus=1: only answers the panel hardly agreed on
    per_page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)


class FeedbackForm(forms.Form):
    """The vote page's staff feedback: the same fields as POST /v1/feedback, the index among the answers."""

    score = forms.FloatField(min_value=0, max_value=1, widget=forms.NumberInput(attrs={"step": "0.05"}),
                             help_text="0 (bad answer) to 1 (good answer).")
    preferred_index = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Preferred answer")
    comment = forms.CharField(required=False, max_length=MAX_FEEDBACK_COMMENT, strip=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, candidates=(), **kwargs):
        super().__init__(*args, **kwargs)
        # Only answers a person can have read and preferred: a failed call has none.
        self.fields["preferred_index"].choices = [("", "none")] + [
            (c.index, f"#{c.index} {c.model}") for c in candidates if c.status == CallStatus.OK]
