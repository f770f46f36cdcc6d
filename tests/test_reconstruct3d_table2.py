"""Table 2's baselines as reconstructors: Shap-E through diffusers' real loading path (a tiny random pipeline saved
in the official layout, tests/tiny_shap_e.py), and LGM, InstantMesh, GaussianAnything and 3DTopia-XL through
stand-in checkouts that imitate each upstream's modules (as tests/test_reconstruct3d.py does for the other six)."""

import json
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import trimesh

from genbench.recon3d import gaussians as gs
from genbench.recon3d.external import UpstreamMissingError
from genbench.recon3d.reconstructors import RECONSTRUCTORS, load_reconstructor
from genbench.recon3d.upstream3d import COMMITS, recentre


def square(size=64, lo=16, hi=40):
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[..., :3] = 30  # masked-out pixels are dark: a white fill shows the mask was used
    rgba[lo:hi, lo + 4:hi + 4, :3] = 200
    rgba[lo:hi, lo + 4:hi + 4, 3] = 255
    return rgba


# ---------------------------------------------------------------------------------------------------------------
# Shap-E: the real diffusers pipeline, tiny and random

@pytest.fixture(scope="module")
def tiny_shap_e(tmp_path_factory):
    from tiny_shap_e import save_tiny_shap_e

    return save_tiny_shap_e(tmp_path_factory.mktemp("shap-e-img2img"))


def test_marching_cubes_table_meshes_a_sphere():
    """The table the tiny renderer gets (derived from scikit-image) closes a sphere through diffusers' decoder."""
    from diffusers.pipelines.shap_e.renderer import MeshDecoder
    from tiny_shap_e import marching_cubes_table

    dec = MeshDecoder()
    cases, masks = marching_cubes_table()
    dec.cases.copy_(cases)
    dec.masks.copy_(masks)
    n = 24
    c = torch.linspace(-1, 1, n)
    x, y, z = torch.meshgrid(c, c, c, indexing="ij")
    out = dec(0.6 - torch.sqrt(x ** 2 + y ** 2 + z ** 2), torch.tensor([-1.0] * 3), torch.tensor([2.0] * 3))
    mesh = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy())
    assert mesh.is_watertight
    assert abs(mesh.volume) == pytest.approx(4 / 3 * np.pi * 0.6 ** 3, rel=0.05)


def test_shap_e_loads_the_official_layout_and_makes_a_coloured_mesh(tiny_shap_e, tmp_path):
    assert {p.name for p in tiny_shap_e.iterdir()} >= {"model_index.json", "prior", "image_encoder",
                                                       "image_processor", "scheduler", "shap_e_renderer"}
    assert json.loads((tiny_shap_e / "model_index.json").read_text())["_class_name"] == "ShapEImg2ImgPipeline"
    spec = {"kind": "shap_e", "weights": {"path": str(tiny_shap_e)}, "device": "cpu",
            "settings": {"steps": 2, "grid_size": 16}}
    rec = load_reconstructor("shap_e", spec)
    assert RECONSTRUCTORS.plugin("shap_e").gpus == 1
    a = rec.reconstruct(square(), None, 7, {"item_id": "a"})
    pipe = rec.pipeline()
    assert pipe.prior.dtype == torch.float32  # fp16 is for the GPU; the CPU runs float32
    assert a.kind == "mesh" and a.frame == "model" and a.mesh.is_watertight and len(a.mesh.faces) > 100
    assert a.meta["seed"] == 7 and a.meta["steps"] == 2 and a.meta["upstream"] == "diffusers.ShapEImg2ImgPipeline"
    colours = np.asarray(a.mesh.visual.vertex_colors)
    assert colours.shape == (len(a.mesh.vertices), 4) and np.ptp(colours[:, :3]) > 0
    again = rec.reconstruct(square(), None, 7, {"item_id": "a"})
    other = rec.reconstruct(square(), None, 8, {"item_id": "b"})
    np.testing.assert_array_equal(np.asarray(again.mesh.visual.vertex_colors), colours)  # the seed decides
    assert not np.array_equal(np.asarray(other.mesh.visual.vertex_colors), colours)
    # the colours survive the stage's PLY
    back = trimesh.load(trimesh.util.wrap_as_stream(a.mesh.export(file_type="ply", encoding="binary")),
                        file_type="ply", process=False)
    np.testing.assert_array_equal(np.asarray(back.visual.vertex_colors), colours)


