"""Streaming image sets (genbench.data.stream) through the feature / embedding stages: mixed sizes, bad files per
policy, memory-mapped shards, worker processes, and outputs identical to the whole-set path they replaced."""

import logging

import numpy as np
import pytest
from streamutil import (
    BAD,
    classifier_checkpoint,
    clip_checkpoint,
    dinov2_checkpoint,
    tiny_config,
    write_image_set,
    write_shards,
)

from genbench.data.manifest import ImageDecodeError, load_images, read_manifest
from genbench.data.stream import ManifestImages, ShardImages, iter_batches, npz_member
from genbench.features.registry import FeatureInputError, load_extractor
from genbench.io import load_npz, read_npz_runtime, save_npz
from genbench.metrics.score2d import text_image_scores
from genbench.stages import stage_cell_features, stage_embed_real, stage_features_real


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    d = tmp_path_factory.mktemp("assets")
    cfg = tiny_config()
    return {"cfg": cfg, "cls": classifier_checkpoint(d / "cls.safetensors"),
            "dino": dinov2_checkpoint(d / "dino", cfg), "clip": clip_checkpoint(d / "clip.safetensors", cfg)}


def with_policy(cfg, dataset, policy):
    return {**cfg, "datasets": {**cfg["datasets"], dataset: {"adapter": "miniworld", "decode_errors": policy}}}


@pytest.mark.parametrize("threads", [1, 3])
def test_bad_files_in_the_middle_are_skipped_and_recorded(tmp_path, assets, threads, caplog):
    """A truncated JPEG, a zero-byte file and an undecodable PNG in the middle of a mixed-size set: with
    decode_errors: skip every other item gets its features (the same as on the clean set), the three are listed
    with their reasons, and progress goes to the log."""
    man = write_image_set(tmp_path / "bad", n=12, bad=True)
    clean = write_image_set(tmp_path / "clean", n=12, bad=False)
    cfg = with_policy(assets["cfg"], "realset", "skip")
    with caplog.at_level(logging.INFO):
        stage_features_real("mw_dinov2", cfg, assets["dino"], man, "realset", tmp_path / "f.npz", threads=threads)
    stage_features_real("mw_dinov2", cfg, assets["dino"], clean, "realset", tmp_path / "ref.npz")
    got, ref = load_npz(tmp_path / "f.npz"), load_npz(tmp_path / "ref.npz")
    assert got["item_id"].tolist() == ref["item_id"].tolist() and len(got["item_id"]) == 12
    np.testing.assert_array_equal(got["features"], ref["features"])
    assert got["skipped_item_id"].tolist() == list(BAD)
    assert all(r and "\n" not in r for r in got["skipped_reason"])
    assert "cannot decode" in got["skipped_reason"][0]
    assert "images/s" in caplog.text and "ETA" in caplog.text
    assert "skipping item 'bad_empty'" in caplog.text

    stage_embed_real("mw_clip", cfg, assets["clip"], man, "realset", tmp_path / "e.npz", threads=threads)
    e = load_npz(tmp_path / "e.npz")
    assert len(e["image_emb"]) == len(e["text_emb"]) == 12 and e["skipped_item_id"].tolist() == list(BAD)
    assert e["skipped_text_emb"].shape == (3, 32)
    # a cell generated for the whole manifest (skipped items included) still gets its prompts' embeddings
    gen = {"item_id": np.array(["bad_empty", "item0000"]), "image_emb": e["image_emb"][:2]}
    _, per_gen = text_image_scores(e, gen, "clip", ("real", "gen"))
    te = np.concatenate([e["skipped_text_emb"][1:2], e["text_emb"][:1]])
    want = 100 * np.sum(_unit(gen["image_emb"]) * _unit(te), axis=1)
    np.testing.assert_allclose(per_gen, want, rtol=1e-9)


