"""Where every result lives: the one place that spells a path under ``results/``.

A 2D cell (:class:`Cell`: a model on a data set at steps, guidance and seed) and a 3D cell (:class:`Cell3D`: a data
set and a reconstructor) name their files through the functions below. Each function takes a concrete cell and
returns its path, or takes the pattern (:data:`CELL`, :data:`CELL3D`, or a ``"{wildcard}"`` string for a name) and
returns the Snakemake pattern of the same path, so that a rule's output and the code that lists its targets are
one expression::

    output: layout.metric_table(CELL)        # -> results/metrics/gen2d/{model}/.../seed{seed}.parquet
    [layout.metric_table(c) for c in CELLS]  # -> results/metrics/gen2d/sit_mini/mw_val/steps4_cfg1.5/seed0.parquet

A cell has one text form (``str(cell)`` = ``cell.path``, e.g. ``sit_mini/mw_val/steps4_cfg1.5/seed0``): its folder
under every results tree, and its name wherever a cell is named (bootstrap seed keys, pairwise and stability
labels, figure grids). The guidance scale's text is :func:`fmt_cfg` (1.0 -> ``1``), the only text a ``cfg``
wildcard matches, so one cell has one path.

No heavy imports here: the Snakefile imports this module at parse time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

RESULTS = "results"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"

# what each wildcard of the rules matches (common.smk's wildcard_constraints; Cell.parse): names start with a letter
# or digit; a cell's numbers are written as the cell writes them (no leading zeros; the guidance scale as fmt_cfg
# writes it: no trailing zeros, no exponent), so that a cell has one path
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
INTEGER = r"(?:0|[1-9]\d*)"
WILDCARDS: dict[str, str] = {
    "dataset": NAME,
    "model": NAME,
    "extractor": NAME,
    "steps": INTEGER,
    "cfg": INTEGER + r"(?:\.\d*[1-9])?",
    "seed": INTEGER,
    "shard": r"\d+",
    "dataset3d": NAME,
    "recon": NAME,
    "knob": NAME,
}


def fmt_cfg(value: float | str) -> str:
    """Canonical text of a guidance scale (1.0 -> '1', 1.5 -> '1.5', 1.42 -> '1.42'): the shortest decimal that
    reads back as the same float, without a trailing '.0'."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _setting(steps: Any, cfg: str) -> str:
    return f"steps{steps}_cfg{cfg}"


def _cell_path(model: str, dataset: str, setting: str, seed: Any) -> str:
    return f"{model}/{dataset}/{setting}/seed{seed}"


@dataclass(frozen=True, order=True)
class Cell:
    """One generated image set: a model on a data set at (steps, guidance, seed)."""

    model: str
    dataset: str
    steps: int
    cfg: float
    seed: int

    def __post_init__(self) -> None:
        # the same cell whether built from the config (floats), from wildcards (text) or from a table row (numpy)
        object.__setattr__(self, "model", str(self.model))
        object.__setattr__(self, "dataset", str(self.dataset))
        object.__setattr__(self, "steps", int(self.steps))
        object.__setattr__(self, "cfg", float(self.cfg))
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def setting(self) -> str:
        """``steps{S}_cfg{G}``: the cell's sampler setting."""
        return _setting(self.steps, fmt_cfg(self.cfg))

    @property
    def path(self) -> str:
        """``{model}/{dataset}/steps{S}_cfg{G}/seed{K}``: the cell's one text form."""
        return _cell_path(self.model, self.dataset, self.setting, self.seed)

    def __str__(self) -> str:
        return self.path

    def as_dict(self) -> dict[str, Any]:
        """model, dataset, steps (int), cfg (float), seed (int): the key columns of the cell's rows."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Cell:
        """The cell of a mapping holding (at least) its five fields: a row, a rule's params, a cell's facts."""
        return cls(values["model"], values["dataset"], values["steps"], values["cfg"], values["seed"])

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> Cell:
        """The cell of a job's wildcards (model, dataset, steps, cfg, seed)."""
        return cls(wildcards.model, wildcards.dataset, wildcards.steps, wildcards.cfg, wildcards.seed)

    @classmethod
    def parse(cls, text: str) -> Cell:
        """The cell whose text form (:attr:`path`) is ``text``; a ValueError for anything else."""
        m = _CELL_RE.fullmatch(text)
        cell = None if m is None else cls.from_mapping(m.groupdict())
        if cell is None or cell.path != text:
            raise ValueError(f"not a cell path (model/dataset/stepsS_cfgG/seedK): {text!r}")
        return cell


@dataclass(frozen=True)
class CellPattern:
    """The Snakemake pattern of a 2D cell: each field is its wildcard, and ``path`` is Cell.path's pattern."""

    model: str = "{model}"
    dataset: str = "{dataset}"
    steps: str = "{steps}"
    cfg: str = "{cfg}"
    seed: str = "{seed}"

    @property
    def setting(self) -> str:
        return _setting(self.steps, self.cfg)

    @property
    def path(self) -> str:
        return _cell_path(self.model, self.dataset, self.setting, self.seed)

    def __str__(self) -> str:
        return self.path


