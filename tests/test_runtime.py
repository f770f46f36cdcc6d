"""The device and precision policy (genbench.runtime): resolution and errors, and that every torch stage puts its
modules and their inputs on the configured device.

Without a GPU the placement test spies: every ``Runtime.place`` / ``Runtime.inputs`` call is recorded, and a
global forward pre-hook checks each module with parameters that runs: it must have been placed by the stage's
runtime, and its parameters and tensor inputs must be on the configured device. A stage that forgot a module (or
never asked the runtime) fails it. With a GPU the same stages also run on CUDA for real."""


import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from streamutil import (
    classifier_checkpoint,
    clip_checkpoint,
    dinov2_checkpoint,
    tiny_config,
    write_image_set,
    write_shards,
)
from test_embedders import hf_clip_dir  # noqa: F401  (a tiny transformers CLIP + processor folder)

import genbench.runtime as runtime_mod
from genbench import stages
from genbench.config import ConfigError, validate_config
from genbench.io import RUNTIME_KEY, load_npz, read_npz_runtime, save_npz
from genbench.runtime import DeviceUnavailableError, Runtime, resolve_runtime
from genbench.tables import read_metadata

HAS_CUDA = torch.cuda.is_available()
IMF_ARCH = {"input_size": 16, "patch_size": 4, "in_channels": 3, "hidden_size": 32, "depth": 2, "num_heads": 2,
            "num_classes": 4, "aux_head_depth": 1}


# ---- resolution -----------------------------------------------------------------------------------------------

def test_resolution_defaults_overrides_and_metric_fp32(monkeypatch):
    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    assert resolve_runtime({}, "s") == Runtime("s", "cpu", "fp32")  # auto without a GPU
    assert resolve_runtime({"runtime": {"device": "cpu"}}, "s").device_name == "cpu"
    cfg = {"runtime": {"device": "auto", "precision": "bf16"}}
    assert resolve_runtime(cfg, "s").precision == "bf16"  # generation takes the global precision
    assert resolve_runtime(cfg, "s", metric=True).precision == "fp32"  # metric features stay fp32 ...
    assert resolve_runtime(cfg, "s", {"precision": "bf16"}, metric=True).precision == "bf16"  # ... unless asked
    assert resolve_runtime(cfg, "s", {"precision": "tf32"}).precision == "tf32"
    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: True)
    assert resolve_runtime({}, "s").device_name == "cuda"  # auto with a GPU
    assert resolve_runtime({"runtime": {"device": "cuda"}}, "s", {"device": "cpu"}).device_name == "cpu"


def test_cuda_without_a_gpu_and_fp16_on_cpu_fail_in_one_line_naming_the_stage(monkeypatch):
    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match=r"^rule x \(a/b\): runtime.device is 'cuda' but torch sees no "
                                                     r"CUDA device") as err:
        resolve_runtime({"runtime": {"device": "cuda"}}, "rule x (a/b)")
    assert "\n" not in str(err.value)
    with pytest.raises(DeviceUnavailableError):
        resolve_runtime({}, "s", {"device": "cuda"})
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_runtime({"runtime": {"precision": "fp16"}}, "s")


def test_schema_accepts_runtime_globally_and_per_entry():
    cfg = tiny_config()
    cfg["runtime"] = {"device": "cpu", "precision": "tf32", "threads": 3}
    cfg["models"]["sit_tiny"]["runtime"] = {"precision": "bf16"}
    cfg["extractors"]["mw_classifier"]["runtime"] = {"device": "auto"}
    cfg["embedders"]["mw_clip"]["runtime"] = {"precision": "fp32"}
    cfg["datasets"]["mw_val"]["decode_errors"] = "skip"
    validate_config(cfg)
    for bad in ({"device": "tpu"}, {"precision": "fp8"}, {"devices": "cpu"}):
        with pytest.raises(ConfigError, match="runtime"):
            validate_config({**tiny_config(), "runtime": bad})
    with pytest.raises(ConfigError, match="threads"):
        c = tiny_config()
        c["models"]["sit_tiny"]["runtime"] = {"threads": 2}  # global only
        validate_config(c)


def test_tf32_is_off_in_fp32_and_on_in_tf32():
    matmul = torch.backends.cuda.matmul
    flag = (lambda: matmul.fp32_precision == "tf32") if hasattr(matmul, "fp32_precision") else \
        (lambda: matmul.allow_tf32)
    before = flag()
    with Runtime("s", "cpu", "tf32").compute():
        assert flag()
    with Runtime("s", "cpu", "fp32").compute():
        assert not flag()
    assert flag() == before


