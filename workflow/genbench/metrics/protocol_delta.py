"""The protocol-delta table: the same cells scored under two settings of one protocol knob at a time, how much
each knob moves every metric (paired bootstrap CIs), and whether the model rankings flip (Kendall tau).

Two kinds of rows share one long table (``results/tables/protocol_delta.parquet``):

- ``kind = delta``: one per (track, knob, dataset, entry, metric): the metric under the knob's ``from`` setting and
  its ``to`` setting, ``delta = to - from`` and a percentile interval of the paired bootstrap of that difference
  (2D: the real and generated sets resampled together, the same resample scored under both settings, the interval
  shifted by the bootstrap bias as genbench's FD intervals are; 3D: the items' paired differences resampled).
- ``kind = ranking``: one per (track, knob, dataset, metric): the entries ranked under each setting, Kendall's tau-b
  between the two rankings (scipy.stats.kendalltau) and the number of entry pairs whose order flips.

A knob that cannot be evaluated on this configuration (e.g. resize mode on the mini-world's 16 px stand-in
extractor, which resizes nothing) is one row with ``status = not_applicable`` and the reason; nothing is dropped
silently. docs/protocol.md lists the knobs and their two settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from ..tables.keys import RECON3D_ITEM_KEYS
from .bootstrap import debiased_percentile_interval, interval_note, method_label, percentile_interval
from .fid import check_features, frechet_distance
from .registry import higher_is_better

COLUMNS = ["kind", "track", "knob", "from_setting", "to_setting", "dataset", "entry", "metric", "value_from",
           "value_to", "delta", "ci_low", "ci_high", "ci_method", "n", "kendall_tau", "discordant_pairs",
           "n_ranked", "ranking_from", "ranking_to", "higher_is_better", "status", "reason", "note"]
KEY_COLUMNS = ["kind", "track", "knob", "dataset", "entry", "metric"]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two score vectors over the same entries (NaN below two entries or when either
    vector is constant)."""
    from scipy.stats import kendalltau

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"kendall_tau: {a.shape} vs {b.shape} scores; rank the same entries under both settings")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def discordant_pairs(a: Sequence[float], b: Sequence[float]) -> int:
    """How many entry pairs are ordered one way by ``a`` and the other way by ``b`` (ties flip nothing)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return int(sum(1 for i, j in combinations(range(len(a)), 2) if (a[i] - a[j]) * (b[i] - b[j]) < 0))


def ranking(entries: Sequence[str], scores: Sequence[float], higher_is_better: bool) -> str:
    """Entries best first, as 'a > b > c'."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64) if higher_is_better else np.asarray(scores), kind="stable")
    return " > ".join(str(entries[i]) for i in order)


def ranking_rows(deltas: pd.DataFrame) -> pd.DataFrame:
    """One ``ranking`` row per (track, knob, dataset, metric) of the ``delta`` rows with a value under both
    settings (at least two entries)."""
    rows = []
    ok = deltas[(deltas["status"] == "ok") & np.isfinite(deltas["value_from"]) & np.isfinite(deltas["value_to"])]
    for (track, knob, dataset, metric), grp in ok.groupby(["track", "knob", "dataset", "metric"], sort=False):
        if len(grp) < 2:
            continue
        a, b = grp["value_from"].to_numpy(), grp["value_to"].to_numpy()
        hib = bool(grp["higher_is_better"].iloc[0])
        entries = grp["entry"].tolist()
        first = grp.iloc[0]
        rows.append({"kind": "ranking", "track": track, "knob": knob, "from_setting": first["from_setting"],
                     "to_setting": first["to_setting"], "dataset": dataset, "entry": "*", "metric": metric,
                     "kendall_tau": kendall_tau(a, b), "discordant_pairs": discordant_pairs(a, b),
                     "n_ranked": len(grp), "ranking_from": ranking(entries, a, hib),
                     "ranking_to": ranking(entries, b, hib), "higher_is_better": hib, "status": "ok",
                     "reason": None})
    return pd.DataFrame(rows)


