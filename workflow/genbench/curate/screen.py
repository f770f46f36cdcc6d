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
compared (exact, no pairwise scan of the whole set). An item is a duplicate when an earlier candidate is within
d bits, whether or not that one was itself a duplicate.
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


def near_duplicates(hashes: np.ndarray, max_distance: int, reference: np.ndarray | None = None) -> np.ndarray:
    """For each 64-bit hash, the index of the earliest *earlier* hash within ``max_distance`` bits (or, with
    ``reference``, of the earliest reference hash), -1 when there is none. Exact: two hashes within d bits agree
    on at least one of d + 1 disjoint bit blocks, so only hashes sharing a block value are compared, group by
    group with numpy (multi-index hashing)."""
    h = np.asarray(hashes, dtype=np.uint64)
    ref = None if reference is None else np.asarray(reference, dtype=np.uint64)
    n = len(h)
    best = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if n == 0 or (ref is not None and len(ref) == 0):
        return np.full(n, -1, dtype=np.int64)
    pool = h if ref is None else np.concatenate([ref, h])
    offset = 0 if ref is None else len(ref)  # pool index of query j is offset + j
    nb = max_distance + 1
    width = -(-64 // nb)
    for b in range(nb):
        keys = (pool >> np.uint64(b * width)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")  # stable: members of a group stay in pool order
        k = keys[order]
        starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
        ends = np.r_[starts[1:], len(k)]
        for s0, e0 in zip(starts[(ends - starts) > 1], ends[(ends - starts) > 1], strict=True):
            members = order[s0:e0]
            if ref is None:
                srcs, dsts = members, members
            else:
                srcs, dsts = members[members < offset], members[members >= offset]
                if not len(srcs) or not len(dsts):
                    continue
            for c in range(0, len(dsts), 2048):  # column chunks bound the memory of a large group
                dst = dsts[c:c + 2048]
                close = np.bitwise_count(pool[srcs][:, None] ^ pool[dst][None, :]) <= max_distance
                if ref is None:
                    close &= srcs[:, None] < dst[None, :]  # an earlier item only
                i, j = np.nonzero(close)
                np.minimum.at(best, dst[j] - offset, srcs[i])
    return np.where(best == np.iinfo(np.int64).max, -1, best)


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

    eval_ids, eval_hashes = [], []
    for name, manifest, eroot in eval_sets:
        for item_id, rel in zip(manifest["item_id"], manifest["path"], strict=True):
            eval_hashes.append(phash(decode_image(eroot / rel, item_id, max_pixels=max_pixels)))
            eval_ids.append(f"{name}:{item_id}")
    hashed = sorted(hashes)
    hv = np.array([hashes[i] for i in hashed], dtype=np.uint64)
    for j, src in enumerate(near_duplicates(hv, d)):
        if src >= 0:
            reasons["dup_within"][hashed[j]] = f"near duplicate of {out['item_id'].iat[hashed[src]]}"
    if eval_hashes:
        for j, src in enumerate(near_duplicates(hv, d, np.array(eval_hashes, dtype=np.uint64))):
            if src >= 0:
                reasons["dup_eval"][hashed[j]] = f"near duplicate of evaluation image {eval_ids[src]}"

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
