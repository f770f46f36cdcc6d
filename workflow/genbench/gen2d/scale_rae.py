"""Scale-RAE (Tong, Zheng, Wang et al. 2026; ZitengWangNYU/Scale-RAE) through its own code, pinned to a commit.

Scale-RAE is a text-to-image system: a Qwen2.5 LLM reads a request-style prompt and emits image tokens whose hidden
states condition a DiT diffusion head ("diff_head") over 256 representation-autoencoder tokens; a SigLIP-2 (or
WebSSL) RAE decoder turns the generated tokens into pixels. Like RAE it is run as an **adapter**: the LLM wrapper,
head and decoder load only into the upstream classes (``scale_rae.model.builder.load_pretrained_model``,
``scale_rae.model.multimodal_decoder.MultimodalDecoder``), imported from a checkout at a recorded commit
(``arch.code`` + ``arch.commit``, environment workflow/envs/scale_rae.yaml). genbench controls what the benchmark needs:

* **steps**: upstream fixes the head's sampler at construction (``create_diffusion(str(inference_step), ...)``,
  a rectified flow respaced to that many timesteps, i.e. ``inference_step - 1`` Euler evaluations; its default 25
  is 24 NFE). The adapter rebuilds ``diff_head.inference_flow`` with the same arguments and ``str(steps + 1)``
  timesteps, so ``steps`` here is the number of head evaluations per image, as for every other family.
* **guidance**: the sweep's cfg is upstream's ``guidance_level`` (CFG on the head, off at <= 1, batched cond/uncond:
  2 passes per evaluation); ``sampler.guidance_interval`` sets the head's ``cfg_interval``.
* **noise**: the head's initial noise (``inference_flow.get_x_end``) is the item's own seeded draw (first call) and
  the item's further per-item draws after that, so images do not depend on batching; the LLM decodes greedily.
* **prompt**: the manifest prompt wrapped in the request form the model was trained on (``arch.request``, default
  "Can you generate {prompt}?"), through upstream's ``qwen_2`` conversation template and tokenizer helper.
* **NFE / passes**: counted on the head network's ``forward`` (rows per call / images per call = passes).

Files: ``weights`` is the model repository (nyu-visionx/Scale-RAE-Qwen1.5B_DiT2.4B) as a local folder or HF
snapshot; ``arch.decoder`` the decoder repository (nyu-visionx/siglip2_decoder: config.json + model.pt). The vision
encoder the decoder config names is resolved from the local HF cache (HF_HUB_OFFLINE). Checkpoints decoding through a
VAE ("generation_alignment_tower") are refused with a named error: their decoder path is not wired here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..weights import WeightSpec, resolve
from .pipelines import weight_dtype
from .registry import Generator, NoiseSource, WeightsMissingError
from .samplers import SampleResult
from .upstream import import_from, offline_hub, upstream_sources

SCALE_RAE_REPO = "https://github.com/ZitengWangNYU/Scale-RAE"
DEFAULT_REQUEST = "Can you generate {prompt}?"


class _HeadCounter:
    """Counts calls and rows of the diffusion head network's ``forward`` (also reached from forward_with_cfg)."""

    def __init__(self, net: torch.nn.Module):
        self.calls = self.rows = 0
        forward = net.forward

        def counted(x, *args, **kwargs):
            self.calls += 1
            self.rows += int(x.shape[0])
            return forward(x, *args, **kwargs)

        net.forward = counted  # instance attribute: upstream's self.forward(...) and self.model.forward both hit it

    def reset(self) -> None:
        self.calls = self.rows = 0


