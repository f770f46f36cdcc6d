"""The FairBenchmarkingFlow block of config/paper.yaml: its checks, and the anchor's text-to-image downsampling."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from genbench.config import ConfigError, cells, validate_config
from genbench.gen2d.pipelines import lanczos_downsample

ROOT = Path(__file__).resolve().parents[1]


def _paper():
    return yaml.safe_load((ROOT / "config/paper.yaml").read_text())


def test_paper_anchor_block():
    config = validate_config(_paper())
    blocks = [b for b in config["sweep"] if b.get("anchor")]
    assert blocks, "paper.yaml has no FairBenchmarkingFlow (anchor) block"
    for b in blocks:
        assert set(b["steps"]) <= {1, 25}
        assert all(s.startswith("src/") and s.endswith(".sh") for s in b["anchor"]["scripts"])
    # the shared CFG 7.0 wherever guidance applies; SoFlow only in an unguided block
    guided = [b for b in blocks if not b["anchor"]["unguided"]]
    assert all(7.0 in b["cfg"] or b["models"] == ["scale_rae"] for b in guided)
    assert all("soflow" not in b["models"] for b in guided)
    unguided = [b for b in blocks if b["anchor"]["unguided"]]
    assert any("soflow" in b["models"] for b in unguided) and all(b["cfg"] == [1.0] for b in unguided)
    # text-to-image at the native 1024 px, downsampled to 256 px
    t2i = {m for b in blocks for m in b["models"] if config["models"][m]["family"] in ("sd35", "flux1")}
    assert t2i and all(config["models"][m]["resolution"] == 1024 and config["models"][m]["output_size"] == 256
                       for m in t2i)
    have = {(c.model, c.steps, c.cfg) for c in cells(config) if c.dataset == "imagenet_val"}
    assert {("rae", 1, 7.0), ("rae", 25, 1.42), ("flux1_1024", 25, 3.5), ("soflow", 25, 1.0)} <= have


def test_unguided_block_must_run_cfg_1():
    config = _paper()
    block = next(b for b in config["sweep"] if (b.get("anchor") or {}).get("unguided"))
    block["cfg"] = [1.0, 7.0]
    with pytest.raises(ConfigError, match=r"anchor\.unguided"):
        validate_config(config)


def test_lanczos_downsample_as_pil():
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1
    out = lanczos_downsample(x, 16)
    assert out.shape == (2, 3, 16, 16)
    want = np.asarray(Image.fromarray(u8[1]).resize((16, 16), Image.LANCZOS))
    got = ((out[1].permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
    assert np.array_equal(got, want)
    # not the bilinear / bicubic resize a different pipeline would use
    bicubic = np.asarray(Image.fromarray(u8[1]).resize((16, 16), Image.BICUBIC))
    assert not np.array_equal(got, bicubic)


def test_pipeline_output_size_downsamples(tmp_path):
    """A text-to-image model with output_size generates at its resolution and returns the LANCZOS-downsampled
    image (the anchor's 1024 -> 256 px), the same as downsampling the full-size generation."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_pipelines import save_tiny_sd3

    from genbench.gen2d.registry import load_generator

    # (no HF_HUB_OFFLINE here: huggingface_hub reads it once at import, and the pipeline loads local files only)
    folder = save_tiny_sd3(tmp_path / "sd35")
    spec = {"family": "sd35", "weights": {"path": str(folder)}, "sampler": {"method": "pipeline"}, "resolution": 32}
    full = load_generator("sd35", spec, None)
    small = load_generator("sd35", {**spec, "output_size": 16}, None)
    noise = torch.randn(2, *full.noise_shape(), generator=torch.Generator().manual_seed(0))
    labels, prompts = torch.tensor([0, 1]), ["a photo of a cat", "a photo of a dog"]
    big = full.sample(labels, noise, 2, 3.0, prompts=prompts).x
    out = small.sample(labels, noise, 2, 3.0, prompts=prompts).x
    assert big.shape[-1] == 32 and out.shape[-1] == 16
    torch.testing.assert_close(out, lanczos_downsample(big, 16))
