"""Adapters for external image-to-3D models, each through its upstream package in its own env
(workflow/envs/<kind>.yaml).

Every adapter follows the same path: import the upstream entry point (from the checkout at ``code`` when given,
else from the env), resolve the weights locally (a folder, or a local Hugging Face cache snapshot; never a
download), load once per job, then per item: the RGBA input (mask as alpha, as each model's own preprocessing
expects), a per-item seed (torch, numpy and random are seeded, and a ``torch.Generator`` is passed where the API
takes one), the sampler settings (steps and guidance, recorded in the item's metadata), and the output converted
to one kind: ``mesh`` (vertices/faces) or ``gaussians`` (Gaussian centres), in the model's own frame.

Settings follow each project's README / demo defaults at the time of writing; override them per model under
``reconstructors.<name>.settings``. None of these runs here (no GPU, no weights): the contract is tested with stand-in
modules that imitate each upstream API (tests/test_reconstruct3d.py).
"""

from __future__ import annotations

import importlib
import inspect
import random
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import trimesh

from ..errors import GenbenchError
from ..weights import WeightSpec, resolve
from .reconstructors import Reconstruction, ReconstructionError, Reconstructor, alpha_mask


class UpstreamMissingError(GenbenchError, ImportError):
    """The upstream package of an external model is not importable (names the env file and the repository)."""


class UpstreamReconstructor(Reconstructor):
    entry: ClassVar[str]  # dotted path of the upstream class
    import_root: ClassVar[str] = ""  # sub-folder of the checkout that holds the package
    repo: ClassVar[str]
    default_weights: ClassVar[dict[str, Any]]
    defaults: ClassVar[dict[str, Any]] = {}
    output: ClassVar[str] = "mesh"

    def __init__(self, name: str, spec: dict[str, Any]):
        super().__init__(name, spec)
        self.settings = {**self.defaults, **spec.get("settings", {})}
        unknown = set(spec.get("settings", {})) - set(self.defaults)
        if unknown:
            raise ValueError(f"reconstructors.{name}.settings: unknown key(s) {sorted(unknown)}; "
                             f"{spec['kind']} takes {sorted(self.defaults)}")
        self._pipe = None

    # -- loading ---------------------------------------------------------------------------------------------
    def import_entry(self, dotted: str | None = None):
        dotted = dotted or self.entry
        code = self.spec.get("code")
        if code:
            root = Path(code) / self.import_root
            if not root.is_dir():
                raise UpstreamMissingError(f"reconstructors.{self.name}: upstream code not found at {root}; clone "
                                           f"{self.repo} to {code}")
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
        module, _, attr = dotted.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise UpstreamMissingError(
                f"reconstructors.{self.name}: cannot import {dotted} ({exc}). Run this model in its env "
                f"(snakemake --use-conda; workflow/envs/{self.spec['kind']}.yaml) with {self.repo} checked out at "
                f"reconstructors.{self.name}.code") from exc

    def weights_path(self) -> Path:
        spec = WeightSpec.from_config(f"reconstructors.{self.name}", self.spec.get("weights", self.default_weights))
        return resolve(spec)

    def device(self) -> str:
        import torch

        want = self.spec.get("device", "cuda")
        if want == "cuda" and not torch.cuda.is_available():
            if self.spec.get("allow_cpu"):
                return "cpu"
            raise ReconstructionError(f"reconstructors.{self.name}: needs a CUDA GPU (none visible); run it on a "
                                      f"GPU node (the rule declares gpu=1) or set allow_cpu: true")
        return want

    def pipeline(self):
        if self._pipe is None:
            self._pipe = self.load(self.import_entry(), self.weights_path(), self.device())
        return self._pipe

    def load(self, cls, weights: Path, device: str):
        pipe = cls.from_pretrained(str(weights))
        return pipe.to(device) if hasattr(pipe, "to") else pipe

    # -- running ---------------------------------------------------------------------------------------------
    def reconstruct(self, rgba: np.ndarray, view: dict | None, seed: int, item: dict[str, Any]) -> Reconstruction:
        import torch
        from PIL import Image

        alpha_mask(rgba, f"{self.name}/{item.get('item_id', '?')}")
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        # photo_input rgb: the photo alone, as the seed ran most models (their own background removal, or none)
        feed = item.get("_feed", "rgba")
        image = Image.fromarray(rgba[..., :3], "RGB") if feed == "rgb" else Image.fromarray(rgba, "RGBA")
        out = self.run(self.pipeline(), image, rgba, seed)
        rec = self.to_reconstruction(out)
        rec.meta.update({"seed": seed, **self.settings, "upstream": self.entry, "feed": feed})
        return rec

    def generator(self, seed: int):
        import torch

        return torch.Generator(device=self.device()).manual_seed(seed)

    def run(self, pipe, image, rgba: np.ndarray, seed: int) -> Any:
        raise NotImplementedError

    def to_reconstruction(self, out: Any) -> Reconstruction:
        return Reconstruction("mesh", "model", mesh=as_trimesh(out, self.name))


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def as_trimesh(obj: Any, what: str) -> trimesh.Trimesh:
    """A trimesh from what upstream returns: a Trimesh, a (vertices, faces) pair, or an object with
    ``vertices``/``faces`` attributes (tensors or arrays)."""
    if isinstance(obj, trimesh.Trimesh):
        mesh = obj
    elif isinstance(obj, (tuple, list)) and len(obj) == 2:
        mesh = trimesh.Trimesh(_numpy(obj[0]).astype(np.float64), _numpy(obj[1]).astype(np.int64), process=False)
    elif hasattr(obj, "vertices") and hasattr(obj, "faces"):
        mesh = trimesh.Trimesh(_numpy(obj.vertices).astype(np.float64), _numpy(obj.faces).astype(np.int64),
                               process=False)
    else:
        raise ReconstructionError(f"{what}: the model returned {type(obj).__name__}, not a mesh")
    return mesh


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _on_background(image, colour: tuple[float, float, float]):
    from PIL import Image

    if image.mode == "RGB":  # photo_input rgb: nothing to composite (the photo's own background stays)
        return image
    bg = Image.new("RGBA", image.size, tuple(int(round(c * 255)) for c in colour) + (255,))
    return Image.alpha_composite(bg, image).convert("RGB")


