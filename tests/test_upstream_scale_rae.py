"""The Scale-RAE adapter against a stand-in checkout that imitates the upstream API at the pinned commit
(ZitengWangNYU/Scale-RAE dab3800: builder.load_pretrained_model -> (tokenizer, model, processor, context);
model.generate(input_ids, images=None, guidance_level=..., ...) -> (ids, image_embeds (T, D)); model.diff_head with
infer(), inference_flow from diffusion.create_diffusion(str(N), ...) = N respaced timesteps = N - 1 Euler
evaluations, forward_with_cfg calling self.forward on the doubled batch; MultimodalDecoder(features with a CLS slot)),
pinned by git commit like a real checkout. The real code and weights (Qwen2.5 + 2.4B DiT) cannot be fetched here."""

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch

from genbench.gen2d.generate import generate_shard
from genbench.gen2d.registry import WeightsMissingError, load_generator
from genbench.gen2d.upstream import UpstreamCodeError
from genbench.weights import config_weights

CONVERSATION = '''
class Conversation:
    def __init__(self, system, roles):
        self.system, self.roles, self.messages = system, roles, []

    def copy(self):
        c = Conversation(self.system, self.roles)
        c.messages = [list(m) for m in self.messages]
        return c

    def append_message(self, role, message):
        self.messages.append([role, message])

    def get_prompt(self):
        out = f"<|im_start|>system\\n{self.system}<|im_end|>\\n"
        for role, msg in self.messages:
            out += f"<|im_start|>{role}\\n" + (f"{msg}<|im_end|>\\n" if msg is not None else "")
        return out


conv_templates = {"qwen_2": Conversation("You are a helpful assistant.", ("user", "assistant"))}
'''

MM_UTILS = '''
import os
import torch


def get_model_name_from_path(path):
    return os.path.basename(str(path).rstrip("/"))


def tokenizer_image_token(prompt, tokenizer, image_token_index, return_tensors=None):
    ids = tokenizer(prompt).input_ids
    return torch.tensor(ids, dtype=torch.long) if return_tensors == "pt" else ids
'''

DIFFUSION = '''
import torch


def space_timesteps(num_timesteps, section_counts):
    n = int(section_counts)
    stride = (num_timesteps - 1) / (n - 1) if n > 1 else 1
    return set(round(i * stride) for i in range(n))


class RectifiedFlow:
    def __init__(self, size_ratio, used_timesteps, diffusion_steps=1000):
        self.size_ratio, self.diffusion_steps = size_ratio, diffusion_steps
        self.used_timesteps = sorted(used_timesteps)

    def get_x_end(self, x_shape, device, dtype=torch.bfloat16):
        return torch.randn(x_shape, device=device, dtype=dtype)

    def p_sample_loop(self, model, shape, x_end=None, clip_denoised=False, denoised_fn=None, cond_fn=None,
                      model_kwargs=None, device=None, progress=False):
        if x_end is None:
            x_end = self.get_x_end(shape, device)
        x = x_end
        ts = [1 - u / (self.diffusion_steps - 1) for u in self.used_timesteps]  # 1 (noise) ... 0
        for t, t_next in zip(ts[:-1], ts[1:]):
            x = x + (t_next - t) * model(x, torch.full((x.shape[0],), t), **model_kwargs)
        return x


def create_diffusion(timestep_respacing, noise_schedule="linear", use_kl=False, sigma_small=False,
                     predict_xstart=False, learn_sigma=True, rescale_learned_sigmas=False, diffusion_steps=1000,
                     input_base_dimension_ratio=1.0, diffusion_type="spaced", use_loss_weighting=False,
                     use_schedule_shift=False, diffusion_kwargs=None):
    assert diffusion_type == "rf" and use_schedule_shift and not learn_sigma
    return RectifiedFlow(input_base_dimension_ratio, space_timesteps(diffusion_steps, timestep_respacing),
                         diffusion_steps)
'''

