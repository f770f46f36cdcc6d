"""3D track, the seed benchmark's own inputs for natural objects (genbench.recon3d.photos): GSO thumbnails with an
automatic SAM 2 mask (index 1, as the seed took it), Animal3D photographs with their mask files, kept as each
object's legacy input beside the render; per-model feeding of photos (rgba / rgb)."""

import json

import numpy as np
import pandas as pd
import pytest
import trimesh
from PIL import Image

from genbench.config import ConfigError, validate_config
from genbench.recon3d import objects
from genbench.recon3d.evaluate import reconstruct_dataset
from genbench.recon3d.objects import prepare_objects
from genbench.recon3d.photos import PhotoInputError, Sam2AutoMasks, legacy_input_spec, pick_mask
from genbench.recon3d.reconstructors import ReconstructionError

SMALL = {"render": {"size": 16, "cameras": "single"}, "gt": {"samples": 200, "occupancy_res": 8}}


def _photo(path, h=40, w=60, mode="RGB"):
    """A photo with a bright square object on a dark background (its object mask is rows 10:30, cols 20:44)."""
    arr = np.full((h, w, 3), 30, np.uint8)
    arr[10:30, 20:44] = (200, 120, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).convert(mode).save(path)
    return arr


def _box(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.creation.box(extents=(0.3, 0.4, 0.2)).export(path)


class FakeSam2:
    """Stands in for the SAM 2 pipeline: the whole frame first (highest score), then the object, in score order."""

    def __init__(self, n=2):
        self.n, self.calls = n, 0

    def __call__(self, image):
        self.calls += 1
        whole = np.ones(image.shape[:2], bool)
        obj = np.zeros(image.shape[:2], bool)
        obj[10:30, 20:44] = True
        return [(whole, 0.99), (obj, 0.95)][: self.n]


def _gso(tmp_path, monkeypatch, fake, **legacy):
    root = tmp_path / "gso"
    for name in ("Car", "Cup"):
        _box(root / name / "meshes" / "model.obj")
    _photo(root / "Car" / "thumbnails" / "0.jpg")  # Cup has no thumbnail
    monkeypatch.setattr(objects, "_mask_generator", lambda name, spec, photo_spec: (lambda: fake))
    spec = {"adapter": "gso", "root": str(root), "legacy_input": {"source": "photo", **legacy}, **SMALL}
    return prepare_objects("gso", spec, tmp_path / "out"), tmp_path / "out"


def test_gso_thumbnail_with_the_seeds_second_automatic_mask(tmp_path, monkeypatch):
    fake = FakeSam2()
    df, out = _gso(tmp_path, monkeypatch, fake)
    car, cup = df.set_index("item_id").loc["Car"], df.set_index("item_id").loc["Cup"]
    assert list(df.status) == ["ok", "ok"]  # the render and GT stay: only the legacy input is missing for Cup
    assert car.legacy_input_kind == "photo" and car.legacy_mask_source == "sam2_auto[1]"
    assert car.legacy_input_size == "60x40" and car.legacy_input_source.endswith("Car/thumbnails/0.jpg")
    rgba = np.asarray(Image.open(out / car.legacy_input_path))
    assert rgba.shape == (40, 60, 4)  # the photo's full resolution, as the seed fed it
    want = np.zeros((40, 60), bool)
    want[10:30, 20:44] = True
    assert np.array_equal(rgba[..., 3] == 255, want) and set(np.unique(rgba[..., 3])) == {0, 255}
    assert car.legacy_mask_fraction == pytest.approx(want.mean())
    assert pd.isna(cup.legacy_input_path) and "no photograph" in cup.legacy_input_reason
    assert fake.calls == 1
    # index 0 (the highest score) is the whole frame here: the seed's index is a setting, recorded
    df0, out0 = _gso(tmp_path / "i0", monkeypatch, FakeSam2(), mask={"index": 0})
    assert df0.legacy_mask_source[0] == "sam2_auto[0]" and df0.legacy_mask_fraction[0] == 1.0


def test_gso_with_too_few_automatic_masks_is_a_recorded_skip(tmp_path, monkeypatch):
    df, _ = _gso(tmp_path, monkeypatch, FakeSam2(n=1))
    car = df.set_index("item_id").loc["Car"]
    assert car.status == "ok" and pd.isna(car.legacy_input_path)
    assert "found 1 mask(s); mask index 1" in car.legacy_input_reason
    with pytest.raises(PhotoInputError, match="does not match the photo"):
        pick_mask([(np.ones((3, 3), bool), 1.0)], 0, (4, 4), "x")


def test_animal3d_seed_layout_photos_masks_and_meshes(tmp_path):
    root = tmp_path / "animal3d"
    for cls, stem in (("dog", "d1"), ("dog", "d2"), ("cat", "c1"), ("cat", "c2")):
        _box(root / "obj_files" / "test" / cls / f"{stem}.obj")
    _photo(root / "images" / "test" / "dog" / "d1.jpg", mode="L")  # grayscale photo: converted to RGB
    mask = np.zeros((40, 60, 3), np.uint8)
    mask[5:15, 5:25, 2] = 255  # multi-channel mask: the seed's load_mask takes the last channel
    (root / "masks" / "test" / "dog").mkdir(parents=True)
    Image.fromarray(mask).save(root / "masks" / "test" / "dog" / "d1.png")
    _photo(root / "images" / "test" / "dog" / "d2.png")  # no mask file
    _photo(root / "images" / "test" / "cat" / "c1.jpg")
    (root / "masks" / "test" / "cat").mkdir(parents=True)
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(root / "masks" / "test" / "cat" / "c1.png")  # wrong size
    spec = {"adapter": "animal3d", "root": str(root), "legacy_input": {"source": "photo"}, **SMALL}
    df = prepare_objects("animal3d", spec, tmp_path / "out").set_index("item_id")
    assert sorted(df.index) == ["c1", "c2", "d1", "d2"] and set(df.status) == {"ok"}  # images/ masks/ are no items
    d1 = df.loc["d1"]
    assert d1.category == "dog" and d1.legacy_mask_source.startswith("file:")
    rgba = np.asarray(Image.open(tmp_path / "out" / d1.legacy_input_path))
    assert rgba.shape == (40, 60, 4) and (rgba[..., 0] == rgba[..., 1]).all()  # grey replicated
    assert np.array_equal(rgba[..., 3] > 0, mask[..., 2] > 0)
    assert "no mask" in df.loc["d2"].legacy_input_reason
    assert "20x20, the photo 60x40" in df.loc["c1"].legacy_input_reason
    assert "no photograph named c2" in df.loc["c2"].legacy_input_reason


def test_ambiguous_animal3d_stem_is_skipped(tmp_path):
    root = tmp_path / "a"
    _box(root / "obj_files" / "test" / "x1.obj")  # flat layout: the class is not the mesh's folder
    _photo(root / "images" / "test" / "dog" / "x1.jpg")
    _photo(root / "images" / "test" / "cat" / "x1.jpg")
    spec = {"adapter": "animal3d", "root": str(root), "legacy_input": {"source": "photo"}, **SMALL}
    df = prepare_objects("a", spec, tmp_path / "out")
    assert "2 photographs named x1.*" in df.legacy_input_reason[0] and "ambiguous" in df.legacy_input_reason[0]


def test_legacy_protocol_reconstructs_from_the_photo_and_skips_without_one(tmp_path, monkeypatch):
    df, out = _gso(tmp_path, monkeypatch, FakeSam2())
    manifest = out / "manifest.parquet"
    df.to_parquet(manifest)
    rec = reconstruct_dataset("gso", "ellipsoid", {"kind": "ellipsoid", "resolution": 16}, manifest,
                              tmp_path / "rec", seed=0).set_index(["item_id", "input"])
    assert rec.loc[("Car", "legacy_input"), "status"] == "ok" and rec.loc[("Car", "input"), "status"] == "ok"
    assert rec.loc[("Car", "legacy_input"), "feed"] == "rgba"
    cup = rec.loc[("Cup", "legacy_input")]
    assert cup.status == "skipped" and cup.reason.startswith("no legacy_input: ") and "no photograph" in cup.reason
    assert rec.loc[("Cup", "input"), "status"] == "ok"
    meta = json.loads((tmp_path / "rec" / "legacy_input" / "Car" / "meta.json").read_text())
    assert meta["feed"] == "rgba"
    with pytest.raises(ReconstructionError, match="needs the mask"):
        reconstruct_dataset("gso", "ellipsoid", {"kind": "ellipsoid", "photo_input": "rgb"}, manifest,
                            tmp_path / "rec2", seed=0)


def test_config_checks_photo_settings(tmp_path):
    from genbench.config import load_config

    base = load_config("config/config.yaml")
    bad = json.loads(json.dumps(base))
    bad["reconstructors"]["ellipsoid"]["photo_input"] = "rgb"
    name = next(iter(bad["datasets3d"]))
    bad["datasets3d"][name]["legacy_input"] = {"source": "photo"}
    with pytest.raises(ConfigError) as exc:
        validate_config(bad)
    assert "reconstructors.ellipsoid.photo_input" in str(exc.value)
    assert f"datasets3d.{name}.legacy_input: only gso and animal3d" in str(exc.value)
    with pytest.raises(PhotoInputError, match="mask.source 'rembg'"):
        legacy_input_spec("g", {"adapter": "gso", "legacy_input": {"mask": {"source": "rembg"}}})


def test_sam2_model_is_a_fetchable_weight():
    from genbench.config import load_config
    from genbench.weights import config_weights

    cfg = load_config("config/paper.yaml")
    owners = {w.owner: w for w in config_weights(cfg)}
    assert owners["datasets3d.gso.legacy_input.mask.model"].repo_id == "facebook/sam2-hiera-large"
    assert "datasets3d.animal3d.legacy_input.mask.model" not in owners  # mask files: nothing to fetch


def _tiny_sam2(path):
    """A randomly initialised SAM 2 (Hiera backbone) in the official transformers layout: config.json,
    model.safetensors and the processor's preprocessor_config.json."""
    import torch
    from transformers import Sam2Config, Sam2ImageProcessor, Sam2Model, Sam2Processor
    from transformers.models.sam2.configuration_sam2 import (
        Sam2HieraDetConfig,
        Sam2MaskDecoderConfig,
        Sam2PromptEncoderConfig,
        Sam2VisionConfig,
    )

    torch.manual_seed(0)
    backbone = Sam2HieraDetConfig(hidden_size=8, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[8, 16, 32, 64],
                                  num_attention_heads_per_stage=[1, 1, 1, 1], global_attention_blocks=[3])
    cfg = Sam2Config(vision_config=Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[64, 32, 16, 8],
                                                    fpn_hidden_size=32),
                     prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32),
                     mask_decoder_config=Sam2MaskDecoderConfig(hidden_size=32, num_attention_heads=1, mlp_dim=64,
                                                               iou_head_hidden_dim=32))
    Sam2Model(cfg).eval().save_pretrained(path)
    Sam2Processor(image_processor=Sam2ImageProcessor()).save_pretrained(path)
    return path