# ---- placement of every torch stage ---------------------------------------------------------------------------

class Spy:
    def __init__(self):
        self.placed: set[int] = set()
        self.device: torch.device | None = None
        self.n_inputs = 0
        self.forwards: list[tuple[str, bool, set, set]] = []

    def hook(self, module, args):
        own = list(module.parameters(recurse=False))
        if not own:
            return
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        self.forwards.append((type(module).__name__, id(module) in self.placed, {p.device for p in own},
                              {t.device for t in tensors}))

    def check(self, what: str) -> None:
        assert self.n_inputs > 0, f"{what}: no input went through Runtime.inputs"
        assert self.forwards, f"{what}: no module ran"
        unplaced = sorted({name for name, placed, _, _ in self.forwards if not placed})
        assert not unplaced, f"{what}: modules not placed by the runtime: {unplaced}"
        for name, _, params, inputs in self.forwards:
            assert params == {self.device}, (what, name, params)
            assert inputs <= {self.device}, (what, name, inputs)
        self.placed.clear()
        self.forwards.clear()
        self.n_inputs = 0


@pytest.fixture
def spy(monkeypatch):
    s = Spy()
    place, inputs = Runtime.place, Runtime.inputs

    def spy_place(self, module):
        out = place(self, module)
        s.device = self.device
        s.placed.update(id(m) for m in out.modules())
        return out

    def spy_inputs(self, x):
        s.n_inputs += 1
        out = inputs(self, x)
        assert out.device == self.device
        return out

    monkeypatch.setattr(Runtime, "place", spy_place)
    monkeypatch.setattr(Runtime, "inputs", spy_inputs)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(s.hook)
    yield s
    handle.remove()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    cfg = tiny_config()
    torch.manual_seed(0)
    from genbench.features.inception import FIDInception

    torch.save(FIDInception().state_dict(), d / "inception.pth")
    cfg["extractors"]["inception"] = {"kind": "inception_tf", "batch_size": 2}
    cfg["embedders"]["pick"] = {"kind": "hf_clip", "weights": {"path": "set-in-test"}}
    gens = {}
    from genbench.gen2d.families import get_family_net

    cfg["models"]["imf_tiny"] = {"family": "imeanflow", "arch": IMF_ARCH, "weights": {"path": str(d / "imf.pth")},
                                 "sampler": {"method": "meanflow"}}
    for model in ("sit_tiny", "meanflow_tiny", "soflow_tiny"):
        spec = cfg["models"][model]
        net = get_family_net(spec["family"], spec["arch"])
        gens[model] = d / f"{model}.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(gens[model]))
    torch.save(get_family_net("imeanflow", IMF_ARCH).state_dict(), d / "imf.pth")  # official layout, via weights
    gens["imf_tiny"] = None
    return {"dir": d, "cfg": cfg, "gens": gens, "manifest": write_image_set(d / "real", n=5),
            "shards": write_shards(d / "cell", counts=(3, 2)),
            "ckpt": {"ex_mw_classifier": classifier_checkpoint(d / "cls.safetensors"),
                     "ex_mw_dinov2": dinov2_checkpoint(d / "dino", cfg), "ex_inception": d / "inception.pth",
                     "em_mw_clip": clip_checkpoint(d / "clip.safetensors", cfg)}}


def _cfg(world, runtime):
    return {**world["cfg"], "runtime": runtime}


