"""sFID against FID on a spatially shifted set, and what sFID costs per cell (docs/metrics.md, "sFID").

    .venv/bin/python benchmarks/sfid_shift.py [--n 48] [--threads 1]

1. Known answer with the real-layout TF-FID Inception (FIDInception with seeded random weights and BatchNorm
   statistics: no weights can be downloaded here). Three sets of 299 x 299 images, one
   coloured disc each on a grey background: A and B independent draws with the disc's centre in the upper-left
   region, then B with every disc moved 18, 36 and 96 pixels right and down (nothing else changes). FID (pool3) and
   sFID (mixed_6/conv, 2023-d) of A against B (same distribution: finite-sample bias only) and their growth against
   the moved sets. With trained weights pool3 is close to shift-invariant and sFID is the one that grows; these
   random weights are not (measured: docs/metrics.md), so this case shows the limit of a random-weight check.
2. Cost of an sfid row (FD with the debiased bootstrap of fid's row) at mini-world and tiny-config sizes (the fid
   row beside it), and the parts of one replicate at paper size (2023-d, 50k images per side) timed at 10k images
   and scaled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from genbench.features.inception import FIDInception  # noqa: E402
from genbench.features.registry import InceptionTFExtractor  # noqa: E402
from genbench.metrics.context import CellContext  # noqa: E402
from genbench.metrics.fid import fd_row, frechet_distance_features, trace_sqrt_product  # noqa: E402


def discs(rng: np.random.Generator, n: int, shift: int = 0, size: int = 299) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    out = np.full((n, size, size, 3), 110, np.uint8)
    for i in range(n):
        r = rng.integers(20, 40)
        cy, cx = rng.integers(50, 130, 2) + shift
        out[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = rng.integers(0, 256, 3)
    return out


def inception(seed: int = 0) -> FIDInception:
    """Kaiming-normal convolutions (with PyTorch's default init the 90-odd layers collapse every image to nearly
    the same features: their spread across images was ~1e-9 of their mean), random BatchNorm statistics."""
    torch.manual_seed(seed)
    net = FIDInception()
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    for k, v in net.state_dict().items():
        if k.endswith("running_mean"):
            v.copy_(torch.randn_like(v) * 0.1)
        elif k.endswith("running_var"):
            v.copy_(torch.rand_like(v) + 0.5)
    return net


def shift_case(n: int, shifts: tuple[int, ...] = (18, 36, 96)) -> None:
    ex = InceptionTFExtractor("inception", inception(), "none", batch_size=8).with_spatial()
    t = time.perf_counter()
    feats = {"A": ex.extract(discs(np.random.default_rng(1), n), "A")}
    for shift in (0, *shifts):  # B (shift 0) and B moved: the same discs, the same colours
        feats[shift] = ex.extract(discs(np.random.default_rng(2), n, shift), f"B+{shift}")
    took = time.perf_counter() - t
    print(f"Inception (random weights), {n} images per set, {(len(shifts) + 2) * n} forwards in {took:.0f} s")
    for key, label in (("features", "FID (pool3, 2048-d)"), ("spatial", "sFID (mixed_6/conv, 2023-d)")):
        same = frechet_distance_features(feats["A"][key], feats[0][key])
        moved = [frechet_distance_features(feats["A"][key], feats[s][key]) / same for s in shifts]
        print(f"  {label:28s} A vs B {same:8.4g}; A vs B shifted by " +
              ", ".join(f"{s} px: {g:.2f}x" for s, g in zip(shifts, moved, strict=True)))


def row_cost(n: int, d: int, n_boot: int) -> float:
    rng = np.random.default_rng(0)
    fr, fg = rng.normal(size=(n, d)), rng.normal(size=(n, d)) + 0.1
    ctx = CellContext({}, {}, cell={}, real_name="r", gen_name="g", n_boot=n_boot, confidence=0.95,
                      bootstrap_seed=0, is_splits=1)
    t = time.perf_counter()
    fd_row(ctx, fr, fg, "sfid", ("r", "g"))
    return time.perf_counter() - t


def paper_parts(n: int = 10_000, d: int = 2023) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d))
    t = time.perf_counter()
    s = np.cov(x, rowvar=False)
    cov = time.perf_counter() - t
    t = time.perf_counter()
    trace_sqrt_product(s, s + np.eye(d) * 1e-3)
    sqrt = time.perf_counter() - t
    per_rep = 2 * cov * 50_000 / n + sqrt
    print(f"paper size, one replicate: np.cov {n} x {d} {cov:.2f} s (x5 for 50k, two sets), tr sqrt {sqrt:.2f} s "
          f"-> ~{per_rep:.0f} s per replicate, ~{per_rep * 1000 / 3600:.1f} h for 1000 (as FID's row, 2048-d)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="images per set for the Inception case")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shift_case(args.n)
    for label, n, d, b in (("mini-world fid (400 images, 64-d, 200 resamples)", 400, 64, 200),
                           ("mini-world sfid (400 images, 128-d, 200 resamples)", 400, 128, 200),
                           ("tiny config sfid (40 images, 128-d, 20 resamples)", 40, 128, 20)):
        print(f"row, {label}: {row_cost(n, d, b):.2f} s")
    paper_parts()


if __name__ == "__main__":
    main()
