"""The automatic stages of the curation: CLIP text filter and the proofreading checks.

Text filter (LAIONet): cosine similarity of the CLIP text embeddings of the caption and of the query
"{name} which is {definition}" of the matched class; kept when >= the threshold (0.82 with ViT-B/32 in LAIONet).

Checks (each a boolean column plus a reason; ``flags`` lists the failed ones in this order):
  decode       the image decodes, within the pixel cap (decompression bombs are refused unread)
  min_size     shorter side >= min_size (of the stored image; img2dataset records the original size too)
  aspect       max(w, h) / min(w, h) <= max_aspect
  dup_within   no earlier candidate within ``max_distance`` bits of its 64-bit perceptual hash (pHash)
  dup_eval     no image of an evaluation set within ``max_distance`` bits (test images leaking into the set)
  zero_shot    the matched class is among the CLIP zero-shot top-k ("a photo of a {name}" over all classes)
  nsfw         the NSFW tag (if the column exists) is not in the rejected values, and punsafe <= threshold
  watermark    pwatermark <= threshold (if the column exists)
``auto_pass`` is true when every check passes. Near duplicates are found with a multi-index hash: two hashes
within d bits agree exactly on at least one of d + 1 disjoint bit blocks, so only items sharing a block are
compared (exact, no pairwise scan).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..data.manifest import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image

log = logging.getLogger(__name__)

CHECKS = ("decode", "min_size", "aspect", "dup_within", "dup_eval", "zero_shot", "nsfw", "watermark")


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def text_filter(matched: pd.DataFrame, classes: pd.DataFrame, embedder, threshold: float,
                query: str = "{name} which is {definition}") -> pd.DataFrame:
    out = matched.copy()
    out["text_similarity"] = np.nan
    single = out.index[out["match"] == "single"]
    if len(single):
        queries = [query.format(name=n, definition=d) for n, d in zip(classes["name"], classes["definition"],
                                                                      strict=True)]
        labels = out.loc[single, "label_id"].to_numpy()
        used = np.unique(labels)
        q = _unit(embedder.embed_texts([queries[i] for i in used], "class queries"))
        c = _unit(embedder.embed_texts(out.loc[single, "caption"].tolist(), "captions"))
        pos = {int(k): i for i, k in enumerate(used)}
        out.loc[single, "text_similarity"] = np.einsum("ij,ij->i", c, q[[pos[int(x)] for x in labels]])
    out["text_pass"] = out["text_similarity"] >= threshold
    return out


def phash(image: np.ndarray) -> int:
    import imagehash

    h = imagehash.phash(Image.fromarray(image))
    return int("".join("1" if b else "0" for b in h.hash.flatten()), 2)


def _blocks(h: int, n_blocks: int) -> list[tuple[int, int]]:
    width = -(-64 // n_blocks)
    return [(b, (h >> (b * width)) & ((1 << width) - 1)) for b in range(n_blocks)]


class HashIndex:
    """Near-duplicate search over 64-bit hashes within ``max_distance`` bits (multi-index hashing)."""

    def __init__(self, max_distance: int):
        self.d = max_distance
        self.n_blocks = max_distance + 1
        self.buckets: dict[tuple[int, int], list[int]] = {}
        self.hashes: list[int] = []
        self.ids: list[str] = []

    def query(self, h: int) -> str | None:
        """The id of the first added hash within the distance, or None."""
        best = None
        for key in _blocks(h, self.n_blocks):
            for j in self.buckets.get(key, ()):
                if (self.hashes[j] ^ h).bit_count() <= self.d and (best is None or j < best):
                    best = j
        return None if best is None else self.ids[best]

    def add(self, h: int, item_id: str) -> None:
        j = len(self.hashes)
        self.hashes.append(h)
        self.ids.append(item_id)
        for key in _blocks(h, self.n_blocks):
            self.buckets.setdefault(key, []).append(j)


def run_checks(cands: pd.DataFrame, root: str | Path, classes: pd.DataFrame, embedder, spec: dict[str, Any],
               eval_sets: list[tuple[str, pd.DataFrame, Path]]) -> pd.DataFrame:
    """The checks of every candidate in ``cands`` (text-filter survivors) in their order."""
    root = Path(root)
    max_pixels = int(spec.get("max_pixels", MAX_IMAGE_PIXELS))
    min_size, max_aspect = int(spec.get("min_size", 64)), float(spec.get("max_aspect", 3.0))
    dup = spec.get("near_duplicates", {})
    d = int(dup.get("max_distance", 4))
    out = cands.copy().reset_index(drop=True)
    n = len(out)
    reasons = {c: [""] * n for c in CHECKS}
    hashes: dict[int, int] = {}
    zs = spec.get("zero_shot", {})
    k = int(zs.get("top_k", 5))
    ranks = np.full(n, -1, dtype=np.int64)
    top1 = [""] * n
    text = None
    if zs.get("enabled", True):
        prompts = [zs.get("prompt", "a photo of a {name}").format(name=c) for c in classes["name"]]
        text = _unit(embedder.embed_texts(prompts, "zero-shot prompts"))
    label_pos = {int(v): j for j, v in enumerate(classes["label_id"])}
    chunk = int(spec.get("chunk", 512))  # images are decoded, hashed and embedded a chunk at a time
    for start in range(0, n, chunk):
        batch: list[tuple[int, np.ndarray]] = []
        for i in range(start, min(start + chunk, n)):
            item_id = str(out["item_id"].iat[i])
            try:
                img = decode_image(root / out["path"].iat[i], item_id, max_pixels=max_pixels)
            except ImageDecodeError as exc:
                reasons["decode"][i] = str(exc).split("): ", 1)[-1]
                continue
            h, w = img.shape[:2]
            if min(h, w) < min_size:
                reasons["min_size"][i] = f"{w}x{h} < {min_size}"
            if max(h, w) / min(h, w) > max_aspect:
                reasons["aspect"][i] = f"aspect {max(h, w) / min(h, w):.2f} > {max_aspect:g}"
            hashes[i] = phash(img)
            batch.append((i, img))
        if text is not None and batch:
            sims = _unit(embedder.embed_images(_square_batch([im for _, im in batch]), "candidates")) @ text.T
            for (i, _), row in zip(batch, sims, strict=True):
                own = row[label_pos[int(out["label_id"].iat[i])]]
                ranks[i] = int((row > own).sum())
                top1[i] = str(classes["name"].iat[int(row.argmax())])
                if ranks[i] >= k:
                    reasons["zero_shot"][i] = (f"'{out['label_name'].iat[i]}' is rank {ranks[i] + 1} "
                                               f"(top-1 '{top1[i]}')")
    out["phash"] = [f"{hashes[i]:016x}" if i in hashes else "" for i in range(n)]
    out["zero_shot_rank"] = ranks
    out["zero_shot_top1"] = top1

    eval_index = HashIndex(d)
    for name, manifest, eroot in eval_sets:
        for item_id, rel in zip(manifest["item_id"], manifest["path"], strict=True):
            eval_index.add(phash(decode_image(eroot / rel, item_id, max_pixels=max_pixels)), f"{name}:{item_id}")
    within = HashIndex(d)
    for i in range(n):
        if i not in hashes:
            continue
        other = within.query(hashes[i])
        if other is not None:
            reasons["dup_within"][i] = f"near duplicate of {other}"
        else:
            within.add(hashes[i], str(out["item_id"].iat[i]))
        hit = eval_index.query(hashes[i])
        if hit is not None:
            reasons["dup_eval"][i] = f"near duplicate of evaluation image {hit}"

    nsfw = spec.get("nsfw", {})
    if "NSFW" in out.columns:
        bad = set(nsfw.get("reject_tags", ["NSFW"]))
        for i, tag in enumerate(out["NSFW"]):
            if tag in bad:
                reasons["nsfw"][i] = f"NSFW tag '{tag}'"
    if "punsafe" in out.columns:
        thr = float(nsfw.get("max_punsafe", 0.5))
        for i, p in enumerate(out["punsafe"]):
            if p is not None and np.isfinite(p) and p > thr and not reasons["nsfw"][i]:
                reasons["nsfw"][i] = f"punsafe {p:.2f} > {thr:g}"
    if "pwatermark" in out.columns:
        thr = float(spec.get("watermark", {}).get("max_pwatermark", 0.8))
        for i, p in enumerate(out["pwatermark"]):
            if p is not None and np.isfinite(p) and p > thr:
                reasons["watermark"][i] = f"pwatermark {p:.2f} > {thr:g}"

    for c in CHECKS:
        out[f"{c}_ok"] = [not r for r in reasons[c]]
        out[f"{c}_reason"] = reasons[c]
    out["flags"] = [",".join(c for c in CHECKS if reasons[c][i]) for i in range(n)]
    out["auto_pass"] = out["flags"] == ""
    return out


def _square_batch(images: list[np.ndarray]) -> np.ndarray:
    """Embedders take one uint8 NHWC array: pad each image to a square (edge colour) and resize to the largest
    common size, so web images of any shape can be batched (the embedder's own transform then applies)."""
    size = max(max(im.shape[:2]) for im in images)
    size = min(size, 512)
    out = np.empty((len(images), size, size, 3), np.uint8)
    for j, im in enumerate(images):
        h, w = im.shape[:2]
        s = max(h, w)
        canvas = np.empty((s, s, 3), np.uint8)
        canvas[:] = im[0, 0]
        canvas[(s - h) // 2:(s - h) // 2 + h, (s - w) // 2:(s - w) // 2 + w] = im
        pil = Image.fromarray(canvas)
        out[j] = np.asarray(pil if s == size else pil.resize((size, size), Image.Resampling.BICUBIC))
    return out
