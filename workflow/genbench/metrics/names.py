"""The best setting of a sweep by a metric (shared by the exported tables and the figures). What a metric is (its
direction, display name, place in tables, formula) is in :mod:`genbench.metrics.registry`."""

from __future__ import annotations

import pandas as pd

from .registry import lower_is_better


def best_settings(table: pd.DataFrame, metric: str, by: list[str], over: tuple[str, ...] = ("cfg",)) -> pd.DataFrame:
    """Per group ``by``: the setting ``over`` (default: the guidance scale) whose ``metric`` (mean over seeds) is
    best; ties go to the smaller setting (with several ``over`` keys, the smaller first key, then the next). Groups
    keep the table's order. Returns the ``by`` columns and the ``over`` ones."""
    over = list(over)
    rows = table[table["metric"] == metric]
    if rows.empty:
        raise ValueError(f"best setting by '{metric}': the table has no '{metric}' rows")
    means = (rows.groupby([*by, *over], as_index=False, sort=False)["value"].mean()
             .sort_values(over, kind="stable").reset_index(drop=True))
    groups = means.groupby(by, sort=False)["value"]
    best = means.loc[(groups.idxmin() if lower_is_better(metric) else groups.idxmax()).to_numpy(), [*by, *over]]
    order = rows.drop_duplicates(by)[by].reset_index(drop=True).reset_index()  # first appearance in the table
    return best.merge(order, on=by).sort_values("index").drop(columns="index").reset_index(drop=True)
