"""Fréchet distance at d = 2048 (Inception pool3 size): genbench's symmetric-eigh route against scipy sqrtm
(clean-fid's frechet_distance) and torch-fidelity's eigvals route, on the same float64 statistics, in one run.

    .venv/bin/python benchmarks/bench_fd.py [--dim 2048] [--repeats 3]

Prints the median time of each route, its ratio to sqrtm, and the results' relative differences.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from cleanfid.fid import frechet_distance as cleanfid_fd  # noqa: E402
from torch_fidelity.metric_fid import fid_statistics_to_metric  # noqa: E402

from genbench.metrics.fid import frechet_distance  # noqa: E402


def stats(seed: int, n: int, d: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) @ (rng.normal(size=(d, d)) / np.sqrt(d)) + shift
    return x.mean(0), np.cov(x, rowvar=False)


def timed(fn, repeats: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    mu1, s1 = stats(0, args.n, args.dim, 0.0)
    mu2, s2 = stats(1, args.n, args.dim, 0.1)
    routes = {
        "scipy sqrtm (clean-fid)": lambda: cleanfid_fd(mu1, s1, mu2, s2),
        "eigvals (torch-fidelity)": lambda: fid_statistics_to_metric({"mu": mu1, "sigma": s1},
                                                                     {"mu": mu2, "sigma": s2}, False)[
            "frechet_inception_distance"],
        "symmetric eigh (genbench)": lambda: frechet_distance(mu1, s1, mu2, s2),
    }
    results = {name: timed(fn, args.repeats) for name, fn in routes.items()}
    base_t, base_v = results["scipy sqrtm (clean-fid)"]
    print(f"d = {args.dim}, n = {args.n}, median of {args.repeats}")
    print(f"{'route':28s} {'seconds':>9s} {'speed-up vs sqrtm':>18s} {'FD':>14s} {'rel. diff':>10s}")
    for name, (t, v) in results.items():
        print(f"{name:28s} {t:9.3f} {base_t / t:17.2f}x {v:14.6f} {abs(v - base_v) / abs(base_v):10.1e}")


if __name__ == "__main__":
    main()
