"""Per-class qualitative figures, generated images beside real ones (docs/tables.md):

- ``class_pinned``: the same classes across models and data sets. One row per (model, data set) at its best setting
  (and one row of real images per data set), one column per pinned class; each tile is the first generated image
  of that class in the cell (the first real image of the class in the data set's manifest). Row labels carry the
  cell's FID with its bootstrap CI and its MMHM.
- ``class_extremes``: per (model, data set) at its best setting, the k classes with the lowest and the k with the
  highest per-class FID (ties to the smaller label id), each with its first generated and first real images; row
  labels carry the per-class FID and its CI.

The best setting is the best table's choice (:func:`genbench.metrics.names.best_settings`: FID, mean over seeds,
ties to the smaller setting), over steps and guidance per (model, data set), or with ``by_steps`` over guidance per
(model, data set, steps), as the ``gen2d_best`` table; the first seed's images are shown. Every tile is one row of
the figure's CSV (what it shows and where it came from: position in the cell or manifest, item id); a class without
an image in a cell is drawn as a grey tile marked "none" and kept in the CSV with ``present`` false.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from ..data.manifest import ImageDecodeError, read_manifest  # noqa: E402
from ..data.stream import ManifestImages, ShardImages  # noqa: E402
from ..errors import GenbenchError  # noqa: E402
from ..layout import Cell  # noqa: E402
from ..metrics.names import best_settings  # noqa: E402
from ..tables.keys import CELL_KEYS, CELL_KEYS_BY_DATASET  # noqa: E402
from .figures import MAX_COLUMNS, PALETTE, STYLE, ci_text, save_data, save_figure  # noqa: E402

MAX_TILE = 128  # display pixels of a tile: larger images are downsampled (bicubic), smaller ones upscaled (nearest)
MIN_TILE = 64
PAD = 2  # white pixels between tiles
GAP = 12  # white pixels between the generated and the real images (class_extremes)
MISSING = 225  # grey of a tile whose class has no image


class ClassFigureError(GenbenchError, ValueError):
    """A class figure's inputs do not fit together (a chosen cell without shards, an unknown pinned class)."""


def _plain(text: Any) -> str:
    """Text for matplotlib as is: a '$' from data must not start mathtext."""
    return str(text).replace("$", r"\$")


def _num(v: float) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3g}"


def _ci(lo: float, hi: float) -> str:
    return f" [{_num(lo)}, {_num(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""


def _steps(steps: int) -> str:
    return f"{steps} step{'s' if steps != 1 else ''}"


# ---- which cells


def chosen_cells(metrics: pd.DataFrame, figure: str, *, by_steps: bool = False, models: list[str] | None = None,
                 datasets: list[str] | None = None) -> pd.DataFrame:
    """The cells a class figure shows: per (data set, model) — per (data set, model, steps) with ``by_steps`` — the
    setting with the best FID (mean over seeds; :func:`genbench.metrics.names.best_settings`, the best table's
    choice), at its first seed. Data sets and models in ``datasets`` / ``models`` order when given (else the table's),
    steps ascending. Columns: the cell keys, ``cell`` (its path), ``fid``, ``fid_ci_low``, ``fid_ci_high``, ``mmhm``
    (NaN where the table has none) and ``seeds`` (how many seeds the choice averaged)."""
    fid = metrics[metrics["metric"] == "fid"]
    if fid.empty:
        raise ClassFigureError(f"figure {figure}: the metrics table has no 'fid' rows",
                               fix="add fid to scoring.metrics")
    order = {}
    for key, want in (("dataset", datasets), ("model", models)):
        have = list(dict.fromkeys(fid[key]))
        unknown = [w for w in want or [] if w not in have]
        if unknown:
            raise ClassFigureError(f"figure {figure}: {key}(s) {unknown} have no cells in the table (it has "
                                   f"{', '.join(map(str, have))})", fix=f"fix figure_options.{figure}.{key}s")
        order[key] = list(want) if want else have
        fid = fid[fid[key].isin(order[key])]
    by = ["dataset", "model", *(["steps"] if by_steps else [])]
    over = ("cfg",) if by_steps else ("steps", "cfg")
    best = best_settings(fid, "fid", by, over)
    rows = fid.merge(best, on=[*by, *over])
    seeds = rows.groupby(by, sort=False)["seed"].nunique().rename("seeds").reset_index()
    rows = (rows.assign(_d=rows["dataset"].map(order["dataset"].index), _m=rows["model"].map(order["model"].index))
            .sort_values(["_d", "_m", "steps", "seed"], kind="stable").drop_duplicates(by)
            .drop(columns=["_d", "_m"]).merge(seeds, on=by))
    keys = list(CELL_KEYS)
    mmhm = metrics[metrics["metric"] == "mmhm"].set_index(keys)["value"]
    out = rows[list(CELL_KEYS_BY_DATASET)].copy()
    out["cell"] = [Cell.from_mapping(r).path for r in rows[keys].to_dict("records")]
    out["fid"] = rows["value"].to_numpy(float)
    out["fid_ci_low"] = rows["ci_low"].to_numpy(float)
    out["fid_ci_high"] = rows["ci_high"].to_numpy(float)
    out["mmhm"] = mmhm.reindex(pd.MultiIndex.from_frame(rows[keys])).to_numpy(float) if len(mmhm) else np.nan
    out["seeds"] = rows["seeds"].to_numpy()
    return out.reset_index(drop=True)


