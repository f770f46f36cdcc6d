"""sFID end to end: the spatial features' layout (ADM's evaluator: NHWC-flattened, first channels), the mini-world
classifier's stand-in layer, the Fréchet distance on them against clean-fid 0.1.35, pytorch-fid 0.3.0 (the TTUR code
ADM's evaluator copies) and torch-fidelity 0.4.0 (1e-6 relative, as FID), known answers (a set against itself; a
spatially shifted set), the score_cell row, the feature stages writing ``spatial`` only when asked, the config check
and the wiring. The Inception layer itself is tested against torch-fidelity in test_inception.py."""

import numpy as np
import pytest
import torch
from cleanfid.fid import frechet_distance as cleanfid_fd
from pytorch_fid.fid_score import calculate_frechet_distance as pytorch_fid_fd
from streamutil import classifier_checkpoint, tiny_config, write_image_set, write_shards
from torch_fidelity.metric_fid import fid_statistics_to_metric

from genbench import stages
from genbench.config import ConfigError, validate_config
from genbench.features.classifier import MiniClassifier
from genbench.features.registry import FeatureInputError, MiniworldClassifierExtractor
from genbench.features.spatial import flatten_spatial
from genbench.io import load_npz, read_npz_runtime
from genbench.metrics.fid import MetricInputError, feature_statistics, frechet_distance, frechet_distance_features
from genbench.metrics.score2d import score_cell
from genbench.wiring import Wiring

CELL = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
BOOT = {"n": 20, "confidence": 0.9, "seed": 0}


def squares(rng: np.random.Generator, n: int, lo: int = 3, hi: int = 5, size: int = 16) -> np.ndarray:
    """Black 16 x 16 images with one coloured square of side 3-5 whose top-left corner lies in [lo, hi]^2."""
    images = np.zeros((n, size, size, 3), np.uint8)
    for i in range(n):
        side = rng.integers(3, 6)
        y, x = rng.integers(lo, hi + 1, 2)
        images[i, y:y + side, x:x + side] = rng.integers(80, 256, 3)
    return images


@pytest.fixture(scope="module")
def extractor():
    """The mini-world classifier (seeded random weights, float64 as trained) with its spatial features on."""
    torch.manual_seed(0)
    return MiniworldClassifierExtractor("mw_classifier", MiniClassifier(4).double()).with_spatial()


def test_flattening_is_adm_nhwc_order():
    """ADM's evaluator slices the TF (NHWC) tensor [..., :7] and reshapes each image to one row: row, column, then
    channel, the channel varying fastest."""
    fmap = torch.arange(2 * 9 * 3 * 4, dtype=torch.float64).reshape(2, 9, 3, 4)  # N, C, H, W
    flat = flatten_spatial(fmap, 7)
    nhwc = fmap.numpy().transpose(0, 2, 3, 1)[..., :7].reshape(2, -1)  # what the evaluator does with TF's layout
    np.testing.assert_array_equal(flat.numpy(), nhwc)
    assert flat[1, (2 * 4 + 3) * 7 + 5] == fmap[1, 5, 2, 3]  # (h=2, w=3, c=5)
    with pytest.raises(ValueError, match=r"need an \(N, C >= 7, H, W\) map, got \(2, 3, 4, 4\)"):
        flatten_spatial(torch.zeros(2, 3, 4, 4), 7)


def test_classifier_spatial_layer_is_an_existing_layer_of_the_same_pass(extractor):
    """forward_all's features and logits are forward's, bit for bit (the architecture and every other feature are
    unchanged); its spatial features are body[2]'s output (conv-BN-ReLU, 8 x 8 at 16 x 16), first 2 channels."""
    net = extractor.net
    x = MiniClassifier.preprocess(squares(np.random.default_rng(0), 6)).double()
    seen = []
    hook = net.body[2].register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    with torch.no_grad():
        f, logits = net(x)
        f2, logits2, spatial = net.forward_all(x)
    hook.remove()
    assert torch.equal(f, f2) and torch.equal(logits, logits2)
    assert spatial.shape == (6, 8 * 8 * 2) and spatial.dtype == torch.float64
    np.testing.assert_array_equal(spatial.numpy(), seen[0][:, :2].permute(0, 2, 3, 1).reshape(6, -1).numpy())
    assert (spatial >= 0).all() and spatial.std() > 0  # after the ReLU, not degenerate
    plain = MiniworldClassifierExtractor("mw_classifier", net).extract(squares(np.random.default_rng(0), 6), "s")
    ours = extractor.extract(squares(np.random.default_rng(0), 6), "s")
    assert set(plain) == {"features", "logits"} and set(ours) == {"features", "logits", "spatial"}
    assert ours["spatial"].dtype == np.float64
    np.testing.assert_array_equal(ours["features"], plain["features"])


