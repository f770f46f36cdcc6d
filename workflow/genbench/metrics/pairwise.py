"""Pairwise significance across the sweep: paired differences on the same items, with a multiple-comparison
correction.

2D (``results/tables/gen2d_pairwise.parquet``): for every comparison a figure or the best-setting table makes,
metric(A) - metric(B) for two cells generated for the same data set items, by :func:`compare.compare_cells` (one
item resample applied to both cells, one real-set resample to both FIDs): the difference on the full sets, its
percentile CI and the two-sided bootstrap p-value p = min(1, 2 min(P*(D* <= 0), P*(D* >= 0))). Comparisons:

- ``model``: model vs model at one setting (data set, steps, guidance, seed): dataset_comparison, fid_vs_cfg;
- ``cfg``: guidance vs guidance within one model (data set, steps, seed): fid_vs_cfg, the best table;
- ``steps``: step count vs step count within one model (data set, guidance, seed): step_scaling.

3D (``results/tables/recon3d_pairwise.parquet``): model vs model per (data set, protocol, metric) over the items
both scored, the mean of the per-item differences d_i = x_A,i - x_B,i with the same bootstrap (items resampled).

Every family of tests (one per metric) is corrected for multiplicity, the method named in ``correction``:

- Holm (step-down): p_(1) <= ... <= p_(m) sorted, p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j));
- Benjamini-Hochberg (step-up, FDR): p~_(i) = min_{j >= i} min(1, m p_(j) / j).

``significant`` is p_adjusted < alpha = 1 - confidence.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ..layout import Cell
from ..seeding import derive_seed
from ..tables.keys import CELL_KEYS as _CELL_KEYS
from .bootstrap import method_label, paired_difference
from .compare import compare_cells

CORRECTIONS = ("holm", "bh")
CELL_KEYS = list(_CELL_KEYS)
# kind -> (the columns held fixed, the column that differs)
COMPARISONS = {v: ([k for k in CELL_KEYS if k != v], v) for v in ("model", "cfg", "steps")}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in m)."""
    return _adjust(p, "holm")


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (NaN stays NaN and does not count in m)."""
    return _adjust(p, "bh")


def _adjust(p: np.ndarray, method: str) -> np.ndarray:
    if method not in CORRECTIONS:
        raise ValueError(f"multiple-comparison correction '{method}': available {CORRECTIONS}")
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adj = np.minimum.accumulate(np.minimum(1.0, m * ranked / np.arange(1, m + 1))[::-1])[::-1]
    out[order] = adj
    return out


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values by ``method`` ('holm' or 'bh')."""
    return _adjust(p, method)


def correction_label(method: str, m: int, family: str) -> str:
    name = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[method]
    return f"{name} over the {m} comparison{'' if m == 1 else 's'} of {family}"


def gen2d_comparisons(cells: pd.DataFrame) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(kind, cell A, cell B) for every pair of cells that differ in exactly the kind's column (model, cfg or
    steps) with the other cell keys equal; A is the smaller value of that column."""
    cells = cells[CELL_KEYS].drop_duplicates().sort_values(CELL_KEYS, kind="stable")
    out = []
    for kind, (fixed, vary) in COMPARISONS.items():
        for _, grp in cells.groupby(fixed, sort=True):
            recs = grp.sort_values(vary, kind="stable").to_dict("records")
            out += [(kind, a, b) for a, b in combinations(recs, 2)]
    return out


def cell_name(c: dict[str, Any]) -> str:
    return str(Cell.from_mapping(c))


def _finish(df: pd.DataFrame, correction: str, confidence: float, family_cols: list[str]) -> pd.DataFrame:
    """Adjusted p-values per family (``family_cols``), the correction's name and the significance flag."""
    if df.empty:
        return df.assign(p_adjusted=pd.Series(dtype="float64"), correction=pd.Series(dtype="object"),
                         significant=pd.Series(dtype="bool"))
    df = df.copy()
    df["p_adjusted"], df["correction"] = np.nan, ""
    for key, grp in df.groupby(family_cols, sort=False):
        p = grp["p_value"].to_numpy(dtype=np.float64)
        df.loc[grp.index, "p_adjusted"] = adjust(p, correction)
        family = ", ".join(f"{c} {v}" for c, v in zip(family_cols, key, strict=True))
        df.loc[grp.index, "correction"] = correction_label(correction, int(np.isfinite(p).sum()), family)
    df["significant"] = df["p_adjusted"] < 1.0 - confidence
    return df


