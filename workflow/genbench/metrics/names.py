"""The best setting of a sweep by a metric (shared by the exported tables and the figures). What a metric is (its
direction, display name, place in tables, formula) is in :mod:`genbench.metrics.registry`."""

from __future__ import annotations

import pandas as pd

from .registry import lower_is_better


def best_settings(table: pd.DataFrame, metric: str, by: list[str]) -> pd.DataFrame:
    """Per group ``by``: the guidance scale whose ``metric`` (mean over seeds) is best; ties go to the smaller
    scale. Groups keep the table's order. Returns the ``by`` columns and ``cfg``."""
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"best setting by '{metric}': the table has no '{metric}' rows")
    means = (rows.groupby([*by, "cfg"], as_index=False, sort=False)["value"].mean()
             .sort_values(["cfg"], kind="stable").reset_index(drop=True))
    groups = means.groupby(by, sort=False)["value"]
    best = means.loc[(groups.idxmin() if lower_is_better(metric) else groups.idxmax()).to_numpy(), [*by, "cfg"]]
    order = rows.drop_duplicates(by)[by].reset_index(drop=True).reset_index()  # first appearance in the table
    return best.merge(order, on=by).sort_values("index").drop(columns="index").reset_index(drop=True)
