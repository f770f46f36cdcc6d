"""Geometry metrics of the 3D track: point-set distances, F-scores, solid and point-bin IoU/Dice, surface distances
on voxel masks, normal consistency and EMD. Formulas: docs/metrics3d.md. Every function is checked against a
reference implementation in tests/test_metrics3d.py (point-cloud-utils, open3d, MONAI, trimesh, scipy).

The point-set bundle (:func:`distance_bundle`) answers Chamfer (L1 and squared), F-scores at any number of
thresholds, Hausdorff and HD95 from ONE pair of nearest-neighbour queries (a k-d tree per side, queried on the
job's threads), instead of one pair per metric as separate library calls would.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import GenbenchError


class PointSetError(GenbenchError, ValueError):
    """An empty or non-finite point set (names the set)."""


def check_points(pts: np.ndarray, what: str) -> np.ndarray:
    pts = np.asarray(pts, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise PointSetError(f"{what}: expected an (N, 3) point array, got shape {pts.shape}")
    if len(pts) == 0:
        raise PointSetError(f"{what}: the point set is empty")
    if not np.isfinite(pts).all():
        raise PointSetError(f"{what}: {int((~np.isfinite(pts)).any(1).sum())} points have NaN/inf coordinates")
    return pts


def workers(n: int) -> int:
    """The job's threads for large queries (the rule's ``threads``, which ``stages.setup_logging`` puts into
    OMP_NUM_THREADS; every core outside a job); one for small ones (thread start-up costs more than it saves).
    The neighbours found do not depend on it."""
    if n < 20_000:
        return 1
    try:
        return max(int(os.environ["OMP_NUM_THREADS"]), 1)
    except (KeyError, ValueError):
        return -1


def kdtree(points: np.ndarray) -> cKDTree:
    """A k-d tree for nearest-neighbour queries on surface samples. SciPy's default (median splits, compact nodes)
    is slow on points that lie on a 2D surface when the queries are far from it (a poor reconstruction): at 2 x 100k
    samples 2.9 s per query against 0.6 s with sliding-midpoint splits and 64-point leaves (same distances;
    benchmarks/bench_metrics3d.py). Near queries cost the same either way."""
    return cKDTree(points, leafsize=64, balanced_tree=False, compact_nodes=False)


def nn(query: np.ndarray, ref: np.ndarray | cKDTree) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from every query point to its nearest reference point, and that point's index."""
    tree = ref if isinstance(ref, cKDTree) else kdtree(ref)
    d, i = tree.query(query, k=1, workers=workers(len(query)))
    return d, i


def fscore_from(d_pg: np.ndarray, d_gp: np.ndarray, tau: float) -> tuple[float, float, float]:
    """Standard precision (pred points within tau of GT), recall (GT points within tau of pred) and their harmonic
    mean; strict ``<`` as the seed benchmark."""
    p = float(np.mean(d_pg < tau))
    r = float(np.mean(d_gp < tau))
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)


def distance_bundle(pred: np.ndarray, gt: np.ndarray, taus: Sequence[float] = (), percentile: float = 95.0,
                    pred_normals: np.ndarray | None = None, gt_normals: np.ndarray | None = None) -> dict[str, float]:
    """All point-set metrics from one nearest-neighbour query each way.

    chamfer_l1 = mean d(P->G) + mean d(G->P) (Euclidean, as point-cloud-utils and the seed benchmark);
    chamfer_l2 = mean d^2 + mean d^2 (squared, as pytorch3d); hausdorff = max of the two one-sided maxima;
    hd{percentile} = max of the two directed percentiles (MONAI's convention); fscore@tau with precision/recall;
    normal_consistency = mean over both directions of |n . n_nn| (when both sets carry normals)."""
    pred, gt = check_points(pred, "prediction"), check_points(gt, "ground truth")
    d_pg, i_pg = nn(pred, gt)
    d_gp, i_gp = nn(gt, pred)
    out = {"chamfer_l1": float(d_pg.mean() + d_gp.mean()),
           "chamfer_l2": float((d_pg ** 2).mean() + (d_gp ** 2).mean()),
           "accuracy": float(d_pg.mean()), "completeness": float(d_gp.mean()),
           "hausdorff": float(max(d_pg.max(), d_gp.max())),
           f"hd{percentile:g}": float(max(np.percentile(d_pg, percentile), np.percentile(d_gp, percentile)))}
    for tau in taus:
        p, r, f = fscore_from(d_pg, d_gp, tau)
        out[f"precision@{tau:g}"], out[f"recall@{tau:g}"], out[f"fscore@{tau:g}"] = p, r, f
    if pred_normals is not None and gt_normals is not None:
        out["normal_consistency"] = normal_consistency(pred_normals, gt_normals, i_pg, i_gp)
    return out


