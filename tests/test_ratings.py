"""Leaderboard statistics (ensemble.leaderboard.ratings): pure functions, no database."""
import math
import random

import numpy as np
import pytest

from ensemble.leaderboard.ratings import (
    MIN_COMPARISONS, bradley_terry, bradley_terry_ratings, to_rating, wilson_interval,
)


# --- Wilson interval ---------------------------------------------------------------------------

@pytest.mark.parametrize(("successes", "trials", "low", "high"), [
    # Reference values: Newcombe (1998), "Two-sided confidence intervals for the single proportion",
    # Table I (method 3), and the closed form for 0/n and n/n: n / (n + z²).
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (8, 10, 0.4902, 0.9433),
    (10, 10, 0.7225, 1.0),
])
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    interval = wilson_interval(successes, trials)
    assert interval == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_is_none_without_trials():
    assert wilson_interval(0, 0) is None


def test_wilson_interval_contains_the_rate_and_narrows_with_more_trials():
    small, large = wilson_interval(6, 10), wilson_interval(600, 1000)
    assert small[0] < 0.6 < small[1] and large[0] < 0.6 < large[1]
    assert large[1] - large[0] < (small[1] - small[0]) / 5


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


# --- Bradley–Terry -----------------------------------------------------------------------------

def simulate(strengths: dict[str, float], comparisons: int, seed: int = 7) -> dict[tuple[str, str], int]:
    """Return a win table drawn from the Bradley–Terry model with the given true strengths."""
    rng = random.Random(seed)
    models = sorted(strengths)
    wins: dict[tuple[str, str], int] = {}
    for _ in range(comparisons):
        a, b = rng.sample(models, 2)
        p_a = strengths[a] / (strengths[a] + strengths[b])
        winner, loser = (a, b) if rng.random() < p_a else (b, a)
        wins[winner, loser] = wins.get((winner, loser), 0) + 1
    return wins


TRUE = {"alpha": 8.0, "beta": 4.0, "gamma": 2.0, "delta": 1.0, "epsilon": 0.5}


def test_bradley_terry_recovers_the_order_and_spacing_of_known_strengths():
    ratings = bradley_terry_ratings(sorted(TRUE), simulate(TRUE, 20_000), rounds=100)

    assert [r.model for r in ratings] == ["alpha", "beta", "gamma", "delta", "epsilon"]
    assert [r.rank for r in ratings] == [1, 2, 3, 4, 5]  # intervals do not overlap with this much data
    # Each true step is 2:1 odds = 400·log10(2) ≈ 120.4 rating points.
    steps = [a.rating - b.rating for a, b in zip(ratings, ratings[1:])]
    assert steps == pytest.approx([400 * math.log10(2)] * 4, abs=15)
    for r in ratings:
        true_rating = 1000 + 400 * math.log10(TRUE[r.model] / math.prod(TRUE.values()) ** (1 / 5))
        assert r.low <= true_rating <= r.high or abs(r.rating - true_rating) < 10


def test_bradley_terry_strengths_reproduce_the_win_probabilities():
    table = np.array([[0, 60, 80], [40, 0, 65], [20, 35, 0]], dtype=float)
    strength = bradley_terry(table, prior=0)
    # At the maximum-likelihood fit every model's expected wins equal its observed wins.
    games = table + table.T
    expected = (games * strength[:, None] / (strength[:, None] + strength[None, :])).sum(axis=1)
    assert expected == pytest.approx(table.sum(axis=1), rel=1e-6)
    assert math.prod(strength) == pytest.approx(1.0)


def test_equal_records_give_equal_ratings():
    wins = {("a", "b"): 50, ("b", "a"): 50, ("a", "c"): 50, ("c", "a"): 50, ("b", "c"): 50, ("c", "b"): 50}
    ratings = bradley_terry_ratings(["a", "b", "c"], wins, rounds=50)
    assert [r.rating for r in ratings] == pytest.approx([1000, 1000, 1000])
    assert all(r.rank == 1 for r in ratings)  # nobody is significantly better


def test_a_model_that_never_loses_still_gets_a_finite_rating():
    ratings = bradley_terry_ratings(["a", "b"], {("a", "b"): 40}, rounds=50)
    by_model = {r.model: r for r in ratings}
    assert math.isfinite(by_model["a"].rating) and by_model["a"].rating > by_model["b"].rating


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_more_data():
    few = {r.model: r for r in bradley_terry_ratings(sorted(TRUE), simulate(TRUE, 500), rounds=200)}
    many = {r.model: r for r in bradley_terry_ratings(sorted(TRUE), simulate(TRUE, 50_000), rounds=200)}
    for model in TRUE:
        assert few[model].low <= few[model].rating <= few[model].high
        assert many[model].high - many[model].low < (few[model].high - few[model].low) / 3


def test_bootstrap_is_reproducible_with_a_seed():
    wins = simulate(TRUE, 1000)
    assert bradley_terry_ratings(sorted(TRUE), wins, seed=3) == bradley_terry_ratings(sorted(TRUE), wins, seed=3)


def test_models_with_too_few_comparisons_are_provisional_and_not_ranked():
    wins = simulate({"a": 4.0, "b": 1.0}, 2000)
    wins[("c", "a")] = 3  # c has 3 comparisons only
    ratings = bradley_terry_ratings(["a", "b", "c"], wins, rounds=50)

    assert [r.model for r in ratings][-1] == "c"
    c = ratings[-1]
    assert c.provisional and c.rank is None and c.comparisons == 3 < MIN_COMPARISONS
    assert [r.rank for r in ratings[:2]] == [1, 2] and not any(r.provisional for r in ratings[:2])


def test_no_comparisons_at_all_rates_everyone_equal_and_provisional():
    ratings = bradley_terry_ratings(["a", "b"], {}, rounds=10)
    assert [(r.rating, r.provisional, r.rank) for r in ratings] == [(1000.0, True, None)] * 2


def test_rating_scale_is_arena_like():
    assert to_rating(np.array([10.0, 1.0])) == pytest.approx([1400.0, 1000.0])
