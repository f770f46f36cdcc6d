"""The metric registry: the one place that knows, for every metric name the pipeline writes into a table, its
direction (lower or higher is better, or none for a diagnostic), its display name and where its formula is
documented. Everything else (the exported tables' column order and headers, figure labels, "best setting"
selection, MMHM's utilities, the 3D summary's ``higher_is_better`` column, the config's figure checks) reads it
from here.

A 2D metric's entry also names the function that computes its rows (``compute="package.module:function"``,
imported only when the metric is scored): ``score_cell`` builds one :class:`~genbench.metrics.context.CellContext`
per cell and calls that function for the requested metrics (README, "Adding a metric"). Entries that share a
function (precision/recall/density/coverage; clip_score/csfid/csis) get one call with all of theirs that are
requested. ``scope="sweep"`` marks a metric computed over the whole sweep after scoring (MMHM, in the aggregate).

Two tracks, two tables: the 2D metrics (rows of ``gen2d_metrics.parquet``; the ``requestable`` ones are what
``scoring.metrics`` may list, in the order the tables show them) and the 3D metrics (rows of
``recon3d_summary.parquet``). A few 3D names carry a parameter (``fscore@0.01``, ``voxel_hd95``, ``fd_inception``):
their entries are templates (``fscore@{tau}``) that :func:`metric_info` matches.

No heavy imports here: ``genbench.config`` (loaded by every Snakemake run) uses it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import GenbenchError

Direction = Literal["lower", "higher", "none"]
Track = Literal["2d", "3d"]
Scope = Literal["cell", "sweep"]

DOCS_2D = "docs/metrics.md"
DOCS_3D = "docs/metrics3d.md"


class MetricRegistryError(GenbenchError, LookupError):
    """A requested metric the registry cannot compute: unknown, not requestable, or without a compute target."""


@dataclass(frozen=True)
class Metric:
    """One metric: ``name`` as in the tables (or a template with one ``{param}``), ``direction`` ("none" for a
    diagnostic that ranks nothing), ``display`` for tables and figures, ``doc`` the formula's anchor, and for 2D
    whether ``scoring.metrics`` may request it (companion rows such as ``is_std`` are written with their metric),
    ``compute`` the "module:function" that computes its rows and ``scope`` when: per cell (``score_cell`` calls
    ``function(ctx, metrics)``) or over the sweep (the aggregate step)."""

    name: str
    direction: Direction
    display: str
    doc: str
    track: Track
    requestable: bool = False
    compute: str = ""
    scope: Scope = "cell"

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def higher_is_better(self) -> bool:
        """As the tables' ``higher_is_better`` column states it: true unless lower is better (diagnostics
        included, as the 3D summary has always written them)."""
        return self.direction != "lower"

    @property
    def is_template(self) -> bool:
        return "{" in self.name

    def pattern(self) -> re.Pattern[str]:
        head, _, rest = self.name.partition("{")
        tail = rest.partition("}")[2]
        return re.compile(re.escape(head) + r"(.+)" + re.escape(tail) + r"\Z")

    def compute_function(self) -> Callable[..., Any]:
        """The function ``compute`` names, imported now; a one-line error naming the metric and the fix when the
        entry has none or it does not import."""
        module, _, attr = self.compute.partition(":")
        where = f"metric '{self.name}' ({self.track})"
        if not module or not attr:
            raise MetricRegistryError(
                f"no compute target{f' ({self.compute!r} is not module:function)' if self.compute else ''}",
                item=where, fix="add compute='package.module:function' to its entry in genbench.metrics.registry "
                                "(a function (ctx, metrics) -> rows; README, 'Adding a metric')")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise MetricRegistryError(f"compute target '{self.compute}' does not import ({exc})", item=where,
                                      fix="fix the module or the entry's compute in genbench.metrics.registry"
                                      ) from exc
        if not callable(fn):
            raise MetricRegistryError(f"compute target '{self.compute}' is not callable", item=where,
                                      fix="point compute at a function")
        return fn


def _m(track: Track, name: str, direction: Direction, display: str, anchor: str, requestable: bool = False,
       compute: str = "", scope: Scope = "cell") -> Metric:
    return Metric(name, direction, display, f"{DOCS_2D if track == '2d' else DOCS_3D}#{anchor}", track, requestable,
                  compute, scope)


_FD = "fréchet-distance-fid-on-inception-features-fd-on-any-extractors-features"
_IS = "inception-score"
_KID = "kernel-inception-distance"
_PRDC = "precision-recall-density-and-coverage-rows-precision-recall-density-coverage"
_TEXT = "clip-score-pickscore-and-the-scaled-metrics"
_VALID = "metric-validation-on-known-answers-metric_validationparquet-metric_noise_floorparquet"

# 2D, in the order of the exported tables' columns (the requestable ones first). score_cell writes a cell's rows in
# this order too, by compute function (the first entry naming a function places all of its rows).
_METRICS_2D = [
    _m("2d", "fid", "lower", "FID", _FD, True, "genbench.metrics.fid:fid_rows"),
    _m("2d", "is", "higher", "IS", _IS, True, "genbench.metrics.inception_score:is_rows"),
    _m("2d", "kid", "lower", "KID", _KID, True, "genbench.metrics.kid:kid_rows"),
    _m("2d", "fd_dinov2", "lower", "FD-DINOv2", _FD, True, "genbench.metrics.fid:fd_dinov2_rows"),
    _m("2d", "kd_dinov2", "lower", "KD-DINOv2", _KID, True, "genbench.metrics.kid:kd_dinov2_rows"),
    _m("2d", "clip_score", "higher", "CLIP Score", _TEXT, True, "genbench.metrics.text_image:clip_rows"),
    _m("2d", "pick_score", "higher", "PickScore", _TEXT, True, "genbench.metrics.text_image:pick_rows"),
    _m("2d", "csfid", "lower", "csFID", _TEXT, True, "genbench.metrics.text_image:clip_rows"),
    _m("2d", "psfid", "lower", "psFID", _TEXT, True, "genbench.metrics.text_image:pick_rows"),
    _m("2d", "csis", "higher", "csIS", _TEXT, True, "genbench.metrics.text_image:clip_rows"),
    _m("2d", "psis", "higher", "psIS", _TEXT, True, "genbench.metrics.text_image:pick_rows"),
    _m("2d", "mmhm", "higher", "MMHM", "mmhm-composite", True, "genbench.stages:add_mmhm_rows", "sweep"),
    _m("2d", "precision", "higher", "Precision", _PRDC, True, "genbench.metrics.prdc:prdc_rows"),
    _m("2d", "recall", "higher", "Recall", _PRDC, True, "genbench.metrics.prdc:prdc_rows"),
    _m("2d", "density", "higher", "Density", _PRDC, True, "genbench.metrics.prdc:prdc_rows"),
    _m("2d", "coverage", "higher", "Coverage", _PRDC, True, "genbench.metrics.prdc:prdc_rows"),
    _m("2d", "vendi", "higher", "Vendi", "vendi-score-row-vendi", True, "genbench.metrics.vendi:vendi_rows"),
    _m("2d", "cmmd", "lower", "CMMD", "cmmd-row-cmmd", True, "genbench.metrics.cmmd:cmmd_rows"),
    _m("2d", "fid_inf", "lower", "FID∞", "fid-row-fid_inf", True, "genbench.metrics.fd_infinity:fid_inf_rows"),
    _m("2d", "sfid", "lower", "sFID", "sfid-row-sfid", True, "genbench.metrics.fid:sfid_rows"),
    # companions written next to their metric: spreads (not intervals), and the validation table's accuracy
    _m("2d", "is_std", "none", "IS std", _IS),
    _m("2d", "kid_std", "none", "KID std", _KID),
    _m("2d", "kd_dinov2_std", "none", "KD-DINOv2 std", _KID),
    _m("2d", "label_accuracy", "higher", "label accuracy", _VALID),
]

_GEOM = "formulas-and-their-references"
_LEGACY = "legacy-the-seed-benchmark-reproduced"
_CORRECTED = "corrected-default"
_APPEARANCE = "appearance-the-diff2to3-protocol-object-data-sets"

_METRICS_3D = [
    # legacy protocol (the seed benchmark's names)
    _m("3d", "f1", "higher", "F1", _LEGACY),
    _m("3d", "precision", "higher", "precision", _LEGACY),
    _m("3d", "recall", "higher", "recall", _LEGACY),
    _m("3d", "point_bin_iou", "higher", "point-bin IoU", _LEGACY),
    _m("3d", "point_bin_dice", "higher", "point-bin Dice", _LEGACY),
    # point-set distances (both protocols)
    _m("3d", "chamfer_l1", "lower", "Chamfer-L1", _GEOM),
    _m("3d", "chamfer_l2", "lower", "Chamfer-L2", _GEOM),
    _m("3d", "accuracy", "lower", "accuracy (mean d(P, G))", _GEOM),
    _m("3d", "completeness", "lower", "completeness (mean d(G, P))", _GEOM),
    _m("3d", "hausdorff", "lower", "Hausdorff", _GEOM),
    _m("3d", "hd{percentile}", "lower", "HD{percentile}", _GEOM),
    _m("3d", "fscore@{tau}", "higher", "F-score@{tau}", _GEOM),
    _m("3d", "precision@{tau}", "higher", "precision@{tau}", _GEOM),
    _m("3d", "recall@{tau}", "higher", "recall@{tau}", _GEOM),
    _m("3d", "normal_consistency", "higher", "normal consistency", _GEOM),
    _m("3d", "emd", "lower", "EMD", _GEOM),
    # solid occupancy (corrected protocol) and its voxel surface distances
    _m("3d", "solid_iou", "higher", "solid IoU", _GEOM),
    _m("3d", "solid_dice", "higher", "solid Dice", _GEOM),
    _m("3d", "voxel_hd{percentile}", "lower", "voxel HD{percentile}", _GEOM),
    _m("3d", "voxel_assd", "lower", "voxel ASSD", _GEOM),
    _m("3d", "voxel_nsd", "higher", "voxel NSD", _GEOM),
    # the protocol-delta knobs' common name for whichever IoU a protocol computed
    _m("3d", "iou", "higher", "IoU", _GEOM),
    # alignment and sampling diagnostics, summarised like metrics (icp_rmse is a residual distance: lower is better)
    _m("3d", "icp_fitness", "none", "ICP fitness", _GEOM),
    _m("3d", "icp_rmse", "lower", "ICP inlier RMSE", _GEOM),
    _m("3d", "sample_spacing", "none", "sample spacing", _CORRECTED),
    # appearance on renders
    _m("3d", "psnr", "higher", "PSNR", _APPEARANCE),
    _m("3d", "ssim", "higher", "SSIM", _APPEARANCE),
    _m("3d", "silhouette_iou", "higher", "silhouette IoU", _APPEARANCE),
    _m("3d", "lpips", "lower", "LPIPS", _APPEARANCE),
    _m("3d", "clip_input", "higher", "CLIP score vs input", _APPEARANCE),
    _m("3d", "fd_{extractor}", "lower", "FD-{extractor}", _APPEARANCE),
    _m("3d", "kd_{extractor}", "lower", "KD-{extractor}", _APPEARANCE),
]

METRICS: dict[Track, dict[str, Metric]] = {"2d": {m.name: m for m in _METRICS_2D},
                                           "3d": {m.name: m for m in _METRICS_3D}}


def metric_info(name: str, track: Track = "2d") -> Metric:
    """The registry entry of ``name`` (a template's entry for e.g. ``fscore@0.01``); KeyError when there is none."""
    table = METRICS[track]
    if name in table:
        return table[name]
    for m in table.values():
        if m.is_template and m.pattern().match(name):
            return m
    raise KeyError(f"metric '{name}' ({track}) is not in genbench.metrics.registry; add its direction, display "
                   "name and formula anchor there")


def cell_compute_plan(metrics: list[str] | tuple[str, ...]) -> list[tuple[Callable[..., Any], tuple[str, ...]]]:
    """(compute function, its requested metrics) for ``score_cell``, in the registry's order of the functions. Every
    name must be a requestable 2D metric scored per cell with a compute target (a one-line error otherwise, before
    anything is computed)."""
    table = METRICS["2d"]
    for name in metrics:
        m = table.get(name)
        if m is None or not m.requestable:
            problem = "not a 2D metric in genbench.metrics.registry" if m is None else (
                "not requestable (a companion row, written with its metric)")
            raise MetricRegistryError(problem, item=f"metric '{name}'", fix=(
                "add its entry (direction, display name, formula anchor, requestable, compute) to _METRICS_2D"
                if m is None else "request the metric it belongs to"))
        if m.scope != "cell":
            raise MetricRegistryError(f"computed over the whole sweep by {m.compute or '?'}, not per cell",
                                      item=f"metric '{name}'", fix="leave it out of score_cell's metrics")
        m.compute_function()  # no target, or one that does not import: say so before anything is computed
    wanted = set(metrics)
    groups: dict[str, list[str]] = {}
    for m in CELL_METRICS_2D.values():
        if m.name in wanted:
            groups.setdefault(m.compute, []).append(m.name)
    # the first entry that names a function places it (requested or not), so a cell's rows keep one order whatever
    # subset of metrics is requested
    order = dict.fromkeys(m.compute for m in CELL_METRICS_2D.values())
    return [(table[names[0]].compute_function(), tuple(names)) for target in order if (names := groups.get(target))]


def is_registered(name: str, track: Track = "2d") -> bool:
    try:
        metric_info(name, track)
    except KeyError:
        return False
    return True


def lower_is_better(name: str, track: Track = "2d") -> bool:
    return metric_info(name, track).lower_is_better


def higher_is_better(name: str, track: Track = "2d") -> bool:
    """The tables' ``higher_is_better`` value: true unless lower is better."""
    return metric_info(name, track).higher_is_better


def display_name(name: str, track: Track = "2d") -> str:
    """The name tables and figures show; a name the registry does not know is shown as is."""
    try:
        m = metric_info(name, track)
    except KeyError:
        return name
    if not m.is_template:
        return m.display
    param = m.pattern().match(name).group(1)
    return re.sub(r"\{\w+\}", param, m.display)


# derived views (2D): what scoring.metrics may request, in table order; their display names; the lower-is-better set
SCORING_METRICS: list[str] = [m.name for m in _METRICS_2D if m.requestable]


class _CellMetrics(Mapping[str, Metric]):
    """A live view of the 2D entries score_cell computes (requestable, scored per cell), in the registry's order:
    their compute targets are what a scoring job imports (tests/test_envs.py follows them into the rule's env)."""

    def __getitem__(self, name: str) -> Metric:
        m = METRICS["2d"][name]
        if not (m.requestable and m.scope == "cell"):
            raise KeyError(name)
        return m

    def __iter__(self) -> Iterator[str]:
        return (name for name, m in METRICS["2d"].items() if m.requestable and m.scope == "cell")

    def __len__(self) -> int:
        return sum(1 for _ in self)


CELL_METRICS_2D = _CellMetrics()
LABELS: dict[str, str] = {m: METRICS["2d"][m].display for m in SCORING_METRICS}
LOWER_IS_BETTER_2D: frozenset[str] = frozenset(m.name for m in _METRICS_2D if m.lower_is_better)
