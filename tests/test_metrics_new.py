"""Precision/recall, density/coverage, Vendi, CMMD and FD-infinity against their reference implementations, and
the intervals every metric row carries (issue 19, items 2 and 5).

Tolerances: P/R/D/C are fractions of samples, so they must equal prdc 0.2 and torch-fidelity 0.4.0's PRC exactly
(1e-12 absolute; the features are continuous, so the references' < versus <= never differs); Vendi 1e-9 relative
to vendi-score 0.0.3 (score_dual and the n x n score_X); CMMD 1e-9 relative to clip-mmd 0.0.2's port of the
CMMD paper's `mmd` on the same unit-length float64 embeddings. FD-infinity has no PyPI reference: it is checked on
known answers (Gaussians with a known Frechet distance).
"""

import numpy as np
import pytest
import torch

from genbench.layout import Cell
from genbench.metrics.bootstrap import percentile_interval, resamples
from genbench.metrics.fid import MetricInputError, frechet_distance_features
from genbench.metrics.score2d import score_cell


def _features(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


@pytest.mark.parametrize("n,m,d,k", [(300, 250, 16, 3), (120, 200, 8, 5), (60, 60, 64, 3)])
def test_prdc_matches_prdc_and_torch_fidelity(n, m, d, k):
    from prdc import compute_prdc
    from torch_fidelity.metric_prc import prc_features_to_metric

    from genbench.metrics.prdc import prdc

    real, gen = _features(0, n, d), _features(1, m, d, shift=0.2, scale=1.3)
    ours = prdc(real, gen, k)
    ref = compute_prdc(real, gen, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(ref[key]), abs=1e-12), key
    # torch-fidelity: input1 is the generated set, input2 the real one
    tf = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), prc_neighborhood=k,
                                prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    assert ours["precision"] == pytest.approx(tf["precision"], abs=1e-6)  # torch-fidelity returns float32 means
    assert ours["recall"] == pytest.approx(tf["recall"], abs=1e-6)


def test_prdc_blocks_do_not_change_the_result(monkeypatch):
    from genbench.metrics import prdc as mod

    real, gen = _features(2, 150, 8), _features(3, 130, 8, shift=0.3)
    whole = mod.prdc(real, gen, 3)
    monkeypatch.setattr(mod, "BLOCK_ENTRIES", 1000)  # blocks of a few rows
    assert mod.prdc(real, gen, 3) == whole


def test_prdc_needs_more_samples_than_k():
    from genbench.metrics.prdc import prdc

    with pytest.raises(MetricInputError, match="k=3 need more than 3 samples, got 3"):
        prdc(_features(0, 3, 4), _features(1, 10, 4), 3)


@pytest.mark.parametrize("n,d", [(200, 16), (20, 64)])  # n > d and n < d
def test_vendi_matches_vendi_score(n, d):
    from vendi_score import vendi

    from genbench.metrics.fid import unit_rows
    from genbench.metrics.vendi import vendi_score, vendi_weighted

    x = _features(4, n, d, shift=0.5)
    ours = vendi_score(x)
    assert ours == pytest.approx(vendi.score_dual(x), rel=1e-9)
    assert ours == pytest.approx(vendi.score_X(x), rel=1e-9)
    # known answers: n copies of one vector -> 1; orthogonal directions -> their number
    assert vendi_score(np.tile(x[:1], (10, 1))) == pytest.approx(1.0, rel=1e-9)
    assert vendi_score(np.eye(5) * 3.0) == pytest.approx(5.0, rel=1e-9)
    # a bootstrap replicate by repeat counts equals the score of the resampled rows
    idx = np.random.default_rng(0).integers(0, n, n)
    assert vendi_weighted(unit_rows(x), np.bincount(idx, minlength=n)) == pytest.approx(vendi_score(x[idx]), rel=1e-9)


def test_cmmd_matches_the_papers_mmd():
    from clip_mmd.calculation import mmd

    from genbench.metrics.cmmd import cmmd, cmmd_bootstrap

    real, gen = _features(5, 220, 32), _features(6, 180, 32, shift=0.1)
    unit = [torch.from_numpy(a / np.linalg.norm(a, axis=1, keepdims=True)) for a in (real, gen)]
    assert cmmd(real, gen) == pytest.approx(mmd(*unit).item(), rel=1e-9)
    assert cmmd(real, real) == pytest.approx(0.0, abs=1e-9)
    # every bootstrap replicate (weighted in one pass) equals CMMD of the explicitly resampled sets
    idx = resamples(np.random.default_rng(1), (220, 180), 4)
    full, reps = cmmd_bootstrap(real, gen, idx)
    assert full == pytest.approx(cmmd(real, gen), rel=1e-9)  # summation order differs (a difference of sums)
    for rep, (ir, ig) in zip(reps, idx, strict=True):
        assert rep == pytest.approx(cmmd(real[ir], gen[ig]), rel=1e-9)


