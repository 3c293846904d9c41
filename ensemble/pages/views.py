"""HTML pages (and their JSON twin) over the vote history: staff only (see `access`), read only but for
the vote page's feedback form.

Each view parses its query string, calls a selector, renders.
"""
from __future__ import annotations

import functools

from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from ..api.errors import openai_error
from ..formats.costs import cost_number
from ..history import reads as history
from ..history.filters import FilterError, RequestFilter
from ..history.feedback import feedback_record
from ..leaderboard import board as leaderboards
from ..leaderboard import judges, sorting, windows
from ..leaderboard.ratings import MIN_COMPARISONS
from ..leaderboard.standing import Standing
from ..models import FeedbackSource, RequestStatus
from . import charts
from .access import staff_or_api_key_required, staff_required
from .forms import FeedbackForm, HistoryFilters, RequestFilterForm

PAGE_SIZE = 50


class HistoryPaginator(Paginator):
    """A Paginator whose pages come from `history.request_history_page`, so deep pages stay fast,
    and whose count is `count` (from `history.request_history_count`)."""

    def __init__(self, object_list, per_page, *, count: int):
        super().__init__(object_list, per_page)
        self.__dict__["count"] = count  # Paginator.count is a cached_property: this is its value

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(history.request_history_page(self.object_list, bottom, top), number, self)


@require_safe
@staff_required
def vote_list(request):
    form = HistoryFilters(request.GET)
    form.is_valid()  # a field that does not validate is shown with its error and not applied
    filters = dict(form.cleaned_data)
    per_page = filters.pop("per_page", None) or PAGE_SIZE
    paginator = HistoryPaginator(history.request_history(**filters), per_page,
                                 count=history.request_history_count(**filters))
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "ensemble/vote_list.html", {
        "form": form, "page": page, "filtered": any(filters.values()),
        "models": history.history_models(), "statuses": RequestStatus.choices,
    })


@require_safe
@staff_required
def vote_detail(request, pk):
    return _vote_page(request, pk)


@require_POST
@staff_required
def vote_feedback(request, pk):
    """Store the staff member's feedback on the request (replacing any earlier one), then show the page again."""
    detail = _detail_or_404(pk)
    form = FeedbackForm(request.POST, candidates=detail.candidates)
    if not form.is_valid():
        return _vote_page(request, pk, detail=detail, form=form, status=400)
    feedback_record(request=detail.request, source=FeedbackSource.STAFF, user=request.user, **form.cleaned_data)
    return redirect(reverse("pages:vote-detail", args=[pk]) + "#feedback")


def _vote_page(request, pk, *, detail=None, form=None, status=200):
    detail = detail or _detail_or_404(pk)
    current = getattr(detail.request, "feedback", None)  # a missing reverse one-to-one is an AttributeError
    if form is None:
        initial = {"score": current.score, "preferred_index": current.preferred_index,
                   "comment": current.comment} if current else {}
        form = FeedbackForm(initial=initial, candidates=detail.candidates)
    return render(request, "ensemble/vote_detail.html", {
        "detail": detail, "request_row": detail.request, "timeline": charts.call_timeline(detail),
        "feedback": current, "feedback_form": form,
    }, status=status)


def _detail_or_404(pk) -> history.RequestDetail:
    detail = history.request_detail(request_id=pk)
    if detail is None:
        raise Http404("No request with this id.")
    return detail


def board_filters(request) -> dict:
    """Return the leaderboard's filters in the query string: `window` and `ensemble`."""
    return {
        "window": request.GET.get("window", windows.DEFAULT_WINDOW),
        # A NUL never gets here: RefuseNulCharacters answers 400 first.
        "ensemble": request.GET.get("ensemble", ""),
    }


def _leaderboard_from(request, request_filter: RequestFilter) -> leaderboards.Leaderboard:
    # Reads only: a closed day that `manage.py rollup_votes` has not rolled up yet is read live.
    return leaderboards.leaderboard(**board_filters(request), request_filter=request_filter.q(),
                                    sort=request.GET.get("sort", sorting.DEFAULT_SORT))


# Leaderboard columns: (sort key, label, what it means).
COLUMNS = (
    ("model", "Model", "Backend model"),
    ("participated", "Requests", "Requests with a winner in which the model had a candidate"),
    ("wins", "Wins", "Requests its candidate won"),
    ("win_rate", "Win rate [95%]", "Wins / requests, with the 95% Wilson interval"),
    ("acceptance_rate", "Accepted", "Share of counted ballot marks on its candidates that accepted them"),
    ("preference_rate", "Preferred", "Share of counted ballot marks on its candidates that preferred them"),
    ("self_preference_rate", "Self-pref. vs others", "How often it prefers itself vs how often others prefer it"),
    ("invalid_ballot_rate", "Invalid ballots", "Unparseable ballots / ballots it answered"),
    ("error_rate", "Errors/timeouts", "Failed or timed-out answers / answer calls"),
    ("median_latency_ms", "Median latency", "Median latency of its successful answers"),
    ("cost", "Cost", "Known cost of its calls, answers and ballots, in USD"),
    ("cost_per_win", "Cost per win", "Cost of its calls / its wins"),
)


