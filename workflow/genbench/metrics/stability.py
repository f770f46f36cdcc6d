"""Selection stability: how often each (steps, guidance) setting of a model is selected when the items are
resampled (``results/tables/gen2d_selection_stability.parquet``).

The seed paper claims that MMHM "stabilises hyperparameter selection". Testable form: per data set and seed, draw
B bootstrap resamples of the data set's items (the same resample for the real set and for every cell, since every
cell was generated for those items); in each, recompute per cell FID (real and generated features of the
resampled items), IS (logits), CLIP Score and PickScore (means of the per-item scores), then MMHM over all cells
of the data set (min-max bounds of that resample, as on the full set), and per model select

    argmin FID, argmax IS, argmax CLIP Score, argmax PickScore, argmax MMHM

over its settings. ``frequency`` = (resamples selecting the setting) / B; ``selected_full`` marks the setting the
full set selects. A criterion whose selection stays on one setting has frequency 1 there. Features are loaded once
per cell; nothing is re-extracted per resample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..layout import Cell
from ..seeding import derive_seed
from .composite import MMHM_METRICS, mmhm
from .fid import MetricInputError, frechet_distance
from .inception_score import inception_score
from .registry import lower_is_better

CRITERIA = ("fid", "is", "clip_score", "pick_score", "mmhm")


def _rows_for(items: np.ndarray, cell_items: np.ndarray, name: str) -> np.ndarray:
    """Row index into the cell of each of ``items`` (the cell must hold exactly one image per item)."""
    ids = np.asarray(cell_items).astype(str)
    if len(set(ids)) != len(ids) or set(ids) != set(items):
        raise MetricInputError(f"selection stability: {name} does not hold exactly one image for each item of its "
                               f"data set ({len(ids)} images, {len(set(ids))} distinct items, {len(items)} in the "
                               f"data set); regenerate the cell")
    row_of = {i: k for k, i in enumerate(ids.tolist())}
    return np.array([row_of[i] for i in items.tolist()])


def cell_scores(real: dict[str, np.ndarray], cells: dict[str, dict[str, Any]], idx: np.ndarray,
                is_splits: int) -> pd.DataFrame:
    """One row per cell: the criteria's metrics on the items ``idx`` (indices into the real set's item order).
    ``cells[name]`` holds 'rows' (the cell's row of each real item), 'features', 'logits' and optionally
    'clip' / 'pick' (per-item scores in the real set's item order)."""
    fr = real["features"][idx]
    mu_r, s_r = fr.mean(0), np.cov(fr, rowvar=False)
    out = []
    for name, c in cells.items():
        rows = c["rows"][idx]
        fg = c["features"][rows]
        rec = {"cell": name, "fid": frechet_distance(mu_r, s_r, fg.mean(0), np.cov(fg, rowvar=False)),
               "is": inception_score(c["logits"][rows], splits=is_splits, set_name=name)[0]}
        for role, metric in (("clip", "clip_score"), ("pick", "pick_score")):
            if role in c:
                rec[metric] = float(c[role][idx].mean())
        out.append(rec)
    df = pd.DataFrame(out)
    if set(MMHM_METRICS) <= set(df.columns):
        df["mmhm"] = mmhm({m: df[m].to_numpy() for m in MMHM_METRICS})[0]
    return df


def _select(scores: pd.DataFrame, meta: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(model, criterion) -> the selected cell (ties: the first in the meta order, i.e. fewer steps, lower cfg)."""
    df = meta.merge(scores, on="cell")
    out = {}
    for model, grp in df.groupby("model", sort=False):
        for crit in [c for c in CRITERIA if c in grp.columns]:
            vals = grp[crit].to_numpy()
            k = int(np.argmin(vals) if lower_is_better(crit) else np.argmax(vals))
            out[(model, crit)] = grp["cell"].iloc[k]
    return out


def selection_stability(real: dict[str, np.ndarray], cells: list[dict[str, Any]],
                        text_image: dict[str, dict[str, Any]] | None = None, *, n_boot: int, seed: int,
                        is_splits: int) -> pd.DataFrame:
    """Rows (dataset, seed, model, criterion, steps, cfg, frequency, selected_full, n_boot) for one data set and
    seed. ``cells``: dicts with model, dataset, steps, cfg, seed and the cell's features (features, logits,
    item_id); ``text_image``: per cell name (``str(Cell)``), per role ('clip'/'pick'), the per-item scores in the
    cell's row order."""
    if not cells:
        return pd.DataFrame()
    items = np.asarray(real["item_id"]).astype(str)
    dataset, cell_seed = cells[0]["dataset"], int(cells[0]["seed"])
    prepared, meta = {}, []
    for c in sorted(cells, key=lambda c: (c["model"], int(c["steps"]), float(c["cfg"]))):
        name = str(Cell.from_mapping(c))
        rows = _rows_for(items, c["item_id"], name)
        p = {"rows": rows, "features": c["features"], "logits": c["logits"]}
        for role, per_row in (text_image or {}).get(name, {}).items():
            p[role] = np.asarray(per_row, dtype=np.float64)[rows]  # into the real set's item order
        prepared[name] = p
        meta.append({"cell": name, "model": c["model"], "steps": int(c["steps"]), "cfg": float(c["cfg"])})
    meta_df = pd.DataFrame(meta)
    full = _select(cell_scores(real, prepared, np.arange(len(items)), is_splits), meta_df)
    rng = np.random.default_rng(derive_seed("selection_stability", seed, dataset, cell_seed))
    counts: dict[tuple[str, str, str], int] = {}
    for _ in range(n_boot):
        idx = rng.integers(0, len(items), len(items))
        for (model, crit), cell in _select(cell_scores(real, prepared, idx, is_splits), meta_df).items():
            counts[(model, crit, cell)] = counts.get((model, crit, cell), 0) + 1
    rows = []
    for (model, crit) in full:
        for m in meta_df[meta_df["model"] == model].itertuples():
            rows.append({"dataset": dataset, "seed": cell_seed, "model": model, "criterion": crit,
                         "steps": m.steps, "cfg": m.cfg,
                         "frequency": counts.get((model, crit, m.cell), 0) / n_boot if n_boot > 0 else np.nan,
                         "selected_full": full[(model, crit)] == m.cell, "n_boot": n_boot,
                         "n_settings": int((meta_df["model"] == model).sum()),
                         "method": f"bootstrap of the {len(items)} items, {n_boot} resamples; MMHM with each "
                                   "resample's own min-max bounds over all cells of the data set"})
    return pd.DataFrame(rows)