def rank_classes(per_class: pd.DataFrame, k: int) -> pd.DataFrame:
    """One cell's classes with a per-class FID: the ``k`` lowest (``group`` best, rank 1 = lowest) and the ``k``
    highest (worst, rank 1 = highest), ties to the smaller label id in both; at most half the ranked classes each,
    so no class is both (a single ranked class is best only). ``n_ranked``: the classes with a value."""
    sub = per_class[per_class["value"].notna()]
    n = len(sub)
    kk = min(k, n // 2) if n > 1 else n
    best = sub.sort_values(["value", "label_id"], kind="stable").head(kk)
    worst = sub.sort_values(["value", "label_id"], ascending=[False, True], kind="stable")
    worst = worst[~worst["label_id"].isin(best["label_id"])].head(kk if n > 1 else 0)
    out = pd.concat([best.assign(group="best", rank=range(1, len(best) + 1)),
                     worst.assign(group="worst", rank=range(1, len(worst) + 1))], ignore_index=True)
    return out.assign(n_ranked=n)


def pinned_classes(classes: list[int | str] | None, k: int, labels: dict[str, pd.DataFrame],
                   figure: str = "class_pinned") -> tuple[list[int], str]:
    """The pinned label ids and how they were chosen. ``labels``: per shown data set, its manifest's
    (label_id, label_name). Given ``classes`` (label ids or names) are kept in their order; a name or id no shown
    data set has is an error. Default: ``k`` ids evenly spaced over the sorted ids every shown data set has,
    ``ids[floor(i * n / k)]`` for i < k (all of them when n <= k)."""
    union = pd.concat(labels.values()).drop_duplicates("label_id")
    if classes:
        by_name = {str(n): int(i) for i, n in zip(union["label_id"], union["label_name"], strict=True)}
        ids, bad = [], []
        for c in classes:
            if isinstance(c, str) and c in by_name:
                ids.append(by_name[c])
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and int(c) in set(union["label_id"]):
                ids.append(int(c))
            else:
                bad.append(c)
        if bad:
            known = ", ".join(f"{i}={n}" for i, n in list(zip(union["label_id"], union["label_name"], strict=True))[:8])
            raise ClassFigureError(f"figure {figure}: pinned class(es) {bad} are in no shown data set (e.g. {known})",
                                   fix=f"fix figure_options.{figure}.classes (label ids or class names)")
        return list(dict.fromkeys(ids)), "figure_options.classes"
    common = sorted(set.intersection(*(set(map(int, d["label_id"])) for d in labels.values())))
    if not common:
        raise ClassFigureError(f"figure {figure}: the shown data sets {sorted(labels)} share no class",
                               fix=f"pin classes with figure_options.{figure}.classes")
    n, kk = len(common), min(k, len(common))
    return [common[i * n // kk] for i in range(kk)], f"default: {kk} of {n} shared classes, evenly spaced"


# ---- which images


class _Images:
    """The images the figures read, each set opened once: a cell's shards, a data set's manifest."""

    def __init__(self, figure: str, shards: dict[str, list[str | Path]], manifests: dict[str, str | Path]):
        self.figure, self.shards, self.manifests = figure, shards, manifests
        self._cells: dict[str, ShardImages] = {}
        self._real: dict[str, tuple[pd.DataFrame, ManifestImages]] = {}

    def cell(self, cell: str) -> ShardImages:
        if cell not in self._cells:
            if not self.shards.get(cell):
                raise ClassFigureError(f"figure {self.figure}: no generated shards given for cell {cell}",
                                       fix="the rule's input 'shards' lists every cell's shards; rerun snakemake")
            self._cells[cell] = ShardImages(self.shards[cell], cell)
        return self._cells[cell]

    def manifest(self, dataset: str) -> tuple[pd.DataFrame, ManifestImages]:
        if dataset not in self._real:
            if dataset not in self.manifests:
                raise ClassFigureError(f"figure {self.figure}: no manifest given for data set {dataset}",
                                       fix="the rule's input 'manifests' lists every scored data set; rerun snakemake")
            path = self.manifests[dataset]
            df = read_manifest(path, dataset)
            self._real[dataset] = (df, ManifestImages(df, Path(path).parent, dataset))
        return self._real[dataset]

    def labels(self, dataset: str) -> pd.DataFrame:
        return self.manifest(dataset)[0][["label_id", "label_name"]].drop_duplicates("label_id")

    def generated(self, cell: str, label_id: int, n: int) -> list[dict[str, Any]]:
        """The first ``n`` generated images of the class in the cell (shard order): image, index, item_id."""
        imgs = self.cell(cell)
        pos = np.flatnonzero(np.asarray(imgs.label_id) == label_id)[:n]
        return [{"image": imgs.load(int(i)), "index": int(i), "item_id": str(imgs.item_id[i]), "path": ""}
                for i in pos]

    def real(self, dataset: str, label_id: int, n: int) -> tuple[list[dict[str, Any]], int]:
        """The first ``n`` real images of the class that decode (manifest order), and how many were skipped."""
        df, imgs = self.manifest(dataset)
        out, skipped = [], 0
        for i in np.flatnonzero(df["label_id"].to_numpy() == label_id):
            if len(out) == n:
                break
            try:
                out.append({"image": imgs.load(int(i)), "index": int(i), "item_id": str(df["item_id"].iloc[i]),
                            "path": str(df["path"].iloc[i])})
            except ImageDecodeError:
                skipped += 1
        return out, skipped


def tile_size(images: list[np.ndarray]) -> int:
    """Display pixels of a tile: the largest image side, upscaled by an integer factor to at least MIN_TILE, at most
    MAX_TILE."""
    side = max((max(im.shape[:2]) for im in images), default=MIN_TILE)
    return int(min(MAX_TILE, side * max(1, MIN_TILE // side)))


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    """The image centre-cropped to a square and resized to ``size`` (nearest when enlarging, bicubic when
    shrinking)."""
    h, w = img.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    im = Image.fromarray(np.ascontiguousarray(img[y:y + s, x:x + s]))
    if s != size:
        im = im.resize((size, size), Image.Resampling.NEAREST if s < size else Image.Resampling.BICUBIC)
    return np.asarray(im.convert("RGB"))


def mosaic(tiles: list[list[np.ndarray | None]], size: int, gap_after: int | None = None) -> tuple[np.ndarray, list,
                                                                                                    list]:
    """The tiles (rows of images, None for a missing one) on a white canvas: returns the canvas and the pixel centres
    of the columns and rows. A missing tile is grey; ``gap_after``: a wider gap after that column."""
    nrow, ncol = len(tiles), max(len(r) for r in tiles)
    xs = [PAD + c * (size + PAD) + (GAP if gap_after is not None and c > gap_after else 0) for c in range(ncol)]
    width = xs[-1] + size + PAD
    canvas = np.full((PAD + nrow * (size + PAD), width, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        y = PAD + r * (size + PAD)
        for c, img in enumerate(row):
            canvas[y:y + size, xs[c]:xs[c] + size] = MISSING if img is None else _tile(img, size)
    return canvas, [x + size / 2 for x in xs], [PAD + r * (size + PAD) + size / 2 for r in range(nrow)]


def _mark_missing(ax, tiles: list[list[Any]], cx: list[float], cy: list[float]) -> bool:
    any_missing = False
    for r, row in enumerate(tiles):
        for c, img in enumerate(row):
            if img is None:
                ax.text(cx[c], cy[r], "none", ha="center", va="center", fontsize=6, color="#555555")
                any_missing = True
    return any_missing


def _frame(ax) -> None:
    ax.grid(False)
    for s in ax.spines.values():
        s.set_visible(False)
    ax.tick_params(length=0)


def _cell_label(r: Any) -> str:
    return f"{r.model} on {r.dataset}\n{_steps(int(r.steps))}, CFG {r.cfg:g}"


# ---- the figures


def class_pinned(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path, metric: str = "fid", *,
                 confidence: float, shards: dict[str, list[str | Path]], manifests: dict[str, str | Path],
                 classes: list[int | str] | None = None, k: int = 6, real: bool = True, by_steps: bool = False,
                 models: list[str] | None = None, datasets: list[str] | None = None) -> pd.DataFrame:
    """The same classes across models and data sets: rows are the chosen cells (:func:`chosen_cells`), with a row of
    real images before each data set's cells when ``real``; columns the pinned classes (:func:`pinned_classes`);
    each tile the first generated image of the class in the cell, or the first real one that decodes. Row labels:
    the cell, its FID with the bootstrap CI, its MMHM."""
    cells = chosen_cells(table, "class_pinned", by_steps=by_steps, models=models, datasets=datasets)
    images = _Images("class_pinned", shards, manifests)
    shown = list(dict.fromkeys(cells["dataset"]))
    labels = {d: images.labels(d) for d in shown}
    ids, pinned_by = pinned_classes(classes, k, labels)
    names = pd.concat(labels.values()).drop_duplicates("label_id").set_index("label_id")["label_name"]
    tiles, ylabels, records = [], [], []
    for ds in shown:
        rows = []
        if real:
            rows.append(("real", None))
        rows += [("generated", r) for r in cells[cells["dataset"] == ds].itertuples(index=False)]
        for kind, r in rows:
            row_tiles = []
            for col, lid in enumerate(ids):
                if kind == "real":
                    got, skipped = images.real(ds, lid, 1)
                else:
                    got, skipped = images.generated(r.cell, lid, 1), 0
                row_tiles.append(got[0]["image"] if got else None)
                rec = {"row": len(tiles), "column": col, "kind": kind, "dataset": ds,
                       "model": r.model if r else "", "steps": r.steps if r else pd.NA,
                       "cfg": r.cfg if r else np.nan, "seed": r.seed if r else pd.NA,
                       "label_id": lid, "class_name": names.get(lid, str(lid)), "present": bool(got),
                       "index": got[0]["index"] if got else pd.NA, "item_id": got[0]["item_id"] if got else "",
                       "path": got[0]["path"] if got else "", "skipped_undecodable": skipped,
                       "fid": r.fid if r else np.nan, "fid_ci_low": r.fid_ci_low if r else np.nan,
                       "fid_ci_high": r.fid_ci_high if r else np.nan, "mmhm": r.mmhm if r else np.nan,
                       "seeds": r.seeds if r else pd.NA, "confidence": confidence, "pinned_by": pinned_by}
                records.append(rec)
            tiles.append(row_tiles)
            if kind == "real":
                ylabels.append(f"real images\n{ds}")
            else:
                ylabels.append(f"{_cell_label(r)}\nFID {_num(r.fid)}{_ci(r.fid_ci_low, r.fid_ci_high)}, "
                               f"MMHM {_num(r.mmhm)}")
    size = tile_size([t for row in tiles for t in row if t is not None])
    canvas, cx, cy = mosaic(tiles, size)
    nrow, ncol = len(tiles), len(ids)
    t = max(0.35, min(0.8, 6.0 / ncol, 9.0 / nrow))  # inches per tile: ~8.5 in wide with the labels
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(2.4 + t * ncol, 1.0 + t * nrow))
        ax.imshow(canvas, interpolation="nearest")
        _frame(ax)
        ax.set_xticks(cx, [_plain(textwrap.fill(f"{names.get(i, i)} ({i})", 14)) for i in ids], fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks(cy, [_plain(y) for y in ylabels], fontsize=6.5)
        for lab, rec in zip(ax.get_yticklabels(), records[::ncol], strict=True):  # ncol records per row
            if rec["kind"] == "real":
                lab.set_fontweight("bold")
        missing = _mark_missing(ax, tiles, cx, cy)
        brackets = (f"brackets: {ci_text(confidence)} of FID" if np.isfinite(cells["fid_ci_low"]).any()
                    else "no CI: the bootstrap is off")
        note = (f"each tile: the class's first generated image in the cell (first seed), real rows: its first real "
                f"image;\ncells: each model's best setting by FID; {brackets}; MMHM: min-max over the sweep, no CI")
        if missing:
            note += ";\ngrey 'none': no image of that class in the cell or data set"
        fig.suptitle(f"Pinned classes across models and data sets\n({note})", y=1.0, fontsize=8.5)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    out = pd.DataFrame.from_records(records)
    for c in ("steps", "seed", "index", "seeds"):
        out[c] = out[c].astype("Int64")
    save_data(out, data)
    return out


def class_extremes(table: pd.DataFrame, pdf: str | Path, png: str | Path, data: str | Path, metric: str = "fid", *,
                   confidence: float, tables: dict[str, pd.DataFrame], shards: dict[str, list[str | Path]],
                   manifests: dict[str, str | Path], k: int = 3, images: int = 2, by_steps: bool = False,
                   models: list[str] | None = None, datasets: list[str] | None = None) -> pd.DataFrame:
    """Per chosen cell (:func:`chosen_cells`, from ``tables['gen2d_metrics']``) one panel: its best and worst
    classes by per-class FID (``table``, the per-class table; :func:`rank_classes`), one row each, with the first
    ``images`` generated images of the class beside its first ``images`` real ones. Row labels: the class and its
    per-class FID with the bootstrap CI; panel titles: the cell and its FID."""
    cells = chosen_cells(tables["gen2d_metrics"], "class_extremes", by_steps=by_steps, models=models,
                         datasets=datasets)
    per_class = table[table["metric"] == metric]
    imgs = _Images("class_extremes", shards, manifests)
    keys = list(CELL_KEYS)
    panels, records = [], []
    for b, cell in enumerate(cells.itertuples(index=False)):
        sub = per_class[(per_class[keys] == pd.Series({k_: getattr(cell, k_) for k_ in keys})).all(axis=1)]
        ranked = rank_classes(sub, k)
        if ranked.empty:
            raise ClassFigureError(f"figure class_extremes: the per-class table has no {metric} value for cell "
                                   f"{cell.cell}", fix="rerun aggregate_gen2d_per_class (snakemake --forcerun "
                                   "aggregate_gen2d_per_class)")
        tiles = []
        for row, cls in enumerate(ranked.itertuples(index=False)):
            gen = imgs.generated(cell.cell, int(cls.label_id), images)
            rl, skipped = imgs.real(cell.dataset, int(cls.label_id), images)
            shown = [("generated", j, gen[j] if j < len(gen) else None) for j in range(images)]
            shown += [("real", j, rl[j] if j < len(rl) else None) for j in range(images)]
            tiles.append([s[2]["image"] if s[2] else None for s in shown])
            for col, (kind, j, got) in enumerate(shown):
                records.append({
                    "panel": b, "row": row, "column": col, "kind": kind, "image": j,
                    "dataset": cell.dataset, "model": cell.model, "steps": cell.steps, "cfg": cell.cfg,
                    "seed": cell.seed, "group": cls.group, "rank": cls.rank, "label_id": int(cls.label_id),
                    "class_name": cls.class_name, "metric": metric, "value": cls.value, "ci_low": cls.ci_low,
                    "ci_high": cls.ci_high, "n": cls.n, "n_real": cls.n_real, "n_ranked": cls.n_ranked,
                    "present": got is not None, "index": got["index"] if got else pd.NA,
                    "item_id": got["item_id"] if got else "", "path": got["path"] if got else "",
                    "skipped_undecodable": skipped if kind == "real" else 0, "cell_fid": cell.fid,
                    "cell_fid_ci_low": cell.fid_ci_low, "cell_fid_ci_high": cell.fid_ci_high,
                    "confidence": confidence})
        panels.append((cell, ranked, tiles))
    size = tile_size([t for _, _, tiles in panels for row in tiles for t in row if t is not None])
    ncol = max(1, min(len(panels), MAX_COLUMNS))
    nrow = -(-len(panels) // ncol)
    rows_max = max(len(r) for _, r, _ in panels)
    t = 0.42  # inches per tile
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(nrow, ncol, squeeze=False,
                                 figsize=(ncol * (2 * images * t + 1.9), nrow * (rows_max * t + 0.9) + 0.7))
        for ax in axes.flat[len(panels):]:
            ax.set_visible(False)
        missing = False
        for ax, (cell, ranked, tiles) in zip(axes.flat, panels, strict=False):
            canvas, cx, cy = mosaic(tiles, size, gap_after=images - 1)
            ax.imshow(canvas, interpolation="nearest")
            ax.set_ylim(PAD + rows_max * (size + PAD) - 0.5, -0.5)  # one tile scale in every panel, top-aligned
            _frame(ax)
            ax.set_xticks([float(np.mean(cx[:images])), float(np.mean(cx[images:]))], ["generated", "real"],
                          fontsize=7)
            ax.xaxis.tick_top()
            ax.set_yticks(cy, [_plain(f"{g} {r}: {textwrap.shorten(str(c), 22)}\nFID {_num(v)}{_ci(lo, hi)}")
                               for g, r, c, v, lo, hi in zip(ranked["group"], ranked["rank"], ranked["class_name"],
                                                             ranked["value"], ranked["ci_low"], ranked["ci_high"],
                                                             strict=True)], fontsize=6)
            for lab, g in zip(ax.get_yticklabels(), ranked["group"], strict=True):
                lab.set_color(PALETTE[2] if g == "best" else PALETTE[3])
            ax.set_title(_plain(f"{_cell_label(cell)}\ncell FID {_num(cell.fid)}"
                                f"{_ci(cell.fid_ci_low, cell.fid_ci_high)}"), fontsize=7, pad=14)
            missing |= _mark_missing(ax, tiles, cx, cy)
        out = pd.DataFrame.from_records(records)
        brackets = (f"brackets: {ci_text(confidence)}" if out["ci_low"].notna().any()
                    else "no CI: the per-class bootstrap is off (scoring.per_class.bootstrap: 0)")
        note = (f"green: lowest per-class FID, red: highest (ties to the smaller label id); first {images} generated "
                f"(first seed) and real images of each class;\ncells: each model's best setting by FID; {brackets}")
        if missing:
            note += ";\ngrey 'none': fewer images of that class in the cell or data set"
        fig.suptitle(f"Best and worst classes by per-class FID, generated beside real images\n({note})", y=1.0,
                     fontsize=8.5)
        fig.tight_layout()
        save_figure(fig, pdf, png)
    for c in ("steps", "seed", "index"):
        out[c] = out[c].astype("Int64")
    save_data(out, data)
    return out
