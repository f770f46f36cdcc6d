"""Table 2's multi-view and latent baselines through their own code at a pinned commit: LGM, InstantMesh,
GaussianAnything and 3DTopia-XL (each in its env, workflow/envs/<kind>.yaml; the checkout at
``reconstructors.<name>.code``).

None of the four ships a pipeline class: each is run by a script (LGM ``infer.py``, InstantMesh ``run.py``,
GaussianAnything ``scripts/gradio_app_cascaded.py``, 3DTopia-XL ``inference.py``). These adapters make the calls
those scripts make, from the upstream modules, with the differences named per class: the input is the item's RGBA
(its mask is the object; no rembg), recentred the way each script recentres, the weights come from local folders
(never a download), and each item gets its seed through a ``torch.Generator`` or torch's global RNG. Gaussians are
handed over as the Gaussian centres (scored) plus a 3DGS PLY (``pred_gaussians.ply``, the appearance metrics);
meshes keep the vertex colours the upstream gives. Not run here (no GPU, no weights): tests/test_reconstruct3d.py
drives them through stand-in modules that imitate each upstream API.
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import trimesh

from ..weights import WeightSpec, resolve
from . import gaussians as gs
from .external import UpstreamMissingError, UpstreamReconstructor, _accepts, _numpy, as_trimesh
from .reconstructors import Reconstruction, ReconstructionError

# the commits the adapters were written against (the upstream's default branch head when they were written);
# reconstructors.<name>.commit pins a checkout (checked at load), docs/metrics3d.md lists them
COMMITS = {
    "lgm": "fe8d12cff8c827df7bb77a3c8e8b37408cb6fe4c",
    "instantmesh": "08822c52fdc399b93ea00e4fa9e596344ed52ccc",
    "gaussiananything": "3cf3fdefc9d7e5a2f0088434033cf46cb7fc217b",
    "3dtopia_xl": "657b0b041e584e0793988f245f8be172aa9d9cee",
}


def recentre(rgba: np.ndarray, ratio: float) -> np.ndarray:
    """The object (alpha >= 128) cropped to its bounding box, centred on a transparent square whose side is
    ``1 / ratio`` times the box's longer side (InstantMesh's and 3DTopia-XL's ``resize_foreground``; LGM's
    ``recenter`` with border_ratio 0.2 is ratio 0.8)."""
    if not 0 < ratio <= 1:
        raise ValueError(f"foreground ratio must be in (0, 1], got {ratio}")
    rows, cols = np.nonzero(rgba[..., 3] >= 128)
    if not len(rows):
        raise ReconstructionError("the input mask (alpha) is empty")
    crop = rgba[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    side = max(crop.shape[:2])
    out_side = max(int(side / ratio), side)
    out = np.zeros((out_side, out_side, 4), dtype=rgba.dtype)
    r0, c0 = (out_side - crop.shape[0]) // 2, (out_side - crop.shape[1]) // 2
    out[r0:r0 + crop.shape[0], c0:c0 + crop.shape[1]] = crop
    return out


def on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 -> RGB float in [0, 1] composited on white (as LGM, GaussianAnything and 3DTopia-XL feed it)."""
    x = rgba.astype(np.float32) / 255.0
    return x[..., :3] * x[..., 3:4] + (1 - x[..., 3:4])


def coloured_mesh(vertices, faces, colours, what: str) -> trimesh.Trimesh:
    """A mesh with per-vertex colours (float in [0, 1] or uint8, RGB or RGBA) kept as uint8 RGBA."""
    mesh = as_trimesh((vertices, faces), what)
    if colours is not None:
        c = _numpy(colours)
        if c.shape[0] != len(mesh.vertices) or c.ndim != 2 or c.shape[1] not in (3, 4):
            raise ReconstructionError(f"{what}: {c.shape} vertex colours for {len(mesh.vertices)} vertices")
        if c.dtype != np.uint8:
            c = np.round(np.clip(c.astype(np.float64), 0, 1) * 255).astype(np.uint8)
        mesh.visual.vertex_colors = c
    return mesh


