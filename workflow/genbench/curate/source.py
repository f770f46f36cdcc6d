"""LAION-style inputs of the curation: img2dataset's output layout, and how it is produced.

img2dataset (``--output_format files``) writes, per shard ``SSSSS`` (5 digits) and sample key ``SSSSSIIII``:

    {folder}/SSSSS.parquet         one row per sample of the shard: key, url, caption, status ("success" or
                                   "failed_to_download" / "failed_to_resize"), error_message, width, height,
                                   original_width, original_height, sha256 (with --compute_hash sha256) and the
                                   input columns named by --save_additional_columns (e.g. NSFW, punsafe,
                                   pwatermark, similarity)
    {folder}/SSSSS/SSSSSIIII.jpg   the image (png/webp with --encode_format), .txt the caption, .json the row
    {folder}/SSSSS_stats.json      counts of the shard

``read_img2dataset`` turns a folder into the candidates table (every sample, failed ones included with their
reason). ``img2dataset_command`` builds the download command run by rule ``laion_download`` on a connected node,
with a cap on the number of samples and the image size. ``write_miniworld_laion`` writes the mini-world's
LAION-like split in the same layout, with planted faults (wrong / ambiguous captions, reposted images, copies
of evaluation images, unsafe / watermark scores, failed downloads, an undecodable file) kept as ground truth.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GenbenchError
from ..io import sha256_bytes, write_bytes, write_json
from ..seeding import numpy_rng
from ..tables import write_parquet

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp")
SAFETY_COLUMNS = ("NSFW", "punsafe", "pwatermark", "similarity")


class SourceError(GenbenchError, FileNotFoundError):
    pass


KEY_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def valid_key(key: str) -> bool:
    """An img2dataset sample key usable as a file name inside its shard folder (img2dataset writes digits)."""
    return bool(KEY_PATTERN.fullmatch(key)) and ".." not in key


def read_img2dataset(folder: str | Path) -> pd.DataFrame:
    """All samples of an img2dataset output folder; ``path`` is relative to ``folder`` ('' when no image)."""
    folder = Path(folder)
    shards = sorted(p for p in folder.glob("*.parquet") if p.stem.isdigit())
    if not shards:
        raise SourceError(f"{folder}: no img2dataset shard tables (00000.parquet, ...); run img2dataset with "
                          f"--output_format files, or rule laion_download")
    frames = []
    for p in shards:
        df = pd.read_parquet(p)
        missing = {"key", "caption", "status"} - set(df.columns)
        if missing:
            raise SourceError(f"{p}: not an img2dataset shard table (lacks {sorted(missing)})")
        df["shard"] = p.stem
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["key"] = df["key"].astype(str)
    if df["key"].duplicated().any():
        raise SourceError(f"{folder}: duplicate sample keys {df['key'][df['key'].duplicated()].head(3).tolist()}")
    if "error_message" not in df.columns:
        df["error_message"] = None
    df["error_message"] = df["error_message"].astype(object)
    # keys name files: one that is not a plain file name ('../../x', 'a/b', '.hidden', NUL) is never used in a path
    bad_key = ~df["key"].map(valid_key)
    for key, shard in zip(df.loc[bad_key, "key"], df.loc[bad_key, "shard"], strict=True):
        log.warning("%s/%s.parquet: sample key %r is not a plain file name; recorded as invalid_key", folder,
                    shard, key)
    df.loc[bad_key, "status"] = "invalid_key"
    df.loc[bad_key, "error_message"] = ("the sample key is not a plain file name (letters, digits, '_', '-', '.'; "
                                        "no '/', no leading '.'); fix the shard table's key column")
    paths = []
    for shard, key, status in zip(df["shard"], df["key"], df["status"], strict=True):
        found = ""
        if status == "success":
            for ext in IMAGE_EXTS:
                if (folder / shard / f"{key}{ext}").is_file():
                    found = f"{shard}/{key}{ext}"
                    break
        paths.append(found)
    df["path"] = paths
    lost = (df["status"] == "success") & (df["path"] == "")
    df.loc[lost, "status"] = "missing_file"
    df.loc[lost, "error_message"] = "the shard table lists it as downloaded but no image file is present"
    df = df.rename(columns={"key": "item_id"})
    df["caption"] = df["caption"].fillna("").astype(str)
    return df.reset_index(drop=True)


def img2dataset_command(spec: dict[str, Any], url_list: str | Path, output_folder: str | Path) -> list[str]:
    """The img2dataset call of rule laion_download. ``spec``: url_col, caption_col, image_size, resize_mode,
    encode_format, processes, threads, min_image_size, max_aspect_ratio, max_image_area, extra_columns."""
    cmd = ["img2dataset", "--url_list", str(url_list), "--input_format", "parquet",
           "--url_col", spec.get("url_col", "URL"), "--caption_col", spec.get("caption_col", "TEXT"),
           "--output_format", "files", "--output_folder", str(output_folder),
           "--image_size", str(spec.get("image_size", 256)), "--resize_mode", spec.get("resize_mode", "keep_ratio"),
           "--encode_format", spec.get("encode_format", "jpg"), "--compute_hash", "sha256",
           "--processes_count", str(spec.get("processes", 8)), "--thread_count", str(spec.get("threads", 64)),
           "--number_sample_per_shard", str(spec.get("per_shard", 10000)), "--retries", str(spec.get("retries", 1)),
           "--min_image_size", str(spec.get("min_image_size", 64)),
           "--max_aspect_ratio", str(spec.get("max_aspect_ratio", 3.0)),
           "--max_image_area", str(spec.get("max_image_area", 16_000_000)), "--enable_wandb", "False"]
    extra = spec.get("extra_columns", list(SAFETY_COLUMNS))
    if extra:
        cmd += ["--save_additional_columns", json.dumps(list(extra))]
    return cmd


def limit_metadata(src: str | Path, dst: str | Path, max_count: int, seed: int) -> int:
    """The first ``max_count`` rows of a LAION metadata Parquet in a seeded random order (a reproducible sample
    within the download limit), written to ``dst``."""
    df = pd.read_parquet(src)
    if len(df) > max_count:
        order = np.random.default_rng(seed).permutation(len(df))[:max_count]
        df = df.iloc[np.sort(order)]
    write_parquet(df.reset_index(drop=True), dst)
    return len(df)


# ---------------------------------------------------------------- the mini-world's LAION-like split


def write_miniworld_laion(folder: str | Path, config: dict[str, Any], eval_manifest: pd.DataFrame,
                          eval_root: str | Path, plant: dict[str, Any], per_shard: int = 100) -> pd.DataFrame:
    """Render the mini-world's ``laion`` split into img2dataset's layout. ``plant``: fractions ``repost`` (an
    earlier image posted again with another caption), ``eval_copy`` (an evaluation image, e.g. mw_val, scraped
    into the set), ``unsafe`` / ``watermark`` (high punsafe / pwatermark scores), ``failed`` (download failed)
    and the number of ``corrupt`` files. The hidden ground truth is in columns ``mw_true_label``,
    ``mw_caption_noise`` and ``mw_planted``."""
    from ..data import miniworld

    folder = Path(folder)
    mw = config["miniworld"]
    noise = mw.get("laion_noise", {})
    classes = list(mw["classes"])
    n = mw["per_class"]["laion"] * len(classes)
    tmp_dir = folder / ".render"
    base = miniworld.build_split(tmp_dir, "laion", seed=config["seed"], classes=classes,
                                 per_class=mw["per_class"]["laion"], image_size=mw["image_size"],
                                 laion_wrong=noise.get("wrong", 0.15), laion_ambiguous=noise.get("ambiguous", 0.1))
    rng = numpy_rng("miniworld-laion-plant", config["seed"])
    rows, images = [], []
    for _, r in base.iterrows():
        images.append((tmp_dir / r["path"]).read_bytes())
        rows.append({"caption": r["caption"], "mw_true_label": int(r["true_label_id"]),
                     "mw_caption_noise": r["caption_noise"], "mw_planted": ""})
    # planted faults on distinct items (never on the first, so a repost always has an earlier original)
    kinds = [("repost", plant.get("repost", 0.0)), ("eval_copy", plant.get("eval_copy", 0.0)),
             ("unsafe", plant.get("unsafe", 0.0)), ("watermark", plant.get("watermark", 0.0)),
             ("failed", plant.get("failed", 0.0))]
    pool = list(rng.permutation(np.arange(1, n)))
    for kind, frac in kinds:
        for _ in range(int(round(frac * n))):
            i = int(pool.pop())
            rows[i]["mw_planted"] = kind
            if kind == "repost":
                j = int(rng.integers(0, i))
                images[i] = images[j]
                rows[i]["mw_true_label"] = rows[j]["mw_true_label"]
                rows[i]["mw_caption_noise"] = "clean"
                rows[i]["caption"] = f"{classes[rows[j]['mw_true_label']]} design, free download"
            elif kind == "eval_copy":
                e = eval_manifest.iloc[int(rng.integers(len(eval_manifest)))]
                images[i] = (Path(eval_root) / e["path"]).read_bytes()
                rows[i]["mw_true_label"] = int(e["label_id"])
                rows[i]["mw_caption_noise"] = "clean"
                rows[i]["caption"] = f"a {classes[int(e['label_id'])]} shape"
    corrupt = [int(pool.pop()) for _ in range(int(plant.get("corrupt", 0)))]
    for i in corrupt:
        rows[i]["mw_planted"] = "corrupt"
        images[i] = images[i][: len(images[i]) // 3]  # a truncated PNG: the header decodes, the pixels do not
    for i, r in enumerate(rows):
        shard = f"{i // per_shard:05d}"
        key = f"{shard}{i % per_shard:04d}"
        failed = r["mw_planted"] == "failed"
        r.update(key=key, shard=shard, url=f"https://miniworld.invalid/laion/{key}.png",
                 status="failed_to_download" if failed else "success",
                 error_message="HTTP Error 404: Not Found" if failed else None,
                 width=None if failed else mw["image_size"], height=None if failed else mw["image_size"],
                 original_width=None if failed else mw["image_size"],
                 original_height=None if failed else mw["image_size"],
                 sha256=None if failed else sha256_bytes(images[i]),
                 punsafe=float(rng.uniform(0.9, 1.0) if r["mw_planted"] == "unsafe" else rng.uniform(0, 0.2)),
                 pwatermark=float(rng.uniform(0.9, 1.0) if r["mw_planted"] == "watermark" else rng.uniform(0, 0.3)))
        if not failed:
            write_bytes(folder / shard / f"{key}.png", images[i])
            write_bytes(folder / shard / f"{key}.txt", r["caption"].encode())
            write_json(folder / shard / f"{key}.json", {k: v for k, v in r.items() if not k.startswith("mw_")})
    df = pd.DataFrame(rows)
    for shard, part in df.groupby("shard"):
        write_parquet(part.drop(columns=["shard"]).reset_index(drop=True), folder / f"{shard}.parquet")
        write_json(folder / f"{shard}_stats.json", {"count": len(part), "successes": int(
            (part["status"] == "success").sum()), "failed_to_download": int((part["status"] != "success").sum())})
    import shutil

    shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("mini-world laion: %d samples in %d shards at %s", len(df), df["shard"].nunique(), folder)
    return df
