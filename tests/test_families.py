"""Every generator family: a tiny random instance saved the way the real checkpoints are (state dict with the
official parameter names / diffusers save_pretrained), loaded and sampled through the production code."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from genbench.gen2d.families import SoFlowNet, backbone_from_arch, dit_preset, get_family_net
from genbench.gen2d.generate import generate_shard
from genbench.gen2d.registry import WeightsMissingError, load_generator
from genbench.seeding import item_noise_stream

ARCH = {"input_size": 8, "patch_size": 2, "in_channels": 3, "hidden_size": 32, "depth": 2, "num_heads": 2,
        "num_classes": 4, "learn_sigma": False, "class_dropout_prob": 0.1}
METHOD = {"sit": "euler", "meanflow": "meanflow", "soflow": "soflow"}


def randomised(net):
    torch.manual_seed(0)
    for p in net.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    return net


def save_family(tmp_path, family, arch=ARCH, fmt="safetensors"):
    net = randomised(get_family_net(family, arch))
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = tmp_path / f"{family}.{'safetensors' if fmt == 'safetensors' else 'pt'}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:  # the official SoFlow / SiT training checkpoints: a dict with the EMA weights under a key
        torch.save({"model": state, fmt: state, "optimizer": {}}, path)
    spec = {"family": family, "arch": dict(arch), "weights": {"path": str(path)}, "sampler": {"method": METHOD[family]}}
    return spec, net


def sample(gen, steps, cfg, n=3):
    noise = torch.randn(n, *gen.noise_shape(), generator=torch.Generator().manual_seed(1))
    return gen.sample(torch.arange(n) % 4, noise, steps, cfg, noise_source=item_noise_stream(list(range(n)),
                                                                                            gen.noise_shape()))


@pytest.mark.parametrize("family", ["sit", "meanflow", "soflow"])
def test_tiny_instance_loads_and_samples(tmp_path, family):
    spec, _ = save_family(tmp_path, family)
    gen = load_generator("m", spec, None)
    for steps in (1, 2):
        res = sample(gen, steps, 1.0)
        assert res.x.shape == (3, 3, 8, 8) and torch.isfinite(res.x).all()
        assert res.nfe == steps and res.forward_passes == steps
    guided = sample(gen, 2, 2.0)
    assert guided.nfe == 2 and guided.forward_passes == 4
    assert float((guided.x - sample(gen, 2, 1.0).x).abs().max()) > 1e-4


def test_official_checkpoint_layouts(tmp_path):
    """SoFlow's .pt keeps the EMA model under 'ema_model' with the DiT under 'network.'; SiT's under 'ema'."""
    spec, net = save_family(tmp_path, "soflow", fmt="ema_model")
    keys = set(net.state_dict())
    assert {"network.s_embedder.mlp.0.weight", "network.t_embedder.mlp.2.bias", "network.blocks.1.attn.qkv.weight",
            "network.y_embedder.embedding_table.weight", "network.final_layer.linear.weight"} <= keys
    gen = load_generator("s", spec, None)
    torch.testing.assert_close(gen.net.network.s_embedder.mlp[0].weight, net.network.s_embedder.mlp[0].weight)
    mf = get_family_net("meanflow", ARCH)
    assert "h_embedder.mlp.0.weight" in mf.state_dict()  # MeanFlow's DiT: t_embedder + h_embedder (h = t - r)
    assert "omega_embedder.mlp.0.weight" in get_family_net("meanflow", {**ARCH, "guidance_input": True}).state_dict()


def test_wrong_architecture_named(tmp_path):
    spec, _ = save_family(tmp_path, "soflow")
    spec["arch"]["hidden_size"] = 64
    with pytest.raises(ValueError, match="does not match arch"):
        load_generator("s", spec, None)
    spec, _ = save_family(tmp_path, "sit")
    spec["family"], spec["sampler"] = "meanflow", {"method": "meanflow"}  # a SiT checkpoint lacks h_embedder
    with pytest.raises(ValueError, match="missing.*h_embedder"):
        load_generator("s", spec, None)


def test_presets_match_the_papers_sizes():
    assert dit_preset("SoFlow-XL/2") == {"depth": 28, "hidden_size": 1152, "num_heads": 16, "patch_size": 2}
    assert dit_preset("MeanFlow-B/4")["patch_size"] == 4
    with torch.device("meta"):
        sit = backbone_from_arch({"config": "SiT-XL/2", "input_size": 32, "in_channels": 4})
        so = SoFlowNet(backbone_from_arch({"config": "SoFlow-XL/2", "input_size": 32, "in_channels": 4,
                                           "learn_sigma": False}, ("s",)))
    n_sit = sum(p.numel() for p in sit.parameters())
    assert n_sit == 675_129_632  # SiT-XL/2 as published (DiT-XL/2 layout)
    # SoFlow-XL/2: no sigma channels (-2 * 2 * 4 outputs) and one more timestep embedder
    emb = 256 * 1152 + 1152 + 1152 * 1152 + 1152
    assert sum(p.numel() for p in so.parameters()) == n_sit - 1152 * 16 - 16 + emb
    with pytest.raises(ValueError, match="unknown DiT preset"):
        dit_preset("XL2")


def test_meanflow_guidance_as_input_is_one_pass(tmp_path):
    spec, _ = save_family(tmp_path, "meanflow", {**ARCH, "guidance_input": True})
    gen = load_generator("m", spec, None)
    a, b = sample(gen, 1, 1.0), sample(gen, 1, 3.0)
    assert a.forward_passes == b.forward_passes == 1
    assert float((a.x - b.x).abs().max()) > 1e-4  # omega reaches the network
    spec["sampler"]["guidance_interval"] = [0.2, 0.8]
    with pytest.raises(ValueError, match="guidance interval"):
        load_generator("m", spec, None)


def test_meanflow_one_step_is_noise_minus_u(tmp_path):
    spec, net = save_family(tmp_path, "meanflow")
    gen = load_generator("m", spec, None)
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 3])
    with torch.no_grad():
        expect = noise - net(noise, torch.ones(2), y, h=torch.ones(2))
    torch.testing.assert_close(gen.sample(y, noise, 1, 1.0).x, expect, atol=1e-6, rtol=0)


def test_soflow_one_step_is_the_solution_at_zero(tmp_path):
    spec, net = save_family(tmp_path, "soflow")
    gen = load_generator("s", spec, None)
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([1, 2])
    with torch.no_grad():  # f(e, 1, 0) = e + (0 - 1) F(e, t=1, t-s=1)
        expect = noise - net.network(noise, torch.ones(2), y, s=torch.ones(2))
    torch.testing.assert_close(gen.sample(y, noise, 1, 1.0).x, expect, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family,method,steps", [("soflow", "soflow", 3), ("sit", "euler_maruyama", 4),
                                                 ("sit", "dopri5", 1)])
def test_stochastic_and_adaptive_samplers_are_shard_invariant(tmp_path, family, method, steps):
    spec, _ = save_family(tmp_path, family)
    spec["sampler"] = {"method": method}
    gen = load_generator("m", spec, None)
    m = pd.DataFrame({"item_id": [f"i{i}" for i in range(10)], "label_id": np.arange(10) % 4,
                      "prompt": ["x"] * 10})

    def run(k):
        parts = [generate_shard(gen, m, model="m", dataset="d", global_seed=0, seed=0, steps=steps, cfg=1.5,
                                shard=s, n_shards=k, batch_size=4) for s in range(k)]
        return np.concatenate([p["images"] for p in parts]), np.concatenate([p["nfe"] for p in parts])

    (one, nfe1), (three, _) = run(1), run(3)
    assert one.tobytes() == three.tobytes() and one.std() > 5
    if method != "dopri5":
        assert set(nfe1) == {steps}


def test_missing_weights_and_wrong_sampler(tmp_path):
    spec, _ = save_family(tmp_path, "soflow")
    spec["weights"] = {"path": str(tmp_path / "absent.pt")}
    with pytest.raises(WeightsMissingError, match="absent.pt"):
        load_generator("s", spec, None)
    spec, _ = save_family(tmp_path, "soflow")
    spec["sampler"] = {"method": "euler"}
    with pytest.raises(ValueError, match="sampler 'euler' is not available"):
        load_generator("s", spec, None)


def test_latent_model_decodes_with_its_vae(tmp_path):
    """A latent SiT (4 channels) with a diffusers AutoencoderKL folder: images come out at the VAE's scale."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(4, 4), down_block_types=(
        "DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
        norm_num_groups=2)
    vae.save_pretrained(str(tmp_path / "vae"))
    arch = {**ARCH, "in_channels": 4}
    spec, _ = save_family(tmp_path, "sit", arch)
    spec["arch"]["vae"] = {"path": str(tmp_path / "vae"), "scale": 0.18215}
    spec["sampler"]["cfg_channels"] = 3
    gen = load_generator("m", spec, None)
    res = sample(gen, 2, 1.5)
    assert gen.noise_shape() == (4, 8, 8) and res.x.shape == (3, 3, 16, 16)
    spec["arch"]["vae"] = {"path": str(tmp_path / "no-vae")}
    with pytest.raises(WeightsMissingError, match="arch.vae"):
        load_generator("m", spec, None)


