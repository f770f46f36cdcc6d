"""CMMD (Jayasumana et al. 2024): MMD between CLIP image embeddings with a Gaussian RBF kernel.

Embeddings are scaled to unit length (as CMMD's embedding step), k(a, b) = exp(−‖a − b‖² / (2σ²)) with σ = 10, and

    CMMD = 1000 · [ mean_{i,i'} k(x_i, x_i') + mean_{j,j'} k(y_j, y_j') − 2 mean_{i,j} k(x_i, y_j) ]

the minimum-variance (biased, V-statistic) estimator of MMD² that the paper's code uses (all pairs, diagonal
included), scaled by 1000. The kernel sums are accumulated in row blocks, so 50k embeddings never need a 50k × 50k
matrix. ``cmmd_bootstrap`` evaluates B bootstrap replicates in the same pass: a replicate with repeat counts
c_x, c_y is the weighted V-statistic c_xᵀ K_xx c_x / n² + c_yᵀ K_yy c_y / m² − 2 c_xᵀ K_xy c_y / (n m), so each
kernel block is multiplied by the count matrix instead of being recomputed per replicate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .bootstrap import resamples
from .fid import MetricInputError, unit_rows

if TYPE_CHECKING:
    from .context import CellContext

SIGMA = 10.0
SCALE = 1000.0
BLOCK_ENTRIES = 1 << 23


def _weighted_kernel_sum(a: np.ndarray, b: np.ndarray, wa: np.ndarray, wb: np.ndarray, sigma: float) -> np.ndarray:
    """Σ_ij wa[i, r] k(a_i, b_j) wb[j, r] for every column r of the weight matrices (shape (B,))."""
    gamma = 1.0 / (2.0 * sigma * sigma)
    a_sq, b_sq = np.einsum("ij,ij->i", a, a), np.einsum("ij,ij->i", b, b)
    total = np.zeros(wa.shape[1])
    step = max(1, BLOCK_ENTRIES // max(len(b), 1))
    for s in range(0, len(a), step):
        d = a_sq[s:s + step, None] + b_sq[None, :] - 2.0 * (a[s:s + step] @ b.T)
        k = np.exp(-gamma * np.maximum(d, 0.0))
        total += np.einsum("ir,ir->r", wa[s:s + step], k @ wb)
    return total


def cmmd_bootstrap(real: np.ndarray, gen: np.ndarray, resample_idx: list, sigma: float = SIGMA,
                   scale: float = SCALE, real_name: str = "real",
                   gen_name: str = "generated") -> tuple[float, np.ndarray]:
    """(CMMD of the full sets, CMMD of each resample); ``resample_idx`` holds (real_idx, gen_idx) pairs."""
    x, y = unit_rows(real, real_name), unit_rows(gen, gen_name)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"CMMD: embedding sizes differ ({real_name}: {x.shape[1]}, {gen_name}: "
                               f"{y.shape[1]})")
    n, m = len(x), len(y)
    cx = np.column_stack([np.ones(n)] + [np.bincount(ir, minlength=n) for ir, _ in resample_idx])
    cy = np.column_stack([np.ones(m)] + [np.bincount(ig, minlength=m) for _, ig in resample_idx])
    values = scale * (_weighted_kernel_sum(x, x, cx, cx, sigma) / n ** 2
                      + _weighted_kernel_sum(y, y, cy, cy, sigma) / m ** 2
                      - 2.0 * _weighted_kernel_sum(x, y, cx, cy, sigma) / (n * m))
    return float(values[0]), values[1:]


def cmmd(real: np.ndarray, gen: np.ndarray, sigma: float = SIGMA, scale: float = SCALE) -> float:
    return cmmd_bootstrap(real, gen, [], sigma, scale)[0]


def cmmd_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``cmmd`` on the image embeddings of the ``clip`` embedder, with a debiased bootstrap interval."""
    real_name, gen_name = ctx.names
    if "clip" not in ctx.text_image:
        raise MetricInputError(f"{gen_name}: 'cmmd' needs the clip embeddings (scoring.text_image.clip)")
    er, eg = ctx.text_image["clip"][0]["image_emb"], ctx.text_image["clip"][1]["image_emb"]
    idx = resamples(ctx.rng_for("cmmd"), (len(er), len(eg)), ctx.n_boot)
    value, reps = cmmd_bootstrap(er, eg, idx, real_name=real_name, gen_name=gen_name)
    return [dict(metric="cmmd", n=len(eg), n_real=len(er), **ctx.debiased(value, reps),
                 extractor=ctx.embedder("clip"), note="RBF kernel, sigma 10, scale 1000, unit-length image embeddings")]
