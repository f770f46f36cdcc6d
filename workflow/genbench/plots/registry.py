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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import layout

PAIRWISE_TABLE = layout.table("gen2d_pairwise")  # significance marks (statistics.smk)


PER_CLASS_TABLE = "gen2d_per_class"


@dataclass(frozen=True)
class Figure:
    """A figure: the function that draws it (the paper's are in :mod:`genbench.plots.figures`; a figure of its own
    module names that one), the metric it draws, the table it is drawn from, and what else it reads or states.

    What else a figure may read, each passed to its drawing function as a keyword argument: ``extra_tables`` (other
    aggregated tables, ``tables={name: DataFrame}``), ``needs_grids`` (the cells' sample grids, ``grids``),
    ``needs_images`` (the cells' generated shards, ``shards={cell path: [shard, ...]}``, and each data set's
    manifest for its real images, ``manifests={dataset: path}``), ``pairwise`` (the significance table).
    ``extra_metrics`` are the other metrics it draws (the config check requires them in scoring.metrics);
    ``options`` its settings and their defaults, overridden per run by the config's ``figure_options.<name>``."""

    name: str
    draw: str  # the drawing function, "package.module:function" (imported when the figure is drawn)
    metric: str
    table: str = "gen2d_metrics"  # layout.table(table)
    needs_grids: bool = False  # also reads the cells' sample grids
    intervals: bool = True  # draws CIs, so it states their confidence level
    pairwise: bool = False  # marks significant differences between neighbouring points (gen2d_pairwise)
    extra_tables: tuple[str, ...] = ()  # other tables it reads (layout.table(name))
    needs_images: bool = False  # reads the cells' generated images and the data sets' real images
    extra_metrics: tuple[str, ...] = ()  # other metrics it draws
    # its settings' defaults (figure_options.<name>); left out of the hash (a dict has none)
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def load_draw(self) -> Callable[..., Any]:
        """The drawing function, its module imported now: ``(table, pdf, png, data, **kwargs, **extra) -> the rows
        drawn`` (extra: ``grids`` with needs_grids, ``pairwise`` with pairwise, ``confidence`` with intervals,
        ``tables`` with extra_tables, ``shards`` and ``manifests`` with needs_images, and the options)."""
        module, _, function = self.draw.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of its drawing function."""
        return {"metric": self.metric}

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric it draws: scoring.metrics must compute them."""
        return (self.metric, *self.extra_metrics)

    @property
    def per_class(self) -> bool:
        """Whether it reads the per-class table (scoring.per_class.enabled must be true)."""
        return PER_CLASS_TABLE in (self.table, *self.extra_tables)

    def resolve_options(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Its options: the defaults, overridden by ``given`` (the config's figure_options.<name>); an unknown key
        is an error naming the known ones."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise KeyError(f"figure_options.{self.name}: unknown option(s) {unknown}; known: {sorted(self.options)}")
        return {**self.options, **given}

    def inputs(self, grids: list[str], shards: list[str] | None = None,
               manifests: list[str] | None = None) -> dict[str, Any]:
        """The rule's named inputs: the table, the other tables, the pairwise table when it marks significance, the
        sample grids (``grids``: one PNG per cell, in the cells' order) when it shows samples, the cells' shards and
        the data sets' manifests when it shows generated and real images."""
        out: dict[str, Any] = {"table": layout.table(self.table)}
        if self.extra_tables:
            out["tables"] = [layout.table(t) for t in self.extra_tables]
        if self.pairwise:
            out["pairwise"] = PAIRWISE_TABLE
        if self.needs_grids:
            out["grids"] = grids
        if self.needs_images:
            out["shards"] = list(shards or [])
            out["manifests"] = list(manifests or [])
        return out

    def params(self, confidence: float, cells: list[str], shard_cells: list[str] | None = None,
               datasets: list[str] | None = None, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The rule's params: the figure's name, the CI level it states, and, with the grids, the cells' paths
        (the grids' order); with other tables, their names (their inputs' order); with images, the cell of each
        shard and the data set of each manifest (their inputs' order); with options, their values."""
        out: dict[str, Any] = {"name": self.name, "confidence": confidence}
        if self.needs_grids:
            out["cells"] = cells
        if self.extra_tables:
            out["table_names"] = list(self.extra_tables)
        if self.needs_images:
            out["shard_cells"] = list(shard_cells or [])
            out["datasets"] = list(datasets or [])
        if self.options:
            out["options"] = self.resolve_options(options)
        return out


_PAPER = "genbench.plots.figures:"  # the paper figures' drawing functions
_CLASSES = "genbench.plots.classes:"  # the per-class qualitative figures

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
        # qualitative, per class (genbench.plots.classes): generated and real images of chosen classes
        Figure("class_pinned", _CLASSES + "class_pinned", "fid", needs_images=True, extra_metrics=("mmhm",),
               options={"classes": None, "k": 6, "real": True, "by_steps": False, "models": None, "datasets": None}),
        Figure("class_extremes", _CLASSES + "class_extremes", "fid", table=PER_CLASS_TABLE,
               extra_tables=("gen2d_metrics",), needs_images=True,
               options={"k": 3, "images": 2, "by_steps": False, "models": None, "datasets": None}),
    )
}