@pytest.mark.parametrize("runtime", [{"device": "cpu"}, {"device": "auto"}])
def test_every_torch_stage_places_modules_and_inputs_on_the_configured_device(world, spy, runtime, monkeypatch,
                                                                              tmp_path, hf_clip_dir):  # noqa: F811
    if runtime["device"] == "auto" or not HAS_CUDA:
        monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    cfg = _cfg(world, runtime)
    ck = world["ckpt"]
    man16 = write_image_set(tmp_path / "r16", n=3, sizes=((16, 16),))
    full = runtime["device"] == "cpu"  # 'auto' (resolving to the CPU here) runs one model of each kind
    for name in ("mw_classifier", "mw_dinov2", "inception") if full else ("mw_classifier",):
        stages.stage_features_real(name, cfg, ck[f"ex_{name}"], man16, "realset", tmp_path / f"{name}.npz")
        spy.check(f"features_real {name}")
        rec = read_npz_runtime(tmp_path / f"{name}.npz")["features_real"]
        assert rec["device"] == "cpu" and rec["precision"] == "fp32" and rec["torch"] == torch.__version__
    stages.stage_embed_real("mw_clip", cfg, ck["em_mw_clip"], world["manifest"], "realset", tmp_path / "e.npz")
    spy.check("embed_real open_clip")
    if not full:
        stages.stage_generate("sit_tiny", "realset", 2, 2.0, 0, 0, cfg, man16, world["gens"]["sit_tiny"],
                              tmp_path / "sit.npz", 1, 2)
        spy.check("generate sit_tiny")
        return
    cfg_pick = {**cfg, "embedders": {**cfg["embedders"], "pick": {"kind": "hf_clip", "batch_size": 4}}}
    stages.stage_embed_real("pick", cfg_pick, hf_clip_dir, world["manifest"], "realset", tmp_path / "p.npz")
    spy.check("embed_real hf_clip")
    outs = {k: tmp_path / f"cell_{k}.npz" for k in ("ex_mw_classifier", "ex_mw_dinov2", "em_mw_clip")}
    stages.stage_cell_features(cfg, ck, world["shards"], "cell", outs)
    spy.check("cell_features")
    for model, steps, cfg_scale in (("sit_tiny", 2, 2.0), ("meanflow_tiny", 1, 2.0), ("soflow_tiny", 2, 1.5),
                                    ("imf_tiny", 1, 2.0)):
        stages.stage_generate(model, "realset", steps, cfg_scale, 0, 0, cfg, man16, world["gens"][model],
                              tmp_path / f"{model}.npz", 1, 2)
        spy.check(f"generate {model}")
        assert load_npz(tmp_path / f"{model}.npz")["images"].shape == (3, 16, 16, 3)


def test_appearance_stage_places_extractors_embedder_and_lpips(world, spy, monkeypatch, tmp_path):
    """stage_appearance_3d loads each model on its runtime and records the runtimes in its tables' metadata; the
    per-item work (appearance_dataset) gets the placed models, LPIPS inputs follow the model's device."""
    from genbench.recon3d import appearance

    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    seen = {}

    def fake_dataset(dataset, model, manifest, scores, recon_dir, spec, extractors, emb, lp, lp_runtime=None):
        rng = np.random.default_rng(0)
        rgba = rng.integers(0, 256, (2, 64, 64, 4), dtype=np.uint8)
        seen["fd"] = extractors["mw_classifier"].extract(appearance.resize_rgb(rgba, 16), "renders")
        seen["emb"] = emb.embed_images(appearance.resize_rgb(rgba, None), "renders")
        seen["lpips"] = appearance.lpips_distance(lp, rgba, rgba[::-1], lp_runtime)
        seen["lp_runtime"] = lp_runtime
        return (pd.DataFrame({"dataset": [dataset], "model": [model], "item_id": ["a"], "status": ["ok"]}),
                pd.DataFrame({"dataset": [], "model": [], "metric": [], "value": []}))

    monkeypatch.setattr(appearance, "appearance_dataset", fake_dataset)
    cfg = {**_cfg(world, {"device": "cpu"}),
           "recon3d": {"appearance": {"extractors": ["mw_classifier"], "embedder": "mw_clip",
                                      "lpips": {"backbone": "random"}}}}
    inputs = {"ex_mw_classifier": str(world["ckpt"]["ex_mw_classifier"]), "embedder": str(world["ckpt"]["em_mw_clip"]),
              "manifest": "m", "scores": "s", "recon": str(tmp_path / "r" / "x")}
    stages.stage_appearance_3d("objs", "extrude", cfg, inputs, tmp_path / "a.parquet", tmp_path / "a.sets.parquet")
    spy.check("appearance_3d")
    assert np.isfinite(seen["lpips"]) and seen["emb"].shape == (2, 32)
    assert seen["lp_runtime"].device_name == "cpu"  # LPIPS runs in its runtime's precision context
    meta = read_metadata(tmp_path / "a.parquet")["runtime"]
    assert set(meta) == {"extractor mw_classifier", "embedder mw_clip", "lpips"}
    assert all(r["device"] == "cpu" and r["dtype"] == "float32" for r in meta.values())