class TrellisReconstructor(UpstreamReconstructor):
    """microsoft/TRELLIS: TrellisImageTo3DPipeline.run(image, seed, sparse-structure and SLAT sampler params);
    its preprocessing crops to the alpha and composites; outputs a mesh (MeshExtractResult) and Gaussians."""

    entry = "trellis.pipelines.TrellisImageTo3DPipeline"
    repo = "https://github.com/microsoft/TRELLIS"
    default_weights = {"repo_id": "JeffreyXiang/TRELLIS-image-large"}
    defaults = {"ss_steps": 12, "ss_cfg": 7.5, "slat_steps": 12, "slat_cfg": 3.0, "output": "mesh"}

    def load(self, cls, weights: Path, device: str):
        pipe = cls.from_pretrained(str(weights))
        return pipe.cuda() if device == "cuda" else pipe

    def run(self, pipe, image, rgba, seed):
        s = self.settings
        out = pipe.run(image, seed=seed, formats=["mesh", "gaussian"],
                       sparse_structure_sampler_params={"steps": s["ss_steps"], "cfg_strength": s["ss_cfg"]},
                       slat_sampler_params={"steps": s["slat_steps"], "cfg_strength": s["slat_cfg"]})
        return out

    def to_reconstruction(self, out):
        if self.settings["output"] == "gaussians":
            return Reconstruction("gaussians", "model", points=_numpy(out["gaussian"][0].get_xyz))
        return Reconstruction("mesh", "model", mesh=as_trimesh(out["mesh"][0], self.name))


class Hi3DGenReconstructor(TrellisReconstructor):
    """Stable-X/Hi3DGen: a normal map from StableNormal (torch.hub entry ``StableNormal_turbo`` of a local
    hugoycj/StableNormal checkout), then Hi3DGenPipeline.run on the normal image (TRELLIS-style sampler params)."""

    entry = "hi3dgen.pipelines.Hi3DGenPipeline"
    repo = "https://github.com/Stable-X/Hi3DGen"
    default_weights = {"repo_id": "Stable-X/trellis-normal-v0-1"}
    defaults = {"ss_steps": 50, "ss_cfg": 3.0, "slat_steps": 6, "slat_cfg": 3.0, "normal_resolution": 768,
                "output": "mesh"}

    def load(self, cls, weights, device):
        import torch

        pipe = super().load(cls, weights, device)
        normal = self.spec.get("normal_model", {})
        if not normal.get("code") or not Path(normal["code"]).is_dir():
            raise UpstreamMissingError(f"reconstructors.{self.name}.normal_model.code: a local checkout of "
                                       f"hugoycj/StableNormal (torch.hub, source='local') is needed for the normal "
                                       f"maps; got {normal.get('code')!r}")
        self._normal = torch.hub.load(normal["code"], normal.get("entry", "StableNormal_turbo"), source="local",
                                      trust_repo=True, local_cache_dir=normal.get("weights"))
        return pipe

    def run(self, pipe, image, rgba, seed):
        s = self.settings
        normal = self._normal(image, resolution=s["normal_resolution"], match_input_resolution=True,
                              data_type="object")
        return pipe.run(normal, seed=seed, formats=["mesh"], preprocess_image=False,
                        sparse_structure_sampler_params={"steps": s["ss_steps"], "cfg_strength": s["ss_cfg"]},
                        slat_sampler_params={"steps": s["slat_steps"], "cfg_strength": s["slat_cfg"]})


