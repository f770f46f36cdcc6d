"""Generator families on the DiT/SiT backbone: SiT (flow ODE/SDE), MeanFlow (average velocity, optionally with
guidance as a network input as in Improved MeanFlow) and SoFlow (solution function). Each registers itself.

Every family loads from local files only (a safetensors file or a ``weights_only`` torch checkpoint) with strict
parameter names, so an official PyTorch checkpoint of the same size loads into the same class the mini-world
trains. Latent-space models decode with their VAE (diffusers ``AutoencoderKL``, e.g. sd-vae-ft-mse, scale 0.18215, or
per-channel latent mean/std as Improved MeanFlow).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..weights import WeightSpec, resolve
from .registry import Generator, NoiseSource, WeightsMissingError
from .samplers import (
    Counted,
    SampleResult,
    batch_scalar,
    classifier_free,
    mean_flow,
    sample_flow,
    solution_steps,
)
from .sit import SiT

# DiT sizes (depth, hidden, heads) shared by SiT, MeanFlow and SoFlow presets such as "SiT-XL/2" or "SoFlow-B/4"
DIT_SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "M": (16, 1024, 16), "L": (24, 1024, 16), "XL": (28, 1152, 16)}


def dit_preset(name: str) -> dict[str, Any]:
    """'<Family>-<S|B|M|L|XL>/<patch>' -> depth, hidden_size, num_heads, patch_size."""
    m = re.fullmatch(r"[A-Za-z][A-Za-z0-9]*-(S|B|M|L|XL)/(\d+)", name)
    if not m:
        raise ValueError(f"unknown DiT preset '{name}': use <Family>-<S|B|M|L|XL>/<patch>, e.g. SiT-XL/2")
    depth, hidden, heads = DIT_SIZES[m.group(1)]
    return dict(depth=depth, hidden_size=hidden, num_heads=heads, patch_size=int(m.group(2)))


BACKBONE_KEYS = {"input_size", "patch_size", "in_channels", "hidden_size", "depth", "num_heads", "mlp_ratio",
                 "class_dropout_prob", "num_classes", "learn_sigma"}
FAMILY_ARCH_KEYS = {"config", "vae", "guidance_input"}


def backbone_from_arch(arch: dict[str, Any], extra_inputs: tuple[str, ...] = ()) -> SiT:
    unknown = set(arch) - BACKBONE_KEYS - FAMILY_ARCH_KEYS
    if unknown:
        raise ValueError(f"arch: unknown key(s) {sorted(unknown)} (backbone keys: {sorted(BACKBONE_KEYS)}; "
                         f"family keys: {sorted(FAMILY_ARCH_KEYS)})")
    kwargs = {k: v for k, v in arch.items() if k in BACKBONE_KEYS}
    if arch.get("config"):
        kwargs = {**dit_preset(arch["config"]), **kwargs}
    try:
        return SiT(**kwargs, extra_inputs=extra_inputs)
    except TypeError as exc:
        raise ValueError(f"arch {arch}: {exc}") from exc


def sit_from_arch(arch: dict[str, Any]) -> SiT:
    return backbone_from_arch(arch)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file or a torch checkpoint (weights_only); picks an EMA entry over 'model'."""
    path = Path(path)
    if not path.exists():
        raise WeightsMissingError(
            f"weights file {path} is missing: put the checkpoint there (or run `genbench fetch <config>` on a "
            f"connected machine)")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("ema", "ema_model", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


def load_strict(name: str, module: nn.Module, checkpoint: str | Path | None, arch: dict[str, Any]) -> None:
    if checkpoint is None:
        raise WeightsMissingError(f"model '{name}': no checkpoint given (neither trained nor 'weights')")
    state = load_state_dict(checkpoint)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise ValueError(f"model '{name}': checkpoint {checkpoint} does not match arch {arch}: missing "
                         f"{missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {shapes[:3]}")
    module.load_state_dict(state, strict=True)



class LatentDecoder:
    """A diffusers AutoencoderKL decoder for latent-space models: image = decode(vae_latent), where the model's latent
    z is mapped back to the VAE's latent by its normalisation, either

    * ``scale`` (scalar; Stable Diffusion's convention, 0.18215 for sd-vae-ft-*): vae_latent = z / scale, or
    * ``latent_mean`` + ``latent_std`` (one value per latent channel; e.g. Improved MeanFlow's utils/vae_util.py):
      vae_latent = z * std + mean.

    With neither, ``scale`` = 0.18215."""

    def __init__(self, owner: str, spec: dict[str, Any]):
        from diffusers import AutoencoderKL

        spec = dict(spec)
        scale = spec.pop("scale", None)
        mean, std = spec.pop("latent_mean", None), spec.pop("latent_std", None)
        self.scale, self.mean, self.std = latent_normalisation(owner, scale, mean, std)
        folder = resolve(WeightSpec.from_config(f"{owner}.arch.vae", spec))
        self.vae = AutoencoderKL.from_pretrained(str(folder)).eval()
        channels = int(self.vae.config.latent_channels)
        if self.std is not None and self.std.numel() != channels:
            raise ValueError(f"{owner}.arch.vae: latent_mean/latent_std have {self.std.numel()} values but the VAE "
                             f"has {channels} latent channels; give one value per channel")

    def to_vae(self, latents: torch.Tensor) -> torch.Tensor:
        """The model's latents in the VAE's latent space: z * std + mean per channel, or z / scale (as upstream
        writes each, so the float32 results are upstream's bit for bit)."""
        if self.std is None:
            return latents / self.scale
        shape = (1, -1, 1, 1)
        return latents * self.std.to(latents).view(shape) + self.mean.to(latents).view(shape)

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(self.to_vae(latents)).sample


def latent_normalisation(owner: str, scale: float | None, mean: list[float] | None, std: list[float] | None,
                         ) -> tuple[float | None, torch.Tensor | None, torch.Tensor | None]:
    """(scale, mean, std) of a VAE spec: a scalar scale (default 0.18215) or per-channel mean and std; a clear
    error for a half-given or mixed normalisation."""
    if (mean is None) != (std is None):
        raise ValueError(f"{owner}.arch.vae: give both latent_mean and latent_std (per-channel), or neither")
    if mean is not None and std is not None:
        if scale is not None:
            raise ValueError(f"{owner}.arch.vae: give either scale or latent_mean/latent_std, not both")
        if len(mean) != len(std) or not len(mean):
            raise ValueError(f"{owner}.arch.vae: latent_mean and latent_std need the same number of values (one "
                             f"per latent channel), got {len(mean)} and {len(std)}")
        return None, torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    scale = 0.18215 if scale is None else float(scale)
    if scale <= 0:
        raise ValueError(f"{owner}.arch.vae.scale must be > 0, got {scale}")
    return scale, None, None


class DiTFamily(Generator):
    """Shared loading, guidance options and decoding of the DiT-backbone families."""

    extra_inputs: tuple[str, ...] = ()

    def __init__(self, name: str, spec: dict[str, Any], net: nn.Module, decoder: LatentDecoder | None = None):
        super().__init__(name, spec)
        self.net = net.eval()
        self.decoder = decoder
        sampler = dict(spec["sampler"])
        self.method = sampler.pop("method")
        self.cfg_channels = sampler.pop("cfg_channels", None)
        interval = sampler.pop("guidance_interval", None)
        self.interval = tuple(interval) if interval else None
        # per step count: the sweep's per_steps settings (genbench.config.expand_per_steps)
        self.per_steps = {int(k): tuple(v["guidance_interval"])
                          for k, v in (sampler.pop("per_steps", None) or {}).items() if v.get("guidance_interval")}
        self.options = sampler  # sampler-specific options (atol, rtol, diffusion_norm, last_step_size)
        self.check_method()

    methods: tuple[str, ...] = ()

    def interval_at(self, steps: int) -> tuple[float, float] | None:
        """The guidance interval at ``steps`` sampling steps: its per-steps setting, else the sampler's."""
        return self.per_steps.get(int(steps), self.interval)

    def check_method(self) -> None:
        if self.method not in self.methods:
            raise ValueError(f"model '{self.name}' ({self.spec['family']}): sampler '{self.method}' is not available "
                             f"(available: {', '.join(self.methods)})")

    @classmethod
    def build(cls, arch: dict[str, Any]) -> nn.Module:
        return backbone_from_arch(arch, cls.extra_inputs)

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None, runtime=None) -> DiTFamily:
        arch = spec.get("arch", {})
        net = cls.build(arch)
        load_strict(name, net, checkpoint, arch)
        decoder = LatentDecoder(f"models.{name}", arch["vae"]) if arch.get("vae") else None
        return cls(name, spec, net, decoder)

    def place(self, runtime) -> None:
        super().place(runtime)
        self.net = runtime.place(self.net)
        if self.decoder is not None:
            self.decoder.vae = runtime.place(self.decoder.vae)

    @property
    def backbone(self) -> SiT:
        return self.net

    def noise_shape(self) -> tuple[int, ...]:
        return (self.backbone.in_channels, self.backbone.input_size, self.backbone.input_size)

    def finish(self, x: torch.Tensor, nfe: int, passes: int) -> SampleResult:
        if self.decoder is not None:
            x = self.decoder(x)
        return SampleResult(x=x, nfe=nfe, forward_passes=passes)


