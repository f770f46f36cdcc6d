"""The two scoring protocols of the 3D track, applied to every model's output alike (docs/metrics3d.md).

``legacy`` reproduces the seed benchmark's metric code: 10k uniform surface samples per side (Gaussian centres as
they are below 10k, randomly downsampled to ~10k above, as the seed's ``load_and_sample_ply`` with open3d's
``random_down_sample``; ``downsample_points: false`` keeps them all), each set normalised by its centroid and max
|coordinate|, point-to-point ICP from the identity with max correspondence 0.3 (the seed's natural-object script
uses 0.1: per-data-set settings under ``datasets``), then F1@0.01 (strict <), 64^3 point-bin IoU/Dice over
[-1, 1]^3, Chamfer = mean + mean Euclidean, EMD on 2,048 points by Hungarian matching. GT: the legacy surface
(marching cubes x zooms, affine ignored) for medical items, the normalised mesh for objects. Random draws are seeded
per item (the seed code's were
not), so numbers reproduce the protocol, not the seed paper's exact random samples.

``corrected`` (the default): enough samples for the thresholds (``samples``; the GT's pre-computed samples), the
prediction moved onto the GT's centroid and RMS radius, ICP with a rotation search (24 cube rotations by default),
F-scores at several tau, Chamfer L1/L2, Hausdorff, HD95, normal consistency, EMD, and solid-occupancy IoU/Dice of
the aligned prediction vs the GT's winding-number occupancy at the GT's resolution, with HD95/ASSD/NSD on those
grids. All lengths are in units of the GT's normalised frame (longest bounding-box side = 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from ..io import load_npz
from .align import centroid_maxabs, icp, match_rms, rotation_search, transform
from .distances import distance_bundle, emd, iou_dice, point_bins, surface_metrics
from .meshes import MeshError, solid_occupancy

LEGACY_DEFAULTS = {"samples": 10_000, "max_corr": 0.3, "tau": 0.01, "bins": 64, "emd_points": 2048,
                   "downsample_points": True, "rotation_starts": 1, "icp_subsample": 2000, "iou": "point_bins"}
# ``rotation_starts`` > 1 and ``iou: solid`` are not the seed's: they exist so that the protocol-delta table
# (genbench.metrics.protocol_delta) can switch one knob of the legacy protocol at a time to the corrected setting
CORRECTED_DEFAULTS = {"samples": 100_000, "max_corr": 0.2, "taus": [0.005, 0.01, 0.02], "rotation_starts": 24,
                      "icp_subsample": 2000, "emd_points": 2048, "occupancy": "auto", "nsd_tau": 0.02,
                      "percentile": 95}


def load_gt_mesh(item: dict[str, Any], legacy: bool = False) -> trimesh.Trimesh:
    """The item's GT surface: the legacy one (zooms only) when asked and present, else gt.ply."""
    root = Path(item["_root"])
    if legacy and item.get("gt_legacy") and isinstance(item["gt_legacy"], str):
        d = load_npz(root / item["gt_legacy"])
        return trimesh.Trimesh(d["vertices"].astype(np.float64), d["faces"], process=False)
    return trimesh.load(str(root / item["gt_mesh"]), force="mesh", process=False)