def test_sam2_mask_generation_loads_the_official_layout(tmp_path):
    """The real loading path (transformers' mask-generation pipeline, as the seed ran it) on a tiny random SAM 2:
    masks at the photo's size, in descending score order. Thresholds are lowered so that random weights give
    masks at all; the seed used the pipeline's defaults."""
    from genbench.runtime import resolve_runtime

    weights = _tiny_sam2(tmp_path / "sam2")
    gen = Sam2AutoMasks(weights, resolve_runtime({"runtime": {"device": "cpu"}}, "test", metric=True),
                        points_per_batch=64, points_per_crop=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    photo = _photo(tmp_path / "p.jpg", h=48, w=64)
    masks = gen(photo)
    assert masks, "no masks at all with the thresholds at 0"
    assert all(m.shape == (48, 64) and m.dtype == bool for m, _ in masks)
    scores = [s for _, s in masks]
    assert scores == sorted(scores, reverse=True)


def test_photo_rgb_is_a_declared_trait():
    """Which kinds can take the photo alone is declared in the catalogue (the config check reads it)."""
    from genbench.catalog import RECONSTRUCTORS

    assert "photo_rgb" in RECONSTRUCTORS.plugin("hunyuan3d21").traits
    assert "photo_rgb" not in RECONSTRUCTORS.plugin("sam3d").traits  # it takes the mask as an argument
    assert not any("photo_rgb" in RECONSTRUCTORS.plugin(k).traits
                   for k in ("ellipsoid", "extrude", "revolution", "gt_resample"))
