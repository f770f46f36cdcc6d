"""The generative half of toy Diff2to3 (docs/diff2to3.md, "Generation"): latents of a trained 2to3-VAE, the
structure stage, the flow-matching transformer over the latents conditioned on the image, and the sampler.

* **Latent data set** (:func:`encode_latents`): every training asset's active voxels and the VAE's posterior means
  (8 channels), normalised per channel by the data set's mean and std (TRELLIS normalises its structured latents
  the same way before flow matching).
* **Structure stage** (:class:`StructureNet`): TRELLIS generates the occupied voxels first, with a second flow
  transformer over a 16^3 x 8 latent of a sparse-structure VAE that decodes to the 64^3 occupancy. Here a
  *deterministic coarse predictor* stands in: the conditioning image's features (the same extractor as the VAE's)
  -> a conv/linear trunk -> a 4^3 feature volume -> transposed 3D convolutions -> one logit per voxel of the
  ``grid_size``^3 grid, trained with a class-balanced binary cross-entropy against the asset's active (shell)
  voxels; the voxel set is {p > 0.5} (the most probable voxel when none passes). It gives one structure per
  image (no sampling diversity), which is the departure.
* **Second stage**: the SMDiT / TRELLIS-style DiT of ``transformer.py`` trained with section 3.3's CFM loss on the
  normalised latents, conditioned on the conditioning image's feature map (the VAE's feature source: the
  reconstructive autoencoder's 16 x S/2 x S/2 map, or the semantic ViT's), with condition dropout (the
  condition replaced by zeros with probability ``p_uncond``) for classifier-free guidance.
* **Sampler** (:func:`sample`): z_1 ~ N(0, I) at the structure's voxels, Euler steps of dz/dt = v from t = 1 to 0
  with CFG v = v(null) + w (v(cond) - v(null)) (TRELLIS's sampler, without its time rescaling); the sample is
  de-normalised and decoded by the VAE into Gaussians.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import vae as V

# --- latents -------------------------------------------------------------------------------------------------------

@torch.no_grad()
def encode_latents(vae: V.SparseVAE, assets: list[V.Asset]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(coords (N, 3), posterior mean (N, L)) of every asset."""
    vae.eval()
    return [(a.coords, vae.encode(a.features, a.coords)[0]) for a in assets]