DIFFLOSS = '''
import math
import torch
from torch import nn
from .diffusion import create_diffusion


class ToyDiT(nn.Module):
    def __init__(self, in_channels, z_channels):
        super().__init__()
        self.in_channels = in_channels
        self.mix = nn.Conv2d(in_channels, in_channels, 1)
        self.cond = nn.Linear(z_channels, in_channels)
        self.time = nn.Linear(1, in_channels)

    def forward(self, x, t, y):
        return self.mix(x) + (self.cond(y) + self.time(t[:, None].to(x.dtype)))[:, :, None, None]

    def forward_with_cfg(self, x, t, y, cfg_scale, cfg_interval):
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half]), t, torch.cat([y, torch.zeros_like(y)]))
        cond, uncond = out.chunk(2)
        inside = ((t[: len(half)] >= cfg_interval[0]) & (t[: len(half)] <= cfg_interval[1]))[:, None, None, None]
        guided = torch.where(inside, uncond + cfg_scale * (cond - uncond), cond)
        return torch.cat([guided, guided])


class RectifiedFlowProjector(nn.Module):
    def __init__(self, z_channels, diffusion_channels, diffusion_tokens, inference_step=25, guidance_scale=1.0,
                 cfg_interval=(-1e4, 1e4), base_dim=4096):
        super().__init__()
        self.diffusion_channels, self.diffusion_tokens, self.base_dim = diffusion_channels, diffusion_tokens, base_dim
        self.input_size = int(math.sqrt(diffusion_tokens))
        ratio = math.sqrt(base_dim / (diffusion_channels * diffusion_tokens))
        self.inference_flow = create_diffusion(str(inference_step), learn_sigma=False, diffusion_steps=1000,
                                               input_base_dimension_ratio=ratio, diffusion_type="rf",
                                               use_schedule_shift=True)
        self.model = ToyDiT(diffusion_channels, z_channels)
        self.guidance_scale, self.cfg_interval = guidance_scale, list(cfg_interval)

    def infer(self, z, x_end=None, guidance_level=None):
        if guidance_level is not None:
            self.guidance_scale = guidance_level
        use_cfg = self.guidance_scale > 1.0
        shape = (z.shape[0], self.model.in_channels, self.input_size, self.input_size)
        if x_end is None:
            x_end = self.inference_flow.get_x_end(shape, device=z.device, dtype=z.dtype)
        if use_cfg:
            x_end = torch.cat([x_end, x_end])
            kwargs, fn = dict(y=z, cfg_scale=self.guidance_scale, cfg_interval=self.cfg_interval), \\
                self.model.forward_with_cfg
        else:
            kwargs, fn = dict(y=z), self.model.forward
        out = self.inference_flow.p_sample_loop(fn, shape, x_end, model_kwargs=kwargs, device=z.device)
        if use_cfg:
            out, _ = out.chunk(2)
        return out.permute(0, 2, 3, 1).reshape(out.shape[0], -1, self.diffusion_channels)
'''

BUILDER = '''
import json
import os
from types import SimpleNamespace

import torch
from torch import nn

from .diffusion_loss.diffloss import RectifiedFlowProjector

SPECIAL = {"<im_start>": 1, "<im_end>": 2, "<|im_end|>": 3}


class Tokenizer:
    def convert_tokens_to_ids(self, token):
        return SPECIAL[token]

    def __call__(self, text):
        return SimpleNamespace(input_ids=[4 + ord(c) % 60 for c in text])


class ToyScaleRAE(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = SimpleNamespace(**config)
        self.embed = nn.Embedding(64, config["hidden_size"])
        self.diff_head = RectifiedFlowProjector(config["hidden_size"], config["diffusion_model_channels"], 4)

    @property
    def device(self):
        return self.embed.weight.device

    def generate(self, input_ids, images=None, image_embeds=None, guidance_level=None, start_image_token_id=None,
                 end_image_token_id=None, eos_token_id=None, output_image=False, **kwargs):
        assert output_image and (start_image_token_id, end_image_token_id, eos_token_id) == (1, 2, 3)
        assert kwargs["temperature"] == 0.0 and kwargs["use_customize_greedy"]
        z = self.embed(input_ids).mean(1)  # the prompt's "hidden state"
        tokens = self.diff_head.infer(z, guidance_level=guidance_level)
        return torch.tensor([[1, 2, 3]]), tokens[0]


def load_pretrained_model(model_path, model_base=None, model_name="", load_8bit=False, load_4bit=False,
                          device_map="auto", device="cuda", use_flash_attn=False, **kwargs):
    assert os.environ.get("HF_HUB_OFFLINE") == "1", "the adapter loads offline"
    config = json.load(open(os.path.join(model_path, "config.json")))
    model = ToyScaleRAE(config)
    model.load_state_dict(torch.load(os.path.join(model_path, "pytorch_model.bin"), weights_only=True))
    return Tokenizer(), model.to(kwargs.get("torch_dtype", torch.float32)), None, 2048
'''

