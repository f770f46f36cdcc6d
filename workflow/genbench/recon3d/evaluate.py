"""The 3D track's stages after the inputs: reconstruct every item with one model, score the reconstructions under
each protocol, aggregate per (dataset, model, protocol) with bootstrap confidence intervals.

Nothing is lost silently: an empty input is recorded as ``skipped`` (the seed benchmark drops such items from the
averages), a model that raises, returns nothing, or returns an empty/degenerate/NaN mesh is recorded as ``failed``
with the reason, and the run goes on; the summary table counts scored, skipped and failed items per row.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import RECONSTRUCTORS
from ..io import save_npz, write_bytes, write_json
from ..metrics.registry import higher_is_better
from ..seeding import derive_seed, numpy_rng
from ..tables.keys import RECON3D_KEYS
from .distances import PointSetError, check_points
from .meshes import MeshError, check_mesh
from .protocols import PROTOCOLS, load_prediction, protocol_settings
from .reconstructors import EmptyInputError, Reconstruction, ReconstructionError, alpha_mask, load_reconstructor

log = logging.getLogger(__name__)

# which input each protocol reconstructs from: the seed code's slice for legacy where a data set has one
PROTOCOL_INPUT = {"legacy": "legacy_input", "corrected": "input"}
INPUT_COLUMN = {"input": "input_path", "legacy_input": "legacy_input_path"}
# the headline metrics (tables, figures); each metric's direction is in genbench.metrics.registry
HEADLINE = {"legacy": ["f1", "point_bin_iou", "chamfer_l1", "emd"],
            "corrected": ["fscore@0.01", "solid_iou", "chamfer_l1", "hd95", "normal_consistency", "emd"]}


def inputs_of(manifest: pd.DataFrame) -> list[str]:
    """The input variants a data set has: 'input' always, 'legacy_input' for medical data sets."""
    have = ["input"]
    if "legacy_input_path" in manifest and manifest["legacy_input_path"].notna().any():
        have.append("legacy_input")
    return have


def input_for(protocol: str, manifest: pd.DataFrame) -> str:
    want = PROTOCOL_INPUT[protocol]
    return want if want in inputs_of(manifest) else "input"


def _read_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def check_reconstruction(rec: Reconstruction, what: str) -> None:
    if rec.kind == "mesh":
        check_mesh(rec.mesh, what)
    else:
        check_points(rec.points, what)


def reconstruct_dataset(dataset: str, model: str, spec: dict[str, Any], manifest_path: str | Path,
                        out_dir: str | Path, seed: int) -> pd.DataFrame:
    """Every ok item of the manifest, for each input variant it has -> out_dir/{variant}/{item}/pred.* + meta.json,
    and one row per (item, variant) with status, reason, kind and frame. Wall times go to the job's log (tables
    hold only what a rerun reproduces; docs/tables.md)."""
    manifest = pd.read_parquet(manifest_path)
    root = Path(manifest_path).parent
    out_dir = Path(out_dir)
    rec = load_reconstructor(model, spec)
    photo_feed = spec.get("photo_input", "rgba")
    if photo_feed == "rgb" and "photo_rgb" not in RECONSTRUCTORS.plugin(spec["kind"]).traits:
        raise ReconstructionError(f"reconstructors.{model}.photo_input: rgb feeds the photo without its mask, and "
                                  f"'{spec['kind']}' needs the mask; set it to rgba")
    rows = []
    for variant in inputs_of(manifest):
        for item in manifest.to_dict("records"):
            base = {"dataset": dataset, "model": model, "item_id": item["item_id"], "input": variant}
            if item["status"] != "ok":
                rows.append({**base, "status": "skipped", "reason": f"input not prepared: {item['reason']}"})
                continue
            path = item.get(INPUT_COLUMN[variant])
            if not isinstance(path, str):  # an object without the seed's photo (the manifest says why)
                rows.append({**base, "status": "skipped",
                             "reason": f"no {variant}: {item.get(f'{variant}_reason') or 'not prepared'}"})
                continue
            # a photo input is fed as each model was run: with its mask as alpha (rgba) or without (rgb)
            feed = photo_feed if item.get(f"{variant}_kind") == "photo" else "rgba"
            what = f"{dataset}/{model}/{item['item_id']} ({variant})"
            folder = out_dir / variant / item["item_id"]
            view_file = root / Path(path).with_suffix(".json")
            view = json.loads(view_file.read_text()) if view_file.exists() else None
            item_seed = derive_seed(seed, "recon3d", model, dataset, item["item_id"])
            t0 = time.perf_counter()
            try:
                rgba = _read_rgba(root / path)
                alpha_mask(rgba, what)  # an empty mask is an empty input for every model
                if feed == "rgb":
                    rgba = rgba.copy()
                    rgba[..., 3] = 255
                out = rec.reconstruct(rgba, view, item_seed,
                                      {**item, "_root": str(root), "_input": variant, "_feed": feed})
                check_reconstruction(out, what)
            except EmptyInputError as exc:
                rows.append({**base, "status": "skipped", "reason": str(exc)})
                continue
            except Exception as exc:  # a model that crashes on one item: recorded, the run continues
                log.warning("failed %s after %.3f s: %s: %s", what, time.perf_counter() - t0, type(exc).__name__,
                            exc)
                rows.append({**base, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
                continue
            log.info("reconstructed %s: %s in %.3f s", what, out.kind, time.perf_counter() - t0)
            if out.kind == "mesh":
                write_bytes(folder / "pred.ply", out.mesh.export(file_type="ply", encoding="binary"))
                size = {"n_vertices": len(out.mesh.vertices), "n_faces": len(out.mesh.faces)}
            else:
                save_npz(folder / "pred.npz", points=np.asarray(out.points, dtype=np.float32))
                size = {"n_vertices": len(out.points), "n_faces": 0}
            for name, blob in out.files.items():  # e.g. a model's Gaussians as a 3DGS PLY beside the scored centres
                write_bytes(folder / name, blob)
            meta = {"kind": out.kind, "frame": out.frame, "seed": item_seed, "feed": feed, **out.meta}
            write_json(folder / "meta.json", meta)
            rows.append({**base, "status": "ok", "reason": None, "kind": out.kind, "frame": out.frame,
                         "seed": item_seed, "feed": feed, "prediction": f"{variant}/{item['item_id']}",
                         "settings": json.dumps(out.meta, sort_keys=True, default=str), **size})
    df = pd.DataFrame(rows)
    for col in ("reason", "kind", "frame", "prediction", "settings", "feed"):
        if col not in df:
            df[col] = None
    return df


def score_dataset(dataset: str, model: str, protocols: dict[str, dict[str, Any]], manifest_path: str | Path,
                  recon_table: str | Path, seed: int) -> pd.DataFrame:
    """One row per (item, protocol): the protocol's metrics, or the status/reason of an item that was skipped or
    failed (at reconstruction or at scoring)."""
    manifest = pd.read_parquet(manifest_path)
    root = Path(manifest_path).parent
    recon = pd.read_parquet(recon_table)
    recon_dir = Path(recon_table).parent
    items = {r["item_id"]: r for r in manifest.to_dict("records")}
    rows = []
    for protocol, cfg in protocols.items():
        variant = input_for(protocol, manifest)
        for r in recon[recon["input"] == variant].to_dict("records"):
            base = {"dataset": dataset, "model": model, "protocol": protocol, "item_id": r["item_id"],
                    "input": variant, "kind": r.get("kind"), "prediction": r.get("prediction")}
            if r["status"] != "ok":
                rows.append({**base, "status": r["status"], "reason": r["reason"]})
                continue
            what = f"{dataset}/{model}/{r['item_id']} ({protocol})"
            try:
                folder = recon_dir / r["prediction"]
                pred = load_prediction(folder, json.loads((folder / "meta.json").read_text()))
                if pred["kind"] == "mesh":
                    check_mesh(pred["mesh"], what)
                rng = numpy_rng(seed, "score3d", protocol, model, dataset, r["item_id"])
                item = {**items[r["item_id"]], "_root": str(root)}
                metrics = PROTOCOLS[protocol](pred, item, protocol_settings(cfg, dataset), rng)
            except (MeshError, PointSetError, ValueError, OSError) as exc:
                log.warning("failed to score %s: %s", what, exc)
                rows.append({**base, "status": "failed", "reason": f"scoring: {type(exc).__name__}: {exc}"})
                continue
            rows.append({**base, "status": "ok", "reason": None, **metrics})
    df = pd.DataFrame(rows)
    if "reason" not in df:
        df["reason"] = None
    return df


def _threshold_note(metric: str, spacing: float) -> str | None:
    """Thresholded metrics (F/precision/recall@tau) cannot reach 1, even for the GT ceiling, when the surface samples
    are spaced wider than tau: say so next to the number instead of letting it read as a model's failure."""
    head, sep, tail = metric.partition("@")
    if not sep or head not in ("fscore", "precision", "recall") or not np.isfinite(spacing):
        return None
    tau = float(tail)
    if spacing <= tau:
        return None
    return (f"sample spacing {spacing:.3g} > tau {tau:g}: capped below 1 even for the GT ceiling; "
            "raise the protocol's samples")


