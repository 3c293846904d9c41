"""The what-if re-tally of the leaderboard's window (`leaderboard.whatif`): a page and its JSON.

The same filters (window, ensemble, tags, user, key) and the same access as the leaderboard and
/leaderboard.json.
"""
from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from ..history import reads as history
from ..history.filters import RequestFilter
from ..leaderboard import whatif, windows
from .access import staff_or_api_key_required, staff_required
from .forms import RequestFilterForm
from .views import board_filters, with_request_filter


def whatif_json_body(result: whatif.WhatIf, request_filter: RequestFilter | None = None) -> dict:
    """Return the body of /leaderboard/what-if.json for a re-tally (and the request filter it applied)."""
    request_filter = request_filter or RequestFilter()
    return {
        "window": result.window, "ensemble": result.ensemble or None, "tags": request_filter.tag_texts,
        "user": request_filter.user or None, "key": request_filter.key or None, "since": result.since,
        "generated_at": timezone.now(), "requests": result.requests, "not_reproduced": result.not_reproduced,
        "rules": [outcome.as_dict() for outcome in result.rules],
    }


@require_safe
@staff_or_api_key_required
@with_request_filter
def whatif_json(request, request_filter: RequestFilter):
    result = whatif.what_if(**board_filters(request), request_filter=request_filter.q())
    return JsonResponse(whatif_json_body(result, request_filter))


@require_safe
@staff_required
def whatif_page(request):
    form = RequestFilterForm(request.GET)
    form.is_valid()  # a bad tag, user or key filter is shown with its error and not applied
    request_filter = form.cleaned_data["request_filter"]
    return render(request, "ensemble/whatif.html", {
        "result": whatif.what_if(**board_filters(request), request_filter=request_filter.q()),
        "form": form, "request_filter": request_filter,
        "windows": [(key, label) for key, (label, *_) in windows.WINDOWS.items()],
        "ensembles": history.history_ensembles(),
        "shown_ids": whatif.CHANGED_IDS,
    })
