"""genbench.wiring: what each rule reads and the workflow's targets, on the shipped configs (tiny, default,
paper) loaded as the Snakefile loads them. The dry-run tests plan the same jobs through Snakemake; these reach the
logic directly."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest

from genbench import catalog, layout
from genbench.config import cells, load_config
from genbench.layout import CELL, Cell, Cell3D
from genbench.wiring import (
    EMBEDDER,
    EXTRACTOR,
    Wiring,
    feature_key,
    parse_feature_key,
    per_cell,
    per_cell3d,
    plugin_env,
)

CONFIGS = {"tiny": "tests/config/tiny.yaml", "default": "config/config.yaml", "paper": "config/paper.yaml"}


@pytest.fixture(scope="module")
def configs(root):
    return {name: load_config(root / path) for name, path in CONFIGS.items()}


@pytest.fixture(scope="module")
def wirings(configs):
    return {name: Wiring(cfg) for name, cfg in configs.items()}


def _wildcards(cell: Cell) -> SimpleNamespace:
    """A job's wildcards as Snakemake gives them: text."""
    return SimpleNamespace(model=cell.model, dataset=cell.dataset, steps=str(cell.steps),
                           cfg=layout.fmt_cfg(cell.cfg), seed=str(cell.seed))


# ---- targets -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_all_targets_hold_every_manifest_grid_and_table_once(wirings, configs, name):
    w, cfg = wirings[name], configs[name]
    targets = w.all_targets()
    assert len(targets) == len(set(targets))
    assert w.cells == cells(cfg) and w.cells
    assert {layout.manifest(d) for d in cfg["datasets"]} <= set(targets)
    assert {layout.manifest3d(d) for d in cfg["datasets3d"]} <= set(targets)
    assert {layout.grid(c) for c in w.cells} <= set(targets)
    assert {layout.figure(f, e) for f in cfg["figures"] for e in ("pdf", "png")} <= set(targets)
    assert {layout.table("gen2d_metrics"), layout.table("gen2d_per_class"), layout.table("recon3d_summary"),
            layout.table("protocol_delta"), layout.table("gen2d_pairwise")} <= set(targets)
    assert all(t.startswith(layout.RESULTS + "/") for t in targets)


def test_the_default_targets_are_the_mini_worlds(wirings):
    w = wirings["default"]
    assert len(w.cells) == 29 and len(w.sample_grids()) == 29
    assert len(w.metric_tables()) == 29 and w.metric_tables(per_class=True)[0].startswith("results/metrics/gen2d_per")
    assert w.curation_targets() == [
        *(f"results/tables/curation_mw_relaionet_{t}.parquet" for t in ("classes", "reasons", "agreement", "catch")),
        "results/curate/mw_relaionet/datasheet.md", "results/curate/mw_relaionet/datasheet.html",
        "results/curate/mw_relaionet/review_queue.parquet",
        "results/figures/curation_coverage_mw_relaionet.pdf", "results/figures/curation_coverage_mw_relaionet.png",
    ]
    # known-answer validation: the mini-world's validation split exists here, not in the paper config
    assert w.validation_datasets == ["mw_val"]
    assert "results/tables/metric_validation.parquet" in w.statistics_targets()
    assert "results/tables/recon3d_pairwise.html" in w.statistics_targets()
    # 3D: two data sets x five reconstructors (three baselines, the trained diff2to3_mini, the ceiling); appearance on
    # the object data set only, two tables each
    assert len(w.recon3d_tables()) == 10
    assert w.appearance_tables()[:2] == ["results/metrics/appearance3d/mw_solids/ellipsoid.parquet",
                                         "results/metrics/appearance3d/mw_solids/ellipsoid.sets.parquet"]
    assert len(w.appearance_tables()) == 10
    assert w.protocol_delta_parts() == ["results/protocol_delta/2d.parquet",
                                        "results/protocol_delta/3d/mw_phantoms.parquet",
                                        "results/protocol_delta/3d/mw_solids.parquet"]


def test_the_paper_targets(wirings):
    w = wirings["paper"]
    assert len(w.cells) == 432
    assert w.validation_datasets == []
    assert not any("metric_validation" in t for t in w.statistics_targets())
    assert len(w.recon3d_tables()) == 10 * 15  # data sets x reconstructors (Table 2's five baselines included)
    assert len(w.appearance_tables()) == 4 * 15 * 2
    assert w.curated == ["relaionet_curated"]
    assert len(w.curation_targets()) == 9  # 4 tables, 2 datasheets, the review queue, 2 coverage figures
    assert w.appearance_datasets() == ["gso", "animal3d", "objaverse", "toys4k"]