class SiTGenerator(DiTFamily):
    """SiT (official architecture) in pixel space (mini-world) or latent space (official checkpoints + VAE)."""

    methods = ("euler", "heun", "dopri5", "euler_maruyama")

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        opts = dict(self.options)
        if self.method == "euler_maruyama":
            if noise_source is None:
                raise ValueError(f"model '{self.name}': the SDE sampler needs a per-item noise source")
            opts["noise_source"] = noise_source
        res = sample_flow(self.net, noise, labels, steps=steps, cfg=cfg, null_label=self.net.num_classes,
                          method=self.method, cfg_channels=self.cfg_channels, interval=self.interval_at(steps), **opts)
        return self.finish(res.x, res.nfe, res.forward_passes)


class MeanFlowGenerator(DiTFamily):
    """MeanFlow: u(z, t, h = t - r, y), t = 1 noise, steps z_r = z_t - (t - r) u on linspace(1, 0, N + 1).

    With ``arch.guidance_input: true`` the network also takes the guidance scale omega (Improved MeanFlow's
    guidance-as-input; trained over a range of omega), and the sweep's cfg value is fed as omega: one network
    evaluation per step whatever the guidance. Without it, cfg = 1 is the paper's sampler (guidance was fixed in
    training) and cfg != 1 adds classifier-free guidance on u at inference (two passes per step)."""

    methods = ("meanflow",)

    def check_method(self) -> None:
        super().check_method()
        if "omega" in self.net.extra_inputs and (self.interval is not None or self.per_steps):
            raise ValueError(f"model '{self.name}': with guidance as a network input the guidance interval is part "
                             f"of training, not of the sampler; remove sampler.guidance_interval")

    @classmethod
    def build(cls, arch: dict[str, Any]) -> nn.Module:
        return backbone_from_arch(arch, ("h", "omega") if arch.get("guidance_input") else ("h",))

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        net = self.net
        omega_input = "omega" in net.extra_inputs

        def u(z: torch.Tensor, t: float, y: torch.Tensor, r: float) -> torch.Tensor:
            extra = {"h": batch_scalar(z, t - r)}
            if omega_input:
                extra["omega"] = batch_scalar(z, cfg)
            return net(z, batch_scalar(z, t), y, **extra)

        if omega_input:
            counted = Counted(lambda z, t, r: u(z, t, labels, r))
            z = mean_flow(counted, noise, steps)
            return self.finish(z, counted.calls, counted.calls)
        guided, passes = classifier_free(u, labels, net.num_classes, cfg, self.cfg_channels,
                                         self.interval_at(steps))
        counted = Counted(guided)
        z = mean_flow(counted, noise, steps)
        return self.finish(z, counted.calls, passes())


