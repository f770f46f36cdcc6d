"""ADM reference batches (openai/guided-diffusion evaluations) as a real set, on fixtures this test writes in the
same format: np.savez with arr_0 (uint8 NHWC images), arr_1 (labels), mu/sigma and mu_s/sigma_s."""

import numpy as np
import pytest

from genbench.data.adm import ADMBatchError, iter_adm_images, read_adm_statistics
from genbench.data.manifest import load_images, validate_manifest
from genbench.data.registry import prepare_dataset


def _batch(path, n=7, labels=True, stats=True):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 12, 10, 3), dtype=np.uint8)
    arrays = {"arr_0": images}
    if labels:
        arrays["arr_1"] = np.array([134, 517, 0, 2, 999, 638, 639][:n])
    if stats:
        feats = rng.normal(size=(50, 16))
        arrays.update(mu=feats.mean(0).astype(np.float32), sigma=np.cov(feats, rowvar=False).astype(np.float32),
                      mu_s=np.zeros(4, np.float32), sigma_s=np.eye(4, dtype=np.float32))
    np.savez(path, **arrays)
    return arrays


def _config(path, **extra):
    return {"seed": 0, "datasets": {"ref": {"adapter": "adm_ref", "root": str(path), **extra}}}


def test_adm_reference_batch_is_a_real_set(tmp_path):
    arrays = _batch(tmp_path / "VIRTUAL_test_labeled.npz")
    out = tmp_path / "out"
    df = prepare_dataset("ref", _config(tmp_path / "VIRTUAL_test_labeled.npz", class_names="disambiguated",
                                         prompt_template="a photo of a {class}"), out)
    validate_manifest(df, "ref")
    assert len(df) == 7 and df["label_id"].tolist() == [134, 517, 0, 2, 999, 638, 639]
    assert df["prompt"].iloc[0] == "a photo of a crane bird" and df["label_name"].iloc[1] == "construction crane"
    # the images come back byte for byte (PNG is lossless)
    np.testing.assert_array_equal(load_images(df, out), arrays["arr_0"])
    # chunked streaming reads the same array as np.load
    np.testing.assert_array_equal(np.concatenate(list(iter_adm_images(tmp_path / "VIRTUAL_test_labeled.npz",
                                                                      chunk=3))), arrays["arr_0"])


def test_adm_precomputed_statistics(tmp_path):
    from genbench.metrics.fid import frechet_distance

    arrays = _batch(tmp_path / "ref.npz")
    mu, sigma = read_adm_statistics(tmp_path / "ref.npz")
    assert mu.dtype == np.float64 and sigma.shape == (16, 16)
    np.testing.assert_array_equal(mu, arrays["mu"].astype(np.float64))
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    assert read_adm_statistics(tmp_path / "ref.npz", spatial=True)[1].shape == (4, 4)
    _batch(tmp_path / "nostats.npz", stats=False)
    with pytest.raises(ADMBatchError, match="no precomputed mu/sigma; use its images"):
        read_adm_statistics(tmp_path / "nostats.npz")


def test_adm_unlabelled_and_bad_batches(tmp_path):
    _batch(tmp_path / "unlab.npz", labels=False)
    df = prepare_dataset("ref", _config(tmp_path / "unlab.npz"), tmp_path / "o1")
    assert (df["label_id"] == -1).all() and (df["prompt"] == "").all()
    np.savez(tmp_path / "float.npz", arr_0=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ADMBatchError, match=r"arr_0 must be uint8 images \(N, H, W, 3\)"):
        prepare_dataset("ref", _config(tmp_path / "float.npz"), tmp_path / "o2")
    np.savez(tmp_path / "obj.npz", arr_0=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ADMBatchError, match="refusing to unpickle"):
        prepare_dataset("ref", _config(tmp_path / "obj.npz"), tmp_path / "o3")
    np.savez(tmp_path / "lab.npz", arr_0=np.zeros((2, 4, 4, 3), np.uint8), arr_1=np.array([0, 1000]))
    with pytest.raises(ADMBatchError, match="ImageNet ids 0..999"):
        prepare_dataset("ref", _config(tmp_path / "lab.npz"), tmp_path / "o4")
    with pytest.raises(ADMBatchError, match="is missing; download the ADM reference batch"):
        prepare_dataset("ref", _config(tmp_path / "none.npz"), tmp_path / "o5")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ADMBatchError, match="not a readable .npz"):
        prepare_dataset("ref", _config(tmp_path / "junk.npz"), tmp_path / "o6")


