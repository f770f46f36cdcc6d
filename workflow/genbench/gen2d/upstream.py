"""RAE (Zheng et al., bytetriper/RAE) through its own code, pinned to a commit: an adapter, not a port.

Why an adapter: RAE's generator is a DiT with a wide DDT head over 768x16x16 DINOv2-with-registers latents, decoded
by a ViT-MAE-style decoder with normalisation statistics (stat.pt); its modules (about 1,500 lines upstream) change
between releases, and its checkpoints load only into them. genbench therefore imports the upstream classes from a
checkout at a recorded commit (``arch.code`` + ``arch.commit``, environment workflow/envs/rae.yaml), builds them from
the upstream sampling YAML (``arch.config``), loads the checkpoints itself (``weights_only``; the EMA entry), and
samples with its own sampler so that seeds, NFE accounting and guidance are the same as for every other family:

* RAE's time runs from t = 1 (noise) to 0 (data), x_t = (1 - t) x + t e, the network predicts the velocity e - x;
* the grid is RAE's: u = 1 - linspace(0, 1, steps + 1) shifted by s = sqrt(shift_dim / shift_base) (from the YAML's
  ``misc``), t = s u / (1 + (s - 1) u); Euler steps x <- x + (t_next - t) v (upstream's ``num_steps: 50`` is 50 grid
  points, i.e. ``steps: 49`` here);
* classifier-free guidance on all latent channels inside ``sampler.guidance_interval`` (RAE's t_min/t_max, in its
  own time), as upstream's ``forward_with_cfg``;
* decoding: ``stage1.decode(z)`` gives images in [0, 1].

File layout: ``weights.path`` (or the HF snapshot of nyu-visionx/RAE-collections) is the folder that holds the
``models/...`` files the upstream YAML names; relative paths in the YAML are resolved against it, and the decoder
config folder against the checkout. A missing checkout, a different commit or a missing file is a named error.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import GenbenchError
from ..weights import WeightSpec, resolve
from .families import load_state_dict
from .registry import Generator, NoiseSource, WeightsMissingError
from .samplers import Counted, SampleResult, batch_scalar, classifier_free

RAE_REPO = "https://github.com/bytetriper/RAE"


class UpstreamCodeError(GenbenchError, RuntimeError):
    """The pinned upstream checkout is missing or at another commit."""


def upstream_sources(name: str, family: str, spec: dict[str, Any], checkpoint: str | Path | None,
                     required: tuple[str, ...], hint: str, repo: str = RAE_REPO,
                     marker: str = "src") -> tuple[dict[str, Any], Path, Path]:
    """An upstream adapter's model ``arch`` (``required`` keys checked, the first missing named with ``hint``), its
    checked-out code (``arch.code`` at ``arch.commit``) and its weights: the pipeline's checkpoint, else the
    configured local files."""
    arch = spec.get("arch", {})
    missing = [k for k in required if k not in arch]
    if missing:
        raise ValueError(f"model '{name}' ({family}): arch.{missing[0]} is required ({hint})")
    code = checkout(arch["code"], arch.get("commit"), f"model '{name}'", repo, marker=marker)
    files = Path(checkpoint) if checkpoint else resolve(WeightSpec.from_config(f"models.{name}", spec["weights"]))
    return arch, code, files


def checkout(code: str | Path, commit: str | None, what: str, repo: str = RAE_REPO, marker: str = "src") -> Path:
    """The upstream checkout at ``code``: it must hold ``marker`` (its package folder) and, when ``commit`` is
    given, be a git checkout at that commit (a prefix of HEAD's hash)."""
    code = Path(code)
    if not (code / marker).is_dir():
        raise UpstreamCodeError(f"{what}: upstream code not found at {code} (no {marker}/); clone it there: git clone "
                                f"{repo} {code} && git -C {code} checkout {commit or '<commit>'}")
    if commit:
        try:
            head = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as exc:
            raise UpstreamCodeError(f"{what}: cannot read the commit of {code} (is it a git checkout?)") from exc
        if not head.startswith(commit):
            raise UpstreamCodeError(f"{what}: {code} is at {head[:12]}, the config pins {commit}; run "
                                    f"git -C {code} checkout {commit}")
    return code


def import_from(root: Path, dotted: str):
    """``module.attr`` imported with ``root`` first on sys.path (the upstream checkout's import root)."""
    import importlib

    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _import(code: Path, dotted: str):
    return import_from(code / "src", dotted)


class offline_hub:
    """HF_HUB_OFFLINE=1 inside the block (upstream code that resolves model ids must find them in the local cache)."""

    def __enter__(self):
        self.old = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = self.old


class RAEGenerator(Generator):
    def __init__(self, name: str, spec: dict[str, Any], stage1: torch.nn.Module, stage2: torch.nn.Module,
                 misc: dict[str, Any]):
        super().__init__(name, spec)
        sampler = spec["sampler"]
        if sampler["method"] != "euler":
            raise ValueError(f"model '{name}' (rae): sampler '{sampler['method']}' is not available (euler)")
        self.stage1, self.stage2 = stage1.eval(), stage2.eval()
        self.latent = tuple(misc.get("latent_size", (768, 16, 16)))
        self.shift = math.sqrt(misc.get("time_dist_shift_dim", math.prod(self.latent)) /
                               misc.get("time_dist_shift_base", 4096))
        self.num_classes = int(misc.get("num_classes", 1000))
        interval = sampler.get("guidance_interval")
        self.interval = tuple(interval) if interval else None

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None, runtime=None) -> RAEGenerator:
        arch, code, files = upstream_sources(
            name, "rae", spec, checkpoint, ("code", "config"),
            "the upstream checkout and its sampling YAML, "
            "e.g. configs/stage2/sampling/ImageNet256/DiTDHXL-DINOv2-B.yaml")
        cfg = yaml.safe_load((code / arch["config"]).read_text())

        def local(p: str | None, base: Path) -> str | None:
            if p is None:
                return None
            path = Path(p) if Path(p).is_absolute() else base / p
            if not path.exists():
                raise WeightsMissingError(f"model '{name}' (rae): {path} is missing (named by {arch['config']}); "
                                          f"put the RAE-collections files under {files}")
            return str(path)

        p1 = dict(cfg["stage_1"].get("params", {}))
        for key in ("pretrained_decoder_path", "normalization_stat_path"):
            if p1.get(key):
                p1[key] = local(p1[key], files)
        if p1.get("decoder_config_path"):
            p1["decoder_config_path"] = local(p1["decoder_config_path"], code)
        with offline_hub():  # the encoder config comes from the local HF cache only
            stage1 = _import(code, cfg["stage_1"]["target"])(**p1)
            stage2 = _import(code, cfg["stage_2"]["target"])(**cfg["stage_2"].get("params", {}))
        ckpt = local(cfg["stage_2"].get("ckpt"), files)
        if ckpt is None:
            raise ValueError(f"model '{name}' (rae): {arch['config']} names no stage_2 ckpt")
        stage2.load_state_dict(load_state_dict(ckpt), strict=True)
        return cls(name, spec, stage1, stage2, cfg.get("misc", {}))

    def place(self, runtime) -> None:
        super().place(runtime)
        self.stage1 = runtime.place(self.stage1)
        self.stage2 = runtime.place(self.stage2)

    def noise_shape(self) -> tuple[int, ...]:
        return self.latent

    def grid(self, steps: int) -> list[float]:
        u = 1.0 - torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
        return (self.shift * u / (1 + (self.shift - 1) * u)).tolist()

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        def v(x: torch.Tensor, t: float, y: torch.Tensor) -> torch.Tensor:
            return self.stage2(x, batch_scalar(x, t), y)

        guided, passes = classifier_free(v, labels, self.num_classes, cfg, None, self.interval)
        counted = Counted(guided)
        x = noise
        ts = self.grid(steps)
        for t, t_next in zip(ts[:-1], ts[1:], strict=True):
            x = x + (t_next - t) * counted(x, t)
        images = self.stage1.decode(x)
        return SampleResult(x=images.float() * 2 - 1, nfe=counted.calls, forward_passes=passes())
