"""Deterministic NIfTI phantoms for the mini-world's medical inputs.

Each case is a CT-like volume (air -1000 HU, a body ellipsoid of soft tissue ~40 HU, structures of their own
intensities, Gaussian noise) with a label map of several structures: ellipsoids, tori and smooth blobs (a
thresholded sum of Gaussians), placed and sized in world millimetres and voxelised at voxel centres. Voxel spacing is
anisotropic, and the affine is one of: RAS-aligned, LPS-stored (DICOM-like, x and y mirrored) or oblique (rotated
about two axes), so orientation handling is exercised. Everything is a pure function of (seed, case index).
Analytic volumes are returned for the ellipsoids and tori (4/3 pi abc, 2 pi^2 R r^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from ..seeding import derive_seed

ORIENTATIONS = ("ras", "lps", "oblique")


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_affine(shape: tuple[int, int, int], spacing: tuple[float, float, float], orientation: str,
                angles: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """An affine whose volume centre lands at world (0, 0, 0)."""
    if orientation == "ras":
        direction = np.eye(3)
    elif orientation == "lps":
        direction = np.diag([-1.0, -1.0, 1.0])
    elif orientation == "oblique":
        direction = rotation(*angles)
    else:
        raise ValueError(f"unknown phantom orientation '{orientation}' ({', '.join(ORIENTATIONS)})")
    lin = direction @ np.diag(spacing)
    centre = (np.asarray(shape) - 1) / 2
    aff = np.eye(4)
    aff[:3, :3] = lin
    aff[:3, 3] = -lin @ centre
    return aff


@dataclass
class Structure:
    label: int
    name: str
    kind: str  # ellipsoid | torus | blob
    centre: np.ndarray  # world mm
    params: dict[str, Any]
    rot: np.ndarray = field(default_factory=lambda: np.eye(3))
    hu: float = 80.0

    def inside(self, pts: np.ndarray) -> np.ndarray:
        q = (pts - self.centre) @ self.rot  # world -> structure frame (rot columns are the structure axes)
        if self.kind == "ellipsoid":
            a = np.asarray(self.params["radii"])
            return ((q / a) ** 2).sum(-1) <= 1.0
        if self.kind == "torus":
            big, small = self.params["R"], self.params["r"]
            d = np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2) - big
            return d**2 + q[:, 2] ** 2 <= small**2
        if self.kind == "blob":
            f = np.zeros(len(q))
            for c, s in zip(self.params["centres"], self.params["sigmas"], strict=True):
                f += np.exp(-((q - np.asarray(c)) ** 2).sum(-1) / (2 * s**2))
            return f >= self.params["level"]
        raise ValueError(f"unknown structure kind '{self.kind}'")

    def analytic_volume(self) -> float | None:
        if self.kind == "ellipsoid":
            a, b, c = self.params["radii"]
            return 4 / 3 * math.pi * a * b * c
        if self.kind == "torus":
            return 2 * math.pi**2 * self.params["R"] * self.params["r"] ** 2
        return None


@dataclass
class Phantom:
    image: nib.Nifti1Image
    labels: nib.Nifti1Image
    structures: list[Structure]
    orientation: str


def voxel_centres_world(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).reshape(-1, 3)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def build_phantom(structures: list[Structure], shape: tuple[int, int, int], spacing: tuple[float, float, float],
                  orientation: str, seed: int, angles: tuple[float, float, float] = (0.3, -0.2, 0.4),
                  noise_hu: float = 10.0, body_radii: tuple[float, float, float] | None = None) -> Phantom:
    affine = make_affine(shape, spacing, orientation, angles)
    pts = voxel_centres_world(shape, affine)
    extent = np.asarray(shape) * np.asarray(spacing) / 2
    body = Structure(0, "body", "ellipsoid", np.zeros(3), {"radii": body_radii or tuple(0.92 * extent)})
    hu = np.full(len(pts), -1000.0)
    hu[body.inside(pts)] = 40.0
    lab = np.zeros(len(pts), dtype=np.uint8)
    for s in structures:
        m = s.inside(pts)
        lab[m] = s.label
        hu[m] = s.hu
    rng = np.random.default_rng(seed)
    hu = hu + rng.normal(0.0, noise_hu, size=hu.shape)
    img = nib.Nifti1Image(hu.reshape(shape).astype(np.int16), affine)
    labels = nib.Nifti1Image(lab.reshape(shape), affine)
    for im in (img, labels):
        im.header.set_xyzt_units("mm")
        im.set_qform(affine, code=1)
        im.set_sform(affine, code=1)
    return Phantom(img, labels, structures, orientation)


def mini_world_case(index: int, seed: int, shape: tuple[int, int, int] = (48, 44, 24),
                    spacing: tuple[float, float, float] = (0.9, 0.8, 2.5)) -> Phantom:
    """Case ``index`` of the mini-world: an ellipsoid, a torus and a blob with case-dependent sizes, positions and
    rotations; orientation cycles RAS / LPS / oblique."""
    rng = np.random.default_rng(derive_seed(seed, "phantom", index))
    ext = np.asarray(shape) * np.asarray(spacing) / 2  # half extent in mm
    def jitter(scale):  # noqa: E306
        return rng.uniform(-scale, scale, 3)
    structures = [
        Structure(1, "ellipsoid", "ellipsoid", np.array([-0.35, 0.2, 0.0]) * ext + jitter(1.5),
                  {"radii": tuple(float(r) for r in rng.uniform([5, 4, 6], [8, 6, 11]))},
                  rotation(*rng.uniform(-0.6, 0.6, 3)), hu=90.0),
        Structure(2, "torus", "torus", np.array([0.35, 0.1, 0.05]) * ext + jitter(1.5),
                  {"R": float(rng.uniform(5.5, 7.0)), "r": float(rng.uniform(2.2, 3.0))},
                  rotation(*rng.uniform(-1.2, 1.2, 3)), hu=150.0),
        Structure(3, "blob", "blob", np.array([0.0, -0.45, -0.1]) * ext + jitter(1.0),
                  {"centres": [tuple(float(v) for v in rng.uniform(-3, 3, 3)) for _ in range(3)],
                   "sigmas": [float(v) for v in rng.uniform(2.5, 4.0, 3)], "level": 0.45},
                  rotation(*rng.uniform(-1, 1, 3)), hu=60.0),
    ]
    return build_phantom(structures, shape, spacing, ORIENTATIONS[index % 3], derive_seed(seed, "noise", index))


def save_nifti(img: nib.Nifti1Image, path: str | Path) -> None:
    """Atomic, byte-reproducible .nii.gz (gzip with mtime 0)."""
    import gzip

    from ..io import write_bytes

    write_bytes(path, gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))