def get_family_net(family: str, arch: dict[str, Any]) -> nn.Module:
    """A freshly initialised network of ``family`` (what its checkpoints' state dicts load into)."""
    from .registry import GENERATORS

    cls = GENERATORS.lookup(family)
    if not issubclass(cls, DiTFamily):
        raise NotImplementedError(f"family '{family}' has no trainable network here")
    return cls.build(arch)


class SoFlowNet(nn.Module):
    """SoFlow's model wrapper (parameter names ``network.*`` as the official ``Soflow`` module): the solution
    function f(x_t, t, s) = x_t + (s - t) * F(x_t, t, t - s, y) of the linear (Euler) parameterisation."""

    def __init__(self, network: SiT):
        super().__init__()
        self.network = network

    def solution(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor, y: torch.Tensor,
                 drop: torch.Tensor | None = None) -> torch.Tensor:
        raw = self.network(x, t, y, drop=drop, s=t - s)
        return x + (s - t).view(-1, 1, 1, 1) * raw


class SoFlowGenerator(DiTFamily):
    """SoFlow: one step f(e, 1, 0); N steps jump to s = 0 and re-noise (per-item noise streams). cfg = 1 is the
    paper's sampler (guidance fixed in training); cfg != 1 adds classifier-free guidance on the solution at
    inference (two passes per step)."""

    methods = ("soflow",)

    @classmethod
    def build(cls, arch: dict[str, Any]) -> nn.Module:
        return SoFlowNet(backbone_from_arch(arch, ("s",)))

    @property
    def backbone(self) -> SiT:
        return self.net.network

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        if steps > 1 and noise_source is None:
            raise ValueError(f"model '{self.name}': multi-step SoFlow needs a per-item noise source")

        def f(x: torch.Tensor, t: float, y: torch.Tensor, s: float) -> torch.Tensor:
            return self.net.solution(x, batch_scalar(x, t), batch_scalar(x, s), y)

        guided, passes = classifier_free(f, labels, self.backbone.num_classes, cfg, self.cfg_channels,
                                         self.interval_at(steps))
        counted = Counted(guided)
        x = solution_steps(counted, noise, steps, noise_source or _no_noise)
        return self.finish(x, counted.calls, passes())


def _no_noise(i: int) -> torch.Tensor:
    raise AssertionError("one-step SoFlow draws no noise")


class IMeanFlowGenerator(DiTFamily):
    """Improved MeanFlow (genbench.gen2d.imf): guidance scale omega (= the sweep's cfg) and the guidance interval
    (``sampler.guidance_interval``, default [0, 1]) are network inputs; one evaluation per step."""

    methods = ("meanflow",)

    @classmethod
    def build(cls, arch: dict[str, Any]) -> nn.Module:
        from .imf import imf_from_arch

        return imf_from_arch(arch)

    @property
    def backbone(self) -> nn.Module:
        return self.net.net

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        lo, hi = self.interval_at(steps) or (0.0, 1.0)

        def u(z: torch.Tensor, t: float, r: float) -> torch.Tensor:
            return self.backbone(z, *(batch_scalar(z, v) for v in (t - r, cfg, lo, hi)), labels)

        counted = Counted(u)
        z = mean_flow(counted, noise, steps)
        return self.finish(z, counted.calls, counted.calls)