@pytest.fixture(scope="module")
def tiny_pipelines(tmp_path_factory):
    from tiny_pipelines import save_tiny_flux, save_tiny_sd3

    d = tmp_path_factory.mktemp("pipelines")
    return {"sd35": save_tiny_sd3(d / "sd35"), "flux1": save_tiny_flux(d / "flux1")}


@pytest.mark.parametrize("family", ["sd35", "flux1"])
def test_text_to_image_pipeline_loads_offline_and_generates(tiny_pipelines, family, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_pipelines[family]
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] in (
        "StableDiffusion3Pipeline", "FluxPipeline")
    spec = {"family": family, "weights": {"path": str(folder)}, "sampler": {"method": "pipeline"}, "resolution": 32}
    gen = load_generator(family, spec, None)
    m = pd.DataFrame({"item_id": [f"i{i}" for i in range(5)], "label_id": np.arange(5) % 2,
                      "prompt": ["a photo of a cat", "a photo of a dog"] * 2 + ["<b>a</b> photo"]})
    parts = [generate_shard(gen, m, model="t", dataset="d", global_seed=0, seed=0, steps=2, cfg=3.0, shard=s,
                            n_shards=k, batch_size=2) for k in (1, 2) for s in range(k)]
    one = parts[0]
    two = np.concatenate([p["images"] for p in parts[1:]])
    assert one["images"].shape == (5, 32, 32, 3) and one["images"].std() > 1
    np.testing.assert_array_equal(one["images"], two)  # same global blocks: sharding changes nothing
    passes = {"sd35": 4, "flux1": 2}[family]  # SD3.5: CFG doubles the passes; FLUX.1-dev: guidance embedding
    assert set(one["nfe"]) == {2} and set(one["forward_passes"]) == {passes}
    with pytest.raises(ValueError, match="one prompt per item"):
        gen.sample(torch.tensor([0]), torch.zeros(1, *gen.noise_shape()), 2, 1.0)