def gen2d_pairwise(cells: pd.DataFrame, load: Callable[[dict[str, Any]], dict[str, np.ndarray]],
                   load_real: Callable[[str], dict[str, np.ndarray]], *, metrics: tuple[str, ...] = ("fid", "is"),
                   n_boot: int, confidence: float, seed: int, is_splits: int,
                   correction: str = "holm") -> pd.DataFrame:
    """The paired comparisons of :func:`gen2d_comparisons` for each metric, each family (metric) corrected.
    ``load(cell)`` gives a cell's features (features, logits, item_id), ``load_real(dataset)`` the real set's."""
    if correction not in CORRECTIONS:
        raise ValueError(f"multiple-comparison correction '{correction}': available {CORRECTIONS}")
    cache: dict[str, dict[str, np.ndarray]] = {}

    def get(c: dict[str, Any]) -> dict[str, np.ndarray]:
        name = cell_name(c)
        if name not in cache:
            cache[name] = load(c)
        return cache[name]

    rows = []
    for kind, a, b in gen2d_comparisons(cells):
        real = load_real(a["dataset"])
        for metric in metrics:
            r = compare_cells(real, get(a), get(b), metric, name_a=cell_name(a), name_b=cell_name(b),
                              n_boot=n_boot, confidence=confidence, seed=seed, is_splits=is_splits)
            vary = COMPARISONS[kind][1]
            rows.append({"comparison": kind, "metric": metric, "dataset": a["dataset"],
                         "model_a": a["model"], "steps_a": int(a["steps"]), "cfg_a": float(a["cfg"]),
                         "model_b": b["model"], "steps_b": int(b["steps"]), "cfg_b": float(b["cfg"]),
                         "seed": int(a["seed"]), "varies": vary, "n_items": r["n_items"], "diff": r["diff"],
                         "ci_low": r["ci_low"], "ci_high": r["ci_high"], "p_value": r["p_value"],
                         "ci_method": method_label("percentile", n_boot, confidence,
                                                   "paired: items resampled jointly in both cells")})
    return _finish(pd.DataFrame(rows), correction, confidence, ["metric"])


def paired_mean_difference(a: np.ndarray, b: np.ndarray, n_boot: int, confidence: float,
                           rng: np.random.Generator) -> dict[str, float]:
    """mean(a - b) over paired items with the paired bootstrap's percentile CI and two-sided p-value."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) == 0:
        raise ValueError("paired mean difference of no items")
    return paired_difference(lambda i, _r: float(d[i].mean()), len(d), 1, n_boot, confidence, rng)


def recon3d_pairwise(per_item: pd.DataFrame, metrics: list[str], *, n_boot: int, confidence: float, seed: int,
                     correction: str = "holm") -> pd.DataFrame:
    """Model vs model per (data set, protocol, metric) on the items both scored (status ok, finite values);
    each metric is one family for the correction. A pair with no common item is recorded with n_items 0 and a
    note, not dropped."""
    if correction not in CORRECTIONS:
        raise ValueError(f"multiple-comparison correction '{correction}': available {CORRECTIONS}")
    ok = per_item[per_item["status"] == "ok"]
    rows = []
    for (ds, proto), grp in ok.groupby(["dataset", "protocol"], sort=True):
        models = sorted(grp["model"].unique())
        for metric in [m for m in metrics if m in grp.columns]:
            for ma, mb in combinations(models, 2):
                xa = grp[grp["model"] == ma].set_index("item_id")[metric].astype("float64")
                xb = grp[grp["model"] == mb].set_index("item_id")[metric].astype("float64")
                common = sorted(set(xa.index[np.isfinite(xa)]) & set(xb.index[np.isfinite(xb)]))
                base = {"dataset": ds, "protocol": proto, "metric": metric, "model_a": ma, "model_b": mb,
                        "n_items": len(common)}
                if not common:
                    rows.append({**base, "diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan,
                                 "ci_method": "none", "note": "no item scored by both models"})
                    continue
                rng = np.random.default_rng(derive_seed("pairwise3d", seed, ds, proto, metric, ma, mb))
                r = paired_mean_difference(xa.loc[common].to_numpy(), xb.loc[common].to_numpy(), n_boot,
                                           confidence, rng)
                rows.append({**base, **r, "note": None,
                             "ci_method": method_label("percentile", n_boot, confidence, "paired: items")})
    return _finish(pd.DataFrame(rows), correction, confidence, ["metric"])


def best_significance(best: pd.DataFrame, pairwise: pd.DataFrame, metric: str = "fid") -> list[str]:
    """For each row of the best table (dataset, model, steps, cfg, seed; cfg as chosen), its paired comparison
    with every other guidance scale of that model and step count: 'cfg X: p_adj P*' where * marks a significant
    difference (the correction named in the table's caption), or 'only setting' when there is no other scale."""
    rows = pairwise[(pairwise["comparison"] == "cfg") & (pairwise["metric"] == metric)]
    out = []
    for r in best.itertuples(index=False):
        cfg = float(r.cfg)
        same = rows[(rows["dataset"] == r.dataset) & (rows["model_a"] == r.model)
                    & (rows["steps_a"] == int(r.steps)) & (rows["seed"] == int(r.seed))
                    & ((rows["cfg_a"] == cfg) | (rows["cfg_b"] == cfg))]
        parts = []
        for p in same.sort_values(["cfg_a", "cfg_b"]).itertuples(index=False):
            other = p.cfg_b if p.cfg_a == cfg else p.cfg_a
            parts.append(f"cfg {other:g}: p_adj {p.p_adjusted:.3g}{'*' if p.significant else ''}")
        out.append("; ".join(parts) if parts else "only setting")
    return out
