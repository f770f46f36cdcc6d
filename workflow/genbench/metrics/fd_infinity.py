"""FD∞ (Chong & Forsyth 2020, "Effectively unbiased FID and Inception Score and where to find them").

The Fréchet distance computed from N generated samples has a bias that is, to first order, linear in 1/N. FD∞
evaluates FD_N at ``points`` values of N spaced evenly from ``min_n`` to all generated samples (each N a random
subset without replacement, against the statistics of the full real set, as the paper's code), fits
FD_N = FD∞ + s/N by ordinary least squares and reports the intercept. The paper uses N from 5000 to 50000 in
15 steps. The interval is the OLS t-interval of the intercept (``points`` − 2 degrees of freedom): it covers the
scatter of the subset FDs around the line, not the sampling of the real set.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .fid import MetricInputError, feature_statistics, frechet_distance


def fd_infinity(real: np.ndarray, gen: np.ndarray, *, points: int = 15, min_n: int = 5000, confidence: float = 0.95,
                rng: np.random.Generator, real_name: str = "real",
                gen_name: str = "generated") -> dict[str, object]:
    """Returns value (FD∞), ci_low, ci_high, slope, the Ns and their FDs."""
    if points < 3:
        raise MetricInputError(f"FD-infinity: needs at least 3 points for a line with an interval, got {points}")
    mu_r, s_r = feature_statistics(real, real_name)
    g = np.asarray(gen)
    n_gen = len(g)
    if not 2 <= min_n < n_gen:
        raise MetricInputError(f"FD-infinity: '{gen_name}' has {n_gen} samples; min_n must lie in [2, {n_gen}) "
                               f"(got {min_n}); lower scoring.fd_inf.min_n")
    ns = np.unique(np.linspace(min_n, n_gen, points).astype(np.int64))
    if len(ns) < 3:
        raise MetricInputError(f"FD-infinity: only {len(ns)} distinct N between {min_n} and {n_gen}; "
                               "lower scoring.fd_inf.min_n")
    fds = []
    for n in ns:
        sub = g[rng.permutation(n_gen)[:n]]
        mu_g, s_g = feature_statistics(sub, gen_name)
        fds.append(frechet_distance(mu_r, s_r, mu_g, s_g))
    fds = np.asarray(fds)
    fit = stats.linregress(1.0 / ns, fds)
    half = stats.t.ppf(0.5 + confidence / 2, len(ns) - 2) * fit.intercept_stderr
    return {"value": float(fit.intercept), "ci_low": float(fit.intercept - half),
            "ci_high": float(fit.intercept + half), "slope": float(fit.slope), "ns": ns, "fds": fds}