def test_fd_infinity_removes_the_finite_n_bias():
    """Same Gaussian on both sides (true FD 0): FD at N = 2000 in 32-d is biased upwards by ~d^2/(2N) ~ 0.16;
    FD-infinity's intercept comes back to within 0.03 of 0 and its interval covers 0."""
    from genbench.metrics.fd_infinity import fd_infinity

    rng = np.random.default_rng(0)
    real, gen = rng.normal(size=(20000, 32)), rng.normal(size=(2000, 32))
    fd_n = frechet_distance_features(real, gen)
    r = fd_infinity(real, gen, points=15, min_n=400, rng=np.random.default_rng(1))
    assert fd_n > 0.1
    assert abs(r["value"]) < 0.03 and r["ci_low"] < 0 < r["ci_high"]
    assert r["slope"] > 0 and len(r["ns"]) == 15 and r["ns"][0] == 400 and r["ns"][-1] == 2000
    # the paper's procedure: each point is the FD of a random N-subset, the value sklearn's LinearRegression at 0
    from sklearn.linear_model import LinearRegression

    fit = LinearRegression().fit(1.0 / r["ns"].reshape(-1, 1), r["fds"])
    assert r["value"] == pytest.approx(fit.predict(np.zeros((1, 1)))[0], rel=1e-9, abs=1e-12)
    perm = np.random.default_rng(1).permutation(2000)[:400]
    assert r["fds"][0] == pytest.approx(frechet_distance_features(real, gen[perm]), rel=1e-12)
    with pytest.raises(MetricInputError, match="min_n must lie in"):
        fd_infinity(real, gen, min_n=5000, rng=np.random.default_rng(1))


def _cell(n_real=60, n_gen=60, d=16, with_clip=True):
    both = _features(7, n_real + n_gen, d)  # one distribution: the FD is all finite-sample bias
    spatial = _features(11, n_real + n_gen, 2 * d)
    real = {"features": both[:n_real], "spatial": spatial[:n_real]}
    gen = {"features": both[n_real:], "logits": _features(9, n_gen, 5, scale=2), "spatial": spatial[n_real:]}
    ti = None
    if with_clip:
        rng = np.random.default_rng(10)
        ids = np.array([f"i{k}" for k in range(n_real)])
        text = rng.normal(size=(n_real, 8))
        real_ti = {"item_id": ids, "image_emb": text + rng.normal(size=(n_real, 8)), "text_emb": text,
                   "logit_scale": np.float64(np.log(100.0))}
        gen_ti = {"item_id": ids[:n_gen], "image_emb": text[:n_gen] + 1.5 * rng.normal(size=(n_gen, 8))}
        ti = {"clip": (real_ti, gen_ti), "pick": (real_ti, gen_ti)}
    return real, gen, ti


ALL = ["fid", "is", "kid", "clip_score", "pick_score", "csfid", "psfid", "csis", "psis", "precision", "recall",
       "density", "coverage", "vendi", "cmmd", "fid_inf", "sfid"]
METHODS = {"debiased-percentile", "bca", "percentile (bca degenerate)", "ols-t", "none"}


def test_every_row_names_its_interval_and_none_excludes_its_estimate_without_a_note():
    """The acceptance test of issue 19: with few samples in 16-d the percentile interval of a bootstrapped FD lies
    entirely above the FD (the old table's FD-DINOv2 row); every row now names its method, and any interval that
    still excludes its estimate carries a note."""
    real, gen, ti = _cell()
    boot = {"n": 200, "confidence": 0.95, "seed": 0}
    df = score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), metrics=ALL,
                    is_splits=2, bootstrap=boot, kid={"subsets": 5, "subset_size": 60}, text_image=ti,
                    fd_inf={"points": 5, "min_n": 20})
    assert set(ALL) <= set(df["metric"])
    assert df["ci_method"].map(lambda s: s.split(",")[0]).isin(METHODS).all(), df["ci_method"].tolist()
    with_interval = df[df["ci_low"].notna()]
    assert set(with_interval["metric"]) == set(ALL) - {"kid"}
    inside = (with_interval["ci_low"] <= with_interval["value"]) & (with_interval["value"] <= with_interval["ci_high"])
    assert (inside | with_interval["note"].str.contains("interval lies entirely")).all()
    # the case the old percentile interval got wrong: its replicates sit above the estimate
    fid = df.set_index("metric").loc["fid"]
    from genbench.metrics.score2d import derive_seed

    rng = np.random.default_rng(derive_seed("bootstrap", 0, str(Cell("m", "d", 1, 1.0, 0)), "fid"))  # the seed key
    idx = resamples(rng, (60, 60), 200)
    reps = np.array([frechet_distance_features(real["features"][i], gen["features"][j]) for i, j in idx])
    old_low, _ = percentile_interval(reps, 0.95)
    assert old_low > fid["value"]  # the old interval excluded its estimate
    assert fid["ci_low"] <= fid["value"] <= fid["ci_high"]
    assert fid["ci_bias"] == pytest.approx(reps.mean() - fid["value"], rel=1e-12) and fid["ci_bias"] > 0
    assert fid["ci_method"] == "debiased-percentile, 200 resamples, 0.95"
    assert df.set_index("metric").loc["precision", "ci_method"].startswith("bca, 200 resamples, 0.95")


