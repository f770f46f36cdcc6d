"""Figures of the statistics tables: selection stability (how often each setting is selected under resampling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..metrics.registry import LABELS
from ..tables.keys import CELL_KEYS_BY_DATASET
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


def metric_correlation(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path) -> pd.DataFrame:
    """Spearman rank correlation between the metrics across the cells of the sweep (all data sets), each metric
    oriented so that larger = better (lower-is-better metrics negated): +1 = two metrics order the cells alike.
    Metrics that are constant or missing in some cell are left out (the figure names them)."""
    from ..metrics.registry import SCORING_METRICS as ORDER
    from ..metrics.registry import lower_is_better

    keys = list(CELL_KEYS_BY_DATASET)
    rows = table[~table["metric"].str.endswith("_std")]
    wide = rows.pivot_table(index=keys, columns="metric", values="value", sort=False)
    present = [m for m in ORDER if m in wide.columns] + [m for m in wide.columns if m not in ORDER]
    usable = [m for m in present if wide[m].notna().all() and wide[m].nunique() > 1]
    left_out = [m for m in present if m not in usable]
    if len(usable) < 2:
        raise ValueError(f"figure metric_correlation: fewer than two metrics vary across the {len(wide)} cells "
                         f"(left out: {', '.join(left_out) or 'none'})")
    oriented = pd.DataFrame({m: -wide[m] if lower_is_better(m) else wide[m] for m in usable})
    corr = oriented.corr(method="spearman")
    labels = [LABELS.get(m, m) for m in usable]
    with plt.rc_context(STYLE):
        size = 0.45 * len(usable) + 1.5
        fig, ax = plt.subplots(figsize=(size + 1.0, size))
        im = ax.imshow(corr.to_numpy(), cmap="RdBu", vmin=-1, vmax=1)
        ax.set_xticks(range(len(usable)), labels, rotation=90)
        ax.set_yticks(range(len(usable)), labels)
        ax.grid(False)
        for i in range(len(usable)):
            for j in range(len(usable)):
                v = corr.iat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(v) > 0.6 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Spearman ρ (metrics oriented: larger = better)")
        title = f"Metric agreement across the {len(wide)} cells of the sweep"
        if left_out:
            title += f"\n(left out, constant or missing: {', '.join(LABELS.get(m, m) for m in left_out)})"
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    out = corr.rename_axis("metric").reset_index().melt(id_vars="metric", var_name="other", value_name="spearman")
    out["n_cells"] = len(wide)
    save_data(out, data)
    return out