def test_extractor_without_an_sfid_layer_says_so():
    from genbench.features.registry import DinoV2Extractor

    ex = DinoV2Extractor("dino", torch.nn.Identity(), 16)
    with pytest.raises(FeatureInputError, match="extractor 'dino' .*has no sFID layer.*inception_tf or miniworld"):
        ex.with_spatial()
    assert ex.with_spatial(False).spatial is False


def test_sfid_fd_matches_clean_fid_pytorch_fid_and_torch_fidelity(extractor):
    """The Fréchet part on real spatial features (post-ReLU, 128-d, some units often zero): the same statistics
    through each reference's FD, 1e-6 relative (their sqrtm / eigvals routes; docs/metrics.md)."""
    rng = np.random.default_rng(1)
    a = extractor.extract(squares(rng, 300), "a")["spatial"]
    b = extractor.extract(squares(rng, 300, lo=4, hi=7), "b")["spatial"]
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert ours > 0
    tf = fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    tf = float(tf["frechet_inception_distance"])
    assert ours == pytest.approx(tf, rel=1e-6)
    assert ours == pytest.approx(cleanfid_fd(mu1, s1, mu2, s2), rel=1e-6)
    assert ours == pytest.approx(pytorch_fid_fd(mu1, s1, mu2, s2), rel=1e-6)


def test_known_answers_self_zero_and_a_shifted_set_moves_sfid_more_than_fid(extractor):
    """A set against itself: 0. The same squares moved 3 pixels right and down (no other change) against an
    independent draw of the unshifted distribution: both distances grow (this random-weight classifier's pooled
    features are not shift-invariant in 16 x 16 images), sFID by a larger factor (27x against 11x with these seeds):
    the pooled features average much of the position out, the spatial ones keep it. One seeded case, not a general
    property of the stand-in (docs/metrics.md, sFID, gives the other cases measured)."""
    rng = np.random.default_rng(0)
    a, b = squares(rng, 200), squares(rng, 200)
    shifted = np.roll(b, (3, 3), axis=(1, 2))  # the squares stay inside the image: a translation
    fa, fb, fs = (extractor.extract(x, n) for x, n in ((a, "a"), (b, "b"), (shifted, "shifted")))
    for k in ("features", "spatial"):
        assert frechet_distance_features(fa[k], fa[k]) == pytest.approx(0.0, abs=1e-12)
    growth = {k: frechet_distance_features(fa[k], fs[k]) / frechet_distance_features(fa[k], fb[k])
              for k in ("features", "spatial")}
    assert growth["spatial"] > 2 * growth["features"] > 2, growth


def _cell(d=24, n_real=60, n_gen=50):
    rng = np.random.default_rng(3)
    real = {"features": rng.normal(size=(n_real, 8)), "spatial": rng.normal(size=(n_real, d))}
    gen = {"features": rng.normal(size=(n_gen, 8)), "spatial": rng.normal(size=(n_gen, d)) + 0.3}
    return real, gen


def test_sfid_row_is_the_fd_of_the_spatial_features_with_fids_interval():
    real, gen = _cell()
    df = score_cell(real, gen, cell=CELL, metrics=["fid", "sfid"], is_splits=2, bootstrap=BOOT).set_index("metric")
    row = df.loc["sfid"]
    assert row["value"] == pytest.approx(frechet_distance_features(real["spatial"], gen["spatial"]), rel=1e-12)
    assert row["value"] != pytest.approx(df.loc["fid", "value"])
    assert row["ci_method"] == "debiased-percentile, 20 resamples, 0.9"
    assert row["ci_low"] <= row["value"] <= row["ci_high"] or "interval lies entirely" in row["note"]
    assert (row["n"], row["n_real"]) == (50, 60) and row["note"].startswith("24-d spatial features")
    # the same rows whatever else is requested (its resamples are seeded by its own name)
    alone = score_cell(real, gen, cell=CELL, metrics=["sfid"], is_splits=2, bootstrap=BOOT).set_index("metric")
    assert alone.loc["sfid", ["value", "ci_low", "ci_high"]].tolist() == row[["value", "ci_low", "ci_high"]].tolist()
    # fewer samples than dimensions: said in the note
    few = score_cell(*_cell(d=80), cell=CELL, metrics=["sfid"], is_splits=2, bootstrap=BOOT).set_index("metric")
    assert "50 samples <= 80 dimensions: singular covariances" in few.loc["sfid", "note"]


