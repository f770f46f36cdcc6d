"""The key columns of genbench's tables, defined once.

A 2D cell is :class:`genbench.layout.Cell` (model, data set, steps, guidance, seed): its fields are the cell key
columns, in the order the per-cell score tables write them. The aggregated tables, exports and figures sort and
show cells data set first (``CELL_KEYS_BY_DATASET``, the same columns). The 3D summary is keyed by (data set,
reconstructor, protocol[, metric]) and its per-item table by item as well.
"""

from __future__ import annotations

from dataclasses import fields

from ..layout import Cell

CELL_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Cell))  # model, dataset, steps, cfg, seed
CELL_KEYS_BY_DATASET: tuple[str, ...] = ("dataset", "model", *(k for k in CELL_KEYS if k not in ("dataset", "model")))
GEN2D_KEYS: tuple[str, ...] = (*CELL_KEYS, "metric")  # a per-cell score table (results/metrics/gen2d/...)
GEN2D_PER_CLASS_KEYS: tuple[str, ...] = (*CELL_KEYS, "label_id", "metric")
GEN2D_TABLE_KEYS: tuple[str, ...] = (*CELL_KEYS_BY_DATASET, "metric")  # gen2d_metrics.parquet (aggregated)

RECON3D_KEYS: tuple[str, ...] = ("dataset", "model", "protocol")  # one (data set, reconstructor, protocol)
RECON3D_SUMMARY_KEYS: tuple[str, ...] = (*RECON3D_KEYS, "metric")  # recon3d_summary.parquet
RECON3D_ITEM_KEYS: tuple[str, ...] = ("dataset", "model", "item_id")  # one item's reconstruction