def test_interval_note_names_an_excluding_interval():
    from genbench.metrics.bootstrap import interval_note

    assert interval_note(1.0, 0.5, 1.5) == ""
    assert interval_note(1.0, np.nan, np.nan) == ""
    assert interval_note(1.0, 1.2, 1.5, 0.3).startswith("interval lies entirely above the estimate; the bootstrap")
    assert interval_note(1.0, 0.2, 0.5) == "interval lies entirely below the estimate"


def test_kid_std_hidden_when_every_subset_is_the_whole_set():
    real, gen, _ = _cell(with_clip=False)
    boot = {"n": 0, "confidence": 0.95, "seed": 0}
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
    whole = score_cell(real, gen, cell=cell, metrics=["kid"], is_splits=2, bootstrap=boot,
                       kid={"subsets": 5, "subset_size": 1000, "small_sample": "shrink"}).set_index("metric")
    assert np.isnan(whole.loc["kid_std", "value"]) and "every subset is the whole set" in whole.loc["kid_std", "note"]
    assert whole.loc["kid", "ci_method"] == "none" and np.isnan(whole.loc["kid", "ci_low"])
    part = score_cell(real, gen, cell=cell, metrics=["kid"], is_splits=2, bootstrap=boot,
                      kid={"subsets": 5, "subset_size": 30}).set_index("metric")
    assert part.loc["kid_std", "value"] > 0 and "not a CI" in part.loc["kid_std", "note"]


def test_new_metric_rows_are_the_metric_functions():
    from genbench.metrics.cmmd import cmmd
    from genbench.metrics.prdc import prdc
    from genbench.metrics.vendi import vendi_score

    real, gen, ti = _cell()
    df = score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0),
                    metrics=["precision", "recall", "density", "coverage", "vendi", "cmmd"], is_splits=2,
                    bootstrap={"n": 30, "confidence": 0.9, "seed": 0}, text_image=ti,
                    text_image_names={"clip": "my_clip"}, prdc_k=5).set_index("metric")
    ref = prdc(real["features"], gen["features"], 5)
    for m in ("precision", "recall", "density", "coverage"):
        assert df.loc[m, "value"] == pytest.approx(ref[m], abs=1e-12) and df.loc[m, "note"].startswith("k = 5")
    assert df.loc["vendi", "value"] == pytest.approx(vendi_score(gen["features"]), rel=1e-12)
    assert df.loc["cmmd", "value"] == pytest.approx(cmmd(ti["clip"][0]["image_emb"], ti["clip"][1]["image_emb"]))
    assert df.loc["cmmd", "extractor"] == "my_clip"
    with pytest.raises(MetricInputError, match="'cmmd' needs the clip embeddings"):
        score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), metrics=["cmmd"],
                   is_splits=2, bootstrap={"n": 0, "confidence": 0.9, "seed": 0})


def test_fid_inf_row_shrinks_min_n_with_a_note():
    real, gen, _ = _cell(n_real=80, n_gen=50, with_clip=False)
    df = score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), metrics=["fid_inf"],
                    is_splits=2, bootstrap={"n": 0, "confidence": 0.9, "seed": 0}).set_index("metric")
    assert df.loc["fid_inf", "note"].startswith("min_n shrunk from 5000 to 10 (50 generated samples)")
    assert df.loc["fid_inf", "ci_method"] == "ols-t, 15 points, 0.9"
    assert df.loc["fid_inf", "ci_low"] <= df.loc["fid_inf", "ci_high"]