def test_targets_follow_the_config(configs):
    """Without a 3D track, curated sets or a validation split the targets shrink accordingly."""
    cfg = copy.deepcopy(configs["tiny"])
    del cfg["recon3d"]
    cfg["datasets"] = {d: s for d, s in cfg["datasets"].items() if s["adapter"] != "curated" and d != "mw_val"}
    w = Wiring(cfg)
    assert w.recon3d_targets() == [] and w.recon3d_tables() == [] and w.appearance_tables() == []
    assert w.curation_targets() == [] and w.curated == []
    assert w.protocol_delta_parts() == ["results/protocol_delta/2d.parquet"]
    assert not any("recon3d" in t or "metric_validation" in t for t in w.statistics_targets())
    targets = w.all_targets()
    assert not any("recon3d" in t or "curat" in t for t in targets)


# ---- config subsets --------------------------------------------------------------------------------------------
def test_model_config_selects_the_model_seed_and_the_runtime_results_depend_on(configs):
    cfg = copy.deepcopy(configs["default"])
    cfg["runtime"] = {"device": "cpu", "precision": "bf16", "threads": 4}
    w = Wiring(cfg)
    sub = w.model_config("sit_mini")
    assert sub == {"seed": cfg["seed"], "models": {"sit_mini": cfg["models"]["sit_mini"]},
                   "runtime": {"device": "cpu", "precision": "bf16"}}  # never threads: they only change speed
    assert sub["models"]["sit_mini"] is not cfg["models"]["sit_mini"]  # a copy: a rule cannot change the config
    # feature extraction: the device only; a trained extractor brings its training set (after the runtime)
    ex = w.extractor_config("mw_classifier")
    assert list(ex) == ["extractors", "runtime", "datasets", "miniworld"]
    assert ex["runtime"] == {"device": "cpu"} and list(ex["datasets"]) == ["mw_train"]
    assert list(w.extractor_config("mw_dinov2")) == ["extractors", "runtime"]
    emb = w.embedder_config("mw_clip")
    assert list(emb["datasets"]) == ["mw_train", "mw_web"]  # its training set and the extra one
    assert w.with_image_policy({}, "mw_val") == {}  # no decode_errors / prepare set: nothing added
    cfg["datasets"]["mw_val"]["decode_errors"] = "skip"
    assert Wiring(cfg).with_image_policy({"x": 1}, "mw_val") == {"x": 1, "datasets": {"mw_val": {"decode_errors":
                                                                                                  "skip"}}}


@pytest.mark.parametrize("name", CONFIGS)
def test_scoring_and_cell_feature_configs_hold_every_model_they_load(wirings, configs, name):
    w, cfg = wirings[name], configs[name]
    model = w.cells[0].model
    score = w.score_config(model)
    assert set(score["extractors"]) == {cfg["scoring"]["extractor"], cfg["scoring"]["dinov2"]}
    assert set(score["embedders"]) == set(cfg["scoring"]["text_image"].values())
    assert score["scoring"] == cfg["scoring"] and list(score["models"]) == [model]
    feats = w.cell_feature_config(model)
    assert set(feats["extractors"]) == set(w.gen_extractors) and set(feats["embedders"]) == set(w.gen_embedders)
    assert "seed" not in feats and set(feats) <= {"extractors", "embedders", "datasets", "miniworld", "runtime",
                                                  "models"}


def test_aggregate_config_records_each_data_sets_class_names(wirings):
    sub = wirings["paper"].aggregate_config()
    assert set(sub) == {"scoring", "extractors", "embedders", "sweep", "datasets"}
    assert all(set(spec) <= {"adapter", "class_names"} and "adapter" in spec for spec in sub["datasets"].values())