DECODER = '''
import json
import os

import torch
from torch import nn


class MultimodalDecoder(nn.Module):
    def __init__(self, pretrained_encoder_path, general_decoder_config, num_patches, drop_cls_token, decoder_path):
        super().__init__()
        assert os.environ.get("HF_HUB_OFFLINE") == "1" and pretrained_encoder_path == "google/siglip2-so400m"
        cfg = json.load(open(general_decoder_config))
        self.patch = cfg["patch"]
        self.proj = nn.Linear(cfg["hidden"], 3 * self.patch ** 2)
        self.proj.load_state_dict(torch.load(decoder_path, weights_only=True))
        self.image_mean = torch.zeros(3)

    def forward(self, feats):
        x = self.proj(feats[:, 1:])  # drop the CLS slot
        n, t, _ = x.shape
        side = int(t ** 0.5)
        x = x.transpose(1, 2)
        img = nn.functional.fold(x, (side * self.patch, side * self.patch), self.patch, stride=self.patch)
        return torch.sigmoid(img)
'''

CONFIG = {"hidden_size": 6, "diffusion_model_channels": 5,
          "mm_vision_tower_aux_list": ["google/siglip2-so400m-interp256"], "generation_alignment_tower": None}


def git(cwd, *args):
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def scale_rae(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_rae")
    code, model_dir, dec_dir = root / "Scale-RAE", root / "Scale-RAE-Qwen1.5B_DiT2.4B", root / "siglip2_decoder"
    tree = {"scale_rae/__init__.py": "", "scale_rae/constants.py": "IMAGE_TOKEN_INDEX = -200\n",
            "scale_rae/conversation.py": CONVERSATION, "scale_rae/mm_utils.py": MM_UTILS,
            "scale_rae/model/__init__.py": "", "scale_rae/model/builder.py": BUILDER,
            "scale_rae/model/diffusion_loss/__init__.py": "",
            "scale_rae/model/diffusion_loss/diffusion/__init__.py": DIFFUSION,
            "scale_rae/model/diffusion_loss/diffloss.py": DIFFLOSS,
            "scale_rae/model/multimodal_decoder/__init__.py": DECODER}
    for rel, text in tree.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_text(textwrap.dedent(text))
    git(root, "init", "-q", str(code))
    git(code, "add", "-A")
    git(code, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "stand-in")
    import sys

    sys.path.insert(0, str(code))
    from scale_rae.model.builder import ToyScaleRAE  # the stand-in, to write its weights

    torch.manual_seed(0)
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps(CONFIG))
    net = ToyScaleRAE(CONFIG)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.4)
    torch.save(net.state_dict(), model_dir / "pytorch_model.bin")
    dec_dir.mkdir()
    (dec_dir / "config.json").write_text(json.dumps({"hidden": 5, "patch": 2}))
    torch.save(torch.nn.Linear(5, 12).state_dict(), dec_dir / "model.pt")
    return {"family": "scale_rae", "arch": {"code": str(code), "commit": git(code, "rev-parse", "HEAD")[:10],
                                            "decoder": {"path": str(dec_dir)}},
            "weights": {"path": str(model_dir)}, "sampler": {"method": "pipeline"}}


def manifest(n):
    return pd.DataFrame({"item_id": [f"i{i}" for i in range(n)], "label_id": np.arange(n) % 4,
                         "prompt": [f"a photo of a class-{i % 4}" for i in range(n)]})


