"""Seeded bootstrap confidence intervals over samples.

Each replicate redraws every input set with replacement (same sizes) and recomputes the statistic. The interval
is the percentile interval [q_(a/2), q_(1-a/2)] of the replicates. Replicates come from a numpy Generator seeded
by the configured bootstrap seed and the row's identity, so intervals are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_ci(statistic: Callable[..., float], sizes: Sequence[int], n_boot: int, confidence: float,
                 rng: np.random.Generator) -> tuple[float, float, np.ndarray]:
    """``statistic(*index_arrays)`` over ``n_boot`` resamples; returns (low, high, replicates)."""
    if n_boot <= 0:
        return float("nan"), float("nan"), np.empty(0)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        idx = [rng.integers(0, n, n) for n in sizes]
        reps[b] = statistic(*idx)
    alpha = 1.0 - confidence
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), reps


def paired_difference(statistic: Callable[[np.ndarray, np.ndarray], float], n_items: int, n_real: int,
                      n_boot: int, confidence: float, rng: np.random.Generator) -> dict[str, float]:
    """Bootstrap of ``statistic(item_idx, real_idx)`` = metric(cell A) - metric(cell B), where both cells were
    generated for the same items: one item resample is applied to both cells (that is the pairing) and one resample
    of the real set to both comparisons. Returns the difference on the full sets, its percentile CI and the
    two-sided bootstrap p-value (twice the smaller fraction of replicates on either side of zero)."""
    full = statistic(np.arange(n_items), np.arange(n_real))
    if n_boot <= 0:
        return {"diff": float(full), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    reps = np.array([statistic(rng.integers(0, n_items, n_items), rng.integers(0, n_real, n_real))
                     for _ in range(n_boot)])
    alpha = 1.0 - confidence
    low, high = np.quantile(reps, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0)))
    return {"diff": float(full), "ci_low": float(low), "ci_high": float(high), "p_value": float(p)}
