"""The orders the leaderboard's rows can be shown in: the page's `?sort=` keys."""
from __future__ import annotations

from .standing import Standing


# Sort keys offered on the page (`?sort=win_rate`, `?sort=-win_rate`); missing values sort last.
SORTS = {
    "model": lambda s: s.model,
    "participated": lambda s: s.participated,
    "wins": lambda s: s.wins,
    "win_rate": lambda s: s.win_rate,
    "acceptance_rate": lambda s: s.acceptance_rate,
    "preference_rate": lambda s: s.preference_rate,
    "self_preference_rate": lambda s: s.self_preference_rate,
    "invalid_ballot_rate": lambda s: s.invalid_ballot_rate,
    "error_rate": lambda s: s.error_rate,
    "median_latency_ms": lambda s: s.median_latency_ms,
    "cost": lambda s: s.cost,
    "cost_per_win": lambda s: s.cost_per_win,
}
DEFAULT_SORT = "-win_rate"


def sort_standings(standings: list[Standing], sort: str) -> list[Standing]:
    """Return standings ordered by `sort` (a SORTS key, '-' for descending); missing values last."""
    if sort.lstrip("-") not in SORTS:
        sort = DEFAULT_SORT
    key, descending = SORTS[sort.lstrip("-")], sort.startswith("-")
    present = [s for s in standings if key(s) is not None]
    missing = [s for s in standings if key(s) is None]
    present.sort(key=lambda s: s.model)  # stable tie-break by name, whatever the direction
    present.sort(key=key, reverse=descending)
    return present + sorted(missing, key=lambda s: s.model)