def test_shap_e_refuses_a_folder_that_is_not_a_pipeline(tmp_path):
    spec = {"kind": "shap_e", "weights": {"path": str(tmp_path)}, "device": "cpu"}
    with pytest.raises(FileNotFoundError, match=r"not a diffusers pipeline folder.*openai/shap-e-img2img"):
        load_reconstructor("s", spec).reconstruct(square(), None, 0, {})
    with pytest.raises(ValueError, match="precision.*fp8"):
        load_reconstructor("s", {**spec, "settings": {"precision": "fp8"}}).reconstruct(square(), None, 0, {})


# ---------------------------------------------------------------------------------------------------------------
# the four run from their checkouts: stand-ins imitating each upstream's modules

HELPER = """
import json, os, trimesh
LOG = os.environ["GENBENCH_STANDIN_LOG"]
def record(event, **kw):
    with open(LOG, "a") as f:
        f.write(json.dumps({"event": event, **kw}, default=str) + "\\n")
def sphere():
    return trimesh.creation.icosphere(3, 0.45)
"""
# OmegaConf as InstantMesh's and 3DTopia-XL's scripts use it (load, attribute access, to_container, create)
OMEGACONF = """
import yaml
class _D(dict):
    def __getattr__(self, k):
        try:
            v = self[k]
        except KeyError as e:
            raise AttributeError(k) from e
        return _D(v) if isinstance(v, dict) else v
class OmegaConf:
    @staticmethod
    def load(path):
        with open(path) as f:
            return _D(yaml.safe_load(f))
    @staticmethod
    def to_container(cfg, resolve=False):
        return dict(cfg)
    @staticmethod
    def create(d):
        return _D(d)
"""

