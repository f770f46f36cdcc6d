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
  label (the set is conditioned on labels, so its images mismatch their conditioning);
- ``caption_mismatch``: the images are kept and a fraction of the items' prompts is swapped to the prompt of
  another class (seeded): the text-image metrics (CLIP Score, PickScore, csFID/psFID, csIS/psIS and
  ``label_accuracy``, which scores the conditioning) must fall with the rate, and every image-only metric (FID,
  KID, IS, precision/recall/density/coverage, CMMD) must not move at all: the known answer is "flat".

The text-image metrics are computed where ``validate_metrics`` gets embeddings (``text``; by role ``clip``,
``pick``): the per-item scores of the degraded half with each item's prompt at that level against the reference
half with its own prompts, r = score(degraded) / score(reference), csFID = FID / r_CLIP, csIS = IS * r_CLIP (psFID,
psIS with r_Pick), CMMD on the ``clip`` role's image embeddings. Each row's ``expected`` says what the known answer
is: ``worse`` (the metric must rank the levels: tau = 1) or ``flat`` (it must not move: its ``frac_correct`` is
the fraction of replicates in which it is constant over the levels).

Each metric is oriented so that larger = worse (FID, KID as they are; IS, precision, recall, density, coverage and
label accuracy negated) and Kendall's tau between the level and that value is computed (tau = 1: the metric ranks
every level correctly). Bootstrap: B resamples of the degraded half's items (the same resample at every level:
the levels are paired) and of the reference half; ``tau_ci_low``/``tau_ci_high`` are the percentile interval of
tau over the replicates and ``frac_correct`` the fraction of replicates with tau = 1 (``expected`` worse) or with
a metric constant over the levels (``expected`` flat). Features are extracted once
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
    "caption_mismatch": [0.0, 0.25, 0.5, 0.75],
}
# degradations that change the prompts only: the images, and so every image-only metric, must stay as they are
PROMPT_ONLY = frozenset({"caption_mismatch"})
# metric -> sign making larger = worse
ORIENTATION = {"fid": 1.0, "kid": 1.0, "is": -1.0, "precision": -1.0, "recall": -1.0, "density": -1.0,
               "coverage": -1.0, "label_accuracy": -1.0}
# the text-image metrics (computed when embeddings are given), by the embedder role they need
TEXT_ORIENTATION = {"clip_score": -1.0, "csfid": 1.0, "csis": -1.0, "cmmd": 1.0, "pick_score": -1.0, "psfid": 1.0,
                    "psis": -1.0}
TEXT_ROLE = {"clip_score": "clip", "csfid": "clip", "csis": "clip", "cmmd": "clip", "pick_score": "pick",
             "psfid": "pick", "psis": "pick"}
# metrics that depend on the prompts (or the conditioning labels): they must see a caption mismatch
PROMPT_AWARE = frozenset({"label_accuracy", "clip_score", "csfid", "csis", "pick_score", "psfid", "psis"})
FLAT_ATOL = 1e-9  # a metric is constant over the levels when its spread is below FLAT_ATOL * (1 + |mean|)


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


