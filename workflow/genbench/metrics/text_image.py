"""Text-image agreement: CLIP Score, PickScore, and the scaled metrics csFID / psFID / csIS / psIS.

All functions take embeddings (one row per image and its prompt), so any CLIP-like model serves; the embedding
models themselves live in ``genbench.features``.

- CLIP Score (torchmetrics' definition): per sample ``100 * cos(image, text)``; the reported score is the mean
  clamped at 0 (torchmetrics clamps the mean, not the samples). The prompt is "a photo of a {class}".
- PickScore (PickScore_v1's published use): per sample ``logit_scale.exp() * cos(image, text)``; mean reported,
  no clamping.
- Scaled metrics (genbench's definition, DESIGN.md; no public definition exists): with r_CLIP = CLIP Score of
  the generated images / CLIP Score of the real images of the same split with the same prompts and model, and
  r_Pick likewise: csIS = IS * r_CLIP, psIS = IS * r_Pick, csFID = FID / r_CLIP, psFID = FID / r_Pick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .bootstrap import bca_mean_interval, method_label, resamples
from .fid import MetricInputError, fid_bootstrap
from .inception_score import is_bootstrap
from .registry import display_name

if TYPE_CHECKING:
    from .context import CellContext


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise MetricInputError(f"{what}: expected a non-empty (N, D) array of embeddings, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise MetricInputError(f"{what}: embeddings contain NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise MetricInputError(f"{what}: {int((norms == 0).sum())} embedding(s) have zero norm")
    return x / norms


def cosine(image_emb: np.ndarray, text_emb: np.ndarray, set_name: str) -> np.ndarray:
    """Row-wise cosine similarity of paired image and text embeddings."""
    a, b = _unit(image_emb, f"{set_name} (image embeddings)"), _unit(text_emb, f"{set_name} (text embeddings)")
    if a.shape != b.shape:
        raise MetricInputError(f"{set_name}: {len(a)} image embeddings of dim {a.shape[1]} vs {len(b)} text "
                               f"embeddings of dim {b.shape[1]}: they must pair one to one")
    return np.einsum("nd,nd->n", a, b)


def clip_score_per_sample(image_emb: np.ndarray, text_emb: np.ndarray, set_name: str = "set") -> np.ndarray:
    return 100.0 * cosine(image_emb, text_emb, set_name)


def clip_score(image_emb: np.ndarray, text_emb: np.ndarray, set_name: str = "set") -> float:
    """torchmetrics' CLIPScore: mean of 100 * cos, clamped at 0."""
    return max(float(clip_score_per_sample(image_emb, text_emb, set_name).mean()), 0.0)


def pick_score_per_sample(image_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float,
                          set_name: str = "set") -> np.ndarray:
    """``logit_scale`` is the model's stored parameter (a log): the score multiplies by its exponential."""
    return float(np.exp(logit_scale)) * cosine(image_emb, text_emb, set_name)


def pick_score(image_emb: np.ndarray, text_emb: np.ndarray, logit_scale: float, set_name: str = "set") -> float:
    return float(pick_score_per_sample(image_emb, text_emb, logit_scale, set_name).mean())


def scaled_metrics(fid: float, inception_score: float, clip_gen: float, clip_real: float, pick_gen: float,
                   pick_real: float, set_name: str = "set") -> dict[str, float]:
    """csFID, psFID, csIS, psIS and the two ratios. The real images' scores must be positive (a ratio to a
    non-positive score is meaningless and is an error, not a silent inf)."""
    for name, v in (("CLIP Score", clip_real), ("PickScore", pick_real)):
        if not v > 0:
            raise MetricInputError(f"{set_name}: the real images' {name} is {v}; the scaled metrics need it > 0")
    r_clip, r_pick = clip_gen / clip_real, pick_gen / pick_real
    for name, r in (("r_CLIP", r_clip), ("r_Pick", r_pick)):
        if not r > 0:
            raise MetricInputError(f"{set_name}: {name} = {r:g} (generated score / real score); csFID/psFID divide "
                                   "by it, so it must be > 0")
    return {"r_clip": r_clip, "r_pick": r_pick, "csfid": fid / r_clip, "psfid": fid / r_pick,
            "csis": inception_score * r_clip, "psis": inception_score * r_pick}


def text_image_scores(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], kind: str,
                      set_names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample CLIP Score (100 cos) or PickScore (exp(logit_scale) cos) of the real images with their prompts
    and of the generated images with the prompts of the items they were generated for."""
    ids = np.asarray(real["item_id"]).astype(str).tolist()
    texts = real["text_emb"]
    if "skipped_text_emb" in real:  # real images that could not be decoded still have their prompts
        ids += np.asarray(real["skipped_item_id"]).astype(str).tolist()
        texts = np.concatenate([texts, real["skipped_text_emb"]])
    row_of = {i: k for k, i in enumerate(ids)}
    try:
        rows = np.array([row_of[i] for i in np.asarray(gen["item_id"]).astype(str).tolist()])
    except KeyError as exc:
        raise MetricInputError(f"{set_names[1]}: item {exc} is not an item of {set_names[0]}; text-image scores "
                               "need the prompts of the data set the cell was generated for") from None
    text_r, text_g = real["text_emb"], texts[rows]
    if kind == "clip":
        return (clip_score_per_sample(real["image_emb"], text_r, set_names[0]),
                clip_score_per_sample(gen["image_emb"], text_g, set_names[1]))
    scale = float(np.asarray(real["logit_scale"]))
    return (pick_score_per_sample(real["image_emb"], text_r, scale, set_names[0]),
            pick_score_per_sample(gen["image_emb"], text_g, scale, set_names[1]))


def clip_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``clip_score``, ``csfid``, ``csis`` (those requested) from the ``clip`` embeddings."""
    return _score_and_scaled_rows(ctx, metrics, "clip", "clip_score", "cs")