def test_bad_file_fails_naming_the_item_and_the_fix(tmp_path, assets):
    man = write_image_set(tmp_path, n=12, bad=True)
    for cfg in (assets["cfg"], with_policy(assets["cfg"], "realset", "fail")):  # fail is the default
        with pytest.raises(ImageDecodeError) as err:
            stage_features_real("mw_dinov2", cfg, assets["dino"], man, "realset", tmp_path / "f.npz", threads=2)
        msg = str(err.value)
        assert "bad_truncated" in msg and "decode_errors: skip" in msg and "\n" not in msg
    assert not (tmp_path / "f.npz").exists()


def test_decode_cap_refuses_oversized_images(tmp_path):
    man = write_image_set(tmp_path, n=3, sizes=((64, 64), (8, 8)))
    images = ManifestImages(read_manifest(man), tmp_path, "capped", max_pixels=1000)
    skipped = [s for b in iter_batches(images, 2, policy="skip") for s in b.skipped]
    assert [images.item_id[i] for i, _ in skipped] == ["item0000", "item0002"]
    assert "exceeds the decode cap of 1000 pixels" in skipped[0][1]


def test_streamed_features_are_byte_identical_to_the_whole_set_path(tmp_path, assets):
    """One size (the mini-world's case): the streamed stage writes exactly what decoding the whole set and
    extracting it in memory wrote before, with and without decoding workers."""
    man = write_image_set(tmp_path, n=21, sizes=((16, 16),))
    manifest = read_manifest(man)
    for name, ckpt in (("mw_classifier", assets["cls"]), ("mw_dinov2", assets["dino"])):
        ex = load_extractor(name, assets["cfg"]["extractors"][name], ckpt)
        ex.batch_size = 8  # several batches, the last one short
        old = ex.extract(load_images(manifest, tmp_path), "real")
        cfg = {**assets["cfg"], "extractors": {name: {**assets["cfg"]["extractors"][name], "batch_size": 8}}}
        for threads in (1, 3):
            stage_features_real(name, cfg, ckpt, man, "realset", tmp_path / "new.npz", threads=threads)
            # the stage's file also holds its runtime record (where and how it ran), the same for both paths
            save_npz(tmp_path / "old.npz", runtime=read_npz_runtime(tmp_path / "new.npz"),
                     item_id=manifest["item_id"].to_numpy(str), label_id=manifest["label_id"].to_numpy(np.int64),
                     **old)
            assert (tmp_path / "new.npz").read_bytes() == (tmp_path / "old.npz").read_bytes(), (name, threads)


def test_shards_are_memory_mapped_and_streamed_in_order(tmp_path, assets):
    paths = write_shards(tmp_path)
    cell = ShardImages(paths, "cell")
    full = [load_npz(p) for p in paths]
    want = np.concatenate([f["images"] for f in full if len(f["item_id"])])
    assert len(cell) == 9 and cell.item_id.tolist() == [f"g{i}" for i in range(9)]
    got = np.concatenate([np.stack(b.images) for b in iter_batches(cell, 4, workers=2)])
    np.testing.assert_array_equal(got, want)
    assert not cell._maps  # the worker processes mapped the files, not this one
    cell.load(0)
    assert isinstance(cell._maps[0], np.memmap)
    # a compressed .npz (not what genbench writes) still reads, decompressed per shard
    np.savez_compressed(tmp_path / "c.npz", **full[0])
    np.testing.assert_array_equal(npz_member(tmp_path / "c.npz", "images"), full[0]["images"])

    outs = {"ex_mw_classifier": tmp_path / "c_cls.npz", "em_mw_clip": tmp_path / "c_clip.npz"}
    stage_cell_features(assets["cfg"], {"ex_mw_classifier": assets["cls"], "em_mw_clip": assets["clip"]}, paths,
                        "m/d/steps1_cfg1/seed0", outs, threads=2)
    f = load_npz(outs["ex_mw_classifier"])
    assert f["item_id"].tolist() == cell.item_id.tolist() and f["features"].shape == (9, 64)
    assert f["nfe"].tolist() == [2] * 9 and "skipped_item_id" not in f
    ex = load_extractor("mw_classifier", assets["cfg"]["extractors"]["mw_classifier"], assets["cls"])
    np.testing.assert_array_equal(f["features"], ex.extract(want, "x")["features"])
    assert load_npz(outs["em_mw_clip"])["image_emb"].shape == (9, 32)


