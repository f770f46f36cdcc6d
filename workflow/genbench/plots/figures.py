"""Paper figures. Each function takes the tidy table, writes PDF + PNG and the rows it drew (CSV)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..metrics.names import LABELS, LOWER_IS_BETTER  # noqa: E402
from ..metrics.names import best_settings as _best  # noqa: E402

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


def metric_label(metric: str) -> str:
    name = LABELS.get(metric, metric)
    return f"{name} ({'lower' if metric in LOWER_IS_BETTER else 'higher'} is better)"


def _rows(table: pd.DataFrame, metric: str, figure: str) -> pd.DataFrame:
    df = table[table["metric"] == metric]
    if df.empty:
        raise ValueError(f"figure {figure}: the table has no '{metric}' rows (metrics present: "
                         f"{sorted(table['metric'].unique())}); add '{metric}' to scoring.metrics or drop the figure")
    # stable: data sets and models keep the table's order (the config's), steps and guidance ascend
    return df.sort_values(["steps", "cfg", "seed"], kind="stable")


def _mean_over_seeds(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    cols = [c for c in ("value", "ci_low", "ci_high", "band_low", "band_high", "nfe") if c in df.columns]
    return df.groupby(by, as_index=False, sort=False)[cols].mean()


def _steps_label(steps: int) -> str:
    return f"{steps} step{'s' if steps != 1 else ''}"


def _panels(n: int, width: float = 3.4, height: float = 2.9):
    return plt.subplots(1, n, figsize=(width * n + 0.6, height), squeeze=False)


def metric_vs_cfg(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "fid") -> pd.DataFrame:
    """A metric (bootstrap CI as a band) against the guidance scale, one line per (model, step count), one panel
    per data set."""
    df = _rows(table, metric, f"{metric}_vs_cfg")
    band = "bootstrap CI"
    df = df.assign(band_low=df["ci_low"], band_high=df["ci_high"])
    if df["ci_low"].isna().all() and (table["metric"] == f"{metric}_std").any():
        # no CI (KID): the band is ± the spread the protocol reports (std over subsets)
        keys = ["dataset", "model", "steps", "cfg", "seed"]
        std = table[table["metric"] == f"{metric}_std"].set_index(keys)["value"]
        s = std.reindex(pd.MultiIndex.from_frame(df[keys])).to_numpy()
        df = df.assign(band_low=df["value"] - s, band_high=df["value"] + s)
        band = "± std over subsets"
    datasets = list(dict.fromkeys(df["dataset"]))
    lines = list(dict.fromkeys(zip(df["model"], df["steps"], strict=True)))
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(datasets))
        for ax, ds in zip(axes[0], datasets, strict=True):
            sub = df[df["dataset"] == ds]
            for j, (model, steps) in enumerate(lines):
                s = sub[(sub["model"] == model) & (sub["steps"] == steps)]
                if s.empty:
                    continue
                s = _mean_over_seeds(s, ["cfg"])
                colour = PALETTE[j % len(PALETTE)]
                ax.plot(s["cfg"], s["value"], marker=MARKERS[j % len(MARKERS)], color=colour, lw=1.5, ms=4,
                        label=f"{model}, {_steps_label(steps)}")
                if s["band_low"].notna().all():
                    ax.fill_between(s["cfg"], s["band_low"], s["band_high"], color=colour, alpha=0.15, lw=0)
            ax.set_xticks(sorted(sub["cfg"].unique()))
            ax.set_title(ds)
            ax.set_xlabel("guidance scale (CFG)")
            ax.set_ylabel(metric_label(metric))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        note = f" (band: {band})" if df["band_low"].notna().any() else ""
        fig.suptitle(f"{LABELS.get(metric, metric)} vs guidance scale{note}", y=1.02)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def step_scaling(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                 metric: str = "fid") -> pd.DataFrame:
    """A metric against the number of network evaluations per sample (log scale): one line per (model, guidance
    scale), so one-step and multi-step models sit on one axis; one panel per data set."""
    df = _rows(table, metric, "step_scaling")
    df = _mean_over_seeds(df, ["dataset", "model", "cfg", "steps"])
    datasets = list(dict.fromkeys(df["dataset"]))
    lines = list(dict.fromkeys(zip(df["model"], df["cfg"], strict=True)))
    with plt.rc_context(STYLE):
        fig, axes = _panels(len(datasets))
        for ax, ds in zip(axes[0], datasets, strict=True):
            sub = df[df["dataset"] == ds]
            for j, (model, cfg) in enumerate(lines):
                s = sub[(sub["model"] == model) & (sub["cfg"] == cfg)].sort_values("nfe")
                if s.empty:
                    continue
                colour = PALETTE[j % len(PALETTE)]
                dodge = 1.0 + 0.04 * (j - (len(lines) - 1) / 2)  # multiplicative: the axis is logarithmic
                ax.errorbar(s["nfe"] * dodge, s["value"], yerr=_yerr(s), marker=MARKERS[j % len(MARKERS)], color=colour,
                            lw=1.5, ms=4, capsize=2, label=f"{model}, CFG {cfg:g}")
            ax.set_xscale("log", base=2)
            nfes = sorted(sub["nfe"].unique())
            ax.set_xticks(nfes, [f"{int(n)}" for n in nfes])
            ax.minorticks_off()
            ax.set_title(ds)
            ax.set_xlabel("network evaluations per sample (NFE)")
            ax.set_ylabel(metric_label(metric))
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.suptitle(f"{LABELS.get(metric, metric)} vs sampling cost (bars: bootstrap CI)", y=1.02)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def _yerr(s: pd.DataFrame):
    """Asymmetric error bars from the CI columns; None when no row has a CI. Rows without a value (a setting not
    run on this data set) or without a CI get a zero-length bar, so the other rows keep theirs."""
    if not s["ci_low"].notna().any():
        return None
    lo = (s["value"] - s["ci_low"]).clip(lower=0).fillna(0).to_numpy()
    hi = (s["ci_high"] - s["value"]).clip(lower=0).fillna(0).to_numpy()
    return [lo, hi]


def best_settings(table: pd.DataFrame, metric: str = "fid", dataset: str | None = None) -> pd.DataFrame:
    """Per (model, steps): the guidance scale with the best ``metric`` on ``dataset`` (default: the first data set
    in the table), averaged over seeds. Ties go to the smaller guidance scale."""
    df = _rows(table, metric, "best_settings")
    dataset = dataset or df["dataset"].iloc[0]
    return _best(table[table["dataset"] == dataset], metric, ["model", "steps"])


def dataset_comparison(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                       metric: str = "fid") -> pd.DataFrame:
    """The same setting scored on every data set: bars per data set for each (model, step count), at the guidance
    scale that is best on the first data set; error bars are the bootstrap CIs."""
    rows = _mean_over_seeds(_rows(table, metric, "dataset_comparison"), ["dataset", "model", "steps", "cfg"])
    ref = rows["dataset"].iloc[0]
    chosen = best_settings(table, metric, ref)
    df = rows.merge(chosen, on=["model", "steps", "cfg"])
    datasets = list(dict.fromkeys(rows["dataset"]))
    groups = list(dict.fromkeys(zip(chosen["model"], chosen["steps"], chosen["cfg"], strict=True)))
    width = 0.8 / len(datasets)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(max(3.6, 1.25 * len(groups) * max(1, len(datasets) / 2) + 1.2), 3.0))
        for j, ds in enumerate(datasets):
            s = df[df["dataset"] == ds].set_index(["model", "steps", "cfg"]).reindex(groups).reset_index()
            x = [i + (j - (len(datasets) - 1) / 2) * width for i in range(len(groups))]
            ax.bar(x, s["value"], width=width * 0.95, color=PALETTE[j % len(PALETTE)], label=ds,
                   yerr=_yerr(s), capsize=2, error_kw={"lw": 0.8})
        ax.set_xticks(range(len(groups)), [f"{m}\n{_steps_label(st)}, CFG {c:g}" for m, st, c in groups])
        ax.grid(axis="x", visible=False)
        ax.set_ylabel(metric_label(metric))
        ax.legend(frameon=False, title="data set")
        missing = df.groupby("dataset").size().reindex(datasets).fillna(0).lt(len(groups)).any()
        note = " (no bar: setting not run on that data set)" if missing else ""
        ax.set_title(f"{LABELS.get(metric, metric)} per data set at each model's best CFG on {ref}{note}")
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def sample_grids(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                 grids: dict[str, str | Path], metric: str = "fid") -> pd.DataFrame:
    """The per-cell sample grids side by side: one row per (model, data set, step count), one column per guidance
    scale, each titled with the cell's metric. ``grids`` maps a cell path (model/dataset/stepsS_cfgC/seedN) to its
    grid PNG; the first seed of each cell is shown."""
    from PIL import Image

    df = _rows(table, metric, "sample_grids")
    df = df.assign(cell=[f"{m}/{d}/steps{s}_cfg{c:g}/seed{sd}" for m, d, s, c, sd in
                         zip(df["model"], df["dataset"], df["steps"], df["cfg"], df["seed"], strict=True)])
    df = df[df["cell"].isin(grids.keys())].drop_duplicates(["model", "dataset", "steps", "cfg"])
    if df.empty:
        raise ValueError("figure sample_grids: none of the table's cells has a sample grid")
    rows = list(dict.fromkeys(zip(df["model"], df["dataset"], df["steps"], strict=True)))
    cols = sorted(df["cfg"].unique())
    with Image.open(grids[df["cell"].iloc[0]]) as im:
        aspect = im.width / im.height
    tile_w = 2.6 if aspect > 2 else 1.6
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(rows), len(cols), squeeze=False,
                                 figsize=(tile_w * len(cols) + 0.9, (tile_w / aspect + 0.3) * len(rows) + 0.4))
        for ax in axes.flat:
            ax.axis("off")
        for i, (model, ds, steps) in enumerate(rows):
            for j, cfg in enumerate(cols):
                hit = df[(df["model"] == model) & (df["dataset"] == ds) & (df["steps"] == steps) & (df["cfg"] == cfg)]
                if hit.empty:
                    continue
                r = hit.iloc[0]
                with Image.open(grids[r["cell"]]) as im:
                    axes[i, j].imshow(np.asarray(im.convert("RGB")), interpolation="nearest")
                axes[i, j].set_title(f"CFG {cfg:g}: {LABELS.get(metric, metric)} {r['value']:.3g}", fontsize=7,
                                     pad=2)
            axes[i, 0].text(-0.04, 0.5, f"{model}\n{ds}\n{_steps_label(steps)}", transform=axes[i, 0].transAxes,
                            ha="right", va="center", fontsize=7)
        fig.suptitle("Samples per cell (same noise across cells)", y=1.0)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    out = df.drop(columns=["cell"])
    save_data(out, data)
    return out


def per_class_fid(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "fid", k: int = 5) -> pd.DataFrame:
    """The best and worst classes by per-class FID, one panel per (model, data set), at the cell (steps, guidance,
    seed) whose median per-class FID is lowest. Drawn from the per-class table; error bars: bootstrap CIs when the
    per-class bootstrap is on."""
    df = table[(table["metric"] == metric) & table["value"].notna()]
    if df.empty:
        raise ValueError(f"figure per_class_fid: the per-class table has no '{metric}' values "
                         "(is scoring.per_class.enabled false?)")
    keys = ["model", "dataset", "steps", "cfg", "seed"]
    med = df.groupby(keys, sort=False)["value"].median().reset_index()
    chosen = med.loc[med.groupby(["model", "dataset"], sort=False)["value"].idxmin(), keys]
    panels = []
    for cell in chosen.itertuples(index=False):
        sub = df[(df[keys] == pd.Series(cell._asdict())).all(axis=1)].sort_values(["value", "label_id"])
        kk = max(1, min(k, len(sub) // 2))
        pick = pd.concat([sub.head(kk).assign(group="best"), sub.tail(kk).assign(group="worst")])
        panels.append((cell, pick.drop_duplicates("label_id")))
    with plt.rc_context(STYLE):
        height = max(2.2, 0.28 * max(len(p) for _, p in panels) + 0.9)
        fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.4, height), squeeze=False)
        for ax, (cell, pick) in zip(axes[0], panels, strict=True):
            y = np.arange(len(pick))[::-1]
            colours = [PALETTE[2] if g == "best" else PALETTE[3] for g in pick["group"]]
            err = None
            if pick["ci_low"].notna().all():
                err = [(pick["value"] - pick["ci_low"]).clip(lower=0), (pick["ci_high"] - pick["value"]).clip(lower=0)]
            ax.barh(y, pick["value"], color=colours, xerr=err, capsize=2, error_kw={"lw": 0.8})
            ax.set_yticks(y, pick["class_name"].astype(str))
            ax.grid(axis="y", visible=False)
            ax.set_xlabel(f"per-class {LABELS.get(metric, metric)} (lower is better)")
            ax.set_title(f"{cell.model} on {cell.dataset}\n{_steps_label(cell.steps)}, CFG {cell.cfg:g}", fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[2]), plt.Rectangle((0, 0), 1, 1, color=PALETTE[3])]
        fig.legend(handles, ["best classes", "worst classes"], loc="upper center", ncol=2, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout()
        save_figure(fig, pdf, png)
    out = pd.concat([p for _, p in panels], ignore_index=True)
    save_data(out, data)
    return out


def mmhm_heatmap(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                 metric: str = "mmhm") -> pd.DataFrame:
    """MMHM over the sweep: one heatmap per (model, data set), steps x guidance scale (mean over seeds), each cell
    annotated; the setting MMHM selects (its maximum per data set) is outlined."""
    df = _mean_over_seeds(_rows(table, metric, "mmhm_heatmap"), ["dataset", "model", "steps", "cfg"])
    best = df.loc[df.groupby("dataset", sort=False)["value"].idxmax()]
    df = df.assign(selected=df.index.isin(best.index))
    panels = list(dict.fromkeys(zip(df["model"], df["dataset"], strict=True)))
    vmin, vmax = float(df["value"].min()), float(df["value"].max())
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(panels), figsize=(2.9 * len(panels) + 1.0, 2.8), squeeze=False)
        for ax, (model, ds) in zip(axes[0], panels, strict=True):
            sub = df[(df["model"] == model) & (df["dataset"] == ds)]
            grid = sub.pivot_table(index="steps", columns="cfg", values="value", sort=True)
            im = ax.imshow(grid.to_numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
            ax.set_xticks(range(grid.shape[1]), [f"{c:g}" for c in grid.columns])
            ax.set_yticks(range(grid.shape[0]), [str(s) for s in grid.index])
            ax.grid(False)
            for i in range(grid.shape[0]):
                for j in range(grid.shape[1]):
                    v = grid.iloc[i, j]
                    if np.isfinite(v):
                        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                                color="white" if v < (vmin + vmax) / 2 else "black")
            for r in sub[sub["selected"]].itertuples():
                i, j = list(grid.index).index(r.steps), list(grid.columns).index(r.cfg)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="#D55E00", lw=2.2))
            ax.set_title(f"{model} on {ds}", fontsize=8)
            ax.set_xlabel("guidance scale (CFG)")
            if ax is axes[0][0]:
                ax.set_ylabel("steps")
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="MMHM (higher is better)")
        fig.suptitle("MMHM over the sweep (outlined: the setting MMHM selects per data set)", y=1.03)
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def scaled_vs_raw(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "csfid") -> pd.DataFrame:
    """Each cell's scaled FID (csFID, and psFID when computed) against its raw FID, one marker per data set and
    colour per model; points off the diagonal are cells whose text-image agreement differs from the real images'."""
    scaled = [m for m in ("csfid", "psfid") if (table["metric"] == m).any()]
    if "csfid" not in scaled:
        _rows(table, "csfid", "scaled_vs_raw")  # raises with the figure named
    keys = ["dataset", "model", "steps", "cfg", "seed"]
    raw = _rows(table, "fid", "scaled_vs_raw").set_index(keys)["value"].rename("fid")
    parts = [raw]
    for m in scaled:
        parts.append(table[table["metric"] == m].set_index(keys)["value"].rename(m))
    df = pd.concat(parts, axis=1).reset_index()
    models = list(dict.fromkeys(df["model"]))
    datasets = list(dict.fromkeys(df["dataset"]))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(scaled), figsize=(3.4 * len(scaled) + 1.2, 3.1), squeeze=False)
        for ax, m in zip(axes[0], scaled, strict=True):
            lo, hi = float(min(df["fid"].min(), df[m].min())), float(max(df["fid"].max(), df[m].max()))
            ax.plot([lo, hi], [lo, hi], color="#999999", lw=1, ls="--", label="no change")
            for i, model in enumerate(models):
                for j, ds in enumerate(datasets):
                    s = df[(df["model"] == model) & (df["dataset"] == ds)]
                    ax.scatter(s["fid"], s[m], color=PALETTE[i % len(PALETTE)], marker=MARKERS[j % len(MARKERS)],
                               s=22, label=f"{model}, {ds}")
            ax.set_xlabel("FID")
            ax.set_ylabel({"csfid": "csFID = FID / r_CLIP", "psfid": "psFID = FID / r_Pick"}[m])
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.suptitle("Semantics-scaled vs raw FID, one point per cell", y=1.02)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


