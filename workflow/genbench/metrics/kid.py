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

import numpy as np

from .fid import MetricInputError, check_features


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
