"""Streaming image sets: one reader for every image set (a manifest of real files, a generated cell's .npz shards)
that yields bounded batches of uint8 HWC images, decoded in worker processes (torch DataLoader), so that peak
memory depends on the batch size and the worker count, never on the number of items.

- Images keep their own size (real data sets mix sizes); a batch is a list of HWC arrays, stacked by the consumer
  when it needs one size (``Batch.array``).
- Generated shards are memory-mapped: the ``images`` member of an uncompressed .npz (what genbench writes) is
  mapped in place and read row by row; the small per-item arrays (item_id, label_id, nfe, ...) are read whole.
- An image that cannot be decoded (truncated, zero bytes, corrupt, over the pixel cap) follows the data set's
  ``decode_errors`` policy: ``fail`` raises a one-line error naming the item, the file and the fix; ``skip`` leaves it
  out and reports it (item_id, reason) with the results, so the rest of the job is never lost.
- Progress (items, rate, ETA) goes to the rule's log through ``logging`` (genbench.progress).
"""

from __future__ import annotations

import logging
import struct
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GenbenchError
from ..io import RUNTIME_KEY, read_npy_header
from ..progress import Progress
from .manifest import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image, read_manifest

log = logging.getLogger(__name__)
DECODE_POLICIES = ("fail", "skip")


PREPARE_METHODS = ("none", "center_crop", "squash")
FILTERS = ("bicubic", "lanczos", "bilinear", "box")


