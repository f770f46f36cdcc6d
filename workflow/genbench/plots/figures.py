"""Paper figures. Each function takes the tidy table, writes PDF + PNG and the rows it drew (CSV)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..layout import Cell  # noqa: E402
from ..metrics.names import best_settings as _best  # noqa: E402
from ..metrics.registry import LABELS, lower_is_better  # noqa: E402
from ..tables.keys import CELL_KEYS, CELL_KEYS_BY_DATASET  # noqa: E402
from .registry import FIGURES  # noqa: E402

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
# line styles for a second categorical variable (guidance scale), distinguishable in print
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 3)), (0, (3, 1, 3, 3))]
MAX_COLUMNS = 3  # panels per row: wider figures are unreadable at page width


def style_of(i: int) -> tuple[str, str]:
    """Colour and marker of the i-th series: distinct pairs for up to len(PALETTE) * len(MARKERS) series."""
    return PALETTE[i % len(PALETTE)], MARKERS[(i + i // len(PALETTE)) % len(MARKERS)]


def ci_text(confidence: float) -> str:
    """'90% bootstrap CI' for confidence 0.9 (the config's scoring.bootstrap.confidence)."""
    if not 0 < float(confidence) < 1:
        raise ValueError(f"figure: confidence level {confidence!r} must lie strictly between 0 and 1 "
                         "(scoring.bootstrap.confidence / recon3d.bootstrap.confidence)")
    return f"{100 * float(confidence):g}% bootstrap CI"


def panel_grid(n: int, width: float, height: float, extra_width: float = 0.6, extra_height: float = 0.0,
               columns: int = MAX_COLUMNS):
    """``n`` panels wrapped into rows of at most ``columns``; unused cells are hidden. Returns the figure, the
    2-D axes array and the ``n`` panels' axes in reading order."""
    ncol = max(1, min(n, columns))
    nrow = -(-n // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(width * ncol + extra_width, height * nrow + extra_height),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes, list(axes.flat[:n])


def spaced_ticks(values, min_gap: float, log: bool = False) -> list[float]:
    """The sorted distinct ``values`` to label on an axis, dropping any closer than ``min_gap`` (a fraction of the
    axis range, on a log scale if ``log``) to the previous kept one, so labels never overlap (1, 1.5, 2 on a 1-7
    guidance axis; 28, 32, 56, 64 on a 1-500 NFE axis)."""
    vals = sorted({float(v) for v in values})
    pos = np.log(vals) if log else np.asarray(vals)
    span = float(pos[-1] - pos[0]) or 1.0
    kept, last = [], None
    for v, x in zip(vals, pos, strict=True):
        if last is None or (x - last) / span >= min_gap:
            kept.append(v)
            last = x
    return kept


def _legend_entries(axes) -> tuple[list, list[str]]:
    """Handles and labels of every panel, each label once, in order of first appearance (a series missing from
    the first panel still gets its entry)."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return list(seen.values()), list(seen)


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
    return f"{name} ({'lower' if lower_is_better(metric) else 'higher'} is better)"


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


def _zero_spread(low: pd.Series, high: pd.Series, value: pd.Series) -> pd.Series:
    """A spread below the value's float resolution is rounding noise (KID's std when every subset is the whole
    set is ~1e-12): no interval to show."""
    return (high - low).abs() <= 2e-9 * value.abs()


def _band_or_bars(ax, s: pd.DataFrame, colour: str, x: str = "cfg") -> bool:
    """The interval of one line: a band over consecutive points that have one, an error bar on a point whose
    neighbours have none (a band of one point has no width). Returns whether a lone point got a bar."""
    ok = (s["band_low"].notna() & s["band_high"].notna()
          & ~_zero_spread(s["band_low"], s["band_high"], s["value"])).to_numpy()
    prev = np.concatenate([[False], ok[:-1]])
    nxt = np.concatenate([ok[1:], [False]])
    lone = ok & ~prev & ~nxt
    if (ok & ~lone).any():
        ax.fill_between(s[x], s["band_low"].where(ok), s["band_high"].where(ok), color=colour, alpha=0.15, lw=0)
    if lone.any():
        p = s[lone]
        err = [(p["value"] - p["band_low"]).clip(lower=0), (p["band_high"] - p["value"]).clip(lower=0)]
        ax.errorbar(p[x], p["value"], yerr=err, fmt="none", ecolor=colour, elinewidth=1.0, capsize=3)
    return bool(lone.any())


SIGNIFICANCE_NOTE = "*: neighbouring points differ significantly (paired bootstrap, Holm-adjusted)"


def significant_neighbours(pairwise: pd.DataFrame | None, metric: str, comparison: str, dataset: str, model: str,
                           fixed: float, values: list[float]) -> list[bool | None]:
    """For consecutive ``values`` of the varied key (cfg or steps) on one line (data set, model, the other key
    ``fixed``): whether the paired comparison of the two points is significant in every seed (None: not tested)."""
    if pairwise is None:
        return [None] * max(len(values) - 1, 0)
    other = {"cfg": "steps", "steps": "cfg"}[comparison]
    rows = pairwise[(pairwise["comparison"] == comparison) & (pairwise["metric"] == metric)
                    & (pairwise["dataset"] == dataset) & (pairwise["model_a"] == model)
                    & (pairwise[f"{other}_a"] == fixed)]
    out: list[bool | None] = []
    for a, b in zip(values[:-1], values[1:], strict=True):
        r = rows[(rows[f"{comparison}_a"] == a) & (rows[f"{comparison}_b"] == b)]
        out.append(bool(r["significant"].all()) if len(r) else None)
    return out


def _mark_significant(ax, x: np.ndarray, y: np.ndarray, sig: list[bool | None], colour: str, log: bool = False) -> bool:
    """A star between each pair of neighbouring points whose difference is significant; returns whether any."""
    any_mark = False
    for i, flag in enumerate(sig):
        if flag:
            xm = float(np.sqrt(x[i] * x[i + 1])) if log else float((x[i] + x[i + 1]) / 2)
            ax.annotate("*", (xm, float((y[i] + y[i + 1]) / 2)), color=colour, ha="center", va="bottom",
                        fontsize=11, fontweight="bold")
            any_mark = True
    return any_mark


def metric_vs_cfg(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "fid", *, confidence: float, pairwise: pd.DataFrame | None = None) -> pd.DataFrame:
    """A metric (bootstrap CI as a band, or an error bar on a lone point) against the guidance scale, one line
    per (model, step count), one panel per data set (at most three per row). Metrics without a CI but with a
    spread (KID: std over subsets) get ± that spread, and no band where the spread is 0."""
    df = _rows(table, metric, f"{metric}_vs_cfg")
    band = ci_text(confidence)
    df = df.assign(band_low=df["ci_low"], band_high=df["ci_high"])
    spread = False
    if df["ci_low"].isna().all() and (table["metric"] == f"{metric}_std").any():
        # no CI (KID): the band is ± the spread the protocol reports (std over subsets)
        keys = list(CELL_KEYS_BY_DATASET)
        std = table[table["metric"] == f"{metric}_std"].set_index(keys)["value"]
        s = std.reindex(pd.MultiIndex.from_frame(df[keys])).to_numpy()
        df = df.assign(band_low=df["value"] - s, band_high=df["value"] + s)
        band, spread = "± 1 std over subsets, not a CI", True
    datasets = list(dict.fromkeys(df["dataset"]))
    lines = list(dict.fromkeys(zip(df["model"], df["steps"], strict=True)))
    lone, marked, sig_rows = False, False, []
    with plt.rc_context(STYLE):
        fig, _, axes = panel_grid(len(datasets), 3.0, 2.7)
        for ax, ds in zip(axes, datasets, strict=True):
            sub = df[df["dataset"] == ds]
            for j, (model, steps) in enumerate(lines):
                s = sub[(sub["model"] == model) & (sub["steps"] == steps)]
                if s.empty:
                    continue
                s = _mean_over_seeds(s, ["cfg"])
                colour, marker = style_of(j)
                ax.plot(s["cfg"], s["value"], marker=marker, color=colour, lw=1.5, ms=4,
                        label=f"{model}, {_steps_label(steps)}")
                lone |= _band_or_bars(ax, s, colour)
                if pairwise is not None:
                    sig = significant_neighbours(pairwise, metric, "cfg", ds, model, steps, s["cfg"].tolist())
                    marked |= _mark_significant(ax, s["cfg"].to_numpy(), s["value"].to_numpy(), sig, colour)
                    sig_rows += [(ds, model, steps, c, f) for c, f in zip(s["cfg"], [*sig, None], strict=True)]
            ticks = spaced_ticks(sub["cfg"], 0.09)
            ax.set_xticks(ticks, [f"{c:g}" for c in ticks])
            ax.set_title(ds)
            ax.set_xlabel("guidance scale (CFG)")
            ax.set_ylabel(metric_label(metric))
        handles, labels = _legend_entries(axes)
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        has = df["band_low"].notna() & df["band_high"].notna()
        zero = has & _zero_spread(df["band_low"], df["band_high"], df["value"])
        if not has.any() and spread:  # a std row that is NaN: scoring found every subset to be the whole set
            note = "no spread drawn: every subset is the whole set, so the std over subsets says nothing"
        elif not has.any():
            note = "no CI: the bootstrap is off (scoring.bootstrap.n: 0)"
        else:
            note = f"{'band, or bar on a lone point' if lone else 'band'}: {band}"
            if zero.any():
                note += ("; none drawn where the std is 0: every subset is the whole set" if spread
                         else "; none drawn where the interval has zero width")
        _title_and_save(fig, f"{LABELS.get(metric, metric)} vs guidance scale", note, marked, pdf, png)
    return _save_with_flags(df, sig_rows if pairwise is not None else None, ["dataset", "model", "steps", "cfg"],
                            data)


def step_scaling(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                 metric: str = "fid", *, confidence: float, pairwise: pd.DataFrame | None = None) -> pd.DataFrame:
    """A metric against the number of network evaluations per sample (log scale), one panel per data set (at most
    three per row): one line per (model, guidance scale), coloured (and marked) by model, dashed by guidance
    scale, so one-step and multi-step models sit on one axis; error bars: bootstrap CIs."""
    df = _rows(table, metric, "step_scaling")
    df = _mean_over_seeds(df, ["dataset", "model", "cfg", "steps"])
    datasets = list(dict.fromkeys(df["dataset"]))
    models = list(dict.fromkeys(df["model"]))
    cfgs = sorted(df["cfg"].unique())
    if len(cfgs) > len(LINESTYLES):
        raise ValueError(f"figure step_scaling: {len(cfgs)} guidance scales, but only {len(LINESTYLES)} line styles "
                         "tell them apart; draw fewer guidance scales (sweep) or split the figure")
    lines = list(dict.fromkeys(zip(df["model"], df["cfg"], strict=True)))
    marked, sig_rows = False, []
    with plt.rc_context(STYLE):
        fig, _, axes = panel_grid(len(datasets), 3.0, 2.7)
        for ax, ds in zip(axes, datasets, strict=True):
            sub = df[df["dataset"] == ds]
            for j, (model, cfg) in enumerate(lines):
                s = sub[(sub["model"] == model) & (sub["cfg"] == cfg)].sort_values("nfe")
                if s.empty:
                    continue
                colour, marker = style_of(models.index(model))
                dodge = 1.0 + 0.04 * (j - (len(lines) - 1) / 2)  # multiplicative: the axis is logarithmic
                ax.errorbar(s["nfe"] * dodge, s["value"], yerr=_yerr(s), marker=marker, color=colour,
                            ls=LINESTYLES[cfgs.index(cfg)], lw=1.5, ms=4, capsize=2, elinewidth=1.0)
                if pairwise is not None:
                    sig = significant_neighbours(pairwise, metric, "steps", ds, model, cfg, s["steps"].tolist())
                    marked |= _mark_significant(ax, (s["nfe"] * dodge).to_numpy(), s["value"].to_numpy(), sig,
                                                colour, log=True)
                    sig_rows += [(ds, model, cfg, st, f) for st, f in zip(s["steps"], [*sig, None], strict=True)]
            ax.set_xscale("log", base=2)
            nfes = spaced_ticks(sub["nfe"], 0.07, log=True)
            ax.set_xticks(nfes, [f"{int(n)}" for n in nfes])
            ax.minorticks_off()
            ax.set_title(ds)
            ax.set_xlabel("network evaluations per sample (NFE)")
            ax.set_ylabel(metric_label(metric))
        from matplotlib.lines import Line2D

        by_model = [Line2D([], [], color=style_of(i)[0], marker=style_of(i)[1], lw=1.5, ms=4, label=m)
                    for i, m in enumerate(models)]
        by_cfg = [Line2D([], [], color="#555555", ls=LINESTYLES[i], lw=1.5, label=f"CFG {c:g}")
                  for i, c in enumerate(cfgs)]
        leg = fig.legend(handles=by_model, title="model (colour, marker)", loc="center left",
                         bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.add_artist(leg)
        fig.legend(handles=by_cfg, title="guidance scale (line style)", loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=min(len(by_cfg), 6), frameon=False, handlelength=3.5)
        note = f"bars: {ci_text(confidence)}" if df["ci_low"].notna().any() else "no CI: the bootstrap is off"
        _title_and_save(fig, f"{LABELS.get(metric, metric)} vs sampling cost", note, marked, pdf, png)
    return _save_with_flags(df, sig_rows if pairwise is not None else None, ["dataset", "model", "cfg", "steps"],
                            data)


def _title_and_save(fig: Any, title: str, note: str, marked: bool, pdf: str | Path, png: str | Path) -> None:
    """A figure's title: what is drawn, then on its own line the interval note (and the significance marks'
    legend when the figure marks them)."""
    if marked:
        note += f";\n{SIGNIFICANCE_NOTE}"
    fig.suptitle(f"{title}\n({note})", y=1.0)
    fig.tight_layout()
    save_figure(fig, pdf, png)


def _save_with_flags(df: pd.DataFrame, sig_rows: list[tuple] | None, keys: list[str], data: str | Path) -> pd.DataFrame:
    """The figure's data with each point's ``significant_vs_next`` flag (rows ``keys`` + flag; None: no pairwise
    table was given, so no column), saved next to the figure."""
    if sig_rows is not None:
        flags = pd.DataFrame(sig_rows, columns=[*keys, "significant_vs_next"])
        df = df.merge(flags, on=keys, how="left")
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
                       metric: str = "fid", *, confidence: float) -> pd.DataFrame:
    """The same setting scored on every data set: bars per data set for each (model, step count), at the guidance
    scale that is best on the first data set; error bars are the bootstrap CIs."""
    rows = _mean_over_seeds(_rows(table, metric, "dataset_comparison"), ["dataset", "model", "steps", "cfg"])
    ref = rows["dataset"].iloc[0]
    chosen = best_settings(table, metric, ref)
    df = rows.merge(chosen, on=["model", "steps", "cfg"])
    datasets = list(dict.fromkeys(rows["dataset"]))
    groups = list(dict.fromkeys(zip(chosen["model"], chosen["steps"], chosen["cfg"], strict=True)))
    width = 0.8 / len(datasets)
    group_in = 0.3 * len(datasets) + 0.5  # inches per (model, steps) group
    per_row = max(1, min(len(groups), int(9.0 // group_in)))  # wrap: at most ~9 inches of bars per row
    chunks = [groups[i:i + per_row] for i in range(0, len(groups), per_row)]
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(chunks), 1, squeeze=False,
                                 figsize=(max(3.6, group_in * per_row + 1.2), 2.6 * len(chunks) + 0.4))
        for ax, chunk in zip(axes[:, 0], chunks, strict=True):
            for j, ds in enumerate(datasets):
                s = df[df["dataset"] == ds].set_index(["model", "steps", "cfg"]).reindex(chunk).reset_index()
                x = [i + (j - (len(datasets) - 1) / 2) * width for i in range(len(chunk))]
                ax.bar(x, s["value"], width=width * 0.95, color=PALETTE[j % len(PALETTE)], label=ds,
                       yerr=_yerr(s), capsize=2, error_kw={"lw": 0.8})
            ax.set_xticks(range(len(chunk)), [f"{m}\n{_steps_label(st)}, CFG {c:g}" for m, st, c in chunk])
            ax.set_xlim(-0.5, per_row - 0.5)
            ax.grid(axis="x", visible=False)
            ax.set_ylabel(metric_label(metric))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, frameon=False, title="data set", loc="center left", bbox_to_anchor=(1.0, 0.5))
        missing = df.groupby("dataset").size().reindex(datasets).fillna(0).lt(len(groups)).any()
        note = "; no bar: setting not run on that data set" if missing else ""
        bars = f"error bars: {ci_text(confidence)}" if df["ci_low"].notna().any() else "no CI: the bootstrap is off"
        fig.suptitle(f"{LABELS.get(metric, metric)} per data set at each model's best CFG on {ref}\n({bars}{note})",
                     y=1.0)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def sample_grids(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                 grids: dict[str, str | Path], metric: str = "fid", *, confidence: float) -> pd.DataFrame:
    """The per-cell sample grids side by side: one row per (model, data set, step count), one column per guidance
    scale, each titled with the cell's metric and its bootstrap CI. ``grids`` maps a cell path
    (model/dataset/stepsS_cfgC/seedN) to its grid PNG; the first seed of each cell is shown."""
    from PIL import Image

    df = _rows(table, metric, "sample_grids")
    df = df.assign(cell=[str(Cell.from_mapping(r)) for r in df[list(CELL_KEYS)].to_dict("records")])
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
                ci = f" [{r['ci_low']:.3g}, {r['ci_high']:.3g}]" if pd.notna(r["ci_low"]) else ""
                axes[i, j].set_title(f"CFG {cfg:g}: {LABELS.get(metric, metric)} {r['value']:.3g}{ci}", fontsize=7,
                                     pad=2)
            axes[i, 0].text(-0.04, 0.5, f"{model}\n{ds}\n{_steps_label(steps)}", transform=axes[i, 0].transAxes,
                            ha="right", va="center", fontsize=7)
        bracket = f"; brackets: {ci_text(confidence)}" if df["ci_low"].notna().any() else ""
        fig.suptitle(f"Samples per cell (same noise across cells{bracket})", y=1.0)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    out = df.drop(columns=["cell"])
    save_data(out, data)
    return out


def per_class_fid(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "fid", k: int = 5, *, confidence: float) -> pd.DataFrame:
    """The best and worst classes by per-class FID, one panel per (model, data set) (at most three per row), at the
    cell (steps, guidance, seed) whose median per-class FID is lowest. Drawn from the per-class table; error bars:
    bootstrap CIs when the per-class bootstrap is on (a class without one has no bar, the others keep theirs)."""
    df = table[(table["metric"] == metric) & table["value"].notna()]
    if df.empty:
        raise ValueError(f"figure per_class_fid: the per-class table has no '{metric}' values "
                         "(is scoring.per_class.enabled false?)")
    keys = list(CELL_KEYS)
    med = df.groupby(keys, sort=False)["value"].median().reset_index()
    chosen = med.loc[med.groupby(["model", "dataset"], sort=False)["value"].idxmin(), keys]
    panels = []
    for cell in chosen.itertuples(index=False):
        sub = df[(df[keys] == pd.Series(cell._asdict())).all(axis=1)].sort_values(["value", "label_id"])
        kk = max(1, min(k, len(sub) // 2))
        pick = pd.concat([sub.head(kk).assign(group="best"), sub.tail(kk).assign(group="worst")])
        panels.append((cell, pick.drop_duplicates("label_id")))
    with plt.rc_context(STYLE):
        height = max(1.6, 0.22 * max(len(p) for _, p in panels) + 0.9)
        fig, _, axes = panel_grid(len(panels), 3.0, height, extra_width=0.4, extra_height=0.3)
        for ax, (cell, pick) in zip(axes, panels, strict=True):
            y = np.arange(len(pick))[::-1]
            colours = [PALETTE[2] if g == "best" else PALETTE[3] for g in pick["group"]]
            ax.barh(y, pick["value"], color=colours)
            has = pick["ci_low"].notna() & pick["ci_high"].notna()
            if has.any():
                p = pick[has]
                err = [(p["value"] - p["ci_low"]).clip(lower=0), (p["ci_high"] - p["value"]).clip(lower=0)]
                ax.errorbar(p["value"], y[has.to_numpy()], xerr=err, fmt="none", ecolor="black", elinewidth=0.8,
                            capsize=2)
            ax.set_yticks(y, pick["class_name"].astype(str))
            ax.grid(axis="y", visible=False)
            ax.set_xlabel(f"per-class {LABELS.get(metric, metric)} (lower is better)")
            ax.set_title(f"{cell.model} on {cell.dataset}\n{_steps_label(cell.steps)}, CFG {cell.cfg:g}", fontsize=8)
        handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE[2]), plt.Rectangle((0, 0), 1, 1, color=PALETTE[3])]
        fig.legend(handles, ["best classes", "worst classes"], loc="upper center", ncol=2, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))
        out = pd.concat([p for _, p in panels], ignore_index=True)
        bars = (f"error bars: {ci_text(confidence)}" if out["ci_low"].notna().any()
                else "no CI: the per-class bootstrap is off (scoring.per_class.bootstrap: 0)")
        _title_and_save(fig, f"Best and worst classes by per-class {LABELS.get(metric, metric)}", bars, False,
                        pdf, png)
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
        fig, grid_axes, axes = panel_grid(len(panels), 2.9, 2.6, extra_width=1.0)
        fig.subplots_adjust(hspace=0.55, wspace=0.35)
        for ax, (model, ds) in zip(axes, panels, strict=True):
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
            ax.set_ylabel("steps")
        fig.colorbar(im, ax=grid_axes.ravel().tolist(), shrink=0.85, label="MMHM (higher is better)")
        fig.suptitle("MMHM over the sweep (outlined: the setting MMHM selects per data set)", y=1.03)
        save_figure(fig, pdf, png)
    save_data(df, data)
    return df


def scaled_vs_raw(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                  metric: str = "csfid", *, confidence: float) -> pd.DataFrame:
    """Each cell's scaled FID (csFID, and psFID when computed) against its raw FID, one marker per data set and
    colour per model, with both bootstrap CIs as error bars; points off the diagonal are cells whose text-image
    agreement differs from the real images'."""
    scaled = [m for m in ("csfid", "psfid") if (table["metric"] == m).any()]
    if "csfid" not in scaled:
        _rows(table, "csfid", "scaled_vs_raw")  # raises with the figure named
    keys = list(CELL_KEYS_BY_DATASET)
    parts = []
    for m in ["fid", *scaled]:
        rows = _rows(table, m, "scaled_vs_raw") if m == "fid" else table[table["metric"] == m]
        part = rows.set_index(keys)[["value", "ci_low", "ci_high"]]
        parts.append(part.rename(columns={"value": m, "ci_low": f"{m}_ci_low", "ci_high": f"{m}_ci_high"}))
    df = pd.concat(parts, axis=1).reset_index()
    # the values first (as before the CIs were drawn), then the CI columns
    ms = ["fid", *scaled]
    df = df[keys + ms + [f"{m}_ci_{e}" for m in ms for e in ("low", "high")]]
    models = list(dict.fromkeys(df["model"]))
    datasets = list(dict.fromkeys(df["dataset"]))

    def err(s: pd.DataFrame, m: str):
        if s[f"{m}_ci_low"].isna().all():
            return None
        return [(s[m] - s[f"{m}_ci_low"]).clip(lower=0).fillna(0).to_numpy(),
                (s[f"{m}_ci_high"] - s[m]).clip(lower=0).fillna(0).to_numpy()]

    with plt.rc_context(STYLE):
        fig, _, axes = panel_grid(len(scaled), 3.2, 3.0, extra_width=1.2)
        for ax, m in zip(axes, scaled, strict=True):
            lo, hi = float(min(df["fid"].min(), df[m].min())), float(max(df["fid"].max(), df[m].max()))
            ax.plot([lo, hi], [lo, hi], color="#999999", lw=1, ls="--", label="no change")
            for i, model in enumerate(models):
                for j, ds in enumerate(datasets):
                    s = df[(df["model"] == model) & (df["dataset"] == ds)]
                    if s.empty:
                        continue
                    ax.errorbar(s["fid"], s[m], xerr=err(s, "fid"), yerr=err(s, m), fmt=MARKERS[j % len(MARKERS)],
                                color=PALETTE[i % len(PALETTE)], ms=4.5, elinewidth=0.7, capsize=1.5, alpha=0.9,
                                label=f"{model}, {ds}")
            ax.set_xlabel("FID")
            ax.set_ylabel({"csfid": "csFID = FID / r_CLIP", "psfid": "psFID = FID / r_Pick"}[m])
        handles, labels = _legend_entries(axes)
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        bars = (f"bars: {ci_text(confidence)}" if df[[f"{m}_ci_low" for m in ms]].notna().any().any()
                else "no CI: the bootstrap is off")
        _title_and_save(fig, "Semantics-scaled vs raw FID, one point per cell", bars, False, pdf, png)
    save_data(df, data)
    return df