def test_summary3d_rows_name_a_bca_interval():
    import pandas as pd

    from genbench.recon3d.evaluate import summarise

    rng = np.random.default_rng(0)
    per_item = pd.DataFrame({"dataset": "d", "model": "m", "protocol": "p", "item_id": [f"i{k}" for k in range(30)],
                             "status": "ok", "chamfer_l1": rng.exponential(size=30), "fscore@0.01": 0.5})
    s = summarise(per_item, [], n_boot=100, confidence=0.9, seed=0).set_index("metric")
    assert s.loc["chamfer_l1", "ci_method"] == "bca, 100 resamples, 0.9, items"
    assert s.loc["chamfer_l1", "ci_low"] < s.loc["chamfer_l1", "value"] < s.loc["chamfer_l1", "ci_high"]
    assert s.loc["fscore@0.01", "ci_low"] == s.loc["fscore@0.01", "ci_high"] == 0.5  # constant values


def test_mmhm_rows_carry_no_interval_and_no_bias():
    """The aggregate's MMHM rows are built from each cell's FID row: they must not inherit its interval bias."""
    import pandas as pd

    from genbench.stages import add_mmhm_rows

    real, gen, ti = _cell()
    frames = []
    for cfg, shift in ((1.0, 0.0), (2.0, 0.3)):
        g = dict(gen, features=gen["features"] + shift)
        frames.append(score_cell(real, g, cell=dict(model="m", dataset="d", steps=1, cfg=cfg, seed=0),
                                 metrics=["fid", "is", "clip_score", "pick_score"], is_splits=2,
                                 bootstrap={"n": 20, "confidence": 0.9, "seed": 0}, text_image=ti))
    out, _ = add_mmhm_rows(pd.concat(frames, ignore_index=True), {})
    mmhm = out[out["metric"] == "mmhm"]
    assert len(mmhm) == 2 and mmhm["ci_bias"].isna().all() and mmhm["ci_low"].isna().all()
    assert (mmhm["ci_method"] == "none (min-max over the sweep)").all()
    assert out.loc[out["metric"] == "fid", "ci_bias"].notna().all()


def test_aggregate_3d_set_level_rows_name_no_interval(tmp_path):
    """Set-level appearance rows (FD/KD on renders) join a summary that now has ci_method: they get 'none'."""
    import pandas as pd

    from genbench.stages import stage_aggregate_3d

    rng = np.random.default_rng(0)
    geo = pd.DataFrame({"dataset": "d", "model": "m", "protocol": "corrected", "item_id": [f"i{k}" for k in range(8)],
                        "status": "ok", "chamfer_l1": rng.exponential(size=8)})
    app = pd.DataFrame({"dataset": "d", "model": "m", "item_id": [f"i{k}" for k in range(8)], "status": "ok",
                        "psnr": rng.normal(20, 1, size=8)})
    sets = pd.DataFrame({"dataset": ["d"], "model": ["m"], "metric": ["fd_renders"], "value": [1.5], "n": [8],
                         "note": ["8 renders"]})
    paths = [tmp_path / "geo.parquet", tmp_path / "app.parquet", tmp_path / "app.sets.parquet"]
    for df, p in zip((geo, app, sets), paths, strict=True):
        df.to_parquet(p)
    config = {"recon3d": {"models": ["m"], "protocols": ["corrected"], "bootstrap": {"n": 50}},
              "reconstructors": {"m": {"kind": "other"}}, "seed": 0}
    stage_aggregate_3d([paths[0]], config, "hash", tmp_path / "items.parquet", tmp_path / "summary.parquet",
                       appearance=paths[1:])
    s = pd.read_parquet(tmp_path / "summary.parquet").set_index("metric")
    assert s.loc["fd_renders", "ci_method"].startswith("none") and np.isnan(s.loc["fd_renders", "ci_low"])
    assert s.loc["chamfer_l1", "ci_method"] == "bca, 50 resamples, 0.95, items"
    assert s.loc["psnr", "ci_method"] == "bca, 50 resamples, 0.95, items"


def test_wide_table_omits_an_uninformative_kid_spread():
    """KID over subsets that are all the whole set used to print '1872 ± 0'; its std row is now NaN (with a
    note) and the wide table prints the value alone."""
    import pandas as pd

    from genbench.tables.export import wide_table

    real, gen, _ = _cell(with_clip=False)
    kw = dict(cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), metrics=["kid"], is_splits=2,
              bootstrap={"n": 0, "confidence": 0.9, "seed": 0})
    whole = score_cell(real, gen, kid={"subsets": 5, "subset_size": 1000, "small_sample": "shrink"}, **kw)
    part = score_cell(real, gen, kid={"subsets": 5, "subset_size": 30}, **kw).assign(cfg=2.0)
    wide = wide_table(pd.concat([whole, part], ignore_index=True)).set_index("cfg")
    kid_col = [c for c in wide.columns if c.startswith("KID")][0]
    assert "±" not in wide.loc["1", kid_col] and "–" not in wide.loc["1", kid_col]
    assert "±" in wide.loc["2", kid_col]
