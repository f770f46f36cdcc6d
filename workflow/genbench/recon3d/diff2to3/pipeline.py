"""The trained toy Diff2to3 pipeline: training end to end on mini-world solids, weights in safetensors, and the
image -> Gaussians path the ``diff2to3`` reconstructor runs (docs/diff2to3.md, "The reconstructor family").

Spec (the family's ``train`` mapping; every key optional, unknown keys fail):
``vae`` (:class:`vae.VAEConfig` keys), ``flow`` (:class:`transformer.Diff2to3Config` keys; ``latent_channels``,
``cond_channels`` and ``grid_size`` follow the VAE), ``condition`` (the conditioning camera: ``elevation``,
``azimuth`` in degrees, ``fov`` in degrees, ``radius``: the 3D track's object stage's defaults), and the budgets in
:data:`TRAIN_DEFAULTS`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...io import atomic_path, write_json
from ...seeding import derive_seed
from .. import gaussians as gs
from ..render import View, camera_set
from . import data as D
from . import generate as G
from . import vae as V
from .transformer import Diff2to3Config, build

log = logging.getLogger(__name__)

TRAIN_DEFAULTS: dict[str, Any] = {
    "assets": 16, "held_out": 4, "held_out_views": 2, "ae_steps": 200,
    "vae_steps": 60, "vae_batch": 2, "vae_lr": 3e-3,
    "structure_steps": 200, "structure_batch": 8, "structure_lr": 2e-3,
    "flow_steps": 300, "flow_batch": 4, "flow_lr": 1e-3, "p_uncond": 0.1,
}
CONDITION_DEFAULTS = {"elevation": 20.0, "azimuth": 45.0, "fov": 40.0, "radius": 2.0}
SECTIONS = ("vae", "flow", "condition", "train")


def condition_view(cond: dict[str, Any]) -> View:
    c = {**CONDITION_DEFAULTS, **cond}
    return camera_set("single", elevation_deg=float(c["elevation"]), azimuth_deg=float(c["azimuth"]),
                      fov_deg=float(c["fov"]), radius=float(c["radius"]))[0]


def _check_keys(d: dict[str, Any], known, what: str) -> None:
    unknown = set(d) - set(known)
    if unknown:
        raise ValueError(f"unknown {what} keys: {', '.join(sorted(unknown))} (known: {sorted(known)})")


@dataclass
class Pipeline:
    vae_cfg: V.VAEConfig
    flow_cfg: Diff2to3Config
    condition: dict[str, Any]
    extractor: nn.Module
    vae: V.SparseVAE
    structure: G.StructureNet
    flow: nn.Module
    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    @property
    def view(self) -> View:
        return condition_view(self.condition)

    def modules(self) -> dict[str, nn.Module]:
        return {"extractor": self.extractor, "vae": self.vae, "structure": self.structure, "flow": self.flow}

    def save(self, folder: str | Path, report: dict[str, Any] | None = None) -> None:
        """``folder``/model.safetensors (every module's state, prefixed, plus the latent statistics) and
        ``folder``/config.json (the configs; the training report when given)."""
        from safetensors.torch import save_file

        state = {f"{name}.{k}": v.detach().contiguous() for name, m in self.modules().items()
                 for k, v in m.state_dict().items()}
        state["latent_mean"], state["latent_std"] = self.latent_mean.contiguous(), self.latent_std.contiguous()
        folder = Path(folder)
        with atomic_path(folder / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        write_json(folder / "config.json", {"vae": self.vae_cfg.to_dict(), "flow": self.flow_cfg.to_dict(),
                                            "condition": self.condition, "cond_size": self.cond_size(),
                                            "report": report or {}})

    def cond_size(self) -> int:
        with torch.no_grad():
            s = self.vae_cfg.image_size
            return int(self.extractor.features(torch.zeros(1, 3, s, s)).shape[-1])

    @classmethod
    def load(cls, folder: str | Path) -> Pipeline:
        from safetensors.torch import load_file

        folder = Path(folder)
        cfg = json.loads((folder / "config.json").read_text())
        pipe = cls.build(V.VAEConfig.from_dict(cfg["vae"]), Diff2to3Config.from_dict(cfg["flow"]), cfg["condition"])
        state = load_file(str(folder / "model.safetensors"))
        for name, m in pipe.modules().items():
            pre = name + "."
            m.load_state_dict({k[len(pre):]: v for k, v in state.items() if k.startswith(pre)})
        pipe.latent_mean, pipe.latent_std = state["latent_mean"], state["latent_std"]
        return pipe

    @classmethod
    def build(cls, vae_cfg: V.VAEConfig, flow_cfg: Diff2to3Config, condition: dict[str, Any],
              extractor: nn.Module | None = None) -> Pipeline:
        if extractor is None:
            extractor = (V.SemanticViT(vae_cfg.semantic_channels, vae_cfg.semantic_patch, vae_cfg.semantic_depth)
                         if vae_cfg.feature_source == "semantic"
                         else V.ReconstructiveAE(vae_cfg.feature_channels, vae_cfg.ae_hidden))
        s = vae_cfg.image_size
        with torch.no_grad():
            cond_size = int(extractor.features(torch.zeros(1, 3, s, s)).shape[-1])
        return cls(vae_cfg, flow_cfg, dict(condition), extractor.requires_grad_(False), V.SparseVAE(vae_cfg),
                   G.StructureNet(vae_cfg.in_channels, cond_size, vae_cfg.grid_size), build(flow_cfg),
                   torch.zeros(vae_cfg.latent_channels), torch.ones(vae_cfg.latent_channels))

    @torch.no_grad()
    def generate(self, image: torch.Tensor, seed: int, steps: int = 12, cfg_scale: float = 3.0,
                 threshold: float = 0.5) -> tuple[gs.Gaussians, torch.Tensor]:
        """(S, S, 3) image on white (the conditioning camera's view) -> (Gaussians, voxel coords (N, 3))."""
        for m in self.modules().values():
            m.eval()
        cond = G.condition_features(self.extractor, image[None])
        coords = self.structure.voxels(cond, threshold)[0]
        noise = G.seeded_noise(len(coords), self.vae_cfg.latent_channels, seed)
        z = G.sample(self.flow, coords[None], cond, steps, cfg_scale, noise=noise)[0]
        return self.vae.decode(z * self.latent_std + self.latent_mean, coords), coords


def flow_config(vae_cfg: V.VAEConfig, flow: dict[str, Any]) -> Diff2to3Config:
    fixed = {"latent_channels": vae_cfg.latent_channels, "cond_channels": vae_cfg.in_channels,
             "grid_size": vae_cfg.grid_size}
    clash = {k for k in fixed if k in flow and flow[k] != fixed[k]}
    if clash:
        raise ValueError(f"flow: {sorted(clash)} follow the VAE ({fixed}); remove them from the flow config")
    return Diff2to3Config.from_dict({**flow, **fixed})


def train_pipeline(spec: dict[str, Any], seed: int) -> tuple[Pipeline, dict[str, Any]]:
    """Train the whole toy pipeline on procedural solids (drawn with their own seed, never the evaluation data
    set's) and return it with a report: the VAE's held-out PSNR/SSIM, the structure stage's held-out voxel IoU,
    the losses and the seconds of each stage."""
    pipe, report, _ = train_pipeline_data(spec, seed)
    return pipe, report


def train_pipeline_data(spec: dict[str, Any], seed: int) -> tuple[Pipeline, dict[str, Any], D.DataSet]:
    """:func:`train_pipeline`, also returning the data set it trained on (its held-out assets, their views and
    conditioning renders: what the ablation scores generations on)."""
    _check_keys(spec, SECTIONS, "diff2to3 train spec")
    tr = {**TRAIN_DEFAULTS, **spec.get("train", {})}
    _check_keys(tr, TRAIN_DEFAULTS, "diff2to3 train")
    _check_keys(spec.get("condition", {}), CONDITION_DEFAULTS, "diff2to3 condition")
    vae_cfg = V.VAEConfig.from_dict(spec.get("vae", {}))
    flow_cfg = flow_config(vae_cfg, spec.get("flow", {}))
    condition = {**CONDITION_DEFAULTS, **spec.get("condition", {})}
    report: dict[str, Any] = {"seed": seed}
    t0 = time.perf_counter()
    ds = D.prepare_dataset(vae_cfg, int(tr["assets"]), int(tr["held_out"]), seed, int(tr["held_out_views"]),
                           int(tr["ae_steps"]), cond_view=condition_view(condition))
    report["prepare_s"] = ds.seconds
    torch.manual_seed(derive_seed(seed, "diff2to3", "init") % 2**63)  # the VAE's, structure's and flow's init
    pipe = Pipeline.build(vae_cfg, flow_cfg, condition, ds.extractor)
    t = time.perf_counter()
    hist = D.train_vae(pipe.vae, ds.train, int(tr["vae_steps"]), int(tr["vae_batch"]), float(tr["vae_lr"]), seed)
    report["vae_s"] = time.perf_counter() - t
    ev = D.evaluate_vae(pipe.vae, ds.test, ds.test_ids)
    report["vae_test_psnr"] = float(np.mean([r["psnr"] for r in ev]))
    report["vae_test_ssim"] = float(np.mean([r["ssim"] for r in ev]))
    report["vae_loss_first"], report["vae_loss_last"] = hist[0]["total"], hist[-1]["total"]

    cond_train = G.condition_features(pipe.extractor, ds.cond_train)
    cond_test = G.condition_features(pipe.extractor, ds.cond_test)
    t = time.perf_counter()
    losses = G.train_structure(pipe.structure, cond_train, G.shell_targets(ds.train, vae_cfg.grid_size),
                               int(tr["structure_steps"]), int(tr["structure_batch"]), float(tr["structure_lr"]), seed)
    report["structure_s"] = time.perf_counter() - t
    pipe.structure.eval()
    pred = pipe.structure.voxels(cond_test)
    report["structure_test_iou"] = float(np.mean([G.voxel_iou(p, a.coords) for p, a in zip(pred, ds.test,
                                                                                             strict=True)]))
    report["structure_loss_first"], report["structure_loss_last"] = losses[0], losses[-1]

    latents = G.encode_latents(pipe.vae, ds.train)
    pipe.latent_mean, pipe.latent_std = G.latent_stats(latents)
    normed = [(c, (z - pipe.latent_mean) / pipe.latent_std) for c, z in latents]
    t = time.perf_counter()
    fh = G.train_flow(pipe.flow, normed, cond_train, int(tr["flow_steps"]), int(tr["flow_batch"]),
                      float(tr["flow_lr"]), float(tr["p_uncond"]), seed)
    report["flow_s"] = time.perf_counter() - t
    k = max(1, len(fh) // 10)
    report["flow_loss_first"] = float(np.mean([h["loss"] for h in fh[:k]]))
    report["flow_loss_last"] = float(np.mean([h["loss"] for h in fh[-k:]]))
    report["total_s"] = time.perf_counter() - t0
    report["train_assets"], report["test_assets"] = ds.train_ids, ds.test_ids
    log.info("diff2to3 trained: %s", {k: v for k, v in report.items() if not isinstance(v, list)})
    return pipe, report, ds


# a reconstructor entry's ``train:`` mapping (config/config.yaml): the training seed, the job's threads, and the
# sections of :func:`train_pipeline`'s spec, with its budgets under ``budgets`` (its ``train`` section)
TRAIN_ENTRY_KEYS = ("seed", "threads", "vae", "flow", "condition", "budgets")


def train_weights(name: str, entry: dict[str, Any], seed: int, folder: str | Path) -> dict[str, Any]:
    """Train the ``diff2to3`` reconstructor ``name`` from its config entry's ``train`` mapping and save it to
    ``folder`` (model.safetensors + config.json, which :class:`Pipeline.load` reads). ``seed`` is the run's seed;
    ``entry['seed']``, when set, replaces it. The solids are drawn from that seed by the diff2to3 data set
    (``diff2to3/assets/...``), never the evaluation data sets' (datasets3d). Returns the training report."""
    unknown = set(entry) - set(TRAIN_ENTRY_KEYS)
    if unknown:
        raise ValueError(f"reconstructors.{name}.train: unknown key(s) {sorted(unknown)} (known: "
                         f"{list(TRAIN_ENTRY_KEYS)})")
    torch.set_num_threads(int(entry.get("threads", 1)))
    spec = {k: entry[k] for k in ("vae", "flow", "condition") if k in entry}
    if "budgets" in entry:
        spec["train"] = entry["budgets"]
    train_seed = int(entry.get("seed", seed))
    pipe, report = train_pipeline(spec, train_seed)
    report["reconstructor"] = name
    pipe.save(folder, report)
    return report
