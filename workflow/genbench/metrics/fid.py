"""Fréchet distance between Gaussians fitted to two feature sets (FID when the features are Inception's pool3, sFID
when they are its spatial ``mixed_6/conv`` features).

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2)).

tr((S1 S2)^(1/2)) is the sum of the square roots of the eigenvalues of S1 S2, which equal those of the
symmetric PSD matrix S1^(1/2) S2 S1^(1/2). Two symmetric eigendecompositions (numpy ``eigh``) give it without
scipy's general ``sqrtm`` and without the complex eigenvalues of the non-symmetric product; tiny negative
eigenvalues from round-off are clipped to 0. Statistics are float64 (np.cov with ddof=1, as the references).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import GenbenchError
from .bootstrap import resamples

if TYPE_CHECKING:
    from .context import CellContext


class MetricInputError(GenbenchError, ValueError):
    pass


def check_features(features: np.ndarray, set_name: str, min_samples: int = 2) -> np.ndarray:
    f = np.asarray(features)
    if f.ndim != 2:
        raise MetricInputError(f"feature set '{set_name}': expected (N, D), got shape {f.shape}")
    if len(f) < min_samples:
        raise MetricInputError(f"feature set '{set_name}': {len(f)} sample(s), at least {min_samples} needed")
    if not np.isfinite(f).all():
        raise MetricInputError(f"feature set '{set_name}': contains NaN or inf")
    return f.astype(np.float64, copy=False)


def unit_rows(features: np.ndarray, set_name: str = "features") -> np.ndarray:
    """The rows of a feature/embedding set scaled to unit length (float64); a zero row has no direction."""
    x = check_features(features, set_name, min_samples=1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise MetricInputError(f"feature set '{set_name}': {int((norms == 0).sum())} vector(s) have zero norm "
                               "(no direction)")
    return x / norms


def feature_statistics(features: np.ndarray, set_name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    f = check_features(features, set_name)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr((sigma1 sigma2)^(1/2)) for symmetric PSD matrices, via eigh."""
    s1 = 0.5 * (sigma1 + sigma1.T)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root1 @ sigma2 @ root1
    ev = np.linalg.eigvalsh(0.5 * (m + m.T))
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise MetricInputError(f"Fréchet distance: mismatched statistics {mu1.shape}, {sigma1.shape}, "
                               f"{mu2.shape}, {sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise MetricInputError(f"Fréchet distance: {name} contains NaN or inf")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt_product(sigma1, sigma2))
    return max(value, 0.0) if value > -1e-9 * max(1.0, np.trace(sigma1) + np.trace(sigma2)) else value


def frechet_distance_features(real: np.ndarray, gen: np.ndarray, real_name: str = "real",
                              gen_name: str = "generated") -> float:
    mu1, s1 = feature_statistics(real, real_name)
    mu2, s2 = feature_statistics(gen, gen_name)
    return frechet_distance(mu1, s1, mu2, s2)


def fd_row(ctx: CellContext, fr: np.ndarray, fg: np.ndarray, metric: str, names: tuple[str, str],
           ) -> tuple[dict[str, Any], np.ndarray, list]:
    """A Fréchet-distance row with its debiased bootstrap CI (resamples from ``ctx.rng_for(metric)``), plus the
    replicates and their index sets (which the scaled metrics reuse)."""
    mu_r, s_r = feature_statistics(fr, names[0])
    mu_g, s_g = feature_statistics(fg, names[1])
    idx = resamples(ctx.rng_for(metric), (len(fr), len(fg)), ctx.n_boot)
    reps = np.array([frechet_distance(fr[ir].mean(0), np.cov(fr[ir], rowvar=False), fg[ig].mean(0),
                                      np.cov(fg[ig], rowvar=False)) for ir, ig in idx])
    row = dict(metric=metric, n=len(fg), n_real=len(fr),
               **ctx.debiased(frechet_distance(mu_r, s_r, mu_g, s_g), reps))
    return row, reps, idx


def fd_row_fixed_real(ctx: CellContext, mu_r: np.ndarray, s_r: np.ndarray, fg: np.ndarray, metric: str,
                      n_real: int, source: str, gen_name: str) -> tuple[dict[str, Any], np.ndarray, list]:
    """A Fréchet-distance row against fixed real statistics (precomputed ``mu_r`` / ``s_r``): the generated set alone
    is resampled, so the interval covers the generated side's sampling variation only (the real side's cannot be
    bootstrapped without its features); its replicates and index sets (the real index is every item: ``slice``)."""
    mu_g, s_g = feature_statistics(fg, gen_name)
    if mu_r.shape != mu_g.shape:
        raise MetricInputError(f"{gen_name}: {len(mu_g)}-d features against {len(mu_r)}-d precomputed statistics "
                               f"({source}); score with the extractor the statistics were computed with")
    rng = ctx.rng_for(metric)
    gen_idx = [rng.integers(0, len(fg), len(fg)) for _ in range(ctx.n_boot)]
    reps = np.array([frechet_distance(mu_r, s_r, fg[ig].mean(0), np.cov(fg[ig], rowvar=False)) for ig in gen_idx])
    row = dict(metric=metric, n=len(fg), n_real=n_real,
               **ctx.debiased(frechet_distance(mu_r, s_r, mu_g, s_g), reps,
                              "generated resampled only; real side fixed (precomputed statistics)"),
               note=f"against {source}, not re-extracted")
    return row, reps, [(slice(None), ig) for ig in gen_idx]


def fid_bootstrap(ctx: CellContext) -> tuple[dict[str, Any], np.ndarray, list]:
    """The cell's FID row, its bootstrap replicates and their (real, generated) index sets, computed once per cell
    (the fid, csfid and psfid rows share them); against the real set's precomputed statistics where it has them."""
    st = ctx.real_statistics
    if st is not None:
        return ctx.shared("fid", lambda: fd_row_fixed_real(ctx, st.mu, st.sigma, ctx.gen["features"], "fid", st.n,
                                                           st.source, ctx.gen_name))
    return ctx.shared("fid", lambda: fd_row(ctx, *ctx.features, "fid", ctx.names))


def fid_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``fid``: FD on the scoring extractor's features."""
    return [dict(fid_bootstrap(ctx)[0])]


def fd_dinov2_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``fd_dinov2``: FD on the DINOv2 features (``scoring.dinov2``)."""
    dr, dg, extractor, names = ctx.dinov2_features()
    return [dict(fd_row(ctx, dr, dg, "fd_dinov2", names)[0], extractor=extractor)]


def sfid_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Row ``sfid``: FD on the scoring extractor's spatial features (``spatial``: Inception's ``mixed_6/conv``,
    first 7 channels, 17 x 17 x 7; the mini-world classifier's stand-in layer), with FID's debiased bootstrap."""
    st = ctx.real_statistics
    if st is not None and st.mu_s is not None:  # an ADM batch scored by its statistics: against its mu_s / sigma_s
        fg = ctx.gen.get("spatial")
        if fg is None:
            ctx.spatial_features()  # raises, naming the feature set and the rule to rerun
        row = fd_row_fixed_real(ctx, st.mu_s, st.sigma_s, fg, "sfid", st.n, st.source.replace("mu/sigma",
                                                                                                  "mu_s/sigma_s"),
                                f"{ctx.gen_name} (spatial)")[0]
        return [dict(row, note=f"{len(st.mu_s)}-d spatial features; {row['note']}")]
    fr, fg = ctx.spatial_features()
    names = (f"{ctx.real_name} (spatial)", f"{ctx.gen_name} (spatial)")
    d = fr.shape[1]
    note = f"{d}-d spatial features" + (f"; {min(len(fr), len(fg))} samples <= {d} dimensions: singular covariances"
                                        if min(len(fr), len(fg)) <= d else "")
    if st is not None:
        note += "; real side re-extracted from the batch's images (it has no precomputed mu_s/sigma_s)"
    return [dict(fd_row(ctx, fr, fg, "sfid", names)[0], note=note)]
