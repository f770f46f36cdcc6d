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

import numpy as np

from .fid import MetricInputError


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
