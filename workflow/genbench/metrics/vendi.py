"""Vendi score (Friedman & Dieng 2023) of a feature set with the cosine-similarity kernel.

With the rows of X (n × d) scaled to unit length and K = X Xᵀ (K_ii = 1), VS = exp(−Σ_i λ_i log λ_i) over the
eigenvalues λ of K/n (q = 1, Shannon). The non-zero eigenvalues of X Xᵀ/n equal those of Xᵀ X/n (d × d), so the
score costs one d × d Gram matrix and one symmetric eigendecomposition (``vendi_score.vendi.score_dual``'s route),
never an n × n matrix. VS lies in [1, min(n, d)]: the effective number of distinct samples. A resample with
replacement repeats rows, so ``vendi_weighted`` takes the repeat counts w (Xᵀ diag(w) X / Σw), which is what a
bootstrap replicate needs without copying rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .bootstrap import resamples
from .fid import unit_rows

if TYPE_CHECKING:
    from .context import CellContext


def _from_gram(gram: np.ndarray) -> float:
    w = np.linalg.eigvalsh(0.5 * (gram + gram.T))
    w = w[w > 0]
    w = w / w.sum()  # trace is 1 up to round-off
    return float(np.exp(-(w * np.log(w)).sum()))


def vendi_weighted(unit: np.ndarray, weights: np.ndarray) -> float:
    """Vendi score of the multiset with row i of ``unit`` (unit-length rows) repeated weights[i] times."""
    w = np.asarray(weights, dtype=np.float64)
    return _from_gram((np.ascontiguousarray(unit.T) * w) @ unit / w.sum())  # a C-ordered left factor: 4x faster


def vendi_score(features: np.ndarray, set_name: str = "features") -> float:
    x = unit_rows(features, set_name)
    return _from_gram(x.T @ x / len(x))



def vendi_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``vendi``: the generated set's Vendi score with a debiased bootstrap interval (the real set's score in
    the note)."""
    fr, fg = ctx.features
    real_name, gen_name = ctx.names
    unit = unit_rows(fg, gen_name)
    reps = np.array([vendi_weighted(unit, np.bincount(i, minlength=len(unit)))
                     for (i,) in resamples(ctx.rng_for("vendi"), (len(unit),), ctx.n_boot)])
    value = vendi_score(fg, gen_name)
    return [dict(metric="vendi", n=len(fg), n_real=0, **ctx.debiased(value, reps),
                 note=f"cosine kernel on the features; real set: {vendi_score(fr, real_name):.4g}")]
