"""ADM's reference batches (openai/guided-diffusion ``evaluations``; e.g. ``VIRTUAL_imagenet256_labeled.npz``) as a
real set, so that FIDs are computed against the same images as published numbers.

The file is a NumPy ``.npz``: ``arr_0`` = the reference images (N, H, W, 3) uint8, optionally ``arr_1`` = their
ImageNet labels (N,), and the evaluator's precomputed statistics ``mu`` / ``sigma`` (2048-d pool_3 of its TF
Inception graph) and ``mu_s`` / ``sigma_s`` (spatial features). The adapter streams ``arr_0`` out of the archive in
chunks (a 50k-image batch does not fit in memory at once), writes each image as a PNG under ``images/`` and a
manifest row per image; :func:`read_adm_statistics` reads ``mu`` / ``sigma`` for a Fréchet distance against the
evaluator's own statistics. Nothing is unpickled (``allow_pickle=False``).

ADM's evaluator feeds the images at their native size to the TF-FID graph, which resizes them with TF1 bilinear:
the ``inception_tf`` extractor with ``resize: tf1_bilinear`` is the matching preprocessing.
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import GenbenchError
from ..io import read_npy_header, sha256_bytes, write_bytes
from .classes import class_names_table, imagenet_classes

log = logging.getLogger(__name__)


class ADMBatchError(GenbenchError, ValueError):
    pass


def _member(zf: zipfile.ZipFile, key: str) -> str | None:
    names = set(zf.namelist())
    return f"{key}.npy" if f"{key}.npy" in names else None


def _open_array(zf: zipfile.ZipFile, key: str, what: str) -> tuple[Any, tuple[int, ...], np.dtype]:
    member = _member(zf, key)
    if member is None:
        raise ADMBatchError(f"{what}: no '{key}' array in the archive (has {sorted(zf.namelist())})")
    f = zf.open(member)
    try:
        shape, fortran, dtype = read_npy_header(f)  # the header only; nothing is unpickled
    except ValueError as exc:
        f.close()
        raise ADMBatchError(f"{what}: '{key}' {exc}") from None
    if fortran:
        raise ADMBatchError(f"{what}: '{key}' is stored in Fortran order; re-save it C-contiguous")
    return f, shape, dtype


def iter_adm_images(path: str | Path, chunk: int = 256) -> Iterator[np.ndarray]:
    """The reference images ``arr_0`` in chunks of ``chunk`` images (uint8 NHWC), read straight from the zip."""
    what = f"ADM reference batch {path}"
    with zipfile.ZipFile(path) as zf:
        f, shape, dtype = _open_array(zf, "arr_0", what)
        with f:
            if len(shape) != 4 or shape[3] != 3 or dtype != np.uint8:
                raise ADMBatchError(f"{what}: arr_0 must be uint8 images (N, H, W, 3), got {dtype} {shape}")
            per = int(np.prod(shape[1:]))
            for start in range(0, shape[0], chunk):
                n = min(chunk, shape[0] - start)
                buf = f.read(n * per)
                if len(buf) != n * per:
                    raise ADMBatchError(f"{what}: arr_0 is truncated at image {start + len(buf) // per}")
                yield np.frombuffer(buf, np.uint8).reshape((n, *shape[1:]))


def _small_array(path: str | Path, key: str) -> np.ndarray | None:
    with np.load(path, allow_pickle=False) as z:
        return np.asarray(z[key]) if key in z.files else None


def read_adm_statistics(path: str | Path, spatial: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The evaluator's precomputed (mu, sigma) (``mu_s`` / ``sigma_s`` with ``spatial``) in float64."""
    keys = ("mu_s", "sigma_s") if spatial else ("mu", "sigma")
    mu, sigma = (_small_array(path, k) for k in keys)
    if mu is None or sigma is None:
        raise ADMBatchError(f"ADM reference batch {path}: no precomputed {'/'.join(keys)}; use its images (arr_0)")
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ADMBatchError(f"ADM reference batch {path}: {keys[0]} {mu.shape} and {keys[1]} {sigma.shape} do not "
                            f"form a mean and a covariance")
    return mu, sigma


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def adm_ref(name: str, spec: dict[str, Any], config: dict[str, Any], out_dir: Path) -> pd.DataFrame:
    """Adapter: ``root`` = the reference ``.npz``. Labels from ``arr_1`` when present (names from the configured
    class-name table, prompts from ``prompt_template``), else label_id -1 (unlabelled: no per-class metrics)."""
    path = Path(spec["root"])
    if not path.is_file():
        raise ADMBatchError(f"{name}: {path} is missing; download the ADM reference batch (openai/guided-diffusion "
                            f"evaluations README, e.g. VIRTUAL_imagenet256_labeled.npz) to that path")
    try:
        labels = _small_array(path, "arr_1")
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ADMBatchError(f"{name}: {path} is not a readable .npz ({exc})") from exc
    names, table = None, spec.get("class_names", "wordnet")
    if labels is not None:
        labels = labels.astype(np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= 1000):
            raise ADMBatchError(f"{name}: arr_1 labels must be ImageNet ids 0..999, got {labels.min()}..{labels.max()}")
        names = class_names_table(imagenet_classes(), table)
    template = spec.get("prompt_template", "a photo of a {class}")
    rows, i = [], 0
    try:
        for batch in iter_adm_images(path):
            for image in batch:
                data = _png(image)
                rel = f"images/{i:06d}.png"
                write_bytes(out_dir / rel, data)
                label = int(labels[i]) if labels is not None and i < len(labels) else -1
                rows.append({"item_id": f"{i:06d}", "label_id": label,
                             "label_name": names[label] if names and label >= 0 else "",
                             "prompt": template.format(**{"class": names[label]}) if names and label >= 0 else "",
                             "path": rel, "split": "adm_ref", "source": path.name, "sha256": sha256_bytes(data),
                             "class_names": table if names else None})
                i += 1
    except zipfile.BadZipFile as exc:
        raise ADMBatchError(f"{name}: {path} is not a readable .npz ({exc})") from exc
    if labels is not None and len(labels) != i:
        raise ADMBatchError(f"{name}: arr_1 has {len(labels)} labels for {i} images")
    if not rows:
        raise ADMBatchError(f"{name}: {path} holds no images")
    log.info("%s: %d reference images from %s%s", name, i, path, "" if names else " (unlabelled)")
    return pd.DataFrame(rows)