def test_pipeline_folder_checked(tmp_path):
    (tmp_path / "empty").mkdir()
    spec = {"family": "flux1", "weights": {"path": str(tmp_path / "empty")}, "sampler": {"method": "pipeline"}}
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        load_generator("f", spec, None)


def test_imeanflow_tiny_instance_and_official_layout(tmp_path):
    from genbench.gen2d.imf import IMeanFlowNet

    arch = {"input_size": 8, "patch_size": 2, "in_channels": 3, "hidden_size": 32, "depth": 3, "num_heads": 2,
            "num_classes": 4, "aux_head_depth": 1}
    torch.manual_seed(0)
    net = IMeanFlowNet(**arch)
    with torch.no_grad():  # random everything (the zero-initialised gates and output would hide the inputs)
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.3)
    keys = set(net.state_dict())
    assert {"net.h_embedder.mlp.0._flax_linear.weight", "net.omega_embedder.mlp.2._flax_linear.bias",
            "net.cfg_t_start_embedder.mlp.0._flax_linear.weight",
            "net.y_embedder.embedding_table._flax_embedding.weight",
            "net.class_tokens", "net.t_max_tokens", "net.shared_blocks.1.attn.q_norm.weight",
            "net.shared_blocks.0.mlp.w3._flax_linear.weight", "net.u_heads.0.attn_scale",
            "net.u_final_layer.linear._flax_linear.bias", "net.v_final_layer.norm.weight"} <= keys
    assert not any("rope" in k for k in keys)
    torch.save(net.state_dict(), tmp_path / "imf.pth")  # the published .pth is a bare state dict
    spec = {"family": "imeanflow", "arch": arch, "weights": {"path": str(tmp_path / "imf.pth")},
            "sampler": {"method": "meanflow", "guidance_interval": [0.3, 0.7]}}
    gen = load_generator("i", spec, None)
    a, b = sample(gen, 1, 1.0), sample(gen, 2, 4.0)
    assert a.nfe == a.forward_passes == 1 and b.nfe == b.forward_passes == 2
    assert float((sample(gen, 1, 4.0).x - a.x).abs().max()) > 1e-4  # omega is an input
    noise = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 3])
    with torch.no_grad():  # one step: z - u(z, h = 1, omega, interval)
        expect = noise - net.net(noise, torch.ones(2), torch.full((2,), 2.0), torch.full((2,), 0.3),
                                 torch.full((2,), 0.7), y)
    torch.testing.assert_close(gen.sample(y, noise, 1, 2.0).x, expect, atol=1e-6, rtol=0)
    # a per-steps interval (the sweep's per_steps, e.g. iMF's 2-NFE [0.36, 0.64]) is fed at that step count only
    spec["sampler"]["per_steps"] = {"2": {"guidance_interval": [0.36, 0.64]}}
    gen2 = load_generator("i", spec, None)
    torch.testing.assert_close(gen2.sample(y, noise, 1, 2.0).x, expect, atol=0, rtol=0)
    with torch.no_grad():
        z = noise - 0.5 * net.net(noise, torch.full((2,), 0.5), torch.full((2,), 4.0), torch.full((2,), 0.36),
                                  torch.full((2,), 0.64), y)
        expect2 = z - 0.5 * net.net(z, torch.full((2,), 0.5), torch.full((2,), 4.0), torch.full((2,), 0.36),
                                    torch.full((2,), 0.64), y)
    torch.testing.assert_close(gen2.sample(y, noise, 2, 4.0).x, expect2, atol=1e-6, rtol=0)
    with torch.device("meta"):
        from genbench.gen2d.imf import imf_from_arch

        xl = imf_from_arch({"config": "iMF-XL/2", "input_size": 32, "in_channels": 4})
    # iMF-XL/2: 48 blocks of width 1024 (40 shared + 8 u-head); per block 4 * 1024^2 (attention) + 3 * 1024 * 2730
    # (SwiGLU, ratio 8/3) + 4 * 1024 (norms, gates) + 2 * 64 (q/k norms), ~610M with embedders at inference
    assert len(xl.net.shared_blocks) == 40 and len(xl.net.u_heads) == 8
    per_block = 4 * 1024**2 + 3 * 1024 * 2730 + 4 * 1024 + 2 * 64
    n = sum(p.numel() for p in xl.parameters())
    assert 48 * per_block < n < 48 * per_block + 10_000_000, n


