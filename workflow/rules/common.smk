# Config validation, the sweep's cells, and the input functions shared by the rules.
import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)  # workflow/, the Snakefile's folder, holds genbench

from genbench import layout  # noqa: E402
from genbench.config import (  # noqa: E402
    ConfigError,
    cells,
    config_hash,
    model_batch_size,
    model_shards,
    select,
    validate_config,
)
from genbench.catalog import GENERATORS, RECONSTRUCTORS  # noqa: E402
from genbench.layout import CELL, CELL3D, Cell, Cell3D  # noqa: E402
from genbench.plots.registry import FIGURES  # noqa: E402

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

CELLS = cells(config)
SCORE_EXTRACTOR = config["scoring"]["extractor"]
TEXT_IMAGE = config["scoring"].get("text_image", {})  # role (clip, pick) -> embedder


wildcard_constraints:
    **layout.WILDCARDS,


def dataset_config(dataset):
    return select(config, "seed", f"datasets.{dataset}", "miniworld")


def dataset3d_config(dataset):
    return select(config, "seed", f"datasets3d.{dataset}")


# the parts of `runtime` a job's results depend on, as its params: device for every torch stage, precision only for
# generation (feature extraction stays fp32 unless its own entry says otherwise); never threads, which only change
# speed: changing them must not rerun every job
RUNTIME_GEN = ("runtime.device", "runtime.precision")
RUNTIME_METRIC = ("runtime.device",)


def model_config(model):
    return select(config, "seed", f"models.{model}", *RUNTIME_GEN)


def extractor_config(name):
    spec = config["extractors"][name]
    paths = [f"extractors.{name}", *RUNTIME_METRIC]
    if "train" in spec:
        paths += [f"datasets.{spec['train']['dataset']}", "miniworld"]
    return select(config, *paths)


def with_image_policy(cfg, dataset):
    """A rule's config subset plus the data set's decode_errors and prepare settings (when set), for the rules
    reading its images."""
    for key in ("decode_errors", "prepare"):
        value = config["datasets"].get(dataset, {}).get(key)
        if value is not None:
            cfg.setdefault("datasets", {}).setdefault(dataset, {})[key] = value
    return cfg


FEATURE_THREADS = config.get("runtime", {}).get("threads", 1)


def score_config(model):
    paths = [f"models.{model}", "scoring", f"extractors.{SCORE_EXTRACTOR}"]
    if config["scoring"].get("dinov2"):
        paths.append(f"extractors.{config['scoring']['dinov2']}")
    paths += [f"embedders.{e}" for e in dict.fromkeys(TEXT_IMAGE.values())]
    return select(config, *paths)


def embedder_config(name):
    spec = config["embedders"][name]
    paths = [f"embedders.{name}", *RUNTIME_METRIC]
    if "train" in spec:
        paths += [f"datasets.{d}" for d in [spec["train"]["dataset"], *spec["train"].get("extra", [])]]
        paths += ["miniworld"]
    return select(config, *paths)


def embedder_inputs(name):
    spec = config["embedders"][name]
    return {"checkpoint": layout.embedder_checkpoint(name)} if "train" in spec else {}


def embedder_checkpoint(name, input):
    return input.checkpoint if "checkpoint" in input.keys() else None


def dinov2_inputs(wildcards):
    """DINOv2 features of the real set and the cell, when scoring.dinov2 names an extractor."""
    ex = config["scoring"].get("dinov2")
    if not ex:
        return {}
    cell = Cell.from_wildcards(wildcards)
    return {
        "dinov2_real": layout.real_features(ex, cell.dataset),
        "dinov2_gen": layout.gen_features(ex, cell),
    }


def text_image_inputs(wildcards):
    """The real and generated embeddings of each text-image embedder the scoring uses (role: clip, pick)."""
    cell = Cell.from_wildcards(wildcards)
    out = {}
    for role, e in TEXT_IMAGE.items():
        out[f"{role}_real"] = layout.real_embeddings(e, cell.dataset)
        out[f"{role}_gen"] = layout.gen_embeddings(e, cell)
    return out


# ---- features of a generated cell (cell_features in features.smk): the scoring extractor, DINOv2 and the text-image
# embedders, each by name
GEN_EXTRACTORS = list(
    dict.fromkeys([SCORE_EXTRACTOR] + ([config["scoring"]["dinov2"]] if config["scoring"].get("dinov2") else []))
)
GEN_EMBEDDERS = list(dict.fromkeys(TEXT_IMAGE.values()))


