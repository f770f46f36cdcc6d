"""The manifest contract: one Parquet row per item, the same for the mini-world and the real data sets.

Required columns: item_id (unique str), label_id (int; -1 = no single label), label_name, prompt, path
(relative to the manifest's folder), split, source, sha256 (of the file's bytes). Adapters may add columns
(e.g. caption, true_label_id). Images are decoded with a pixel cap so a decompression bomb is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import GenbenchError
from ..tables import write_parquet

REQUIRED_COLUMNS = {
    "item_id": "string",
    "label_id": "integer",
    "label_name": "string",
    "prompt": "string",
    "path": "string",
    "split": "string",
    "source": "string",
    "sha256": "string",
}
MAX_IMAGE_PIXELS = 64_000_000  # well above any benchmark image; refuses decompression bombs


class ManifestError(GenbenchError, ValueError):
    pass


class ImageDecodeError(GenbenchError, ValueError):
    pass


def validate_manifest(df: pd.DataFrame, name: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest of '{name}' lacks column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise ManifestError(f"manifest of '{name}' has no items")
    if not pd.api.types.is_integer_dtype(df["label_id"]):
        raise ManifestError(f"manifest of '{name}': label_id must be integer, got {df['label_id'].dtype}")
    dup = df["item_id"][df["item_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"manifest of '{name}': duplicate item_id(s) {list(dup[:5])}")
    bad = df["path"][df["path"].map(lambda p: Path(p).is_absolute() or ".." in Path(p).parts)]
    if len(bad):
        raise ManifestError(f"manifest of '{name}': paths must be relative and inside the data set: {list(bad[:3])}")


def write_manifest(df: pd.DataFrame, path: str | Path, name: str, metadata: dict | None = None) -> None:
    validate_manifest(df, name)
    write_parquet(df, path, metadata={"dataset": name, **(metadata or {})})


def read_manifest(path: str | Path, name: str | None = None) -> pd.DataFrame:
    df = pd.read_parquet(path)
    validate_manifest(df, name or str(path))
    return df


def decode_image(path: str | Path, item_id: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode one image to uint8 HxWx3 RGB, refusing oversized or corrupt files with the item named.

    As the reference implementations (clean-fid, torchvision, ADM's evaluator) decode, so that features stay
    comparable with published statistics: PIL's ``convert('RGB')`` for every mode (grayscale replicated, CMYK
    converted without colour management, palette looked up, RGBA / LA alpha dropped), EXIF orientation not applied.
    One exception: 16-bit grayscale (``I;16*``) keeps its top 8 bits instead of PIL's clipping at 255. PNG text and
    ICC chunks over Pillow's limit fail to decode (and follow the set's decode_errors policy)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageDecodeError(
                    f"item '{item_id}' ({path}): {w}x{h} exceeds the decode cap of {max_pixels} pixels")
            if im.mode.startswith("I;16"):
                grey = (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except ImageDecodeError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise ImageDecodeError(f"item '{item_id}' ({path}): cannot decode image: {exc}") from exc


def load_images(manifest: pd.DataFrame, root: str | Path, size: int | None = None) -> np.ndarray:
    """All images of a manifest as uint8 NHWC; ``size`` (if given) must match, no silent resize here."""
    root = Path(root)
    arrs = []
    for item_id, rel in zip(manifest["item_id"], manifest["path"], strict=True):
        arr = decode_image(root / rel, item_id)
        if size is not None and arr.shape[:2] != (size, size):
            raise ImageDecodeError(f"item '{item_id}': expected {size}x{size}, found {arr.shape[1]}x{arr.shape[0]}")
        arrs.append(arr)
    return np.stack(arrs)
