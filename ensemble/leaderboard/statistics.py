"""Medians from counted values, and the rollup's log-bucket latency histogram: pure functions."""
from __future__ import annotations


# Latency histogram of the rollup: bucket b holds latencies in [2^(b/16), 2^((b+1)/16)) ms, 4.4%
# wide (0 ms counts as 1 ms). A bucket is read as its geometric middle, so a median taken from
# the rollup is within ±2.2% of the exact one; live rows keep their exact latency.
HISTOGRAM_STEPS = 16
HISTOGRAM_PRECISION = 2 ** (1 / (2 * HISTOGRAM_STEPS)) - 1  # 0.0219: the largest relative error


def latency_bucket_value(bucket: int) -> float:
    """Return the latency (ms) a histogram bucket stands for: its geometric middle."""
    return 2 ** ((bucket + 0.5) / HISTOGRAM_STEPS)


def weighted_median(counts: dict[float, int]) -> float | None:
    """Return the median of values given as {value: count}: the mean of the middle two for an even count."""
    total = sum(counts.values())
    if not total:
        return None
    low, high = (total - 1) // 2, total // 2  # positions (from 0) of the middle one or two
    middle, seen = [], 0
    for value in sorted(counts):
        seen += counts[value]
        while len(middle) < 2 and (high if middle else low) < seen:
            middle.append(value)
        if len(middle) == 2:
            return (middle[0] + middle[1]) / 2
    raise AssertionError("unreachable: the middle lies within the total")