def latent_stats(latents: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (L,) over every voxel of every asset."""
    z = torch.cat([lat for _, lat in latents])
    return z.mean(0), z.std(0).clamp(min=1e-6)


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad (coords, latents) sets of different sizes: coords (B, N, 3), latents (B, N, L), mask (B, N)."""
    n = max(len(c) for c, _ in items)
    b, ch = len(items), items[0][1].shape[1]
    coords = torch.zeros(b, n, 3, dtype=torch.long)
    z = torch.zeros(b, n, ch)
    mask = torch.zeros(b, n, dtype=torch.bool)
    for i, (c, lat) in enumerate(items):
        coords[i, :len(c)], z[i, :len(c)], mask[i, :len(c)] = c, lat, True
    return coords, z, mask


# --- conditioning ----------------------------------------------------------------------------------------------------

@torch.no_grad()
def condition_features(extractor: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) images on white -> (B, h, w, C) feature maps (the layout the transformers take)."""
    return extractor.features(images.permute(0, 3, 1, 2).contiguous()).permute(0, 2, 3, 1).contiguous()


# --- the structure stage ---------------------------------------------------------------------------------------------

class StructureNet(nn.Module):
    """Image features (B, h, w, C) -> occupancy logits (B, G, G, G) of the active voxels; see the module docstring.
    ``grid_size`` must be a power of two >= 8 (4^3 trunk, one x2 transposed convolution per octave)."""

    def __init__(self, cond_channels: int, cond_size: int, grid_size: int, width: int = 32):
        super().__init__()
        ups = int(round(math.log2(grid_size / 4)))
        if grid_size < 8 or 4 * 2**ups != grid_size:
            raise ValueError(f"structure stage: grid_size must be a power of two >= 8, got {grid_size}")
        self.grid_size, self.width = grid_size, width
        self.conv = nn.Sequential(nn.Conv2d(cond_channels, width, 3, stride=2, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, stride=2, padding=1), nn.SiLU())
        side = -(-cond_size // 4)
        self.fc = nn.Linear(width * side * side, width * 64)
        layers: list[nn.Module] = []
        for k in range(ups):
            layers += [nn.SiLU(), nn.ConvTranspose3d(width, width if k < ups - 1 else 16, 4, stride=2, padding=1)]
        self.up = nn.Sequential(*layers, nn.SiLU(), nn.Conv3d(16, 1, 3, padding=1))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        x = self.conv(cond.permute(0, 3, 1, 2)).flatten(1)
        x = self.fc(x).reshape(-1, self.width, 4, 4, 4)
        return self.up(x)[:, 0]

    @torch.no_grad()
    def voxels(self, cond: torch.Tensor, threshold: float = 0.5) -> list[torch.Tensor]:
        """Per image, the (N, 3) long coordinates of the voxels with probability > ``threshold`` (row-major order,
        unique, inside the grid; the single most probable voxel when none passes)."""
        out = []
        for logit in self(cond):
            coords = torch.nonzero(torch.sigmoid(logit) > threshold)
            if not len(coords):
                flat = int(logit.argmax())
                g = self.grid_size
                coords = torch.tensor([[flat // (g * g), flat // g % g, flat % g]])
            out.append(coords.long())
        return out


def shell_targets(assets: list[V.Asset], grid_size: int) -> torch.Tensor:
    """(B, G, G, G) float: 1 at each asset's active voxels."""
    t = torch.zeros(len(assets), grid_size, grid_size, grid_size)
    for i, a in enumerate(assets):
        c = a.coords
        t[i, c[:, 0], c[:, 1], c[:, 2]] = 1
    return t


def train_structure(net: StructureNet, cond: torch.Tensor, targets: torch.Tensor, steps: int, batch: int = 8,
                    lr: float = 2e-3, seed: int = 0) -> list[float]:
    """Class-balanced BCE (positives weighted by the negatives/positives ratio of ``targets``), Adam."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    pos = targets.mean().clamp(min=1e-6)
    weight = ((1 - pos) / pos).reshape(1)
    losses = []
    for _ in range(steps):
        idx = torch.randperm(len(cond), generator=gen)[:batch]
        loss = F.binary_cross_entropy_with_logits(net(cond[idx]), targets[idx], pos_weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def voxel_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    """IoU of two voxel coordinate sets (N, 3), (M, 3)."""
    sa, sb = {tuple(x) for x in a.tolist()}, {tuple(x) for x in b.tolist()}
    return len(sa & sb) / max(len(sa | sb), 1)


# --- the flow stage --------------------------------------------------------------------------------------------------

def train_flow(model: nn.Module, latents: list[tuple[torch.Tensor, torch.Tensor]], cond: torch.Tensor, steps: int,
               batch: int = 4, lr: float = 1e-3, p_uncond: float = 0.1, seed: int = 0) -> list[dict[str, float]]:
    """Section 3.3's CFM loss (:func:`transformer.flow_matching_loss`) on normalised latents, minibatches of
    ``batch`` assets padded with a mask, each condition dropped to zeros with probability ``p_uncond``."""
    from .transformer import flow_matching_loss

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    batch = min(batch, len(latents))
    hist = []
    for _ in range(steps):
        t0 = time.perf_counter()
        idx = torch.randperm(len(latents), generator=gen)[:batch]
        coords, z0, mask = pad_batch([latents[i] for i in idx.tolist()])
        c = cond[idx]
        drop = torch.rand(batch, generator=gen) < p_uncond
        c = torch.where(drop[:, None, None, None], torch.zeros_like(c), c)
        loss = flow_matching_loss(model, z0, coords, c, mask, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hist.append({"loss": loss.item(), "seconds": time.perf_counter() - t0})
    return hist


Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def sample(model: Velocity, coords: torch.Tensor, cond: torch.Tensor, steps: int, cfg_scale: float = 1.0,
           noise: torch.Tensor | None = None, generator: torch.Generator | None = None,
           latent_channels: int = 8) -> torch.Tensor:
    """Euler integration of dz/dt = v(z, t) from t = 1 (z = noise ~ N(0, I)) to t = 0 in ``steps`` equal steps,
    v = v(null) + cfg_scale (v(cond) - v(null)) with the null condition = zeros (``cfg_scale`` 1: no guidance).
    ``coords`` (B, N, 3), ``cond`` (B, h, w, C); returns z_0 (B, N, L)."""
    if noise is None:
        noise = torch.randn(coords.shape[0], coords.shape[1], latent_channels, generator=generator)
    z = noise
    dt = 1.0 / steps
    for i in range(steps):
        t = torch.full((z.shape[0],), 1.0 - i * dt)
        v = model(z, coords, cond, t)
        if cfg_scale != 1.0:
            v_null = model(z, coords, torch.zeros_like(cond), t)
            v = v_null + cfg_scale * (v - v_null)
        z = z - dt * v
    return z


def seeded_noise(n: int, channels: int, seed: int) -> torch.Tensor:
    return torch.randn(1, n, channels, generator=torch.Generator().manual_seed(seed % 2**63))


def np_image(rgba: np.ndarray, size: int) -> torch.Tensor:
    """An RGBA uint8 image -> (size, size, 3) float in [0, 1] composited on white, area-resampled to ``size``."""
    from PIL import Image

    x = rgba.astype(np.float32) / 255.0
    rgb = x[..., :3] * x[..., 3:] + 1 - x[..., 3:]
    im = Image.fromarray(np.round(rgb * 255).astype(np.uint8), "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BOX)
    return torch.as_tensor(np.asarray(im, dtype=np.float32) / 255.0)
