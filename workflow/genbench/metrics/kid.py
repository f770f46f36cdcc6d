"""Kernel Inception Distance (Bińkowski et al. 2018) with the protocol shared by torch-fidelity, torchmetrics,
clean-fid and dgm-eval.

For ``subsets`` rounds, draw ``m`` real and ``m`` generated samples without replacement (numpy
``RandomState(rng_seed)``, real first, as torch-fidelity), and compute the unbiased MMD² with the cubic
polynomial kernel k(x, y) = (x·y / d + 1)³:

    MMD² = [Σ_{i≠j} k(x_i, x_j) + Σ_{i≠j} k(y_i, y_j)] / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / m²

KID is the mean over rounds; the spread reported is the population std over rounds (as torch-fidelity).
Below ``m`` samples torch-fidelity refuses; genbench either refuses too (``small_sample='error'``) or shrinks
``m`` to the smaller set's size (``'shrink'``) and says so in the row's ``note``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .fid import MetricInputError, check_features

if TYPE_CHECKING:
    from .context import CellContext


def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + coef0) ** degree
    kyy = (y @ y.T / d + coef0) ** degree
    kxy = (x @ y.T / d + coef0) ** degree
    m = len(x)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(real: np.ndarray, gen: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                              small_sample: str = "error", rng_seed: int = 2020, real_name: str = "real",
                              gen_name: str = "generated") -> tuple[float, float, int]:
    """Return (KID mean, population std over subsets, subset size used)."""
    x = check_features(real, real_name)
    y = check_features(gen, gen_name)
    if x.shape[1] != y.shape[1]:
        raise MetricInputError(f"KID: feature sizes differ ({real_name}: {x.shape[1]}, {gen_name}: {y.shape[1]})")
    m = subset_size
    if min(len(x), len(y)) < m:
        if small_sample != "shrink":
            raise MetricInputError(
                f"KID needs at least {m} samples per set ({real_name}: {len(x)}, {gen_name}: {len(y)}); set "
                f"scoring.kid.subset_size lower or scoring.kid.small_sample: shrink")
        m = min(len(x), len(y))
    rng = np.random.RandomState(rng_seed)
    values = np.empty(subsets)
    for i in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), m, replace=False)]
        values[i] = polynomial_mmd2_unbiased(xs, ys)
    return float(values.mean()), float(values.std()), m


def kid_protocol_rows(ctx: CellContext, fr: np.ndarray, fg: np.ndarray, metric: str, names: tuple[str, str],
                      **extra: Any) -> list[dict[str, Any]]:
    """The KID protocol's mean and std rows (``metric`` and ``metric_std``) with the settings of ``scoring.kid``,
    the subset size in the note."""
    kid = ctx.kid
    subsets, requested = kid.get("subsets", 100), kid.get("subset_size", 1000)
    mean, std, m = kernel_inception_distance(fr, fg, subsets=subsets, subset_size=requested,
                                             small_sample=kid.get("small_sample", "error"), real_name=names[0],
                                             gen_name=names[1])
    note = f"{subsets} subsets of {m}" + (f" (shrunk from {requested})" if m < requested else "")
    sizes = dict(n=len(fg), n_real=len(fr), ci_low=np.nan, ci_high=np.nan, ci_method="none", **extra)
    whole = m == len(fr) == len(fg)  # every subset is a permutation of both whole sets: all rounds are equal
    if whole:
        std_row = dict(metric=f"{metric}_std", value=np.nan, note=(
            f"{note}: every subset is the whole set, so the std over subsets is 0 by construction and says nothing "
            f"about sampling; not shown"), **sizes)
    else:
        std_row = dict(metric=f"{metric}_std", value=std, note=(
            f"{note}: population std of the {subsets} subset values (subset-to-subset spread, not a CI of "
            f"{metric})"), **sizes)
    return [dict(metric=metric, value=mean, note=note, **sizes),
            std_row]


def kid_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``kid`` and ``kid_std`` on the scoring extractor's features."""
    return kid_protocol_rows(ctx, *ctx.features, "kid", ctx.names)


def kd_dinov2_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``kd_dinov2`` and ``kd_dinov2_std``: the KID protocol on the DINOv2 features (``scoring.dinov2``)."""
    dr, dg, extractor, names = ctx.dinov2_features()
    return kid_protocol_rows(ctx, dr, dg, "kd_dinov2", names, extractor=extractor)