# ---- checkpoints: trained, converted, initialised, official ---------------------------------------------------------
def test_generator_inputs_for_trained_converted_and_official_models(wirings, configs):
    trained = Cell("sit_mini", "mw_val", 4, 1.5, 0)
    assert wirings["default"].generator_inputs(trained) == {
        "manifest": "results/data/mw_val/manifest.parquet", "checkpoint": "results/models/sit_mini/model.safetensors"}
    converted = Cell("meanflow", "imagenet_val", 1, 1.0, 0)
    assert wirings["paper"].generator_inputs(converted) == {
        "manifest": "results/data/imagenet_val/manifest.parquet",
        "checkpoint": "results/models/meanflow/converted.safetensors"}
    official = Cell("sit", "imagenet_val", 250, 1.5, 0)
    assert wirings["paper"].generator_inputs(official) == {"manifest": "results/data/imagenet_val/manifest.parquet"}
    # the checkpoint param: the job's input when there is one, else the configured weights (read at run time)
    assert wirings["paper"].generator_checkpoint("sit", {"manifest": "m"}) == configs["paper"]["models"]["sit"][
        "weights"]["path"]
    assert wirings["paper"].generator_checkpoint("meanflow", {"checkpoint": "c.safetensors"}) == "c.safetensors"
    assert wirings["default"].model_train_manifest("sit_mini") == "results/data/mw_train/manifest.parquet"


def test_extractor_and_embedder_checkpoints(wirings, configs):
    w = wirings["default"]
    assert w.extractor_inputs("mw_classifier") == {"checkpoint": "results/extractors/mw_classifier/model.safetensors"}
    assert w.extractor_inputs("mw_dinov2") == {"checkpoint": "results/extractors/mw_dinov2/random/model.safetensors"}
    assert w.embedder_inputs("mw_clip") == {"checkpoint": "results/embedders/mw_clip/model.safetensors"}
    assert w.extractor_train_manifest("mw_classifier") == "results/data/mw_train/manifest.parquet"
    assert w.embedder_train_manifests("mw_clip") == {"manifest": "results/data/mw_train/manifest.parquet",
                                                     "extra": ["results/data/mw_web/manifest.parquet"]}
    p = wirings["paper"]
    assert p.extractor_inputs("inception") == {} and p.embedder_inputs("clip_b16") == {}
    assert p.extractor_checkpoint("inception", {}) == configs["paper"]["extractors"]["inception"]["weights"]["path"]
    assert p.embedder_checkpoint("clip_b16", {}) is None  # real CLIP weights resolve from the config at run time
    assert w.embedder_checkpoint("mw_clip", {"checkpoint": "e.safetensors"}) == "e.safetensors"


# ---- the cell features' keys: built and read back by one pair of functions ------------------------------------------
@pytest.mark.parametrize("kind", [EXTRACTOR, EMBEDDER])
@pytest.mark.parametrize("name", ["mw_classifier", "dinov2_l14", "clip", "a_b_c", "x.y-z"])
def test_feature_keys_read_back(kind, name):
    key = feature_key(kind, name)
    assert parse_feature_key(key) == (kind, name)


@pytest.mark.parametrize("key", ["xx_name", "ex", "ex_", "ckpt_ex_a", "EX_a", "_ex_a"])
def test_a_key_that_is_no_feature_key_is_refused(key):
    with pytest.raises(ValueError, match="unknown output"):
        parse_feature_key(key)


def test_feature_key_refuses_an_unknown_kind():
    with pytest.raises(ValueError):
        feature_key("xx", "name")
    with pytest.raises(ValueError):
        feature_key(EXTRACTOR, "")


@pytest.mark.parametrize("name", CONFIGS)
def test_cell_feature_outputs_inputs_and_checkpoints_agree(wirings, name):
    w = wirings[name]
    outputs = w.cell_feature_outputs(CELL)
    parsed = [parse_feature_key(k) for k in outputs]
    assert parsed == [(EXTRACTOR, e) for e in w.gen_extractors] + [(EMBEDDER, e) for e in w.gen_embedders]
    for (kind, n), path in zip(parsed, outputs.values(), strict=True):
        maker = layout.gen_features if kind == EXTRACTOR else layout.gen_embeddings
        assert path == maker(n, CELL)
    cell = w.cells[0]
    assert w.cell_feature_outputs(cell) == {k: v.replace(CELL.path, cell.path) for k, v in outputs.items()}
    # the checkpoints param has one entry per output, under the same key
    checkpoints = w.cell_feature_checkpoints(w.cell_feature_inputs())
    assert list(checkpoints) == list(outputs)