def normal_consistency(pred_normals: np.ndarray, gt_normals: np.ndarray, i_pg: np.ndarray,
                       i_gp: np.ndarray) -> float:
    """Occupancy Networks' normal consistency: mean |cos| between each point's normal and its nearest neighbour's
    in the other set, averaged over both directions (orientation-agnostic, 1 = perfect)."""
    def unit(n: np.ndarray) -> np.ndarray:
        n = np.asarray(n, dtype=np.float64)
        return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)

    pn, gn = unit(pred_normals), unit(gt_normals)
    a = np.abs((pn * gn[i_pg]).sum(1)).mean()
    b = np.abs((gn * pn[i_gp]).sum(1)).mean()
    return float((a + b) / 2)


def emd(pred: np.ndarray, gt: np.ndarray, n: int, rng: np.random.Generator) -> float:
    """Exact earth mover's distance between ``n`` random points of each set: the optimal one-to-one matching
    (Hungarian algorithm, scipy) and its mean Euclidean cost. Sets smaller than ``n`` use all their points (the
    smaller size on both sides)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    pred, gt = check_points(pred, "prediction"), check_points(gt, "ground truth")
    m = min(n, len(pred), len(gt))
    a = pred[rng.choice(len(pred), m, replace=False)]
    b = gt[rng.choice(len(gt), m, replace=False)]
    cost = cdist(a, b)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def iou_dice(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two boolean grids; both empty gives NaN (nothing to compare), as MONAI's ignore_empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    inter = np.logical_and(a, b).sum()
    union = np.logical_or(a, b).sum()
    total = a.sum() + b.sum()
    if total == 0:
        return float("nan"), float("nan")
    return float(inter / union), float(2 * inter / total)


def point_bins(pts: np.ndarray, res: int = 64, lo: float = -1.0, hi: float = 1.0) -> np.ndarray:
    """The seed benchmark's 'voxel' grid: the bins of [lo, hi]^3 (res^3) that contain at least one sampled point
    (points outside are clipped into the border bins)."""
    idx = np.floor((np.asarray(pts) - lo) / (hi - lo) * res).astype(np.int64)
    idx = np.clip(idx, 0, res - 1)
    grid = np.zeros((res, res, res), dtype=bool)
    grid[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return grid


# ---------------------------------------------------------------------------------------------------------------
# surface distances between voxel masks (MONAI's conventions)


def mask_edges(mask: np.ndarray) -> np.ndarray:
    """Edge voxels: the mask minus its binary erosion (scipy's default face-connected structure, voxels beyond the
    array count as background), as MONAI's get_mask_edges."""
    mask = np.asarray(mask, bool)
    return mask & ~ndimage.binary_erosion(mask)


def edge_distances(a: np.ndarray, b: np.ndarray,
                   spacing: float | Sequence[float] = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Distances (in ``spacing`` units) from every edge voxel of ``a`` to the nearest edge voxel of ``b`` and
    back, by Euclidean distance transforms."""
    ea, eb = mask_edges(a), mask_edges(b)
    if not ea.any() or not eb.any():
        raise PointSetError("surface distance: one of the masks is empty (no edge voxels)")
    sp = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ea.ndim,))
    dt_b = ndimage.distance_transform_edt(~eb, sampling=sp)
    dt_a = ndimage.distance_transform_edt(~ea, sampling=sp)
    return dt_b[ea], dt_a[eb]


def surface_metrics(a: np.ndarray, b: np.ndarray, spacing: float | Sequence[float] = 1.0,
                    nsd_tolerance: float = 1.0, percentile: float = 95.0) -> dict[str, float]:
    """HD95 (max of the directed percentiles), ASSD (mean of all edge distances, both directions concatenated) and
    NSD at ``nsd_tolerance`` (fraction of edge voxels of both masks within tolerance of the other surface)."""
    d_ab, d_ba = edge_distances(a, b, spacing)
    both = np.concatenate([d_ab, d_ba])
    return {f"voxel_hd{percentile:g}": float(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile))),
            "voxel_assd": float(both.mean()),
            "voxel_nsd": float((both <= nsd_tolerance).mean())}