def gaussian_reconstruction(means, opacities, scales, rotations, colours, min_opacity: float,
                            what: str) -> Reconstruction:
    """Activated Gaussians (means, opacity in [0, 1], scale std, quaternion (w, x, y, z), RGB in [0, 1]) -> the
    centres to score and a 3DGS PLY beside them; Gaussians below ``min_opacity`` are dropped (LGM's save_ply
    prunes at 0.005)."""
    import torch

    t = {k: torch.as_tensor(_numpy(v), dtype=torch.float32) for k, v in
         dict(means=means, opacities=opacities, scales=scales, rotations=rotations, colours=colours).items()}
    keep = t["opacities"].reshape(-1) >= min_opacity
    if not bool(keep.any()):
        raise ReconstructionError(f"{what}: no Gaussian has opacity >= {min_opacity}")
    g = gs.Gaussians(means=t["means"][keep], scales=t["scales"][keep].clamp(min=1e-8),
                     rotations=t["rotations"][keep],
                     opacities=t["opacities"].reshape(-1)[keep].clamp(1e-6, 1 - 1e-6),
                     colours=t["colours"][keep].clamp(1e-6, 1.0))
    return Reconstruction("gaussians", "model", points=g.means.numpy().astype(np.float64), splats=g,
                          files={"pred_gaussians.ply": gs.ply_bytes(g)}, meta={"n_gaussians": len(g)})


class PinnedUpstream(UpstreamReconstructor):
    """An upstream run from its checkout: ``code`` is required (these repositories are not packages), and a
    ``commit`` in the config must be the checkout's HEAD."""

    kind: ClassVar[str]
    aux_weights: ClassVar[dict[str, dict[str, Any]]] = {}  # further weights: name -> default WeightSpec fields

    def checkout(self) -> Path:
        code = self.spec.get("code")
        commit = self.spec.get("commit")
        clone = (f"git clone {self.repo} <dir> && git -C <dir> checkout {commit or COMMITS[self.kind]}")
        if not code or not (Path(code) / self.marker).is_dir():
            where = f"got {code!r}, which has no {self.marker}/" if code else "it is not set"
            raise UpstreamMissingError(f"reconstructors.{self.name}.code: {self.spec['kind']} runs from a checkout "
                                       f"of {self.repo} ({where}); {clone}, and set code to <dir>")
        if commit:
            try:
                head = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True,
                                      check=True).stdout.strip()
            except (OSError, subprocess.CalledProcessError) as exc:
                raise UpstreamMissingError(f"reconstructors.{self.name}.code: cannot read the commit of {code} (is "
                                           f"it a git checkout?); the config pins {commit}") from exc
            if not head.startswith(commit):
                raise UpstreamMissingError(f"reconstructors.{self.name}.code: {code} is at {head[:12]}, the config "
                                           f"pins {commit}; run git -C {code} checkout {commit}")
        return Path(code)

    marker: ClassVar[str] = "."

    def aux_path(self, key: str) -> Path:
        spec = WeightSpec.from_config(f"reconstructors.{self.name}.{key}", self.spec.get(key, self.aux_weights[key]))
        return resolve(spec)

    def pipeline(self):
        if self._pipe is None:
            self.checkout()
            self._pipe = self.load(self.import_entry(), self.weights_path(), self.device())
        return self._pipe

    @staticmethod
    def dtype(device: str):
        import torch

        return torch.float16 if device == "cuda" else torch.float32