def test_cell_feature_checkpoints_of_stand_ins_and_of_real_weights(wirings, configs):
    w = wirings["default"]
    assert w.gen_extractors == ["mw_classifier", "mw_dinov2"] and w.gen_embedders == ["mw_clip"]  # clip = pick
    inputs = w.cell_feature_inputs()
    assert inputs == {"ckpt_ex_mw_classifier": "results/extractors/mw_classifier/model.safetensors",
                      "ckpt_ex_mw_dinov2": "results/extractors/mw_dinov2/random/model.safetensors",
                      "ckpt_em_mw_clip": "results/embedders/mw_clip/model.safetensors"}
    job_inputs = {"shards": ["s0.npz"], **{k: f"/abs/{v}" for k, v in inputs.items()}}  # as the job sees them
    assert w.cell_feature_checkpoints(job_inputs) == {
        "ex_mw_classifier": "/abs/results/extractors/mw_classifier/model.safetensors",
        "ex_mw_dinov2": "/abs/results/extractors/mw_dinov2/random/model.safetensors",
        "em_mw_clip": "/abs/results/embedders/mw_clip/model.safetensors"}
    p = wirings["paper"]
    assert p.cell_feature_inputs() == {}
    ex = configs["paper"]["extractors"]
    assert p.cell_feature_checkpoints({"shards": []}) == {
        "ex_inception": ex["inception"]["weights"]["path"],
        "ex_dinov2_l14": ex["dinov2_l14"]["weights"].get("path"),  # a hub id: resolved at run time
        "em_clip_b16": None, "em_pickscore": None}
    assert p.cell_feature_checkpoints({})["ex_inception"].endswith(".pth")


def test_the_stage_reads_the_keys_the_wiring_writes():
    """stage_cell_features parses its outputs' keys with the wiring's parser (one protocol, two sides)."""
    import inspect

    from genbench import stages

    src = inspect.getsource(stages.stage_cell_features)
    assert "parse_feature_key(key)" in src and '"ex"' not in src and '"em"' not in src
    assert "feature_key(EXTRACTOR, name)" in inspect.getsource(stages.stage_appearance_3d)


# ---- scoring and statistics inputs ------------------------------------------------------------------------------
def test_scoring_inputs_of_a_cell(wirings):
    w, cell = wirings["paper"], Cell("sd35", "relaionet", 28, 4.5, 0)
    assert w.dinov2_inputs(cell) == {"dinov2_real": "results/features/dinov2_l14/real/relaionet.npz",
                                     "dinov2_gen": f"results/features/dinov2_l14/gen/{cell.path}.npz"}
    assert w.text_image_inputs(cell) == {
        "clip_real": "results/embeddings/clip_b16/real/relaionet.npz",
        "clip_gen": f"results/embeddings/clip_b16/gen/{cell.path}.npz",
        "pick_real": "results/embeddings/pickscore/real/relaionet.npz",
        "pick_gen": f"results/embeddings/pickscore/gen/{cell.path}.npz"}
    assert w.cell_shards(cell) == [layout.shard(cell, i) for i in range(w.config["models"]["sd35"].get(
        "shards", w.config["generation"]["shards"]))]


def test_scoring_without_dinov2_or_text_image_metrics(configs):
    cfg = copy.deepcopy(configs["tiny"])
    del cfg["scoring"]["dinov2"]
    cfg["scoring"]["text_image"] = {}
    w = Wiring(cfg)
    cell = w.cells[0]
    assert w.dinov2_inputs(cell) == {} and w.text_image_inputs(cell) == {}
    assert list(w.cell_feature_outputs(CELL)) == ["ex_mw_classifier"]
    assert set(w.stats_inputs(text_image=True)) == {"gen", "real"}


def test_stats_inputs(wirings):
    w = wirings["tiny"]
    plain, ti = w.stats_inputs(), w.stats_inputs(text_image=True)
    assert set(plain) == {"gen", "real"} and len(plain["gen"]) == len(w.cells) == 13
    assert plain["real"] == [layout.real_features("mw_classifier", d) for d in w.stat_datasets]
    assert set(ti) == {"gen", "real", "clip_real", "clip_gen", "pick_real", "pick_gen"}
    assert w.stat_datasets == sorted({c.dataset for c in w.cells})
    assert w.cell_dicts()[0] == w.cells[0].as_dict()