STANDINS = {
    "lgm": {
        "core/__init__.py": "",
        "core/options.py": """
            class _Opt:
                input_size = 16
            config_defaults = {"big": _Opt()}
            """,
        "core/models.py": """
            import torch
            from _standin import record, sphere
            class LGM(torch.nn.Module):
                def __init__(self, opt):
                    super().__init__(); self.opt = opt; self.w = torch.nn.Parameter(torch.zeros(1))
                def load_state_dict(self, sd, strict=True):
                    record("load", keys=sorted(sd), strict=strict); return [], []
                def prepare_default_rays(self, device):
                    return torch.zeros(4, 6, self.opt.input_size, self.opt.input_size)
                def forward_gaussians(self, x):
                    record("run", shape=list(x.shape), view_means=[round(float(v), 3) for v in x[0, :, 0].mean((1, 2))])
                    pts = torch.as_tensor(sphere().sample(300, seed=0), dtype=torch.float32)
                    n = len(pts)
                    opacity = torch.full((n, 1), 0.9); opacity[:50] = 0.001  # below save_ply's 0.005: pruned
                    rot = torch.tensor([1.0, 0, 0, 0]).expand(n, 4)
                    return torch.cat([pts, opacity, torch.full((n, 3), 0.02), rot, torch.full((n, 3), 0.25)], 1)[None]
            """,
        "mvdream/__init__.py": "",
        "mvdream/pipeline_mvdream.py": """
            import numpy as np
            from _standin import record
            class MVDreamPipeline:
                @classmethod
                def from_pretrained(cls, path, torch_dtype, trust_remote_code):
                    record("mv_load", path=path, dtype=str(torch_dtype)); return cls()
                def to(self, device): return self
                def __call__(self, prompt, image, guidance_scale, num_inference_steps, elevation, generator):
                    record("mv", shape=list(image.shape), corner=image[0, 0].tolist(), guidance=guidance_scale,
                           steps=num_inference_steps, seed=generator.initial_seed())
                    return np.stack([np.full((32, 32, 3), k / 4, np.float32) for k in range(4)])
            """,
    },
    "instantmesh": {
        "src/__init__.py": "", "src/utils/__init__.py": "", "zero123plus/pipeline.py": "",
        "src/utils/train_util.py": """
            import numpy as np, torch
            from _standin import record, sphere
            class _LRM(torch.nn.Module):
                def load_state_dict(self, sd, strict=True):
                    record("load", keys=sorted(sd), strict=strict); return [], []
                def init_flexicubes_geometry(self, device, fovy): record("flexicubes", fovy=fovy)
                def forward_planes(self, images, cameras):
                    record("run", images=list(images.shape), cameras=list(cameras.shape),
                           view_means=[round(float(v), 2) for v in images[0].mean((1, 2, 3))])
                    return "planes"
                def extract_mesh(self, planes, use_texture_map, **kw):
                    record("extract", use_texture_map=use_texture_map, kw=sorted(kw))
                    m = sphere()
                    return m.vertices.astype(np.float32), m.faces, np.tile([[0.2, 0.4, 0.6]], (len(m.vertices), 1))
            def instantiate_from_config(cfg):
                record("instantiate", target=cfg["target"]); return _LRM()
            """,
        "src/utils/camera_util.py": """
            import torch
            from _standin import record
            def get_zero123plus_input_cameras(batch_size, radius):
                record("cameras", radius=radius); return torch.zeros(batch_size, 6, 16)
            """,
        "configs/instant-mesh-large.yaml": """
            model_config: {target: src.models.lrm_mesh.InstantMesh, params: {grid_res: 128}}
            infer_config: {unet_path: ckpts/diffusion_pytorch_model.bin, model_path: ckpts/instant_mesh_large.ckpt,
                           texture_resolution: 1024, render_resolution: 512}
            """,
    },
    "gaussiananything": {
        "dnnlib/__init__.py": "",
        "dnnlib/util.py": """
            class EasyDict(dict):
                def __getattr__(self, k):
                    try:
                        return self[k]
                    except KeyError as e:
                        raise AttributeError(k) from e
                def __setattr__(self, k, v): self[k] = v
            """,
        "guided_diffusion/__init__.py": "",
        "guided_diffusion/dist_util.py": """
            import os
            from _standin import record
            def setup_dist(args): record("dist", rank=args.local_rank, world=os.environ["WORLD_SIZE"])
            """,
        "guided_diffusion/logger.py": """
            import os
            from _standin import record
            def configure(dir): record("logger", dir=dir, cwd=os.getcwd())
            """,
        "guided_diffusion/script_util.py": """
            from _standin import record
            class _Net:
                def to(self, device): return self
                def eval(self): return self
            def model_and_diffusion_defaults(): return {"resume_checkpoint": "", "image_size": 0}
            def args_to_dict(args, keys): return {k: args[k] for k in keys}
            def create_model_and_diffusion(**kw):
                record("denoiser", **kw); return _Net(), "diffusion"
            """,
        "nsr/__init__.py": "", "nsr/lsgm/__init__.py": "",
        "nsr/script_util.py": """
            from types import SimpleNamespace
            from _standin import record
            class _AE:
                decoder = SimpleNamespace()
                def to(self, device): return self
                def eval(self): return self
            def encoder_and_nsr_defaults(): return {"image_size": 0}
            def create_3DAE_model(**kw): record("ae", **kw); return _AE()
            """,
        "nsr/lsgm/flow_matching_trainer.py": """
            import os
            import numpy as np, trimesh
            from _standin import record, sphere
            class FlowMatchingEngine_gs:
                def __init__(self, rec_model, denoise_model, control_model, diffusion, sde_diffusion, loss_class,
                             data, eval_data, **args):
                    self.args = args
                    record("engine", logdir=args["logdir"], ckpt=args["resume_checkpoint"],
                           stage1=args.get("stage_1_output_dir"), rendering=rec_model.decoder.rendering_kwargs)
                def eval_i23d_and_export_gradio(self, inp_img, seed=42, cfg_scale=4.0, **kwargs):
                    logdir = self.args["logdir"]  # relative: the demo runs from the checkout
                    assert os.path.isfile("assets/objv_eval_pose.pt"), os.getcwd()
                    record("run", shape=list(inp_img.shape), dtype=str(inp_img.dtype), corner=inp_img[0, 0].tolist(),
                           seed=seed, cfg=cfg_scale, logdir=logdir)
                    os.makedirs(logdir, exist_ok=True)
                    if "stage-1" in logdir:
                        return os.path.join(logdir, "sample-0-0.ply")
                    m = sphere()
                    m.visual.vertex_colors = np.tile([10, 200, 30, 255], (len(m.vertices), 1)).astype(np.uint8)
                    m.export(os.path.join(logdir, "mesh.ply"))
                    trimesh.PointCloud(m.vertices[:100]).export(os.path.join(logdir, "xyz.ply"))
                    return "video.mp4", os.path.join(logdir, "xyz.ply"), os.path.join(logdir, "mesh.ply")
            """,
        "assets/objv_eval_pose.pt": "",
        "configs/gradio_i23d_stage1_args.json": json.dumps({
            "trainer_name": "flow_matching_gs", "image_size_encoder": 224, "rendering_kwargs": {"k": 1},
            "resume_checkpoint": "yslan/GaussianAnything/ckpts/checkpoints/i23d/stage-1/model.pt",
            "logdir": "./logs/i23d/stage-1/dino_img/", "stage_1_output_dir": ""}),
        "configs/gradio_i23d_stage2_args.json": json.dumps({
            "trainer_name": "flow_matching_gs", "image_size_encoder": 224, "rendering_kwargs": {"k": 1},
            "resume_checkpoint": "yslan/GaussianAnything/ckpts/checkpoints/i23d/stage-2/model.pt",
            "logdir": "./logs/i23d/stage-2/dino_img/", "stage_1_output_dir": "./logs/i23d/stage-1/dino_img/"}),
    },
    "3dtopia_xl": {
        "dva/__init__.py": "",
        "dva/io.py": """
            import torch
            from _standin import record
            class _Net(torch.nn.Module):
                def __init__(self, cfg):
                    super().__init__(); self.cfg = cfg
                def load_state_dict(self, sd, strict=True):
                    record("load", what=self.cfg["class_name"], keys=sorted(sd)); return [], []
                def encoder(self, x):
                    record("cond", shape=list(x.shape), corner=x[0, 0, 0].tolist()); return torch.zeros(1, 4)
                def forward_with_cfg(self, *a, **kw): raise AssertionError("the stand-in diffusion calls nothing")
                def decode(self, z):
                    record("decode", shape=list(z.shape)); return torch.zeros(z.shape[0], 4, 2, 2, 2)
            class _Prim(torch.nn.Module):  # PrimSDF: a sphere of radius 0.5, albedo (0.3, 0.5, 0.7)
                def __init__(self, cfg):
                    super().__init__()
                    self.srt_param = torch.nn.Parameter(torch.zeros(cfg["num_prims"], 4))
                    self.feat_param = torch.nn.Parameter(torch.zeros(cfg["num_prims"], 32))
                def load_state_dict(self, sd, strict=True):
                    self.srt_param = torch.nn.Parameter(sd["srt_param"].clone())
                    self.feat_param = torch.nn.Parameter(sd["feat_param"].clone()); return [], []
                def forward(self, pts):
                    if not getattr(self, "_told", False):
                        record("primx", n_prims=len(self.srt_param)); self._told = True
                    return {"sdf": pts.norm(dim=-1, keepdim=True) - 0.5,
                            "tex": torch.tensor([0.3, 0.5, 0.7]).expand(len(pts), 3)}
            def load_from_config(cfg):
                return (_Prim if cfg["class_name"] == "models.primsdf.PrimSDF" else _Net)(cfg)
            """,
        "models/__init__.py": "",
        "models/diffusion/__init__.py": """
            import torch
            from _standin import record
            class _Diffusion:
                def ddim_sample_loop(self, fn, shape, noise, clip_denoised, model_kwargs, device, progress):
                    record("sample", shape=list(shape), cfg=model_kwargs.get("cfg_scale"), fn=fn.__name__,
                           noise=round(float(noise.sum()), 4))
                    x = torch.zeros(shape)
                    x[0, :, 0] = 0.5                                     # scale 0.5 / 10 + 0.05 = 0.1
                    x[0, :, 1:4] = torch.randn(shape[1], 3, generator=torch.Generator().manual_seed(0)) * 0.02
                    x[0, -1, 1:4] = 0.9                                  # an isolated primitive: filtered out
                    return x
            def create_diffusion(timestep_respacing, **kw):
                record("diffusion", respacing=timestep_respacing, **kw); return _Diffusion()
            """,
        "configs/inference_dit.yml": """
            inference: {ddim: 25, cfg: 6, precision: fp16}
            diffusion: {timestep_respacing: "", noise_schedule: linear}
            model:
              class_name: models.primsdf.PrimSDF
              num_prims: 9
              latent_nf: 1.0
              generator: {class_name: dit}
              vae: {class_name: vae}
              conditioner: {class_name: cond}
            """,
    },
}
TOP = ("core", "mvdream", "src", "dnnlib", "guided_diffusion", "nsr", "dva", "models", "omegaconf", "_standin")


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("GENBENCH_STANDIN_LOG", str(log))
    helper = tmp_path / "helper"
    helper.mkdir()
    (helper / "_standin.py").write_text(HELPER)
    (helper / "omegaconf.py").write_text(OMEGACONF)
    monkeypatch.syspath_prepend(str(helper))
    before = set(sys.modules)

    def make(kind):
        code = tmp_path / kind / "code"
        for rel, src in STANDINS[kind].items():
            p = code / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(src))
        weights = tmp_path / kind / "weights"
        weights.mkdir(parents=True)
        spec = {"kind": kind, "code": str(code), "weights": {"path": str(weights)}, "device": "cpu"}
        if kind == "lgm":
            from safetensors.torch import save_file

            save_file({"w": torch.zeros(1)}, str(weights / "model_fp16_fixrot.safetensors"))
        if kind in ("lgm", "instantmesh"):
            (tmp_path / kind / "mv").mkdir()
            spec["multiview_model"] = {"path": str(tmp_path / kind / "mv")}
        if kind == "instantmesh":
            torch.save({"conv.weight": torch.zeros(1)}, weights / "diffusion_pytorch_model.bin")
            torch.save({"state_dict": {"lrm_generator.a": torch.zeros(1), "other.b": torch.zeros(1)}},
                       weights / "instant_mesh_large.ckpt")
        if kind == "gaussiananything":
            for key, value in (("MASTER_ADDR", "localhost"), ("MASTER_PORT", "12355"), ("RANK", "0"),
                               ("WORLD_SIZE", "1")):
                monkeypatch.setenv(key, value)  # what the adapter sets up: undone after the test
            for k in (1, 2):
                (weights / f"ckpts/checkpoints/i23d/stage-{k}").mkdir(parents=True)
                (weights / f"ckpts/checkpoints/i23d/stage-{k}/model.pt").write_bytes(b"x")
        if kind == "3dtopia_xl":
            torch.save({"ema": {"w": torch.zeros(1)}}, weights / "model_sview_dit_fp16.pt")
            torch.save({"model_state_dict": {"v": torch.zeros(1)}}, weights / "model_vae_fp16.pt")
            spec["settings"] = {"mc_resolution": 24}
        return spec

    yield make, log
    for name in set(sys.modules) - before:  # stand-ins must not leak into other tests
        if name.split(".")[0] in TOP:
            del sys.modules[name]


