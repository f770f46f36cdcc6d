"""Inception Score from classifier logits, with torch-fidelity's protocol.

IS = exp(E_x KL(p(y|x) || p(y))), computed in float64 on ``splits`` chunks of the samples after a permutation
by ``numpy.random.RandomState(rng_seed)`` (2020 in torch-fidelity); chunk i is rows [i*N//splits,
(i+1)*N//splits). Reported: the mean over chunks and the population standard deviation (ddof=0, as
torch-fidelity; torchmetrics reports the sample std, ddof=1, over an unseeded split).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import log_softmax

from .bootstrap import resamples
from .fid import MetricInputError, check_features

if TYPE_CHECKING:
    from .context import CellContext


def inception_score(logits: np.ndarray, splits: int = 10, shuffle: bool = True, rng_seed: int = 2020,
                    set_name: str = "generated") -> tuple[float, float]:
    x = check_features(logits, set_name, min_samples=splits)
    if splits < 1:
        raise MetricInputError(f"inception score: splits must be >= 1, got {splits}")
    if shuffle:
        x = x[np.random.RandomState(rng_seed).permutation(len(x))]
    log_p = log_softmax(x, axis=1)
    p = np.exp(log_p)
    n = len(x)
    scores = []
    for i in range(splits):
        lo, hi = (i * n) // splits, ((i + 1) * n) // splits
        p_c, log_p_c = p[lo:hi], log_p[lo:hi]
        log_q = np.log(p_c.mean(axis=0, keepdims=True))
        kl = (p_c * (log_p_c - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def is_bootstrap(ctx: CellContext) -> tuple[float, float, np.ndarray, list]:
    """The cell's IS, its std over splits, its bootstrap replicates and their index sets (over the generated
    samples), computed once per cell (the is, csis and psis rows share them)."""
    def compute() -> tuple[float, float, np.ndarray, list]:
        logits = ctx.gen.get("logits")
        if logits is None:
            raise MetricInputError(f"{ctx.gen_name}: the extractor gives no logits, so IS cannot be computed")
        value, std = inception_score(logits, splits=ctx.is_splits, set_name=ctx.gen_name)
        idx = resamples(ctx.rng_for("is"), (len(logits),), ctx.n_boot)
        reps = np.array([inception_score(logits[i], splits=ctx.is_splits, set_name=ctx.gen_name)[0]
                         for (i,) in idx])
        return value, std, reps, idx

    return ctx.shared("is", compute)


def is_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``is`` and its companion ``is_std`` (the spread over splits, not an interval)."""
    value, std, reps, _ = is_bootstrap(ctx)
    n = len(ctx.gen["logits"])
    return [dict(metric="is", n=n, n_real=0, **ctx.debiased(value, reps)),
            dict(metric="is_std", value=std, ci_low=np.nan, ci_high=np.nan, n=n, n_real=0, ci_method="none",
                 note=f"population std over {ctx.is_splits} splits (not a CI of is)")]