def sample_mesh(mesh: trimesh.Trimesh, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-uniform surface points and their face normals (as open3d's sample_points_uniformly)."""
    pts, face = trimesh.sample.sample_surface(mesh, n, seed=int(rng.integers(2**31)))
    return np.asarray(pts, dtype=np.float64), np.asarray(mesh.face_normals[face], dtype=np.float64)


def pred_points(pred: dict[str, Any], n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    if pred["kind"] == "mesh":
        return sample_mesh(pred["mesh"], n, rng)
    return np.asarray(pred["points"], dtype=np.float64), None


def random_down_sample(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The seed's ``load_and_sample_ply`` for a point cloud of more than ``n`` points: open3d's
    ``random_down_sample(n / len)``, which keeps int(ratio * len) points drawn without replacement (so ~n, at most
    n); at most ``n`` points are returned as they are."""
    if len(points) <= n:
        return points
    keep = int((n / len(points)) * len(points))
    return points[np.sort(rng.choice(len(points), keep, replace=False))]


def protocol_settings(cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
    """A protocol's settings for one data set: its ``datasets.<name>`` entry over the protocol-wide ones."""
    return {**{k: v for k, v in cfg.items() if k != "datasets"}, **(cfg.get("datasets") or {}).get(dataset, {})}


def score_legacy(pred: dict[str, Any], item: dict[str, Any], cfg: dict[str, Any],
                 rng: np.random.Generator) -> dict[str, Any]:
    c = {**LEGACY_DEFAULTS, **cfg}
    p, _ = pred_points(pred, c["samples"], rng)
    if pred["kind"] != "mesh" and c["downsample_points"]:
        p = random_down_sample(p, int(c["samples"]), rng)
    g, _ = sample_mesh(load_gt_mesh(item, legacy=True), c["samples"], rng)
    p, cp, sp = centroid_maxabs(p)
    g, cg, sg = centroid_maxabs(g)
    if int(c["rotation_starts"]) > 1:
        res, _ = rotation_search(p, g, c["max_corr"], starts=int(c["rotation_starts"]),
                                 subsample=int(c["icp_subsample"]), rng=rng)
    else:
        res = icp(p, g, c["max_corr"])
    p = transform(p, res.transformation)
    d = distance_bundle(p, g, taus=[c["tau"]])
    if c["iou"] == "point_bins":
        iou, dice = iou_dice(point_bins(p, c["bins"]), point_bins(g, c["bins"]))
    elif c["iou"] == "solid":
        iou, dice = _legacy_solid_iou(pred, item, (cp, sp), (cg, sg), res.transformation, int(c["bins"]))
    else:
        raise ValueError(f"legacy protocol: iou {c['iou']!r} is not one of point_bins, solid")
    iou_name = "point_bin" if c["iou"] == "point_bins" else "solid"
    return {"f1": d[f"fscore@{c['tau']:g}"], "precision": d[f"precision@{c['tau']:g}"],
            "recall": d[f"recall@{c['tau']:g}"], "chamfer_l1": d["chamfer_l1"], "hausdorff": d["hausdorff"],
            f"{iou_name}_iou": iou, f"{iou_name}_dice": dice, "emd": emd(p, g, c["emd_points"], rng),
            "icp_fitness": res.fitness, "icp_rmse": res.inlier_rmse, "icp_iterations": res.iterations}


def _legacy_solid_iou(pred: dict[str, Any], item: dict[str, Any], norm_p: tuple[np.ndarray, float],
                      norm_g: tuple[np.ndarray, float], align: np.ndarray, bins: int) -> tuple[float, float]:
    """Solid-occupancy IoU/Dice in the legacy frame: both surfaces normalised as their samples were (centroid,
    max |coordinate|), the prediction moved by the legacy ICP, filled on ``bins``^3 cells over [-1, 1]^3. NaN for a
    prediction without a surface (Gaussian centres, points)."""
    if pred["kind"] != "mesh":
        return float("nan"), float("nan")
    meshes = []
    for mesh, (c, s), m in ((pred["mesh"], norm_p, align), (load_gt_mesh(item, legacy=True), norm_g, None)):
        mesh = mesh.copy()
        mesh.vertices = (np.asarray(mesh.vertices, dtype=np.float64) - c) / s
        if m is not None:
            mesh.apply_transform(m)
        meshes.append(solid_occupancy(mesh, bins, 1.0)[0])
    return iou_dice(meshes[0], meshes[1])


def score_corrected(pred: dict[str, Any], item: dict[str, Any], cfg: dict[str, Any],
                    rng: np.random.Generator) -> dict[str, Any]:
    c = {**CORRECTED_DEFAULTS, **cfg}
    gt = load_npz(Path(item["_root"]) / item["gt_samples"])
    g, gn = gt["points"].astype(np.float64), gt["normals"].astype(np.float64)
    if len(g) > c["samples"]:
        keep = rng.choice(len(g), c["samples"], replace=False)
        g, gn = g[keep], gn[keep]
    p, pn = pred_points(pred, c["samples"], rng)
    _, sim = match_rms(p, g)
    p_sim = transform(p, sim)
    res, start = rotation_search(p_sim, g, c["max_corr"], starts=int(c["rotation_starts"]),
                                 subsample=int(c["icp_subsample"]), rng=rng)
    full = res.transformation @ sim
    p_al = transform(p, full)
    rot = res.transformation[:3, :3]
    d = distance_bundle(p_al, g, taus=c["taus"], percentile=c["percentile"],
                        pred_normals=None if pn is None else pn @ rot.T, gt_normals=gn)
    out: dict[str, Any] = {**d, "emd": emd(p_al, g, c["emd_points"], rng), "icp_fitness": res.fitness,
                           "icp_rmse": res.inlier_rmse, "icp_iterations": res.iterations, "rotation_start": start,
                           "alignment": json.dumps(np.round(full, 8).tolist())}
    if pred["kind"] == "mesh":
        res_grid = int(gt["occupancy_res"])
        gocc = np.unpackbits(gt["occupancy"])[: res_grid ** 3].astype(bool).reshape((res_grid,) * 3)
        mesh = pred["mesh"].copy()
        mesh.apply_transform(full)
        pocc, method = solid_occupancy(mesh, res_grid, 0.5, c["occupancy"])
        out["solid_iou"], out["solid_dice"] = iou_dice(pocc, gocc)
        out["occupancy_method"] = method
        if pocc.any() and gocc.any():
            out.update(surface_metrics(pocc, gocc, spacing=1.0 / res_grid, nsd_tolerance=c["nsd_tau"],
                                       percentile=c["percentile"]))
        out["sample_spacing"] = float(np.sqrt(mesh.area / c["samples"]))
    else:
        out["occupancy_method"] = f"none ({pred['kind']}: no surface to fill)"
    return out


PROTOCOLS = {"legacy": score_legacy, "corrected": score_corrected}


def load_prediction(folder: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A stored reconstruction. A file that cannot be decoded (truncated, corrupt) is a :class:`MeshError` naming
    it: the item is recorded as failed, the data set goes on."""
    path = folder / ("pred.ply" if meta["kind"] == "mesh" else "pred.npz")
    try:
        if meta["kind"] == "mesh":
            mesh = trimesh.load(str(path), force="mesh", process=False)
            if not isinstance(mesh, trimesh.Trimesh):
                raise ValueError(f"holds a {type(mesh).__name__}, not a triangle mesh")
            return {"kind": "mesh", "mesh": mesh}
        return {"kind": meta["kind"], "points": load_npz(path)["points"]}
    except Exception as exc:  # decoders raise anything (IndexError, struct.error, BadZipFile, ...)
        raise MeshError(f"{path}: cannot be decoded ({type(exc).__name__}: {exc}); delete the item's prediction "
                        f"folder and rerun the reconstruction") from exc
