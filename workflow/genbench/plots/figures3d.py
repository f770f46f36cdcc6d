"""3D-track figures: per-data-set bars with bootstrap CIs, the legacy-vs-corrected protocol scatter, and a
qualitative grid of inputs, ground truth and reconstructions (rendered with genbench.recon3d.render, the
reconstruction placed by the corrected protocol's alignment). Each writes PDF + PNG and the rows it drew (CSV)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..tables.export import RECON3D_HEADLINE
from ..tables.keys import RECON3D_ITEM_KEYS
from .figures import MARKERS, PALETTE, STYLE, ci_text, panel_grid, plt, save_data, save_figure

BAR_METRICS = RECON3D_HEADLINE  # the summary table in the report shows the same metrics
CEILING_COLOUR = "#999999"


def _colours(models: list[str], ceilings: set[str]) -> dict[str, str]:
    out, k = {}, 0
    for m in models:
        if m in ceilings:
            out[m] = CEILING_COLOUR
        else:
            out[m] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


def recon3d_bars(table: pd.DataFrame, pdf, png, data, *, confidence: float) -> None:
    """One panel per headline metric (at most three per row): per data set, a bar per reconstructor, the mean over
    items with its bootstrap CI at ``confidence`` (recon3d.bootstrap.confidence); the GT ceiling hatched grey."""
    ci = ci_text(confidence)
    metrics = [m for m in BAR_METRICS if ((table["protocol"] == m[0]) & (table["metric"] == m[1])).any()]
    if not metrics:
        raise ValueError("figure recon3d_bars: the summary has none of the headline metrics "
                         f"{[m[1] for m in BAR_METRICS]}")
    datasets = list(dict.fromkeys(table["dataset"]))
    models = list(dict.fromkeys(table["model"]))
    ceilings = set(table.loc[table["ceiling"], "model"])
    colours = _colours(models, ceilings)
    drawn = []  # the rows drawn: per data set and metric, one per model (the CSV)
    for ds in datasets:
        for proto, metric, _ in metrics:
            sub = table[(table["dataset"] == ds) & (table["protocol"] == proto) & (table["metric"] == metric)]
            sub = sub.set_index("model").reindex([m for m in models if m in set(sub["model"])])
            if not sub.empty:
                drawn.append(sub.reset_index().assign(dataset=ds, protocol=proto, metric=metric))
    rows = pd.concat(drawn, ignore_index=True)
    width = 0.8 / len(models)
    missing = False
    with plt.rc_context(STYLE):
        panel_w = min(10.0, max(2.6, 0.16 * len(models) * len(datasets) + 0.8))
        fig, _, axes = panel_grid(len(metrics), panel_w, 2.6, extra_width=0.3,
                                  columns=max(1, min(3, int(10.0 // panel_w))))  # ~10 inches wide at most
        for ax, (proto, metric, label) in zip(axes, metrics, strict=True):
            sub = rows[(rows["protocol"] == proto) & (rows["metric"] == metric)]
            for k, m in enumerate(models):
                s = sub[sub["model"] == m].set_index("dataset").reindex(datasets)
                missing |= bool(s["value"].isna().any())
                x = np.arange(len(datasets)) + (k - (len(models) - 1) / 2) * width
                err = np.vstack([s["value"] - s["ci_low"], s["ci_high"] - s["value"]]).clip(min=0)
                ax.bar(x, s["value"], width=width * 0.95, yerr=np.nan_to_num(err), capsize=2, color=colours[m],
                       edgecolor="black", linewidth=0.4, hatch="//" if m in ceilings else None, label=m,
                       error_kw={"lw": 0.8})
                for xi, failed in zip(x, s["n_failed"], strict=True):
                    if pd.notna(failed) and int(failed):
                        ax.annotate(f"{int(failed)} failed", (xi, 0), ha="center", va="bottom", fontsize=6,
                                    color="red", rotation=90)
            ax.set_xticks(range(len(datasets)), datasets, rotation=20 if len(datasets) > 2 else 0,
                          ha="right" if len(datasets) > 2 else "center")
            ax.grid(axis="x", visible=False)
            ax.set_title(label, fontsize=8)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                   title="reconstructor")
        note = "; no bar: not computed for that data set" if missing else ""
        fig.suptitle(f"Reconstruction quality per data set (mean over items, error bars: {ci}; hatched = GT "
                     f"self-score ceiling{note})", fontsize=9)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    save_data(rows, data)


def recon3d_protocols(items: pd.DataFrame, pdf, png, data) -> None:
    """Per item: what the legacy protocol says vs what the corrected one says, for the same reconstruction model."""
    ok = items[items["status"] == "ok"]
    key = list(RECON3D_ITEM_KEYS)
    pairs = [("f1", "fscore@0.01", "F1@0.01"), ("point_bin_iou", "solid_iou", "IoU")]
    leg = ok[ok["protocol"] == "legacy"].set_index(key)
    cor = ok[ok["protocol"] == "corrected"].set_index(key)
    both = leg.join(cor, how="inner", lsuffix="_legacy", rsuffix="_corrected")
    if both.empty:
        raise ValueError("figure recon3d_protocols: no item was scored under both protocols")
    models = list(dict.fromkeys(both.index.get_level_values("model")))
    datasets = list(dict.fromkeys(both.index.get_level_values("dataset")))
    ceilings = set(items.loc[items["ceiling"], "model"]) if "ceiling" in items else set()
    colours = _colours(models, ceilings)
    drawn: dict[str, str] = {}  # column of `both` -> column of the figure data
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(pairs), figsize=(3.6 * len(pairs), 3.3), squeeze=False)
        for ax, (lcol, ccol, name) in zip(axes[0], pairs, strict=True):
            lx = lcol if lcol in both else f"{lcol}_legacy"
            cy = ccol if ccol in both else f"{ccol}_corrected"
            if lx not in both or cy not in both:
                ax.set_visible(False)
                continue
            for m in models:
                for di, ds in enumerate(datasets):
                    try:
                        sub = both.xs((ds, m), level=("dataset", "model"))
                    except KeyError:
                        continue
                    ax.scatter(sub[lx], sub[cy], s=14, color=colours[m], marker=MARKERS[di % len(MARKERS)],
                               label=f"{m} / {ds}", alpha=0.85, edgecolor="none")
            drawn.update({lx: f"legacy_{lcol}", cy: f"corrected_{ccol}"})
            ax.plot([0, 1], [0, 1], color="black", lw=0.6, ls="--")
            ax.set_xlim(0, 1.02)
            ax.set_ylim(0, 1.02)
            ax.set_xlabel(f"legacy {name} ({lcol})")
            ax.set_ylabel(f"corrected {name} ({ccol})")
            ax.set_title(f"{name}: legacy vs corrected protocol")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    # one row per item, the plotted pairs side by side
    table = both[list(drawn)].rename(columns=drawn).reset_index() if drawn else pd.DataFrame()
    save_data(table.sort_values(key, kind="stable") if drawn else table, data)


def _render_unit(mesh, size: int) -> np.ndarray:
    from ..recon3d.render import camera_set, render

    view = camera_set("single", elevation_deg=25.0, azimuth_deg=-60.0)[0]
    return render(mesh, view, size)


def recon3d_grid(items: pd.DataFrame, manifests: list[str | Path], pdf, png, data, n_items: int = 4,
                 size: int = 128) -> None:
    """Rows: items (first ``n_items`` scored items per data set); columns: input, GT, one per model. Every mesh is
    shown in the GT's normalised frame from the same camera, the reconstruction placed by the corrected
    protocol's alignment (so the picture shows what was scored)."""
    import trimesh

    from ..recon3d.meshes import unit_cube

    cor = items[(items["protocol"] == "corrected")]
    models = list(dict.fromkeys(cor["model"]))
    manifest_of = {pd.read_parquet(m)["dataset"].iloc[0]: Path(m) for m in manifests}
    recon_root = {}
    rows, drawn = [], []
    for ds, mpath in manifest_of.items():
        man = pd.read_parquet(mpath)
        man = man[man["status"] == "ok"].head(n_items)
        for item in man.to_dict("records"):
            rows.append((ds, mpath.parent, item))
    if not rows:
        raise ValueError("figure recon3d_grid: no prepared items in the manifests")
    with plt.rc_context(STYLE):
        ncol = 2 + len(models)
        fig, axes = plt.subplots(len(rows), ncol, figsize=(1.35 * ncol, 1.4 * len(rows)), squeeze=False)
        for r, (ds, root, item) in enumerate(rows):
            gt = trimesh.load(str(root / item["gt_mesh"]), force="mesh", process=False)
            norm = unit_cube(gt)
            gt_unit = gt.copy()
            gt_unit.vertices = norm.apply(np.asarray(gt.vertices))
            from PIL import Image

            with Image.open(root / item["input_path"]) as im:
                inp = np.asarray(im.convert("RGBA"))
            panels = [("input", inp), ("ground truth", _render_unit(gt_unit, size))]
            for m in models:
                hit = cor[(cor["dataset"] == ds) & (cor["model"] == m) & (cor["item_id"] == item["item_id"])]
                img, note = None, ""
                if hit.empty or hit.iloc[0]["status"] != "ok":
                    note = "not scored" if hit.empty else str(hit.iloc[0]["status"])
                elif hit.iloc[0].get("kind") != "mesh":
                    note = f"{hit.iloc[0].get('kind')} (not rendered)"
                else:
                    recon_dir = recon_root.setdefault(ds, root.parents[1] / "recon3d" / ds)
                    pred = trimesh.load(str(recon_dir / m / hit.iloc[0]["prediction"] / "pred.ply"),
                                        force="mesh", process=False)
                    pred.apply_transform(np.asarray(json.loads(hit.iloc[0]["alignment"])))
                    img = _render_unit(pred, size)
                    note = f"F={hit.iloc[0]['fscore@0.01']:.2f}" if "fscore@0.01" in hit else ""
                panels.append((m, img if img is not None else note))
                drawn.append({"dataset": ds, "item_id": item["item_id"], "model": m, "note": note})
            for c, (title, img) in enumerate(panels):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for s in ax.spines.values():
                    s.set_visible(False)
                if isinstance(img, np.ndarray):
                    rgb = img[..., :3].astype(np.float64) / 255
                    a = img[..., 3:4].astype(np.float64) / 255
                    ax.imshow(rgb * a + (1 - a))  # on white
                    if c >= 2 and panels[c][0] in models:
                        note = next(d["note"] for d in drawn[::-1] if d["model"] == title and
                                    d["item_id"] == item["item_id"] and d["dataset"] == ds)
                        ax.set_xlabel(note, fontsize=6, labelpad=1)
                else:
                    ax.text(0.5, 0.5, img, ha="center", va="center", fontsize=6, transform=ax.transAxes)
                if r == 0:
                    ax.set_title(title, fontsize=7)
                if c == 0:
                    ax.set_ylabel(f"{ds}\n{item['item_id']}", fontsize=6)
        fig.tight_layout(pad=0.3)
        save_figure(fig, pdf, png)
    save_data(pd.DataFrame(drawn), data)


def draw_figure_3d(name: str, table: pd.DataFrame, pdf, png, data, manifests: list | None = None,
                   n_items: int = 4, *, confidence: float) -> None:
    """Draw one 3D figure; ``confidence`` (recon3d.bootstrap.confidence) is stated on the one with CIs (the bars);
    the protocol scatter and the grid show per-item values, which have no interval."""
    if name == "recon3d_bars":
        recon3d_bars(table, pdf, png, data, confidence=confidence)
    elif name == "recon3d_protocols":
        recon3d_protocols(table, pdf, png, data)
    elif name == "recon3d_grid":
        recon3d_grid(table, manifests or [], pdf, png, data, n_items=n_items)
    else:
        raise ValueError(f"unknown 3D figure '{name}' (recon3d_bars, recon3d_protocols, recon3d_grid)")