# ---- statistics: precomputed (FID against the batch's own mu/sigma) -------------------------------------------
def test_precomputed_statistics_agree_with_our_extraction_and_score_fid(tmp_path):
    """The reference batch's mu/sigma computed by torch-fidelity's TF-FID Inception (ADM's evaluator feeds native-size
    images to the TF graph, which resizes with TF1 bilinear) on tiny random weights, stored in float32 as ADM stores
    them; our route: the adm_ref adapter's PNGs through stage_features_real with resize tf1_bilinear. Both must give
    the same statistics (float32 rounding), and FID against either must agree."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from genbench import stages
    from genbench.config import ConfigError, validate_config
    from genbench.data.adm import adm_statistics, compare_statistics
    from genbench.features.inception import FIDInception
    from genbench.io import load_npz
    from genbench.metrics.score2d import score_cell

    torch.manual_seed(0)
    weights = tmp_path / "pt_inception-tiny.pth"
    torch.save({k: v for k, v in FIDInception().state_dict().items() if not k.endswith("num_batches_tracked")},
               weights)
    images = np.random.default_rng(3).integers(0, 256, (4, 24, 20, 3), dtype=np.uint8)
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        theirs = ref.eval()(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())[0].double().numpy()
    path = tmp_path / "VIRTUAL_tiny.npz"
    np.savez(path, arr_0=images, mu=theirs.mean(0).astype(np.float32),
             sigma=np.cov(theirs, rowvar=False).astype(np.float32))
    cfg = {"seed": 0, "datasets": {"ref": {"adapter": "adm_ref", "root": str(path), "statistics": "precomputed"}},
           "extractors": {"inception": {"kind": "inception_tf", "resize": "tf1_bilinear", "batch_size": 4}}}
    df = prepare_dataset("ref", cfg, tmp_path / "data")
    from genbench.data.manifest import write_manifest

    write_manifest(df, tmp_path / "data/manifest.parquet", "ref")
    stages.stage_features_real("inception", cfg, weights, tmp_path / "data/manifest.parquet", "ref",
                               tmp_path / "real.npz")
    ours = load_npz(tmp_path / "real.npz")["features"]
    agree = compare_statistics(path, ours)
    scale = float(np.trace(np.cov(ours, rowvar=False)))
    assert agree["fd"] < 1e-4 * scale and agree["max_abs_mu"] < 1e-4 and agree["rel_sigma"] < 1e-4, agree
    # FID of one generated set against each route: the same value; the precomputed route's interval resamples the
    # generated set only, and its method and note say so. (On the first 16 dimensions of both routes: a bootstrap of
    # 2048-d Fréchet distances costs seconds per resample on a loaded core.)
    ours = ours[:, :16]
    path = tmp_path / "VIRTUAL_tiny16.npz"
    np.savez(path, arr_0=images, mu=theirs[:, :16].mean(0).astype(np.float32),
             sigma=np.cov(theirs[:, :16], rowvar=False).astype(np.float32))
    gen = ours[[0, 1, 2, 3, 0, 1]] + np.random.default_rng(4).normal(0, 0.05, (6, ours.shape[1]))
    kw = dict(cell={"model": "m", "dataset": "ref", "steps": 1, "cfg": 1.0, "seed": 0}, metrics=["fid"],
              is_splits=1, bootstrap={"n": 20, "confidence": 0.9, "seed": 0})
    st = adm_statistics(path)
    assert st.n == 4 and "VIRTUAL_tiny16.npz" in st.source
    pre = score_cell({"features": ours}, {"features": gen}, real_statistics=st, **kw).iloc[0]
    img = score_cell({"features": ours}, {"features": gen}, **kw).iloc[0]
    assert pre["value"] == pytest.approx(img["value"], rel=1e-3, abs=1e-6 * scale)
    assert "real side fixed (precomputed statistics)" in pre["ci_method"] and "not re-extracted" in pre["note"]
    assert "real side fixed" not in img["ci_method"] and pre["n_real"] == 4
    # the config: precomputed statistics are an adm_ref batch's TF-FID statistics only
    full = validate_config(_mini_config(path))
    from genbench.wiring import Wiring

    w = Wiring(full)  # score_cell's params carry the batch it reads the statistics from; other data sets' do not
    assert w.score_config("sit_tiny", "ref")["datasets"] == {"ref": {"statistics": "precomputed", "root": str(path)}}
    assert "datasets" not in w.score_config("sit_tiny", "mw_val")
    bad = _mini_config(path)
    bad["datasets"]["mw_val"]["statistics"] = "precomputed"
    with pytest.raises(ConfigError, match="datasets.mw_val.statistics: precomputed statistics are an ADM"):
        validate_config(bad)


def _mini_config(path):
    from streamutil import tiny_config

    cfg = tiny_config()
    cfg["datasets"]["ref"] = {"adapter": "adm_ref", "root": str(path), "statistics": "precomputed"}
    cfg["extractors"]["inception"] = {"kind": "inception_tf", "weights": {"path": "w.pth"}}
    cfg["scoring"]["extractor"] = "inception"
    return cfg