def _sort_headers(sort: str) -> list[dict]:
    """Return the column headers with the sort each one links to (a second click reverses it)."""
    headers = []
    for key, label, help_text in COLUMNS:
        state = {key: "ascending", f"-{key}": "descending"}.get(sort)
        first = key if key == "model" else f"-{key}"  # names A→Z, numbers biggest first
        next_sort = first if state is None else (key if state == "descending" else f"-{key}")
        headers.append({"key": key, "label": label, "help": help_text, "state": state, "next": next_sort})
    return headers


@require_safe
@staff_required
def leaderboard(request):
    form = RequestFilterForm(request.GET)
    form.is_valid()  # a bad tag, user or key filter is shown with its error and not applied
    board = _leaderboard_from(request, form.cleaned_data["request_filter"])
    palette = charts.colours(board.models)
    sort = request.GET.get("sort", sorting.DEFAULT_SORT)
    sort = sort if sort.lstrip("-") in sorting.SORTS else sorting.DEFAULT_SORT
    return render(request, "ensemble/leaderboard.html", {
        "board": board, "sort": sort, "headers": _sort_headers(sort), "form": form,
        "request_filter": form.cleaned_data["request_filter"],
        "min_comparisons": MIN_COMPARISONS,
        "judge_rules": {"p": judges.POSITION_BIAS_P, "ratio": judges.SELF_PREFERENCE_RATIO,
                        "min": judges.MIN_PREFERENCES},
        "windows": [(key, label) for key, (label, *_) in windows.WINDOWS.items()],
        "ensembles": history.history_ensembles(),
        "win_rate_chart": charts.win_rate_intervals(board.standings, palette) if board.standings else "",
        "over_time_chart": charts.win_rate_over_time(board.over_time, palette) if board.over_time else "",
    })


def with_request_filter(view):
    """Decorate a JSON view: call it with the query's request filter (tags, user, key), or answer
    the OpenAI-shaped 400 (403 for a staff-only filter) that names the bad parameter."""
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            request_filter = RequestFilter.from_query(request.GET, staff=request.user.is_staff)
        except FilterError as exc:
            return openai_error(403 if exc.forbidden else 400, str(exc), param=exc.param)
        return view(request, *args, request_filter=request_filter, **kwargs)
    return wrapped


@require_safe
@staff_or_api_key_required
@with_request_filter
def leaderboard_json(request, request_filter: RequestFilter):
    board = _leaderboard_from(request, request_filter)
    return JsonResponse({
        "window": board.window,
        "ensemble": board.ensemble or None,
        "tags": request_filter.tag_texts,  # the filters applied, as ?tag= spells them
        "user": request_filter.user or None,
        "key": request_filter.key or None,
        "since": board.since,
        "generated_at": timezone.now(),
        "cost_per_request": cost_number(board.cost_per_request),
        "models": [{**standing_json(s), **board.human.model_json(s.model)} for s in board.standings],
        "head_to_head": [{"winner": a, "loser": b, "wins": n} for (a, b), n in sorted(board.head_to_head.items())],
        "ratings": [
            {"model": r.model, "rank": r.rank, "rating": round(r.rating, 1), "low": round(r.low, 1),
             "high": round(r.high, 1), "comparisons": r.comparisons, "provisional": r.provisional}
            for r in board.ratings
        ],
        # The judges' audit, and what human feedback says of each judge (read live, only here).
        "voters": [{**audit.as_dict(), **board.human.voter_json(audit.model)} for audit in board.voters],
        "win_rate_over_time": [
            {"bucket": bucket, "model": model, "participated": n, "wins": wins, "win_rate": wins / n}
            for bucket, model, n, wins in board.over_time
        ],
    })


def standing_json(standing: Standing) -> dict:
    """Return one model's row of /leaderboard.json: its counts and rates, None where undefined."""
    interval = standing.win_interval
    return {
        "model": standing.model, "participated": standing.participated, "wins": standing.wins,
        "win_rate": standing.win_rate,
        "win_rate_low": interval[0] if interval else None,
        "win_rate_high": interval[1] if interval else None,
        "marks_received": standing.marks_received, "acceptance_rate": standing.acceptance_rate,
        "preference_rate": standing.preference_rate,
        "self_marks": standing.self_marks, "self_preference_rate": standing.self_preference_rate,
        "others_marks": standing.others_marks, "others_preference_rate": standing.others_preference_rate,
        "ballots_answered": standing.ballots_answered, "invalid_ballot_rate": standing.invalid_ballot_rate,
        "calls": standing.calls, "error_rate": standing.error_rate,
        "median_latency_ms": standing.median_latency_ms,
        "cost": cost_number(standing.cost), "cost_per_win": cost_number(standing.cost_per_win),
    }
