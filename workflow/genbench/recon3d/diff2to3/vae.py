"""The 2to3-VAE (Diff2to3 section 3.1, objective eq. 1 of section 3.3) at toy scale: structured latents from
multi-view image features, a transformer VAE over the active voxels, and a decoder to 3D Gaussians.

Pipeline (TRELLIS's structured latents, Xiang et al. 2025, with the paper's change of feature source):

1. **Voxels**: the asset (a mesh normalised to [-0.5, 0.5]^3, world Z up, as ``recon3d.objects`` writes it) is
   voxelised on a ``grid_size``^3 grid over that cube (solid occupancy at voxel centres,
   :func:`genbench.recon3d.meshes.solid_occupancy`); the *active* voxels are the occupied ones with at least one
   empty 6-neighbour (the surface shell: interior voxels are never seen, TRELLIS also keeps surface voxels only).
2. **Views**: ``views`` renders of the mesh (``recon3d.render.render``, TRELLIS's Hammersley camera set, composited
   on white), plus ``held_out`` extra views of the same set that the features never see (for evaluation).
3. **Features**: each view goes through a 2D feature extractor, config-selected:
   ``semantic`` (:class:`SemanticViT`, a DINOv2 stand-in: patch-embedding ViT, coarse high-dimensional tokens,
   random frozen weights) or ``reconstructive`` (:class:`ReconstructiveAE`, a FLUX-VAE stand-in: a conv
   autoencoder with 2:1 spatial compression to ``feature_channels`` channels, trained on the views by
   :func:`train_autoencoder`).
4. **Aggregation**: every active voxel centre is projected into every view with the renderer's camera
   (:class:`genbench.recon3d.gaussians.Camera`, OpenGL convention, pixel (r, c) centred at (c + 0.5, r + 0.5)),
   the feature map is sampled bilinearly there (``grid_sample``, ``align_corners=False``: feature cell j of a map
   h wide covers image pixels [j S / h, (j + 1) S / h)), and the samples are averaged over the views where the
   voxel is visible (``visibility: occlusion``: no occupied voxel on the segment to the camera, marched at
   ``1/4`` voxel steps from one voxel away; a voxel seen by no view falls back to all views that contain it)
   or over all views that contain it (``visibility: all``, TRELLIS's plain average).
5. **VAE** (:class:`SparseVAE`): per-voxel tokens (linear embedding + absolute 3D sinusoidal position of the voxel,
   ``positions.sinusoidal_3d``) through a pre-norm transformer over all active voxels -> (mean, logvar) of an
   ``latent_channels``-d latent per voxel; the decoder (the same kind of transformer on the latents) outputs
   ``gaussians_per_voxel`` Gaussians per voxel (:meth:`SparseVAE.gaussians`).
6. **Loss** (eq. 1): L_recon (L1 + ``lambda_ssim`` (1 - SSIM)) between the Gaussians rendered from one random
   training view and that view's ground truth, + ``lambda_vol`` L_vol + ``lambda_alpha`` L_alpha +
   ``lambda_kl`` L_KL (:func:`vae_loss`).

Conventions and departures are listed in docs/diff2to3.md (section "2to3-VAE").
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import gaussians as gs
from ..render import View, camera_set
from ..render import render as render_mesh
from ._config import check_choice, check_heads, from_known_keys
from .positions import sinusoidal_3d


@dataclass(frozen=True)
class VAEConfig:
    grid_size: int = 16  # voxel grid resolution (paper / TRELLIS: 64)
    latent_channels: int = 8  # per-voxel latent (paper: 8)
    feature_source: str = "reconstructive"  # reconstructive (FLUX-VAE stand-in) | semantic (DINOv2 stand-in)
    feature_channels: int = 16  # reconstructive features (paper: FLUX's 16)
    semantic_channels: int = 64  # semantic features (DINOv2 ViT-L: 1024)
    semantic_patch: int = 4  # semantic ViT patch size (DINOv2: 14)
    semantic_depth: int = 1  # semantic ViT blocks (random, frozen)
    ae_hidden: int = 32  # reconstructive autoencoder width
    views: int = 8  # rendered views whose features are aggregated (TRELLIS: 150)
    image_size: int = 32  # render / feature-extractor input size (TRELLIS: 518 for DINOv2; FLUX: 512)
    visibility: str = "occlusion"  # occlusion | all
    hidden: int = 64  # transformer width (TRELLIS's SLat VAE: 768)
    heads: int = 4  # (12)
    enc_depth: int = 2  # (12)
    dec_depth: int = 2  # (12)
    mlp_ratio: float = 4.0
    gaussians_per_voxel: int = 4  # (TRELLIS: 32)
    offset_range: float = 1.5  # Gaussian centres within +- offset_range / 2 voxels of the voxel centre (TRELLIS 1.5)
    scale_bias: float = 0.25  # initial Gaussian std, in voxels
    opacity_bias: float = 0.1  # initial opacity (TRELLIS: 0.1)
    lambda_ssim: float = 0.2
    lambda_vol: float = 0.01
    lambda_alpha: float = 0.001
    lambda_kl: float = 1e-6

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VAEConfig:
        cfg = from_known_keys(cls, d, "2to3-VAE")
        check_choice(cfg.feature_source, ("reconstructive", "semantic"), "feature_source")
        check_choice(cfg.visibility, ("occlusion", "all"), "visibility")
        check_heads(cfg.hidden, cfg.heads)
        if cfg.image_size % 2 or cfg.image_size % cfg.semantic_patch:
            raise ValueError(f"image_size ({cfg.image_size}) must be even and a multiple of semantic_patch")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def in_channels(self) -> int:
        return self.feature_channels if self.feature_source == "reconstructive" else self.semantic_channels

    @property
    def voxel_size(self) -> float:
        return 1.0 / self.grid_size


# The paper's sizes (section 3.1: 64^3 grid, 8-d latents, 16-channel FLUX features); widths, depths, views and
# Gaussians per voxel are TRELLIS's SLat VAE as we recall its released config (768 wide, 12 blocks, 12 heads,
# 32 Gaussians per voxel, 150 views), not stated by the paper.
PAPER = dict(grid_size=64, latent_channels=8, feature_source="reconstructive", feature_channels=16, views=150,
             image_size=512, hidden=768, heads=12, enc_depth=12, dec_depth=12, gaussians_per_voxel=32)


# --- voxels, cameras, projection ---------------------------------------------------------------------------------

def voxel_centres(coords: torch.Tensor, grid_size: int) -> torch.Tensor:
    """World centres (N, 3) of integer voxel coordinates (N, 3) of a grid_size^3 grid over [-0.5, 0.5]^3."""
    return (coords.to(torch.float32) + 0.5) / grid_size - 0.5


def surface_voxels(occ: np.ndarray) -> np.ndarray:
    """Coordinates (N, 3) of occupied voxels with at least one empty (or out-of-grid) 6-neighbour."""
    pad = np.pad(occ, 1)
    interior = occ.copy()
    for axis in range(3):
        for step in (-1, 1):
            interior &= np.roll(pad, step, axis)[1:-1, 1:-1, 1:-1]
    return np.argwhere(occ & ~interior)


def project_points(points: torch.Tensor, camera: gs.Camera) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates (N, 2) (u, v) and depths (N,) of world points (N, 3) in ``camera`` (gaussians.Camera's
    convention: u = cx + fx x / d, v = cy - fy y / d, d = -z_cam)."""
    w2c = camera.w2c.to(points.dtype)
    t = points @ w2c[:3, :3].T + w2c[:3, 3]
    depth = -t[:, 2]
    u = camera.cx + camera.fx * t[:, 0] / depth
    v = camera.cy - camera.fy * t[:, 1] / depth
    return torch.stack([u, v], -1), depth