# per-item columns that are not metrics (keys, bookkeeping, alignment facts)
NON_METRIC_COLUMNS = {"dataset", "model", "protocol", "item_id", "input", "kind", "status", "reason", "alignment",
                      "occupancy_method", "rotation_start", "icp_iterations", "prediction", "ceiling", "n_views"}


def metric_columns(per_item: pd.DataFrame) -> list[str]:
    """The numeric per-item columns that the summary (and the pairwise table) treat as metrics."""
    return [c for c in per_item.columns
            if c not in NON_METRIC_COLUMNS and pd.api.types.is_numeric_dtype(per_item[c])]


def summarise(per_item: pd.DataFrame, ceilings: list[str], n_boot: int, confidence: float,
              seed: int) -> pd.DataFrame:
    """Long table: one row per (dataset, model, protocol, metric) with the mean over scored items, its bootstrap
    BCa interval (items resampled; the method in ``ci_method``), and the counts of scored / skipped / failed
    items."""
    from ..metrics.bootstrap import bca_mean_interval, interval_note, method_label

    rows = []
    keys = list(RECON3D_KEYS)
    for key, grp in per_item.groupby(keys, sort=False):
        ok = grp[grp["status"] == "ok"]
        counts = {"n_scored": len(ok), "n_skipped": int((grp["status"] == "skipped").sum()),
                  "n_failed": int((grp["status"] == "failed").sum())}
        spacing = float(ok["sample_spacing"].mean()) if "sample_spacing" in ok and len(ok) else float("nan")
        for metric in metric_columns(grp):
            vals = ok[metric].to_numpy(dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            if len(vals) == 0:
                continue
            rng = numpy_rng(seed, "bootstrap3d", *key, metric)
            lo, hi, how = bca_mean_interval(vals, n_boot, confidence, rng)
            value = float(vals.mean())
            notes = [n for n in (_threshold_note(metric, spacing), interval_note(value, lo, hi)) if n]
            rows.append({**dict(zip(keys, key, strict=True)), "metric": metric, "value": value,
                         "ci_low": lo, "ci_high": hi, "ci_method": method_label(how, n_boot, confidence, "items"),
                         "n": len(vals), **counts,
                         "ceiling": key[1] in ceilings,
                         "higher_is_better": higher_is_better(metric, "3d"),
                         "note": "; ".join(notes) or None})
    return pd.DataFrame(rows)
