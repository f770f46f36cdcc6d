"""Paired comparison of two generated cells scored against the same real set (``genbench compare``).

The cells must hold images for the same data set items (same ``item_id`` set, e.g. two guidance scales of one
model, or two models on one data set): the bootstrap then resamples items jointly, which removes the item-to-item
variance both cells share and gives a much tighter interval for the difference than two independent CIs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..seeding import derive_seed
from .bootstrap import paired_difference
from .fid import MetricInputError, frechet_distance
from .inception_score import inception_score

PAIRED_METRICS = ("fid", "is")


def align(a: dict[str, np.ndarray], b: dict[str, np.ndarray], name_a: str, name_b: str) -> tuple[np.ndarray, ...]:
    """Index arrays putting both cells in the same item order; the item sets must be equal."""
    ia, ib = np.asarray(a["item_id"]).astype(str), np.asarray(b["item_id"]).astype(str)
    if set(ia) != set(ib) or len(ia) != len(ib):
        only_a, only_b = sorted(set(ia) - set(ib))[:3], sorted(set(ib) - set(ia))[:3]
        raise MetricInputError(f"paired comparison needs the same items in both cells: {name_a} has {len(ia)}, "
                               f"{name_b} has {len(ib)} (only in the first e.g. {only_a}, only in the second e.g. "
                               f"{only_b}); compare cells generated for the same data set")
    return np.argsort(ia, kind="stable"), np.argsort(ib, kind="stable")


def compare_cells(real: dict[str, np.ndarray], a: dict[str, np.ndarray], b: dict[str, np.ndarray], metric: str,
                  *, name_a: str = "A", name_b: str = "B", n_boot: int = 1000, confidence: float = 0.95,
                  seed: int = 0, is_splits: int = 10) -> dict[str, Any]:
    """metric(A) - metric(B) with a paired bootstrap CI and p-value."""
    if metric not in PAIRED_METRICS:
        raise ValueError(f"paired comparison of '{metric}': available {PAIRED_METRICS}")
    oa, ob = align(a, b, name_a, name_b)
    rng = np.random.default_rng(derive_seed("paired", seed, name_a, name_b, metric))
    if metric == "fid":
        fr, fa, fb = real["features"], a["features"][oa], b["features"][ob]

        def stat(items: np.ndarray, reals: np.ndarray) -> float:
            r = fr[reals]
            mu, sig = r.mean(0), np.cov(r, rowvar=False)
            x, y = fa[items], fb[items]
            return (frechet_distance(mu, sig, x.mean(0), np.cov(x, rowvar=False))
                    - frechet_distance(mu, sig, y.mean(0), np.cov(y, rowvar=False)))
    else:
        la, lb = a["logits"][oa], b["logits"][ob]

        def stat(items: np.ndarray, reals: np.ndarray) -> float:
            return (inception_score(la[items], splits=is_splits, set_name=name_a)[0]
                    - inception_score(lb[items], splits=is_splits, set_name=name_b)[0])

    out = paired_difference(stat, len(oa), len(real["features"]), n_boot, confidence, rng)
    return {"metric": metric, "a": name_a, "b": name_b, "n_items": len(oa), "n_boot": n_boot,
            "confidence": confidence, **out}


def format_p_value(p: float, n_boot: int) -> str:
    """The bootstrap p-value as text. Its resolution is 2/n_boot (two-sided: twice the fraction of the n_boot
    replicates on the far side of zero), so a p of 0 (no replicate there) is reported as ``p < 2/n_boot``, not as
    "p = 0", which no finite bootstrap can show."""
    if p != p:  # NaN: a degenerate comparison (e.g. n_boot = 0)
        return "p = nan"
    if p == 0:
        return f"p < {2 / n_boot:.3g} (no replicate of {n_boot} on the other side of zero)"
    return f"p = {p:.3g}"
