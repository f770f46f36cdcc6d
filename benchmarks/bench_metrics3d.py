"""3D metrics against their references, on the same inputs, in one run.

    .venv/bin/python benchmarks/bench_metrics3d.py [--points 100000] [--res 128] [--repeats 3]

1. The distance bundle at 2 x ``points`` surface samples: Chamfer (L1, L2), F-score at three tau, Hausdorff and
   HD95 from ONE pair of nearest-neighbour queries (genbench.recon3d.distances.distance_bundle), against the same
   numbers from separate point-cloud-utils calls (chamfer_distance, hausdorff_distance, and k_nearest_neighbors
   for the F-scores and HD95, one pair per call as a user of the library would write it). Also plain Chamfer
   alone: genbench's bundle vs pcu.chamfer_distance.
2. Solid-occupancy IoU at ``res``^3 of two watertight meshes: scanline parity (genbench.recon3d.meshes,
   3 res^2 Embree rays) vs trimesh.contains at every grid centre (res^3 rays), and vs winding numbers (pcu).

Prints median times, ratios (ours / reference) and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import point_cloud_utils as pcu
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from genbench.recon3d.distances import distance_bundle, iou_dice  # noqa: E402
from genbench.recon3d.meshes import Normalisation, grid_centres, occupancy_grid, parity_occupancy  # noqa: E402

TAUS = (0.005, 0.01, 0.02)


def timed(fn, repeats: int):
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def shapes() -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    a = trimesh.boolean.union([trimesh.creation.box((0.6, 0.4, 0.3)),
                               trimesh.creation.icosphere(4, 0.25).apply_translation([0.25, 0.1, 0.1])],
                              engine="manifold")
    b = trimesh.creation.capsule(0.5, 0.22)
    b.apply_transform(trimesh.transformations.rotation_matrix(0.5, [1, 1, 0]))
    return a, b


def pcu_separate(p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    out = {"chamfer_l1": pcu.chamfer_distance(p, g), "hausdorff": pcu.hausdorff_distance(p, g)}
    d_pg, _ = pcu.k_nearest_neighbors(p, g, 1)  # HD95 and Chamfer-L2
    d_gp, _ = pcu.k_nearest_neighbors(g, p, 1)
    out["hd95"] = max(np.percentile(d_pg, 95), np.percentile(d_gp, 95))
    out["chamfer_l2"] = (d_pg ** 2).mean() + (d_gp ** 2).mean()
    for tau in TAUS:  # one pair of queries per threshold, as separate metric calls would do
        d_pg, _ = pcu.k_nearest_neighbors(p, g, 1)
        d_gp, _ = pcu.k_nearest_neighbors(g, p, 1)
        pr, rc = (d_pg < tau).mean(), (d_gp < tau).mean()
        out[f"fscore@{tau:g}"] = 2 * pr * rc / (pr + rc) if pr + rc else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--res", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    a, b = shapes()
    p = np.asarray(a.sample(args.points, seed=0), dtype=np.float64)
    g = np.asarray(b.sample(args.points, seed=1), dtype=np.float64)

    print(f"1. distance bundle, 2 x {args.points} points, median of {args.repeats}")
    t_ours, ours = timed(lambda: distance_bundle(p, g, taus=TAUS), args.repeats)
    t_ref, ref = timed(lambda: pcu_separate(p, g), args.repeats)
    diff = max(abs(ours[k] - v) / max(abs(v), 1e-12) for k, v in ref.items())
    print(f"   genbench (one NN pair)      {t_ours:8.3f} s")
    print(f"   point-cloud-utils, separate {t_ref:8.3f} s   ratio {t_ours / t_ref:.2f}x   max rel. diff {diff:.1e}")
    t_ch, ch = timed(lambda: pcu.chamfer_distance(p, g), args.repeats)
    t_ours_ch, ours_ch = timed(lambda: distance_bundle(p, g)["chamfer_l1"], args.repeats)
    print(f"   plain Chamfer: genbench {t_ours_ch:.3f} s vs pcu.chamfer_distance {t_ch:.3f} s   ratio "
          f"{t_ours_ch / t_ch:.2f}x   rel. diff {abs(ours_ch - ch) / ch:.1e}")

    print(f"2. solid IoU at {args.res}^3, median of {args.repeats}")
    c = grid_centres(args.res)
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    shape = (args.res,) * 3
    t_par, par = timed(lambda: iou_dice(parity_occupancy(a, args.res), parity_occupancy(b, args.res))[0],
                       args.repeats)
    t_con, con = timed(lambda: iou_dice(a.contains(grid).reshape(shape), b.contains(grid).reshape(shape))[0],
                       args.repeats)
    ident = Normalisation((0.0, 0.0, 0.0), 1.0)
    t_win, win = timed(lambda: iou_dice(occupancy_grid(a, ident, args.res), occupancy_grid(b, ident, args.res))[0],
                       1)
    print(f"   genbench parity             {t_par:8.3f} s   IoU {par:.6f}")
    print(f"   trimesh.contains            {t_con:8.3f} s   IoU {con:.6f}   speed-up {t_con / t_par:.1f}x")
    print(f"   winding numbers (pcu)       {t_win:8.3f} s   IoU {win:.6f}   speed-up {t_win / t_par:.1f}x")


if __name__ == "__main__":
    main()