def draw_figure(name: str, table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path,
                grids: dict[str, str | Path] | None = None, *, confidence: float,
                pairwise: pd.DataFrame | None = None, tables: dict[str, pd.DataFrame] | None = None,
                shards: dict[str, list[str | Path]] | None = None, manifests: dict[str, str | Path] | None = None,
                options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Draw one registered figure; ``confidence`` is the level of the table's bootstrap CIs
    (scoring.bootstrap.confidence), stated on every figure that shows them. ``tables`` holds the other tables a
    figure reads (by name), ``shards`` each cell's generated shards (by cell path), ``manifests`` each data set's
    manifest, ``options`` the figure's options (the registry's defaults for any not given)."""
    if name not in FIGURES:
        raise KeyError(f"unknown figure '{name}'; known: {sorted(FIGURES)}")
    fig = FIGURES[name]
    extra = {"grids": grids or {}} if fig.needs_grids else {}
    if fig.pairwise and pairwise is not None:
        extra["pairwise"] = pairwise
    if fig.intervals:
        ci_text(confidence)  # a bad level fails here, before anything is drawn
        extra["confidence"] = confidence
    if fig.extra_tables:
        missing = [t for t in fig.extra_tables if t not in (tables or {})]
        if missing:
            raise KeyError(f"figure {name}: table(s) {missing} not given (the rule's input 'tables')")
        extra["tables"] = {t: tables[t] for t in fig.extra_tables}
    if fig.needs_images:
        extra["shards"] = shards or {}
        extra["manifests"] = manifests or {}
    extra.update(fig.resolve_options(options) if fig.options else {})
    return fig.load_draw()(table, pdf, png, data, **fig.kwargs, **extra)
