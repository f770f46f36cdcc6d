"""Image-to-3D reconstructors: one registry, one contract.

Contract: ``Reconstructor.reconstruct(rgba, view, seed)`` takes an RGBA uint8 image whose alpha is the object
mask, the conditioning camera when one is known (``view``: the item's ``input.json``, else None) and a per-item
seed, and returns a :class:`Reconstruction`: what the model produced (``mesh``, ``gaussians`` = Gaussian centres,
or ``points``), in which frame (``world`` when placed through the known camera, else ``model``), and the settings
that were used (recorded in the tables). Scoring treats all kinds alike (docs/metrics3d.md): meshes are sampled,
point outputs are used as they are.

Built-in geometric baselines (CPU, the lower bounds of every table and the mini-world's reconstructors) work on the
silhouette: the image square maps to [-1, 1]^2 (x right, y up), depth toward the camera is z:

* ``ellipsoid`` — the ellipse with the silhouette's second moments (semi-axes 2 sqrt(lambda)), depth semi-axis the
  geometric mean of the two;
* ``extrude`` — the silhouette extruded along the view direction, depth = ``depth_ratio`` x silhouette width;
* ``revolution`` — per image row, the disc spanned by the row's silhouette extent (a surface of revolution about
  the vertical axis through each row's centre), intersected with the silhouette: a symmetric visual hull.

With a known conditioning camera the silhouette frame is placed in the world: the image plane through the origin,
scaled to the frustum's width there (radius tan(fov/2)).

``gt_resample`` is not a model: it returns the item's own GT surface, so that every protocol reports its ceiling
(a shape scored against an independent resampling of itself) beside the models.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import trimesh
from skimage import measure

from ..catalog import RECONSTRUCTORS
from ..errors import GenbenchError

KINDS = ("mesh", "gaussians", "points")


class ReconstructionError(GenbenchError, RuntimeError):
    """A reconstruction that failed or produced nothing usable (recorded per item, the run continues)."""


class EmptyInputError(GenbenchError, ValueError):
    """An input image with an empty mask (the seed benchmark drops such items from the averages)."""


@dataclass
class Reconstruction:
    kind: str
    frame: str
    mesh: trimesh.Trimesh | None = None
    points: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    splats: Any = None  # the Gaussians themselves (recon3d.gaussians.Gaussians) when the model makes them
    files: dict[str, bytes] = field(default_factory=dict)  # extra files written beside the prediction (name: bytes)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown reconstruction kind '{self.kind}' ({', '.join(KINDS)})")
        if (self.mesh if self.kind == "mesh" else self.points) is None:
            part = "mesh" if self.kind == "mesh" else "points"
            raise ReconstructionError(f"a '{self.kind}' reconstruction without its {part}")


class Reconstructor(ABC):
    """Subclasses implement :meth:`reconstruct`; the GPUs and env a kind's jobs get are its entry's in
    genbench.catalog.RECONSTRUCTORS."""

    uses_ground_truth: ClassVar[bool] = False

    def __init__(self, name: str, spec: dict[str, Any]):
        self.name = name
        self.spec = spec

    @abstractmethod
    def reconstruct(self, rgba: np.ndarray, view: dict | None, seed: int, item: dict[str, Any]) -> Reconstruction: ...


def alpha_mask(rgba: np.ndarray, what: str) -> np.ndarray:
    if rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"{what}: expected an RGBA image (H, W, 4), got shape {rgba.shape}")
    mask = rgba[..., 3] >= 128
    if not mask.any():
        raise EmptyInputError(f"{what}: the input mask (alpha) is empty")
    return mask


def downsample_mask(mask: np.ndarray, res: int) -> np.ndarray:
    """Area-average the (square-padded) mask to res x res, threshold 0.5."""
    from PIL import Image

    h, w = mask.shape
    side = max(h, w)
    sq = np.zeros((side, side), dtype=np.uint8)
    sq[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = mask * 255
    small = np.asarray(Image.fromarray(sq).resize((res, res), Image.BOX)) >= 128
    if not small.any():  # a tiny object: keep its centre pixel rather than lose it
        r, c = np.argwhere(sq > 0).mean(0) * res / side
        small[min(int(r), res - 1), min(int(c), res - 1)] = True
    return small


def image_to_world(view: dict | None) -> tuple[np.ndarray, str]:
    """4x4 from the silhouette frame ([-1, 1]^2 image, z toward the camera) to the world (via the conditioning
    camera), or the identity in the model frame when no camera is known."""
    if not view:
        return np.eye(4), "model"
    frame = view["frames"][0]
    c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
    s = float(frame.get("radius", 2.0)) * math.tan(float(frame.get("fov", view.get("camera_angle_x"))) / 2)
    to_cam = np.diag([s, s, s, 1.0])
    to_cam[2, 3] = -float(frame.get("radius", np.linalg.norm(c2w[:3, 3])))  # the origin sits `radius` ahead
    return c2w @ to_cam, "world"


def volume_mesh(vol: np.ndarray, res: int, zres: int, what: str) -> trimesh.Trimesh:
    """Marching cubes of a [x, y, z] occupancy over [-1, 1]^3 (padded so the surface closes)."""
    if not vol.any():
        raise ReconstructionError(f"{what}: the baseline's volume is empty")
    verts, faces, _, _ = measure.marching_cubes(np.pad(vol.astype(np.float32), 1), 0.5)
    verts = (verts - 0.5) / np.array([res, res, zres]) * 2 - 1
    mesh = trimesh.Trimesh(verts, faces, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


class SilhouetteBaseline(Reconstructor):
    def reconstruct(self, rgba: np.ndarray, view: dict | None, seed: int, item: dict[str, Any]) -> Reconstruction:
        what = f"{self.name}/{item.get('item_id', '?')}"
        res = int(self.spec.get("resolution", 64))
        mask = downsample_mask(alpha_mask(rgba, what), res)
        xy = mask[::-1].T  # [x, y] with y up
        mesh = self.shape(xy, res, what)
        m, frame = image_to_world(view)
        mesh.apply_transform(m)
        return Reconstruction("mesh", frame, mesh=mesh, meta={"resolution": res, **self.settings()})

    def settings(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def shape(self, xy: np.ndarray, res: int, what: str) -> trimesh.Trimesh: ...


class EllipsoidBaseline(SilhouetteBaseline):
    def shape(self, xy: np.ndarray, res: int, what: str) -> trimesh.Trimesh:
        pix = (np.argwhere(xy) + 0.5) / res * 2 - 1
        centre = pix.mean(0)
        cov = np.cov(pix.T) if len(pix) > 1 else np.eye(2) * (1 / res) ** 2
        lam, vec = np.linalg.eigh(cov + np.eye(2) * (1 / res) ** 2 / 3)  # a single pixel still has an extent
        a, b = 2 * np.sqrt(np.maximum(lam, 1e-12))
        mesh = trimesh.creation.icosphere(subdivisions=3)
        m = np.eye(4)
        m[:2, :2] = vec @ np.diag([a, b])
        m[2, 2] = math.sqrt(a * b)
        m[:2, 3] = centre
        mesh.apply_transform(m)
        return mesh


class ExtrudeBaseline(SilhouetteBaseline):
    def settings(self) -> dict[str, Any]:
        return {"depth_ratio": float(self.spec.get("depth_ratio", 0.5))}

    def shape(self, xy: np.ndarray, res: int, what: str) -> trimesh.Trimesh:
        cols = np.flatnonzero(xy.any(1))
        width = (cols.max() - cols.min() + 1) / res * 2
        depth = max(self.settings()["depth_ratio"] * width, 2 / res)
        zc = (np.arange(res) + 0.5) / res * 2 - 1
        vol = xy[:, :, None] & (np.abs(zc) <= depth / 2)[None, None, :]
        if not vol.any():  # thinner than one voxel: the middle slab
            vol = xy[:, :, None] & (np.arange(res) == res // 2)[None, None, :]
        return volume_mesh(vol, res, res, what)


class RevolutionBaseline(SilhouetteBaseline):
    def shape(self, xy: np.ndarray, res: int, what: str) -> trimesh.Trimesh:
        c = (np.arange(res) + 0.5) / res * 2 - 1
        vol = np.zeros((res, res, res), dtype=bool)
        for y in np.flatnonzero(xy.any(0)):
            xs = c[np.flatnonzero(xy[:, y])]
            mid, rad = (xs.min() + xs.max()) / 2, max((xs.max() - xs.min()) / 2 + 1 / res, 1 / res)
            disc = (c[:, None] - mid) ** 2 + c[None, :] ** 2 <= rad ** 2  # [x, z]
            vol[:, y, :] = disc & xy[:, y][:, None]
        return volume_mesh(vol, res, res, what)


class GroundTruthCeiling(Reconstructor):
    """The item's GT surface itself (the protocol's self-score ceiling); the legacy protocol's GT for legacy."""

    uses_ground_truth = True

    def reconstruct(self, rgba: np.ndarray, view: dict | None, seed: int, item: dict[str, Any]) -> Reconstruction:
        from .protocols import load_gt_mesh

        mesh = load_gt_mesh(item, legacy=item.get("_input") == "legacy_input")
        return Reconstruction("mesh", "gt", mesh=mesh, meta={"ceiling": True})


def load_reconstructor(name: str, spec: dict[str, Any]) -> Reconstructor:
    return RECONSTRUCTORS.lookup(spec["kind"])(name, spec)


__all__ = ["RECONSTRUCTORS", "Reconstruction", "ReconstructionError", "EmptyInputError", "Reconstructor",
           "load_reconstructor", "Path"]