def assemble(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The ``delta`` rows of every part plus their ``ranking`` rows, in the table's column order."""
    deltas = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) \
        else pd.DataFrame(columns=COLUMNS)
    for col in COLUMNS:
        if col not in deltas:
            deltas[col] = None
    deltas["kind"] = "delta"
    for col in ("value_from", "value_to", "delta", "ci_low", "ci_high"):
        deltas[col] = pd.to_numeric(deltas[col], errors="coerce").astype(np.float64)
    out = pd.concat([deltas, ranking_rows(deltas)], ignore_index=True)
    for col in COLUMNS:
        if col not in out:
            out[col] = None
    for col in ("kendall_tau", "value_from", "value_to", "delta", "ci_low", "ci_high"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(np.float64)
    for col in ("n", "discordant_pairs", "n_ranked"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("Int64")
    return out[COLUMNS]


def not_applicable(track: str, knob: str, from_setting: str, to_setting: str, reason: str) -> dict[str, Any]:
    return {"track": track, "knob": knob, "from_setting": from_setting, "to_setting": to_setting, "dataset": "*",
            "entry": "*", "metric": "*", "status": "not_applicable", "reason": reason}


# ---- 2D: float32 vs float64 statistics ------------------------------------------------------------------------

def frechet_distance_float32(real: np.ndarray, gen: np.ndarray) -> float:
    """FID with every statistic in float32: features, means, covariances and tr sqrt(sigma1 sigma2) by the
    eigenvalues of the product (torch-fidelity's / torchmetrics' route) all in single precision, as a float32
    pipeline computes it."""
    r, g = np.asarray(real, dtype=np.float32), np.asarray(gen, dtype=np.float32)
    mu1, mu2 = r.mean(0, dtype=np.float32), g.mean(0, dtype=np.float32)
    s1 = np.cov(r, rowvar=False, dtype=np.float32)
    s2 = np.cov(g, rowvar=False, dtype=np.float32)
    ev = np.linalg.eigvals((s1 @ s2).astype(np.float32))
    tr_sqrt = np.sqrt(ev.astype(np.complex64)).real.sum(dtype=np.float32)
    diff = mu1 - mu2
    return float(np.float32(diff @ diff) + np.trace(s1) + np.trace(s2) - np.float32(2.0) * tr_sqrt)


def frechet_distance_float64(real: np.ndarray, gen: np.ndarray) -> float:
    """genbench's FID: float64 statistics, tr sqrt by the symmetric eigh route."""
    r, g = np.asarray(real, dtype=np.float64), np.asarray(gen, dtype=np.float64)
    return frechet_distance(r.mean(0), np.cov(r, rowvar=False), g.mean(0), np.cov(g, rowvar=False))


def paired_knob_delta(statistic_from: Callable[[np.ndarray, np.ndarray], float],
                      statistic_to: Callable[[np.ndarray, np.ndarray], float], real: np.ndarray, gen: np.ndarray,
                      n_boot: int, confidence: float, rng: np.random.Generator) -> dict[str, Any]:
    """The two settings' values on (real, gen), their difference, and the percentile interval of the difference
    over ``n_boot`` paired resamples (each resample of both sets scored under both settings)."""
    return paired_index_delta(lambda ir, ig: statistic_from(real[ir], gen[ig]),
                              lambda ir, ig: statistic_to(real[ir], gen[ig]), len(real), len(gen), n_boot,
                              confidence, rng)


def paired_index_delta(statistic_from: Callable[[Any, Any], float], statistic_to: Callable[[Any, Any], float],
                       n_real: int, n_gen: int, n_boot: int, confidence: float, rng: np.random.Generator,
                       detail: str = "paired: real and generated resampled") -> dict[str, Any]:
    """As :func:`paired_knob_delta`, for statistics of (real item indices, generated item indices): each setting
    reads its own features of the same items, so one resample of the items is scored under both settings (the
    knobs whose two settings have different features: resize mode, real preparation). ``slice(None)`` = all."""
    full = slice(None)
    a, b = statistic_from(full, full), statistic_to(full, full)
    reps = []
    for _ in range(max(n_boot, 0)):
        ir, ig = rng.integers(0, n_real, n_real), rng.integers(0, n_gen, n_gen)
        reps.append(statistic_to(ir, ig) - statistic_from(ir, ig))
    lo, hi, bias = debiased_percentile_interval(np.asarray(reps), b - a, confidence)
    return {"value_from": a, "value_to": b, "delta": b - a, "ci_low": lo, "ci_high": hi,
            "ci_method": method_label("debiased-percentile", n_boot, confidence, detail),
            "note": interval_note(b - a, lo, hi, bias) or None}


def align_items(ids_a: np.ndarray, ids_b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into two feature sets of the same items (item ids), in ``ids_a``'s order: an item missing
    from either side (e.g. undecodable and skipped) is left out of both; none in common is an error."""
    ids_a, ids_b = np.asarray(ids_a).astype(str), np.asarray(ids_b).astype(str)
    pos_b = {i: k for k, i in enumerate(ids_b.tolist())}
    rows_a = [k for k, i in enumerate(ids_a.tolist()) if i in pos_b]
    if not rows_a:
        raise ValueError(f"{what}: the two settings' features share no item id; extract both from the same set")
    return np.asarray(rows_a), np.asarray([pos_b[ids_a[k]] for k in rows_a])


FeatureSet = tuple[np.ndarray, np.ndarray]  # (item ids, features)


def feature_deltas_2d(knob: str, from_setting: str, to_by_dataset: dict[str, str],
                      real_from: dict[str, FeatureSet], real_to: dict[str, FeatureSet],
                      gen_from: dict[str, dict[str, FeatureSet]], gen_to: dict[str, dict[str, FeatureSet]],
                      n_boot: int, confidence: float,
                      rng_for: Callable[[str, str], np.random.Generator]) -> pd.DataFrame:
    """A knob whose two settings give different features (``resize_mode``: real and generated; ``real_preparation``:
    real only, the generated features are the same under both): FID (float64) under each for every cell of the
    data sets in ``real_from``, the paired difference and its interval. The two sides are matched by item id."""
    rows = []
    for dataset, (ids_rf, rf) in real_from.items():
        ids_rt, rt = real_to[dataset]
        ia, ib = align_items(ids_rf, ids_rt, f"{knob}: real {dataset}")
        rf_, rt_ = check_features(rf[ia], f"real {dataset} ({from_setting})"), check_features(rt[ib], f"real {dataset}")
        for entry, (ids_gt, gt) in gen_to[dataset].items():
            ids_gf, gf = gen_from[dataset][entry]
            ga, gb = align_items(ids_gf, ids_gt, f"{knob}: {entry}")
            gf_ = check_features(gf[ga], f"generated {entry} ({from_setting})")
            gt_ = check_features(gt[gb], f"generated {entry}")
            d = paired_index_delta(lambda ir, ig, r=rf_, g=gf_: frechet_distance_float64(r[ir], g[ig]),
                                   lambda ir, ig, r=rt_, g=gt_: frechet_distance_float64(r[ir], g[ig]),
                                   len(rf_), len(gf_), n_boot, confidence, rng_for(dataset, entry),
                                   "paired: the same real and generated items resampled under both settings")
            rows.append({"track": "2d", "knob": knob, "from_setting": from_setting,
                         "to_setting": to_by_dataset.get(dataset, ""), "dataset": dataset, "entry": entry,
                         "metric": "fid", "n": len(gf_), "higher_is_better": higher_is_better("fid"),
                         "status": "ok", "reason": None, **d})
    return pd.DataFrame(rows)


def with_anchor_prompts(real: dict[str, np.ndarray], anchor: dict[str, np.ndarray], what: str) -> dict[str, np.ndarray]:
    """A real set's embeddings with each item's text embedding replaced by its prompt's under the anchor's table
    (``anchor``: item_id, text_emb for every item of the manifest): what the scores read under that table."""
    pos = {i: k for k, i in enumerate(np.asarray(anchor["item_id"]).astype(str).tolist())}
    out = dict(real)
    for ids_key, text_key in (("item_id", "text_emb"), ("skipped_item_id", "skipped_text_emb")):
        if text_key not in real:
            continue
        ids = np.asarray(real[ids_key]).astype(str).tolist()
        missing = [i for i in ids if i not in pos]
        if missing:
            raise ValueError(f"{what}: item {missing[0]} has no prompt under the anchor's table; re-embed the "
                             "prompts of the same manifest (rule protocol_embed_prompts)")
        out[text_key] = np.asarray(anchor["text_emb"])[[pos[i] for i in ids]]
    return out


def prompt_deltas_2d(role: str, embedder: str, from_setting: str, to_by_dataset: dict[str, str],
                     real: dict[str, dict[str, np.ndarray]], anchor: dict[str, dict[str, np.ndarray]],
                     gen: dict[str, dict[str, dict[str, np.ndarray]]], n_boot: int, confidence: float,
                     rng_for: Callable[[str, str], np.random.Generator]) -> pd.DataFrame:
    """Knob ``prompt_names``: CLIP Score (``role`` clip) or PickScore (pick) of every generated cell with the
    prompts under the anchor's class-name table and under the configured one, the same image embeddings either
    way; the interval is the percentile interval of the mean paired difference over resamples of the generated
    items (both tables scored on each resample)."""
    from .text_image import text_image_scores

    metric = "clip_score" if role == "clip" else "pick_score"
    clamp = (lambda v: max(v, 0.0)) if role == "clip" else (lambda v: v)  # torchmetrics clamps CLIP's mean
    rows = []
    for dataset, real_to in real.items():
        real_from = with_anchor_prompts(real_to, anchor[dataset], f"prompt_names: real {dataset}")
        for entry, g in gen[dataset].items():
            names = (f"real {dataset}", f"generated {entry}")
            s_from = text_image_scores(real_from, g, role, names)[1]
            s_to = text_image_scores(real_to, g, role, names)[1]
            a, b = clamp(float(s_from.mean())), clamp(float(s_to.mean()))
            rng = rng_for(dataset, entry)
            reps = np.array([clamp(float(s_to[i].mean())) - clamp(float(s_from[i].mean()))
                             for i in (rng.integers(0, len(s_to), len(s_to)) for _ in range(max(n_boot, 0)))])
            lo, hi = percentile_interval(reps, confidence)
            rows.append({"track": "2d", "knob": "prompt_names", "from_setting": from_setting,
                         "to_setting": to_by_dataset.get(dataset, ""), "dataset": dataset, "entry": entry,
                         "metric": metric, "value_from": a, "value_to": b, "delta": b - a, "ci_low": lo,
                         "ci_high": hi, "n": len(s_to), "higher_is_better": higher_is_better(metric),
                         "ci_method": method_label("percentile", n_boot, confidence,
                                                   f"paired: generated items resampled, both tables ({embedder})"),
                         "note": interval_note(b - a, lo, hi) or None, "status": "ok", "reason": None})
    return pd.DataFrame(rows)


def precision_deltas_2d(real: dict[str, np.ndarray], gen: dict[str, dict[str, np.ndarray]], n_boot: int,
                        confidence: float, rng_for: Callable[[str, str], np.random.Generator]) -> pd.DataFrame:
    """Knob ``statistics_precision`` (float32 -> float64) on FID for every generated cell: ``real`` maps each data
    set to its real features, ``gen`` maps each cell's data set to {entry: generated features}. KID, IS and the
    mean-based metrics are computed in float64 from the same features either way, so only the FD row moves."""
    rows = []
    for dataset, cells in gen.items():
        r = check_features(real[dataset], f"real {dataset}")
        for entry, g in cells.items():
            g = check_features(g, f"generated {entry}")
            d = paired_knob_delta(frechet_distance_float32, frechet_distance_float64, r, g, n_boot, confidence,
                                  rng_for(dataset, entry))
            rows.append({"track": "2d", "knob": "statistics_precision", "from_setting": "float32",
                         "to_setting": "float64", "dataset": dataset, "entry": entry, "metric": "fid",
                         "n": len(g), "higher_is_better": higher_is_better("fid"), "status": "ok", "reason": None, **d})
    return pd.DataFrame(rows)


# ---- 3D: paired per-item differences ----------------------------------------------------------------------------

def item_deltas_3d(anchor: pd.DataFrame, variant: pd.DataFrame, knob: str, from_setting: str, to_setting: str,
                   metrics: dict[str, bool], n_boot: int, confidence: float,
                   rng_for: Callable[[str, str, str], np.random.Generator]) -> pd.DataFrame:
    """Per (dataset, model, metric): the mean over items scored under both settings, the mean paired difference
    and its percentile interval (items resampled). ``metrics`` maps each metric column to higher-is-better."""
    keys = list(RECON3D_ITEM_KEYS)
    a = anchor[anchor["status"] == "ok"].set_index(keys)
    b = variant[variant["status"] == "ok"].set_index(keys)
    both = a.index.intersection(b.index)
    rows = []
    pairs = both.to_frame(index=False)
    for (dataset, model), grp in pairs.groupby(["dataset", "model"], sort=False):
        items = pd.MultiIndex.from_frame(grp)
        for metric, hib in metrics.items():
            if metric not in a or metric not in b:
                continue
            va = a.loc[items, metric].to_numpy(dtype=np.float64)
            vb = b.loc[items, metric].to_numpy(dtype=np.float64)
            keep = np.isfinite(va) & np.isfinite(vb)
            base = {"track": "3d", "knob": knob, "from_setting": from_setting, "to_setting": to_setting,
                    "dataset": dataset, "entry": model, "metric": metric, "n": int(keep.sum()),
                    "higher_is_better": hib}
            if not keep.any():
                rows.append({**base, "status": "not_applicable",
                             "reason": f"no item of {dataset}/{model} has a finite {metric} under both settings"})
                continue
            va, vb = va[keep], vb[keep]
            diff = vb - va
            rng = rng_for(dataset, model, metric)
            reps = np.array([diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(max(n_boot, 0))])
            lo, hi = percentile_interval(reps, confidence)
            rows.append({**base, "value_from": float(va.mean()), "value_to": float(vb.mean()),
                         "delta": float(diff.mean()), "ci_low": lo, "ci_high": hi,
                         "ci_method": method_label("percentile", n_boot, confidence, "items, paired"),
                         "note": interval_note(float(diff.mean()), lo, hi) or None, "status": "ok", "reason": None})
    return pd.DataFrame(rows)


def report_view(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the report shows it: one line per delta (value from -> to, delta [CI]) or ranking (tau, flips),
    then the knobs not evaluated with their reason."""
    def num(v: float) -> str:
        return "–" if v is None or not np.isfinite(v) else f"{v:.4g}"

    rows = []
    for r in table.itertuples(index=False):
        if r.status != "ok":
            shown = f"not evaluated: {r.reason}"
        elif r.kind == "delta":
            shown = (f"{num(r.value_from)} → {num(r.value_to)}: Δ {num(r.delta)} [{num(r.ci_low)}, {num(r.ci_high)}]"
                     + (f" ({r.note})" if isinstance(r.note, str) and r.note else ""))
        else:
            shown = f"τ {num(r.kendall_tau)}, {r.discordant_pairs} of {r.n_ranked * (r.n_ranked - 1) // 2} pairs flip"
        rows.append({"knob": f"{r.track} {r.knob}", "from → to": f"{r.from_setting} → {r.to_setting}",
                     "data set": r.dataset, "entry": r.entry, "metric": r.metric, "result": shown})
    return pd.DataFrame(rows, columns=["knob", "from → to", "data set", "entry", "metric", "result"])