def _tiny_vae(folder):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(4, 4), down_block_types=(
        "DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
        norm_num_groups=2)
    vae.save_pretrained(str(folder))
    return vae.eval()


def test_imf_latents_decode_with_upstream_per_channel_normalisation(tmp_path):
    """Regression: iMF latents were divided by 0.18215; upstream (imeanflow torch branch, utils/vae_util.py) decodes
    z * std + mean with per-channel statistics, and paper.yaml's iMF entry carries them."""
    import yaml

    from genbench.gen2d.families import LatentDecoder

    vae = _tiny_vae(tmp_path / "vae")
    paper = yaml.safe_load(open("config/paper.yaml"))
    spec = {k: v for k, v in paper["models"]["imeanflow"]["arch"]["vae"].items() if k != "repo_id"}
    mean = torch.tensor([0.86488, -0.27787343, 0.21616915, 0.3738409]).view(1, -1, 1, 1)
    std = torch.tensor([4.85503674, 5.31922414, 3.93725398, 3.9870003]).view(1, -1, 1, 1)
    dec = LatentDecoder("models.imeanflow", {**spec, "path": str(tmp_path / "vae")})
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(dec.to_vae(z), z * std + mean)
    with torch.no_grad():
        assert torch.equal(dec(z), vae.decode(z * std + mean).sample)
    # the SD convention stays a division by the scalar scale, as SiT's sample.py writes it
    sd = LatentDecoder("models.sit", {"path": str(tmp_path / "vae"), "scale": 0.18215})
    assert torch.equal(sd.to_vae(z), z / 0.18215)
    for bad, match in (({"latent_mean": [0.0] * 4}, "both"), ({"latent_mean": [0.0] * 3, "latent_std": [1.0] * 3},
                                                               "3 values but the VAE has 4"),
                       ({"scale": 0.2, "latent_mean": [0.0] * 4, "latent_std": [1.0] * 4}, "not both")):
        with pytest.raises(ValueError, match=match):
            LatentDecoder("models.m", {"path": str(tmp_path / "vae"), **bad})