CELL = CellPattern()  # rules: output: layout.metric_table(CELL)


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A pattern's regex: each ``{name}`` becomes a named group matching what the wildcard matches."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{WILDCARDS[m[1]]})", re.escape(pattern)))


_CELL_RE = _pattern_regex(CELL.path)


@dataclass(frozen=True, order=True)
class Cell3D:
    """One 3D result set: a reconstructor on a 3D data set."""

    dataset: str
    recon: str

    @property
    def path(self) -> str:
        return f"{self.dataset}/{self.recon}"

    def __str__(self) -> str:
        return self.path

    @classmethod
    def from_wildcards(cls, wildcards: Any) -> Cell3D:
        return cls(wildcards.dataset3d, wildcards.recon)


CELL3D = Cell3D("{dataset3d}", "{recon}")  # the pattern of a 3D cell (its wildcards)

AnyCell = Cell | CellPattern


# ---- data sets
def data_dir(dataset: str) -> str:
    """A prepared 2D data set: its manifest and images."""
    return f"{RESULTS}/data/{dataset}"


def manifest(dataset: str) -> str:
    return f"{data_dir(dataset)}/manifest.parquet"


def data3d_dir(dataset: str) -> str:
    return f"{RESULTS}/data3d/{dataset}"


def manifest3d(dataset: str) -> str:
    return f"{data3d_dir(dataset)}/manifest.parquet"


def items3d(dataset: str) -> str:
    """A 3D data set's items (inputs, ground truth) beside its manifest."""
    return f"{data3d_dir(dataset)}/items"


def curate_dir(dataset: str) -> str:
    """The curation of a curated data set: candidates, filters, checks, review queue, datasheet."""
    return f"{RESULTS}/curate/{dataset}"


def curate_file(dataset: str, name: str) -> str:
    """A file (or folder) of a data set's curation: ``source``, ``candidates.parquet``, ``datasheet.md``, ..."""
    return f"{curate_dir(dataset)}/{name}"


# ---- trained, converted and initialised models
def model_dir(model: str) -> str:
    return f"{RESULTS}/models/{model}"


def model_checkpoint(model: str) -> str:
    """A generator the pipeline trains (the model's ``train:`` entry)."""
    return f"{model_dir(model)}/model.safetensors"


def model_train_meta(model: str) -> str:
    return f"{model_dir(model)}/train.json"


def converted_checkpoint(model: str) -> str:
    """Official weights converted from a foreign format (the model's ``convert:`` entry)."""
    return f"{model_dir(model)}/converted.safetensors"


def converted_meta(model: str) -> str:
    return f"{model_dir(model)}/converted.json"


def reconstructor_dir(recon: str) -> str:
    """A reconstructor the pipeline trains (its ``train:`` entry, e.g. the toy ``diff2to3``): a folder apart from
    the generators' (``models3d``), so that no name can match both training rules."""
    return f"{RESULTS}/models3d/{recon}"


def reconstructor_weights(recon: str, name: str = "model.safetensors") -> str:
    """A trained reconstructor's files: ``model.safetensors`` (the weights) and ``config.json`` (the configs and the
    training report); the reconstructor loads the folder."""
    return f"{reconstructor_dir(recon)}/{name}"


def extractor_dir(extractor: str) -> str:
    return f"{RESULTS}/extractors/{extractor}"


def extractor_checkpoint(extractor: str) -> str:
    """A feature extractor the pipeline trains (its ``train:`` entry)."""
    return f"{extractor_dir(extractor)}/model.safetensors"


def extractor_train_meta(extractor: str) -> str:
    return f"{extractor_dir(extractor)}/train.json"


def extractor_random_checkpoint(extractor: str) -> str:
    """A feature extractor initialised at random (its ``random_init:`` entry)."""
    return f"{extractor_dir(extractor)}/random/model.safetensors"


def extractor_random_config(extractor: str) -> str:
    return f"{extractor_dir(extractor)}/random/config.json"


def embedder_dir(embedder: str) -> str:
    return f"{RESULTS}/embedders/{embedder}"


def embedder_checkpoint(embedder: str) -> str:
    """A text-image embedder the pipeline trains (its ``train:`` entry)."""
    return f"{embedder_dir(embedder)}/model.safetensors"


def embedder_train_meta(embedder: str) -> str:
    return f"{embedder_dir(embedder)}/train.json"


# ---- a 2D cell
def cell_dir(cell: AnyCell) -> str:
    """The generated images of a cell: its shards and sample grid."""
    return f"{RESULTS}/gen2d/{cell.path}"


