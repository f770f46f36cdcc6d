"""Precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020) from k-NN balls.

With real features X = {x_i} (n), generated Y = {y_j} (m), NND_k(x) the distance from x to its k-th nearest
neighbour in its own set (itself excluded) and d the Euclidean distance:

    precision = 1/m Σ_j 1[∃ i: d(y_j, x_i) ≤ NND_k(x_i)]
    recall    = 1/n Σ_i 1[∃ j: d(x_i, y_j) ≤ NND_k(y_j)]
    density   = 1/(k m) Σ_j Σ_i 1[d(y_j, x_i) < NND_k(x_i)]
    coverage  = 1/n Σ_i 1[min_j d(x_i, y_j) < NND_k(x_i)]

(≤ for precision/recall as Kynkäänniemi's code and torch-fidelity; < for density/coverage as Naeem's ``prdc``.)
Everything is computed on squared distances (‖a‖² + ‖b‖² − 2a·b in float64, clipped at 0), in row blocks of a
bounded size, in one pass over the real-generated distances: no n × m matrix is held at 50k samples.
Each metric is a mean of per-sample values; ``per_sample_prdc`` returns them so that intervals can resample
them (the other set's k-NN balls held fixed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .bootstrap import bca_mean_interval, method_label
from .fid import MetricInputError, check_features

if TYPE_CHECKING:
    from .context import CellContext

BLOCK_ENTRIES = 1 << 24  # float64 entries per distance block (128 MiB)


def _sq_dists(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    d = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0, out=d)


def _rows(n_rows: int, n_cols: int) -> int:
    return max(1, BLOCK_ENTRIES // max(n_cols, 1))


def knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each row of ``x`` to its k-th nearest neighbour in ``x`` (itself excluded)."""
    if len(x) <= k:
        raise MetricInputError(f"k-NN radii with k={k} need more than {k} samples, got {len(x)}")
    sq = np.einsum("ij,ij->i", x, x)
    out = np.empty(len(x))
    step = _rows(len(x), len(x))
    for s in range(0, len(x), step):
        d = _sq_dists(x[s:s + step], x, sq[s:s + step], sq)
        d[np.arange(len(d)), np.arange(s, s + len(d))] = -1.0  # the sample itself is its 0-th neighbour
        out[s:s + step] = np.partition(d, k, axis=1)[:, k]
    return out


def per_sample_prdc(real: np.ndarray, gen: np.ndarray, k: int = 3, real_name: str = "real",
                    gen_name: str = "generated") -> dict[str, np.ndarray]:
    """Per generated sample: in-manifold (precision) and ball count / k (density); per real sample: covered by
    the generated manifold (recall) and by its nearest generated sample (coverage). Means are the metrics."""
    x, y = check_features(real, real_name), check_features(gen, gen_name)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"precision/recall: feature sizes differ ({real_name}: {x.shape[1]}, "
                               f"{gen_name}: {y.shape[1]})")
    if k < 1:
        raise MetricInputError(f"precision/recall: k must be >= 1, got {k}")
    rad_x, rad_y = knn_sq_radii(x, k), knn_sq_radii(y, k)
    x_sq, y_sq = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    precision, density = np.empty(len(y)), np.empty(len(y))
    recall = np.zeros(len(x), dtype=bool)
    nearest = np.full(len(x), np.inf)
    step = _rows(len(y), len(x))
    for s in range(0, len(y), step):
        d = _sq_dists(y[s:s + step], x, y_sq[s:s + step], x_sq)  # generated block x all real
        precision[s:s + step] = (d <= rad_x[None, :]).any(axis=1)
        density[s:s + step] = (d < rad_x[None, :]).sum(axis=1) / k
        recall |= (d <= rad_y[s:s + step, None]).any(axis=0)
        np.minimum(nearest, d.min(axis=0), out=nearest)
    return {"precision": precision, "recall": recall.astype(np.float64), "density": density,
            "coverage": (nearest < rad_x).astype(np.float64)}


def prdc(real: np.ndarray, gen: np.ndarray, k: int = 3) -> dict[str, float]:
    return {name: float(v.mean()) for name, v in per_sample_prdc(real, gen, k).items()}


def prdc_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``precision``, ``recall``, ``density``, ``coverage`` (those requested) from one pass of
    :func:`per_sample_prdc` with k = ``scoring.prdc.k``; BCa interval of each mean over its samples, the other
    set's k-NN balls held fixed."""
    fr, fg = ctx.features
    n_boot, conf = ctx.n_boot, ctx.confidence
    sizes = dict(n=len(fg), n_real=len(fr))
    per = per_sample_prdc(fr, fg, ctx.prdc_k, *ctx.names)
    rows = []
    for m in [m for m in ("precision", "recall", "density", "coverage") if m in metrics]:
        over = "generated" if m in ("precision", "density") else "real"
        other = "real" if over == "generated" else "generated"
        lo, hi, how = bca_mean_interval(per[m], n_boot, conf, ctx.rng_for(m))
        rows.append(dict(metric=m, value=float(per[m].mean()), ci_low=lo, ci_high=hi, **sizes,
                         ci_method=method_label(how, n_boot, conf, f"{over} samples, {other} k-NN balls fixed"),
                         note=f"k = {ctx.prdc_k}"))
    return rows
