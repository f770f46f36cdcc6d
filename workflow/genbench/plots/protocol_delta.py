"""Figure protocol_delta: how far each protocol knob moves each metric, and whether it reorders the models."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from .figures import PALETTE, STYLE, ci_text, panel_grid, plt, save_data, save_figure


def protocol_delta_figure(table: pd.DataFrame, pdf, png, data, *, confidence: float) -> None:
    """One panel per (track, metric): per knob (rows), each entry's change ``to - from`` with its paired bootstrap
    CI at ``confidence``; the knob's label carries the Kendall tau between the two rankings on each data set.
    Knobs that could not be evaluated are listed under the figure with their reason."""
    ci = ci_text(confidence)
    deltas = table[(table["kind"] == "delta") & (table["status"] == "ok")]
    if deltas.empty:
        raise ValueError("figure protocol_delta: the table has no evaluated knob (every row is not_applicable); "
                         "check recon3d.protocols and the sweep")
    ranks = table[table["kind"] == "ranking"]
    skipped = table[(table["kind"] == "delta") & (table["status"] != "ok")].drop_duplicates(["track", "knob"])
    panels = list(dict.fromkeys(zip(deltas["track"], deltas["metric"], strict=True)))
    datasets = list(dict.fromkeys(deltas["dataset"]))
    colours = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(datasets)}
    with plt.rc_context(STYLE):
        fig, _, axes = panel_grid(len(panels), 3.2, 2.4, extra_width=0.4, extra_height=0.3 * len(skipped),
                                  columns=3)
        for ax, (track, metric) in zip(axes, panels, strict=True):
            sub = deltas[(deltas["track"] == track) & (deltas["metric"] == metric)]
            knobs = list(dict.fromkeys(sub["knob"]))
            labels = []
            for y, knob in enumerate(knobs):
                k = sub[sub["knob"] == knob]
                for j, ds in enumerate(datasets):
                    d = k[k["dataset"] == ds]
                    if d.empty:
                        continue
                    off = (j - (len(datasets) - 1) / 2) * 0.25 + np.linspace(-0.08, 0.08, len(d))
                    err = np.vstack([d["delta"] - d["ci_low"], d["ci_high"] - d["delta"]]).clip(min=0)
                    ax.errorbar(d["delta"], y + off, xerr=np.nan_to_num(err), fmt="o", ms=3, lw=0.8,
                                color=colours[ds], label=ds if y == 0 else None)
                r = ranks[(ranks["track"] == track) & (ranks["knob"] == knob) & (ranks["metric"] == metric)]
                taus = ", ".join(f"{t:.2f}" if np.isfinite(t) else "n/a" for t in r["kendall_tau"])
                labels.append(f"{knob}\nτ {taus}" if taus else knob)
            ax.axvline(0.0, color="black", lw=0.6)
            ax.set_yticks(range(len(knobs)), labels, fontsize=6)
            ax.set_title(f"{track}: Δ {metric}", fontsize=8)
        handles, names = [], []
        for ax in axes:
            for h, n in zip(*ax.get_legend_handles_labels(), strict=True):
                if n not in names:
                    handles.append(h)
                    names.append(n)
        fig.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, title="data set")
        fig.suptitle(f"What each protocol knob moves (to − from, per model or cell; error bars: {ci}, paired; "
                     "τ: Kendall tau between the rankings per data set)", fontsize=8)
        # each reason wrapped to the figure's width (a reason names data sets, settings and the fix)
        note = "\n".join(textwrap.fill(f"not evaluated: {r.track} {r.knob} ({r.reason})", 150,
                                       subsequent_indent="    ") for r in skipped.itertuples())
        if note:
            fig.text(0.01, 0.0, note, fontsize=5, va="bottom")
        fig.tight_layout(rect=(0, 0.018 * (note.count("\n") + 1) if note else 0, 1, 0.95))
        save_figure(fig, pdf, png)
    save_data(table, data)