def test_scale_rae_adapter_steps_guidance_noise_and_decoding(scale_rae):
    gen = load_generator("scale_rae", scale_rae, None)
    assert gen.noise_shape() == (5, 2, 2)
    noise = torch.randn(2, 5, 2, 2, generator=torch.Generator().manual_seed(0))
    prompts = ["a photo of a goldfish", "a photo of a tench"]
    y = torch.tensor([1, 0])
    for steps in (1, 2, 5):
        res = gen.sample(y, noise, steps, 1.0, prompts=prompts)
        # steps = head evaluations: the flow is respaced to steps + 1 timesteps
        assert res.nfe == res.forward_passes == steps and len(gen.head.inference_flow.used_timesteps) == steps + 1
        assert res.x.shape == (2, 3, 4, 4) and -1 <= float(res.x.min()) and float(res.x.max()) <= 1
    guided = gen.sample(y, noise, 3, 4.0, prompts=prompts)
    assert guided.nfe == 3 and guided.forward_passes == 6  # cond + uncond rows per evaluation
    plain = gen.sample(y, noise, 3, 1.0, prompts=prompts)
    assert not torch.allclose(guided.x, plain.x)
    # Euler by hand through the stand-in head, from the item's own noise, with the request-form prompt
    with torch.no_grad():
        ids = gen.input_ids("a photo of a goldfish")
        z = gen.model.embed(ids).mean(1)
        x = noise[:1]
        for t, t_next in ((1.0, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 0.0)):
            x = x + (t_next - t) * gen.head.model(x, torch.full((1,), t), z)
        tokens = x.permute(0, 2, 3, 1).reshape(1, 4, 5)
        image = gen.decoder(torch.cat([torch.zeros(1, 1, 5), tokens], 1))
    torch.testing.assert_close(plain.x[:1], image * 2 - 1, atol=1e-5, rtol=0)  # grid 0, 333, 666, 999 of 999
    conv = gen.up["conv_templates"]["qwen_2"].copy()
    conv.append_message(conv.roles[0], "Can you generate a photo of a goldfish?")  # the default request form
    conv.append_message(conv.roles[1], None)
    torch.testing.assert_close(ids[0], torch.tensor(gen.tokenizer(conv.get_prompt()).input_ids))
    # items are independent of batching and sharding
    one = generate_shard(gen, manifest(5), model="s", dataset="d", global_seed=0, seed=0, steps=2, cfg=2.0, shard=0,
                         n_shards=1, batch_size=5)
    parts = [generate_shard(gen, manifest(5), model="s", dataset="d", global_seed=0, seed=0, steps=2, cfg=2.0,
                            shard=s, n_shards=3, batch_size=1) for s in range(3)]
    joined = np.concatenate([p["images"] for p in parts])
    order = np.concatenate([p["item_id"] for p in parts])
    np.testing.assert_array_equal(joined[np.argsort(order)], one["images"][np.argsort(one["item_id"])])
    assert set(one["nfe"]) == {2} and set(one["forward_passes"]) == {4}


def test_scale_rae_prompt_interval_and_fetch_listing(scale_rae):
    spec = dict(scale_rae, arch=dict(scale_rae["arch"], request="Show me {prompt}."),
                sampler={"method": "pipeline", "guidance_interval": [0.2, 0.6]})
    gen = load_generator("scale_rae", spec, None)
    assert gen.head.cfg_interval == [0.2, 0.6]
    conv = gen.up["conv_templates"]["qwen_2"].copy()
    conv.append_message(conv.roles[0], "Show me a photo of a tench.")
    conv.append_message(conv.roles[1], None)
    expect = torch.tensor(gen.tokenizer(conv.get_prompt()).input_ids)
    torch.testing.assert_close(gen.input_ids("a photo of a tench")[0], expect)
    owners = [w.owner for w in config_weights({"models": {"scale_rae": spec}})]
    assert owners == ["models.scale_rae", "models.scale_rae.arch.decoder"]


def test_scale_rae_errors_name_the_fix(scale_rae, tmp_path):
    with pytest.raises(UpstreamCodeError, match="pins 0123456789"):
        load_generator("s", dict(scale_rae, arch=dict(scale_rae["arch"], commit="0123456789")), None)
    with pytest.raises(UpstreamCodeError, match="git clone https://github.com/ZitengWangNYU/Scale-RAE"):
        load_generator("s", dict(scale_rae, arch=dict(scale_rae["arch"], code=str(tmp_path / "nowhere"))), None)
    empty = tmp_path / "decoder"
    empty.mkdir()
    with pytest.raises(WeightsMissingError, match="decoder file .*model.pt is missing|config.json is missing"):
        load_generator("s", dict(scale_rae, arch=dict(scale_rae["arch"], decoder={"path": str(empty)})), None)
    with pytest.raises(ValueError, match="sampler 'euler' is not available"):
        load_generator("s", dict(scale_rae, sampler={"method": "euler"}), None)
    with pytest.raises(ValueError, match="arch.decoder is required"):
        load_generator("s", dict(scale_rae, arch={"code": scale_rae["arch"]["code"]}), None)
    vae_dir = tmp_path / "vae-model"
    vae_dir.mkdir()
    (vae_dir / "config.json").write_text(json.dumps({**CONFIG, "generation_alignment_tower": "flux-vae"}))
    shutil.copy2(f"{scale_rae['weights']['path']}/pytorch_model.bin", vae_dir / "pytorch_model.bin")
    with pytest.raises(NotImplementedError, match="decodes through a VAE"):
        load_generator("s", dict(scale_rae, weights={"path": str(vae_dir)}), None)
    gen = load_generator("s", scale_rae, None)
    with pytest.raises(ValueError, match="one prompt per item"):
        gen.sample(torch.tensor([0]), torch.zeros(1, 5, 2, 2), 2, 1.0)