def test_sfid_without_spatial_features_names_the_file_and_the_fix():
    real, gen = _cell()
    del gen["spatial"]
    with pytest.raises(MetricInputError, match=r"^feature set 'm/d/steps1_cfg1/seed0': sfid needs spatial features.*"
                                               r"; rerun its cell_features job with sfid in scoring.metrics"):
        score_cell(real, gen, cell=CELL, metrics=["sfid"], is_splits=2, bootstrap=BOOT)


def test_feature_stages_write_spatial_only_when_asked(tmp_path):
    """features_real and cell_features write ``spatial`` (and record its layer) for the extractors they are told;
    score_cell then scores sfid from the two files."""
    cfg = tiny_config()
    ckpt = classifier_checkpoint(tmp_path / "cls.safetensors")
    man = write_image_set(tmp_path / "real", n=6, sizes=((16, 16),))
    shards = write_shards(tmp_path / "cell", counts=(3, 2))
    stages.stage_features_real("mw_classifier", cfg, ckpt, man, "realset", tmp_path / "plain.npz")
    stages.stage_features_real("mw_classifier", cfg, ckpt, man, "realset", tmp_path / "real.npz", spatial=True)
    out = {"ex_mw_classifier": tmp_path / "gen.npz"}
    ck = {"ex_mw_classifier": ckpt}
    stages.stage_cell_features(cfg, ck, shards, "m/d/steps1_cfg1/seed0", out, spatial=["mw_classifier"])
    plain, real, gen = (load_npz(tmp_path / f) for f in ("plain.npz", "real.npz", "gen.npz"))
    assert "spatial" not in plain and real["spatial"].shape == (6, 128) and gen["spatial"].shape == (5, 128)
    np.testing.assert_array_equal(real["features"], plain["features"])
    assert "body.2" in read_npz_runtime(tmp_path / "gen.npz")["spatial"]
    assert "spatial" not in read_npz_runtime(tmp_path / "plain.npz")
    df = score_cell(real, gen, cell=CELL, metrics=["sfid"], is_splits=2, bootstrap=BOOT)
    assert df["metric"].tolist() == ["sfid"] and np.isfinite(df["value"]).all()


def test_config_and_wiring():
    """Only the scoring extractor's feature files hold spatial features, and only when sfid is requested (the tiny
    config requests it); an extractor without an sFID layer is refused by the config check."""
    cfg = tiny_config()
    w = Wiring(cfg)
    assert w.spatial_extractors == ["mw_classifier"] and w.spatial_features("mw_classifier")
    assert not w.spatial_features("mw_dinov2")  # DINOv2 features are never spatial
    cfg["scoring"]["metrics"] = [m for m in cfg["scoring"]["metrics"] if m != "sfid"]
    assert Wiring(cfg).spatial_extractors == [] and not Wiring(cfg).spatial_features("mw_classifier")
    cfg["scoring"]["metrics"].append("sfid")
    cfg["scoring"]["extractor"] = "mw_dinov2"
    with pytest.raises(ConfigError, match="sfid needs spatial features, which scoring.extractor 'mw_dinov2' "
                                          r"\(kind dinov2\) has not; use an extractor of kind "
                                          "miniworld_classifier or inception_tf"):
        validate_config(cfg)


def test_sfid_against_an_adm_batchs_precomputed_spatial_statistics():
    """An ADM batch scored by its statistics: sFID is against its mu_s / sigma_s (as ADM's published sFIDs), with
    the real side fixed; FID's and sFID's n_real are the batch's image count."""
    from genbench.metrics.context import RealStatistics
    from genbench.metrics.fid import feature_statistics

    real, gen = _cell()
    mu, sigma = feature_statistics(real["features"], "r")
    mu_s, sigma_s = feature_statistics(real["spatial"], "rs")
    st = RealStatistics(mu, sigma, 1234, "the precomputed mu/sigma of ref.npz", mu_s, sigma_s)
    df = score_cell(real, gen, cell=CELL, metrics=["fid", "sfid"], is_splits=2, bootstrap=BOOT,
                    real_statistics=st).set_index("metric")
    row = df.loc["sfid"]
    assert row["value"] == pytest.approx(frechet_distance(mu_s, sigma_s, *feature_statistics(gen["spatial"], "g")))
    assert "real side fixed" in row["ci_method"] and "mu_s/sigma_s of ref.npz" in row["note"]
    assert df.loc["fid", "n_real"] == row["n_real"] == 1234
    no_spatial = RealStatistics(mu, sigma, 1234, "the precomputed mu/sigma of ref.npz")
    df = score_cell(real, gen, cell=CELL, metrics=["sfid"], is_splits=2, bootstrap=BOOT,
                    real_statistics=no_spatial).set_index("metric")
    assert "re-extracted from the batch's images" in df.loc["sfid", "note"]
    assert df.loc["sfid", "value"] == pytest.approx(frechet_distance_features(real["spatial"], gen["spatial"]))