class LGMReconstructor(PinnedUpstream):
    """3DTopia/LGM (infer.py): ImageDream (``mvdream.pipeline_mvdream.MVDreamPipeline``, ashawkey/imagedream-ipmv-
    diffusers) makes 4 views of the recentred image on white (border ratio 0.2, guidance 5.0, 30 steps, elevation
    0), reordered [1, 2, 3, 0], resized to the model's input size, ImageNet-normalised, concatenated with
    ``prepare_default_rays``, then ``LGM(config_defaults['big']).forward_gaussians`` -> [1, N, 14] Gaussians
    (xyz, opacity, scale, rotation, rgb), pruned at opacity 0.005 as its ``save_ply``."""

    kind = "lgm"
    entry = "core.models.LGM"
    marker = "core"
    repo = "https://github.com/3DTopia/LGM"
    default_weights = {"repo_id": "ashawkey/LGM"}
    aux_weights = {"multiview_model": {"repo_id": "ashawkey/imagedream-ipmv-diffusers"}}
    defaults = {"config": "big", "checkpoint": "model_fp16_fixrot.safetensors", "steps": 30, "guidance": 5.0,
                "elevation": 0.0, "border_ratio": 0.2, "min_opacity": 0.005}
    output = "gaussians"

    def load(self, cls, weights, device):
        from safetensors.torch import load_file

        s = self.settings
        opt = self.import_entry("core.options.config_defaults")[s["config"]]
        model = cls(opt)
        ckpt = Path(weights) / s["checkpoint"]
        if not ckpt.is_file():
            raise FileNotFoundError(f"reconstructors.{self.name}: no {s['checkpoint']} under {weights}; fetch "
                                    f"{self.default_weights['repo_id']}")
        model.load_state_dict(load_file(str(ckpt), device="cpu"), strict=False)
        model = (model.half() if device == "cuda" else model).to(device).eval()
        mv = self.import_entry("mvdream.pipeline_mvdream.MVDreamPipeline").from_pretrained(
            str(self.aux_path("multiview_model")), torch_dtype=self.dtype(device), trust_remote_code=True)
        mv = mv.to(device)
        return SimpleNamespace(model=model, mv=mv, opt=opt, rays=model.prepare_default_rays(device), device=device)

    def run(self, pipe, image, rgba, seed):
        import torch
        import torch.nn.functional as F

        s = self.settings
        src = recentre(rgba, 1 - s["border_ratio"])
        views = pipe.mv("", on_white(src), guidance_scale=s["guidance"], num_inference_steps=s["steps"],
                        elevation=s["elevation"], generator=self.generator(seed))
        views = np.stack([views[1], views[2], views[3], views[0]], axis=0)  # upstream's order
        x = torch.from_numpy(views).permute(0, 3, 1, 2).float().to(pipe.device)
        x = F.interpolate(x, size=(pipe.opt.input_size, pipe.opt.input_size), mode="bilinear", align_corners=False)
        mean = torch.tensor((0.485, 0.456, 0.406), device=x.device).view(1, 3, 1, 1)
        std = torch.tensor((0.229, 0.224, 0.225), device=x.device).view(1, 3, 1, 1)
        x = torch.cat([(x - mean) / std, pipe.rays], dim=1).unsqueeze(0)
        with torch.no_grad(), torch.autocast(device_type="cuda", dtype=torch.float16,
                                             enabled=pipe.device == "cuda"):
            return pipe.model.forward_gaussians(x)

    def to_reconstruction(self, out):
        g = _numpy(out)[0].astype(np.float32)
        if g.ndim != 2 or g.shape[1] != 14:
            raise ReconstructionError(f"{self.name}: LGM returned Gaussians of shape {g.shape}, not [1, N, 14]")
        return gaussian_reconstruction(g[:, 0:3], g[:, 3], g[:, 4:7], g[:, 7:11], g[:, 11:14],
                                       self.settings["min_opacity"], self.name)


