"""Training the toy 2to3-VAE over a data set of mini-world solids and scoring it on unseen ones (Table 1's protocol
at toy scale; docs/diff2to3.md, "Training over a data set").

* **Assets**: procedural coloured solids (``recon3d.objects.procedural_solid``) normalised to [-0.5, 0.5]^3 as the
  3D track's object stage does, drawn with their own seed (``solids``), split by asset into training and held-out
  sets by a seeded permutation (``split``). Each asset gets ``views`` feature/training views and ``held_out``
  evaluation views of TRELLIS's camera set, with an offset of its own.
* **Features**: one extractor per data set (:func:`vae.feature_extractor`): the reconstructive autoencoder is
  trained on the training assets' feature views only (FLUX's VAE is one pretrained network too); held-out assets
  are featurised by the same frozen extractor.
* **Training** (:func:`train_vae`): Adam on eq. 1, each step a minibatch of ``batch`` training assets, one random
  training view each (section 3.3), the loss averaged over the minibatch.
* **Evaluation** (:func:`evaluate_vae`): posterior means decoded and rendered from each held-out asset's held-out
  views: PSNR and SSIM (``vae.ssim`` = skimage's) per asset, averaged over its views.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...seeding import derive_seed
from ..render import View
from . import vae as V


def solids(indices: list[int], seed: int) -> list[tuple[str, object]]:
    """(kind, normalised mesh) of the procedural solids ``indices`` drawn with ``seed``."""
    from ..objects import normalise_unit_cube, procedural_solid

    out = []
    for i in indices:
        kind, mesh = procedural_solid(i, seed)
        out.append((kind, normalise_unit_cube(mesh)[0]))
    return out


def split(n: int, held_out: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of assets 0..n-1 into (training, held-out) index lists, disjoint, held-out of size
    ``held_out``."""
    if not 0 < held_out < n:
        raise ValueError(f"held_out must be in 1..{n - 1} (n = {n}), got {held_out}")
    perm = np.random.default_rng(derive_seed(seed, "diff2to3", "split")).permutation(n)
    return sorted(perm[held_out:].tolist()), sorted(perm[:held_out].tolist())


@dataclass
class DataSet:
    train: list[V.Asset]
    test: list[V.Asset]
    train_ids: list[int]
    test_ids: list[int]
    extractor: nn.Module
    seconds: float
    cond_train: torch.Tensor | None = None  # (B, S, S, 3) renders from the conditioning camera, when asked for
    cond_test: torch.Tensor | None = None


def prepare_dataset(cfg: V.VAEConfig, n_assets: int, n_test: int, seed: int, held_out_views: int = 2,
                    ae_steps: int = 200, cond_view: View | None = None) -> DataSet:
    """Render every asset, fit the feature extractor on the training assets' feature views, featurise all; with
    ``cond_view``, also render every asset from that (conditioning) camera."""
    t0 = time.perf_counter()
    meshes = solids(list(range(n_assets)), derive_seed(seed, "diff2to3", "solids"))
    train_ids, test_ids = split(n_assets, n_test, seed)
    rendered = [V.render_asset(m, cfg, held_out_views, seed=derive_seed(seed, "diff2to3", "views", i) % 2**32)
                for i, (_, m) in enumerate(meshes)]
    train_images = torch.cat([rendered[i].images[:cfg.views] for i in train_ids])
    extractor = V.feature_extractor(cfg, train_images, ae_steps, seed)
    for a in rendered:
        V.featurise(a, cfg, V.feature_maps(cfg, a.images[:cfg.views], extractor=extractor))
    cond = None
    if cond_view is not None:
        cond = torch.cat([V.render_views(m, [cond_view], cfg.image_size) for _, m in meshes])
    return DataSet([rendered[i] for i in train_ids], [rendered[i] for i in test_ids], train_ids, test_ids,
                   extractor, time.perf_counter() - t0, None if cond is None else cond[train_ids],
                   None if cond is None else cond[test_ids])


def train_vae(vae: V.SparseVAE, assets: list[V.Asset], steps: int, batch: int = 2, lr: float = 3e-3,
              seed: int = 0) -> list[dict[str, float]]:
    """``steps`` Adam steps of eq. 1 over ``assets``: per step ``batch`` assets drawn without replacement, one
    random training view each, terms averaged; returns per-step terms and seconds."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    batch = min(batch, len(assets))
    hist = []
    for _ in range(steps):
        t0 = time.perf_counter()
        chosen = torch.randperm(len(assets), generator=gen)[:batch].tolist()
        terms = None
        for i in chosen:
            view = int(torch.randint(assets[i].n_views, (1,), generator=gen))
            t = V.vae_loss(vae, assets[i], view)
            terms = t if terms is None else {k: terms[k] + t[k] for k in t}
        terms = {k: v / batch for k, v in terms.items()}
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        hist.append({k: v.item() for k, v in terms.items()} | {"seconds": time.perf_counter() - t0})
    return hist


@torch.no_grad()
def evaluate_vae(vae: V.SparseVAE, assets: list[V.Asset], ids: list[int] | None = None) -> list[dict[str, float]]:
    """Per asset: PSNR (dB) and SSIM of the decoded posterior means against the asset's held-out views (the views
    after its ``n_views`` training views), averaged over those views; ``recon`` is eq. 1's L_recon there."""
    rows = []
    for k, a in enumerate(assets):
        g, _, _ = vae(a.features, a.coords, sample=False)
        views = range(a.n_views, len(a.cameras))
        if not len(views):
            raise ValueError("the asset has no held-out views to evaluate on (prepare it with held_out >= 1)")
        psnrs, ssims, l1s = [], [], []
        for v in views:
            pred = V.render_gaussians(g, a.cameras[v])
            psnrs.append(V.psnr(pred, a.images[v]))
            ssims.append(float(V.ssim(pred, a.images[v])))
            l1s.append(float((pred - a.images[v]).abs().mean()))
        recon = float(np.mean(l1s)) + vae.cfg.lambda_ssim * (1 - float(np.mean(ssims)))
        rows.append({"asset": ids[k] if ids else k, "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
                     "recon": recon, "n_voxels": len(a.coords)})
    return rows