def test_mixed_sizes_reach_resizing_extractors_and_the_classifier_names_the_item(tmp_path, assets):
    man = write_image_set(tmp_path, n=6)  # 40x30, 23x57, 64x64
    stage_features_real("mw_dinov2", assets["cfg"], assets["dino"], man, "realset", tmp_path / "d.npz")
    assert load_npz(tmp_path / "d.npz")["features"].shape == (6, 32)
    with pytest.raises(FeatureInputError, match=r"item 'item0001' of image set 'real realset' is 23 x 57"):
        stage_features_real("mw_classifier", assets["cfg"], assets["cls"], man, "realset", tmp_path / "c.npz")


def test_inception_resizes_each_image_of_a_mixed_batch():
    """Mixed sizes: each image is resized to 299 on its own ('clean') and the batch goes through the net once; the
    outputs equal those of each image alone. (A small stand-in net with Inception's interface keeps it fast; the
    real network's numbers are tested in test_inception.py.)"""
    import torch

    from genbench.features.inception import SIZE
    from genbench.features.registry import InceptionTFExtractor

    class Net(torch.nn.Module):  # (N, 3, 299, 299) -> (features, logits), as FIDInception
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 13, stride=13)
            self.calls = []

        def forward(self, x):
            assert x.shape[1:] == (3, SIZE, SIZE)
            self.calls.append(len(x))
            f = self.conv(x).mean(dim=(2, 3))
            return f, f[:, :4]

    torch.manual_seed(0)
    ex = InceptionTFExtractor("inc", Net(), "clean", 4)
    rng = np.random.default_rng(0)
    ims = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((40, 30), (57, 23), (50, 50))]
    mixed = ex.forward_batch(ims, np.array(["a", "b", "c"]), "set")
    assert ex.net.calls == [3]
    for i, im in enumerate(ims):
        alone = ex.forward_batch([im], np.array(["a"]), "set")
        np.testing.assert_allclose(mixed["features"][i], alone["features"][0], rtol=1e-5, atol=1e-6)


def test_what_each_image_mode_decodes_to(tmp_path):
    """EXIF orientation is not applied and alpha is dropped (as clean-fid / torchvision / ADM decode, so features
    match published statistics); grayscale, CMYK and palette become RGB; 16-bit keeps its top 8 bits; a PNG with an
    ICC profile over Pillow's limit is an undecodable item (the set's decode_errors policy applies)."""
    from PIL import Image

    from genbench.data.manifest import decode_image

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:10, :, 0] = 200
    rgb[:, :5, 2] = 255
    im = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    im.save(tmp_path / "exif.jpg", exif=exif.tobytes(), quality=95)
    im.save(tmp_path / "plain.jpg", quality=95)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.jpg", quality=95)
    im.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    g16 = (np.arange(600).reshape(20, 30) * 100).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    im.convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "pal.png")
    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    im.save(tmp_path / "iccp.png", icc_profile=bytes(2_000_000))

    def dec(name):
        out = decode_image(tmp_path / name, name)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        return out.astype(int)

    assert dec("exif.jpg").shape == (20, 30, 3)  # stored orientation, not rotated
    np.testing.assert_array_equal(dec("exif.jpg"), dec("plain.jpg"))
    gray = dec("gray.jpg")
    assert (gray[..., 0] == gray[..., 1]).all() and np.abs(gray[..., 0] - rgb[..., 0]).mean() < 4
    assert np.median(np.abs(dec("cmyk.jpg") - rgb)) <= 2  # JPEG: close, not exact (edges ring)
    np.testing.assert_array_equal(dec("g16.png")[..., 1], g16 >> 8)  # not clipped at 255
    np.testing.assert_array_equal(dec("pal.png"), rgb)
    np.testing.assert_array_equal(dec("rgba.png"), rgb)  # alpha dropped, colour under it kept
    with pytest.raises(ImageDecodeError, match=r"item 'iccp.png' .*MAX_TEXT_CHUNK"):
        decode_image(tmp_path / "iccp.png", "iccp.png")


