"""Metric validation on known answers (``results/tables/metric_validation.parquet``).

The mini-world knows its ground truth, so a controlled degradation of real images with increasing strength has a
known ordering: level 0 (the real images) is best, each further level worse. The real validation set is split in
two halves (within each class, items alternate between the reference "real" half and the "generated" half that is
degraded), so level 0 is a fresh sample of the same distribution, not the reference itself. Degradations (levels in
``DEGRADATIONS``):

- ``blur``: Gaussian blur with standard deviation sigma (pixels);
- ``jpeg``: JPEG re-encoding at decreasing quality;
- ``saturation``: over-saturation as strong guidance produces it (PIL colour enhancement by a factor);
- ``mode_dropping``: the images of the first k classes are replaced by images of the remaining classes (seeded
  draws from the same half), so k classes are missing and the set size is unchanged;
- ``label_noise``: a fraction of the images is replaced by an image of another class while the item keeps its
  label (the set is conditioned on labels, so its images mismatch their conditioning — in the mini-world the
  caption is the class name, so this is also the caption/image mismatch).

Each metric is oriented so that larger = worse (FID, KID as they are; IS, precision, recall, density, coverage and
label accuracy negated) and Kendall's tau between the level and that value is computed (tau = 1: the metric ranks
every level correctly). Bootstrap: B resamples of the degraded half's items (the same resample at every level:
the levels are paired) and of the reference half; ``tau_ci_low``/``tau_ci_high`` are the percentile interval of
tau over the replicates and ``frac_correct`` the fraction of replicates with tau = 1. Features are extracted once
per (degradation, level); the resamples only index them.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..seeding import derive_seed
from .bootstrap import method_label
from .fid import frechet_distance
from .inception_score import inception_score
from .kid import polynomial_mmd2_unbiased
from .prdc import prdc

DEGRADATIONS: dict[str, list[float]] = {
    "blur": [0.0, 0.5, 1.0, 2.0],
    "jpeg": [100.0, 50.0, 20.0, 5.0],
    "saturation": [1.0, 1.6, 2.5, 4.0],
    "mode_dropping": [0.0, 1.0, 2.0, 3.0],
    "label_noise": [0.0, 0.25, 0.5, 0.75],
}
# metric -> sign making larger = worse
ORIENTATION = {"fid": 1.0, "kid": 1.0, "is": -1.0, "precision": -1.0, "recall": -1.0, "density": -1.0,
               "coverage": -1.0, "label_accuracy": -1.0}


def _blur(images: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return images
    from scipy.ndimage import gaussian_filter

    out = gaussian_filter(images.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _pil_each(images: np.ndarray, fn: Callable) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(fn(Image.fromarray(im))) for im in images]).astype(np.uint8)


def _jpeg(images: np.ndarray, quality: float) -> np.ndarray:
    if quality >= 100:
        return images
    from PIL import Image

    def enc(im):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    return _pil_each(images, enc)


def _saturate(images: np.ndarray, factor: float) -> np.ndarray:
    if factor == 1:
        return images
    from PIL import ImageEnhance

    return _pil_each(images, lambda im: ImageEnhance.Color(im).enhance(factor))


def degrade(images: np.ndarray, labels: np.ndarray, kind: str, level: float,
            rng: np.random.Generator) -> np.ndarray:
    """The ``images`` (uint8 NHWC, conditioned on ``labels``) degraded by ``kind`` at ``level``."""
    if kind == "blur":
        return _blur(images, level)
    if kind == "jpeg":
        return _jpeg(images, level)
    if kind == "saturation":
        return _saturate(images, level)
    classes = np.unique(labels)
    out = images.copy()
    if kind == "mode_dropping":
        k = int(level)
        if k >= len(classes):
            raise ValueError(f"mode_dropping: dropping {k} of {len(classes)} classes leaves none")
        dropped = np.isin(labels, classes[:k])
        keep = np.flatnonzero(~dropped)
        out[dropped] = images[rng.choice(keep, int(dropped.sum()))]
        return out
    if kind == "label_noise":
        n = int(round(level * len(images)))
        for i in rng.choice(len(images), n, replace=False):
            others = np.flatnonzero(labels != labels[i])
            out[i] = images[rng.choice(others)]
        return out
    raise ValueError(f"unknown degradation '{kind}'; known: {sorted(DEGRADATIONS)}")


def set_metrics(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], labels: np.ndarray, k: int,
                is_splits: int) -> dict[str, float]:
    """The validated metrics of one (real, generated) pair of feature sets."""
    fr, fg = real["features"], gen["features"]
    out = {"fid": frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), fg.mean(0), np.cov(fg, rowvar=False)),
           "kid": polynomial_mmd2_unbiased(fr, fg),
           "is": inception_score(gen["logits"], splits=is_splits, set_name="validation")[0],
           "label_accuracy": float(np.mean(np.argmax(gen["logits"], 1) == labels))}
    out.update(prdc(fr, fg, k=k))
    return out


def kendall_tau(levels: np.ndarray, values: np.ndarray) -> float:
    from scipy.stats import kendalltau

    if np.ptp(values) == 0:
        return 0.0  # a metric that does not move ranks nothing
    return float(kendalltau(levels, values).statistic)


def validate_metrics(real: dict[str, np.ndarray], extract: Callable[[np.ndarray], dict[str, np.ndarray]],
                     images: np.ndarray, labels: np.ndarray, *, n_boot: int, confidence: float, seed: int,
                     k: int = 3, is_splits: int = 1,
                     degradations: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Rows (degradation, metric) with tau on the full sets, its bootstrap CI and frac_correct. ``real``: the
    reference half's features; ``images``/``labels``: the half to degrade; ``extract(images)`` its features."""
    degradations = degradations or DEGRADATIONS
    feats: dict[str, list[dict[str, np.ndarray]]] = {}
    for kind, levels in degradations.items():
        rng = np.random.default_rng(derive_seed("validation", seed, kind))
        feats[kind] = [extract(degrade(images, labels, kind, lv, rng)) for lv in levels]
    n_r, n_g = len(real["features"]), len(images)
    boot = np.random.default_rng(derive_seed("validation-bootstrap", seed))
    idx = [(np.arange(n_r), np.arange(n_g))] + [(boot.integers(0, n_r, n_r), boot.integers(0, n_g, n_g))
                                                for _ in range(n_boot)]
    rows = []
    for kind, levels in degradations.items():
        order = np.arange(len(levels))
        taus: dict[str, list[float]] = {m: [] for m in ORIENTATION}
        values_full: dict[str, list[float]] = {}
        for b, (ir, ig) in enumerate(idx):
            r = {key: v[ir] for key, v in real.items()}
            per_level = [set_metrics(r, {key: v[ig] for key, v in f.items()}, labels[ig], k, is_splits)
                         for f in feats[kind]]
            for m, sign in ORIENTATION.items():
                vals = np.array([sign * pl[m] for pl in per_level])
                taus[m].append(kendall_tau(order, vals))
                if b == 0:
                    values_full[m] = [pl[m] for pl in per_level]
        for m in ORIENTATION:
            full, reps = taus[m][0], np.array(taus[m][1:])
            lo, hi = (np.quantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2]) if len(reps)
                      else (np.nan, np.nan))
            rows.append({"degradation": kind, "metric": m, "levels": ", ".join(f"{v:g}" for v in levels),
                         "values": ", ".join(f"{v:.4g}" for v in values_full[m]), "tau": full,
                         "tau_ci_low": float(lo), "tau_ci_high": float(hi),
                         "frac_correct": float(np.mean(reps == 1.0)) if len(reps) else np.nan,
                         "n_real": n_r, "n_gen": n_g,
                         "ci_method": method_label("percentile", n_boot, confidence,
                                                   "items of both halves resampled, levels paired")})
    return pd.DataFrame(rows)


