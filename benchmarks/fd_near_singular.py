"""Fréchet distance on near-singular covariances: genbench's eigh route, torch-fidelity, pytorch-fid and clean-fid
against the exact value of the same float64 statistics (mpmath, 50 digits), in one run (docs/metrics.md).

    .venv/bin/python benchmarks/fd_near_singular.py

Cases: tests/test_metrics.py's near-singular covariance (16-d, one column = 2 x another + 1e-9 noise), n < d
(40 samples in 64-d: rank 39) and a 48-d set whose second half is linear in the first plus 1e-7 noise.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import mpmath as mp
import numpy as np
from cleanfid.fid import frechet_distance as cleanfid_fd
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_fd
from torch_fidelity.metric_fid import fid_statistics_to_metric

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
from genbench.metrics.fid import feature_statistics, frechet_distance  # noqa: E402


def features(seed: int, n: int, d: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """As tests/test_metrics.py: correlated Gaussian features."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


def exact_fd(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray, digits: int = 50) -> float:
    """FD of the given float64 statistics in ``digits``-digit arithmetic (symmetric eigendecompositions)."""
    mp.mp.dps = digits
    a, b = mp.matrix(s1.tolist()), mp.matrix(s2.tolist())
    w, q = mp.eigsy(a)
    root = q * mp.diag([mp.sqrt(x) if x > 0 else mp.mpf(0) for x in w]) * q.T
    m = root * b * root
    w2, _ = mp.eigsy((m + m.T) / 2)
    tr = mp.fsum(mp.sqrt(x) if x > 0 else mp.mpf(0) for x in w2)
    d = len(mu1)
    diff = mp.fsum(mp.mpf(float(x)) ** 2 for x in (mu1 - mu2))
    return float(diff + mp.fsum(a[i, i] for i in range(d)) + mp.fsum(b[i, i] for i in range(d)) - 2 * tr)


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    a = features(2, 400, 16)
    a[:, -1] = a[:, 0] * 2 + 1e-9 * np.random.default_rng(3).normal(size=400)
    out["16-d, one column = 2 x another + 1e-9 noise (the test's case)"] = (a, features(4, 400, 16, shift=0.1))
    out["n < d: 40 samples in 64-d (rank 39)"] = (features(0, 40, 64), features(1, 40, 64, shift=0.3, scale=1.2))
    a = features(7, 300, 48)
    a[:, 24:] = a[:, :24] @ np.random.default_rng(8).normal(size=(24, 24)) + 1e-7 * np.random.default_rng(9).normal(
        size=(300, 24))
    out["48-d, half the columns linear in the other half + 1e-7 noise"] = (a, features(10, 300, 48, shift=0.05))
    return out


def main() -> None:
    import warnings

    warnings.filterwarnings("ignore")
    for name, (a, b) in cases().items():
        mu1, s1 = feature_statistics(a)
        mu2, s2 = feature_statistics(b)
        t0 = time.perf_counter()
        ex = exact_fd(mu1, s1, mu2, s2)
        vals = {"genbench (eigh)": frechet_distance(mu1, s1, mu2, s2),
                "torch-fidelity": float(fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2},
                                                                 False)["frechet_inception_distance"]),
                "pytorch-fid": float(pytorch_fid_fd(mu1, s1, mu2, s2)),
                "clean-fid": float(cleanfid_fd(mu1, s1, mu2, s2))}
        print(f"{name}: exact {ex:.12g} ({time.perf_counter() - t0:.0f} s in mpmath)")
        for k, v in vals.items():
            gap = abs(vals["genbench (eigh)"] - v)
            print(f"  {k:16s} {v:.12g}  |error| {abs(v - ex):.2e}  |genbench - {k}| {gap:.2e}")


if __name__ == "__main__":
    main()
