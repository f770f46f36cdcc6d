"""The 3D knobs of the protocol-delta table: the legacy (seed) protocol with one setting at a time switched to the
corrected protocol's, every item re-scored from the reconstructions already made (nothing is reconstructed again).

The anchor side is the legacy rows of the score tables themselves: the variants draw their random samples from the
same per-item seed (``numpy_rng(seed, 'score3d', 'legacy', ...)``), so a knob that does not change the sample
count sees the same samples and its delta is the knob's effect alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..metrics.registry import higher_is_better
from .evaluate import score_dataset
from .protocols import CORRECTED_DEFAULTS, LEGACY_DEFAULTS, protocol_settings

# the metrics each knob's delta is reported on -> higher is better (from the metric registry)
METRICS = {m: higher_is_better(m, "3d") for m in ("f1", "iou", "chamfer_l1", "emd")}


def knob_settings(legacy: dict[str, Any], corrected: dict[str, Any], dataset: str) -> dict[str, tuple]:
    """knob -> (from label, to label, the legacy settings with that knob switched), for one data set."""
    leg = {**LEGACY_DEFAULTS, **protocol_settings(legacy, dataset)}
    cor = {**CORRECTED_DEFAULTS, **protocol_settings(corrected, dataset)}
    return {
        "sample_count": (f"{leg['samples']} samples", f"{cor['samples']} samples",
                         {**leg, "samples": int(cor["samples"])}),
        "downsampling": ("points above the sample count downsampled", "every point kept",
                         {**leg, "downsample_points": False}),
        "icp_threshold": (f"ICP max correspondence {leg['max_corr']:g}",
                          f"ICP max correspondence {cor['max_corr']:g}", {**leg, "max_corr": float(cor["max_corr"])}),
        "rotation_search": ("ICP from the identity", f"{cor['rotation_starts']} rotation starts",
                            {**leg, "rotation_starts": int(cor["rotation_starts"]),
                             "icp_subsample": int(cor["icp_subsample"])}),
        "iou_kind": (f"point-bin IoU ({leg['bins']}^3)", f"solid-occupancy IoU ({leg['bins']}^3)",
                     {**leg, "iou": "solid"}),
    }


def with_iou(df: pd.DataFrame) -> pd.DataFrame:
    """The protocol's IoU under the common name 'iou' (point-bin or solid, whichever the settings computed)."""
    df = df.copy()
    if "point_bin_iou" in df:
        df["iou"] = df["point_bin_iou"]
    elif "solid_iou" in df:
        df["iou"] = df["solid_iou"]
    return df


def knob_deltas_3d(dataset: str, models: list[str], protocols: dict[str, dict[str, Any]],
                   manifest_path: str | Path, recon_tables: list[str | Path], score_tables: list[str | Path],
                   seed: int, n_boot: int, confidence: float) -> pd.DataFrame:
    """The ``delta`` rows of every 3D knob for one data set (genbench.metrics.protocol_delta)."""
    from ..metrics.protocol_delta import item_deltas_3d, not_applicable
    from ..seeding import numpy_rng

    if "legacy" not in protocols or "corrected" not in protocols:
        return pd.DataFrame([not_applicable("3d", "*", "legacy", "corrected",
                                            "recon3d.protocols needs both 'legacy' and 'corrected'")])
    anchor = pd.concat([pd.read_parquet(t) for t in score_tables], ignore_index=True)
    anchor = with_iou(anchor[anchor["protocol"] == "legacy"])
    parts = []
    base = {**LEGACY_DEFAULTS, **protocol_settings(protocols["legacy"], dataset)}
    for knob, (frm, to, settings) in knob_settings(protocols["legacy"], protocols["corrected"], dataset).items():
        if settings == base:
            parts.append(pd.DataFrame([{**not_applicable("3d", knob, frm, to, "the legacy and corrected protocols "
                                                         f"agree on this knob for {dataset} in this config"),
                                        "dataset": dataset}]))
            continue
        variant = pd.concat([score_dataset(dataset, m, {"legacy": settings}, manifest_path, t, seed)
                             for m, t in zip(models, recon_tables, strict=True)], ignore_index=True)
        parts.append(item_deltas_3d(
            anchor, with_iou(variant), knob, frm, to, METRICS, n_boot, confidence,
            lambda d, m, metric, knob=knob: numpy_rng(seed, "protocol_delta", knob, d, m, metric)))
    return pd.concat(parts, ignore_index=True)
