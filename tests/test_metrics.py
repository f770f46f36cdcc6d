"""FID/IS against reference implementations on the same inputs.

Tolerances: Fréchet distance 1e-6 relative to clean-fid (scipy sqrtm) and torch-fidelity (eigvals of S1 S2) on the
same float64 statistics; IS mean and std 1e-10 relative to torch-fidelity on the same logits.
"""

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as cleanfid_fd
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_fd
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric

from genbench.metrics.bootstrap import bootstrap_ci
from genbench.metrics.fid import MetricInputError, feature_statistics, frechet_distance, frechet_distance_features
from genbench.metrics.inception_score import inception_score
from genbench.metrics.score2d import score_cell


def _features(seed, n, d, shift=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return (rng.normal(size=(n, d)) @ mix) * scale + shift


@pytest.mark.parametrize("n,d", [(500, 32), (300, 64), (40, 64)])  # the last: n < d, singular covariances
def test_fd_matches_references(n, d):
    a, b = _features(0, n, d), _features(1, n, d, shift=0.3, scale=1.2)
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    ours = frechet_distance(mu1, s1, mu2, s2)
    tf = fid_statistics_to_metric(fid_features_to_statistics(torch.from_numpy(a)),
                                  fid_features_to_statistics(torch.from_numpy(b)), verbose=False)
    tf = tf["frechet_inception_distance"]
    cf = cleanfid_fd(mu1, s1, mu2, s2)
    pf = pytorch_fid_fd(mu1, s1, mu2, s2)
    assert ours == pytest.approx(tf, rel=1e-6)
    assert ours == pytest.approx(cf, rel=1e-6)
    assert ours == pytest.approx(pf, rel=1e-6)


def test_fd_near_singular_covariance():
    a = _features(2, 400, 16)
    a[:, -1] = a[:, 0] * 2 + 1e-9 * np.random.default_rng(3).normal(size=400)  # rank-deficient up to 1e-9
    b = _features(4, 400, 16, shift=0.1)
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)[
        "frechet_inception_distance"]
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(tf, rel=1e-6)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(pytorch_fid_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_fd_identity_and_closed_form():
    a = _features(5, 200, 8)
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-9)
    # diagonal Gaussians: FD = |dmu|^2 + sum (sqrt(s1) - sqrt(s2))^2
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(5.0 + 1.0 + 1.0 + 0.0, rel=1e-12)


def test_is_matches_torch_fidelity():
    logits = _features(6, 1000, 8, scale=3.0)
    ours = inception_score(logits, splits=10)
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=True, rng_seed=2020)
    assert ours[0] == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert ours[1] == pytest.approx(ref["inception_score_std"], rel=1e-10)
    # one-hot-like confident, uniformly spread predictions reach IS = number of classes
    sharp = np.eye(8)[np.arange(800) % 8] * 50.0
    assert inception_score(sharp, splits=4, shuffle=False)[0] == pytest.approx(8.0, rel=1e-6)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 4)), "0 sample"),
    (np.full((10, 4), np.nan), "NaN"),
    (np.zeros((10,)), "expected"),
])
def test_bad_features_named(bad, match):
    with pytest.raises(MetricInputError, match=f"'my set'.*{match}|{match}"):
        feature_statistics(bad, "my set")


def test_is_needs_enough_samples():
    with pytest.raises(MetricInputError, match="'gen x'.*at least 10"):
        inception_score(np.zeros((5, 3)), splits=10, set_name="gen x")


def test_bootstrap_is_seeded_and_covers():
    x = np.random.default_rng(0).normal(size=400)
    lo, hi, reps = bootstrap_ci(lambda i: float(x[i].mean()), (400,), 300, 0.95, np.random.default_rng(1))
    lo2, hi2, _ = bootstrap_ci(lambda i: float(x[i].mean()), (400,), 300, 0.95, np.random.default_rng(1))
    assert (lo, hi) == (lo2, hi2)
    assert lo < x.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * x.std() / 20, rel=0.2)  # the normal-theory width