def pick_rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows ``pick_score``, ``psfid``, ``psis`` (those requested) from the ``pick`` embeddings."""
    return _score_and_scaled_rows(ctx, metrics, "pick", "pick_score", "ps")


def _score_and_scaled_rows(ctx: CellContext, metrics: tuple[str, ...], role: str, score_name: str,
                           prefix: str) -> list[dict[str, Any]]:
    """The score's row (BCa interval of the mean over the generated samples) and the scaled metrics' rows, whose
    replicates apply FID's (or IS's) resamples of the generated items to the per-sample scores too."""
    scaled = [m for m in (f"{prefix}fid", f"{prefix}is") if m in metrics]
    # FID and IS first: their input errors come before the embeddings' (as when they are requested themselves)
    fid_row, fid_reps, fid_idx = fid_bootstrap(ctx) if f"{prefix}fid" in scaled else ({}, np.empty(0), [])
    is_value, _, is_reps, is_idx = is_bootstrap(ctx) if f"{prefix}is" in scaled else (None, None, np.empty(0), [])
    if role not in ctx.text_image:
        raise MetricInputError(f"{ctx.gen_name}: '{score_name}' needs the {role} embeddings (scoring.text_image)")
    per_real, per_gen = text_image_scores(*ctx.text_image[role], role, ctx.names)
    embedder = ctx.embedder(role)
    clamp = (lambda v: max(v, 0.0)) if role == "clip" else (lambda v: v)  # torchmetrics clamps CLIP's mean
    gen_score, real_score = clamp(float(per_gen.mean())), clamp(float(per_real.mean()))
    label = display_name(score_name)
    real_note = f"real images of {ctx.cell['dataset']}, same prompts: {label} {real_score:.4g}"
    n_boot, conf = ctx.n_boot, ctx.confidence
    rows = []
    if score_name in metrics:  # BCa of the mean; clamping at 0 is monotone, so it maps the bounds
        lo, hi, how = bca_mean_interval(per_gen, n_boot, conf, ctx.rng_for(score_name))
        rows.append(dict(metric=score_name, value=gen_score, ci_low=clamp(lo), ci_high=clamp(hi), n=len(per_gen),
                         n_real=len(per_real), ci_method=method_label(how, n_boot, conf, "generated samples"),
                         note=real_note, extractor=embedder))
    if not scaled:  # the score alone needs no ratio
        return rows
    if not real_score > 0 or not gen_score > 0:
        raise MetricInputError(f"{ctx.gen_name}: {label} of the generated ({gen_score:g}) or real ({real_score:g}) "
                               f"images is not positive, so r = generated / real cannot scale FID or IS")
    ratio = gen_score / real_score

    def means(gen_idx: np.ndarray, real_idx: np.ndarray) -> tuple[float, float]:
        """A resample's (generated, real) mean scores; NaN for both where either is not positive (r is undefined
        there)."""
        g, r = clamp(float(per_gen[gen_idx].mean())), clamp(float(per_real[real_idx].mean()))
        return (g, r) if g > 0 and r > 0 else (float("nan"), float("nan"))

    for m in scaled:
        if m.endswith("fid"):
            value = fid_row["value"] / ratio
            reps = np.array([fid_rep / (g / r) for fid_rep, (ir, ig) in zip(fid_reps, fid_idx, strict=True)
                             for g, r in [means(ig, ir)]])
            n_real = int(fid_row["n_real"])  # the FID row's: the precomputed statistics' count where FID uses them
        else:
            value = is_value * ratio
            real_idx = resamples(ctx.rng_for(f"{m}-real"), (len(per_real),), n_boot)
            reps = np.array([is_rep * g / r for is_rep, (i,), (j,) in zip(is_reps, is_idx, real_idx, strict=True)
                             for g, r in [means(i, j)]])
            n_real = len(per_real)
        note = f"r_{role} = {ratio:.4g} ({real_note})"
        undefined = int(np.isnan(reps).sum())
        if undefined:  # the interval is over the resamples where r is defined, and says how many were not
            reps = reps[~np.isnan(reps)]
            note += (f"; {undefined} of {undefined + len(reps)} resamples left out: their mean {label} was not "
                     f"positive, so r is undefined there")
        rows.append(dict(metric=m, n=len(per_gen), n_real=n_real, **ctx.debiased(value, reps), note=note,
                         extractor=f"{ctx.cell.get('extractor', '?')} + {embedder}"))
    return rows
