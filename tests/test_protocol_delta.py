"""The protocol-delta table (genbench.metrics.protocol_delta, genbench.recon3d.knobs) on synthetic data."""

import numpy as np
import pandas as pd
import pytest
import trimesh
from scipy.stats import kendalltau

from genbench.metrics.fid import frechet_distance_features
from genbench.metrics.protocol_delta import (
    assemble,
    discordant_pairs,
    frechet_distance_float32,
    frechet_distance_float64,
    item_deltas_3d,
    kendall_tau,
    precision_deltas_2d,
    ranking,
)
from genbench.recon3d.knobs import knob_settings
from genbench.recon3d.protocols import score_legacy


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_tau_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=9), rng.normal(size=9)
    b[3] = b[5]  # a tie: tau-b
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)
    assert kendall_tau(a, a) == pytest.approx(1.0)
    assert kendall_tau(a, -a) == pytest.approx(-1.0)


def test_kendall_tau_undefined_and_mismatched():
    assert np.isnan(kendall_tau([1.0], [2.0]))
    assert np.isnan(kendall_tau([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
    with pytest.raises(ValueError, match="same entries"):
        kendall_tau([1.0, 2.0], [1.0, 2.0, 3.0])


def test_discordant_pairs_and_ranking():
    a, b = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    assert discordant_pairs(a, b) == 1
    n = 4
    assert kendall_tau(a, b) == pytest.approx(1 - 2 * 1 / (n * (n - 1) / 2))
    assert ranking(["w", "x", "y", "z"], a, higher_is_better=True) == "z > y > x > w"
    assert ranking(["w", "x", "y", "z"], a, higher_is_better=False) == "w > x > y > z"


def test_float_precision_fid_routes():
    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(400, 16)), rng.normal(0.3, 1.1, size=(300, 16))
    f64 = frechet_distance_float64(real, gen)
    assert f64 == pytest.approx(frechet_distance_features(real, gen), rel=1e-12)
    f32 = frechet_distance_float32(real, gen)
    assert f32 == pytest.approx(f64, rel=1e-4)
    # large offsets make float32 lose digits that float64 keeps
    real_off, gen_off = real + 1e3, gen + 1e3
    assert frechet_distance_float64(real_off, gen_off) == pytest.approx(f64, rel=1e-8)
    assert abs(frechet_distance_float32(real_off, gen_off) - f64) > 1e3 * abs(f32 - f64)


def test_precision_deltas_paired_ci():
    rng = np.random.default_rng(1)
    real = {"d": rng.normal(size=(200, 8)) + 500.0}
    gen = {"d": {"m1 steps1": rng.normal(size=(150, 8)) + 500.0, "m2 steps1": rng.normal(0.5, 1, (150, 8)) + 500.0}}
    df = precision_deltas_2d(real, gen, 30, 0.9, lambda d, e: np.random.default_rng(7))
    assert list(df["entry"]) == ["m1 steps1", "m2 steps1"]
    assert np.allclose(df["delta"], df["value_to"] - df["value_from"])
    assert (df["ci_low"] <= df["ci_high"]).all()
    assert set(df["metric"]) == {"fid"} and set(df["status"]) == {"ok"}


def _items(values, status=None):
    rows = []
    for (model, item), v in values.items():
        rows.append({"dataset": "d", "model": model, "item_id": item, "status": "ok", "f1": v})
    df = pd.DataFrame(rows)
    if status:
        for key, s in status.items():
            df.loc[(df["model"] == key[0]) & (df["item_id"] == key[1]), "status"] = s
    return df


def test_item_deltas_3d_paired_and_ranking_flip():
    anchor = _items({("a", "i1"): 0.2, ("a", "i2"): 0.4, ("a", "i3"): 0.9, ("b", "i1"): 0.5, ("b", "i2"): 0.5,
                     ("b", "i3"): 0.5})
    # the knob adds 0.3 to every item of a, nothing to b: a overtakes b; item a/i3 failed under the knob
    variant = anchor.assign(f1=np.where(anchor["model"] == "a", anchor["f1"] + 0.3, anchor["f1"]))
    variant.loc[(variant["model"] == "a") & (variant["item_id"] == "i3"), "status"] = "failed"
    df = item_deltas_3d(anchor, variant, "k", "x", "y", {"f1": True}, 50, 0.95,
                        lambda d, m, metric: np.random.default_rng(0))
    a = df[df["entry"] == "a"].iloc[0]
    assert a["n"] == 2 and a["value_from"] == pytest.approx(0.3) and a["delta"] == pytest.approx(0.3)
    assert a["ci_low"] == pytest.approx(0.3) and a["ci_high"] == pytest.approx(0.3)
    table = assemble([df])
    rank = table[table["kind"] == "ranking"].iloc[0]
    assert rank["ranking_from"] == "b > a" and rank["ranking_to"] == "a > b"
    assert rank["discordant_pairs"] == 1 and rank["kendall_tau"] == pytest.approx(-1.0)
    assert list(table["kind"]) == ["delta", "delta", "ranking"]


def _item(tmp_path, mesh):
    mesh.export(tmp_path / "gt.ply")
    return {"_root": str(tmp_path), "gt_mesh": "gt.ply", "gt_legacy": None}


def test_legacy_rotation_search_and_solid_iou(tmp_path):
    gt = trimesh.creation.box(extents=(1.0, 0.5, 0.2))
    item = _item(tmp_path, gt)
    rot = trimesh.transformations.rotation_matrix(np.pi / 2, [0, 0, 1])
    pred = {"kind": "mesh", "mesh": gt.copy().apply_transform(rot)}
    cfg = {"samples": 4000, "emd_points": 128}
    plain = score_legacy(pred, item, cfg, np.random.default_rng(0))
    searched = score_legacy(pred, item, {**cfg, "rotation_starts": 24, "icp_subsample": 1000},
                            np.random.default_rng(0))
    assert searched["chamfer_l1"] < 0.5 * plain["chamfer_l1"]
    assert "point_bin_iou" in plain and "solid_iou" not in plain
    solid = score_legacy({"kind": "mesh", "mesh": gt.copy()}, item, {**cfg, "iou": "solid", "bins": 32},
                         np.random.default_rng(0))
    bins = score_legacy({"kind": "mesh", "mesh": gt.copy()}, item, {**cfg, "bins": 32}, np.random.default_rng(0))
    assert solid["solid_iou"] > 0.9 > bins["point_bin_iou"]
    points = score_legacy({"kind": "points", "points": gt.sample(3000)}, item, {**cfg, "iou": "solid"},
                          np.random.default_rng(0))
    assert np.isnan(points["solid_iou"])
    with pytest.raises(ValueError, match="iou 'voxels'"):
        score_legacy(pred, item, {**cfg, "iou": "voxels"}, np.random.default_rng(0))


def test_knob_settings_switch_one_setting_to_corrected():
    legacy = {"emd_points": 512, "datasets": {"gso": {"max_corr": 0.1}}}
    corrected = {"samples": 20000, "icp_subsample": 1000}
    knobs = knob_settings(legacy, corrected, "gso")
    base = knob_settings(legacy, corrected, "gso")["downsampling"][2]
    assert knobs["icp_threshold"][0] == "ICP max correspondence 0.1"
    assert knobs["icp_threshold"][2]["max_corr"] == 0.2
    assert knobs["sample_count"][2]["samples"] == 20000
    assert knobs["rotation_search"][2]["rotation_starts"] == 24
    assert knobs["iou_kind"][2]["iou"] == "solid"
    for name, (_, _, settings) in knobs.items():
        changed = {k for k in settings if settings[k] != {**base, "downsample_points": True}[k]}
        assert len(changed - {"icp_subsample"}) == 1, name


def test_precision_delta_interval_is_debiased():
    rng = np.random.default_rng(3)
    real = {"d": rng.normal(size=(60, 6)) + 300.0}
    gen = {"d": {"m": rng.normal(0.2, 1, (40, 6)) + 300.0}}
    row = precision_deltas_2d(real, gen, 40, 0.9, lambda d, e: np.random.default_rng(1)).iloc[0]
    assert row["ci_method"].startswith("debiased-percentile, 40 resamples")
    assert (row["ci_low"] <= row["delta"] <= row["ci_high"]) or row["note"].startswith("interval lies")


def test_knob_equal_in_both_protocols_is_not_applicable(tmp_path):
    from genbench.recon3d.knobs import knob_deltas_3d

    score = pd.DataFrame([{"dataset": "d", "model": "m", "item_id": "i", "protocol": "legacy", "status": "skipped",
                           "reason": "empty input"}])
    score.to_parquet(tmp_path / "score.parquet")
    recon = pd.DataFrame([{"dataset": "d", "model": "m", "item_id": "i", "input": "input", "status": "skipped",
                           "reason": "empty input", "kind": None, "prediction": None}])
    recon.to_parquet(tmp_path / "recon.parquet")
    manifest = pd.DataFrame([{"item_id": "i", "status": "skipped", "reason": "empty", "input_path": "x.png"}])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    protocols = {"legacy": {"samples": 2000}, "corrected": {"samples": 2000}}
    df = knob_deltas_3d("d", ["m"], protocols, tmp_path / "manifest.parquet", [tmp_path / "recon.parquet"],
                        [tmp_path / "score.parquet"], 0, 10, 0.9)
    row = df[df["knob"] == "sample_count"].iloc[0]
    assert row["status"] == "not_applicable" and "agree on this knob" in row["reason"]
    assert set(df.loc[df["knob"] != "sample_count", "knob"]) == set()  # no item scored under both settings


def test_report_view_escapes_and_lists_skipped():
    from genbench.metrics.protocol_delta import not_applicable, report_view

    deltas = pd.DataFrame([{"track": "3d", "knob": "k", "from_setting": "a", "to_setting": "<b>", "dataset": "d",
                            "entry": m, "metric": "f1", "value_from": v, "value_to": w, "delta": w - v,
                            "ci_low": w - v, "ci_high": w - v, "n": 3, "higher_is_better": True, "status": "ok",
                            "reason": None} for m, v, w in (("x", 0.1, 0.5), ("y", 0.3, 0.2))])
    table = assemble([deltas, pd.DataFrame([not_applicable("2d", "resize_mode", "a", "b", "no features")])])
    view = report_view(table)
    assert "not evaluated: no features" in set(view["result"])
    assert "τ -1, 1 of 1 pairs flip" in set(view["result"])
    from genbench.tables.export import to_html

    assert "&lt;b&gt;" in to_html(view, "t") and "<b>" not in to_html(view, "t").split("<tbody>")[1]
