"""Shap-E image-to-3D (Jun & Nichol 2023, openai/shap-e-img2img) through diffusers' ``ShapEImg2ImgPipeline``.

The weights folder is the official diffusers layout (``model_index.json`` + ``prior``, ``image_encoder``,
``image_processor``, ``scheduler``, ``shap_e_renderer``), resolved locally like every adapter's (never a download),
loaded in float16 on a GPU (``settings.precision``; float32 on the CPU). Per item: the RGBA composited on white
(Shap-E's own examples are objects on white; CLIP's processor would otherwise drop the alpha and keep whatever
colour the masked-out pixels have), a ``torch.Generator`` seeded per item, 64 Heun steps at guidance 3.0 (the
diffusers example), then what ``output_type="mesh"`` runs: the renderer's ``decode_to_mesh`` (SDF on a
``grid_size``^3 grid, diffusers' default 128, marching cubes, colours queried at the vertices) ->
``MeshDecoderOutput`` (verts, faces, vertex_channels R/G/B): a mesh in Shap-E's frame with its vertex colours.
The loading and the call are tested with a tiny random pipeline saved in the official layout
(tests/test_reconstruct3d_table2.py); the real weights have not been run here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .external import UpstreamReconstructor, _on_background
from .reconstructors import Reconstruction, ReconstructionError
from .upstream3d import coloured_mesh

PRECISIONS = ("fp16", "bf16", "fp32")


class ShapEReconstructor(UpstreamReconstructor):
    entry = "diffusers.ShapEImg2ImgPipeline"
    repo = "https://github.com/huggingface/diffusers"
    default_weights = {"repo_id": "openai/shap-e-img2img"}
    defaults = {"steps": 64, "guidance": 3.0, "precision": "fp16", "background": [1.0, 1.0, 1.0], "grid_size": 128}

    def load(self, cls, weights: Path, device: str):
        import torch

        precision = self.settings["precision"]
        if precision not in PRECISIONS:
            raise ValueError(f"reconstructors.{self.name}.settings.precision: {precision!r} is not one of "
                             f"{', '.join(PRECISIONS)}")
        if not (Path(weights) / "model_index.json").is_file():
            raise FileNotFoundError(f"reconstructors.{self.name}: {weights} is not a diffusers pipeline folder (no "
                                    f"model_index.json); fetch {self.default_weights['repo_id']}")
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
        if device == "cpu":
            dtype = torch.float32  # half-precision kernels are GPU ones
        pipe = cls.from_pretrained(str(weights), torch_dtype=dtype)
        pipe.set_progress_bar_config(disable=True)
        return pipe.to(device)

    def run(self, pipe, image, rgba, seed):
        import torch

        s = self.settings
        # output_type "mesh" is this call followed by decode_to_mesh at its default grid (128); the two steps are
        # made here so that grid_size is a setting
        latents = pipe(_on_background(image, tuple(s["background"])), num_inference_steps=int(s["steps"]),
                       guidance_scale=float(s["guidance"]), generator=self.generator(seed),
                       output_type="latent").images
        with torch.no_grad():
            return pipe.shap_e_renderer.decode_to_mesh(latents[0][None, :], pipe.device, grid_size=int(s["grid_size"]))

    def to_reconstruction(self, out):
        channels = getattr(out, "vertex_channels", None) or {}
        colours = None
        if all(c in channels for c in "RGB"):
            colours = np.stack([channels[c].detach().float().cpu().numpy() for c in "RGB"], -1)
        if len(out.verts) == 0:
            raise ReconstructionError(f"{self.name}: Shap-E's marching cubes found no surface")
        return Reconstruction("mesh", "model", mesh=coloured_mesh(out.verts, out.faces, colours, self.name))