def split_halves(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference rows, degraded rows): within each class, its items alternate between the two halves (in the
    data set's item order), so both halves hold every class in the same proportion."""
    labels = np.asarray(labels)
    ref, deg = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        ref += rows[0::2].tolist()
        deg += rows[1::2].tolist()
    return np.sort(ref), np.sort(deg)


def noise_floor(reference: np.ndarray, other: np.ndarray, *, points: int, confidence: float,
                rng: np.random.Generator) -> pd.DataFrame:
    """The FID of real against real (two disjoint halves of one data set): FID_N of N-subsets of ``other`` against
    the full ``reference`` for ``points`` values of N (rows kind 'subset'), and FD∞ = the intercept of
    FID_N = FD∞ + s/N with its OLS t-interval (row kind 'fd_inf'). Any FID a model reaches at N that lies within
    this floor is indistinguishable from a fresh real sample with this extractor."""
    from .fd_infinity import fd_infinity

    n = len(other)
    res = fd_infinity(reference, other, points=points, min_n=max(2, n // 5), confidence=confidence, rng=rng,
                      real_name="real reference half", gen_name="real other half")
    rows = [{"kind": "subset", "n": int(k), "fid": float(f), "ci_low": np.nan, "ci_high": np.nan,
             "ci_method": "none (one subset per N)"} for k, f in zip(res["ns"], res["fds"], strict=True)]
    rows.append({"kind": "fd_inf", "n": n, "fid": res["value"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                 "ci_method": f"ols-t, {len(res['ns'])} points, {confidence:g}"})
    return pd.DataFrame(rows)