def test_score_cell_rows():
    real = {"features": _features(7, 300, 8)}
    gen = {"features": _features(8, 300, 8, shift=0.5), "logits": _features(9, 300, 5, scale=2)}
    cell = {"model": "m", "dataset": "d", "steps": 4, "cfg": 2.0, "seed": 0}
    df = score_cell(real, gen, cell=cell, metrics=["fid", "is"], is_splits=10,
                    bootstrap={"n": 50, "confidence": 0.9, "seed": 0})
    assert list(df["metric"]) == ["fid", "is", "is_std"]
    fid = df.set_index("metric").loc["fid"]
    assert fid["value"] == pytest.approx(frechet_distance_features(real["features"], gen["features"]))
    assert fid["ci_low"] <= fid["ci_high"] and fid["n"] == 300 and fid["n_real"] == 300
    assert df["model"].eq("m").all() and df["cfg"].eq(2.0).all()
    again = score_cell(real, gen, cell=cell, metrics=["fid", "is"], is_splits=10,
                       bootstrap={"n": 50, "confidence": 0.9, "seed": 0})
    assert df.equals(again)


def test_kid_matches_torch_fidelity():
    """Same features, same RandomState(2020) subsets: KID mean and std equal torch-fidelity's to 1e-10 relative."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    from genbench.metrics.kid import kernel_inception_distance

    a, b = _features(10, 300, 16), _features(11, 250, 16, shift=0.2)
    mean, std, m = kernel_inception_distance(a, b, subsets=20, subset_size=100)
    ref = kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subsets=20, kid_subset_size=100,
                                 verbose=False)
    assert m == 100
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-10)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-10)
    # identical distributions: KID is unbiased, so it scatters around 0
    same = kernel_inception_distance(a[:150], a[150:], subsets=20, subset_size=100)[0]
    assert abs(same) < 0.1 * mean


def test_kid_small_sample_policy():
    from genbench.metrics.kid import kernel_inception_distance

    a, b = _features(12, 50, 8), _features(13, 40, 8)
    with pytest.raises(MetricInputError, match=r"KID needs at least 1000 samples.*gen y: 40"):
        kernel_inception_distance(a, b, subset_size=1000, real_name="real x", gen_name="gen y")
    assert kernel_inception_distance(a, b, subsets=3, subset_size=1000, small_sample="shrink")[2] == 40


def test_score_cell_kid_rows_note_shrink():
    real = {"features": _features(7, 120, 8)}
    gen = {"features": _features(8, 100, 8, shift=0.5), "logits": _features(9, 100, 5)}
    cell = {"model": "m", "dataset": "d", "steps": 1, "cfg": 1.0, "seed": 0}
    df = score_cell(real, gen, cell=cell, metrics=["fid", "kid"], is_splits=10,
                    bootstrap={"n": 0, "confidence": 0.95, "seed": 0},
                    kid={"subsets": 5, "subset_size": 1000, "small_sample": "shrink"}).set_index("metric")
    assert list(df.index) == ["fid", "kid", "kid_std"]
    assert df.loc["kid", "note"] == "5 subsets of 100 (shrunk from 1000)" and df.loc["fid", "note"] == ""
    assert df.loc["fid", "ci_method"] == "none (bootstrap disabled)"


def test_per_class_scores_are_the_metrics_of_each_class_subset():
    from genbench.metrics.fid import frechet_distance_features
    from genbench.metrics.inception_score import inception_score
    from genbench.metrics.score2d import score_per_class

    rng = np.random.default_rng(3)
    real = {"features": rng.normal(size=(30, 4)), "label_id": np.repeat([0, 1, 2], 10)}
    gen = {"features": rng.normal(size=(21, 4)) + 0.3, "logits": rng.normal(size=(21, 5)),
           "label_id": np.array([0] * 10 + [1] * 10 + [2])}  # class 2: one generated image only
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
    df = score_per_class(real, gen, cell=cell, metrics=["fid", "is", "kid"], class_names=["a", "b", "c"],
                         bootstrap={"n": 20, "confidence": 0.9, "seed": 0})
    assert set(df["metric"]) == {"fid", "is"} and len(df) == 6  # KID is not computed per class
    fid1 = df[(df["label_id"] == 1) & (df["metric"] == "fid")].iloc[0]
    assert fid1["class_name"] == "b" and fid1["n"] == 10 and fid1["n_real"] == 10
    assert fid1["value"] == pytest.approx(frechet_distance_features(real["features"][10:20], gen["features"][10:20]),
                                          rel=1e-12)
    assert fid1["ci_low"] <= fid1["ci_high"]
    is0 = df[(df["label_id"] == 0) & (df["metric"] == "is")].iloc[0]
    assert is0["value"] == pytest.approx(inception_score(gen["logits"][:10], splits=1)[0], rel=1e-12)
    assert is0["n_real"] == 0
    skipped = df[df["label_id"] == 2]
    assert skipped["value"].isna().all()
    assert (skipped["note"] == "skipped: 1 generated / 10 real images of this class, at least 2 needed").all()
    again = score_per_class(real, gen, cell=cell, metrics=["fid"], class_names=None,
                            bootstrap={"n": 20, "confidence": 0.9, "seed": 0})
    assert again.loc[again["label_id"] == 1, "ci_low"].iloc[0] == fid1["ci_low"]  # seeded: reproducible


def _text_image_cell(n=60, seed=0):
    rng = np.random.default_rng(seed)
    items = np.array([f"i{k:03d}" for k in range(n)])
    text = rng.normal(size=(n, 8))
    real_ti = {"item_id": items, "image_emb": text + rng.normal(size=(n, 8)), "text_emb": text,
               "logit_scale": np.float64(np.log(50.0))}
    order = rng.permutation(n)  # the generated cell stores its items in another order
    gen_ti = {"item_id": items[order], "image_emb": text[order] + 2 * rng.normal(size=(n, 8))}
    real = {"features": rng.normal(size=(n, 4))}
    gen = {"features": rng.normal(size=(n, 4)) + 0.5, "logits": rng.normal(size=(n, 5))}
    return real, gen, real_ti, gen_ti


def test_text_image_rows_follow_their_definitions():
    from genbench.metrics.fid import frechet_distance_features
    from genbench.metrics.score2d import score_cell
    from genbench.metrics.text_image import clip_score, pick_score

    real, gen, real_ti, gen_ti = _text_image_cell()
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
    df = score_cell(real, gen, cell=cell, metrics=["fid", "is", "clip_score", "pick_score", "csfid", "psis"],
                    is_splits=2, bootstrap={"n": 50, "confidence": 0.9, "seed": 0},
                    text_image={"clip": (real_ti, gen_ti), "pick": (real_ti, gen_ti)},
                    text_image_names={"clip": "clipper", "pick": "picker"})
    v = df.set_index("metric")["value"]
    ex = df.set_index("metric")["extractor"]
    assert ex["clip_score"] == "clipper" and ex["pick_score"] == "picker" and ex["psis"] == "? + picker"
    rows = [list(real_ti["item_id"]).index(i) for i in gen_ti["item_id"]]
    clip_gen = clip_score(gen_ti["image_emb"], real_ti["text_emb"][rows])
    clip_real = clip_score(real_ti["image_emb"], real_ti["text_emb"])
    assert v["clip_score"] == pytest.approx(clip_gen, rel=1e-12)
    assert v["pick_score"] == pytest.approx(pick_score(gen_ti["image_emb"], real_ti["text_emb"][rows], np.log(50.0)),
                                            rel=1e-12)
    fid = frechet_distance_features(real["features"], gen["features"])
    assert v["fid"] == pytest.approx(fid, rel=1e-12)
    assert v["csfid"] == pytest.approx(fid / (clip_gen / clip_real), rel=1e-12)
    assert v["psis"] == pytest.approx(v["is"] * clip_gen / clip_real, rel=1e-12)  # exp(scale) cancels in r_Pick
    for m in ("clip_score", "pick_score", "csfid", "psis"):
        r = df.set_index("metric").loc[m]
        assert r["ci_low"] <= r["value"] <= r["ci_high"], m
    assert "CLIP Score" in df.set_index("metric").loc["clip_score", "note"]
    # the FID interval is the same with and without the scaled metrics (they reuse its resamples)
    alone = score_cell(real, gen, cell=cell, metrics=["fid"], is_splits=2,
                       bootstrap={"n": 50, "confidence": 0.9, "seed": 0})
    assert alone.set_index("metric").loc["fid", "ci_low"] == df.set_index("metric").loc["fid", "ci_low"]


def test_text_image_bad_input_named():
    from genbench.metrics.score2d import score_cell

    real, gen, real_ti, gen_ti = _text_image_cell()
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
    boot = {"n": 5, "confidence": 0.9, "seed": 0}
    with pytest.raises(MetricInputError, match="'clip_score' needs the clip embeddings"):
        score_cell(real, gen, cell=cell, metrics=["clip_score"], is_splits=2, bootstrap=boot)
    stray = dict(gen_ti, item_id=np.array(["zzz"] + list(gen_ti["item_id"][1:])))
    with pytest.raises(MetricInputError, match="item 'zzz' is not an item of real d"):
        score_cell(real, gen, cell=cell, metrics=["clip_score"], is_splits=2, bootstrap=boot,
                   text_image={"clip": (real_ti, stray)})
    opposite = dict(gen_ti, image_emb=-gen_ti["image_emb"] * 0 - real_ti["text_emb"][
        [list(real_ti["item_id"]).index(i) for i in gen_ti["item_id"]]])
    with pytest.raises(MetricInputError, match="is not positive"):
        score_cell(real, gen, cell=cell, metrics=["csfid", "fid", "clip_score"], is_splits=2, bootstrap=boot,
                   text_image={"clip": (real_ti, opposite)})


def test_dinov2_rows_are_fd_and_kd_on_the_dinov2_features():
    from genbench.metrics.kid import kernel_inception_distance
    from genbench.metrics.score2d import score_cell

    rng = np.random.default_rng(5)
    real, gen = {"features": rng.normal(size=(50, 4))}, {"features": rng.normal(size=(50, 4))}
    dr, dg = {"features": rng.normal(size=(50, 6))}, {"features": rng.normal(size=(50, 6)) + 0.2}
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0, extractor="inception")
    df = score_cell(real, gen, cell=cell, metrics=["fid", "fd_dinov2", "kd_dinov2"], is_splits=2,
                    bootstrap={"n": 30, "confidence": 0.9, "seed": 0},
                    kid={"subsets": 5, "subset_size": 20, "small_sample": "error"}, dinov2=(dr, dg, "dinov2_l14"))
    r = df.set_index("metric")
    assert r.loc["fd_dinov2", "value"] == pytest.approx(frechet_distance_features(dr["features"], dg["features"]),
                                                        rel=1e-12)
    assert r.loc["fd_dinov2", "ci_low"] <= r.loc["fd_dinov2", "ci_high"]
    kd, kd_std, _ = kernel_inception_distance(dr["features"], dg["features"], subsets=5, subset_size=20)
    assert r.loc["kd_dinov2", "value"] == pytest.approx(kd, rel=1e-12)
    assert r.loc["kd_dinov2_std", "value"] == pytest.approx(kd_std, rel=1e-12)
    assert r.loc["fd_dinov2", "extractor"] == "dinov2_l14" and r.loc["fid", "extractor"] == "inception"
    with pytest.raises(MetricInputError, match="need DINOv2 features"):
        score_cell(real, gen, cell=cell, metrics=["fd_dinov2"], is_splits=2,
                   bootstrap={"n": 0, "confidence": 0.9, "seed": 0})


def test_per_class_clip_and_pick_scores():
    from genbench.metrics.score2d import score_per_class
    from genbench.metrics.text_image import clip_score

    real, gen, real_ti, gen_ti = _text_image_cell(n=40)
    labels = np.arange(40) % 4
    real["label_id"] = labels
    order = [list(real_ti["item_id"]).index(i) for i in gen_ti["item_id"]]
    gen["label_id"] = labels[order]
    cell = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0, extractor="cls")
    df = score_per_class(real, gen, cell=cell, metrics=["fid", "clip_score", "pick_score"], class_names=None,
                         bootstrap={"n": 10, "confidence": 0.9, "seed": 0},
                         text_image={"clip": (real_ti, gen_ti), "pick": (real_ti, gen_ti)},
                         text_image_names={"clip": "clipper", "pick": "picker"})
    assert set(df["metric"]) == {"fid", "clip_score", "pick_score"} and len(df) == 12
    row = df[(df["label_id"] == 2) & (df["metric"] == "clip_score")].iloc[0]
    mask = gen["label_id"] == 2
    expected = clip_score(gen_ti["image_emb"][mask], real_ti["text_emb"][np.array(order)[mask]])
    assert row["value"] == pytest.approx(expected, rel=1e-12) and row["extractor"] == "clipper"
    assert df[df["metric"] == "fid"]["extractor"].eq("cls").all()


def test_scaled_metrics_leave_out_resamples_where_r_is_undefined():
    """CLIP Score is clamped at 0 (torchmetrics): a resample of the real images whose mean cosine is negative has
    r_CLIP = generated / 0, undefined. Such resamples are left out of csFID's and csIS's intervals and counted in
    the note (it was a ZeroDivisionError that killed the scoring job)."""
    from genbench.metrics.score2d import score_cell

    rng = np.random.default_rng(0)
    n = 12
    cos_real = np.array([0.5, -0.45, 0.4, -0.42, 0.3, -0.35, 0.25, -0.2, 0.1, -0.05, 0.02, -0.04])  # mean > 0
    cos_gen = rng.uniform(0.2, 0.6, n)
    items = np.array([f"i{k}" for k in range(n)])
    text = np.tile(np.eye(4)[0], (n, 1))

    def emb(c):
        return np.stack([c, np.sqrt(1 - c ** 2), np.zeros(n), np.zeros(n)], axis=1)

    real_ti = {"item_id": items, "image_emb": emb(cos_real), "text_emb": text, "logit_scale": np.float64(0.0)}
    gen_ti = {"item_id": items, "image_emb": emb(cos_gen)}
    real = {"features": rng.normal(size=(n, 3))}
    gen = {"features": rng.normal(size=(n, 3)) + 0.5, "logits": rng.normal(size=(n, 4))}
    df = score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0),
                    metrics=["fid", "is", "clip_score", "csfid", "csis"], is_splits=2,
                    bootstrap={"n": 200, "confidence": 0.9, "seed": 0}, text_image={"clip": (real_ti, gen_ti)})
    rows = df.set_index("metric")
    for m in ("csfid", "csis"):
        note = rows.loc[m, "note"]
        left_out = int(note.split("; ")[1].split(" of ")[0])
        assert 0 < left_out < 200 and "r is undefined there" in note, note
        assert np.isfinite(rows.loc[m, ["value", "ci_low", "ci_high"]].astype(float)).all()



def test_clip_score_alone_needs_no_positive_ratio():
    """A CLIP Score whose mean clamps to 0 is a valid score (torchmetrics clamps it); only the scaled metrics, which
    divide by it, refuse it."""
    from genbench.metrics.score2d import MetricInputError, score_cell

    n = 8
    items = np.array([f"i{k}" for k in range(n)])
    text = np.tile(np.eye(2)[0], (n, 1))
    away = np.tile(np.array([-1.0, 0.2]), (n, 1))  # every image points away from its prompt: cosine < 0
    ti = ({"item_id": items, "image_emb": away, "text_emb": text, "logit_scale": np.float64(0.0)},
          {"item_id": items, "image_emb": away})
    rng = np.random.default_rng(0)
    real, gen = {"features": rng.normal(size=(n, 3))}, {"features": rng.normal(size=(n, 3))}
    kw = dict(cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), is_splits=2,
              bootstrap={"n": 20, "confidence": 0.9, "seed": 0}, text_image={"clip": ti})
    row = score_cell(real, gen, metrics=["clip_score"], **kw).set_index("metric").loc["clip_score"]
    assert row["value"] == 0.0
    with pytest.raises(MetricInputError, match="cannot scale FID"):
        score_cell(real, gen, metrics=["fid", "clip_score", "csfid"], **kw)
