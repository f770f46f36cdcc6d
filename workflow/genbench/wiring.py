"""How the rules connect: each job's inputs, params, env and the workflow's targets, from the validated config.

The rules (workflow/rules/*.smk) are declarative: they name a path (:mod:`genbench.layout`) or ask a
:class:`Wiring` built from the config for the rest: the config subset a job depends on (its ``params.config``), the
checkpoints it reads (trained, converted or initialised models), the catalog entry's env and GPUs, the files each
target rule gathers. Every method takes plain values (names, a :class:`~genbench.layout.Cell`) and returns plain
values (paths, dicts, lists), so that pytest reaches it without Snakemake; :func:`per_cell` and :func:`per_cell3d`
turn a method of a cell into the function of a job's wildcards that a rule's ``input:`` or ``params:`` needs.

A generated cell's features (rule cell_features) are one output per extractor and embedder, keyed by
:func:`feature_key` and read back by :func:`parse_feature_key` (the stage on the other side of the rule).

No heavy imports here: the Snakefile imports this module at parse time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from . import layout
from .catalog import GENERATORS, RECONSTRUCTORS
from .config import cells, model_shards, select
from .layout import CELL, Cell, Cell3D, CellPattern
from .protocol2d import Knob2D, anchor, plan, variant_config
from .registry import Plugin

# the parts of `runtime` a job's results depend on, as its params: device for every torch stage, precision only for
# generation (feature extraction stays fp32 unless its own entry says otherwise); never threads, which only change
# speed: changing them must not rerun every job
RUNTIME_GEN = ("runtime.device", "runtime.precision")
RUNTIME_METRIC = ("runtime.device",)

# ---- the outputs of rule cell_features: one per extractor (features) and per embedder (image embeddings), keyed
# by kind and name; the stage (genbench.stages.stage_cell_features) reads each key back to know what to compute
EXTRACTOR = "ex"
EMBEDDER = "em"
FEATURE_KINDS = (EXTRACTOR, EMBEDDER)


def feature_key(kind: str, name: str) -> str:
    """The key of ``name``'s output in a cell's features: ``ex_{extractor}`` or ``em_{embedder}``."""
    if kind not in FEATURE_KINDS or not name:
        raise ValueError(f"a feature key needs a kind in {FEATURE_KINDS} and a name, not ({kind!r}, {name!r})")
    return f"{kind}_{name}"


def parse_feature_key(key: str) -> tuple[str, str]:
    """(kind, name) of a key :func:`feature_key` wrote; a ValueError for anything else."""
    kind, sep, name = key.partition("_")
    if not sep or kind not in FEATURE_KINDS or not name:
        raise ValueError(f"cell features: unknown output '{key}' (expected ex_<extractor> or em_<embedder>)")
    return kind, name


# the input key of a feature's checkpoint (a trained / initialised stand-in): ckpt_ex_{name}, ckpt_em_{name}
_CHECKPOINT = "ckpt_"

# ---- the rules that run one catalog entry per job (genbench.catalog) take their env and GPUs from the entry:
# generate (a model's generator family) and reconstruct_3d (a reconstructor's kind)
PLUGINS = {"models": (GENERATORS, "family"), "reconstructors": (RECONSTRUCTORS, "kind")}


def plugin(config: Mapping[str, Any], section: str, name: str) -> Plugin:
    """The catalog entry behind the config entry ``section.name``."""
    registry, field = PLUGINS[section]
    return registry.plugin(config[section][name][field])


def plugin_env(config: Mapping[str, Any], section: str, name: str) -> str:
    """The conda environment (used with --use-conda) of a job running ``section.name``: workflow/envs/{env}.yaml,
    relative to the rule files."""
    return f"../envs/{plugin(config, section, name).env}.yaml"


def per_cell(fn: Callable[[Cell], Any]) -> Callable[[Any], Any]:
    """``fn(cell)`` as a function of a 2D job's wildcards (a rule's input or params function)."""
    return lambda wildcards: fn(Cell.from_wildcards(wildcards))


def per_cell3d(fn: Callable[[Cell3D], Any]) -> Callable[[Any], Any]:
    """``fn(cell)`` as a function of a 3D job's wildcards."""
    return lambda wildcards: fn(Cell3D.from_wildcards(wildcards))