# ---- curated data sets ------------------------------------------------------------------------------------------
def test_the_mini_world_curated_set_reads_its_made_source_trained_clip_and_decisions(wirings):
    w = wirings["default"]
    assert w.curation_source("mw_relaionet") == ["results/curate/mw_relaionet/source"]
    assert w.curation_folder("mw_relaionet") == "results/curate/mw_relaionet/source"
    for stage in ("text_filter", "checks"):
        assert w.curation_embedder_inputs("mw_relaionet", stage) == {
            "embedder": "results/embedders/mw_clip/model.safetensors"}
    assert w.curation_eval_sets("mw_relaionet") == {"mw_val": "results/data/mw_val/manifest.parquet"}
    assert w.curation_decisions("mw_relaionet") == ["config/curation/mw_relaionet/reviewer_a.jsonl",
                                                    "config/curation/mw_relaionet/reviewer_b.jsonl"]
    sub = w.curation_config("mw_relaionet")
    assert list(sub) == ["seed", "datasets", "miniworld", "embedders"] and list(sub["embedders"]) == ["mw_clip"]


def test_the_paper_curated_set_downloads_and_uses_real_clip(wirings, configs):
    w = wirings["paper"]
    assert w.curation_source("relaionet_curated") == ["results/curate/relaionet_curated/source"]
    assert w.curation_embedders("relaionet_curated") == ["clip_b32"]
    assert w.curation_embedder_inputs("relaionet_curated", "text_filter") == {}  # real weights: no rule input
    assert list(w.curation_eval_sets("relaionet_curated")) == ["imagenet_val", "imagenetv2"]
    assert w.curation_decisions("relaionet_curated") == []
    cfg = copy.deepcopy(configs["paper"])
    cfg["datasets"]["relaionet_curated"]["source"] = {"kind": "img2dataset", "folder": "/data/laion"}
    cfg["datasets"]["relaionet_curated"]["checks"]["embedder"] = "clip_b16"
    w2 = Wiring(cfg)
    assert w2.curation_source("relaionet_curated") == []  # an existing folder is read as is
    assert w2.curation_folder("relaionet_curated") == "/data/laion"
    assert w2.curation_embedders("relaionet_curated") == ["clip_b32", "clip_b16"]


def test_dataset_constraints_split_curated_and_prepared_sets(wirings):
    def matches(regex, name):
        return re.fullmatch(regex, name) is not None

    p, t = wirings["paper"], wirings["tiny"]
    assert matches(p.curated_datasets("download"), "relaionet_curated")
    assert not matches(p.curated_datasets("miniworld"), "relaionet_curated")
    assert matches(p.curated_datasets(), "relaionet_curated") and not matches(p.curated_datasets(), "relaionet")
    assert matches(p.prepared_datasets, "imagenet_val") and not matches(p.prepared_datasets, "relaionet_curated")
    assert not matches(t.curated_datasets("download"), "") and not matches(t.curated_datasets("download"), "x")
    assert matches(t.curated_datasets("miniworld"), "mw_relaionet")


# ---- 3D --------------------------------------------------------------------------------------------------------
def test_appearance_inputs_and_config(wirings):
    cell = Cell3D("mw_solids", "extrude")
    d = wirings["default"].appearance_inputs(cell)
    assert d == {"manifest": "results/data3d/mw_solids/manifest.parquet",
                 "scores": "results/metrics/recon3d/mw_solids/extrude.parquet",
                 "recon": "results/recon3d/mw_solids/extrude/reconstructions.parquet",
                 "ex_mw_classifier": "results/extractors/mw_classifier/model.safetensors",
                 "ex_mw_dinov2": "results/extractors/mw_dinov2/random/model.safetensors",
                 "embedder": "results/embedders/mw_clip/model.safetensors"}
    assert set(wirings["paper"].appearance_inputs(Cell3D("gso", "trellis"))) == {"manifest", "scores", "recon"}
    sub = wirings["default"].appearance_config()
    assert list(sub["recon3d"]) == ["appearance"] and set(sub["extractors"]) == {"mw_classifier", "mw_dinov2"}
    assert list(sub["embedders"]) == ["mw_clip"]
    assert wirings["default"].recon3d_cells("mw_solids")[1] == Cell3D("mw_solids", "extrude")
    assert wirings["tiny"].recon3d_manifests() == ["results/data3d/mw_phantoms/manifest.parquet",
                                                   "results/data3d/mw_solids/manifest.parquet"]