def cell_feature_outputs():
    out = {f"ex_{e}": layout.gen_features(e, CELL) for e in GEN_EXTRACTORS}
    out.update({f"em_{e}": layout.gen_embeddings(e, CELL) for e in GEN_EMBEDDERS})
    return out


def cell_feature_inputs(wildcards):
    """Checkpoints of the trained / initialised stand-ins among the cell's extractors and embedders."""
    out = {}
    for e in GEN_EXTRACTORS:
        if extractor_inputs(e):
            out[f"ckpt_ex_{e}"] = extractor_inputs(e)["checkpoint"]
    for e in GEN_EMBEDDERS:
        if embedder_inputs(e):
            out[f"ckpt_em_{e}"] = embedder_inputs(e)["checkpoint"]
    return out


def cell_feature_checkpoints(wildcards, input):
    """{ex_name / em_name: checkpoint or None (real weights, resolved from the config at run time)}."""
    out = {f"ex_{e}": extractor_checkpoint(e, {}) for e in GEN_EXTRACTORS}
    out.update({f"em_{e}": None for e in GEN_EMBEDDERS})
    for key in input.keys():
        if key.startswith("ckpt_"):
            out[key[len("ckpt_") :]] = input[key]
    return out


def cell_feature_config(wildcards):
    paths = [p for e in GEN_EXTRACTORS for p in extractor_config_paths(e)]
    paths += [f"embedders.{e}" for e in GEN_EMBEDDERS]
    return select(config, *paths, *RUNTIME_METRIC, f"models.{wildcards.model}.prepare")


def class_name_paths():
    """The config keys behind each data set's class-name table (recorded in the aggregated tables' metadata)."""
    return [f"datasets.{d}.{k}" for d in config["datasets"] for k in ("adapter", "class_names")]