class InstantMeshReconstructor(PinnedUpstream):
    """TencentARC/InstantMesh (run.py): Zero123++ v1.2 (``DiffusionPipeline`` with the checkout's
    ``zero123plus`` custom pipeline, EulerAncestral 'trailing', InstantMesh's white-background UNet) on the
    recentred RGBA (foreground ratio 0.85), 75 steps -> a 3 x 2 grid of 320 px views; the LRM from
    ``configs/instant-mesh-large.yaml`` (``instantiate_from_config``, ``init_flexicubes_geometry(fovy=30)``),
    ``forward_planes`` with ``get_zero123plus_input_cameras(radius=4.0 * scale)``, ``extract_mesh`` ->
    (vertices, faces, vertex colours)."""

    kind = "instantmesh"
    entry = "src.utils.train_util.instantiate_from_config"
    marker = "src"
    repo = "https://github.com/TencentARC/InstantMesh"
    default_weights = {"repo_id": "TencentARC/InstantMesh"}
    aux_weights = {"multiview_model": {"repo_id": "sudo-ai/zero123plus-v1.2"}}
    defaults = {"config": "configs/instant-mesh-large.yaml", "steps": 75, "views": 6, "scale": 1.0,
                "foreground_ratio": 0.85}

    def load(self, instantiate, weights, device):
        import torch
        from diffusers import DiffusionPipeline, EulerAncestralDiscreteScheduler
        from omegaconf import OmegaConf

        s = self.settings
        code = self.checkout()
        config = OmegaConf.load(str(code / s["config"]))
        name = Path(s["config"]).stem
        files = {"unet": Path(weights) / "diffusion_pytorch_model.bin",
                 "lrm": Path(weights) / f"{name.replace('-', '_')}.ckpt"}
        for f in files.values():
            if not f.is_file():
                raise FileNotFoundError(f"reconstructors.{self.name}: no {f.name} under {weights}; fetch "
                                        f"{self.default_weights['repo_id']}")
        mv = DiffusionPipeline.from_pretrained(str(self.aux_path("multiview_model")),
                                               custom_pipeline=str(code / "zero123plus"),
                                               torch_dtype=self.dtype(device))
        mv.scheduler = EulerAncestralDiscreteScheduler.from_config(mv.scheduler.config, timestep_spacing="trailing")
        mv.unet.load_state_dict(torch.load(files["unet"], map_location="cpu", weights_only=True), strict=True)
        mv = mv.to(device)
        model = instantiate(config.model_config)
        state = torch.load(files["lrm"], map_location="cpu", weights_only=True)["state_dict"]
        model.load_state_dict({k[len("lrm_generator."):]: v for k, v in state.items()
                               if k.startswith("lrm_generator.")}, strict=True)
        model = model.to(device)
        flexicubes = name.startswith("instant-mesh")
        if flexicubes:
            model.init_flexicubes_geometry(device, fovy=30.0)
        cameras = self.import_entry("src.utils.camera_util.get_zero123plus_input_cameras")(
            batch_size=1, radius=4.0 * s["scale"]).to(device)
        return SimpleNamespace(mv=mv, model=model.eval(), cameras=cameras, infer=dict(config.infer_config),
                               device=device)

    def run(self, pipe, image, rgba, seed):
        import torch
        import torch.nn.functional as F
        from PIL import Image

        s = self.settings
        src = Image.fromarray(recentre(rgba, s["foreground_ratio"]), "RGBA")
        kw = {"generator": self.generator(seed)} if _accepts(pipe.mv.__call__, "generator") else {}
        grid = np.asarray(pipe.mv(src, num_inference_steps=s["steps"], **kw).images[0], dtype=np.float32) / 255.0
        h, w = grid.shape[0] // 3, grid.shape[1] // 2
        views = torch.from_numpy(grid[..., :3].copy()).permute(2, 0, 1)  # (3, 3h, 2w): rows of two views
        views = views.reshape(3, 3, h, 2, w).permute(1, 3, 0, 2, 4).reshape(6, 3, h, w).unsqueeze(0)
        views = F.interpolate(views[0], size=(320, 320), mode="bicubic", antialias=True,
                              align_corners=False).clamp(0, 1).unsqueeze(0).to(pipe.device)
        cameras = pipe.cameras
        if s["views"] == 4:
            idx = torch.tensor([0, 2, 4, 5], device=pipe.device)
            views, cameras = views[:, idx], cameras[:, idx]
        with torch.no_grad():
            planes = pipe.model.forward_planes(views, cameras)
            return pipe.model.extract_mesh(planes, use_texture_map=False, **pipe.infer)

    def to_reconstruction(self, out):
        vertices, faces, colours = out
        return Reconstruction("mesh", "model", mesh=coloured_mesh(vertices, faces, colours, self.name))


