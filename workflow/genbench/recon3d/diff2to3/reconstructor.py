"""The ``diff2to3`` reconstructor family: the toy Diff2to3 pipeline trained by genbench (weights in safetensors,
written by :func:`pipeline.train_pipeline` + :meth:`pipeline.Pipeline.save`), run on CPU.

Output: 3D Gaussians. The Reconstruction is of kind ``gaussians`` with the Gaussian centres as its points (how the
3D track scores every Gaussian-producing model, e.g. the SAM 3D and TRELLIS adapters' ``output: gaussians``), and
the Gaussians themselves in ``splats`` and, as a 3DGS PLY, in ``files`` (the 3D stage writes it as
``pred_gaussians.ply`` next to the prediction). The pipeline is trained for
one conditioning camera (the object stage's ``condition`` view): given the item's camera, the reconstructor
checks it is that camera and places the output in the world frame; without one it reports the model frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import gaussians as gs
from ..reconstructors import Reconstruction, ReconstructionError, Reconstructor, alpha_mask
from . import generate as G

SETTINGS = {"steps": 12, "cfg": 3.0, "threshold": 0.5, "threads": 1}


class Diff2to3Reconstructor(Reconstructor):
    def __init__(self, name: str, spec: dict[str, Any]):
        super().__init__(name, spec)
        unknown = set(spec.get("settings", {})) - set(SETTINGS)
        if unknown:
            raise ValueError(f"reconstructors.{name}.settings: unknown key(s) {sorted(unknown)}; diff2to3 takes "
                             f"{sorted(SETTINGS)}")
        self.settings = {**SETTINGS, **spec.get("settings", {})}
        self._pipe = None

    def pipeline(self):
        if self._pipe is None:
            from .pipeline import Pipeline

            w = self.spec.get("weights", "")
            folder = Path(str(w.get("path", "") if isinstance(w, dict) else w))  # {path: folder} (schema) or folder
            if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
                raise ReconstructionError(f"reconstructors.{self.name}: no trained weights at '{folder}' "
                                          f"(model.safetensors + config.json); train them first "
                                          f"(genbench.recon3d.diff2to3.pipeline.train_pipeline)")
            self._pipe = Pipeline.load(folder)
        return self._pipe

    def check_view(self, view: dict) -> None:
        frame = view["frames"][0]
        want = self.pipeline().view
        got = {"yaw": float(frame["yaw"]), "pitch": float(frame["pitch"]), "radius": float(frame["radius"]),
               "fov": float(frame["fov"])}
        ok = all(math.isclose(got[k], getattr(want, k), abs_tol=1e-6) for k in got)
        if not ok:
            raise ReconstructionError(
                f"reconstructors.{self.name}: trained for the conditioning camera yaw {want.yaw:.4f}, pitch "
                f"{want.pitch:.4f}, radius {want.radius}, fov {want.fov:.4f} (radians), the item's is {got}; "
                f"retrain with train.condition set to the data set's render.condition")

    def reconstruct(self, rgba: np.ndarray, view: dict | None, seed: int, item: dict[str, Any]) -> Reconstruction:
        alpha_mask(rgba, f"{self.name}/{item.get('item_id', '?')}")
        pipe = self.pipeline()
        if view:
            self.check_view(view)
        s = self.settings
        threads = torch.get_num_threads()
        torch.set_num_threads(int(s["threads"]))
        try:
            image = G.np_image(rgba, pipe.vae_cfg.image_size)
            g, coords = pipe.generate(image, seed, int(s["steps"]), float(s["cfg"]), float(s["threshold"]))
        finally:
            torch.set_num_threads(threads)
        meta = {"steps": int(s["steps"]), "cfg": float(s["cfg"]), "threshold": float(s["threshold"]),
                "n_voxels": len(coords), "n_gaussians": len(g)}
        return Reconstruction("gaussians", "world" if view else "model", points=g.means.numpy().astype(np.float64),
                              splats=g, files={"pred_gaussians.ply": gs.ply_bytes(g)}, meta=meta)
