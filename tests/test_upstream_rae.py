"""The RAE adapter against a stand-in checkout that imitates the upstream API (bytetriper/RAE: stage1.RAE with
decode(), stage2.models.DDT.DiTwDDTHead with forward(x, t, y), the sampling YAML, the models/ file layout), pinned
by git commit like a real checkout. The real RAE code and weights cannot be fetched here."""

import math
import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from genbench.gen2d.generate import generate_shard
from genbench.gen2d.registry import WeightsMissingError, load_generator
from genbench.gen2d.upstream import UpstreamCodeError

STAGE1 = '''
import math
import torch
from torch import nn


class RAE(nn.Module):
    def __init__(self, encoder_cls, encoder_config_path, encoder_input_size, encoder_params, decoder_config_path,
                 pretrained_decoder_path=None, noise_tau=0.0, reshape_to_2d=True, normalization_stat_path=None):
        super().__init__()
        assert open(decoder_config_path + "/config.json").read().startswith("{")
        self.decoder = nn.Conv2d(8, 12, 1)
        self.decoder.load_state_dict(torch.load(pretrained_decoder_path, weights_only=True))
        stats = torch.load(normalization_stat_path, weights_only=True)
        self.latent_mean, self.latent_var = stats["mean"], stats["var"]

    def decode(self, z):
        z = z * torch.sqrt(self.latent_var + 1e-6) + self.latent_mean
        return torch.sigmoid(nn.functional.pixel_shuffle(self.decoder(z), 2))
'''

DDT = '''
import torch
from torch import nn


class DiTwDDTHead(nn.Module):
    def __init__(self, input_size=16, patch_size=1, in_channels=768, hidden_size=(1152, 2048), depth=(28, 2),
                 num_heads=(16, 16), mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, use_qknorm=False,
                 use_swiglu=True, use_rope=True, use_rmsnorm=True, wo_shift=False, use_pos_embed=True):
        super().__init__()
        self.in_channels = in_channels
        self.mix = nn.Conv2d(in_channels, in_channels, 1)
        self.y_embedder = nn.Embedding(num_classes + 1, in_channels)
        self.t_embedder = nn.Linear(1, in_channels)

    def forward(self, x, t, y):
        return (self.mix(x) + self.y_embedder(y)[:, :, None, None]
                + self.t_embedder(t[:, None].to(x.dtype))[:, :, None, None])
'''

SAMPLING_YAML = {
    "stage_1": {"target": "stage1.RAE", "params": {
        "encoder_cls": "Dinov2withNorm", "encoder_config_path": "facebook/dinov2-with-registers-base",
        "encoder_input_size": 224, "encoder_params": {"normalize": True},
        "decoder_config_path": "configs/decoder/ViTXL",
        "pretrained_decoder_path": "models/decoders/model.pt",
        "noise_tau": 0.0, "reshape_to_2d": True, "normalization_stat_path": "models/stats/stat.pt"}},
    "stage_2": {"target": "stage2.models.DDT.DiTwDDTHead",
                "params": {"input_size": 4, "patch_size": 1, "in_channels": 8, "hidden_size": [16, 32],
                           "depth": [1, 1], "num_heads": [2, 2], "num_classes": 4},
                "ckpt": "models/DiTs/stage2_model.pt"},
    "misc": {"latent_size": [8, 4, 4], "num_classes": 4, "time_dist_shift_dim": 128, "time_dist_shift_base": 32},
}


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def rae(tmp_path_factory):
    root = tmp_path_factory.mktemp("rae")
    code, files = root / "RAE", root / "RAE-collections"
    tree = {"src/stage1/__init__.py": STAGE1, "src/stage2/__init__.py": "", "src/stage2/models/__init__.py": "",
            "src/stage2/models/DDT.py": DDT, "configs/decoder/ViTXL/config.json": '{"decoder_hidden_size": 8}',
            "configs/stage2/sampling/tiny.yaml": yaml.safe_dump(SAMPLING_YAML)}
    for rel, text in tree.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_text(textwrap.dedent(text))
    git(root, "init", "-q", str(code))
    git(code, "add", "-A")
    git(code, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "stand-in")
    torch.manual_seed(0)
    for rel, obj in {"models/decoders/model.pt": torch.nn.Conv2d(8, 12, 1).state_dict(),
                     "models/stats/stat.pt": {"mean": torch.zeros(1, 8, 1, 1), "var": torch.ones(1, 8, 1, 1) * 4},
                     "models/DiTs/stage2_model.pt": {"ema": _ddt_state(), "model": {}}}.items():
        (files / rel).parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, files / rel)
    spec = {"family": "rae", "arch": {"code": str(code), "commit": git(code, "rev-parse", "HEAD")[:10],
                                      "config": "configs/stage2/sampling/tiny.yaml"},
            "weights": {"path": str(files)}, "sampler": {"method": "euler", "guidance_interval": [0.0, 0.7]}}
    return spec


