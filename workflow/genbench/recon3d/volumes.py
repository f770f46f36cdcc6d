"""Medical volumes -> single-slice inputs, in the seed benchmark's legacy protocol and in a corrected protocol.

**Legacy** (luoyan407/Benchmark_3D_Generative_Models, notebook/decompose_nii_to_obj_*.py then the models'
``extract_all_objects_middle_slices``): per label, ``image * (label == id)`` cropped to the label's bounding box with
nilearn ``crop_img``'s one-voxel pad (``[min - 1, max + 2)`` clipped to the volume); the slice is
``(min + max) // 2`` of the label's extent along voxel axis 0 of that crop (the voxel array as stored, orientation
ignored); the slice is repeated to 3 channels, min-max scaled over the slice and cast with ``astype(uint8)``
(truncation); the mask slice is the alpha. MSD Brain's 4D volumes use modality 0.

**Corrected** (default): image and label are reoriented to RAS (``nibabel.as_closest_canonical``), the slice is
taken in an anatomical plane (axial/coronal/sagittal) with a slice policy (label centre or maximal label area),
intensities are CT-windowed (level ± width / 2) or, for MRI, scaled between percentiles of the label's voxels; the
slice is resampled to square pixels (the finer in-plane spacing), the mask becomes the alpha channel, and the
result is padded to a square around the label with a margin. Display convention (radiological, see
:data:`PLANES`): axial and coronal images show the patient's right on the image's left; the top is anterior
(axial) or superior (coronal, sagittal); sagittal images show anterior on the left.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage

from ..errors import GenbenchError

MAX_VOXELS = 1024**3 // 2  # decode cap: larger volumes are refused (a decompression-bomb guard for .nii.gz)


class VolumeError(GenbenchError, ValueError):
    """A volume or label map that cannot be used; the message names the item and the fix."""


def load_nifti(path: str | Path, what: str, channel: int | None = None, allow_4d: bool = False
               ) -> nib.Nifti1Image:
    """A 3D NIfTI image with finite values. 4D volumes need ``channel`` (e.g. MSD Brain's modality 0)."""
    path = Path(path)
    if not path.exists():
        raise VolumeError(f"{what}: {path} is missing")
    try:
        img = nib.load(str(path))
        shape = img.shape
    except Exception as exc:  # nibabel raises several types for corrupt headers/files
        raise VolumeError(f"{what}: {path} is not a readable NIfTI file ({exc})") from exc
    hdr = img.header
    if "qform_code" in hdr and int(hdr["qform_code"]) == 0 and int(hdr["sform_code"]) == 0:
        raise VolumeError(f"{what}: {path} has no geometry (qform_code and sform_code are 0), so its voxel spacing "
                          f"and orientation are unknown; write the scanner affine into the file (nibabel: "
                          f"img.set_sform(affine, code=1)) or convert it again from the original DICOM")
    if int(np.prod(shape)) > MAX_VOXELS:
        raise VolumeError(f"{what}: {path} has {int(np.prod(shape))} voxels (> {MAX_VOXELS}); crop or resample it")
    if len(shape) == 4 and shape[3] == 1:
        img = img.slicer[..., 0]
    elif len(shape) == 4:
        if channel is None:
            raise VolumeError(f"{what}: {path} is 4D {tuple(shape)}; set the data set's 'channel' to the modality "
                              f"index to use (e.g. 0 = FLAIR for MSD Task01)")
        if not 0 <= channel < shape[3]:
            raise VolumeError(f"{what}: channel {channel} is out of range for {path} with {shape[3]} channels")
        img = img.slicer[..., channel]
    elif len(shape) != 3:
        raise VolumeError(f"{what}: {path} has {len(shape)} dimensions {tuple(shape)}; a 3D volume is needed")
    return img


# what decoding a (possibly truncated or corrupt) .nii / .nii.gz raises: EOFError (gzip stream cut off),
# zlib.error, OSError (gzip.BadGzipFile, short reads), ValueError (nibabel: data shorter than the header says)
DECODE_ERRORS = (EOFError, zlib.error, OSError, ValueError)


def volume_data(img: nib.Nifti1Image, what: str) -> np.ndarray:
    """The voxel array as float64. Any decode failure becomes a :class:`VolumeError` naming the file."""
    try:
        data = np.asarray(img.dataobj, dtype=np.float64)
    except DECODE_ERRORS as exc:
        path = img.get_filename() or "the in-memory image"
        raise VolumeError(f"{what}: {path} cannot be decoded ({type(exc).__name__}: {exc}); the file is truncated "
                          f"or corrupt: download or convert it again") from exc
    bad = ~np.isfinite(data)
    if bad.any():
        raise VolumeError(f"{what}: {int(bad.sum())} NaN/inf voxel(s) in {img.get_filename() or 'the image'}; "
                          f"replace them in the file (e.g. with the background value) or remove the case")
    return data


def label_mask(labels: np.ndarray, label: int, what: str) -> np.ndarray:
    mask = labels == label
    if not mask.any():
        present = sorted(int(v) for v in np.unique(labels) if v != 0)
        raise VolumeError(f"{what}: label {label} is absent from the label map (present: {present})")
    return mask


def check_same_grid(image: nib.Nifti1Image, labels: nib.Nifti1Image, what: str) -> None:
    if image.shape[:3] != labels.shape[:3]:
        raise VolumeError(f"{what}: image {image.shape[:3]} and label map {labels.shape[:3]} differ in shape; "
                          f"resample the label map to the image grid (nearest neighbour)")
    if not np.allclose(image.affine, labels.affine, atol=1e-3):
        raise VolumeError(f"{what}: image and label map have different affines; resample the label map to the "
                          f"image grid (nearest neighbour)")


# ---------------------------------------------------------------------------------------------------------------
# legacy protocol


def to_uint8_legacy(arr: np.ndarray) -> np.ndarray:
    """Min-max over the array, x 255, ``astype(uint8)`` (truncating), zeros when constant: as the seed code."""
    lo, hi = arr.min(), arr.max()
    norm = np.zeros_like(arr) if hi == lo else (arr - lo) / (hi - lo)
    return (norm * 255).astype(np.uint8)


def legacy_crop(mask: np.ndarray) -> tuple[slice, slice, slice]:
    """nilearn ``crop_img(binary_mask)``: the non-zero bounding box padded by one voxel, clipped to the volume."""
    idx = np.nonzero(mask)
    start = np.maximum(np.array([i.min() for i in idx]) - 1, 0)
    end = np.minimum(np.array([i.max() for i in idx]) + 2, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(start, end, strict=True))  # type: ignore[return-value]


@dataclass
class SliceInput:
    rgba: np.ndarray  # (H, W, 4) uint8, alpha = mask
    slice_index: int  # in the frame the protocol slices (legacy: crop voxel axis 0; corrected: RAS volume)
    plane: str
    pixel_mm: tuple[float, float]
    meta: dict[str, Any]


def legacy_input(image: np.ndarray, labels: np.ndarray, label: int, what: str,
                 axis: int = 0) -> tuple[SliceInput, np.ndarray]:
    """The seed benchmark's input for one label, and the cropped binary mask its legacy GT is built from; the slice
    is the middle of the label's extent along voxel ``axis`` (the seed's --slice_axis)."""
    if axis not in (0, 1, 2):
        raise ValueError(f"{what}: legacy slice axis must be 0, 1 or 2, got {axis}")
    mask = label_mask(labels, label, what)
    crop = legacy_crop(mask)
    obj = (image * mask)[crop]
    cmask = mask[crop]
    along = np.nonzero(cmask)[axis]
    k = int((along.min() + along.max()) // 2)
    rgb = to_uint8_legacy(np.repeat(np.take(obj, k, axis=axis)[:, :, None], 3, axis=2))
    alpha = np.take(cmask, k, axis=axis).astype(np.uint8) * 255
    rgba = np.concatenate([rgb, alpha[:, :, None]], axis=2)
    return SliceInput(rgba, k, f"axis{axis}", (float("nan"), float("nan")),
                      {"crop_start": [s.start for s in crop], "volume_slice_index": k + crop[axis].start}), cmask


# ---------------------------------------------------------------------------------------------------------------
# corrected protocol

# plane -> (normal axis in RAS voxel order, function turning the RAS slice into display rows x columns).
# RAS+: voxel axis 0 increases toward the patient's right, 1 anterior, 2 superior. Display (radiological): axial
# rows anterior -> posterior, columns patient right -> left; coronal rows superior -> inferior, columns right ->
# left; sagittal rows superior -> inferior, columns anterior -> posterior.
PLANES = {
    "axial": (2, lambda s: s[::-1, ::-1].T),  # s[x, y] -> rows y descending (A first), cols x descending (R first)
    "coronal": (1, lambda s: s[::-1, ::-1].T),  # s[x, z] -> rows z descending (S first), cols x descending
    "sagittal": (0, lambda s: s[::-1, ::-1].T),  # s[y, z] -> rows z descending (S first), cols y descending (A)
}


def canonical(img: nib.Nifti1Image) -> nib.Nifti1Image:
    return nib.as_closest_canonical(img)


def choose_slice(mask: np.ndarray, axis: int, policy: str) -> int:
    area = mask.sum(axis=tuple(a for a in range(3) if a != axis))
    present = np.nonzero(area)[0]
    centre = (int(present.min()) + int(present.max())) // 2
    if policy == "centre":
        return centre
    if policy == "max_area":
        best = np.flatnonzero(area == area.max())
        return int(best[np.argmin(np.abs(best - centre))])  # ties: the one nearest the centre
    raise ValueError(f"unknown slice policy '{policy}' (centre, max_area)")


def window(values: np.ndarray, spec: dict[str, Any], label_values: np.ndarray) -> np.ndarray:
    """Intensities -> [0, 1]: CT window (level, width) or MRI percentiles of the label's voxels."""
    kind = spec.get("kind", "ct")
    if kind == "ct":
        level, width = float(spec.get("level", 40)), float(spec.get("width", 400))
        if width <= 0:
            raise ValueError(f"CT window width must be > 0, got {width}")
        return np.clip((values - (level - width / 2)) / width, 0.0, 1.0)
    if kind == "mri":
        lo_p, hi_p = spec.get("percentiles", [0.5, 99.5])
        lo, hi = np.percentile(label_values, [lo_p, hi_p])
        if hi <= lo:
            return np.zeros_like(values)
        return np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    raise ValueError(f"unknown intensity window kind '{kind}' (ct, mri)")


def corrected_input(image: nib.Nifti1Image, labels: nib.Nifti1Image, label: int, what: str, plane: str = "axial",
                    policy: str = "centre", intensity: dict[str, Any] | None = None, margin: float = 0.1,
                    size: int | None = None) -> SliceInput:
    if plane not in PLANES:
        raise ValueError(f"unknown plane '{plane}' (axial, coronal, sagittal)")
    img_c, lab_c = canonical(image), canonical(labels)
    data = volume_data(img_c, what)
    mask = label_mask(np.asarray(lab_c.dataobj), label, what)
    axis, to_display = PLANES[plane]
    k = choose_slice(mask, axis, policy)
    take = [slice(None)] * 3
    take[axis] = k  # type: ignore[call-overload]
    s_img = window(data[tuple(take)], intensity or {"kind": "ct"}, data[mask])
    s_mask = mask[tuple(take)].astype(np.float64)
    zooms = np.asarray(img_c.header.get_zooms()[:3], dtype=np.float64)
    in_plane = [float(zooms[a]) for a in range(3) if a != axis]
    # square pixels at the finer in-plane spacing
    px = min(in_plane)
    factors = [z / px for z in in_plane]
    if any(abs(f - 1) > 1e-6 for f in factors):
        s_img = ndimage.zoom(s_img, factors, order=1, mode="nearest", grid_mode=True)
        s_mask = ndimage.zoom(s_mask, factors, order=1, mode="nearest", grid_mode=True)
    s_img, s_mask = to_display(s_img), to_display(s_mask) >= 0.5
    rgba = np.concatenate([np.repeat(np.round(s_img * 255)[:, :, None], 3, axis=2),
                           (s_mask * 255)[:, :, None]], axis=2).astype(np.uint8)
    rgba = square_around(rgba, s_mask, margin)
    if size:
        from PIL import Image

        rgb = Image.fromarray(rgba[:, :, :3]).resize((size, size), Image.Resampling.BILINEAR)
        alpha = Image.fromarray(rgba[:, :, 3]).resize((size, size), Image.Resampling.NEAREST)
        px = px * rgba.shape[0] / size
        rgba = np.concatenate([np.asarray(rgb), np.asarray(alpha)[:, :, None]], axis=2)
    return SliceInput(rgba, k, plane, (px, px), {"policy": policy, "intensity": intensity or {"kind": "ct"},
                                                 "orientation": "RAS"})


def square_around(rgba: np.ndarray, mask: np.ndarray, margin: float) -> np.ndarray:
    """A square crop centred on the mask's bounding box, side = (1 + 2 margin) x its longer side, zero-padded."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise VolumeError("the chosen slice has no label pixels")
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = int(np.ceil(max(r1 - r0, c1 - c0) * (1 + 2 * margin)))
    side = max(side, 8)
    rc, cc = (r0 + r1) / 2, (c0 + c1) / 2
    top, left = int(np.floor(rc - side / 2)), int(np.floor(cc - side / 2))
    out = np.zeros((side, side, 4), dtype=np.uint8)
    sr0, sc0 = max(top, 0), max(left, 0)
    sr1, sc1 = min(top + side, rgba.shape[0]), min(left + side, rgba.shape[1])
    out[sr0 - top: sr1 - top, sc0 - left: sc1 - left] = rgba[sr0:sr1, sc0:sc1]
    return out
