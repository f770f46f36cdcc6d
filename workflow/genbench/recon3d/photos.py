"""The seed benchmark's own inputs for natural objects: the photograph and mask it fed the image-to-3D models, kept
beside genbench's renders as the objects' ``legacy_input`` (docs/inputs3d.md, "Photo inputs as the seed made them").

The seed code (luoyan407/Benchmark_3D_Generative_Models, ``notebook/inference_GSO_time.py`` and
``notebook/inference_Animal3D.py``, the scripts its ``infer_and_eval_natural.sh`` runs) did this:

* **GSO**: the object's ``thumbnails/0.jpg``; its mask from the transformers ``mask-generation`` pipeline with
  ``facebook/sam2-hiera-large`` (``points_per_batch=64``, the pipeline's default thresholds), taking ``masks[1]``:
  the *second* mask in the pipeline's order (descending predicted IoU), which need not be the object. An image
  with fewer masks raised an IndexError that the script caught and skipped silently.
* **Animal3D**: ``images/test/<class>/<file>.<ext>`` with ``masks/test/<class>/<file>.png`` (``> 0``; the last
  channel of a multi-channel mask); the ground-truth mesh is the obj of the same file stem
  (``preprocess_Animal3D.py`` copies ``obj_files/test/**/*.obj`` into one folder, so stems repeated across classes
  overwrite each other there: here they are matched within the class first and an ambiguous stem is a skipped item).
* Image and mask go to SAM 3D as RGB plus the mask as alpha at the photo's full resolution
  (``notebook/inference.py``): ``legacy_input.png`` is that RGBA. No EXIF orientation is applied (``Image.open``),
  and a grayscale or palette photo is converted to RGB (the seed's ``image[..., :3]`` would have failed on it).

Which models got the mask is a per-model setting, ``reconstructors.<name>.photo_input`` (``rgba``: the mask as
alpha, as SAM 3D; ``rgb``: the photo alone, the model's own background handling, as the seed ran Hunyuan3D-2,
TripoSG, Hi3DGen and Direct3D), applied in :func:`genbench.recon3d.evaluate.reconstruct_dataset`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.manifest import MAX_IMAGE_PIXELS, ImageDecodeError, decode_image
from ..errors import GenbenchError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".tiff")  # the seed's get_all_images_pathlib
MASK_SOURCES = ("file", "sam2_auto")
# per adapter: where the photo and its mask come from unless datasets3d.<name>.legacy_input says otherwise
DEFAULTS: dict[str, dict[str, Any]] = {
    "gso": {"source": "photo", "image": "thumbnails/0.jpg",
            "mask": {"source": "sam2_auto", "index": 1, "points_per_batch": 64,
                     "model": {"repo_id": "facebook/sam2-hiera-large"}}},
    "animal3d": {"source": "photo", "split": "test", "mask": {"source": "file"}},
}


class PhotoInputError(GenbenchError, ValueError):
    """A photo input that cannot be built for one item (recorded as that item's legacy input being skipped)."""


@dataclass
class Photo:
    """Where one item's photograph and (for ``mask: file``) its mask are; ``skip`` says why there is none."""

    image: Path | None
    mask: Path | None = None
    skip: str | None = None


def legacy_input_spec(name: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Data set ``name``'s photo-input settings (its adapter's defaults under the config's), or None without."""
    own = spec.get("legacy_input")
    if not own:
        return None
    base = DEFAULTS.get(spec["adapter"])
    if base is None:
        raise PhotoInputError(f"datasets3d.{name}.legacy_input: the '{spec['adapter']}' adapter has no photographs; "
                              f"photo inputs exist for {', '.join(DEFAULTS)}; remove the key")
    mask = {**base["mask"], **(own.get("mask") or {})}
    if mask["source"] not in MASK_SOURCES:
        raise PhotoInputError(f"datasets3d.{name}.legacy_input.mask.source '{mask['source']}' is not one of "
                              f"{', '.join(MASK_SOURCES)}")
    return {**base, **own, "mask": mask}


def gso_photo(mesh_path: Path, spec: dict[str, Any]) -> Photo:
    """GSO: ``<object>/<image>`` (default ``thumbnails/0.jpg``) beside ``<object>/meshes/model.obj``."""
    image = mesh_path.parent.parent / spec["image"]
    if not image.is_file():
        return Photo(None, skip=f"no photograph {image} (the seed skipped such objects too)")
    return Photo(image)


def animal3d_photo(root: Path, category: str, stem: str, spec: dict[str, Any]) -> Photo:
    """Animal3D: ``images/<split>/<category>/<stem>.<ext>`` and ``masks/<split>/<category>/<stem>.png``; when the
    mesh's folder is not the class folder, the unique image of that stem anywhere under ``images/<split>``."""
    images = root / "images" / spec["split"]
    found = [p for p in sorted((images / category).glob(f"{stem}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        found = [p for p in sorted(images.rglob(f"{stem}.*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        return Photo(None, skip=f"no photograph named {stem}.* under {images}")
    if len(found) > 1:
        return Photo(None, skip=f"{len(found)} photographs named {stem}.* under {images} "
                                f"({', '.join(str(p.relative_to(images)) for p in found[:3])}); the match is ambiguous")
    image = found[0]
    mask = root / "masks" / spec["split"] / image.parent.name / f"{image.stem}.png"
    if spec["mask"]["source"] == "file" and not mask.is_file():
        return Photo(None, skip=f"no mask {mask} for {image.name} (the seed skipped such images too)")
    return Photo(image, mask)


def read_mask_file(path: Path, shape: tuple[int, int], what: str, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The seed's ``load_mask``: ``> 0`` of the file's values, the last channel of a multi-channel mask; it must be
    the photo's size (SAM 3D asserts it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > max_pixels:
                raise PhotoInputError(f"{what}: mask {path} exceeds the decode cap of {max_pixels} pixels")
            arr = np.asarray(im)
    except PhotoInputError:
        raise
    except Exception as exc:
        raise PhotoInputError(f"{what}: cannot decode mask {path}: {exc}") from exc
    if arr.ndim == 3:
        arr = arr[..., -1]
    if arr.shape != shape:
        raise PhotoInputError(f"{what}: mask {path} is {arr.shape[1]}x{arr.shape[0]}, the photo "
                              f"{shape[1]}x{shape[0]}; they must match")
    return arr > 0


MaskGenerator = Callable[[np.ndarray], list[tuple[np.ndarray, float]]]


class Sam2AutoMasks:
    """The transformers ``mask-generation`` pipeline the seed ran (SAM 2, automatic masks over a point grid),
    loaded from local weights once per data set. Calling it returns the masks with their scores, in the pipeline's
    order (descending predicted IoU after its non-maximum suppression)."""

    def __init__(self, weights: Path, runtime: Any, points_per_batch: int = 64, **kwargs: Any):
        import torch
        from transformers import pipeline

        self.runtime = runtime
        self.pipe = pipeline("mask-generation", model=str(weights), device=torch.device(runtime.device),
                             dtype=torch.float32)
        self.kwargs = {"points_per_batch": int(points_per_batch), **kwargs}

    def __call__(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        from PIL import Image

        out = self.pipe(Image.fromarray(image, "RGB"), **self.kwargs)
        masks = [np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m, dtype=bool)
                 for m in out["masks"]]
        scores = [float(s) for s in out["scores"]]
        return list(zip(masks, scores, strict=True))


def pick_mask(masks: list[tuple[np.ndarray, float]], index: int, shape: tuple[int, int], what: str) -> np.ndarray:
    """``masks[index]`` in the generator's order, as the seed took ``masks[1]``."""
    if len(masks) <= index:
        raise PhotoInputError(f"{what}: the automatic mask generator found {len(masks)} mask(s); mask index {index} "
                              f"was requested (the seed's script skipped such images silently)")
    mask = masks[index][0]
    if mask.shape != shape:
        raise PhotoInputError(f"{what}: generated mask {mask.shape} does not match the photo {shape}")
    return mask


def compose_rgba(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB plus the mask as alpha (0/255), as the seed's ``inference.py`` merges them."""
    return np.concatenate([rgb[..., :3], (mask.astype(np.uint8) * 255)[..., None]], axis=2)


def build_photo_input(photo: Photo, spec: dict[str, Any], what: str,
                      generator: Callable[[], MaskGenerator] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """One item's legacy RGBA input and what it was made from (manifest columns). ``generator`` returns the
    automatic mask generator (built on first use)."""
    try:
        rgb = decode_image(photo.image, what)
    except ImageDecodeError as exc:
        raise PhotoInputError(str(exc)) from exc
    shape = rgb.shape[:2]
    mask_spec = spec["mask"]
    if mask_spec["source"] == "file":
        mask = read_mask_file(photo.mask, shape, what)
        source = f"file:{photo.mask}"
    else:
        if generator is None:
            raise PhotoInputError(f"{what}: mask source sam2_auto needs the mask generator")
        index = int(mask_spec.get("index", 1))
        mask = pick_mask(generator()(rgb), index, shape, what)
        source = f"sam2_auto[{index}]"
    if not mask.any():
        raise PhotoInputError(f"{what}: the mask ({source}) is empty")
    return compose_rgba(rgb, mask), {"legacy_input_source": str(photo.image), "legacy_mask_source": source,
                                     "legacy_input_size": f"{shape[1]}x{shape[0]}",
                                     "legacy_mask_fraction": float(mask.mean())}
