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
