"""What every table reader needs to know about a metric: its display name, its direction, its place in tables,
and the best setting of a sweep by it (shared by the exported tables and the figures)."""

from __future__ import annotations

import pandas as pd

LOWER_IS_BETTER = {"fid", "kid", "fd_dinov2", "kd_dinov2", "csfid", "psfid", "cmmd", "fid_inf"}
LABELS = {"fid": "FID", "is": "IS", "kid": "KID", "clip_score": "CLIP Score", "pick_score": "PickScore",
          "csfid": "csFID", "psfid": "psFID", "csis": "csIS", "psis": "psIS", "mmhm": "MMHM",
          "fd_dinov2": "FD-DINOv2", "kd_dinov2": "KD-DINOv2", "precision": "Precision", "recall": "Recall",
          "density": "Density", "coverage": "Coverage", "vendi": "Vendi", "cmmd": "CMMD", "fid_inf": "FID∞"}
ORDER = ["fid", "is", "kid", "fd_dinov2", "kd_dinov2", "clip_score", "pick_score", "csfid", "psfid", "csis", "psis",
         "mmhm", "precision", "recall", "density", "coverage", "vendi", "cmmd", "fid_inf"]


def best_settings(table: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Per group ``by``: the guidance scale whose ``metric`` (mean over seeds) is best; ties go to the smaller
    scale. Groups keep the table's order. Returns the ``by`` columns and ``cfg``."""
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"best setting by '{metric}': the table has no '{metric}' rows")
    means = (rows.groupby([*by, "cfg"], as_index=False, sort=False)["value"].mean()
             .sort_values(["cfg"], kind="stable").reset_index(drop=True))
    groups = means.groupby(by, sort=False)["value"]
    best = means.loc[(groups.idxmin() if metric in LOWER_IS_BETTER else groups.idxmax()).to_numpy(), [*by, "cfg"]]
    order = rows.drop_duplicates(by)[by].reset_index(drop=True).reset_index()  # first appearance in the table
    return best.merge(order, on=by).sort_values("index").drop(columns="index").reset_index(drop=True)