class GaussianAnythingReconstructor(PinnedUpstream):
    """NIRVANALAN/GaussianAnything (scripts/gradio_app_cascaded.py): the two flow-matching stages built from
    ``configs/gradio_i23d_stage{1,2}_args.json`` (``create_model_and_diffusion``, ``create_3DAE_model``, the
    ``flow_matching_gs`` engine of ``nsr.lsgm.flow_matching_trainer``) after ``dist_util.setup_dist`` and
    ``logger.configure(dir=stage-1 logdir)``, checkpoints from the local yslan/GaussianAnything snapshot; the input
    is the recentred image on white resized to 518 px (LANCZOS, DINO's size), as a uint8 array;
    ``eval_i23d_and_export_gradio(image, seed, cfg 4.0)`` of stage 1 (point cloud) then stage 2 (surfel Gaussians)
    -> the TSDF mesh it exports (``output: mesh``) or its coloured 2DGS centres (``output: points``).

    The engine reads ``assets/objv_eval_pose.pt`` and stage 1's point cloud from ``./logs/i23d/stage-1/...``
    relative to the working directory, so every call runs inside the checkout and writes under its ``logs/``
    (one item at a time: two jobs must not share a checkout)."""

    kind = "gaussiananything"
    entry = "nsr.lsgm.flow_matching_trainer.FlowMatchingEngine_gs"
    marker = "nsr"
    repo = "https://github.com/NIRVANALAN/GaussianAnything"
    default_weights = {"repo_id": "yslan/GaussianAnything"}
    defaults = {"cfg": 4.0, "foreground_ratio": 0.85, "image_size": 518, "output": "mesh"}

    def load(self, engine, weights, device):
        import json
        import os

        code = self.checkout()
        su = importlib.import_module("guided_diffusion.script_util")
        nsu = importlib.import_module("nsr.script_util")
        dist_util = importlib.import_module("guided_diffusion.dist_util")
        logger = importlib.import_module("guided_diffusion.logger")
        easydict = self.import_entry("dnnlib.util.EasyDict")
        for key, value in (("MASTER_ADDR", "localhost"), ("MASTER_PORT", "12355"), ("RANK", "0"),
                           ("WORLD_SIZE", "1")):  # a one-process group, as the demo sets it up
            os.environ.setdefault(key, value)
        stages = []
        with contextlib.chdir(code):
            for k in (1, 2):
                args = easydict(json.loads((code / f"configs/gradio_i23d_stage{k}_args.json").read_text()))
                ckpt = Path(weights) / args.resume_checkpoint.split("GaussianAnything/", 1)[-1]
                if not ckpt.is_file():
                    raise FileNotFoundError(f"reconstructors.{self.name}: stage-{k} checkpoint {ckpt} missing; "
                                            f"fetch {self.default_weights['repo_id']}")
                args.update(resume_checkpoint=str(ckpt), local_rank=0, gpus=1, img_size=[args.image_size_encoder],
                            image_size=args.image_size_encoder)
                if k == 1:
                    dist_util.setup_dist(args)
                    logger.configure(dir=args.logdir)
                denoiser, diffusion = su.create_model_and_diffusion(
                    **su.args_to_dict(args, su.model_and_diffusion_defaults().keys()))
                stages.append((args, denoiser.to(device).eval(), diffusion))
            args1 = stages[0][0]
            ae = nsu.create_3DAE_model(**su.args_to_dict(args1, nsu.encoder_and_nsr_defaults().keys()))
            ae = ae.to(device).eval()
            ae.decoder.rendering_kwargs = args1.rendering_kwargs
            loops = [engine(rec_model=ae, denoise_model=d, control_model=None, diffusion=diff, sde_diffusion=None,
                            loss_class=None, data=None, eval_data=None, **a) for a, d, diff in stages]
        return SimpleNamespace(stage1=loops[0], stage2=loops[1], code=code)

    def run(self, pipe, image, rgba, seed):
        from PIL import Image

        s = self.settings
        src = Image.fromarray((on_white(recentre(rgba, s["foreground_ratio"])) * 255).round().astype(np.uint8))
        src = np.asarray(src.resize((s["image_size"], s["image_size"]), Image.LANCZOS))
        with contextlib.chdir(pipe.code):
            pipe.stage1.eval_i23d_and_export_gradio(src, seed, s["cfg"])
            video, centres, mesh = pipe.stage2.eval_i23d_and_export_gradio(src, seed, s["cfg"])
        return video, pipe.code / centres, pipe.code / mesh  # relative to the checkout, absolute stay absolute

    def to_reconstruction(self, out):
        _video, centres_path, mesh_path = out
        if self.settings["output"] == "points":
            loaded = trimesh.load(centres_path)
            if isinstance(loaded, trimesh.Scene):
                loaded = loaded.dump(concatenate=True)
            return Reconstruction("points", "model", points=np.asarray(loaded.vertices, dtype=np.float64))
        mesh = trimesh.load(mesh_path, force="mesh", process=False)
        return Reconstruction("mesh", "model", mesh=mesh)


