"""Leaderboard statistics as pure functions: no ORM, no HTTP, no settings.

- `wilson_interval`: a 95% confidence interval for a rate (win rate), well-behaved near 0 and 1
  and for small samples, unlike the normal approximation.
- `bradley_terry`: strengths fitted from a pairwise win table with Hunter's MM algorithm
  (Hunter 2004, "MM algorithms for generalized Bradley–Terry models").
- `bradley_terry_ratings`: Arena-style ratings from that fit, with bootstrap 95% intervals.
  The win table it is given is the leaderboard's head-to-head (the PAIR RULE, leaderboard.standing):
  a ballot ranking one candidate above another, never a judge ranking its own candidate above a rival's,
  so a judge that always prefers itself cannot move any rating.
  Each bootstrap round redraws the whole comparison table from a multinomial over its cells
  (equivalent to resampling individual comparisons, but cost independent of their number).

A maximum-likelihood Bradley–Terry fit does not exist when some model never wins or never loses
(its strength runs to 0 or infinity) or when the comparison graph is disconnected. Every ordered
pair of models is therefore credited with `PRIOR` virtual wins (a virtual tie each way): the fit
always exists, pairs never compared read as "no evidence of a difference", and with real data
the prior's pull is one game among hundreds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal

# Rating scale of the LMSYS Chatbot Arena: 400 points = 10:1 odds, centred on 1000.
SCALE, BASE, CENTRE = 400.0, 10.0, 1000.0

# Virtual wins credited to every ordered pair (see the module docstring).
PRIOR = 0.5

# Below this many comparisons a model's rating is shown as provisional and not ranked.
MIN_COMPARISONS = 30


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float] | None:
    """Return the Wilson score interval (low, high) of successes/trials, or None without trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes={successes} must be between 0 and trials={trials}")
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denominator
    # The exact bounds at 0/n and n/n are 0 and 1; the subtraction would leave float noise.
    low = 0.0 if successes == 0 else centre - half
    high = 1.0 if successes == trials else centre + half
    return low, high


def bradley_terry(wins: np.ndarray, *, prior: float = PRIOR, tol: float = 1e-9,
                  max_iter: int = 10_000) -> np.ndarray:
    """Return strengths fitted to `wins`, normalised to geometric mean 1.

    `wins` is a (..., K, K) array: wins[..., i, j] is how often i beat j (the diagonal is ignored).
    Leading dimensions are independent tables fitted at once (the bootstrap rounds).
    """
    k = np.shape(wins)[-1]
    if k < 2:  # a lone model has nobody to be compared with
        return np.ones(np.shape(wins)[:-1])
    off_diagonal = 1 - np.eye(k)
    wins = (np.asarray(wins, dtype=float) + prior) * off_diagonal
    games = wins + np.swapaxes(wins, -1, -2)  # n_ij
    total_wins = wins.sum(axis=-1)  # W_i
    log_strength = np.zeros(wins.shape[:-1])
    for _ in range(max_iter):
        strength = np.exp(log_strength)
        # MM update: p_i = W_i / sum_j n_ij / (p_i + p_j)
        updated = np.log(total_wins) - np.log((games / (strength[..., :, None] + strength[..., None, :])).sum(axis=-1))
        updated -= updated.mean(axis=-1, keepdims=True)  # the likelihood ignores scale: fix it
        converged = np.max(np.abs(updated - log_strength)) < tol
        log_strength = updated
        if converged:
            break
    return np.exp(log_strength)


def to_rating(strength: np.ndarray) -> np.ndarray:
    """Return strengths on the Arena scale (400 points for 10:1 odds, geometric mean at 1000)."""
    return CENTRE + SCALE * np.log(strength) / np.log(BASE)


@dataclass(frozen=True)
class Rating:
    """One model's Bradley–Terry rating. `rank` is None when the rating is provisional."""

    model: str
    rating: float
    low: float
    high: float
    comparisons: int
    provisional: bool
    rank: int | None = None


def bradley_terry_ratings(
    models: Sequence[str], wins: Mapping[tuple[str, str], int], *, rounds: int = 200, seed: int = 0,
    min_comparisons: int = MIN_COMPARISONS, prior: float = PRIOR,
) -> list[Rating]:
    """Return one rating per model, best first, with bootstrap 95% intervals.

    `wins[(a, b)]` is how often a's candidate was preferred over b's. Ranks follow the Arena rule:
    1 + the number of ranked models whose interval lies entirely above this one's. Models with
    fewer than `min_comparisons` comparisons are provisional: rated, listed last, not ranked.
    """
    if not models:
        return []
    position = {model: i for i, model in enumerate(models)}
    table = np.zeros((len(models), len(models)))
    for (winner, loser), count in wins.items():
        if winner != loser:
            table[position[winner], position[loser]] += count
    point = to_rating(bradley_terry(table, prior=prior))
    low, high = _bootstrap_bounds(table, rounds=rounds, seed=seed, prior=prior, point=point)
    comparisons = (table + table.T).sum(axis=1)
    ratings = [
        Rating(model, float(point[i]), float(low[i]), float(high[i]), int(comparisons[i]),
               provisional=bool(comparisons[i] < min_comparisons))
        for i, model in enumerate(models)
    ]
    return _ranked(ratings)


def _bootstrap_bounds(table, *, rounds, seed, prior, point):
    total = int(table.sum())
    if total == 0 or rounds <= 0:
        return point, point
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(total, (table / total).ravel(), size=rounds)
    samples = to_rating(bradley_terry(cells.reshape(rounds, *table.shape), prior=prior))
    return np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)


def _ranked(ratings: list[Rating]) -> list[Rating]:
    settled = [r for r in ratings if not r.provisional]
    provisional = [r for r in ratings if r.provisional]
    ranked = [
        Rating(**{**r.__dict__, "rank": 1 + sum(other.low > r.high for other in settled)})
        for r in settled
    ]
    ranked.sort(key=lambda r: (r.rank, -r.rating, r.model))
    provisional.sort(key=lambda r: (-r.rating, r.model))
    return ranked + provisional