def swap_prompts(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """The prompt classes of ``labels`` with round(rate * N) items (drawn without replacement) swapped to another
    class, uniformly among the other classes present."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError("caption_mismatch: a prompt can only be swapped to another class with two or more classes")
    out = labels.copy()
    for i in rng.choice(len(labels), int(round(rate * len(labels))), replace=False):
        out[i] = rng.choice(classes[classes != labels[i]])
    return out


def degrade_items(images: np.ndarray, labels: np.ndarray, kind: str, level: float,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(images, prompt classes) of the items degraded by ``kind`` at ``level``: the image degradations keep the
    prompts, ``caption_mismatch`` keeps the images (the same array)."""
    if kind == "caption_mismatch":
        return images, swap_prompts(labels, level, rng)
    return degrade(images, labels, kind, level, rng), np.asarray(labels)


def degrade(images: np.ndarray, labels: np.ndarray, kind: str, level: float,
            rng: np.random.Generator) -> np.ndarray:
    """The ``images`` (uint8 NHWC, conditioned on ``labels``) degraded by ``kind`` at ``level`` (an image
    degradation; ``caption_mismatch`` changes prompts, see :func:`degrade_items`)."""
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
    """Kendall's tau-b (as scipy.stats.kendalltau; tested against it), over all pairs: scipy's per-call overhead
    (~1 ms) dominated the validation's thousands of 4-level calls. 0 for a constant metric (it ranks nothing), NaN
    where a value is NaN; +inf ranks above every finite value."""
    x, y = np.asarray(levels, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if np.isnan(y).any():
        return float("nan")
    rank = np.unique(y, return_inverse=True)[1].reshape(-1)  # ranks: inf - inf would be NaN, rank differences are not
    if np.ptp(rank) == 0:
        return 0.0  # a metric that does not move ranks nothing
    i, j = np.triu_indices(len(x), 1)
    dx, dy = np.sign(x[j] - x[i]), np.sign(rank[j] - rank[i])
    n0, tx, ty = len(i), int((dx == 0).sum()), int((dy == 0).sum())
    if n0 == tx:
        return float("nan")
    return float((dx * dy).sum() / np.sqrt((n0 - tx) * (n0 - ty)))


def _text_metrics(role: str, per_real: np.ndarray, per_gen: np.ndarray, fid: float, inception: float,
                  ir: np.ndarray, ig: np.ndarray) -> dict[str, float]:
    """A role's score and scaled metrics on one resample (``ir``, ``ig``) of the per-item scores. CLIP Score's means
    are clamped at 0 (torchmetrics); where the ratio r = generated / reference is not positive, csFID/psFID are
    +inf and csIS/psIS 0 (the worst values: the pipeline itself refuses such a cell), and NaN where the reference
    score is not positive (r undefined)."""
    clamp = (lambda v: max(v, 0.0)) if role == "clip" else (lambda v: v)
    g, r = clamp(float(per_gen[ig].mean())), clamp(float(per_real[ir].mean()))
    prefix, score = ("cs", "clip_score") if role == "clip" else ("ps", "pick_score")
    if not r > 0:
        ratio_fid, ratio_is = np.nan, np.nan
    elif not g > 0:
        ratio_fid, ratio_is = np.inf, 0.0
    else:
        ratio_fid, ratio_is = fid * r / g, inception * g / r
    return {score: g, f"{prefix}fid": ratio_fid, f"{prefix}is": ratio_is}


def _role_scores(emb: dict, image_emb: np.ndarray, prompts: np.ndarray, role: str) -> np.ndarray:
    """Per-item CLIP Score (100 cos) or PickScore (exp(logit_scale) cos) of ``image_emb`` with the text embeddings
    of the prompt classes ``prompts``."""
    from .text_image import clip_score_per_sample, pick_score_per_sample

    row_of = {int(c): i for i, c in enumerate(emb["text_labels"])}
    missing = sorted({int(c) for c in prompts} - set(row_of))
    if missing:
        raise ValueError(f"{role}: no prompt embedding for class(es) {missing} (text_labels: {sorted(row_of)})")
    text = emb["text_emb"][[row_of[int(c)] for c in prompts]]
    if role == "clip":
        return clip_score_per_sample(image_emb, text, "validation")
    return pick_score_per_sample(image_emb, text, emb["logit_scale"], "validation")


def validate_metrics(real: dict[str, np.ndarray], extract: Callable[[np.ndarray], dict[str, np.ndarray]],
                     images: np.ndarray, labels: np.ndarray, *, n_boot: int, confidence: float, seed: int,
                     k: int = 3, is_splits: int = 1,
                     degradations: dict[str, list[float]] | None = None,
                     text: dict[str, dict] | None = None, real_labels: np.ndarray | None = None) -> pd.DataFrame:
    """Rows (degradation, metric) with tau on the full sets, its bootstrap CI and frac_correct. ``real``: the
    reference half's features; ``images``/``labels``: the half to degrade; ``extract(images)`` its features.

    ``text`` (optional), by role (``clip``, ``pick``): ``embed(images)`` -> image embeddings, ``real_image_emb``
    (the reference half's), ``text_labels`` (class ids) and ``text_emb`` (their prompts' embeddings, one
    row each), ``logit_scale`` (pick); ``real_labels``: the reference half's classes. With it the rows include the
    text-image metrics (TEXT_ORIENTATION; CMMD needs the ``clip`` role)."""
    from .cmmd import cmmd

    degradations = degradations or DEGRADATIONS
    text = text or {}
    if text and real_labels is None:
        raise ValueError("validate_metrics: text-image metrics need real_labels (the reference half's classes)")
    orientation = dict(ORIENTATION)
    orientation.update({m: s for m, s in TEXT_ORIENTATION.items() if TEXT_ROLE[m] in text})
    feats: dict[str, list[dict[str, np.ndarray]]] = {}
    prompts: dict[str, list[np.ndarray]] = {}
    per_item: dict[str, list[dict[str, np.ndarray]]] = {}  # kind -> level -> role -> per-item scores
    gen_emb: dict[str, list[np.ndarray]] = {}  # kind -> level -> the clip role's image embeddings (CMMD)
    per_real = {role: _role_scores(e, e["real_image_emb"], np.asarray(real_labels), role) for role, e in text.items()}
    for kind, levels in degradations.items():
        rng = np.random.default_rng(derive_seed("validation", seed, kind))
        feats[kind], prompts[kind], per_item[kind], gen_emb[kind] = [], [], [], []
        for lv in levels:
            ims, prm = degrade_items(images, labels, kind, lv, rng)
            feats[kind].append(extract(ims))
            prompts[kind].append(prm)
            embs = {role: e["embed"](ims) for role, e in text.items()}
            per_item[kind].append({role: _role_scores(text[role], embs[role], prm, role) for role in text})
            gen_emb[kind].append(embs.get("clip"))
    n_r, n_g = len(real["features"]), len(images)
    boot = np.random.default_rng(derive_seed("validation-bootstrap", seed))
    idx = [(np.arange(n_r), np.arange(n_g))] + [(boot.integers(0, n_r, n_r), boot.integers(0, n_g, n_g))
                                                for _ in range(n_boot)]
    rows = []
    for kind, levels in degradations.items():
        order = np.arange(len(levels))
        taus: dict[str, list[float]] = {m: [] for m in orientation}
        flat: dict[str, list[bool]] = {m: [] for m in orientation}
        values_full: dict[str, list[float]] = {}
        for b, (ir, ig) in enumerate(idx):
            r = {key: v[ir] for key, v in real.items()}
            per_level = []
            for lv, f in enumerate(feats[kind]):
                vals = set_metrics(r, {key: v[ig] for key, v in f.items()}, prompts[kind][lv][ig], k, is_splits)
                for role in text:
                    vals.update(_text_metrics(role, per_real[role], per_item[kind][lv][role], vals["fid"],
                                              vals["is"], ir, ig))
                if "clip" in text:
                    vals["cmmd"] = cmmd(text["clip"]["real_image_emb"][ir], gen_emb[kind][lv][ig])
                per_level.append(vals)
            for m, sign in orientation.items():
                vals = np.array([sign * pl[m] for pl in per_level])
                taus[m].append(kendall_tau(order, vals))
                flat[m].append(bool(np.ptp(vals) <= FLAT_ATOL * (1 + np.abs(vals).mean())))
                if b == 0:
                    values_full[m] = [pl[m] for pl in per_level]
        for m in orientation:
            full, reps = taus[m][0], np.array(taus[m][1:])
            expected = "flat" if kind in PROMPT_ONLY and m not in PROMPT_AWARE else "worse"
            # NaN taus (a csFID/psFID undefined where the reference score is not positive) are left out
            lo, hi = (np.nanquantile(reps, [(1 - confidence) / 2, (1 + confidence) / 2])
                      if np.isfinite(reps).any() else (np.nan, np.nan))
            correct = np.array(flat[m][1:]) if expected == "flat" else reps == 1.0
            rows.append({"degradation": kind, "metric": m, "expected": expected,
                         "levels": ", ".join(f"{v:g}" for v in levels),
                         "values": ", ".join(f"{v:.4g}" for v in values_full[m]), "tau": full,
                         "tau_ci_low": float(lo), "tau_ci_high": float(hi),
                         "frac_correct": float(np.mean(correct)) if len(reps) else np.nan,
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