def shard_name(cell: AnyCell, shard: int | str) -> str:
    """A generation shard relative to the gen2d tree (also its log's and benchmark's name)."""
    return f"{cell.path}/shard-{shard}"


def shard(cell: AnyCell, shard: int | str) -> str:
    return f"{RESULTS}/gen2d/{shard_name(cell, shard)}.npz"


def shards(cell: AnyCell, n: int) -> list[str]:
    return [shard(cell, i) for i in range(n)]


def grid(cell: AnyCell) -> str:
    return f"{cell_dir(cell)}/grid.png"


def real_features(extractor: str, dataset: str) -> str:
    return f"{RESULTS}/features/{extractor}/real/{dataset}.npz"


def gen_features(extractor: str, cell: AnyCell) -> str:
    return f"{RESULTS}/features/{extractor}/gen/{cell.path}.npz"


def real_embeddings(embedder: str, dataset: str) -> str:
    return f"{RESULTS}/embeddings/{embedder}/real/{dataset}.npz"


def gen_embeddings(embedder: str, cell: AnyCell) -> str:
    return f"{RESULTS}/embeddings/{embedder}/gen/{cell.path}.npz"


def metric_table(cell: AnyCell, per_class: bool = False) -> str:
    """A cell's score table (``gen2d``) or its per-class one (``gen2d_per_class``)."""
    kind = "gen2d_per_class" if per_class else "gen2d"
    return f"{RESULTS}/metrics/{kind}/{cell.path}.parquet"


# ---- a 3D cell
def reconstructions(cell: Cell3D) -> str:
    return f"{RESULTS}/recon3d/{cell.path}/reconstructions.parquet"


def recon3d_metrics(cell: Cell3D) -> str:
    """A reconstructor's per-item scores on a data set under every protocol."""
    return f"{RESULTS}/metrics/recon3d/{cell.path}.parquet"


def appearance3d(cell: Cell3D, sets: bool = False) -> str:
    """A reconstructor's appearance metrics on a data set (``sets``: the per-set table beside it)."""
    return f"{RESULTS}/metrics/appearance3d/{cell.path}{'.sets' if sets else ''}.parquet"


# ---- the toy Diff2to3's paper tables (config/diff2to3.yaml)
def diff2to3_ablation_run(exp: str, seed: int | str, ext: str = "parquet") -> str:
    """One Table 3 run: experiment ``exp``'s pipeline under one training seed (per held-out asset scores; .json:
    the training report)."""
    return f"{RESULTS}/diff2to3/ablation/{exp}/seed{seed}.{ext}"


def diff2to3_vae_run(source: str, seed: int | str, ext: str = "parquet") -> str:
    """One Table 1 training run's per-held-out-asset scores (``parquet``) or its record (``json``)."""
    return f"{RESULTS}/diff2to3/vae/{source}/seed{seed}.{ext}"


# ---- across the sweep
def table(name: str, ext: str = "parquet") -> str:
    """An aggregated table (``gen2d_metrics``, ``recon3d_summary``, ``curation_{dataset}_classes``, ...)."""
    return f"{RESULTS}/tables/{name}.{ext}"


def figure(name: str, ext: str) -> str:
    """A figure (pdf, png) or the rows it drew (csv)."""
    return f"{RESULTS}/figures/{name}.{ext}"


def protocol_delta_2d() -> str:
    return f"{RESULTS}/protocol_delta/2d.parquet"


def protocol_delta_3d(dataset: str) -> str:
    return f"{RESULTS}/protocol_delta/3d/{dataset}.parquet"


def protocol_real_features(knob: str, extractor: str, dataset: str) -> str:
    """A real set's features under the anchor's setting of a 2D knob (resize_mode, real_preparation)."""
    return f"{RESULTS}/protocol_delta/{knob}/features/{extractor}/real/{dataset}.npz"


def protocol_gen_features(knob: str, extractor: str, cell: AnyCell) -> str:
    """A generated cell's features under the anchor's setting of a 2D knob (resize_mode)."""
    return f"{RESULTS}/protocol_delta/{knob}/features/{extractor}/gen/{cell.path}.npz"


def protocol_prompt_embeddings(embedder: str, dataset: str) -> str:
    """A real set's prompts embedded under the anchor's class-name table (knob prompt_names)."""
    return f"{RESULTS}/protocol_delta/prompt_names/embeddings/{embedder}/{dataset}.npz"


# ---- a job's log and benchmark: results/logs/{group}/{name}.log, results/benchmarks/{group}/{name}.tsv, where the
# group is the rule (or a family of rules: aggregate, figures, statistics) and the name its wildcards' part
def log(group: str, name: str | Cell | CellPattern | Cell3D) -> str:
    return f"{LOGS}/{group}/{name}.log"


def benchmark(group: str, name: str | Cell | CellPattern | Cell3D) -> str:
    return f"{BENCHMARKS}/{group}/{name}.tsv"
