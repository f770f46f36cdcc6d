"""Seeded bootstrap confidence intervals over samples.

Each replicate redraws every input set with replacement (same sizes) and recomputes the statistic. Replicates come
from a numpy Generator seeded by the configured bootstrap seed and the row's identity, so intervals are
reproducible. Three interval methods, named in every row's ``ci_method``:

- ``percentile``: [q_(a/2), q_(1-a/2)] of the replicates (kept for paired differences, ``genbench compare``).
- ``debiased-percentile``: for statistics that are biased on a resample with replacement (Fréchet distances,
  Vendi, CMMD, IS: duplicates shrink covariances and diversity), the bootstrap bias estimate
  b = mean(replicates) - estimate is subtracted from both percentile bounds (Efron & Tibshirani 1993, §10.6).
  b goes into the row's ``ci_bias``.
- ``bca``: scipy.stats.bootstrap's bias-corrected and accelerated interval, for means over samples (CLIP Score,
  precision, 3D per-item means), whose jackknife is cheap.

``interval_note`` names any interval that still excludes its own estimate, so no such row goes unexplained.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


def method_label(method: str, n_boot: int, confidence: float, detail: str = "") -> str:
    """The ``ci_method`` text: the method's name first, then its resamples and level (and what was resampled)."""
    if n_boot <= 0:
        return "none (bootstrap disabled)"
    return f"{method}, {n_boot} resamples, {confidence:g}" + (f", {detail}" if detail else "")


def debiased_percentile_interval(reps: np.ndarray, estimate: float,
                                 confidence: float) -> tuple[float, float, float]:
    """(low, high, bias): the percentile interval shifted by the bootstrap bias estimate mean(reps) - estimate."""
    reps = np.asarray(reps, dtype=np.float64)
    if len(reps) == 0:
        return float("nan"), float("nan"), float("nan")
    bias = float(reps.mean() - estimate)
    low, high = percentile_interval(reps, confidence)
    return low - bias, high - bias, bias


def debiased_row(value: float, reps: np.ndarray, confidence: float, n_boot: int,
                 detail: str = "") -> dict[str, Any]:
    """A row's value, debiased-percentile interval, bias estimate (``ci_bias``) and method label."""
    lo, hi, bias = debiased_percentile_interval(reps, value, confidence)
    return dict(value=value, ci_low=lo, ci_high=hi, ci_bias=bias,
                ci_method=method_label("debiased-percentile", n_boot, confidence, detail))


def bca_mean_interval(values: np.ndarray, n_boot: int, confidence: float,
                      rng: np.random.Generator) -> tuple[float, float, str]:
    """(low, high, method): the BCa interval of the mean of ``values`` (scipy.stats.bootstrap), method 'bca'.
    Values equal up to round-off: the interval is their mean (every resample has that mean), method 'bca'. Where
    scipy still cannot form BCa (a degenerate jackknife), the percentile interval of the same replicates, with
    the method 'percentile (bca degenerate)' so that the row says so."""
    v = np.asarray(values, dtype=np.float64)
    if n_boot <= 0 or len(v) == 0:
        return float("nan"), float("nan"), "none"
    if np.ptp(v) <= 1e-12 * max(1.0, float(np.abs(v).max())):
        return float(v.mean()), float(v.mean()), "bca"
    import warnings

    from scipy.stats import bootstrap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate case is handled below, not only warned about
        res = bootstrap((v,), np.mean, n_resamples=n_boot, confidence_level=confidence, method="BCa",
                        vectorized=True, rng=rng)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.isfinite(low) and np.isfinite(high):
        return low, high, "bca"
    return (*percentile_interval(res.bootstrap_distribution, confidence), "percentile (bca degenerate)")


def interval_note(value: float, low: float, high: float, bias: float | None = None) -> str:
    """'' when [low, high] contains ``value`` (or there is no interval), else a note saying why it does not."""
    if not (np.isfinite(low) and np.isfinite(high) and np.isfinite(value)) or low <= value <= high:
        return ""
    side = "above" if low > value else "below"
    why = (f"; the bootstrap bias estimate {bias:+.4g} was removed, the replicates' spread is skewed"
           if bias is not None and np.isfinite(bias) else "")
    return f"interval lies entirely {side} the estimate{why}"


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