def sample_features(fmap: torch.Tensor, uv: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear samples (N, C) of a feature map (C, h, w) covering a width x height image, at pixel coordinates
    uv (N, 2), and whether each point lies inside the image (N,)."""
    grid = torch.stack([2 * uv[:, 0] / width - 1, 2 * uv[:, 1] / height - 1], -1)
    inside = (grid.abs() <= 1).all(-1)
    out = F.grid_sample(fmap[None], grid[None, None].to(fmap.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].T, inside


def occlusion_visibility(occ: np.ndarray, coords: np.ndarray, cam_pos: np.ndarray, step: float = 0.25) -> np.ndarray:
    """(N,) True where the segment from voxel ``coords``'s centre to the camera position ``cam_pos`` (world)
    crosses no occupied voxel, marched in ``step`` voxel steps from one voxel away from the centre."""
    res = occ.shape[0]
    centres = (coords + 0.5) / res - 0.5
    d = cam_pos[None] - centres
    length = np.linalg.norm(d, axis=1, keepdims=True)
    d = d / length
    vis = np.ones(len(coords), dtype=bool)
    ts = np.arange(1.0, float(length.max()) * res, step) / res
    for t in ts:
        p = centres + t * d
        idx = np.floor((p + 0.5) * res).astype(int)
        ok = ((idx >= 0) & (idx < res)).all(1) & (t < length[:, 0])
        hit = np.zeros(len(coords), dtype=bool)
        hit[ok] = occ[idx[ok, 0], idx[ok, 1], idx[ok, 2]]
        vis &= ~hit
    return vis


def aggregate(fmaps: torch.Tensor, points: torch.Tensor, cameras: list[gs.Camera],
              visible: torch.Tensor | None = None) -> torch.Tensor:
    """Average (N, C) over views of the features ``fmaps`` (K, C, h, w) sampled at the projections of ``points``
    (N, 3); a view counts for a point when the point is inside its image and, if given, ``visible`` (K, N) is
    True; points that no view sees by ``visible`` are averaged over the views whose image they are inside."""
    samples, inside = [], []
    for fmap, cam in zip(fmaps, cameras, strict=True):
        uv, depth = project_points(points, cam)
        s, ins = sample_features(fmap, uv, cam.width, cam.height)
        samples.append(s)
        inside.append(ins & (depth > 0))
    samples, inside = torch.stack(samples), torch.stack(inside)  # (K, N, C), (K, N)
    w = inside if visible is None else inside & visible
    w = torch.where(w.any(0, keepdim=True), w, inside).to(samples.dtype)
    return (w[..., None] * samples).sum(0) / w.sum(0).clamp(min=1)[:, None]


# --- 2D feature extractors ---------------------------------------------------------------------------------------

class SemanticViT(nn.Module):
    """DINOv2 stand-in: p x p patch embedding, learned-free sinusoidal 2D positions, pre-norm transformer blocks;
    (B, 3, S, S) images -> (B, C, S/p, S/p) patch features. Random weights, frozen (``requires_grad`` off)."""

    def __init__(self, channels: int, patch: int, depth: int, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng():  # the frozen random weights are a function of ``seed`` alone
            torch.manual_seed(seed)
            self.embed = nn.Conv2d(3, channels, patch, stride=patch)
            heads = max(1, channels // 32)
            self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(channels, heads, 2 * channels, dropout=0.0,
                                                                    batch_first=True, norm_first=True)
                                         for _ in range(depth)])
            self.norm = nn.LayerNorm(channels)
        self.requires_grad_(False)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        return self(img)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        x = self.embed(img * 2 - 1)
        b, c, h, w = x.shape
        i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        pos = torch.stack([i, j, torch.zeros_like(i)], -1).reshape(-1, 3).to(x.dtype)
        tok = x.flatten(2).transpose(1, 2) + sinusoidal_3d(pos, c)
        for blk in self.blocks:
            tok = blk(tok)
        return self.norm(tok).transpose(1, 2).reshape(b, c, h, w)


class ReconstructiveAE(nn.Module):
    """FLUX-VAE stand-in: conv encoder with one stride-2 stage (2:1 spatial compression per side) to ``channels``
    feature channels, conv decoder back to RGB; ``encode`` gives the features the 2to3-VAE aggregates."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(3, hidden, 3, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, channels, 3, padding=1))
        self.dec = nn.Sequential(nn.Conv2d(channels, hidden, 3, padding=1), nn.SiLU(),
                                 nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.SiLU(),
                                 nn.Conv2d(hidden, 3, 3, padding=1))

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        return self.enc(img * 2 - 1)

    def features(self, img: torch.Tensor) -> torch.Tensor:
        return self.encode(img)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dec(self.encode(img)))


