"""The query-string forms of the pages."""
from __future__ import annotations

from django import forms

from ..history.filters import FilterError, RequestFilter
from ..models import MAX_FEEDBACK_COMMENT, CallStatus, RequestStatus

MAX_PAGE_SIZE = 200


class RequestFilterForm(forms.Form):
    """A query-string form that also reads the shared request filters (`history.filters`: ?tag=, ?user=,
    ?key=) into `cleaned_data["request_filter"]`; a bad one is a form error and is not applied."""

    def clean(self):
        cleaned = super().clean()
        cleaned["request_filter"] = RequestFilter()
        try:
            cleaned["request_filter"] = RequestFilter.from_query(self.data)  # the pages are staff only
        except FilterError as exc:
            raise forms.ValidationError(f"{exc.param}: {exc}") from None
        return cleaned

    @property
    def filter_values(self) -> dict:
        """Return the tag, user and key filters as typed, for the controls (a bad one is shown to be fixed)."""
        data = self.data
        return {"tags": [tag for tag in data.getlist("tag") if tag] if hasattr(data, "getlist") else [],
                "user": data.get("user", ""), "key": data.get("key", "")}


class HistoryFilters(RequestFilterForm):
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
