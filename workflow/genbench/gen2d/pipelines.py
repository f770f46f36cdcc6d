"""Text-to-image systems through diffusers pipelines: SD3.5 (StableDiffusion3Pipeline) and FLUX.1 (FluxPipeline).

Each item is prompted with its manifest prompt ("a photo of a {class}" by default) and starts from its own seeded
latent noise, passed to the pipeline as ``latents`` (FLUX's packed layout is built from the per-item noise), so
sharding and batching never change an image. Pipelines load from a local folder or the local HF cache only
(genbench.weights; ``local_files_only``). The sweep's ``cfg`` is the pipeline's
``guidance_scale``: classifier-free guidance for SD3.5 (cfg = 1 turns it off: one pass per step), the distilled
guidance embedding for FLUX.1-dev (one pass per step whatever the value). ``forward_passes`` is counted on the
transformer itself. ``output_size`` (optional) generates at ``resolution`` and downsamples as the 2D anchor's
SD3.5/FLUX.1 scripts do: the pipeline's 8-bit image resized with PIL's LANCZOS filter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..weights import WeightSpec, resolve
from .registry import Generator, NoiseSource
from .samplers import SampleResult

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# a runtime precision's weight dtype, for models loaded straight in it (pipelines, Scale-RAE): bf16/fp16 are the
# weights' dtype there, not autocast over float32 weights (FLUX.1's 12B transformer would need 48 GB in float32)
PRECISION_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def weight_dtype(arch: dict[str, Any], runtime=None, device: str | None = None) -> torch.dtype:
    """``arch.dtype`` when the config sets it, else the runtime's precision; without a runtime (outside a stage),
    bfloat16 on CUDA and float32 on the CPU."""
    if arch.get("dtype"):
        return DTYPES[arch["dtype"]]
    if runtime is not None:
        return DTYPES[PRECISION_DTYPES[runtime.precision]]
    on_cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda"
    return torch.bfloat16 if on_cuda else torch.float32


class TransformerCounter:
    """Counts the transformer's calls and the rows it processed (2 rows per sample under CFG)."""

    def __init__(self, module: torch.nn.Module):
        self.calls = self.rows = 0
        module.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        x = kwargs.get("hidden_states", args[0] if args else None)
        self.calls += 1
        self.rows += int(x.shape[0])

    def reset(self) -> None:
        self.calls = self.rows = 0


def lanczos_downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images in [-1, 1] (B, 3, H, W) -> (B, 3, size, size) as the anchor makes its 256 px text-to-image samples:
    quantised to 8 bits as diffusers' ``numpy_to_pil`` does (round(255 x)), resized with PIL LANCZOS, back to
    [-1, 1]. The result is exactly 8-bit, like the anchor's stored images."""
    import numpy as np
    from PIL import Image

    u8 = ((x.clamp(-1, 1) + 1) / 2 * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = [np.asarray(Image.fromarray(im).resize((size, size), Image.LANCZOS)) for im in u8]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1


class PipelineGenerator(Generator):
    pipeline_class: str = ""

    def __init__(self, name: str, spec: dict[str, Any], pipe: Any):
        super().__init__(name, spec)
        if spec["sampler"]["method"] != "pipeline":
            raise ValueError(f"model '{name}' ({spec['family']}): sampler method must be 'pipeline' (the "
                             f"pipeline's own scheduler), got '{spec['sampler']['method']}'")
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.resolution = int(spec.get("resolution", 1024))
        self.output_size = int(spec.get("output_size", self.resolution))
        self.counter = TransformerCounter(pipe.transformer)
        self.device = torch.device("cpu")  # until place()

    def place(self, runtime) -> None:
        """The whole pipeline (transformer, text encoders, VAE) to the runtime's device."""
        super().place(runtime)
        self.pipe.to(runtime.device)
        self.device = runtime.device

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None, runtime=None) -> PipelineGenerator:
        import diffusers

        folder = Path(checkpoint) if checkpoint else resolve(WeightSpec.from_config(f"models.{name}",
                                                                                    spec["weights"]))
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"model '{name}': {folder} is not a diffusers pipeline folder (no "
                                    f"model_index.json); give the repository snapshot folder")
        dtype = weight_dtype(spec.get("arch", {}), runtime)
        pipe = getattr(diffusers, cls.pipeline_class).from_pretrained(str(folder), dtype=dtype, local_files_only=True)
        return cls(name, spec, pipe)

    @property
    def latent_hw(self) -> int:
        return self.resolution // self.pipe.vae_scale_factor

    def pipe_kwargs(self, noise: torch.Tensor) -> dict[str, Any]:
        return {"latents": noise.to(self.device, self.pipe.transformer.dtype)}

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        if prompts is None or len(prompts) != len(noise):
            raise ValueError(f"model '{self.name}': a text-to-image system needs one prompt per item")
        self.counter.reset()
        out = self.pipe(prompt=list(prompts), num_inference_steps=steps, guidance_scale=cfg,
                        height=self.resolution, width=self.resolution, output_type="pt", **self.pipe_kwargs(noise))
        x = out.images.float().cpu() * 2 - 1
        if self.output_size != self.resolution:
            x = lanczos_downsample(x, self.output_size)
        return SampleResult(x=x, nfe=self.counter.calls, forward_passes=self.counter.rows // len(noise))


class SD35Generator(PipelineGenerator):
    pipeline_class = "StableDiffusion3Pipeline"

    def noise_shape(self) -> tuple[int, ...]:
        return (self.pipe.transformer.config.in_channels, self.latent_hw, self.latent_hw)


class Flux1Generator(PipelineGenerator):
    pipeline_class = "FluxPipeline"

    def noise_shape(self) -> tuple[int, ...]:
        # FluxPipeline works on 2x2-packed latents: unpacked (C, 2*(H//2), 2*(W//2)) with C = in_channels / 4
        hw = 2 * (self.latent_hw // 2)
        return (self.pipe.transformer.config.in_channels // 4, hw, hw)

    def pipe_kwargs(self, noise: torch.Tensor) -> dict[str, Any]:
        b, c, h, w = noise.shape
        packed = self.pipe._pack_latents(noise, b, c, h, w)
        return {"latents": packed.to(self.device, self.pipe.transformer.dtype)}