def _names_regex(names: list[str]) -> str:
    """A wildcard constraint matching exactly ``names`` (none: a regex that matches nothing)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def _named(inputs: Any) -> dict[str, Any]:
    """A job's named inputs (Snakemake's input list, or a dict) as a dict."""
    return {k: inputs[k] for k in inputs.keys()}


DIFF2TO3_SOURCES = ("reconstructive", "semantic")  # Table 1 rows (genbench.recon3d.diff2to3.tables)
DIFF2TO3_EXPERIMENTS = ("exp1", "exp2", "exp3", "exp4")  # Table 3 rows (tables.EXPERIMENTS)


class Wiring:
    """The wiring of the rules under one validated config (genbench.config.validate_config)."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        scoring = config["scoring"]
        self.cells: list[Cell] = cells(config)
        self.score_extractor: str = scoring["extractor"]
        self.text_image: dict[str, str] = scoring.get("text_image", {})  # role (clip, pick) -> embedder
        self.feature_threads: int = config.get("runtime", {}).get("threads", 1)
        # the features of a generated cell: the scoring extractor, DINOv2 and the text-image embedders, by name
        dinov2 = [scoring["dinov2"]] if scoring.get("dinov2") else []
        self.gen_extractors: list[str] = list(dict.fromkeys([self.score_extractor, *dinov2]))
        self.gen_embedders: list[str] = list(dict.fromkeys(self.text_image.values()))
        # the extractors whose feature files also hold sFID's spatial features: the scoring extractor, when sfid is
        # requested (a rule parameter, so toggling sfid reruns exactly the feature jobs it changes)
        self.spatial_extractors: list[str] = [self.score_extractor] if "sfid" in scoring["metrics"] else []
        datasets = config["datasets"]
        self.curated: list[str] = [d for d, s in datasets.items() if s["adapter"] == "curated"]
        self.prepared_datasets: str = _names_regex([d for d, s in datasets.items() if s["adapter"] != "curated"])
        self.stat_datasets: list[str] = sorted({c.dataset for c in self.cells})
        # known-answer validation needs ground truth: the mini-world's real validation split
        self.validation_datasets: list[str] = [
            d for d, s in datasets.items() if s.get("adapter") == "miniworld" and s.get("split") == "val"
        ]

    # ---- catalog entries
    def plugin(self, section: str, name: str) -> Plugin:
        return plugin(self.config, section, name)

    def plugin_env(self, section: str, name: str) -> str:
        return plugin_env(self.config, section, name)

    # ---- config subsets (a job's params.config: it reruns exactly when a setting it uses changes)
    def dataset_config(self, dataset: str) -> dict[str, Any]:
        return select(self.config, "seed", f"datasets.{dataset}", "miniworld")

    def _sam2_masks(self, dataset: str) -> bool:
        """Whether prepare_3d runs SAM 2 for the seed's photo inputs (gso with mask source sam2_auto, the default)."""
        spec = self.config["datasets3d"][dataset]
        mask = (spec.get("legacy_input") or {}).get("mask") or {}
        return bool(spec.get("legacy_input")) and spec["adapter"] == "gso" and mask.get("source",
                                                                                         "sam2_auto") == "sam2_auto"

    def prepare3d_gpus(self, dataset: str) -> int:
        return 1 if self._sam2_masks(dataset) else 0

    def prepare3d_runtime(self, dataset: str) -> int:
        """Minutes: renders and GT take ~2 h at paper scale; SAM 2's 1024-point automatic masks add ~1 s per photo
        on a GPU (hours on a CPU)."""
        return 360 if self._sam2_masks(dataset) else 120

    def dataset3d_config(self, dataset: str) -> dict[str, Any]:
        # the seed's photo inputs may run SAM 2 for their masks: on the configured device
        extra = RUNTIME_METRIC if self.config["datasets3d"][dataset].get("legacy_input") else ()
        return select(self.config, "seed", f"datasets3d.{dataset}", *extra)

    def model_config(self, model: str) -> dict[str, Any]:
        return select(self.config, "seed", f"models.{model}", *RUNTIME_GEN)

    def reconstructor_config(self, recon: str) -> dict[str, Any]:
        return select(self.config, "seed", f"reconstructors.{recon}")

    def extractor_config_paths(self, name: str) -> list[str]:
        """An extractor's entry, plus the data set (and mini-world) it is trained on."""
        spec = self.config["extractors"][name]
        train = [f"datasets.{spec['train']['dataset']}", "miniworld"] if "train" in spec else []
        return [f"extractors.{name}", *train]

    def extractor_config(self, name: str) -> dict[str, Any]:
        entry, *train = self.extractor_config_paths(name)
        return select(self.config, entry, *RUNTIME_METRIC, *train)  # in this order: the subset's keys' order

    def embedder_config(self, name: str) -> dict[str, Any]:
        spec = self.config["embedders"][name]
        paths = [f"embedders.{name}", *RUNTIME_METRIC]
        if "train" in spec:
            paths += [f"datasets.{d}" for d in [spec["train"]["dataset"], *spec["train"].get("extra", [])]]
            paths += ["miniworld"]
        return select(self.config, *paths)

    def spatial_features(self, extractor: str) -> bool:
        """Whether ``extractor``'s feature files hold the sFID features (rule features_real's ``spatial``)."""
        return extractor in self.spatial_extractors

    def with_image_policy(self, cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
        """A rule's config subset plus the data set's decode_errors and prepare settings (when set), for the rules
        reading its images."""
        for key in ("decode_errors", "prepare"):
            value = self.config["datasets"].get(dataset, {}).get(key)
            if value is not None:
                cfg.setdefault("datasets", {}).setdefault(dataset, {})[key] = value
        return cfg

    def score_config(self, model: str, dataset: str | None = None) -> dict[str, Any]:
        """score_cell's subset; with a data set scored against precomputed statistics (``statistics``), its
        ``statistics`` and ``root`` (the reference batch the statistics are read from)."""
        paths = [f"models.{model}", "scoring", *(f"extractors.{e}" for e in self.gen_extractors)]
        paths += [f"embedders.{e}" for e in self.gen_embedders]
        if dataset is not None and self.config["datasets"].get(dataset, {}).get("statistics", "images") != "images":
            paths += [f"datasets.{dataset}.statistics", f"datasets.{dataset}.root"]
        return select(self.config, *paths)

    def cell_feature_config(self, model: str) -> dict[str, Any]:
        paths = [p for e in self.gen_extractors for p in self.extractor_config_paths(e)]
        paths += [f"embedders.{e}" for e in self.gen_embedders]
        return select(self.config, *paths, *RUNTIME_METRIC, f"models.{model}.prepare")

    def appearance_config(self) -> dict[str, Any]:
        """appearance_3d's subset: the appearance spec and the extractors / embedder it uses."""
        spec = self.config["recon3d"]["appearance"]
        paths = [p for name in spec.get("extractors", []) for p in self.extractor_config_paths(name)]
        if spec.get("embedder"):
            paths += [f"embedders.{spec['embedder']}"]
        return select(self.config, "seed", "recon3d.appearance", *paths, *RUNTIME_METRIC)

    def aggregate_config(self) -> dict[str, Any]:
        """The aggregated 2D tables' subset, with the config keys behind each data set's class-name table (recorded
        in the tables' metadata)."""
        names = [f"datasets.{d}.{k}" for d in self.config["datasets"] for k in ("adapter", "class_names", "statistics")]
        return select(self.config, "scoring", "extractors", "embedders", "sweep", *names)

    # ---- models the pipeline trains, converts or initialises: the checkpoint is a rule's input; official weights
    # are read from the configured local path at run time (so a dry run plans the job without them)
    def generator_inputs(self, cell: Cell | CellPattern) -> dict[str, str]:
        """The manifest, plus the checkpoint when the pipeline trains or converts the model itself."""
        inputs = {"manifest": layout.manifest(cell.dataset)}
        spec = self.config["models"][cell.model]
        if "train" in spec:
            inputs["checkpoint"] = layout.model_checkpoint(cell.model)
        elif "convert" in spec:
            inputs["checkpoint"] = layout.converted_checkpoint(cell.model)
        return inputs

    def generator_checkpoint(self, model: str, inputs: Any) -> str | None:
        """Trained or converted models: the job's input; official weights: the configured path (checked at run
        time)."""
        named = _named(inputs)
        if "checkpoint" in named:
            return named["checkpoint"]
        return self.config["models"][model]["weights"].get("path")

    def model_train_manifest(self, model: str) -> str:
        return layout.manifest(self.config["models"][model]["train"]["dataset"])

    def extractor_inputs(self, name: str) -> dict[str, str]:
        spec = self.config["extractors"][name]
        if "random_init" in spec:
            return {"checkpoint": layout.extractor_random_checkpoint(name)}
        return {"checkpoint": layout.extractor_checkpoint(name)} if "train" in spec else {}

    def extractor_checkpoint(self, name: str, inputs: Any) -> str | None:
        named = _named(inputs)
        if "checkpoint" in named:
            return named["checkpoint"]
        return self.config["extractors"][name].get("weights", {}).get("path")

    def extractor_train_manifest(self, name: str) -> str:
        return layout.manifest(self.config["extractors"][name]["train"]["dataset"])

    def embedder_inputs(self, name: str) -> dict[str, str]:
        spec = self.config["embedders"][name]
        return {"checkpoint": layout.embedder_checkpoint(name)} if "train" in spec else {}

    def embedder_checkpoint(self, name: str, inputs: Any) -> str | None:
        """Trained stand-ins: the job's input; real weights resolve from the config at run time (None)."""
        return _named(inputs).get("checkpoint")

    def embedder_train_manifests(self, name: str) -> dict[str, Any]:
        """The manifest an embedder trains on and the extra data sets' (``extra``) ones."""
        train = self.config["embedders"][name]["train"]
        extra = [layout.manifest(d) for d in train.get("extra", [])]
        return {"manifest": layout.manifest(train["dataset"]), "extra": extra}

    # ---- rule metric_validation: the scoring extractor, plus the text-image embedders for its text-image rows
    def validation_config(self) -> dict[str, Any]:
        return select(self.config, "scoring", f"extractors.{self.score_extractor}",
                      *(f"embedders.{e}" for e in self.gen_embedders))

    def validation_embedder_inputs(self) -> dict[str, str]:
        """The trained stand-in checkpoints of the text-image embedders, keyed ``em_{embedder}``."""
        return {feature_key(EMBEDDER, e): ckpt for e in self.gen_embedders
                if (ckpt := self.embedder_inputs(e).get("checkpoint"))}

    def validation_embedders(self, inputs: Any) -> dict[str, str | None]:
        """{embedder: its checkpoint from the job's inputs, or None (real weights, resolved at run time)}."""
        named = _named(inputs)
        return {e: named.get(feature_key(EMBEDDER, e)) for e in self.gen_embedders}

    # ---- a generated cell
    def cell_shards(self, cell: Cell | CellPattern) -> list[str]:
        return layout.shards(cell, model_shards(self.config, cell.model))

    def cell_feature_outputs(self, cell: Cell | CellPattern = CELL) -> dict[str, str]:
        """rule cell_features' outputs: each extractor's features and each embedder's image embeddings, by
        :func:`feature_key`."""
        out = {feature_key(EXTRACTOR, e): layout.gen_features(e, cell) for e in self.gen_extractors}
        out.update({feature_key(EMBEDDER, e): layout.gen_embeddings(e, cell) for e in self.gen_embedders})
        return out

    def cell_feature_inputs(self) -> dict[str, str]:
        """Checkpoints of the trained / initialised stand-ins among the cell's extractors and embedders."""
        out = {}
        for e in self.gen_extractors:
            if ckpt := self.extractor_inputs(e).get("checkpoint"):
                out[_CHECKPOINT + feature_key(EXTRACTOR, e)] = ckpt
        for e in self.gen_embedders:
            if ckpt := self.embedder_inputs(e).get("checkpoint"):
                out[_CHECKPOINT + feature_key(EMBEDDER, e)] = ckpt
        return out

    def cell_feature_checkpoints(self, inputs: Any) -> dict[str, str | None]:
        """{output key: checkpoint, or None (real weights, resolved from the config at run time)}, from the job's
        inputs (:meth:`cell_feature_inputs`)."""
        out: dict[str, str | None] = {feature_key(EXTRACTOR, e): self.extractor_checkpoint(e, {})
                                      for e in self.gen_extractors}
        out.update({feature_key(EMBEDDER, e): None for e in self.gen_embedders})
        for key, path in _named(inputs).items():
            if key.startswith(_CHECKPOINT):
                out[key[len(_CHECKPOINT) :]] = path
        return out

    def dinov2_inputs(self, cell: Cell) -> dict[str, str]:
        """DINOv2 features of the real set and the cell, when scoring.dinov2 names an extractor."""
        ex = self.config["scoring"].get("dinov2")
        if not ex:
            return {}
        return {"dinov2_real": layout.real_features(ex, cell.dataset), "dinov2_gen": layout.gen_features(ex, cell)}

    def text_image_inputs(self, cell: Cell) -> dict[str, str]:
        """The real and generated embeddings of each text-image embedder the scoring uses (role: clip, pick)."""
        out = {}
        for role, e in self.text_image.items():
            out[f"{role}_real"] = layout.real_embeddings(e, cell.dataset)
            out[f"{role}_gen"] = layout.gen_embeddings(e, cell)
        return out

    # ---- curated data sets (adapter: curated; rules in curate.smk)
    def curated_datasets(self, kind: str | None = None) -> str:
        """Wildcard constraint of the curated data sets (of one source kind)."""
        datasets = self.config["datasets"]
        return _names_regex([d for d in self.curated if kind is None or datasets[d]["source"]["kind"] == kind])

    def curation_embedders(self, dataset: str) -> list[str]:
        spec = self.config["datasets"][dataset]
        filter_embedder = spec["text_filter"]["embedder"]
        return list(dict.fromkeys([filter_embedder, spec.get("checks", {}).get("embedder", filter_embedder)]))

    def curation_config(self, dataset: str) -> dict[str, Any]:
        embedders = [f"embedders.{e}" for e in self.curation_embedders(dataset)]
        return select(self.config, "seed", f"datasets.{dataset}", "miniworld", *embedders, *RUNTIME_METRIC)

    def curation_folder(self, dataset: str) -> str:
        """The img2dataset folder the curation reads: the configured one, or the one a rule makes."""
        src = self.config["datasets"][dataset]["source"]
        return src["folder"] if src["kind"] == "img2dataset" else layout.curate_file(dataset, "source")

    def curation_source(self, dataset: str) -> list[str]:
        """The img2dataset folder when a rule makes it (mini-world, download); an existing folder is read as is."""
        kind = self.config["datasets"][dataset]["source"]["kind"]
        return [] if kind == "img2dataset" else [self.curation_folder(dataset)]

    def curation_embedder_inputs(self, dataset: str, stage: str) -> dict[str, str]:
        """The trained stand-in checkpoint of the embedder a curation stage (text_filter, checks) uses; real CLIP
        weights resolve from local files."""
        spec = self.config["datasets"][dataset]
        name = spec.get(stage, {}).get("embedder", spec["text_filter"]["embedder"])
        ckpt = self.embedder_inputs(name).get("checkpoint")
        return {"embedder": ckpt} if ckpt else {}

    def curation_eval_sets(self, dataset: str) -> dict[str, str]:
        """Evaluation sets whose images must not leak into the curated set: name -> manifest."""
        spec = self.config["datasets"][dataset]
        return {d: layout.manifest(d) for d in spec.get("checks", {}).get("near_duplicates", {}).get("against", [])}

    def curation_decisions(self, dataset: str) -> list[str]:
        """The reviewers' decision files (relative to the working directory, like every other input)."""
        return list(self.config["datasets"][dataset].get("review", {}).get("decisions", []))

    def curation_targets(self) -> list[str]:
        out = []
        for d in self.curated:
            out += [layout.table(f"curation_{d}_{t}") for t in ("classes", "reasons", "agreement", "catch")]
            out += [layout.curate_file(d, f"datasheet.{e}") for e in ("md", "html")]
            out += [layout.curate_file(d, "review_queue.parquet")]
            out += [layout.figure(f"curation_coverage_{d}", e) for e in ("pdf", "png")]
        return out

    # ---- the 2D track's tables and figures
    def metric_tables(self, per_class: bool = False) -> list[str]:
        return [layout.metric_table(c, per_class) for c in self.cells]

    def sample_grids(self) -> list[str]:
        return [layout.grid(c) for c in self.cells]

    def figure_files(self) -> list[str]:
        return [layout.figure(name, ext) for name in self.config["figures"] for ext in ("pdf", "png")]

    def figure_inputs(self, fig: Any) -> dict[str, Any]:
        """A registered figure's inputs (figures.smk): its tables, the significance marks, the cells' sample grids,
        the cells' shards and the data sets' manifests (figures showing generated and real images)."""
        if not fig.needs_images:
            return fig.inputs(grids=self.sample_grids() if fig.needs_grids else [])
        shards = [s for c in self.cells for s in self.cell_shards(c)]
        return fig.inputs(grids=self.sample_grids() if fig.needs_grids else [], shards=shards,
                          manifests=[layout.manifest(d) for d in self.stat_datasets])

    def figure_params(self, fig: Any) -> dict[str, Any]:
        """A registered figure's params (figures.smk): its name, the CI level it states, the cells of its grids, the
        cell of each shard and the data set of each manifest, its options (figure_options.<name> over the
        registry's defaults)."""
        cell_paths = [c.path for c in self.cells] if fig.needs_grids else []
        shard_cells = [c.path for c in self.cells for _ in self.cell_shards(c)] if fig.needs_images else []
        return fig.params(confidence=self.config["scoring"]["bootstrap"]["confidence"], cells=cell_paths,
                          shard_cells=shard_cells, datasets=self.stat_datasets if fig.needs_images else [],
                          options=(self.config.get("figure_options") or {}).get(fig.name))

    def table_exports(self) -> list[str]:
        return [layout.table(f"gen2d_{name}", ext) for name in ("sweep", "best") for ext in ("md", "tex", "html")]

    # ---- the 3D track
    def recon3d_cells(self, dataset: str) -> list[Cell3D]:
        """A 3D data set's cells: one per reconstructor of the 3D track."""
        return [Cell3D(dataset, m) for m in self.config["recon3d"]["models"]]

    def recon3d_tables(self) -> list[str]:
        r3 = self.config.get("recon3d")
        if not r3:
            return []
        return [layout.recon3d_metrics(c) for d in r3["datasets"] for c in self.recon3d_cells(d)]

    def reconstructor_inputs(self, cell: Cell3D) -> dict[str, str]:
        """reconstruct_3d's inputs: the data set's manifest, plus the trained weights when the pipeline trains the
        reconstructor (its entry's ``train:``; rule train_reconstructor)."""
        inputs = {"manifest": layout.manifest3d(cell.dataset)}
        if "train" in self.config["reconstructors"][cell.recon]:
            inputs["weights"] = layout.reconstructor_weights(cell.recon)
        return inputs

    def trained_reconstructors(self) -> list[str]:
        """The reconstructors of the 3D track the pipeline trains (wildcard constraint of train_reconstructor)."""
        spec = self.config.get("reconstructors") or {}
        models = (self.config.get("recon3d") or {}).get("models", [])
        return [m for m in models if "train" in spec.get(m, {})]

    def trained_reconstructors_regex(self) -> str:
        return _names_regex(self.trained_reconstructors())

    def recon3d_manifests(self) -> list[str]:
        return [layout.manifest3d(d) for d in self.config.get("recon3d", {}).get("datasets", [])]

    def appearance_datasets(self) -> list[str]:
        return (self.config.get("recon3d") or {}).get("appearance", {}).get("datasets", [])

    def appearance_tables(self) -> list[str]:
        return [
            layout.appearance3d(c, sets)
            for d in self.appearance_datasets()
            for c in self.recon3d_cells(d)
            for sets in (False, True)
        ]

    def appearance_inputs(self, cell: Cell3D) -> dict[str, str]:
        """The manifest, the corrected protocol's scores (alignment), the reconstructions, and the checkpoints of the
        shared extractors (by :func:`feature_key`) and the embedder (``embedder``) the appearance metrics use."""
        spec = self.config["recon3d"]["appearance"]
        out = {
            "manifest": layout.manifest3d(cell.dataset),
            "scores": layout.recon3d_metrics(cell),
            "recon": layout.reconstructions(cell),
        }
        for name in spec.get("extractors", []):
            if ckpt := self.extractor_inputs(name).get("checkpoint"):
                out[feature_key(EXTRACTOR, name)] = ckpt
        if spec.get("embedder") and (ckpt := self.embedder_inputs(spec["embedder"]).get("checkpoint")):
            out["embedder"] = ckpt
        return out

    def recon3d_targets(self) -> list[str]:
        if not self.config.get("recon3d"):
            return []
        names = ("recon3d_bars", "recon3d_protocols", "recon3d_grid")
        figs = [layout.figure(n, e) for n in names for e in ("pdf", "png")]
        exports = [layout.table("recon3d_summary", e) for e in ("md", "tex", "html")]
        return [layout.table("recon3d_summary"), *exports, *figs]

    # ---- the toy Diff2to3's tables (diff2to3.smk; config/diff2to3.yaml adds the section)
    def diff2to3_vae_runs(self, ext: str = "parquet") -> list[str]:
        spec = self.config.get("diff2to3", {})
        if "vae" not in spec:
            return []
        return [layout.diff2to3_vae_run(src, seed, ext) for src in spec["vae"].get("sources", DIFF2TO3_SOURCES)
                for seed in spec.get("seeds", [0, 1, 2])]

    def diff2to3_vae_config(self) -> dict[str, Any]:
        return select(self.config, "diff2to3.vae")

    def diff2to3_ablation_runs(self, ext: str = "parquet") -> list[str]:
        spec = self.config.get("diff2to3", {})
        if "ablation" not in spec:
            return []
        exps = spec["ablation"].get("experiments", list(DIFF2TO3_EXPERIMENTS))
        return [layout.diff2to3_ablation_run(e, seed, ext) for e in exps for seed in spec.get("seeds", [0, 1, 2])]

    def diff2to3_ablation_config(self) -> dict[str, Any]:
        return select(self.config, "diff2to3.ablation")

    def diff2to3_targets(self) -> list[str]:
        """The Diff2to3 tables the config asks for (not part of ``all``: `make diff2to3-vae` / `make
        diff2to3-ablation` request them)."""
        out = [layout.table("diff2to3_vae", e) for e in ("parquet", "csv")] if self.diff2to3_vae_runs() else []
        if self.diff2to3_ablation_runs():
            out += [layout.table("diff2to3_ablation", e) for e in ("parquet", "csv")]
        return out

    # ---- the protocol delta (protocol_delta.smk)
    def protocol_delta_parts(self) -> list[str]:
        parts = [layout.protocol_delta_2d()] if self.cells else []
        r3 = self.config.get("recon3d")
        return parts + ([layout.protocol_delta_3d(d) for d in r3["datasets"]] if r3 else [])

    @property
    def knobs2d(self) -> dict[str, Knob2D]:
        """The 2D knobs under this config (genbench.protocol2d): requested, applicable, their data sets."""
        if not hasattr(self, "_knobs2d"):
            self._knobs2d = plan(self.config, self.stat_datasets)
        return self._knobs2d

    def protocol_delta_2d_knobs(self) -> dict[str, dict[str, Any]]:
        """rule protocol_delta_2d's params.knobs: each knob's settings, data sets and reasons, as plain values."""
        return {name: {"from_setting": k.from_setting, "to_setting": k.to_setting, "datasets": list(k.datasets),
                       "not_applicable": k.reasons(), "to_by_dataset": dict(k.to_by_dataset)}
                for name, k in self.knobs2d.items()}

    def protocol_delta_2d_files(self) -> dict[str, Any]:
        """Every file rule protocol_delta_2d reads, by role: the scoring features of the real sets and cells, and
        for each evaluated knob the extra features or embeddings it needs (its own jobs: protocol_features_real,
        protocol_features_gen, protocol_embed_prompts)."""
        ex, knobs = self.score_extractor, self.knobs2d
        files: dict[str, Any] = {"real": {d: layout.real_features(ex, d) for d in self.stat_datasets},
                                 "gen": {c.path: layout.gen_features(ex, c) for c in self.cells}}
        if (k := knobs["resize_mode"]).evaluated:
            files["resize_mode"] = {
                "real": {d: layout.protocol_real_features(k.knob, ex, d) for d in k.datasets},
                "gen": {c.path: layout.protocol_gen_features(k.knob, ex, c) for c in self.cells
                        if c.dataset in k.datasets}}
        if (k := knobs["real_preparation"]).evaluated:
            files["real_preparation"] = {"real": {d: layout.protocol_real_features(k.knob, ex, d)
                                                  for d in k.datasets}}
        if (k := knobs["prompt_names"]).evaluated:
            files["prompt_names"] = {
                role: {"embedder": e,
                       "real": {d: layout.real_embeddings(e, d) for d in k.datasets},
                       "gen": {c.path: layout.gen_embeddings(e, c) for c in self.cells if c.dataset in k.datasets},
                       "anchor": {d: layout.protocol_prompt_embeddings(e, d) for d in k.datasets}}
                for role, e in self.text_image.items()}
        return files

    def protocol_delta_2d_inputs(self) -> list[str]:
        """The paths of :meth:`protocol_delta_2d_files`, each once."""
        out: list[str] = []

        def walk(v: Any) -> None:
            if isinstance(v, dict):
                for key, x in v.items():
                    if key != "embedder":
                        walk(x)
            else:
                out.append(v)

        walk(self.protocol_delta_2d_files())
        return list(dict.fromkeys(out))

    def protocol_features_config(self, knob: str, extractor: str, dataset: str | None = None,
                                 model: str | None = None) -> dict[str, Any]:
        """A knob's features job's config subset: the extractor with the anchor's setting of the knob (and the
        data set's image policy, or the model's preparation of its generated images)."""
        cfg = variant_config(self.config, knob, extractor, dataset)
        if model is not None:
            cfg.update(select(self.config, f"models.{model}.prepare"))
        return cfg

    def protocol_embed_config(self, embedder: str, dataset: str) -> dict[str, Any]:
        """protocol_embed_prompts' subset: the embedder, the data set (its table and template) and the anchor's
        class-name table."""
        cfg = select(self.config, f"embedders.{embedder}", f"datasets.{dataset}", *RUNTIME_METRIC)
        cfg["protocol_delta"] = {"anchor": {"class_names": anchor(self.config)["class_names"]}}
        return cfg

    def protocol_delta_targets(self) -> list[str]:
        if not self.protocol_delta_parts():
            return []
        return [
            layout.table("protocol_delta"),
            layout.table("protocol_delta", "html"),
            *[layout.figure("protocol_delta", e) for e in ("pdf", "png", "csv")],
        ]

    # ---- statistics across the sweep (statistics.smk)
    def cell_dicts(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.cells]

    def stats_inputs(self, text_image: bool = False) -> dict[str, list[str]]:
        """Every cell's and real set's scoring features (and, with ``text_image``, each role's embeddings)."""
        out = {
            "gen": [layout.gen_features(self.score_extractor, c) for c in self.cells],
            "real": [layout.real_features(self.score_extractor, d) for d in self.stat_datasets],
        }
        if text_image:
            for role, e in self.text_image.items():
                out[f"{role}_real"] = [layout.real_embeddings(e, d) for d in self.stat_datasets]
                out[f"{role}_gen"] = [layout.gen_embeddings(e, c) for c in self.cells]
        return out

    def statistics_targets(self) -> list[str]:
        tables = ["gen2d_pairwise", "gen2d_selection_stability"]
        out = [layout.table(t, e) for t in tables for e in ("parquet", "html")]
        figures = ("selection_stability", "metric_correlation")
        out += [layout.figure(n, e) for n in figures for e in ("pdf", "png", "csv")]
        if self.config.get("recon3d"):
            out += [layout.table("recon3d_pairwise", e) for e in ("parquet", "html")]
        if self.validation_datasets:
            validation = ("metric_validation", "metric_noise_floor")
            out += [layout.table(t, e) for t in validation for e in ("parquet", "html")]
        return out

    # ---- everything (rule all)
    def all_targets(self) -> list[str]:
        manifests = [layout.manifest(d) for d in self.config["datasets"]]
        manifests += [layout.manifest3d(d) for d in self.config.get("datasets3d", {})]
        return [
            *manifests,
            layout.table("gen2d_metrics"),
            layout.table("gen2d_per_class"),
            *self.table_exports(),
            *self.figure_files(),
            *self.sample_grids(),
            *self.recon3d_targets(),
            *self.curation_targets(),
            *self.protocol_delta_targets(),
            *self.statistics_targets(),
        ]
