"""MMHM, the min-max harmonic mean of FID, IS, CLIP Score and PickScore, as the seed paper's code computes it.

Over the rows of a sweep (one row per cell), each metric is min-max normalised so that the best row scores 1::

    u_FID = (max - FID) / (max - min)        u_X = (X - min) / (max - min)   for X in IS, CLIP Score, PickScore
    u = 1 for every row when max = min
    MMHM = 4 / sum_k 1 / (eps + u_k),  eps = 1e-3

The bounds (min, max per metric) can be saved and reused on another evaluation set. Reused bounds do not clip
(as in the reference), so a value outside them gives u outside [0, 1] — even negative; this module keeps that
behaviour and reports every such value in the returned warnings, and warns when reused bounds have min = max (u = 1
for every value: the metric silently drops out of MMHM). Bounds files use the reference's keys ("FID",
"IS", "CLIP Score", "Pick Score") so they can be exchanged with it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_path
from .registry import lower_is_better

MMHM_METRICS = ("fid", "is", "clip_score", "pick_score")
# the bounds file's keys (the seed paper's bounds format, hence "Pick Score"; not display names)
BOUND_KEYS = {"fid": "FID", "is": "IS", "clip_score": "CLIP Score", "pick_score": "Pick Score"}
EPS = 1e-3


def minmax_utility(values: np.ndarray, lower_is_better: bool, lo: float, hi: float) -> np.ndarray:
    """1 for the best value within [lo, hi], 0 for the worst; all ones when hi == lo."""
    values = np.asarray(values, dtype=np.float64)
    if hi == lo:
        return np.ones_like(values)
    return (hi - values) / (hi - lo) if lower_is_better else (values - lo) / (hi - lo)


def mmhm(values: dict[str, Any], bounds: dict[str, dict[str, float]] | None = None,
         eps: float = EPS) -> tuple[np.ndarray, dict[str, dict[str, float]], list[str]]:
    """MMHM per row. ``values`` maps 'fid', 'is', 'clip_score', 'pick_score' to equal-length arrays; ``bounds``
    (keys as in a bounds file) replaces the data's min/max where given (per metric, per side).
    Returns (scores, the bounds used, warnings about values outside reused bounds)."""
    missing = [m for m in MMHM_METRICS if m not in values]
    if missing:
        raise ValueError(f"MMHM needs {', '.join(MMHM_METRICS)}; missing {', '.join(missing)}")
    arrays = {m: np.asarray(values[m], dtype=np.float64) for m in MMHM_METRICS}
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"MMHM: the metric arrays must be non-empty and of equal length, got "
                         f"{ {m: len(a) for m, a in arrays.items()} }")
    for m, a in arrays.items():
        if not np.isfinite(a).all():
            raise ValueError(f"MMHM: '{m}' has non-finite values at rows {np.flatnonzero(~np.isfinite(a))[:10]}")
    used, warnings, inv = {}, [], 0.0
    for m in MMHM_METRICS:
        a, given = arrays[m], (bounds or {}).get(BOUND_KEYS[m], {})
        lo = float(a.min()) if given.get("min") is None else float(given["min"])
        hi = float(a.max()) if given.get("max") is None else float(given["max"])
        u = minmax_utility(a, lower_is_better(m), lo, hi)
        reused = given.get("min") is not None or given.get("max") is not None
        if reused and hi == lo:
            warnings.append(f"MMHM: the reused bounds of '{m}' have min = max = {lo:g}: every row gets u = 1 for it, "
                            f"whatever its value, so '{m}' does not count in MMHM; reuse bounds from a sweep where "
                            f"it varies")
        # compared with the bounds, not through u: with min = max, u is 1 for any value
        outside = np.flatnonzero((a < lo) | (a > hi))
        if len(outside):
            warnings.append(f"MMHM: {len(outside)} '{m}' value(s) outside the bounds [{lo:g}, {hi:g}] (rows "
                            f"{outside[:10].tolist()}, values {np.round(a[outside[:3]], 4).tolist()}): utilities "
                            f"{np.round(u[outside[:3]], 4).tolist()} are not clipped, as in the reference")
        used[BOUND_KEYS[m]] = {"min": lo, "max": hi}
        inv = inv + 1.0 / (eps + u)
    return 4.0 / inv, used, warnings


def save_bounds(path: str | Path, bounds: dict[str, dict[str, float]],
                provenance: dict[str, Any] | None = None) -> None:
    doc = {**bounds, "_provenance": provenance or {}}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load_bounds(path: str | Path) -> dict[str, dict[str, float]]:
    """A bounds file written by :func:`save_bounds` or by the reference code (same keys)."""
    raw = json.loads(Path(path).read_text())
    out = {}
    for key, b in raw.items():
        if key.startswith("_"):
            continue
        if key not in BOUND_KEYS.values():
            raise ValueError(f"{path}: unknown metric '{key}' in MMHM bounds (expected {list(BOUND_KEYS.values())})")
        for side in ("min", "max"):
            v = b.get(side)
            if v is not None and not (isinstance(v, int | float) and math.isfinite(v)):
                raise ValueError(f"{path}: {key}.{side} must be a finite number, got {v!r}")
        out[key] = {"min": b.get("min"), "max": b.get("max")}
    return out