class ScaleRAEGenerator(Generator):
    methods = ("pipeline",)

    def __init__(self, name: str, spec: dict[str, Any], upstream: dict[str, Any], tokenizer: Any, model: Any,
                 decoder: Any):
        super().__init__(name, spec)
        sampler = spec["sampler"]
        if sampler["method"] not in self.methods:
            raise ValueError(f"model '{name}' (scale_rae): sampler '{sampler['method']}' is not available; use "
                             f"'pipeline' (the model's own rectified-flow head, respaced to the sweep's steps)")
        self.up = upstream
        self.tokenizer, self.model, self.decoder = tokenizer, model, decoder
        self.head = model.diff_head
        if sampler.get("guidance_interval"):
            self.head.cfg_interval = list(sampler["guidance_interval"])
        self.request = spec.get("arch", {}).get("request", DEFAULT_REQUEST)
        if "{prompt}" not in self.request:
            raise ValueError(f"model '{name}': arch.request must contain '{{prompt}}', got {self.request!r}")
        self.counter = _HeadCounter(self.head.model)
        self._steps: int | None = None
        self.ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in ("<im_start>", "<im_end>", "<|im_end|>"))

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None,
             runtime=None) -> ScaleRAEGenerator:
        arch, code, files = upstream_sources(
            name, "scale_rae", spec, checkpoint, ("code", "decoder"),
            "the upstream checkout; the decoder repository, e.g. {repo_id: nyu-visionx/siglip2_decoder}",
            SCALE_RAE_REPO, marker="scale_rae")
        dec_dir = resolve(WeightSpec.from_config(f"models.{name}.arch.decoder", arch["decoder"]))
        for f in ("config.json", "model.pt"):
            if not (Path(dec_dir) / f).exists():
                raise WeightsMissingError(f"model '{name}' (scale_rae): decoder file {Path(dec_dir) / f} is missing "
                                          f"(the decoder repository holds config.json and model.pt)")
        up = {k: import_from(code, v) for k, v in {
            "load_pretrained_model": "scale_rae.model.builder.load_pretrained_model",
            "get_model_name_from_path": "scale_rae.mm_utils.get_model_name_from_path",
            "tokenizer_image_token": "scale_rae.mm_utils.tokenizer_image_token",
            "conv_templates": "scale_rae.conversation.conv_templates",
            "IMAGE_TOKEN_INDEX": "scale_rae.constants.IMAGE_TOKEN_INDEX",
            "create_diffusion": "scale_rae.model.diffusion_loss.diffusion.create_diffusion",
            "MultimodalDecoder": "scale_rae.model.multimodal_decoder.MultimodalDecoder",
        }.items()}
        # upstream's builder loads onto the device in the weights' dtype (device_map), so both come from the
        # runtime here (genbench.gen2d.pipelines.weight_dtype); without one, CUDA when present
        device = runtime.device_name if runtime is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = weight_dtype(arch, runtime, device)
        with offline_hub():
            tokenizer, model, _, _ = up["load_pretrained_model"](
                model_path=str(files), model_base=None, model_name=up["get_model_name_from_path"](str(files)),
                device=device, device_map={"": device}, torch_dtype=dtype)
            if getattr(model.config, "generation_alignment_tower", None):
                raise NotImplementedError(f"model '{name}': {files} decodes through a VAE "
                                          f"({model.config.generation_alignment_tower}); only RAE-decoder "
                                          f"checkpoints (SigLIP-2 / WebSSL) are wired in this adapter")
            encoder = model.config.mm_vision_tower_aux_list[0].split("-interp")[0]
            decoder = up["MultimodalDecoder"](
                pretrained_encoder_path=encoder, general_decoder_config=str(Path(dec_dir) / "config.json"),
                num_patches=256, drop_cls_token=True, decoder_path=str(Path(dec_dir) / "model.pt")).to(device)
        for attr in ("image_mean", "image_std"):
            if hasattr(decoder, attr):
                setattr(decoder, attr, getattr(decoder, attr).to(device))
        return cls(name, spec, up, tokenizer, model.eval(), decoder.eval())

    def noise_shape(self) -> tuple[int, ...]:
        side = int(math.isqrt(self.head.diffusion_tokens))
        return (int(self.head.model.in_channels), side, side)

    def set_steps(self, steps: int) -> None:
        """Respace the head's rectified flow to ``steps`` evaluations (``steps + 1`` timesteps), with the
        arguments upstream's constructor uses."""
        if steps < 1:
            raise ValueError(f"model '{self.name}': steps must be >= 1, got {steps}")
        if steps == self._steps:
            return
        ratio = getattr(self.head.inference_flow, "size_ratio", None)
        if ratio is None:
            ratio = math.sqrt(self.head.base_dim / (self.head.diffusion_channels * self.head.diffusion_tokens))
        self.head.inference_flow = self.up["create_diffusion"](
            str(steps + 1), noise_schedule="linear", use_kl=False, sigma_small=False, predict_xstart=False,
            learn_sigma=False, rescale_learned_sigmas=False, diffusion_steps=1000,
            input_base_dimension_ratio=ratio, diffusion_type="rf", use_loss_weighting=False,
            use_schedule_shift=True, diffusion_kwargs=None)
        self._steps = steps

    def input_ids(self, prompt: str) -> torch.Tensor:
        conv = self.up["conv_templates"]["qwen_2"].copy()
        conv.append_message(conv.roles[0], self.request.format(prompt=prompt))
        conv.append_message(conv.roles[1], None)
        ids = self.up["tokenizer_image_token"](conv.get_prompt(), self.tokenizer, self.up["IMAGE_TOKEN_INDEX"],
                                               return_tensors="pt")
        return ids.unsqueeze(0).to(self.model.device)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        if prompts is None or len(prompts) != len(noise):
            raise ValueError(f"model '{self.name}': a text-to-image system needs one prompt per item")
        self.set_steps(steps)
        flow, shape = self.head.inference_flow, self.noise_shape()
        start, end, eos = self.ids
        images, nfe, passes = [], [], []
        for i, prompt in enumerate(prompts):
            draws = iter(range(1 << 30))

            def x_end(x_shape, device, dtype=torch.bfloat16, _i=i, _draws=draws):
                if tuple(x_shape[1:]) != shape:
                    raise RuntimeError(f"model '{self.name}': the head asked for noise {tuple(x_shape)}, expected "
                                       f"(n, *{shape}): upstream head layout changed?")
                k = next(_draws)
                if k > 0 and noise_source is None:
                    raise RuntimeError(f"model '{self.name}': the head drew noise twice but no noise source is set")
                z = noise[_i] if k == 0 else noise_source(k)[_i]  # type: ignore[misc]
                return z.expand(x_shape[0], *shape).to(device=device, dtype=dtype)

            flow.get_x_end = x_end
            self.counter.reset()
            _, embeds = self.model.generate(
                self.input_ids(prompt), images=None, output_image=True, do_sample=True, temperature=0.0,
                use_customize_greedy=True, top_p=None, num_beams=1, max_new_tokens=int(self.spec["arch"].get(
                    "max_new_tokens", 1024)), use_cache=True, start_image_token_id=start, end_image_token_id=end,
                eos_token_id=eos, guidance_level=float(cfg))
            if embeds is None or embeds.ndim != 2 or embeds.shape[0] == 0:
                raise RuntimeError(f"model '{self.name}': no image tokens generated for prompt {prompt!r} (the LLM "
                                   f"ended without <im_start>; try the request form of arch.request)")
            feats = embeds.unsqueeze(0).to(self.model.device)
            feats = torch.cat([torch.zeros_like(feats[:, :1]), feats], dim=1)  # the empty CLS slot
            images.append(self.decoder(feats).float().clamp(0, 1))
            nfe.append(self.counter.calls)
            passes.append(self.counter.rows)
        if len(set(nfe)) != 1 or len(set(passes)) != 1:
            raise RuntimeError(f"model '{self.name}': head evaluations differ between items ({nfe}, rows {passes})")
        return SampleResult(x=torch.cat(images) * 2 - 1, nfe=nfe[0], forward_passes=passes[0])