class Topia3DXLReconstructor(PinnedUpstream):
    """3DTopia/3DTopia-XL (inference.py): the DiT, PrimX VAE and DINOv2 conditioner built from
    ``configs/inference_dit.yml`` (``dva.io.load_from_config``; weights model_sview_dit_fp16.pt and
    model_vae_fp16.pt), DDIM (``models.diffusion.create_diffusion``, 25 steps, CFG 6) from Gaussian noise
    [1, 2048, 68] conditioned on the recentred image (foreground ratio 0.85, RGB x mask), the latent decoded and
    de-normalised as the script does, then its mesh export: PrimX positions x 0.85, isolated primitives removed,
    SDF on a 256^3 grid over [-1, 1]^3, marching cubes at 0. Departures: vertex colours from the PrimX albedo at
    each vertex instead of its UV-baked texture, and no pymeshlab clean/decimate."""

    kind = "3dtopia_xl"
    entry = "dva.io.load_from_config"
    marker = "dva"
    repo = "https://github.com/3DTopia/3DTopia-XL"
    default_weights = {"repo_id": "FrozenBurning/3DTopia-XL"}
    defaults = {"config": "configs/inference_dit.yml", "dit": "model_sview_dit_fp16.pt",
                "vae": "model_vae_fp16.pt", "steps": 25, "cfg": 6.0, "foreground_ratio": 0.85,
                "position_scale": 0.85, "mc_resolution": 256, "batch": 65536}

    def load(self, load_from_config, weights, device):
        import torch
        from omegaconf import OmegaConf

        s = self.settings
        code = self.checkout()
        config = OmegaConf.load(str(code / s["config"]))
        files = {k: Path(weights) / s[k] for k in ("dit", "vae")}
        for f in files.values():
            if not f.is_file():
                raise FileNotFoundError(f"reconstructors.{self.name}: no {f.name} under {weights}; fetch "
                                        f"{self.default_weights['repo_id']}")
        m = config.model
        dit, vae, cond = (load_from_config(m.generator), load_from_config(m.vae), load_from_config(m.conditioner))
        vae.load_state_dict(torch.load(files["vae"], map_location="cpu", weights_only=True)["model_state_dict"])
        dit.load_state_dict(torch.load(files["dit"], map_location="cpu", weights_only=True)["ema"])
        diff_cfg = {k: v for k, v in OmegaConf.to_container(config.diffusion, resolve=True).items()
                    if k != "timestep_respacing"}
        diffusion = self.import_entry("models.diffusion.create_diffusion")(
            timestep_respacing=f"ddim{s['steps']}", **diff_cfg)
        prim_cfg = OmegaConf.create({k: v for k, v in OmegaConf.to_container(m, resolve=True).items()
                                     if k not in ("vae", "vae_checkpoint_path", "conditioner", "generator",
                                                  "latent_nf", "latent_mean", "latent_std")})
        norm = None
        if "latent_mean" in m:
            norm = (torch.tensor(list(m.latent_mean), device=device)[None, None],
                    torch.tensor(list(m.latent_std), device=device)[None, None])
        return SimpleNamespace(dit=dit.to(device).eval(), vae=vae.to(device).eval(), cond=cond.to(device).eval(),
                               diffusion=diffusion, primx=load_from_config(prim_cfg), num_prims=int(m.num_prims),
                               latent_nf=float(m.latent_nf), norm=norm, device=device,
                               amp=str(config.inference.get("precision", "fp16")) == "fp16")

    def run(self, pipe, image, rgba, seed):
        import torch

        s = self.settings
        src = recentre(rgba, s["foreground_ratio"])
        rgb = src[..., :3] * (src[..., 3:4] > 0)
        cond = torch.from_numpy(np.ascontiguousarray(rgb)[None]).to(pipe.device)
        dev = pipe.device
        with torch.no_grad():
            y = pipe.cond.encoder(cond)
            noise = torch.randn(1, pipe.num_prims, 68, generator=self.generator(seed), device=dev)
            kwargs = {"y": y, "precision_dtype": torch.float16 if pipe.amp else torch.float32,
                      "enable_amp": pipe.amp, "cfg_scale": s["cfg"]}
            fwd = pipe.dit.forward_with_cfg if s["cfg"] > 0 else pipe.dit.forward
            if s["cfg"] <= 0:
                kwargs.pop("cfg_scale")
            sample = pipe.diffusion.ddim_sample_loop(fwd, noise.shape, noise=noise, clip_denoised=False,
                                                     model_kwargs=kwargs, device=dev, progress=False)
            param = sample.reshape(1, pipe.num_prims, -1)
            if pipe.norm is not None:
                param = param / pipe.latent_nf * pipe.norm[1] + pipe.norm[0]
            srt, feat = param[0, :, 0:4].clone(), param[0, :, 4:]
            feat = feat.reshape(pipe.num_prims, -1, 4, 4, 4)
            feat = pipe.vae.decode(feat if pipe.norm is not None else feat / pipe.latent_nf).detach()
            if pipe.norm is None:
                srt[:, 0:1] = srt[:, 0:1] / 10 + 0.05
            feat[:, 0:1] /= 5.0
            feat[:, 1:] = (feat[:, 1:] + 1) / 2.0
            return self.extract(pipe, srt, feat.reshape(pipe.num_prims, -1))

    def extract(self, pipe, srt, feat):
        import torch
        from skimage import measure

        s = self.settings
        prim = pipe.primx
        prim.load_state_dict({"srt_param": srt.cpu(), "feat_param": feat.cpu()})
        prim = prim.to(pipe.device).eval()
        prim.srt_param[:, 1:4] *= s["position_scale"]
        # drop primitives farther from their nearest neighbour than the two scales cover (the script's filter)
        pos, scale = prim.srt_param[:, 1:4], prim.srt_param[:, 0:1]
        dist = torch.cdist(pos, pos) + torch.eye(len(pos), device=pos.device)  # self at distance 1, as the script
        nearest, idx = dist.min(1)
        keep = nearest < (scale + scale[idx])[:, 0]
        prim.srt_param.data = prim.srt_param.data[keep]
        prim.feat_param.data = prim.feat_param.data[keep]
        n = int(s["mc_resolution"])
        xs = torch.linspace(-1, 1, n, device=pipe.device)
        pts = torch.stack(torch.meshgrid(xs, xs, xs, indexing="ij"), -1).reshape(-1, 3)
        sdf = torch.cat([prim(c)["sdf"].detach().reshape(-1) for c in torch.split(pts, int(s["batch"]))])
        grid = sdf.reshape(n, n, n).float().cpu().numpy()
        if not (grid.min() < 0 < grid.max()):
            raise ReconstructionError(f"{self.name}: the PrimX SDF has no zero crossing on the {n}^3 grid")
        verts, faces, _, _ = measure.marching_cubes(grid, 0.0)
        verts = verts / (n - 1) * 2 - 1
        v = torch.as_tensor(verts, dtype=torch.float32, device=pipe.device)
        tex = torch.cat([prim(c)["tex"].detach().float()[..., :3] for c in torch.split(v, int(s["batch"]))])
        return verts, faces, tex

    def to_reconstruction(self, out):
        verts, faces, tex = out
        return Reconstruction("mesh", "model", mesh=coloured_mesh(verts, faces, tex, self.name))
