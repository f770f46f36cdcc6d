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
