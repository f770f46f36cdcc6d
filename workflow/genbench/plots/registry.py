"""The registry of the 2D track's paper figures: the one list of figure names.

Everything that needs the list reads it from here: the figure rules (``workflow/rules/figures.smk`` defines one
rule ``figure_{name}`` per entry), the config check (``figures:`` entries and the metric each draws), the drawing
code (:func:`genbench.plots.figures.draw_figure`), the report captions (``workflow/report/figures/{name}.rst``)
and the tests. This module imports nothing heavy (no matplotlib): the Snakefile reads it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import layout

PAIRWISE_TABLE = layout.table("gen2d_pairwise")  # significance marks (statistics.smk)


@dataclass(frozen=True)
class Figure:
    """A figure: the function of :mod:`genbench.plots.figures` that draws it, the metric it draws, the table it is
    drawn from, and what else it reads or states."""

    name: str
    draw: str  # a function of genbench.plots.figures (its DRAW table)
    metric: str
    table: str = "gen2d_metrics"  # layout.table(table)
    needs_grids: bool = False  # also reads the cells' sample grids
    intervals: bool = True  # draws CIs, so it states their confidence level
    pairwise: bool = False  # marks significant differences between neighbouring points (gen2d_pairwise)

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


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("fid_vs_cfg", "metric_vs_cfg", "fid", pairwise=True),
        Figure("is_vs_cfg", "metric_vs_cfg", "is", pairwise=True),
        Figure("kid_vs_cfg", "metric_vs_cfg", "kid"),
        Figure("step_scaling", "step_scaling", "fid", pairwise=True),
        Figure("dataset_comparison", "dataset_comparison", "fid"),
        Figure("sample_grids", "sample_grids", "fid", needs_grids=True),
        Figure("per_class_fid", "per_class_fid", "fid", table="gen2d_per_class"),
        Figure("clip_vs_cfg", "metric_vs_cfg", "clip_score"),
        Figure("pick_vs_cfg", "metric_vs_cfg", "pick_score"),
        Figure("mmhm_heatmap", "mmhm_heatmap", "mmhm", intervals=False),  # min-max over the sweep: no CI
        Figure("scaled_vs_raw", "scaled_vs_raw", "csfid"),
    )
}
