"""The what-if re-tally of the leaderboard's window (`leaderboard.whatif`): a page and its JSON.

The same filters (window, ensemble) and the same access as the leaderboard and /leaderboard.json.
"""
from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_safe

from ..history import reads as history
from ..leaderboard import whatif, windows
from .access import staff_or_api_key_required, staff_required
from .views import board_filters


def whatif_json_body(result: whatif.WhatIf) -> dict:
    """Return the body of /leaderboard/what-if.json for a re-tally."""
    return {
        "window": result.window, "ensemble": result.ensemble or None, "since": result.since,
        "generated_at": timezone.now(), "requests": result.requests, "not_reproduced": result.not_reproduced,
        "rules": [outcome.as_dict() for outcome in result.rules],
    }


@require_safe
@staff_or_api_key_required
def whatif_json(request):
    return JsonResponse(whatif_json_body(whatif.what_if(**board_filters(request))))


@require_safe
@staff_required
def whatif_page(request):
    return render(request, "ensemble/whatif.html", {
        "result": whatif.what_if(**board_filters(request)),
        "windows": [(key, label) for key, (label, *_) in windows.WINDOWS.items()],
        "ensembles": history.history_ensembles(),
        "shown_ids": whatif.CHANGED_IDS,
    })
