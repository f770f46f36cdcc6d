"""Figures of the statistics tables: selection stability (how often each setting is selected under resampling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics.names import LABELS
from .figures import STYLE, panel_grid, plt, save_data, save_figure, style_of


def selection_stability_figure(table: pd.DataFrame, pdf: str | Path, png: str | Path,
                               data: str | Path) -> pd.DataFrame:
    """One panel per (data set, model, seed) with more than one setting: per setting, one bar per criterion with
    the fraction of bootstrap resamples selecting it; the full-set selection is hatched."""
    if table.empty:
        raise ValueError("figure selection_stability: the selection-stability table has no rows")
    df = table[table["n_settings"] > 1]  # a model with one setting has nothing to select
    if df.empty:
        raise ValueError("figure selection_stability: no model has more than one setting (steps, cfg) on a data set")
    df = df.sort_values(["dataset", "model", "seed", "steps", "cfg"], kind="stable")
    groups = list(df.groupby(["dataset", "model", "seed"], sort=False))
    criteria = list(dict.fromkeys(df["criterion"]))
    with plt.rc_context(STYLE):
        fig, _, axes = panel_grid(len(groups), 3.2, 2.4, extra_height=0.6)
        width = 0.8 / len(criteria)
        for ax, ((ds, model, seed), grp) in zip(axes, groups, strict=True):
            settings = list(dict.fromkeys(zip(grp["steps"], grp["cfg"], strict=True)))
            x = np.arange(len(settings))
            for j, crit in enumerate(criteria):
                s = grp[grp["criterion"] == crit].set_index(["steps", "cfg"]).reindex(settings)
                colour, _ = style_of(j)
                bars = ax.bar(x + (j - (len(criteria) - 1) / 2) * width, s["frequency"].to_numpy(), width,
                              color=colour, label=LABELS.get(crit, crit))
                for bar, full in zip(bars, s["selected_full"].fillna(False).to_numpy(), strict=True):
                    if full:
                        bar.set_hatch("///")
                        bar.set_edgecolor("black")
            ax.set_xticks(x, [f"{st} st\ncfg {c:g}" for st, c in settings], fontsize=7)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("selection frequency")
            ax.set_title(f"{model} on {ds}" + (f" (seed {seed})" if df["seed"].nunique() > 1 else ""))
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=style_of(j)[0], label=LABELS.get(c, c)) for j, c in enumerate(criteria)]
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="selected on the full set"))
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
        n_boot = int(df["n_boot"].iloc[0])
        fig.suptitle(f"Selection stability: fraction of {n_boot} item resamples selecting each setting "
                     "(hatched: selected on the full set)", fontsize=9)
        fig.tight_layout(rect=(0, 0.06, 1, 0.95))
        save_figure(fig, pdf, png)
    cols = ["dataset", "model", "seed", "criterion", "steps", "cfg", "frequency", "selected_full", "n_boot"]
    save_data(df[cols], data)
    return df[cols]
