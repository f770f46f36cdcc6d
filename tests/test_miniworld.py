import numpy as np
import pandas as pd
import pytest

from genbench.data.manifest import (
    ImageDecodeError,
    ManifestError,
    decode_image,
    load_images,
    validate_manifest,
)
from genbench.data.miniworld import ALL_CLASSES, build_split
from genbench.io import sha256_file

CLASSES = list(ALL_CLASSES[:8])


def _files(d):
    return {p.relative_to(d).as_posix(): sha256_file(p) for p in sorted(d.rglob("*.png"))}


def test_same_seed_identical_bytes(tmp_path):
    a = build_split(tmp_path / "a", "val", seed=3, classes=CLASSES, per_class=4, image_size=32)
    b = build_split(tmp_path / "b", "val", seed=3, classes=CLASSES, per_class=4, image_size=32)
    pd.testing.assert_frame_equal(a, b)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(_files(tmp_path / "a")) == 32


def test_other_seed_other_images(tmp_path):
    a = build_split(tmp_path / "a", "val", seed=3, classes=CLASSES, per_class=2)
    b = build_split(tmp_path / "b", "val", seed=4, classes=CLASSES, per_class=2)
    assert (a["sha256"] != b["sha256"]).all()


def test_manifest_contract_and_balance(tmp_path):
    df = build_split(tmp_path, "train", seed=0, classes=CLASSES, per_class=5)
    validate_manifest(df, "train")
    assert df["label_id"].value_counts().to_dict() == dict.fromkeys(range(8), 5)
    assert df.loc[3, "prompt"] == f"a photo of a {CLASSES[3]}"
    imgs = load_images(df, tmp_path, size=32)
    assert imgs.shape == (40, 32, 32, 3) and imgs.dtype == np.uint8
    for rel, digest in zip(df["path"], df["sha256"], strict=True):
        assert sha256_file(tmp_path / rel) == digest


def test_v2_is_shifted(tmp_path):
    """Same classes, shifted parameters: v2 backgrounds are brighter on average than val's."""
    val = load_images(build_split(tmp_path / "v", "val", seed=0, classes=CLASSES, per_class=20), tmp_path / "v")
    v2 = load_images(build_split(tmp_path / "w", "v2", seed=0, classes=CLASSES, per_class=20), tmp_path / "w")
    corners = lambda x: np.concatenate([x[:, :3, :3], x[:, -3:, -3:]], axis=1).mean()  # noqa: E731
    assert corners(v2) > corners(val) + 20


def test_laion_captions_are_noisy(tmp_path):
    df = build_split(tmp_path, "laion", seed=0, classes=CLASSES, per_class=50, laion_wrong=0.2,
                     laion_ambiguous=0.1)
    kinds = df["caption_noise"].value_counts(normalize=True)
    assert 0.14 < kinds["wrong"] < 0.26 and 0.05 < kinds["ambiguous"] < 0.15
    wrong = df[df["caption_noise"] == "wrong"]
    assert (wrong["label_id"] != wrong["true_label_id"]).all()
    clean = df[df["caption_noise"] == "clean"]
    assert (clean["label_id"] == clean["true_label_id"]).all()
    assert all(name in cap for name, cap in zip(clean["label_name"], clean["caption"], strict=True))
    assert (df[df["caption_noise"] == "ambiguous"]["label_id"] == -1).all()


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown mini-world split 'test'"):
        build_split(tmp_path, "test", seed=0, classes=CLASSES, per_class=1)


def test_manifest_errors(tmp_path):
    df = build_split(tmp_path, "val", seed=0, classes=CLASSES, per_class=1)
    with pytest.raises(ManifestError, match="lacks column"):
        validate_manifest(df.drop(columns=["sha256"]), "val")
    dup = pd.concat([df, df.iloc[:1]])
    with pytest.raises(ManifestError, match="duplicate item_id"):
        validate_manifest(dup, "val")
    esc = df.copy()
    esc.loc[0, "path"] = "../outside.png"
    with pytest.raises(ManifestError, match="relative and inside"):
        validate_manifest(esc, "val")


def test_corrupt_and_oversized_images(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageDecodeError, match="item 'x1'.*cannot decode"):
        decode_image(bad, "x1")
    from PIL import Image

    Image.new("RGB", (300, 300)).save(tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="item 'x2'.*exceeds the decode cap"):
        decode_image(tmp_path / "big.png", "x2", max_pixels=10_000)
