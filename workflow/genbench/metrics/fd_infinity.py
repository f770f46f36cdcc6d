"""FD∞ (Chong & Forsyth 2020, "Effectively unbiased FID and Inception Score and where to find them").

The Fréchet distance computed from N generated samples has a bias that is, to first order, linear in 1/N. FD∞
evaluates FD_N at ``points`` values of N spaced evenly from ``min_n`` to all generated samples (each N a random
subset without replacement, against the statistics of the full real set, as the paper's code), fits
FD_N = FD∞ + s/N by ordinary least squares and reports the intercept. The paper uses N from 5000 to 50000 in
15 steps. The interval is the OLS t-interval of the intercept (``points`` − 2 degrees of freedom): it covers the
scatter of the subset FDs around the line, not the sampling of the real set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from .fid import MetricInputError, feature_statistics, frechet_distance

if TYPE_CHECKING:
    from .context import CellContext


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


def fid_inf_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``fid_inf`` with ``scoring.fd_inf``'s points and min_n (min_n shrunk, with a note, when the cell has
    fewer generated samples)."""
    fr, fg = ctx.features
    points, min_n = ctx.fd_inf.get("points", 15), ctx.fd_inf.get("min_n", 5000)
    note = ""
    if min_n >= len(fg):
        shrunk = max(2, len(fg) // 5)
        note, min_n = f"min_n shrunk from {min_n} to {shrunk} ({len(fg)} generated samples); ", shrunk
    r = fd_infinity(fr, fg, points=points, min_n=min_n, confidence=ctx.confidence, rng=ctx.rng_for("fid_inf"),
                    real_name=ctx.real_name, gen_name=ctx.gen_name)
    return [dict(metric="fid_inf", value=r["value"], ci_low=r["ci_low"], ci_high=r["ci_high"], n=len(fg),
                 n_real=len(fr), ci_method=f"ols-t, {len(r['ns'])} points, {ctx.confidence:g}",
                 note=f"{note}FD_N = FD_inf + {r['slope']:.4g}/N, N = {r['ns'][0]}..{r['ns'][-1]}")]