# ---- catalog entries and the Snakemake adapters -------------------------------------------------------------
def test_plugin_env_and_gpus_come_from_the_catalog(wirings):
    w = wirings["paper"]
    assert w.plugin_env("models", "sd35") == f"../envs/{catalog.GENERATORS.plugin('sd35').env}.yaml"
    assert w.plugin("reconstructors", "trellis").gpus >= 1
    assert w.plugin("reconstructors", "ellipsoid").gpus == 0
    assert plugin_env({"models": {"x": {"family": "rae"}}}, "models", "x") == "../envs/rae.yaml"
    with pytest.raises(KeyError):
        plugin_env({"models": {}}, "models", "x")


def test_per_cell_turns_a_method_of_a_cell_into_a_function_of_wildcards(wirings):
    w = wirings["tiny"]
    cell = next((c for c in w.cells if c.cfg % 1), w.cells[0])  # a fractional guidance scale, if any
    assert per_cell(w.generator_inputs)(_wildcards(cell)) == w.generator_inputs(cell)
    assert per_cell(Cell.as_dict)(_wildcards(cell)) == cell.as_dict()
    wc3 = SimpleNamespace(dataset3d="mw_solids", recon="ceiling")
    assert per_cell3d(lambda c: c)(wc3) == Cell3D("mw_solids", "ceiling")


def test_the_rules_define_no_functions(root):
    """The rules are declarative: the logic they call lives in genbench (here), not in the .smk files."""
    for smk in (root / "workflow/rules").glob("*.smk"):
        assert not re.search(r"^\s*def ", smk.read_text(), re.M), smk.name


def test_the_wiring_imports_no_heavy_module(root):
    """The Snakefile imports it at parse time, in every job."""
    code = ("import sys, genbench.wiring; heavy = {'torch', 'numpy', 'pandas', 'matplotlib'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=root / "workflow", check=True)


def test_a_trained_reconstructor_gets_its_weights_from_the_train_rule(wirings, configs):
    """The default run trains diff2to3_mini (rule train_reconstructor) and reconstruct_3d reads
    the weights as an input; the baselines read only the manifest; tiny (CI) and paper train none."""
    w = wirings["default"]
    assert w.trained_reconstructors() == ["diff2to3_mini"]
    assert re.fullmatch(w.trained_reconstructors_regex(), "diff2to3_mini")
    assert not re.fullmatch(w.trained_reconstructors_regex(), "extrude")
    assert w.reconstructor_inputs(Cell3D("mw_solids", "diff2to3_mini")) == {
        "manifest": "results/data3d/mw_solids/manifest.parquet",
        "weights": "results/models3d/diff2to3_mini/model.safetensors"}
    assert w.reconstructor_inputs(Cell3D("mw_phantoms", "extrude")) == {
        "manifest": "results/data3d/mw_phantoms/manifest.parquet"}
    assert w.plugin_env("reconstructors", "diff2to3_mini") == "../envs/metrics.yaml"  # inference: torch only
    sub = w.reconstructor_config("diff2to3_mini")
    assert set(sub) == {"seed", "reconstructors"} and "train" in sub["reconstructors"]["diff2to3_mini"]
    for name in ("tiny", "paper"):
        assert wirings[name].trained_reconstructors() == []
        assert not re.fullmatch(wirings[name].trained_reconstructors_regex(), "diff2to3_mini")
    # the weights folder is not the generators' (train_generator's outputs): no file matches both rules
    assert not layout.reconstructor_weights("x").startswith(layout.model_dir("x"))


def test_train_is_refused_for_a_kind_the_pipeline_cannot_train(configs):
    from genbench.config import ConfigError, validate_config

    cfg = copy.deepcopy(configs["default"])
    cfg["reconstructors"]["extrude"]["train"] = {"seed": 0}
    with pytest.raises(ConfigError, match=r"reconstructors\.extrude\.train: the pipeline cannot train 'extrude'"):
        validate_config(cfg)
    cfg = copy.deepcopy(configs["default"])
    cfg["reconstructors"]["diff2to3_mini"]["weights"] = {"path": "x"}
    with pytest.raises(ConfigError, match="both train and weights"):
        validate_config(cfg)