def test_pipeline_weights_load_in_the_runtime_precision_and_move_at_place(tiny_pipelines, monkeypatch):
    """A text-to-image pipeline loads its weights in the runtime's dtype (bf16 as weights, not autocast over a
    float32 copy), arch.dtype overrides it, and place() moves the whole pipeline to the runtime's device."""
    from genbench.gen2d.pipelines import weight_dtype
    from genbench.runtime import Runtime

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = {"family": "sd35", "weights": {"path": str(tiny_pipelines["sd35"])}, "sampler": {"method": "pipeline"},
            "resolution": 32}
    bf16 = Runtime("generate", "cpu", "bf16")
    gen = load_generator("sd35", spec, None, bf16)
    assert gen.pipe.transformer.dtype == torch.bfloat16 and gen.pipe.vae.dtype == torch.bfloat16
    moved = []
    monkeypatch.setattr(type(gen.pipe), "to", lambda self, *a, **k: moved.append(a) or self)
    gen.place(bf16)
    assert moved == [(torch.device("cpu"),)] and gen.device == torch.device("cpu") and gen.runtime is bf16
    assert weight_dtype({}, Runtime("g", "cpu", "fp32")) == torch.float32
    assert weight_dtype({}, Runtime("g", "cuda", "tf32")) == torch.float32
    assert weight_dtype({}, Runtime("g", "cuda", "fp16")) == torch.float16
    assert weight_dtype({"dtype": "float16"}, bf16) == torch.float16  # the config's arch.dtype wins
    assert weight_dtype({}, None, "cuda") == torch.bfloat16 and weight_dtype({}, None, "cpu") == torch.float32
