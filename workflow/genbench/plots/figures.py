"""Paper figures. Each function takes the tidy table, writes PDF + PNG and the rows it drew (CSV)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 150,
    "savefig.bbox": "tight",
}
# colour-blind-safe (Okabe-Ito)
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def save_figure(fig, pdf: str | Path, png: str | Path) -> None:
    """PDF and PNG without timestamps, so identical data give identical files."""
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "ModDate": None, "Producer": None})
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def save_data(df: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


def fid_vs_cfg(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
               metric: str = "fid") -> pd.DataFrame:
    """FID (with its bootstrap CI as a band) against the guidance scale, one line per (model, step count),
    one panel per data set."""
    df = table[table["metric"] == metric].sort_values(["dataset", "model", "steps", "cfg"])
    if df.empty:
        raise ValueError(f"figure fid_vs_cfg: the table has no '{metric}' rows")
    datasets = list(dict.fromkeys(df["dataset"]))
    lines = list(dict.fromkeys(zip(df["model"], df["steps"], strict=True)))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(datasets), figsize=(3.4 * len(datasets) + 0.6, 2.9), squeeze=False,
                                 sharey=False)
        for ax, ds in zip(axes[0], datasets, strict=True):
            sub = df[df["dataset"] == ds]
            for j, (model, steps) in enumerate(lines):
                s = sub[(sub["model"] == model) & (sub["steps"] == steps)]
                if s.empty:
                    continue
                s = s.groupby("cfg", as_index=False)[["value", "ci_low", "ci_high"]].mean()
                colour = PALETTE[j % len(PALETTE)]
                ax.plot(s["cfg"], s["value"], marker=MARKERS[j % len(MARKERS)], color=colour, lw=1.5, ms=4,
                        label=f"{model}, {steps} step{'s' if steps != 1 else ''}")
                if s["ci_low"].notna().all():
                    ax.fill_between(s["cfg"], s["ci_low"], s["ci_high"], color=colour, alpha=0.15, lw=0)
            ax.set_xticks(sorted(sub["cfg"].unique()))
            ax.set_title(ds)
            ax.set_xlabel("guidance scale (CFG)")
            ax.set_ylabel(f"{metric.upper()} (lower is better)" if metric == "fid" else metric)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.suptitle(f"{metric.upper()} vs guidance scale (band: 95% bootstrap CI)", y=1.02)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


FIGURES = {"fid_vs_cfg": fid_vs_cfg}