class Hunyuan3DReconstructor(UpstreamReconstructor):
    """Tencent-Hunyuan/Hunyuan3D-2.1 (shape stage): Hunyuan3DDiTFlowMatchingPipeline(image=RGBA, steps,
    guidance, octree resolution, generator) -> list of trimesh."""

    entry = "hy3dshape.pipelines.Hunyuan3DDiTFlowMatchingPipeline"
    import_root = "hy3dshape"
    repo = "https://github.com/Tencent-Hunyuan/Hunyuan3D-2.1"
    default_weights = {"repo_id": "tencent/Hunyuan3D-2.1"}
    defaults = {"steps": 50, "guidance": 5.0, "octree_resolution": 256, "subfolder": "hunyuan3d-dit-v2-1"}

    def load(self, cls, weights, device):
        pipe = cls.from_pretrained(str(weights), subfolder=self.settings["subfolder"])
        return pipe.to(device) if hasattr(pipe, "to") else pipe

    def run(self, pipe, image, rgba, seed):
        s = self.settings
        return pipe(image=image, num_inference_steps=s["steps"], guidance_scale=s["guidance"],
                    octree_resolution=s["octree_resolution"], generator=self.generator(seed))[0]


class Direct3DReconstructor(UpstreamReconstructor):
    """DreamTechAI/Direct3D: Direct3dPipeline(image, remove_background=False, mc_threshold, guidance_scale,
    num_inference_steps)['meshes'][0] (seeded through torch's global RNG)."""

    entry = "direct3d.pipeline.Direct3dPipeline"
    repo = "https://github.com/DreamTechAI/Direct3D"
    default_weights = {"repo_id": "DreamTechAI/Direct3D"}
    defaults = {"steps": 50, "guidance": 4.0, "mc_threshold": -1.0}

    def run(self, pipe, image, rgba, seed):
        s = self.settings
        kw = {"generator": self.generator(seed)} if _accepts(pipe.__call__, "generator") else {}
        return pipe(image, remove_background=False, mc_threshold=s["mc_threshold"], guidance_scale=s["guidance"],
                    num_inference_steps=s["steps"], **kw)["meshes"][0]


class TripoSGReconstructor(UpstreamReconstructor):
    """VAST-AI-Research/TripoSG: TripoSGPipeline(image=RGB on a white background, generator, steps, guidance)
    .samples[0] = (vertices, faces)."""

    entry = "triposg.pipelines.pipeline_triposg.TripoSGPipeline"
    repo = "https://github.com/VAST-AI-Research/TripoSG"
    default_weights = {"repo_id": "VAST-AI/TripoSG"}
    defaults = {"steps": 50, "guidance": 7.0, "background": [1.0, 1.0, 1.0]}

    def run(self, pipe, image, rgba, seed):
        s = self.settings
        out = pipe(image=_on_background(image, tuple(s["background"])), generator=self.generator(seed),
                   num_inference_steps=s["steps"], guidance_scale=s["guidance"])
        return out.samples[0]


class SAM3DReconstructor(UpstreamReconstructor):
    """facebookresearch/sam-3d-objects: notebook/inference.py's Inference(<weights>/pipeline.yaml) called with
    (RGBA image, mask, seed); output 'gs' (Gaussians: the seed benchmark scores their centres) or the 'glb' mesh."""

    entry = "inference.Inference"
    import_root = "notebook"
    repo = "https://github.com/facebookresearch/sam-3d-objects"
    default_weights = {"repo_id": "facebook/sam-3d-objects"}
    defaults = {"output": "gaussians", "config": "checkpoints/pipeline.yaml"}

    def load(self, cls, weights, device):
        cfg = Path(weights) / self.settings["config"] if (Path(weights) / self.settings["config"]).exists() \
            else Path(weights) / "pipeline.yaml"
        if not cfg.exists():
            raise FileNotFoundError(f"reconstructors.{self.name}: no pipeline.yaml under {weights} (looked for "
                                    f"{self.settings['config']} and pipeline.yaml); fetch facebook/sam-3d-objects")
        return cls(str(cfg), compile=False)

    def run(self, pipe, image, rgba, seed):
        return pipe(np.ascontiguousarray(rgba), rgba[..., 3] >= 128, seed=seed)

    def to_reconstruction(self, out):
        if self.settings["output"] == "gaussians":
            gs = out["gs"]
            return Reconstruction("gaussians", "model", points=_numpy(getattr(gs, "get_xyz", gs)))
        return Reconstruction("mesh", "model", mesh=as_trimesh(out["glb"], self.name))
