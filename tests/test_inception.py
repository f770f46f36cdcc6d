"""TF-FID Inception: the production loader on a randomly initialised network saved like pt_inception-2015-12-05,
against torch-fidelity's own implementation loading the same file; resizing against clean-fid's."""

import numpy as np
import pytest
import torch

from genbench.features.inception import FIDInception, resize_to_299
from genbench.features.registry import FeatureInputError, load_extractor


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random FID Inception saved as a plain state dict (the layout of pytorch-fid's release file), with random
    BatchNorm statistics so that the test exercises them."""
    torch.manual_seed(0)
    net = FIDInception()
    state = net.state_dict()
    for k, v in state.items():
        if k.endswith("running_mean"):
            v.copy_(torch.randn_like(v) * 0.1)
        elif k.endswith("running_var"):
            v.copy_(torch.rand_like(v) + 0.5)
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("w") / "pt_inception-test.pth"
    torch.save(state, path)
    return path


def test_equals_torch_fidelity_on_the_same_weights(weights):
    """pool3 features, logits and sFID's spatial features from one pass. The spatial ones (ADM's evaluator: TF
    ``mixed_6/conv:0``, ``[..., :7]``, each image reshaped to one NHWC row) equal the output of torch-fidelity's
    Mixed_6d.branch1x1 (conv, BatchNorm, ReLU; torch-fidelity's converter maps mixed_6/conv's weights there), caught
    by a forward hook."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 299, 299, 3), dtype=np.uint8)
    ex = load_extractor("inception", {"kind": "inception_tf", "resize": "none", "batch_size": 2}, weights,
                        spatial=True)
    ours = ex.extract(images, "random set")
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(weights)).eval()
    seen = []
    ref.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    with torch.no_grad():
        f_ref, l_ref = ref(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous())
    assert ours["features"].shape == (3, 2048) and ours["logits"].shape == (3, 1008)
    assert ours["features"].std() > 1e-3  # not a degenerate network
    # both run in float32 with the same kernels: equal up to float32 rounding
    np.testing.assert_allclose(ours["features"], f_ref.double().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours["logits"], l_ref.double().numpy(), rtol=1e-4, atol=1e-4)
    (fmap,) = seen
    assert fmap.shape == (3, 192, 17, 17)
    expected = fmap.movedim(1, -1)[..., :7].reshape(3, -1).double().numpy()  # as ADM: NHWC, [..., :7], reshape
    assert ours["spatial"].shape == (3, 2023) and (ours["spatial"] >= 0).all() and ours["spatial"].std() > 1e-3
    np.testing.assert_allclose(ours["spatial"], expected, rtol=1e-4, atol=1e-5)
    assert "mixed_6/conv:0" in ex.spatial_layer


def test_clean_resize_equals_clean_fid():
    from cleanfid.resize import make_resizer

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    ours = resize_to_299(images, "clean")
    fn = make_resizer("PIL", False, "bicubic", (299, 299))
    for i in range(2):
        np.testing.assert_array_equal(ours[i].transpose(1, 2, 0), fn(images[i]))


def test_bilinear_resize_and_none_mode():
    images = np.full((1, 16, 16, 3), 200, np.uint8)
    assert np.allclose(resize_to_299(images, "bilinear"), 200.0)
    with pytest.raises(ValueError, match="needs 299 x 299 images, got 16 x 16"):
        resize_to_299(images, "none")
    with pytest.raises(ValueError, match="expected one of"):
        resize_to_299(images, "lanczos")


def test_wrong_state_dict_is_named(tmp_path, weights):
    state = torch.load(weights, weights_only=True)
    del state["fc.weight"]
    state["head.weight"] = torch.zeros(2)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"bad.pth is not a TF-FID Inception state dict: missing \['fc.weight'\]"):
        load_extractor("inception", {"kind": "inception_tf"}, bad)


def test_bad_images_named(weights):
    ex = load_extractor("inception", {"kind": "inception_tf"}, weights)
    with pytest.raises(FeatureInputError, match="image set 'gen x': expected a uint8 array"):
        ex.extract(np.zeros((2, 8, 8, 3), np.float32), "gen x")
    with pytest.raises(FeatureInputError, match="image set 'gen y' is empty"):
        ex.extract(np.zeros((0, 8, 8, 3), np.uint8), "gen y")


def test_tf1_bilinear_resize_equals_torch_fidelity():
    """Regression: genbench had no TF1-compatible bilinear, the resize of torch-fidelity and of torchmetrics'
    FID with antialias=False; bit-exact against torch-fidelity's own resize on CPU."""
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    rng = np.random.default_rng(2)
    for h, w in ((32, 32), (37, 53), (256, 256), (512, 384)):
        images = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        ref = interpolate_bilinear_2d_like_tensorflow1x(torch.from_numpy(images).permute(0, 3, 1, 2).float(),
                                                        size=(299, 299), align_corners=False)
        np.testing.assert_array_equal(resize_to_299(images, "tf1_bilinear"), ref.numpy())
    # it is not pytorch-fid's bilinear (half-pixel centres) nor torchmetrics' antialiased default
    images = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    tf1 = resize_to_299(images, "tf1_bilinear")
    assert np.abs(tf1 - resize_to_299(images, "bilinear")).max() > 1
    assert np.abs(tf1 - resize_to_299(images, "bilinear_antialias")).max() > 1


@pytest.mark.parametrize("mode,antialias", [("tf1_bilinear", False), ("bilinear_antialias", True)])
def test_resize_modes_equal_torch_fidelity_and_torchmetrics_extractors(weights, mode, antialias):
    """The whole extractor on 64 x 64 images: torch-fidelity's FeatureExtractorInceptionV3 (TF1 bilinear) and
    torchmetrics' FID extractor (antialias=True, its default, or False) on the same weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    from torchmetrics.image.fid import NoTrainInceptionV3

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ex = load_extractor("inception", {"kind": "inception_tf", "resize": mode, "batch_size": 2}, weights)
    ours = ex.extract(images, "random set")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    tm = NoTrainInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights),
                            antialias=antialias).eval()
    with torch.no_grad():
        f_tm = tm(x)
        if not antialias:
            tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                             feature_extractor_weights_path=str(weights)).eval()
            f_ref, l_ref = tf(x)
            np.testing.assert_allclose(ours["features"], f_ref.double().numpy(), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(ours["logits"], l_ref.double().numpy(), rtol=1e-4, atol=1e-4)
    f_tm = f_tm[0] if isinstance(f_tm, tuple) else f_tm
    np.testing.assert_allclose(ours["features"], f_tm.reshape(3, -1).double().numpy(), rtol=1e-4, atol=1e-5)
    # the mode is recorded with the tables
    assert mode in ex.describe({"resize": mode}) and ("torchmetrics" in ex.describe({"resize": mode}))
