"""The 2D protocol knobs beyond statistics precision (genbench.protocol2d; docs/protocol.md): which apply under a
config, the extra jobs the wiring plans for them, the deltas on synthetic features and embeddings, and the resize
and preparation knobs end to end through the production stages on a tiny random-weight TF-FID Inception."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
from streamutil import tiny_config, write_image_set, write_shards

from genbench import layout, stages
from genbench.config import load_config
from genbench.data.classes import ClassTableError, prompts_under_table
from genbench.io import load_npz, read_npz_runtime, save_npz
from genbench.metrics.protocol_delta import (
    align_items,
    feature_deltas_2d,
    frechet_distance_float64,
    prompt_deltas_2d,
)
from genbench.metrics.text_image import clip_score_per_sample
from genbench.protocol2d import plan, variant_config
from genbench.wiring import Wiring

ALL = ["statistics_precision", "resize_mode", "real_preparation", "prompt_names"]


@pytest.fixture(scope="module")
def paper(root):
    return load_config(root / "config/paper.yaml")


# ---- which knobs apply, and the jobs they add ------------------------------------------------------------------
def test_the_mini_world_adds_no_job_and_says_why_each_knob_does_not_apply(root):
    for path in ("tests/config/tiny.yaml", "config/config.yaml"):
        cfg = load_config(root / path)
        cfg["protocol_delta"]["knobs"] = ALL  # even when asked for, nothing applies to the mini-world
        w = Wiring(cfg)
        knobs = w.protocol_delta_2d_knobs()
        assert knobs["statistics_precision"]["datasets"] == w.stat_datasets
        for name in ("resize_mode", "real_preparation", "prompt_names"):
            assert knobs[name]["datasets"] == [] and list(knobs[name]["not_applicable"]) == ["*"], name
        assert "resizes nothing" in knobs["resize_mode"]["not_applicable"]["*"]
        assert "rendered square at miniworld.image_size (16 x 16 px" in knobs["real_preparation"]["not_applicable"]["*"]
        assert "one distinct word per class" in knobs["prompt_names"]["not_applicable"]["*"]
        # the 2D job reads the run's own features only
        assert set(w.protocol_delta_2d_inputs()) == {*w.stats_inputs()["real"], *w.stats_inputs()["gen"]}


def test_the_mini_world_table_measures_precision_and_lists_the_other_knobs(root, tmp_path):
    cfg = load_config(root / "tests/config/tiny.yaml")
    w = Wiring(cfg)
    files = copy.deepcopy(w.protocol_delta_2d_files())
    rng = np.random.default_rng(0)
    for role in ("real", "gen"):
        for key in files[role]:
            p = tmp_path / f"{role}-{len(list(tmp_path.iterdir()))}.npz"
            n = 12
            save_npz(p, item_id=_ids(n), features=rng.normal(size=(n, 4)))
            files[role][key] = str(p)
    stages.stage_protocol_delta_2d(cfg, files, w.protocol_delta_2d_knobs(), tmp_path / "2d.parquet")
    df = pd.read_parquet(tmp_path / "2d.parquet")
    ok = df[df["status"] == "ok"]
    assert set(ok["knob"]) == {"statistics_precision"} and len(ok) == len(w.cells)
    na = df[df["status"] == "not_applicable"].set_index("knob")
    assert sorted(na.index) == ["prompt_names", "real_preparation", "resize_mode"] and set(na["dataset"]) == {"*"}


def test_paper_plans_each_knobs_jobs_and_nothing_unrequested(paper):
    w = Wiring(paper)
    ex, cells = w.score_extractor, w.cells
    inputs = set(w.protocol_delta_2d_inputs())
    for c in cells:
        assert layout.protocol_gen_features("resize_mode", ex, c) in inputs
        for e in w.text_image.values():
            assert layout.gen_embeddings(e, c) in inputs
    for d in w.stat_datasets:
        assert {layout.protocol_real_features("resize_mode", ex, d),
                layout.protocol_real_features("real_preparation", ex, d)} <= inputs
        assert {layout.protocol_prompt_embeddings(e, d) for e in ("clip_b16", "pickscore")} <= inputs
    # each extra path is the output of exactly one protocol rule's pattern (the rules' wildcards)
    patterns = [layout.protocol_real_features("{knob}", "{extractor}", "{dataset}"),
                layout.protocol_gen_features("{knob}", "{extractor}", layout.CELL),
                layout.protocol_prompt_embeddings("{embedder}", "{dataset}")]
    regexes = [re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m[1]}>{layout.WILDCARDS.get(m[1], '[^/]+')})",
                                 re.escape(p))) for p in patterns]
    extra = [p for p in inputs if p.startswith("results/protocol_delta/")]
    assert len(extra) == len(cells) + 2 * len(w.stat_datasets) + 2 * len(w.stat_datasets)
    for p in extra:
        assert sum(bool(r.fullmatch(p)) for r in regexes) == 1, p
    # the variant job's config: the anchor's resize or preparation, everything else as configured
    v = w.protocol_features_config("resize_mode", ex, "imagenet_val")
    assert v["extractors"][ex]["resize"] == "bilinear_antialias" and paper["extractors"][ex].get("resize") is None
    v = w.protocol_features_config("real_preparation", ex, "imagenetv2")
    assert v["datasets"]["imagenetv2"]["prepare"] == {"method": "center_crop", "size": 256}
    assert v["datasets"]["imagenetv2"]["root"] == paper["datasets"]["imagenetv2"]["root"]
    with pytest.raises(ValueError, match="extracts no features"):
        variant_config(paper, "prompt_names", ex, "imagenet_val")
    # unrequested knobs add nothing and say how to ask for them
    cfg = copy.deepcopy(paper)
    cfg["protocol_delta"]["knobs"] = ["statistics_precision", "prompt_names"]
    w2 = Wiring(cfg)
    assert not any("/resize_mode/" in p or "/real_preparation/" in p for p in w2.protocol_delta_2d_inputs())
    assert "not requested: add 'resize_mode'" in w2.protocol_delta_2d_knobs()["resize_mode"]["not_applicable"]["*"]
    # a data set already under the anchor's setting is a not_applicable row of its own
    cfg["protocol_delta"]["knobs"] = ALL
    cfg["datasets"]["imagenetv2"]["class_names"] = "anchor"
    cfg["datasets"]["relaionet"]["prepare"] = {"method": "center_crop", "size": 256}
    k = plan(cfg, Wiring(cfg).stat_datasets)
    assert k["prompt_names"].datasets == ["imagenet_val", "relaionet"]
    assert "already the anchor's table" in k["prompt_names"].not_applicable["imagenetv2"]
    assert k["real_preparation"].datasets == ["imagenet_val", "imagenetv2"]
    assert "already the anchor's (center_crop 256)" in k["real_preparation"].not_applicable["relaionet"]


# ---- the deltas on synthetic inputs ----------------------------------------------------------------------------
def _ids(n, prefix="i"):
    return np.array([f"{prefix}{k}" for k in range(n)])


def test_feature_deltas_pair_by_item_and_match_direct_fids():
    rng = np.random.default_rng(0)
    real_to, gen_to = rng.normal(size=(120, 6)), rng.normal(0.4, 1.0, (90, 6))
    real_from = real_to * 1.1 + 0.2  # the other setting's features of the same items
    order = rng.permutation(120)  # stored in another order, and one item missing (skipped under that setting)
    rf_ids, rf = _ids(120)[order][1:], real_from[order][1:]
    rt_ids = _ids(120)
    g = {"d": {"m steps1": (_ids(90, "g"), gen_to)}}

    def run(n_boot):
        return feature_deltas_2d("real_preparation", "center_crop 256 (anchor)", {"d": "none"}, {"d": (rf_ids, rf)},
                                 {"d": (rt_ids, real_to)}, g, g, n_boot, 0.9, lambda d, e: np.random.default_rng(3))

    df = run(40)
    keep = np.isin(rt_ids, rf_ids)
    row = df.iloc[0]
    assert row["value_to"] == pytest.approx(frechet_distance_float64(real_to[keep], gen_to), rel=1e-12)
    assert row["value_from"] == pytest.approx(frechet_distance_float64(real_from[keep], gen_to), rel=1e-12)
    assert row["delta"] == pytest.approx(row["value_to"] - row["value_from"])
    assert row["ci_low"] < row["delta"] < row["ci_high"] and row["to_setting"] == "none" and row["n"] == 90
    assert "same real and generated items" in row["ci_method"]
    # identical features under both settings: no difference on the value or on any resample
    same = feature_deltas_2d("resize_mode", "a", {}, {"d": (rt_ids, real_to)}, {"d": (rt_ids, real_to)}, g, g, 20,
                             0.9, lambda d, e: np.random.default_rng(1)).iloc[0]
    assert same["delta"] == 0 and same["ci_low"] == 0 and same["ci_high"] == 0
    with pytest.raises(ValueError, match="share no item id"):
        align_items(_ids(3, "a"), _ids(3, "b"), "x")


def test_prompt_deltas_rescore_the_same_images_with_the_anchors_prompts():
    rng = np.random.default_rng(1)
    n, dim = 40, 8
    text_ours, text_anchor = rng.normal(size=(4, dim)), rng.normal(size=(4, dim))
    labels = np.arange(n) % 4
    real = {"item_id": _ids(n), "image_emb": rng.normal(size=(n, dim)), "text_emb": text_ours[labels],
            "logit_scale": np.float64(np.log(50.0))}
    anchor = {"item_id": _ids(n)[::-1], "text_emb": text_anchor[labels][::-1]}  # any order: matched by item id
    gen_ids = _ids(n)[rng.integers(0, n, 25)]
    gen_img = rng.normal(size=(25, dim)) + text_ours[np.array([int(i[1:]) % 4 for i in gen_ids])]
    gen = {"d": {"m": {"item_id": gen_ids, "image_emb": gen_img}}}
    df = prompt_deltas_2d("clip", "clip_b16", "anchor", {"d": "disambiguated"}, {"d": real}, {"d": anchor}, gen, 50,
                          0.95, lambda d, e: np.random.default_rng(0))
    lab = np.array([int(i[1:]) % 4 for i in gen_ids])
    row = df.iloc[0]
    assert row["metric"] == "clip_score" and row["n"] == 25
    assert row["value_to"] == pytest.approx(max(clip_score_per_sample(gen_img, text_ours[lab]).mean(), 0))
    assert row["value_from"] == pytest.approx(max(clip_score_per_sample(gen_img, text_anchor[lab]).mean(), 0))
    assert row["value_to"] > row["value_from"]  # the images were drawn near the configured table's texts
    assert row["ci_low"] <= row["delta"] <= row["ci_high"]
    pick = prompt_deltas_2d("pick", "pickscore", "anchor", {}, {"d": real}, {"d": {**anchor, "text_emb":
                            text_ours[labels][::-1]}}, gen, 10, 0.95, lambda d, e: np.random.default_rng(0)).iloc[0]
    assert pick["metric"] == "pick_score" and pick["delta"] == 0 and pick["ci_high"] == 0


def test_prompts_under_another_class_name_table():
    manifest = pd.DataFrame({"item_id": ["a", "b", "c"], "label_id": [2, 517, 0],
                             "prompt": ["a photo of a great white shark", "a photo of a crane", "a photo of a tench"]})
    spec = {"adapter": "imagenet_val", "class_names": "wordnet"}
    assert prompts_under_table(manifest, spec, "anchor", "iv") == ["a photo of a great_white_shark",
                                                                   "a photo of a crane", "a photo of a tench"]
    bad = manifest.assign(prompt=["a photo of a great white shark", "a crane", "a photo of a tench"])
    with pytest.raises(ClassTableError, match="item b's prompt 'a crane' is not the template"):
        prompts_under_table(bad, spec, "anchor", "iv")
    with pytest.raises(ClassTableError, match="without an ImageNet label"):
        prompts_under_table(manifest.assign(label_id=[2, -1, 0]), spec, "anchor", "iv")


# ---- resize mode and real preparation through the production stages (tiny TF-FID Inception) ------------------
@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    from genbench.features.inception import FIDInception

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "pt_inception-tiny.pth"
    state = {k: v for k, v in FIDInception().state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, path)
    return path


def test_resize_and_preparation_knobs_end_to_end_on_tiny_inception(tmp_path, inception):
    cfg = tiny_config()
    cfg["extractors"]["inception"] = {"kind": "inception_tf", "batch_size": 8, "weights": {"path": str(inception)}}
    cfg["scoring"]["extractor"] = "inception"
    cfg["datasets"]["mw_val"]["prepare"] = {"method": "none"}
    cfg["protocol_delta"] = {"bootstrap": 5, "knobs": ALL,
                             "anchor": {"prepare": {"method": "center_crop", "size": 24}}}
    cfg["runtime"] = {"device": "cpu"}
    # two real images of mixed, non-square sizes (a crop is not a squash) and two generated ones: Inception at 299 px
    # costs ~1 s per image on a loaded core
    manifest = write_image_set(tmp_path / "real", n=2)
    shards = write_shards(tmp_path / "cell", counts=(2,), size=16)
    cell = layout.Cell("sit_tiny", "mw_val", 1, 1.0, 0)
    out = {k: tmp_path / f"{k}.npz" for k in ("real", "gen", "real_resize", "gen_resize", "real_prep")}
    stages.stage_features_real("inception", cfg, inception, manifest, "mw_val", out["real"])
    stages.stage_cell_features(cfg, {"ex_inception": inception}, shards, cell.path, {"ex_inception": out["gen"]},
                               model="sit_tiny")
    stages.stage_features_real("inception", variant_config(cfg, "resize_mode", "inception", "mw_val"), inception,
                               manifest, "mw_val", out["real_resize"])
    stages.stage_protocol_features_gen("resize_mode", "inception",
                                       variant_config(cfg, "resize_mode", "inception", None), inception, shards,
                                       cell.path, out["gen_resize"], model="sit_tiny")
    stages.stage_features_real("inception", variant_config(cfg, "real_preparation", "inception", "mw_val"),
                               inception, manifest, "mw_val", out["real_prep"])
    f = {k: load_npz(p)["features"] for k, p in out.items()}
    assert not np.allclose(f["real"], f["real_resize"]) and not np.allclose(f["gen"], f["gen_resize"])
    assert not np.allclose(f["real"], f["real_prep"])
    assert "bilinear_antialias" in str(read_npz_runtime(out["gen_resize"])["preprocessing"])
    assert "center_crop 24" in read_npz_runtime(out["real_prep"])["prepare"]
    # the 2D job reads these files as the rule gives them; its Fréchet distances at 2048-d cost seconds each on a
    # loaded core, so it reads the first 16 feature dimensions here (the arithmetic is tested above)
    for k, p in out.items():
        z = load_npz(p)
        save_npz(p, item_id=z["item_id"], features=z["features"][:, :16])
        f[k] = f[k][:, :16]
    # the 2D job on these files: the knobs' plan comes from the wiring of this config (mw_val made a photo set)
    knobs = {"statistics_precision": {"from_setting": "float32", "to_setting": "float64", "datasets": ["mw_val"],
                                      "not_applicable": {}, "to_by_dataset": {}},
             "resize_mode": {"from_setting": "bilinear_antialias (anchor)", "to_setting": "clean",
                             "datasets": ["mw_val"], "not_applicable": {}, "to_by_dataset": {}},
             "real_preparation": {"from_setting": "center_crop 24 (anchor)", "to_setting": "x",
                                  "datasets": ["mw_val"], "not_applicable": {}, "to_by_dataset": {"mw_val": "none"}},
             "prompt_names": {"from_setting": "anchor", "to_setting": "y", "datasets": [],
                              "not_applicable": {"*": "no photo set"}, "to_by_dataset": {}}}
    files = {"real": {"mw_val": str(out["real"])}, "gen": {cell.path: str(out["gen"])},
             "resize_mode": {"real": {"mw_val": str(out["real_resize"])}, "gen": {cell.path: str(out["gen_resize"])}},
             "real_preparation": {"real": {"mw_val": str(out["real_prep"])}}}
    stages.stage_protocol_delta_2d(cfg, files, knobs, tmp_path / "2d.parquet")
    df = pd.read_parquet(tmp_path / "2d.parquet").set_index("knob")
    assert list(df.index) == ALL and (df["status"].iloc[:3] == "ok").all()
    assert df.loc["prompt_names", "status"] == "not_applicable" and df.loc["prompt_names", "reason"] == "no photo set"
    r = df.loc["resize_mode"]
    assert r["value_to"] == pytest.approx(frechet_distance_float64(f["real"], f["gen"]), rel=1e-9)
    assert r["value_from"] == pytest.approx(frechet_distance_float64(f["real_resize"], f["gen_resize"]), rel=1e-9)
    p = df.loc["real_preparation"]
    assert p["value_from"] == pytest.approx(frechet_distance_float64(f["real_prep"], f["gen"]), rel=1e-9)
    assert p["to_setting"] == "none" and p["value_to"] == pytest.approx(r["value_to"])


def test_prompt_names_end_to_end_on_a_tiny_clip(tmp_path):
    """rule protocol_embed_prompts' stage on an ImageNet-style set (template prompts, WordNet names) with the tiny
    open_clip model, then the 2D job: items whose name the anchor's table writes differently (2 'great white shark'
    -> 'great_white_shark', 3 'tiger shark') move, the others (0 'tench', 1 'goldfish') do not."""
    from streamutil import clip_checkpoint

    from genbench.data.manifest import read_manifest, write_manifest

    cfg = tiny_config()
    ckpt = clip_checkpoint(tmp_path / "clip.safetensors", cfg)
    manifest = write_image_set(tmp_path / "real", n=8, sizes=((16, 16),))
    m = read_manifest(manifest)
    names = {0: "tench", 1: "goldfish", 2: "great white shark", 3: "tiger shark"}
    prompts = [f"a photo of a {names[int(label)]}" for label in m["label_id"]]
    write_manifest(m.assign(prompt=prompts), manifest, "photos")
    cfg["datasets"]["photos"] = {"adapter": "imagenet_val", "root": "unused", "class_names": "wordnet"}
    cfg["protocol_delta"] = {"bootstrap": 10, "anchor": {"class_names": "anchor"}}
    stages.stage_embed_real("mw_clip", cfg, ckpt, manifest, "photos", tmp_path / "real.npz")
    stages.stage_protocol_embed_prompts("mw_clip", cfg, ckpt, manifest, "photos", tmp_path / "anchor.npz")
    anchor = load_npz(tmp_path / "anchor.npz")
    assert anchor["prompt"][2] == "a photo of a great_white_shark" and anchor["prompt"][0] == "a photo of a tench"
    real = load_npz(tmp_path / "real.npz")
    np.testing.assert_allclose(anchor["text_emb"][[0, 1]], real["text_emb"][[0, 1]], rtol=1e-6, atol=1e-9)
    assert not np.allclose(anchor["text_emb"][2], real["text_emb"][2])
    pick = np.arange(8)[::-1]  # a "generated" set: the real image embeddings of the same items, reordered
    save_npz(tmp_path / "gen.npz", item_id=real["item_id"][pick], image_emb=real["image_emb"][pick])
    cell = layout.Cell("sit_tiny", "photos", 1, 1.0, 0)
    files = {"real": {}, "gen": {}, "prompt_names": {
        role: {"embedder": "mw_clip", "real": {"photos": str(tmp_path / "real.npz")},
               "gen": {cell.path: str(tmp_path / "gen.npz")}, "anchor": {"photos": str(tmp_path / "anchor.npz")}}
        for role in ("clip", "pick")}}
    none = {"from_setting": "a", "to_setting": "b", "datasets": [], "not_applicable": {}, "to_by_dataset": {}}
    knobs = {"statistics_precision": none, "resize_mode": none, "real_preparation": none,
             "prompt_names": {"from_setting": "anchor", "to_setting": "x", "datasets": ["photos"],
                              "not_applicable": {}, "to_by_dataset": {"photos": "wordnet"}}}
    stages.stage_protocol_delta_2d(cfg, files, knobs, tmp_path / "2d.parquet")
    df = pd.read_parquet(tmp_path / "2d.parquet").set_index("metric")
    assert list(df.index) == ["clip_score", "pick_score"] and (df["to_setting"] == "wordnet").all()
    from genbench.metrics.text_image import text_image_scores

    per_to = text_image_scores(real, load_npz(tmp_path / "gen.npz"), "clip", ("r", "g"))[1]
    assert df.loc["clip_score", "value_to"] == pytest.approx(max(per_to.mean(), 0.0))
    assert df.loc["clip_score", "delta"] != 0 and df.loc["clip_score", "n"] == 8