@pytest.mark.parametrize("stage", ["features_real", "embed_real", "cell_features", "generate"])
def test_cuda_requested_without_a_gpu_names_the_rule(world, monkeypatch, tmp_path, stage):
    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    cfg, ck = _cfg(world, {"device": "cuda"}), world["ckpt"]
    calls = {
        "features_real": lambda: stages.stage_features_real("mw_dinov2", cfg, ck["ex_mw_dinov2"], world["manifest"],
                                                            "realset", tmp_path / "f.npz"),
        "embed_real": lambda: stages.stage_embed_real("mw_clip", cfg, ck["em_mw_clip"], world["manifest"],
                                                      "realset", tmp_path / "f.npz"),
        "cell_features": lambda: stages.stage_cell_features(cfg, ck, world["shards"], "cellname",
                                                            {"ex_mw_classifier": tmp_path / "f.npz"}),
        "generate": lambda: stages.stage_generate("sit_tiny", "realset", 1, 1.0, 0, 0, cfg, world["manifest"],
                                                  world["gens"]["sit_tiny"], tmp_path / "f.npz", 1, 2),
    }
    with pytest.raises(DeviceUnavailableError, match=rf"^rule {stage} \(") as err:
        calls[stage]()
    assert "\n" not in str(err.value) and not (tmp_path / "f.npz").exists()


def test_bf16_runs_and_stays_close_to_fp32(world, monkeypatch, tmp_path):
    monkeypatch.setattr(runtime_mod, "cuda_available", lambda: False)
    cfg = _cfg(world, {"device": "cpu"})
    ck = world["ckpt"]
    stages.stage_features_real("mw_dinov2", cfg, ck["ex_mw_dinov2"], world["manifest"], "realset", tmp_path / "a.npz")
    cfg16 = {**cfg, "extractors": {**cfg["extractors"],
                                   "mw_dinov2": {**cfg["extractors"]["mw_dinov2"], "runtime": {"precision": "bf16"}}}}
    stages.stage_features_real("mw_dinov2", cfg16, ck["ex_mw_dinov2"], world["manifest"], "realset",
                               tmp_path / "b.npz")
    a, b = load_npz(tmp_path / "a.npz")["features"], load_npz(tmp_path / "b.npz")["features"]
    assert b.dtype == np.float64 and not np.array_equal(a, b)
    np.testing.assert_allclose(b, a, atol=0.1 * np.abs(a).max())
    rec = read_npz_runtime(tmp_path / "b.npz")["features_real"]
    assert rec["precision"] == "bf16" and rec["dtype"] == "bfloat16 (autocast)"


def test_score_tables_carry_the_runtime_records_of_their_inputs(tmp_path):
    """The record is a member of the stage's .npz (no sidecar file, which a storage plugin would not carry): the
    arrays read back without it, the scoring stage reads it, and a file without one has none."""
    for name, rec in (("r.npz", {"features_real": {"device": "cpu"}}), ("g.npz", {"cell_features": {"device": "x"}})):
        save_npz(tmp_path / name, runtime=rec, features=np.ones((2, 3)))
    save_npz(tmp_path / "old.npz", features=np.ones((2, 3)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.npz", "old.npz", "r.npz"]
    assert list(load_npz(tmp_path / "r.npz")) == ["features"]
    got = stages.read_runtime_records({"real": tmp_path / "r.npz", "gen": tmp_path / "g.npz",
                                       "old": tmp_path / "old.npz"})
    assert got == {"real": {"features_real": {"device": "cpu"}}, "gen": {"cell_features": {"device": "x"}}}
    with pytest.raises(ValueError, match="reserved"):
        save_npz(tmp_path / "x.npz", **{RUNTIME_KEY: np.ones(1)})


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
def test_cuda_features_match_cpu_within_tolerance(world, spy, tmp_path):
    ck = world["ckpt"]
    for name in ("mw_classifier", "mw_dinov2", "inception"):
        out = {}
        for dev in ("cpu", "cuda"):
            cfg = _cfg(world, {"device": dev})
            man = write_image_set(tmp_path / f"{name}{dev}", n=3, sizes=((16, 16),))
            stages.stage_features_real(name, cfg, ck[f"ex_{name}"], man, "realset", tmp_path / f"{dev}.npz")
            spy.check(f"{name} on {dev}")
            out[dev] = load_npz(tmp_path / f"{dev}.npz")["features"]
        np.testing.assert_allclose(out["cuda"], out["cpu"], rtol=1e-3, atol=1e-4)
