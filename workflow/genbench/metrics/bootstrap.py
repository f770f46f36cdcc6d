"""Seeded bootstrap confidence intervals over samples.

Each replicate redraws every input set with replacement (same sizes) and recomputes the statistic. The interval
is the percentile interval [q_(a/2), q_(1-a/2)] of the replicates. Replicates come from a numpy Generator seeded
by the configured bootstrap seed and the row's identity, so intervals are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def resamples(rng: np.random.Generator, sizes: Sequence[int], n_boot: int) -> list[list[np.ndarray]]:
    """``n_boot`` index sets, one array of ``n`` draws with replacement per input size (in this order, so that
    rows computed from the same seed share their resamples)."""
    return [[rng.integers(0, n, n) for n in sizes] for _ in range(n_boot)]


def percentile_interval(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    if len(reps) == 0:
        return float("nan"), float("nan")
    alpha = 1.0 - confidence
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(statistic: Callable[..., float], sizes: Sequence[int], n_boot: int, confidence: float,
                 rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """``statistic(*index_arrays)`` over ``n_boot`` resamples; returns (low, high, replicates)."""
    reps = np.array([statistic(*idx) for idx in resamples(rng, sizes, max(n_boot, 0))], dtype=np.float64)
    return (*percentile_interval(reps, confidence), reps)


def paired_difference(statistic: Callable[[np.ndarray, np.ndarray], float], n_items: int, n_real: int,
                      n_boot: int, confidence: float, rng: np.random.Generator) -> dict[str, float]:
    """Bootstrap of ``statistic(item_idx, real_idx)`` = metric(cell A) - metric(cell B), where both cells were
    generated for the same items: one item resample is applied to both cells (that is the pairing) and one resample
    of the real set to both comparisons. Returns the difference on the full sets, its percentile CI and the
    two-sided bootstrap p-value (twice the smaller fraction of replicates on either side of zero)."""
    full = statistic(np.arange(n_items), np.arange(n_real))
    if n_boot <= 0:
        return {"diff": float(full), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    reps = np.array([statistic(i, r) for i, r in resamples(rng, (n_items, n_real), n_boot)])
    low, high = percentile_interval(reps, confidence)
    p = min(1.0, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0)))
    return {"diff": float(full), "ci_low": float(low), "ci_high": float(high), "p_value": float(p)}