def test_preparations_center_crop_as_adm_and_squash_with_a_named_filter():
    from PIL import Image

    from genbench.data.stream import Preparation

    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
    # ADM (guided-diffusion center_crop_arr) at 64: 500x375 -> box-halve twice (125x93) -> bicubic short side to
    # 64 (86x64) -> centre crop
    im = Image.fromarray(arr)
    for _ in range(2):
        im = im.resize((im.size[0] // 2, im.size[1] // 2), resample=Image.Resampling.BOX)
    im = im.resize((round(im.size[0] * 64 / im.size[1]), 64), resample=Image.Resampling.BICUBIC)
    want = np.asarray(im)[:, (im.size[0] - 64) // 2:(im.size[0] - 64) // 2 + 64]
    np.testing.assert_array_equal(Preparation("center_crop", 64)(arr), want)
    assert Preparation("center_crop", 64)(arr[:40, :30]).shape == (64, 64, 3)  # small images are upscaled
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(Preparation("squash", 16, "lanczos")(big),
                                  np.asarray(Image.fromarray(big).resize((16, 16), Image.Resampling.LANCZOS)))
    assert Preparation()(arr) is arr
    for spec, msg in (({"method": "crop"}, "expected one of"), ({"method": "squash"}, "positive integer size"),
                      ({"method": "squash", "size": 8, "filter": "nearest"}, "filter 'nearest'")):
        with pytest.raises(ValueError, match=msg):
            Preparation.from_spec(spec, "datasets.x")


def test_prepared_sets_and_cells_are_recorded_with_their_features(tmp_path, assets):
    """A data set's center_crop brings a mixed-size real set to the classifier's size; a model's named downsample
    applies to its cells; both descriptions go into the runtime record the score tables carry."""

    from genbench.config import validate_config
    from genbench.data.stream import Preparation

    man = write_image_set(tmp_path / "real", n=6)  # 40x30, 23x57, 64x64
    real = {"adapter": "miniworld", "split": "val", "prepare": {"method": "center_crop", "size": 16}}
    cfg = {**assets["cfg"], "datasets": {**assets["cfg"]["datasets"], "realset": real}}
    cfg["models"] = {**cfg["models"], "sit_tiny": {**cfg["models"]["sit_tiny"],
                                                   "prepare": {"method": "squash", "size": 8, "filter": "lanczos"}}}
    validate_config(cfg)
    stage_features_real("mw_classifier", cfg, assets["cls"], man, "realset", tmp_path / "f.npz", threads=2)
    ex = load_extractor("mw_classifier", cfg["extractors"]["mw_classifier"], assets["cls"])
    prep = Preparation("center_crop", 16)
    manifest = read_manifest(man)
    want = np.stack([prep(im) for im in (ManifestImages(manifest, tmp_path / "real", "r").load(i) for i in range(6))])
    np.testing.assert_array_equal(load_npz(tmp_path / "f.npz")["features"], ex.extract(want, "x")["features"])
    rec = read_npz_runtime(tmp_path / "f.npz")
    assert rec["prepare"].startswith("center_crop 16 (ADM")
    assert rec["preprocessing"] == ex.describe(cfg["extractors"]["mw_classifier"])  # what the tables' metadata says

    shards = write_shards(tmp_path / "cell", size=32)
    out = tmp_path / "cell.npz"
    stage_cell_features(cfg, {"ex_mw_classifier": assets["cls"]}, shards, "sit_tiny/realset/steps1_cfg1/seed0",
                        {"ex_mw_classifier": out}, model="sit_tiny")
    cell = ShardImages(shards, "c")
    small = np.stack([Preparation("squash", 8, "lanczos")(cell.load(i)) for i in range(len(cell))])
    ex = load_extractor("mw_classifier", cfg["extractors"]["mw_classifier"], assets["cls"])
    np.testing.assert_array_equal(load_npz(out)["features"], ex.extract(small, "x")["features"])
    assert read_npz_runtime(out)["prepare"] == "squash to 8 x 8 (lanczos, no crop)"
    assert read_npz_runtime(out)["preprocessing"] == ex.describe(cfg["extractors"]["mw_classifier"])