@dataclass(frozen=True)
class Figure:
    """A figure: the function that draws it, its keyword arguments, and whether it also reads sample grids."""

    draw: Callable[..., pd.DataFrame]
    kwargs: dict[str, Any] = field(default_factory=dict)
    needs_grids: bool = False
    table: str = "gen2d_metrics"  # results/tables/{table}.parquet


FIGURES: dict[str, Figure] = {
    "fid_vs_cfg": Figure(metric_vs_cfg, {"metric": "fid"}),
    "is_vs_cfg": Figure(metric_vs_cfg, {"metric": "is"}),
    "kid_vs_cfg": Figure(metric_vs_cfg, {"metric": "kid"}),
    "step_scaling": Figure(step_scaling, {"metric": "fid"}),
    "dataset_comparison": Figure(dataset_comparison, {"metric": "fid"}),
    "sample_grids": Figure(sample_grids, {"metric": "fid"}, needs_grids=True),
    "per_class_fid": Figure(per_class_fid, {"metric": "fid"}, table="gen2d_per_class"),
    "clip_vs_cfg": Figure(metric_vs_cfg, {"metric": "clip_score"}),
    "pick_vs_cfg": Figure(metric_vs_cfg, {"metric": "pick_score"}),
    "mmhm_heatmap": Figure(mmhm_heatmap, {"metric": "mmhm"}),
    "scaled_vs_raw": Figure(scaled_vs_raw, {"metric": "csfid"}),
}


def draw_figure(name: str, table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                grids: dict[str, str | Path] | None = None) -> pd.DataFrame:
    if name not in FIGURES:
        raise KeyError(f"unknown figure '{name}'; known: {sorted(FIGURES)}")
    fig = FIGURES[name]
    extra = {"grids": grids or {}} if fig.needs_grids else {}
    return fig.draw(table, pdf, png, data, **fig.kwargs, **extra)