# ---- curated data sets (adapter: curated; rules in curate.smk)
def _names_regex(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def curated_datasets(kind=None):
    """Regex of the curated data sets (of one source kind)."""
    return _names_regex(
        [
            d
            for d, s in config["datasets"].items()
            if s["adapter"] == "curated" and (kind is None or s["source"]["kind"] == kind)
        ]
    )


PREPARED_DATASETS = _names_regex([d for d, s in config["datasets"].items() if s["adapter"] != "curated"])
CURATED = [d for d, s in config["datasets"].items() if s["adapter"] == "curated"]


def curation_embedders(dataset):
    spec = config["datasets"][dataset]
    names = [spec["text_filter"]["embedder"], spec.get("checks", {}).get("embedder", spec["text_filter"]["embedder"])]
    return list(dict.fromkeys(names))


def curation_config(dataset):
    spec = config["datasets"][dataset]
    paths = ["seed", f"datasets.{dataset}", "miniworld"] + [f"embedders.{e}" for e in curation_embedders(dataset)]
    return select(config, *paths, *RUNTIME_METRIC)


def curation_folder(dataset):
    src = config["datasets"][dataset]["source"]
    return src["folder"] if src["kind"] == "img2dataset" else layout.curate_file(dataset, "source")


def curation_source(wildcards):
    """The img2dataset folder when a rule makes it (mini-world, download); an existing folder is read as is."""
    kind = config["datasets"][wildcards.dataset]["source"]["kind"]
    return [] if kind == "img2dataset" else [curation_folder(wildcards.dataset)]


def curation_embedder_inputs(dataset, stage):
    """The trained stand-in checkpoint of the embedder a curation stage (text_filter, checks) uses; real CLIP
    weights resolve from local files."""
    spec = config["datasets"][dataset]
    name = spec.get(stage, {}).get("embedder", spec["text_filter"]["embedder"])
    ckpt = embedder_inputs(name).get("checkpoint")
    return {"embedder": ckpt} if ckpt else {}


def curation_eval_sets(dataset):
    """Evaluation sets whose images must not leak into the curated set: name -> manifest."""
    against = config["datasets"][dataset].get("checks", {}).get("near_duplicates", {}).get("against", [])
    return {d: layout.manifest(d) for d in against}


def curation_decisions(dataset):
    """The reviewers' decision files (relative to the working directory, like every other input)."""
    return list(config["datasets"][dataset].get("review", {}).get("decisions", []))


def curation_targets():
    out = []
    for d in CURATED:
        out += [layout.table(f"curation_{d}_{t}") for t in ("classes", "reasons", "agreement", "catch")]
        out += [layout.curate_file(d, f"datasheet.{e}") for e in ("md", "html")]
        out += [layout.curate_file(d, "review_queue.parquet")]
        out += [layout.figure(f"curation_coverage_{d}", e) for e in ("pdf", "png")]
    return out


def cell_shards(wildcards):
    return layout.shards(Cell.from_wildcards(wildcards), model_shards(config, wildcards.model))


def generator_inputs(wildcards):
    """The manifest, plus the checkpoint when the pipeline trains the model itself."""
    inputs = {"manifest": layout.manifest(wildcards.dataset)}
    spec = config["models"][wildcards.model]
    if "train" in spec:
        inputs["checkpoint"] = layout.model_checkpoint(wildcards.model)
    elif "convert" in spec:
        inputs["checkpoint"] = layout.converted_checkpoint(wildcards.model)
    return inputs


def generator_checkpoint(wildcards, input):
    """Trained or converted models: the rule's input; official weights: the configured local path (checked at run
    time)."""
    if "checkpoint" in input.keys():
        return input.checkpoint
    return config["models"][wildcards.model]["weights"].get("path")


# ---- the rules that run one catalog entry per job (genbench.catalog) take its env and GPUs from the entry:
# generate (a model's generator family) and reconstruct_3d (a reconstructor's kind)
PLUGINS = {"models": (GENERATORS, "family"), "reconstructors": (RECONSTRUCTORS, "kind")}


def plugin(section, name):
    """The catalog entry behind the config entry ``section.name``."""
    registry, field = PLUGINS[section]
    return registry.plugin(config[section][name][field])


def plugin_env(section, name):
    """The conda environment (used with --use-conda) of a job running ``section.name``: workflow/envs/{env}.yaml."""
    return f"../envs/{plugin(section, name).env}.yaml"


def extractor_inputs(name):
    spec = config["extractors"][name]
    if "random_init" in spec:
        return {"checkpoint": layout.extractor_random_checkpoint(name)}
    return {"checkpoint": layout.extractor_checkpoint(name)} if "train" in spec else {}


def extractor_checkpoint(name, input):
    if "checkpoint" in input.keys():
        return input.checkpoint
    return config["extractors"][name].get("weights", {}).get("path")


def train_manifest_model(wildcards):
    return layout.manifest(config["models"][wildcards.model]["train"]["dataset"])


def train_manifest_extractor(wildcards):
    return layout.manifest(config["extractors"][wildcards.extractor]["train"]["dataset"])


def cell_wildcards(wildcards):
    return Cell.from_wildcards(wildcards).as_dict()


def metric_tables(per_class=False):
    return [layout.metric_table(c, per_class) for c in CELLS]


def sample_grids():
    return [layout.grid(c) for c in CELLS]


def figure_files():
    return [layout.figure(name, ext) for name in config["figures"] for ext in ("pdf", "png")]


def figure_input(fig):
    """A registered figure's inputs (figures.smk): its table, the significance marks, the cells' sample grids."""
    return fig.inputs(grids=sample_grids() if fig.needs_grids else [])


def figure_params(fig):
    """A registered figure's params (figures.smk): its name, the CI level it states, the cells of its grids."""
    cells = [c.path for c in CELLS] if fig.needs_grids else []
    return fig.params(confidence=config["scoring"]["bootstrap"]["confidence"], cells=cells)


def table_exports():
    return [layout.table(f"gen2d_{name}", ext) for name in ("sweep", "best") for ext in ("md", "tex", "html")]


def recon3d_tables():
    r3 = config.get("recon3d")
    if not r3:
        return []
    return [layout.recon3d_metrics(Cell3D(d, m)) for d in r3["datasets"] for m in r3["models"]]


def appearance_datasets():
    return (config.get("recon3d") or {}).get("appearance", {}).get("datasets", [])


def appearance_tables():
    r3 = config.get("recon3d") or {}
    return [
        layout.appearance3d(Cell3D(d, m), sets)
        for d in appearance_datasets()
        for m in r3["models"]
        for sets in (False, True)
    ]


def appearance_config_paths():
    spec = config["recon3d"]["appearance"]
    paths = [p for name in spec.get("extractors", []) for p in extractor_config_paths(name)]
    if spec.get("embedder"):
        paths += [f"embedders.{spec['embedder']}"]
    return paths


def extractor_config_paths(name):
    spec = config["extractors"][name]
    return [f"extractors.{name}"] + ([f"datasets.{spec['train']['dataset']}", "miniworld"] if "train" in spec else [])


def appearance_inputs(wildcards):
    """The manifest, the corrected protocol's scores (alignment), the reconstructions, and the checkpoints of the
    shared extractors / embedder the appearance metrics use (ex_{name}, embedder)."""
    spec = config["recon3d"]["appearance"]
    cell = Cell3D.from_wildcards(wildcards)
    out = {
        "manifest": layout.manifest3d(cell.dataset),
        "scores": layout.recon3d_metrics(cell),
        "recon": layout.reconstructions(cell),
    }
    for name in spec.get("extractors", []):
        ckpt = extractor_inputs(name).get("checkpoint")
        if ckpt:
            out[f"ex_{name}"] = ckpt
    if spec.get("embedder"):
        ckpt = embedder_inputs(spec["embedder"]).get("checkpoint")
        if ckpt:
            out["embedder"] = ckpt
    return out


def recon3d_targets():
    if not config.get("recon3d"):
        return []
    figs = [layout.figure(n, e) for n in ("recon3d_bars", "recon3d_protocols", "recon3d_grid") for e in ("pdf", "png")]
    exports = [layout.table("recon3d_summary", e) for e in ("md", "tex", "html")]
    return [layout.table("recon3d_summary"), *exports, *figs]


def protocol_delta_parts():
    parts = [layout.protocol_delta_2d()] if CELLS else []
    r3 = config.get("recon3d")
    return parts + ([layout.protocol_delta_3d(d) for d in r3["datasets"]] if r3 else [])


def protocol_delta_targets():
    if not protocol_delta_parts():
        return []
    return [
        layout.table("protocol_delta"),
        layout.table("protocol_delta", "html"),
        *[layout.figure("protocol_delta", e) for e in ("pdf", "png", "csv")],
    ]


# ---- statistics across the sweep (statistics.smk)
STAT_DATASETS = sorted({c.dataset for c in CELLS})


def cell_dicts():
    return [c.as_dict() for c in CELLS]


def stats_inputs(text_image=False):
    def inputs(wildcards):
        out = {
            "gen": [layout.gen_features(SCORE_EXTRACTOR, c) for c in CELLS],
            "real": [layout.real_features(SCORE_EXTRACTOR, d) for d in STAT_DATASETS],
        }
        if text_image:
            for role, e in TEXT_IMAGE.items():
                out[f"{role}_real"] = [layout.real_embeddings(e, d) for d in STAT_DATASETS]
                out[f"{role}_gen"] = [layout.gen_embeddings(e, c) for c in CELLS]
        return out

    return inputs


def statistics_targets():
    tables = ["gen2d_pairwise", "gen2d_selection_stability"]
    out = [layout.table(t, e) for t in tables for e in ("parquet", "html")]
    out += [layout.figure(n, e) for n in ("selection_stability", "metric_correlation") for e in ("pdf", "png", "csv")]
    if config.get("recon3d"):
        out += [layout.table("recon3d_pairwise", e) for e in ("parquet", "html")]
    if VALIDATION_DATASETS:
        out += [layout.table(t, e) for t in ("metric_validation", "metric_noise_floor") for e in ("parquet", "html")]
    return out


# known-answer validation needs ground truth: the mini-world's real validation split
VALIDATION_DATASETS = [
    d for d, spec in config["datasets"].items() if spec.get("adapter") == "miniworld" and spec.get("split") == "val"
]


def all_targets():
    manifests = [layout.manifest(d) for d in config["datasets"]]
    manifests += [layout.manifest3d(d) for d in config.get("datasets3d", {})]
    return [
        *manifests,
        layout.table("gen2d_metrics"),
        layout.table("gen2d_per_class"),
        *table_exports(),
        *figure_files(),
        *sample_grids(),
        *recon3d_targets(),
        *curation_targets(),
        *protocol_delta_targets(),
        *statistics_targets(),
    ]  # protocol_delta.smk, statistics.smk
