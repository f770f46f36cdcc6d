"""The registry of the 2D track's figures: the one list of figure names.

Everything that needs the list reads it from here: the figure rules (``workflow/rules/figures.smk`` defines one
rule ``figure_{name}`` per entry), the config check and the schema's enum (``figures:`` entries and the metric each
draws), the drawing code (:func:`genbench.plots.figures.draw_figure` imports each entry's ``draw``), the report
captions (``workflow/report/figures/{name}.rst``) and the tests. Adding a figure: its drawing function in a module
of its own, one entry below, its caption. This module imports nothing heavy (no matplotlib): the Snakefile reads
it at parse time.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import layout

PAIRWISE_TABLE = layout.table("gen2d_pairwise")  # significance marks (statistics.smk)


@dataclass(frozen=True)
class Figure:
    """A figure: the function that draws it (the paper's are in :mod:`genbench.plots.figures`; a figure of its own
    module names that one), the metric it draws, the table it is drawn from, and what else it reads or states."""

    name: str
    draw: str  # the drawing function, "package.module:function" (imported when the figure is drawn)
    metric: str
    table: str = "gen2d_metrics"  # layout.table(table)
    needs_grids: bool = False  # also reads the cells' sample grids
    intervals: bool = True  # draws CIs, so it states their confidence level
    pairwise: bool = False  # marks significant differences between neighbouring points (gen2d_pairwise)

    def load_draw(self) -> Callable[..., Any]:
        """The drawing function, its module imported now: ``(table, pdf, png, data, **kwargs, **extra) -> the rows
        drawn`` (extra: ``grids`` with needs_grids, ``pairwise`` with pairwise, ``confidence`` with intervals)."""
        module, _, function = self.draw.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of its drawing function."""
        return {"metric": self.metric}

    def inputs(self, grids: list[str]) -> dict[str, Any]:
        """The rule's named inputs: the table, the pairwise table when it marks significance, the sample grids
        (``grids``: one PNG per cell, in the cells' order) when it shows samples."""
        out: dict[str, Any] = {"table": layout.table(self.table)}
        if self.pairwise:
            out["pairwise"] = PAIRWISE_TABLE
        if self.needs_grids:
            out["grids"] = grids
        return out

    def params(self, confidence: float, cells: list[str]) -> dict[str, Any]:
        """The rule's params: the figure's name, the CI level it states, and, with the grids, the cells' paths
        (the grids' order)."""
        out: dict[str, Any] = {"name": self.name, "confidence": confidence}
        if self.needs_grids:
            out["cells"] = cells
        return out


_PAPER = "genbench.plots.figures:"  # the paper figures' drawing functions

FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("fid_vs_cfg", _PAPER + "metric_vs_cfg", "fid", pairwise=True),
        Figure("is_vs_cfg", _PAPER + "metric_vs_cfg", "is", pairwise=True),
        Figure("kid_vs_cfg", _PAPER + "metric_vs_cfg", "kid"),
        Figure("step_scaling", _PAPER + "step_scaling", "fid", pairwise=True),
        Figure("dataset_comparison", _PAPER + "dataset_comparison", "fid"),
        Figure("sample_grids", _PAPER + "sample_grids", "fid", needs_grids=True),
        Figure("per_class_fid", _PAPER + "per_class_fid", "fid", table="gen2d_per_class"),
        Figure("clip_vs_cfg", _PAPER + "metric_vs_cfg", "clip_score"),
        Figure("pick_vs_cfg", _PAPER + "metric_vs_cfg", "pick_score"),
        Figure("mmhm_heatmap", _PAPER + "mmhm_heatmap", "mmhm", intervals=False),  # min-max over the sweep: no CI
        Figure("scaled_vs_raw", _PAPER + "scaled_vs_raw", "csfid"),
    )
}