def adm_image_count(path: str | Path) -> int:
    """How many images ``arr_0`` holds (read from its header)."""
    with zipfile.ZipFile(path) as zf:
        f, shape, _ = _open_array(zf, "arr_0", f"ADM reference batch {path}")
        f.close()
    return int(shape[0])


def adm_statistics(path: str | Path):
    """The batch's precomputed (mu, sigma) as the real side of FID (``datasets.<name>.statistics: precomputed``),
    named with the file and its SHA-256 prefix for the rows' note and the tables' provenance."""
    from ..io import sha256_file
    from ..metrics.context import RealStatistics

    path = Path(path)
    if not path.is_file():
        raise ADMBatchError(f"{path} is missing; download the ADM reference batch (openai/guided-diffusion "
                            f"evaluations README) to that path, or set statistics: images")
    mu, sigma = read_adm_statistics(path)
    try:  # sFID's: ADM's published sFIDs are against these
        mu_s, sigma_s = read_adm_statistics(path, spatial=True)
    except ADMBatchError:
        mu_s = sigma_s = None
    return RealStatistics(mu, sigma, adm_image_count(path),
                          f"the precomputed mu/sigma of {path.name} (sha256 {sha256_file(path)[:12]})", mu_s, sigma_s)


def compare_statistics(path: str | Path, features: np.ndarray) -> dict[str, float]:
    """How far the batch's precomputed (mu, sigma) are from the statistics of ``features`` (our extraction of its
    ``arr_0``): the Fréchet distance between the two, the largest mean difference and the relative Frobenius
    difference of the covariances. Both routes agree when these are at the level of float32 rounding."""
    from ..metrics.fid import feature_statistics, frechet_distance

    mu, sigma = read_adm_statistics(path)
    mu_f, sigma_f = feature_statistics(features, f"features of {Path(path).name}")
    if mu.shape != mu_f.shape:
        raise ADMBatchError(f"ADM reference batch {path}: precomputed {len(mu)}-d statistics vs {len(mu_f)}-d "
                            "features; extract with the TF-FID Inception (pool_3, 2048-d)")
    return {"fd": frechet_distance(mu, sigma, mu_f, sigma_f), "max_abs_mu": float(np.abs(mu - mu_f).max()),
            "rel_sigma": float(np.linalg.norm(sigma - sigma_f) / max(np.linalg.norm(sigma_f), 1e-300))}