@dataclass(frozen=True)
class Preparation:
    """A named preparation of every image of a set, applied after decoding and before each extractor's own
    preprocessing (config ``datasets.<name>.prepare`` for real sets, ``models.<name>.prepare`` for a model's
    generated cells, e.g. a text-to-image model's LANCZOS 1024 -> 256 downsample):

    - ``none``: the decoded image as is;
    - ``center_crop``: ADM's evaluation convention (guided-diffusion ``center_crop_arr``): halve with a box filter
      while the short side is >= 2 x size, resize the short side to ``size`` (bicubic), crop the centre square;
    - ``squash``: resize to size x size without cropping, with ``filter`` (bicubic unless named).
    """

    method: str = "none"
    size: int | None = None
    filter: str = "bicubic"

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None, where: str) -> Preparation:
        spec = dict(spec or {})
        prep = cls(spec.pop("method", "none"), spec.pop("size", None), spec.pop("filter", "bicubic"))
        if spec:
            raise ValueError(f"{where}.prepare: unknown key(s) {sorted(spec)} (method, size, filter)")
        if prep.method not in PREPARE_METHODS:
            raise ValueError(f"{where}.prepare.method '{prep.method}': expected one of {', '.join(PREPARE_METHODS)}")
        if prep.method != "none" and not (isinstance(prep.size, int) and prep.size > 0):
            raise ValueError(f"{where}.prepare: method '{prep.method}' needs a positive integer size")
        if prep.filter not in FILTERS:
            raise ValueError(f"{where}.prepare.filter '{prep.filter}': expected one of {', '.join(FILTERS)}")
        return prep

    def describe(self) -> str:
        if self.method == "none":
            return "none (decoded as is)"
        if self.method == "center_crop":
            return (f"center_crop {self.size} (ADM: box-halve while short side >= {2 * self.size}, bicubic short "
                    f"side to {self.size}, centre crop)")
        return f"squash to {self.size} x {self.size} ({self.filter}, no crop)"

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        if self.method == "none":
            return arr
        from PIL import Image

        im = Image.fromarray(arr)
        if self.method == "squash":
            if im.size == (self.size, self.size):
                return arr
            resample = getattr(Image.Resampling, self.filter.upper())
            return np.asarray(im.resize((self.size, self.size), resample=resample))
        while min(im.size) >= 2 * self.size:
            im = im.resize(tuple(x // 2 for x in im.size), resample=Image.Resampling.BOX)
        scale = self.size / min(im.size)
        im = im.resize(tuple(round(x * scale) for x in im.size), resample=Image.Resampling.BICUBIC)
        out = np.asarray(im)
        y, x = (out.shape[0] - self.size) // 2, (out.shape[1] - self.size) // 2
        return np.ascontiguousarray(out[y:y + self.size, x:x + self.size])


class ImageSet:
    """Items with ids and labels; ``load(i)`` decodes item i to uint8 HxWx3 or raises ImageDecodeError;
    ``prepare`` is applied to each decoded image (in the decoding worker)."""

    name: str
    item_id: np.ndarray
    label_id: np.ndarray
    prepare: Preparation = Preparation()

    def __len__(self) -> int:
        return len(self.item_id)

    def load(self, i: int) -> np.ndarray:
        raise NotImplementedError


class ManifestImages(ImageSet):
    """The files of a manifest (paths relative to ``root``), decoded with the pixel cap."""

    def __init__(self, manifest: pd.DataFrame, root: str | Path, name: str, max_pixels: int = MAX_IMAGE_PIXELS):
        self.name = name
        self.paths = [str(Path(root) / p) for p in manifest["path"]]
        self.item_id = manifest["item_id"].to_numpy(str)
        self.label_id = manifest["label_id"].to_numpy(np.int64)
        self.max_pixels = max_pixels

    @classmethod
    def from_path(cls, manifest_path: str | Path, name: str | None = None) -> ManifestImages:
        return cls(read_manifest(manifest_path, name), Path(manifest_path).parent, name or str(manifest_path))

    def load(self, i: int) -> np.ndarray:
        return decode_image(self.paths[i], str(self.item_id[i]), self.max_pixels)


def npz_member(path: str | Path, key: str) -> np.ndarray:
    """``key`` of an .npz without reading it: a read-only memory map when the member is stored uncompressed (as
    np.savez writes it), else the decompressed array."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            with zf.open(info) as f:
                return np.lib.format.read_array(f, allow_pickle=False)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: member {key}.npy has no local zip header")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        try:
            shape, fortran, dtype = read_npy_header(f)
        except ValueError as exc:
            raise ValueError(f"{path}: member {key}.npy {exc}") from None
        offset = f.tell()
    if 0 in shape:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


class ShardError(GenbenchError, ValueError):
    """A generated shard that cannot be used; the message names the shard and the fix."""


SHARD_KEYS = ("images", "item_id", "label_id")
_SHARD_FIX = "delete it and rerun snakemake (the generate rule writes it again)"


def _shard_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """A shard's per-item arrays, ``images`` as a memory map: checked to be readable, complete, uint8 NHWC RGB
    images and arrays of one length, else a ShardError naming the shard."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("images", RUNTIME_KEY)}
            if "images" not in z.files:
                raise ShardError(f"{path}: lacks the array(s) ['images']; {_SHARD_FIX}")
        arrays["images"] = npz_member(path, "images")
    except ShardError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise ShardError(f"{path}: not a readable shard ({type(exc).__name__}: {exc}); {_SHARD_FIX}") from exc
    missing = [k for k in SHARD_KEYS if k not in arrays]
    if missing:
        raise ShardError(f"{path}: lacks the array(s) {missing}; {_SHARD_FIX}")
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ShardError(f"{path}: images are {images.dtype}{list(images.shape)}, a shard holds uint8 NHWC RGB "
                         f"images (the ADM convention); {_SHARD_FIX}")
    n = {k: len(v) for k, v in arrays.items() if v.ndim}
    if len(set(n.values())) > 1:
        raise ShardError(f"{path}: arrays of different lengths {n}; {_SHARD_FIX}")
    return arrays


def _check_same_layout(shards: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    """Shards of one cell agree in arrays, dtypes and per-item shapes: nothing is upcast or broadcast."""
    ref_path, ref = shards[0]
    redo = "the shards come from different runs: delete the cell's shards and rerun snakemake"
    for path, part in shards[1:]:
        if set(part) != set(ref):
            raise ShardError(f"{path}: arrays {sorted(part)} differ from {ref_path}'s {sorted(ref)}; {redo}")
        for k, v in part.items():
            r = ref[k]
            same_dtype = v.dtype == r.dtype or (v.dtype.kind == r.dtype.kind == "U")
            if not same_dtype or v.shape[1:] != r.shape[1:]:
                raise ShardError(f"{path}: array '{k}' is {v.dtype}{list(v.shape[1:])} per item, {ref_path} has "
                                 f"{r.dtype}{list(r.shape[1:])}; {redo}")


class ShardImages(ImageSet):
    """The .npz shards of a generated cell, in order, each checked before use (ShardError names a truncated,
    incomplete or mismatched shard). Shards without items (a data set smaller than shards x batch) are left out.
    ``columns`` holds every per-item array except ``images`` (item_id, label_id, nfe, ...)."""

    def __init__(self, paths: Sequence[str | Path], name: str):
        self.name = name
        self.paths: list[str] = []
        parts: list[dict[str, np.ndarray]] = []
        full: list[tuple[str, dict[str, np.ndarray]]] = []
        for p in paths:
            arrays = _shard_arrays(p)
            if len(arrays["item_id"]):
                full.append((str(p), arrays))
        if full:
            _check_same_layout(full)
        for p, arrays in full:
            self.paths.append(p)
            parts.append({k: v for k, v in arrays.items() if k != "images"})
        if not parts:
            self.columns = {"item_id": np.zeros(0, str), "label_id": np.zeros(0, np.int64)}
        else:
            self.columns = {k: np.concatenate([c[k] for c in parts]) for k in parts[0]}
        self.item_id = self.columns["item_id"]
        self.label_id = self.columns["label_id"]
        self._starts = np.cumsum([0] + [len(c["item_id"]) for c in parts])
        self._maps: dict[int, np.ndarray] = {}

    def __getstate__(self) -> dict[str, Any]:  # worker processes map the files themselves
        return {**self.__dict__, "_maps": {}}

    def load(self, i: int) -> np.ndarray:
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        if s not in self._maps:
            self._maps[s] = npz_member(self.paths[s], "images")
        row = self._maps[s][i - self._starts[s]]
        if row.dtype != np.uint8 or row.ndim != 3 or row.shape[-1] != 3:
            raise ImageDecodeError(f"item '{self.item_id[i]}' ({self.paths[s]}): expected uint8 HxWx3, "
                                   f"found {row.dtype} {row.shape}")
        return np.array(row)


@dataclass
class Batch:
    index: np.ndarray  # positions in the set of the decoded images
    images: list[np.ndarray]
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (position, reason)

    def array(self) -> np.ndarray | None:
        """The images as one uint8 NHWC array when they share a size, else None."""
        if self.images and len({im.shape for im in self.images}) == 1:
            return np.stack(self.images)
        return None


class _BatchReader:
    """Map-style data set of batches (batch b = items [b * size, (b + 1) * size)), decoded in the worker."""

    def __init__(self, images: ImageSet, batch_size: int):
        self.images, self.batch_size = images, batch_size

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, b: int) -> Batch:
        index, imgs, skipped = [], [], []
        for i in range(b * self.batch_size, min(len(self.images), (b + 1) * self.batch_size)):
            try:
                imgs.append(self.images.prepare(self.images.load(i)))
                index.append(i)
            except ImageDecodeError as exc:
                skipped.append((i, " ".join(str(exc).split())))
        return Batch(np.array(index, dtype=np.int64), imgs, skipped)


def _as_is(batch: Batch) -> Batch:
    return batch


def workers_for(threads: int | None) -> int:
    """Decoding worker processes for a job with ``threads`` cores: all but the one running the model."""
    return max(0, int(threads or 1) - 1)


def iter_batches(images: ImageSet, batch_size: int, workers: int = 0, policy: str = "fail",
                 what: str | None = None, log_every: float = 30.0) -> Iterator[Batch]:
    """Batches of ``images`` in order, decoded by ``workers`` processes (0: in this process), at most
    2 x workers batches ahead. ``policy``: what an undecodable image does (module doc)."""
    from torch.utils.data import DataLoader

    if policy not in DECODE_POLICIES:
        raise ValueError(f"decode_errors '{policy}' is not one of {', '.join(DECODE_POLICIES)}")
    loader = DataLoader(_BatchReader(images, batch_size), batch_size=None, shuffle=False, num_workers=workers,
                        collate_fn=_as_is, prefetch_factor=2 if workers else None, persistent_workers=False)
    progress = Progress(what or images.name, len(images), log_every, log)
    for batch in loader:
        for i, reason in batch.skipped:
            if policy == "fail":
                raise ImageDecodeError(f"image set '{images.name}': {reason}; replace or remove the file, or set "
                                       f"decode_errors: skip for this data set to skip and record such items")
            log.warning("%s: skipping item '%s': %s", what or images.name, images.item_id[i], reason)
        yield batch
        progress.update(len(batch.index) + len(batch.skipped))


@dataclass
class StreamResult:
    outputs: dict[str, np.ndarray]  # per-item arrays of the kept items, in set order
    index: np.ndarray  # positions of the kept items
    skipped: pd.DataFrame  # item_id, reason

    def skipped_arrays(self) -> dict[str, np.ndarray]:
        """``skipped_item_id`` / ``skipped_reason`` for the stage's .npz, only when something was skipped (an
        output of a clean set stays exactly as before)."""
        if not len(self.skipped):
            return {}
        return {"skipped_item_id": self.skipped["item_id"].to_numpy(str),
                "skipped_reason": self.skipped["reason"].to_numpy(str)}


def map_batches(images: ImageSet, fn: Callable[[list[np.ndarray], np.ndarray], dict[str, np.ndarray]], *,
                batch_size: int, workers: int = 0, policy: str = "fail", what: str | None = None) -> StreamResult:
    """``fn(images, positions)`` on every batch; its per-item arrays concatenated in set order."""
    parts: dict[str, list[np.ndarray]] = {}
    kept, skipped = [], []
    for batch in iter_batches(images, batch_size, workers, policy, what):
        skipped += [(str(images.item_id[i]), reason) for i, reason in batch.skipped]
        if not batch.images:
            continue
        for k, v in fn(batch.images, batch.index).items():
            parts.setdefault(k, []).append(v)
        kept.append(batch.index)
    if not kept:
        raise ImageDecodeError(f"image set '{images.name}': no image could be decoded"
                               + (f" ({len(skipped)} skipped, e.g. {skipped[0][0]}: {skipped[0][1]})"
                                  if skipped else " (the set is empty)"))
    return StreamResult({k: np.concatenate(v) for k, v in parts.items()}, np.concatenate(kept),
                        pd.DataFrame(skipped, columns=["item_id", "reason"]))