def _calls(log, event=None):
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return [c for c in calls if event is None or c["event"] == event]


class _Zero123:
    """diffusers.DiffusionPipeline as InstantMesh loads it (custom_pipeline zero123plus): returns a 3 x 2 grid
    whose view k is filled with k / 10."""

    def __init__(self):
        self.scheduler = SimpleNamespace(config={"num_train_timesteps": 1000})
        self.unet = SimpleNamespace(load_state_dict=lambda sd, strict: self._record("unet", keys=sorted(sd)))

    @staticmethod
    def _record(event, **kw):
        from _standin import record

        record(event, **kw)

    @classmethod
    def from_pretrained(cls, path, custom_pipeline, torch_dtype):
        cls._record("mv_load", path=path, custom_pipeline=custom_pipeline, dtype=str(torch_dtype))
        return cls()

    def to(self, device):
        return self

    def __call__(self, image, num_inference_steps, generator=None, **kw):
        from PIL import Image

        self._record("mv", mode=image.mode, size=list(image.size), steps=num_inference_steps,
                     seed=generator.initial_seed(), spacing=self.scheduler.config.timestep_spacing)
        grid = np.zeros((3 * 8, 2 * 8, 3), np.uint8)
        for k in range(6):
            grid[(k // 2) * 8:(k // 2 + 1) * 8, (k % 2) * 8:(k % 2 + 1) * 8] = round(k / 10 * 255)
        return SimpleNamespace(images=[Image.fromarray(grid)])


@pytest.mark.parametrize("kind", sorted(STANDINS))
def test_table2_adapter_contract(checkout, kind, monkeypatch, tmp_path):
    make, log = checkout
    if kind == "instantmesh":
        import diffusers

        monkeypatch.setattr(diffusers, "DiffusionPipeline", _Zero123)
    spec = make(kind)
    rec = load_reconstructor(f"my_{kind}", spec)
    assert RECONSTRUCTORS.plugin(kind).gpus == 1 and kind in COMMITS
    rgba = square()
    out = rec.reconstruct(rgba, None, 1234, {"item_id": "x"})
    out2 = rec.reconstruct(rgba, None, 99, {"item_id": "y"})
    assert out.meta["seed"] == 1234 and out2.meta["seed"] == 99 and out.meta["upstream"] == rec.entry
    assert out.frame == "model"
    runs = _calls(log, "sample" if kind == "3dtopia_xl" else "run")
    assert len(runs) == (4 if kind == "gaussiananything" else 2)  # two stages per item there
    if kind == "lgm":  # ImageDream's 4 views, reordered [1, 2, 3, 0], with the rays: [1, 4, 9, H, W]
        mv = _calls(log, "mv")
        assert [m["seed"] for m in mv] == [1234, 99] and mv[0]["corner"] == [1.0, 1.0, 1.0]  # on white
        assert mv[0]["shape"][:2] == [30, 30] and (mv[0]["guidance"], mv[0]["steps"]) == (5.0, 30)  # 24 / 0.8
        assert runs[0]["shape"] == [1, 4, 9, 16, 16]
        means = np.array(runs[0]["view_means"]) * 0.229 + 0.485  # un-normalised red channel
        np.testing.assert_allclose(means, [0.25, 0.5, 0.75, 0.0], atol=1e-3)
        assert out.kind == "gaussians" and out.points.shape == (250, 3)  # 50 pruned at opacity 0.005
        g = gs.load_ply(_write(out.files["pred_gaussians.ply"], log.parent / "g.ply"))
        assert len(g) == 250 and torch.allclose(g.colours, torch.tensor(0.25), atol=1e-4)
        assert torch.allclose(g.opacities, torch.tensor(0.9), atol=1e-4)
        assert _calls(log, "load")[0]["keys"] == ["w"]
    if kind == "instantmesh":
        mv = _calls(log, "mv")
        assert mv[0]["mode"] == "RGBA" and mv[0]["size"] == [28, 28] and mv[0]["steps"] == 75  # 24 / 0.85
        assert mv[0]["spacing"] == "trailing" and [m["seed"] for m in mv] == [1234, 99]
        assert _calls(log, "mv_load")[0]["custom_pipeline"].endswith("zero123plus")
        assert runs[0]["images"] == [1, 6, 3, 320, 320] and runs[0]["cameras"] == [1, 6, 16]
        np.testing.assert_allclose(runs[0]["view_means"], [0, 0.1, 0.2, 0.3, 0.4, 0.5], atol=0.01)  # grid order
        assert _calls(log, "load")[0] == {"event": "load", "keys": ["a"], "strict": True}
        assert _calls(log, "unet")[0]["keys"] == ["conv.weight"] and _calls(log, "flexicubes")[0]["fovy"] == 30.0
        assert _calls(log, "extract")[0]["use_texture_map"] is False
        assert np.asarray(out.mesh.visual.vertex_colors)[0].tolist() == [51, 102, 153, 255]
    if kind == "gaussiananything":
        assert [r["seed"] for r in runs] == [1234, 1234, 99, 99] and runs[0]["cfg"] == 4.0
        assert runs[0]["shape"] == [518, 518, 3] and runs[0]["dtype"] == "uint8"
        assert runs[0]["corner"] == [255, 255, 255]  # on white
        engines = _calls(log, "engine")
        assert engines[1]["stage1"] == engines[0]["logdir"] and "ckpts/checkpoints/i23d/stage-2" in engines[1]["ckpt"]
        assert _calls(log, "logger")[0]["dir"] == engines[0]["logdir"] and _calls(log, "dist")[0]["world"] == "1"
        assert _calls(log, "logger")[0]["cwd"] == spec["code"]  # the demo's relative paths resolve in the checkout
        assert (tmp_path / "gaussiananything/code/logs/i23d/stage-2/dino_img/mesh.ply").is_file()
        assert engines[0]["rendering"] == {"k": 1}
        assert np.asarray(out.mesh.visual.vertex_colors)[0].tolist() == [10, 200, 30, 255]
    if kind == "3dtopia_xl":
        sample = _calls(log, "sample")
        assert sample[0]["shape"] == [1, 9, 68] and sample[0]["cfg"] == 6.0 and sample[0]["fn"] == "forward_with_cfg"
        assert sample[0]["noise"] != sample[1]["noise"]  # the per-item seed drives the noise
        assert _calls(log, "diffusion")[0]["respacing"] == "ddim25"
        assert _calls(log, "cond")[0]["corner"] == [0, 0, 0]  # RGB x mask
        assert _calls(log, "decode")[0]["shape"] == [9, 1, 4, 4, 4]
        assert _calls(log, "primx")[0]["n_prims"] == 8  # the isolated primitive is filtered out
        assert out.mesh.is_watertight and abs(out.mesh.volume) == pytest.approx(4 / 3 * np.pi / 8, rel=0.1)
        assert np.asarray(out.mesh.visual.vertex_colors)[0].tolist() == [77, 128, 178, 255]  # round(0.3 * 255)
    if kind != "lgm":
        assert out.kind == "mesh" and len(out.mesh.faces) > 0


def _write(blob, path):
    path.write_bytes(blob)
    return path


def test_gaussiananything_points_output(checkout):
    make, log = checkout
    spec = {**make("gaussiananything"), "settings": {"output": "points"}}
    out = load_reconstructor("ga", spec).reconstruct(square(), None, 3, {})
    assert out.kind == "points" and out.points.shape == (100, 3)


def test_table2_checkout_and_weights_are_named(checkout, tmp_path):
    make, _ = checkout
    spec = make("lgm")
    with pytest.raises(UpstreamMissingError, match=r"lgm runs from a checkout of https://github.com/3DTopia/LGM.*"
                                                   + COMMITS["lgm"]):
        load_reconstructor("l", {k: v for k, v in spec.items() if k != "code"}).reconstruct(square(), None, 0, {})
    with pytest.raises(UpstreamMissingError, match=r"cannot read the commit.*pins abc1234"):
        load_reconstructor("l", {**spec, "commit": "abc1234"}).reconstruct(square(), None, 0, {})
    import subprocess

    git = ["git", "-C", spec["code"], "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "stand-in"], check=True)
    head = subprocess.run(git[:3] + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    with pytest.raises(UpstreamMissingError, match=rf"is at {head[:12]}, the config pins abc1234; run git -C"):
        load_reconstructor("l", {**spec, "commit": "abc1234"}).reconstruct(square(), None, 0, {})
    assert load_reconstructor("l", {**spec, "commit": head[:10]}).reconstruct(square(), None, 0, {}).kind == "gaussians"
    (tmp_path / "lgm/weights/model_fp16_fixrot.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no model_fp16_fixrot.safetensors.*ashawkey/LGM"):
        load_reconstructor("l", spec).reconstruct(square(), None, 0, {})


def test_recentre_matches_the_upstream_foreground_ratio():
    out = recentre(square(), 0.8)  # the 24 x 24 object fills 80% of the side
    assert out.shape == (30, 30, 4)
    rows, cols = np.nonzero(out[..., 3])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (3, 26, 3, 26)


def test_the_stage_writes_lgm_gaussians_and_instantmesh_colours(checkout, tmp_path, monkeypatch):
    """Through reconstruct_dataset: LGM's centres go to pred.npz with its Gaussians as pred_gaussians.ply beside
    them (the path diff2to3's take to the appearance metrics); InstantMesh's vertex colours reach pred.ply."""
    import diffusers
    from test_reconstruct3d import _dataset

    from genbench.recon3d.evaluate import reconstruct_dataset

    monkeypatch.setattr(diffusers, "DiffusionPipeline", _Zero123)
    make, _ = checkout
    manifest = _dataset(tmp_path / "data")
    for kind in ("lgm", "instantmesh"):
        out = tmp_path / "out" / kind
        table = reconstruct_dataset("t", kind, make(kind), manifest, out, seed=0)
        ok = table[table["status"] == "ok"]
        assert len(ok) == 5 and set(table[table["status"] == "skipped"]["item_id"]) == {"f", "g"}
        folder = out / ok["prediction"].iloc[0]
        if kind == "lgm":
            assert ok["kind"].eq("gaussians").all() and len(gs.load_ply(folder / "pred_gaussians.ply")) == 250
            assert np.load(folder / "pred.npz")["points"].shape == (250, 3)
        else:
            mesh = trimesh.load(folder / "pred.ply", process=False)
            assert np.asarray(mesh.visual.vertex_colors)[0].tolist() == [51, 102, 153, 255]
