"""Small fixtures for the streaming and runtime tests: an image set with real-data quirks (mixed sizes, JPEG and
PNG, and optionally a truncated JPEG, a zero-byte file and an undecodable PNG in the middle), and tiny random-weight
models saved the way the pipeline saves them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from genbench.config import validate_config
from genbench.data.manifest import write_manifest
from genbench.io import save_npz, sha256_file

TINY = Path(__file__).parent / "config" / "tiny.yaml"
BAD = {"bad_truncated": "truncated JPEG", "bad_empty": "zero-byte file", "bad_png": "undecodable PNG"}


def tiny_config() -> dict:
    cfg = yaml.safe_load(TINY.read_text())
    validate_config(cfg)
    return cfg


def write_image_set(root: Path, n: int = 12, bad: bool = False, sizes=((40, 30), (23, 57), (64, 64)),
                    name: str = "realset") -> Path:
    """``n`` images cycling through ``sizes`` (w, h), JPEG and PNG alternately; with ``bad``, the three broken files
    of ``BAD`` sit in the middle. Returns the manifest path."""
    rng = np.random.default_rng(0)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ext = "jpg" if i % 2 else "png"
        rel = f"img/{i:04d}.{ext}"
        Image.fromarray(arr).save(root / rel, quality=90) if ext == "jpg" else Image.fromarray(arr).save(root / rel)
        rows.append((f"item{i:04d}", rel))
        if bad and i == n // 2:
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="JPEG", quality=90)
            (root / "img/trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
            (root / "img/empty.jpg").write_bytes(b"")
            png = io.BytesIO()
            Image.fromarray(arr).save(png, format="PNG")
            data = bytearray(png.getvalue())
            data[40:80] = bytes(40)  # corrupt IHDR/IDAT: PIL cannot decode it
            (root / "img/broken.png").write_bytes(bytes(data))
            rows += [("bad_truncated", "img/trunc.jpg"), ("bad_empty", "img/empty.jpg"),
                     ("bad_png", "img/broken.png")]
    df = pd.DataFrame({"item_id": [r[0] for r in rows], "label_id": np.arange(len(rows), dtype=np.int64) % 4,
                       "label_name": "x", "prompt": "a photo of a thing", "path": [r[1] for r in rows],
                       "split": "val", "source": "test", "sha256": [sha256_file(root / r[1]) for r in rows]})
    write_manifest(df, root / "manifest.parquet", name)
    return root / "manifest.parquet"


def write_shards(root: Path, counts=(5, 0, 4), size: int = 16) -> list[Path]:
    """Generated-cell shards as genbench.gen2d.generate writes them (an empty one included)."""
    rng = np.random.default_rng(1)
    paths = []
    start = 0
    for s, n in enumerate(counts):
        ids = np.array([f"g{start + i}" for i in range(n)], dtype=str)
        images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) if n else np.zeros((0, 0, 0, 3), np.uint8)
        p = root / f"shard{s}.npz"
        save_npz(p, images=images, item_id=ids, label_id=np.arange(n, dtype=np.int64) % 4,
                 nfe=np.full(n, 2, np.int64), forward_passes=np.full(n, 4, np.int64))
        paths.append(p)
        start += n
    return paths


def classifier_checkpoint(path: Path, num_classes: int = 4) -> Path:
    import torch
    from safetensors.torch import save_file

    from genbench.features.classifier import MiniClassifier

    torch.manual_seed(0)
    net = MiniClassifier(num_classes)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def dinov2_checkpoint(folder: Path, cfg: dict) -> Path:
    from genbench.stages import stage_init_extractor

    stage_init_extractor("mw_dinov2", cfg, folder / "model.safetensors")
    return folder / "model.safetensors"


def clip_checkpoint(path: Path, cfg: dict) -> Path:
    import open_clip
    import torch
    from safetensors.torch import save_file

    from genbench.features.clip_train import register_model_config

    spec = cfg["embedders"]["mw_clip"]
    register_model_config(spec["model"], spec["model_config"])
    torch.manual_seed(0)
    m = open_clip.create_model(spec["model"])
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, str(path))
    return path