def train_autoencoder(ae: ReconstructiveAE, images: torch.Tensor, steps: int, lr: float = 3e-3,
                      seed: int = 0) -> list[float]:
    """Fit ``ae`` to reconstruct ``images`` (B, 3, S, S) in [0, 1] (L1, full batch, Adam); returns the losses."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = (ae(images) - images).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# --- the asset -----------------------------------------------------------------------------------------------------

@dataclass
class Asset:
    """One voxelised, rendered, featurised asset: ``coords`` (N, 3) active voxels, ``features`` (N, C) their
    aggregated features, ``images`` (K + H, S, S, 3) renders on white, ``cameras`` their cameras; the first
    ``n_views`` are the feature / training views, the rest are held out."""

    coords: torch.Tensor
    features: torch.Tensor
    images: torch.Tensor
    cameras: list[gs.Camera]
    views: list[View]
    n_views: int
    occupancy: np.ndarray


def render_views(mesh, views: list[View], size: int) -> torch.Tensor:
    """(K, S, S, 3) float renders of ``mesh`` composited on white."""
    out = []
    for v in views:
        x = render_mesh(mesh, v, size).astype(np.float32) / 255.0
        out.append(x[..., :3] * x[..., 3:] + 1 - x[..., 3:])
    return torch.as_tensor(np.stack(out))


def feature_extractor(cfg: VAEConfig, images: torch.Tensor, ae_steps: int = 200, seed: int = 0) -> nn.Module:
    """The configured 2D feature extractor, ready to use (``module.features(x)``: (B, 3, S, S) in [0, 1] ->
    (B, C, h, w)): the frozen random ViT (``semantic``), or the autoencoder trained ``ae_steps`` steps on
    ``images`` (B, S, S, 3) (``reconstructive``; one extractor shared by a data set, as FLUX's VAE is)."""
    if cfg.feature_source == "semantic":
        return SemanticViT(cfg.semantic_channels, cfg.semantic_patch, cfg.semantic_depth, seed)
    torch.manual_seed(seed)
    ae = ReconstructiveAE(cfg.feature_channels, cfg.ae_hidden)
    train_autoencoder(ae, images.permute(0, 3, 1, 2).contiguous(), ae_steps, seed=seed)
    return ae.requires_grad_(False)


def feature_maps(cfg: VAEConfig, images: torch.Tensor, ae_steps: int = 200, seed: int = 0,
                 extractor: nn.Module | None = None) -> torch.Tensor:
    """(K, C, h, w) features of the training images (K, S, S, 3) by ``extractor``, or by the configured extractor
    fitted to these images (the reconstructive autoencoder is first trained ``ae_steps`` steps on them)."""
    extractor = extractor if extractor is not None else feature_extractor(cfg, images, ae_steps, seed)
    with torch.no_grad():
        return extractor.features(images.permute(0, 3, 1, 2).contiguous())


def render_asset(mesh, cfg: VAEConfig, held_out: int = 1, seed: int = 0) -> Asset:
    """Voxelise and render (``cfg.views`` + ``held_out`` views of TRELLIS's camera set, offset by ``seed``); the
    features are left empty (:func:`featurise` fills them)."""
    from ..meshes import solid_occupancy

    occ, _ = solid_occupancy(mesh, cfg.grid_size)
    coords = surface_voxels(occ)
    if not len(coords):
        raise ValueError("the asset occupies no voxel centre at this grid size")
    views = camera_set("trellis", n=cfg.views + held_out, seed=seed)
    images = render_views(mesh, views, cfg.image_size)
    cameras = [gs.Camera.from_view(v, cfg.image_size) for v in views]
    return Asset(torch.as_tensor(coords), torch.empty(0), images, cameras, views, cfg.views, occ)


def featurise(asset: Asset, cfg: VAEConfig, fmaps: torch.Tensor) -> Asset:
    """Aggregate the feature maps (K, C, h, w) of the asset's K training views onto its active voxels (in place)."""
    visible = None
    coords = asset.coords.numpy()
    if cfg.visibility == "occlusion":
        visible = torch.as_tensor(np.stack([occlusion_visibility(asset.occupancy, coords, v.c2w()[:3, 3])
                                            for v in asset.views[:asset.n_views]]))
    asset.features = aggregate(fmaps, voxel_centres(asset.coords, cfg.grid_size), asset.cameras[:asset.n_views],
                               visible)
    return asset


def prepare_asset(mesh, cfg: VAEConfig, held_out: int = 1, seed: int = 0, ae_steps: int = 200,
                  extractor: nn.Module | None = None) -> Asset:
    """Voxelise, render (``cfg.views`` + ``held_out`` views of TRELLIS's camera set), featurise (by ``extractor``,
    else by an extractor fitted to this asset's views) and aggregate."""
    asset = render_asset(mesh, cfg, held_out, seed)
    return featurise(asset, cfg, feature_maps(cfg, asset.images[:cfg.views], ae_steps, seed, extractor))


# --- the sparse VAE ------------------------------------------------------------------------------------------------

def transformer(cfg: VAEConfig, depth: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.hidden, cfg.heads, int(cfg.hidden * cfg.mlp_ratio), dropout=0.0,
                                       activation="gelu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)


GAUSSIAN_PARAMS = 3 + 3 + 4 + 1 + 3  # offset, scale, rotation, opacity, colour
MIN_SCALE = 1e-3  # voxels: a floor on the Gaussian std (softplus underflows to 0 in float32 for logits < -100)


class SparseVAE(nn.Module):
    """Transformer VAE over the active voxels of one asset: features (N, C) at coords (N, 3) -> latents (N, L)
    -> ``gaussians_per_voxel`` Gaussians per voxel. Full attention over the N voxels (TRELLIS: shifted-window
    attention at 64^3)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.enc_in = nn.Linear(cfg.in_channels, cfg.hidden)
        self.encoder = transformer(cfg, cfg.enc_depth)
        self.enc_norm = nn.LayerNorm(cfg.hidden)
        self.enc_out = nn.Linear(cfg.hidden, 2 * cfg.latent_channels)
        self.dec_in = nn.Linear(cfg.latent_channels, cfg.hidden)
        self.decoder = transformer(cfg, cfg.dec_depth)
        self.dec_norm = nn.LayerNorm(cfg.hidden)
        g = cfg.gaussians_per_voxel
        self.dec_out = nn.Linear(cfg.hidden, g * GAUSSIAN_PARAMS)
        # fixed per-slot starting offsets, uniform in (-0.4, 0.4) voxels (inside the voxel), so the slots of a voxel
        # start apart (TRELLIS perturbs its offsets likewise, with a Hammersley pattern); stored pre-tanh
        gen = torch.Generator().manual_seed(0)
        base = (torch.rand(g, 3, generator=gen) - 0.5) * 0.8
        self.register_buffer("offset_init", torch.atanh(base / (0.5 * cfg.offset_range)), persistent=False)

    def positions(self, coords: torch.Tensor) -> torch.Tensor:
        return sinusoidal_3d(coords.to(torch.float32), self.cfg.hidden)

    def encode(self, features: torch.Tensor, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar), each (N, latent_channels)."""
        x = self.enc_in(features) + self.positions(coords)
        x = self.enc_norm(self.encoder(x[None]))[0]
        mean, logvar = self.enc_out(x).chunk(2, -1)
        return mean, logvar.clamp(-30, 20)

    def decode(self, z: torch.Tensor, coords: torch.Tensor) -> gs.Gaussians:
        x = self.dec_in(z) + self.positions(coords)
        raw = self.dec_out(self.dec_norm(self.decoder(x[None]))[0])
        return self.gaussians(raw.reshape(len(z), self.cfg.gaussians_per_voxel, GAUSSIAN_PARAMS), coords)

    def gaussians(self, raw: torch.Tensor, coords: torch.Tensor) -> gs.Gaussians:
        """Activate raw decoder outputs (N, G, 14) into Gaussians (N * G of them), TRELLIS-style:
        centre = voxel centre + (offset_range / 2) voxel tanh(raw + slot start) (bounded to the voxel's
        neighbourhood), std = softplus(raw + softplus^-1(scale_bias)) + MIN_SCALE voxels,
        quaternion = raw + (1, 0, 0, 0), opacity = sigmoid(raw + logit(opacity_bias)),
        colour = sigmoid(raw) (RGB, SH degree 0)."""
        cfg = self.cfg
        vs = cfg.voxel_size
        off, sc, rot, op, col = raw.split([3, 3, 4, 1, 3], -1)
        centre = voxel_centres(coords, cfg.grid_size).to(raw.dtype)[:, None]
        means = centre + 0.5 * cfg.offset_range * vs * torch.tanh(off + self.offset_init)
        sb = math.log(math.expm1(cfg.scale_bias))
        scales = (F.softplus(sc + sb) + MIN_SCALE) * vs
        rotations = rot + torch.tensor([1.0, 0, 0, 0], dtype=raw.dtype)
        ob = math.log(cfg.opacity_bias / (1 - cfg.opacity_bias))
        opacities = torch.sigmoid(op[..., 0] + ob)
        return gs.Gaussians(means.reshape(-1, 3), scales.reshape(-1, 3), rotations.reshape(-1, 4),
                            opacities.reshape(-1), torch.sigmoid(col).reshape(-1, 3))

    def forward(self, features: torch.Tensor, coords: torch.Tensor, sample: bool = True
                ) -> tuple[gs.Gaussians, torch.Tensor, torch.Tensor]:
        mean, logvar = self.encode(features, coords)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp() if sample else mean
        return self.decode(z, coords), mean, logvar


# --- losses (eq. 1) --------------------------------------------------------------------------------------------------

def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)), summed over channels, averaged over voxels."""
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(-1).mean()


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """Differentiable SSIM of (H, W, 3) images in [0, 1]: Gaussian window (sigma 1.5, radius int(3.5 sigma + 0.5)),
    population statistics, border cropped, channel mean: skimage's ``structural_similarity`` with the settings
    of ``recon3d.appearance.ssim``."""
    r = int(truncate * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=a.dtype)
    k = torch.exp(-x**2 / (2 * sigma**2))
    k = k / k.sum()
    win = (k[:, None] * k[None]).expand(3, 1, -1, -1)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=3)

    a, b = a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None]
    ma, mb = filt(a), filt(b)
    va, vb, cov = filt(a * a) - ma**2, filt(b * b) - mb**2, filt(a * b) - ma * mb
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return s.mean()


def render_gaussians(g: gs.Gaussians, camera: gs.Camera) -> torch.Tensor:
    return gs.render(g, camera, background=(1.0, 1.0, 1.0)).rgb


def vae_loss(vae: SparseVAE, asset: Asset, view: int, sample: bool = True) -> dict[str, torch.Tensor]:
    """Eq. 1's terms for one training view: ``recon`` (L1 + lambda_ssim (1 - SSIM)), ``vol`` (mean Gaussian volume
    prod(std) in voxel^3 units), ``alpha`` (mean (1 - opacity)^2), ``kl``, and the weighted ``total``."""
    cfg = vae.cfg
    g, mean, logvar = vae(asset.features, asset.coords, sample)
    pred = render_gaussians(g, asset.cameras[view])
    gt = asset.images[view]
    l1 = (pred - gt).abs().mean()
    recon = l1 + cfg.lambda_ssim * (1 - ssim(pred, gt)) if cfg.lambda_ssim else l1
    vol = (g.scales / cfg.voxel_size).prod(-1).mean()
    alpha = ((1 - g.opacities) ** 2).mean()
    kl = kl_divergence(mean, logvar)
    total = recon + cfg.lambda_vol * vol + cfg.lambda_alpha * alpha + cfg.lambda_kl * kl
    return {"total": total, "recon": recon, "l1": l1, "vol": vol, "alpha": alpha, "kl": kl}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


@torch.no_grad()
def evaluate(vae: SparseVAE, asset: Asset, views: list[int]) -> float:
    """Mean PSNR (dB) of the decoded posterior means rendered against the renders of ``views``."""
    g, _, _ = vae(asset.features, asset.coords, sample=False)
    return float(np.mean([psnr(render_gaussians(g, asset.cameras[v]), asset.images[v]) for v in views]))


def fit(vae: SparseVAE, asset: Asset, steps: int, lr: float = 3e-3, seed: int = 0) -> list[dict[str, float]]:
    """``steps`` Adam steps of eq. 1, each on one random training view (section 3.3); returns per-step terms and
    the step time in seconds."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    hist = []
    for _ in range(steps):
        t0 = time.perf_counter()
        view = int(torch.randint(asset.n_views, (1,), generator=gen))
        terms = vae_loss(vae, asset, view)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        hist.append({k: v.item() for k, v in terms.items()} | {"view": view, "seconds": time.perf_counter() - t0})
    return hist


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
