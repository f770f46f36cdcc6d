"""Generator families available in this version (each registers itself with the registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from .registry import Generator, WeightsMissingError, register
from .samplers import SampleResult, sample_flow
from .sit import SIT_CONFIGS, SiT


def sit_from_arch(arch: dict[str, Any]) -> SiT:
    arch = dict(arch)
    preset = arch.pop("config", None)
    arch.pop("vae", None)
    kwargs = {**SIT_CONFIGS[preset], **arch} if preset else arch
    try:
        return SiT(**kwargs)
    except TypeError as exc:
        raise ValueError(f"SiT arch {arch}: {exc}") from exc


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file or a torch checkpoint (weights_only); picks 'ema' over 'model'."""
    path = Path(path)
    if not path.exists():
        raise WeightsMissingError(
            f"weights file {path} is missing: put the checkpoint there (or run the pipeline's fetch target on a "
            f"connected machine)")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("ema", "ema_model", "model", "state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            return obj[key]
    return obj


@register("sit")
class SiTGenerator(Generator):
    """SiT (official architecture) in pixel space (mini-world) or latent space (official checkpoints)."""

    def __init__(self, name: str, spec: dict[str, Any], net: SiT):
        super().__init__(name, spec)
        self.net = net.eval()
        sampler = spec["sampler"]
        self.method = sampler["method"]
        self.cfg_channels = sampler.get("cfg_channels")
        interval = sampler.get("guidance_interval")
        self.interval = tuple(interval) if interval else None

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None) -> SiTGenerator:
        arch = spec.get("arch", {})
        if arch.get("vae"):
            raise NotImplementedError(
                f"model '{name}': latent-space SiT needs the VAE decoder ({arch['vae']}), which this version "
                f"does not load yet; pixel-space SiT (in_channels 3, no 'vae') is supported")
        net = sit_from_arch(arch)
        if checkpoint is None:
            raise WeightsMissingError(f"model '{name}': no checkpoint given")
        state = load_state_dict(checkpoint)
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"model '{name}': checkpoint {checkpoint} does not match the SiT arch {arch}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        return cls(name, spec, net)

    def noise_shape(self) -> tuple[int, ...]:
        return (self.net.in_channels, self.net.input_size, self.net.input_size)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float) -> SampleResult:
        if self.method not in ("euler", "heun"):
            raise ValueError(f"model '{self.name}': SiT sampler '{self.method}' is not available (euler, heun)")
        return sample_flow(self.net, noise, labels, steps=steps, cfg=cfg, null_label=self.net.num_classes,
                           method=self.method, cfg_channels=self.cfg_channels, interval=self.interval)