def _ddt_state():
    torch.manual_seed(1)
    return {"mix.weight": torch.randn(8, 8, 1, 1) * 0.3, "mix.bias": torch.randn(8) * 0.1,
            "y_embedder.weight": torch.randn(5, 8), "t_embedder.weight": torch.randn(8, 1),
            "t_embedder.bias": torch.randn(8)}


def test_rae_adapter_loads_the_pinned_checkout_and_samples(rae):
    gen = load_generator("rae", rae, None)
    assert gen.noise_shape() == (8, 4, 4)
    ts = gen.grid(4)  # shift sqrt(128 / 32) = 2: t = 2u / (1 + u) on u = 1, .75, .5, .25, 0
    np.testing.assert_allclose(ts, [2 * u / (1 + u) for u in (1, 0.75, 0.5, 0.25, 0)])
    assert gen.shift == math.sqrt(128 / 32)
    noise = torch.randn(3, 8, 4, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2])
    plain = gen.sample(y, noise, 4, 1.0)
    assert plain.x.shape == (3, 3, 8, 8) and plain.nfe == plain.forward_passes == 4
    assert -1 <= float(plain.x.min()) and float(plain.x.max()) <= 1
    # Euler on the shifted grid, by hand, through the stand-in modules
    with torch.no_grad():
        x = noise.clone()
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            x = x + (t_next - t) * gen.stage2(x, torch.full((3,), t), y)
        torch.testing.assert_close(plain.x, gen.stage1.decode(x) * 2 - 1)
    guided = gen.sample(y, noise, 4, 3.0)
    # guidance inside t in [0, 0.7] only: the grid's 1, 0.857 and 0.667 lie outside/inside -> 2 of 4 steps doubled
    assert guided.nfe == 4 and guided.forward_passes == 4 + sum(t <= 0.7 for t in ts[:-1])
    m = pd.DataFrame({"item_id": [f"i{i}" for i in range(5)], "label_id": np.arange(5) % 4})
    one = generate_shard(gen, m, model="rae", dataset="d", global_seed=0, seed=0, steps=3, cfg=2.0, shard=0,
                         n_shards=1, batch_size=2)
    assert one["images"].shape == (5, 8, 8, 3)


def test_rae_adapter_errors_name_the_fix(rae, tmp_path):
    wrong = dict(rae, arch=dict(rae["arch"], commit="0123456789"))
    with pytest.raises(UpstreamCodeError, match="pins 0123456789.*git -C .* checkout 0123456789"):
        load_generator("rae", wrong, None)
    absent = dict(rae, arch=dict(rae["arch"], code=str(tmp_path / "nowhere")))
    with pytest.raises(UpstreamCodeError, match="git clone https://github.com/bytetriper/RAE"):
        load_generator("rae", absent, None)
    empty = tmp_path / "empty-collections"
    empty.mkdir()
    with pytest.raises(WeightsMissingError, match="models/decoders/model.pt is missing"):
        load_generator("rae", dict(rae, weights={"path": str(empty)}), None)
    with pytest.raises(ValueError, match="sampler 'heun' is not available"):
        load_generator("rae", dict(rae, sampler={"method": "heun"}), None)


def test_rae_adapter_places_both_stages_on_the_runtime(rae, monkeypatch):
    """RAE's encoder/decoder (stage 1) and DiT (stage 2) go to the configured device: generate_shard moves the
    noise there, so an unplaced stage would fail on a GPU."""
    from genbench.runtime import Runtime

    placed = []
    orig = Runtime.place
    monkeypatch.setattr(Runtime, "place", lambda self, m: placed.append(m) or orig(self, m))
    gen = load_generator("rae", rae, None, Runtime("t", "cpu", "fp32"))
    gen.place(Runtime("t", "cpu", "fp32"))
    assert gen.stage1 in placed and gen.stage2 in placed
