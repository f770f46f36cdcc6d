"""Normalisation and rigid alignment of a prediction to its ground truth.

* :func:`centroid_maxabs` — the seed benchmark's normalisation: subtract the centroid of the sampled points, divide
  by the largest absolute coordinate (each set separately; depends on the orientation and on single outliers).
* :func:`match_rms` — the corrected protocol's: move the prediction's centroid onto the GT's and scale it so that
  its RMS distance from the centroid equals the GT's (rotation invariant, so the rotation search below is fair).
* :func:`icp` — point-to-point ICP with open3d's semantics (``registration_icp`` with
  ``TransformationEstimationPointToPoint``, no scaling): correspondences are nearest neighbours within
  ``max_corr``; each iteration solves the rigid Kabsch/Umeyama fit and stops when both fitness and inlier RMSE
  change by less than the relative thresholds (defaults 1e-6, 30 iterations). Tested against open3d.
* :func:`rotation_search` — multi-start ICP from the 24 rotations of the cube (optionally more) on a subsample,
  keeping the start with the smallest symmetric Chamfer distance, then refined on all points.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .distances import kdtree, workers


def centroid_maxabs(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(normalised points, centroid, scale) with x' = (x - centroid) / scale, scale = max |x - centroid|."""
    c = pts.mean(0)
    s = float(np.abs(pts - c).max())
    if s <= 0:
        raise ValueError("cannot normalise a point set with zero extent")
    return (pts - c) / s, c, s


def match_rms(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prediction moved/scaled onto the GT's centroid and RMS radius; also the 4x4 similarity that did it."""
    cp, cg = pred.mean(0), gt.mean(0)
    rp = np.sqrt(((pred - cp) ** 2).sum(1).mean())
    rg = np.sqrt(((gt - cg) ** 2).sum(1).mean())
    if rp <= 0:
        raise ValueError("cannot normalise a prediction with zero extent")
    s = rg / rp
    m = np.eye(4)
    m[:3, :3] *= s
    m[:3, 3] = cg - s * cp
    return pred * s + m[:3, 3], m


def transform(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    return pts @ m[:3, :3].T + m[:3, 3]


def kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The rigid 4x4 transform minimising sum |R src + t - dst|^2 (reflection excluded)."""
    ms, md = src.mean(0), dst.mean(0)
    h = (src - ms).T @ (dst - md)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, md - r @ ms
    return m


@dataclass
class ICPResult:
    transformation: np.ndarray
    fitness: float
    inlier_rmse: float
    iterations: int


def _evaluate(src: np.ndarray, tree: cKDTree, max_corr: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    d, j = tree.query(src, k=1, distance_upper_bound=max_corr, workers=workers(len(src)))
    ok = np.isfinite(d) & (d < max_corr) if np.isfinite(max_corr) else np.isfinite(d)
    n = int(ok.sum())
    fitness = n / len(src) if len(src) else 0.0
    rmse = float(np.sqrt((d[ok] ** 2).mean())) if n else 0.0
    return ok, j, fitness, rmse


def icp(source: np.ndarray, target: np.ndarray, max_corr: float, init: np.ndarray | None = None,
        max_iteration: int = 30, relative_fitness: float = 1e-6, relative_rmse: float = 1e-6,
        tree: cKDTree | None = None) -> ICPResult:
    """Point-to-point ICP of ``source`` onto ``target`` (see the module docstring)."""
    tree = tree if tree is not None else kdtree(target)
    m = np.eye(4) if init is None else np.asarray(init, dtype=np.float64).copy()
    src = transform(source, m)
    ok, j, fitness, rmse = _evaluate(src, tree, max_corr)
    done = 0
    while done < max_iteration:
        if ok.sum() < 3:
            break
        done += 1
        update = kabsch(src[ok], target[j[ok]])
        m = update @ m
        src = transform(src, update)
        prev = (fitness, rmse)
        ok, j, fitness, rmse = _evaluate(src, tree, max_corr)
        if abs(prev[0] - fitness) < relative_fitness and abs(prev[1] - rmse) < relative_rmse:
            break
    return ICPResult(m, fitness, rmse, done)


def cube_rotations() -> list[np.ndarray]:
    """The 24 proper rotations that map the coordinate axes onto themselves (signed permutation matrices, det 1)."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            r = np.zeros((3, 3))
            r[np.arange(3), perm] = signs
            if np.linalg.det(r) > 0:
                out.append(r)
    return out


def _chamfer(a: np.ndarray, tree_b: cKDTree, b: np.ndarray) -> float:
    return float(tree_b.query(a)[0].mean() + kdtree(a).query(b)[0].mean())


def rotation_search(source: np.ndarray, target: np.ndarray, max_corr: float, starts: int = 24,
                    subsample: int = 2000, rng: np.random.Generator | None = None, max_iteration: int = 30,
                    search_iterations: int = 15) -> tuple[ICPResult, int]:
    """Multi-start ICP about the shapes' centroids; returns the refined result and the index of the winning start.
    ``starts`` = 1 is plain ICP from identity; 24 uses the cube's rotation group; more adds random rotations.
    Each start runs ``search_iterations`` on ``subsample`` points per side; the winner is refined with up to
    ``max_iteration`` iterations on 5 x ``subsample`` points per side (enough for a rigid fit; the metrics use
    all points)."""
    from scipy.spatial.transform import Rotation

    rng = rng if rng is not None else np.random.default_rng(0)
    rots = cube_rotations() if starts > 1 else [np.eye(3)]
    if starts > 24:
        rots += list(Rotation.random(starts - 24, random_state=rng).as_matrix())
    rots = rots[:max(starts, 1)]
    cs, ct = source.mean(0), target.mean(0)
    sub_s = source[rng.choice(len(source), min(subsample, len(source)), replace=False)]
    sub_t = target[rng.choice(len(target), min(subsample, len(target)), replace=False)]
    tree_t = kdtree(sub_t)
    best = (np.inf, 0, np.eye(4))
    for k, r in enumerate(rots):
        init = np.eye(4)
        init[:3, :3], init[:3, 3] = r, ct - r @ cs
        res = icp(sub_s, sub_t, max_corr, init, max_iteration=search_iterations, tree=tree_t)
        score = _chamfer(transform(sub_s, res.transformation), tree_t, sub_t)
        if score < best[0]:
            best = (score, k, res.transformation)
    n_ref = 5 * subsample
    ref_s = source if len(source) <= n_ref else source[rng.choice(len(source), n_ref, replace=False)]
    ref_t = target if len(target) <= n_ref else target[rng.choice(len(target), n_ref, replace=False)]
    final = icp(ref_s, ref_t, max_corr, best[2], max_iteration=max_iteration)
    return final, best[1]
