"""MeanFlow Flax -> PyTorch conversion: a tiny Flax DiT with the official module structure (tests/flax_meanflow.py)
is saved as a real Flax TrainState checkpoint (orbax and legacy msgpack), converted, and its forward pass and one-step
sample must equal the converted PyTorch network's. Tolerance: 2e-5 x the largest output magnitude (float32 rounding
through two blocks; the EMA entry's outputs are ~3, the raw parameters' ~30)."""

import json

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
flax = pytest.importorskip("flax")

import jax.numpy as jnp  # noqa: E402
from flax.training import checkpoints  # noqa: E402
from flax_meanflow import tiny_train_state  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from genbench.gen2d.convert import ConversionError, convert_model  # noqa: E402
from genbench.gen2d.registry import WeightsMissingError, load_generator  # noqa: E402

FLAX_ARCH = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=4, num_classes=10)
ARCH = {**FLAX_ARCH, "learn_sigma": False}


@pytest.fixture(scope="module")
def flax_ckpt(tmp_path_factory):
    model, state = tiny_train_state(**FLAX_ARCH)
    d = tmp_path_factory.mktemp("mf_flax")
    checkpoints.save_checkpoint(str(d), state, step=1234)
    return model, state, d


def spec_for(ckpt, entry="ema_params", arch=ARCH):
    return {"family": "meanflow", "arch": dict(arch), "sampler": {"method": "meanflow"},
            "convert": {"format": "meanflow_flax", "checkpoint": str(ckpt), "entry": entry}}


def flax_u(model, params, x, t, h, y):
    out = model.apply({"params": params}, jnp.asarray(x.permute(0, 2, 3, 1).numpy()), jnp.asarray(t.numpy()),
                      jnp.asarray(h.numpy()), jnp.asarray(y.numpy()))
    return torch.from_numpy(np.array(out)).permute(0, 3, 1, 2)


@pytest.mark.parametrize("entry", ["ema_params", "params"])
def test_converted_network_equals_the_flax_network(flax_ckpt, tmp_path, entry):
    model, state, d = flax_ckpt
    out = tmp_path / "converted.safetensors"
    meta = convert_model("mf", spec_for(d, entry), out)
    assert meta["step"] == 1234 and meta["entry"] == entry and meta["arch"]["depth"] == 2
    assert json.loads(out.with_suffix(".json").read_text())["source_sha256"] == meta["source_sha256"]
    gen = load_generator("mf", spec_for(d, entry), out)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 4, 8, 8, generator=g)
    t, h, y = torch.tensor([1.0, 0.7, 0.5, 0.2]), torch.tensor([1.0, 0.3, 0.0, 0.2]), torch.tensor([0, 3, 9, 10])
    with torch.no_grad():
        ours = gen.net(x, t, y, h=h)
    ref = flax_u(model, state[entry], x, t, h, y)
    assert ref.abs().max() > 0.5  # a real signal, not zeros
    tol = 2e-5 * ref.abs().max().item()
    torch.testing.assert_close(ours, ref, atol=tol, rtol=0)
    # one MeanFlow step from t = 1 through the production sampler: x = z - u(z, 1, h = 1)
    z, labels = x[:2], torch.tensor([1, 2])
    expect = z - flax_u(model, state[entry], z, torch.ones(2), torch.ones(2), labels)
    torch.testing.assert_close(gen.sample(labels, z, 1, 1.0).x, expect, atol=tol, rtol=0)


def test_entries_differ_and_legacy_msgpack_format(flax_ckpt, tmp_path):
    model, state, d = flax_ckpt
    convert_model("mf", spec_for(d, "ema_params"), tmp_path / "ema.safetensors")
    convert_model("mf", spec_for(d / "checkpoint_1234", "params"), tmp_path / "raw.safetensors")
    ema, raw = load_file(str(tmp_path / "ema.safetensors")), load_file(str(tmp_path / "raw.safetensors"))
    torch.testing.assert_close(ema["blocks.1.mlp.fc2.weight"], 0.5 * raw["blocks.1.mlp.fc2.weight"])
    # the msgpack single-file format of older flax checkpoints
    legacy = tmp_path / "legacy"
    flax.config.update("flax_use_orbax_checkpointing", False)
    try:
        checkpoints.save_checkpoint(str(legacy), state, step=7)
    finally:
        flax.config.update("flax_use_orbax_checkpointing", True)
    assert (legacy / "checkpoint_7").is_file()
    convert_model("mf", spec_for(legacy), tmp_path / "legacy.safetensors")
    for k, v in load_file(str(tmp_path / "legacy.safetensors")).items():
        torch.testing.assert_close(v, ema[k], atol=0, rtol=0)


def test_conversion_errors_are_named(flax_ckpt, tmp_path):
    _, state, d = flax_ckpt
    with pytest.raises(WeightsMissingError, match="MF-B/4 archive"):
        convert_model("mf", spec_for(tmp_path / "absent"), tmp_path / "x.safetensors")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="holds no Flax checkpoint"):
        convert_model("mf", spec_for(tmp_path / "empty"), tmp_path / "x.safetensors")
    with pytest.raises(ConversionError, match="do not fit the configured arch.*'depth': 2"):
        convert_model("mf", spec_for(d, arch={**ARCH, "depth": 3}), tmp_path / "x.safetensors")
    with pytest.raises(ConversionError, match="shape mismatches"):
        convert_model("mf", spec_for(d, arch={**ARCH, "hidden_size": 64}), tmp_path / "x.safetensors")
    # a tree with a parameter the MeanFlow DiT does not have
    odd = {**state, "ema_params": {"net": {**state["ema_params"]["net"], "extra": {"kernel": np.ones((2, 2))}}}}
    checkpoints.save_checkpoint(str(tmp_path / "odd"), odd, step=1)
    with pytest.raises(ConversionError, match="not mapped.*extra/kernel"):
        convert_model("mf", spec_for(tmp_path / "odd"), tmp_path / "x.safetensors")
    with pytest.raises(ConversionError, match="no 'ema_params' entry"):
        checkpoints.save_checkpoint(str(tmp_path / "noema"), {"params": state["params"]}, step=1)
        convert_model("mf", spec_for(tmp_path / "noema"), tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()
