"""The query-string forms of the pages."""
from __future__ import annotations

from django import forms

from ..models import RequestStatus

MAX_PAGE_SIZE = 200


class HistoryFilters(forms.Form):
    model = forms.CharField(required=False, max_length=200)
    status = forms.ChoiceField(required=False, choices=[("", "any")] + RequestStatus.choices)
    date_from = forms.DateField(required=False)
    date_to = forms.DateField(required=False)
    search = forms.CharField(required=False, max_length=300, strip=True)
    low_consensus = forms.BooleanField(required=False)  # ?low_consensus=1: only answers the panel hardly agreed on
    per_page = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)
