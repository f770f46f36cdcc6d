"""Cost of the issue-19 metrics against their reference implementations, measured in one run on the same features:
precision/recall/density/coverage (k = 3) against prdc 0.2 and torch-fidelity 0.4.0's PRC, Vendi against
vendi-score 0.0.3's score_dual, CMMD against clip-mmd 0.0.2 (the CMMD paper's mmd, full kernel matrices), and
FID-infinity (no packaged reference) against one FID at the same size.

    .venv/bin/python benchmarks/bench_metrics_new.py [--n 50000] [--dim 2048] [--cmmd-dim 768] [--repeats 1]
                                                     [--ref-max-gib G]

The issue's size is 50k x 2048-d (the default). Two references hold n x n float64 matrices (prdc's
compute_prdc three of them, 60 GB at 50k; clip-mmd's mmd three kernel matrices): where those would not fit in
--ref-max-gib (default: half the available memory), that group is measured at the largest n that fits, genbench's
route with it on the same features (the ratio), and genbench's route alone again at the full n (its cost at the
issue's size). Prints the median seconds of each route, its ratio to the reference, and the values of both.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

import torch  # noqa: E402
from clip_mmd.calculation import mmd as cmmd_reference  # noqa: E402
from prdc import compute_prdc  # noqa: E402
from torch_fidelity.metric_prc import prc_features_to_metric  # noqa: E402
from vendi_score.vendi import score_dual  # noqa: E402

from genbench.metrics.cmmd import cmmd  # noqa: E402
from genbench.metrics.fd_infinity import fd_infinity  # noqa: E402
from genbench.metrics.fid import frechet_distance_features  # noqa: E402
from genbench.metrics.prdc import prdc  # noqa: E402
from genbench.metrics.vendi import vendi_score  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fd import timed  # noqa: E402  (median of repeated runs, one helper for every benchmark)


def available_memory() -> int:
    """Bytes the kernel says a new process can use (MemAvailable: free plus reclaimable page cache)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def features(seed: int, n: int, d: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) / np.sqrt(d)) + shift


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--cmmd-dim", type=int, default=768, help="CLIP ViT-L/14 embedding size")
    ap.add_argument("--fd-inf-min-n", type=int, default=None, help="default: n / 10")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--ref-max-gib", type=float, default=None,
                    help="memory the n x n references may use (default: half the available memory)")
    args = ap.parse_args()
    avail = available_memory()
    ref_bytes = args.ref_max_gib * 2**30 if args.ref_max_gib else avail / 2
    # the largest n whose three n x n float64 matrices fit (prdc: real-real, fake-fake, real-fake; clip-mmd: the
    # three kernels), rounded down to a multiple of 1000 when over 1000
    fit = int((ref_bytes / (3 * 8)) ** 0.5)
    n_fit = min(args.n, fit // 1000 * 1000 if fit >= 1000 else fit)
    real, gen = features(0, args.n, args.dim, 0.0), features(1, args.n, args.dim, 0.1)
    emb_r, emb_g = features(2, args.n, args.cmmd_dim, 0.0), features(3, args.n, args.cmmd_dim, 0.05)
    unit_r = torch.from_numpy(emb_r / np.linalg.norm(emb_r, axis=1, keepdims=True))
    unit_g = torch.from_numpy(emb_g / np.linalg.norm(emb_g, axis=1, keepdims=True))
    real32, gen32 = torch.from_numpy(real.astype(np.float32)), torch.from_numpy(gen.astype(np.float32))
    min_n = args.fd_inf_min_n or max(2, args.n // 10)
    m = n_fit
    groups = {
        "P/R/D/C, k = 3": [
            ("genbench prdc (blocked, float64)", lambda: prdc(real, gen, 3)),
            ("torch-fidelity PRC (reference; P/R only, float32)",
             lambda: prc_features_to_metric(gen32, real32, prc_neighborhood=3, prc_batch_size=10000,
                                            save_cpu_ram=True, verbose=False)),
        ],
        f"P/R/D/C, k = 3, n = {m}": [
            (f"genbench prdc (blocked, float64), n = {m}", lambda: prdc(real[:m], gen[:m], 3)),
            (f"prdc 0.2 compute_prdc (reference), n = {m}",
             lambda: {k: float(v) for k, v in compute_prdc(real[:m], gen[:m], 3).items()}),
        ],
        "Vendi": [
            ("genbench vendi_score", lambda: vendi_score(gen)),
            ("vendi-score 0.0.3 score_dual (reference)", lambda: score_dual(gen)),
        ],
        f"CMMD ({args.cmmd_dim}-d), n = {m}": [
            (f"genbench cmmd (blocked, float64), n = {m}", lambda: cmmd(emb_r[:m], emb_g[:m])),
            (f"clip-mmd 0.0.2 mmd (reference, float64), n = {m}",
             lambda: cmmd_reference(unit_r[:m], unit_g[:m]).item()),
        ],
        "FID-infinity (15 points)": [
            ("genbench fd_infinity", lambda: fd_infinity(real, gen, points=15, min_n=min_n,
                                                          rng=np.random.default_rng(0))["value"]),
            ("one FID at n (baseline, no packaged FD-inf)", lambda: frechet_distance_features(real, gen)),
        ],
    }
    if m == args.n:  # both n x n references fit: one P/R/D/C group with all three routes
        groups[f"P/R/D/C, k = 3, n = {m}"].append(groups.pop("P/R/D/C, k = 3")[1])
    else:  # genbench alone at the full n: its cost at the size
        groups[f"CMMD ({args.cmmd_dim}-d)"] = [("genbench cmmd (blocked, float64)", lambda: cmmd(emb_r, emb_g))]
    print(f"n = {args.n} per set, d = {args.dim}, threads: torch {torch.get_num_threads()}, "
          f"median of {args.repeats}; n x n references at n = {m} ({ref_bytes / 2**30:.1f} GiB allowed)")
    print(f"{'metric':26s} {'route':44s} {'seconds':>9s} {'ratio':>7s}  value")
    for group, routes in groups.items():
        results = [(name, *timed(fn, args.repeats)) for name, fn in routes]
        ref_t = results[1][1] if len(results) > 1 else None
        for name, t, value in results:
            shown = ({k: round(float(v), 6) for k, v in value.items()} if isinstance(value, dict)
                     else f"{float(value):.8g}")
            ratio = f"{t / ref_t:6.2f}x" if ref_t else "    — "
            print(f"{group:26s} {name:44s} {t:9.2f} {ratio}  {shown}", flush=True)


if __name__ == "__main__":
    main()
