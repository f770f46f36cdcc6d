"""The Diff2to3 generator's transformers (Diff2to3 section 3.2) and the TRELLIS-style baseline, config driven.

Inputs of every variant: noisy voxel latents ``x`` (B, N, C) at integer voxel coordinates ``coords`` (B, N, 3) in a
``grid_size``^3 latent grid (sparse: each sample's active voxels, padded to N, ``mask`` (B, N) True for real
tokens), the conditioning image features ``cond`` (B, Hc, Wc, Cc) and the flow-matching time ``t`` (B,) in [0, 1].
Output: the predicted velocity (B, N, C) of the voxel tokens.

* :class:`SMDiT` — double-stream blocks, then single-stream blocks (the FLUX design the paper adopts). A double
  stream block has separate weights per modality (adaLN modulation, norms, QKV, QK-norm, output projection, MLP)
  for the voxel tokens and the image tokens, and one joint attention over the concatenated sequence
  [image tokens, voxel tokens] (no mask between modalities; only padding is masked). A single-stream block is a
  standard adaLN DiT block applied to the concatenated sequence with one set of weights. Positions: MARoPE
  (``pos_embed: marope``) or, for the paper's ablation Exp. 3, absolute sinusoidal embeddings of the same 3D
  positions added to the input tokens (``pos_embed: absolute``).
* :class:`TrellisDiT` — the baseline (Exp. 1/2, Xiang et al. 2025): absolute sinusoidal 3D embeddings added to the
  voxel tokens, blocks of adaLN self-attention over voxel tokens, cross-attention to the image tokens (a plain
  affine LayerNorm before it, no modulation), adaLN MLP.

Time conditioning: sinusoidal embedding of 1000 t through a 2-layer MLP (DiT / FLUX), injected by adaLN
(shift, scale, gate) in every block, and in the final layer. The image features are patchified by p x p patches
(``image_patch``, the paper's 2 x 2) and a linear map. The voxel latents enter through a linear map per token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._config import check_choice, check_heads, from_known_keys
from .positions import apply_rope, image_positions, rope_angles, sinusoidal_3d, split_head_dim


@dataclass(frozen=True)
class Diff2to3Config:
    arch: str = "smdit"  # smdit | dit (the TRELLIS-style baseline)
    latent_channels: int = 8  # the 2to3-VAE's latent channels (section 3.1: 8)
    cond_channels: int = 16  # image feature channels (FLUX VAE features: 16)
    hidden: int = 64
    heads: int = 4
    double_blocks: int = 1  # smdit
    single_blocks: int = 1  # smdit
    depth: int = 2  # dit
    mlp_ratio: float = 4.0
    image_patch: int = 2  # p x p patchify of the image features (section 3.2: 2 x 2)
    grid_size: int = 8  # voxel tokens' grid resolution: z_max = grid_size - 1
    pos_embed: str = "marope"  # smdit: marope | absolute; dit: always absolute
    rope_theta: float = 10000.0
    qk_norm: bool = True  # RMSNorm of q and k per head (FLUX; the paper does not say)
    zero_init: bool = True  # adaLN gates and the output layer start at 0 (DiT): every block starts as identity

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diff2to3Config:
        cfg = from_known_keys(cls, d, "Diff2to3")
        check_choice(cfg.arch, ("smdit", "dit"), "arch")
        check_choice(cfg.pos_embed, ("marope", "absolute"), "pos_embed")
        check_heads(cfg.hidden, cfg.heads)
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Sizes. The paper states the latent (8 channels), the image features (FLUX, 16 channels), the 2 x 2 image patches
# and the parameter counts (TRELLIS 770 M, Diff2to3 821 M), not the widths or depths: ``trellis_l`` is TRELLIS-L's
# structured-latent flow transformer as we recall its released config (1024 wide, 24 blocks, 16 heads, DINOv2
# 1024-channel condition tokens; check against slat_flow_img_dit_L_64l8p2 before relying on it), and
# ``smdit_l`` is our guess at an SMDiT of that width (the double/single split is not published).
PRESETS: dict[str, dict[str, Any]] = {
    "toy": {},
    "trellis_l": dict(arch="dit", latent_channels=8, cond_channels=1024, hidden=1024, heads=16, depth=24,
                      image_patch=1, grid_size=32),
    "smdit_l": dict(arch="smdit", latent_channels=8, cond_channels=16, hidden=1024, heads=16, double_blocks=8,
                    single_blocks=16, image_patch=2, grid_size=32),
}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of 1000 t (t in [0, 1], the flow-matching time)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = 1000.0 * t.float()[:, None] * freqs
    emb = torch.cat([ang.cos(), ang.sin()], -1)
    return F.pad(emb, (0, dim - 2 * half))


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.freq_dim).to(self.mlp[0].weight.dtype))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None,
              return_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Multi-head attention of (B, H, L, Dh) tensors; ``key_mask`` (B, Lk) True where a key may be attended.
    With ``return_weights`` it is computed explicitly and also returns the weights (B, H, Lq, Lk)."""
    bias = None
    if key_mask is not None:
        bias = torch.zeros(key_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~key_mask, float("-inf"))
        bias = bias[:, None, None, :]
    if not return_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias), None
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if bias is not None:
        scores = scores + bias
    w = scores.softmax(-1)
    return w @ v, w


def heads_first(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, d = x.shape
    return x.reshape(b, n, heads, d // heads).transpose(1, 2)


def heads_last(x: torch.Tensor) -> torch.Tensor:
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def mlp(hidden: int, ratio: float) -> nn.Sequential:
    inner = int(hidden * ratio)
    return nn.Sequential(nn.Linear(hidden, inner), nn.GELU(approximate="tanh"), nn.Linear(inner, hidden))


class Stream(nn.Module):
    """The weights one token stream uses in a block: adaLN modulation (6 vectors), pre-norms, QKV, QK-norm,
    attention output projection and MLP. A double-stream block owns two, a single-stream block one."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        h, dh = cfg.hidden, cfg.hidden // cfg.heads
        self.heads = cfg.heads
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(h, 6 * h))
        self.norm1 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(h, 3 * h)
        self.q_norm = nn.RMSNorm(dh, eps=1e-6) if cfg.qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(dh, eps=1e-6) if cfg.qk_norm else nn.Identity()
        self.proj = nn.Linear(h, h)
        self.norm2 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(h, cfg.mlp_ratio)

    def pre_attention(self, x: torch.Tensor, c: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], list[torch.Tensor]]:
        mod = self.modulation(c).chunk(6, dim=-1)
        q, k, v = (heads_first(y, self.heads) for y in self.qkv(modulate(self.norm1(x), mod[0], mod[1])).chunk(3, -1))
        return (self.q_norm(q), self.k_norm(k), v), list(mod)

    def post_attention(self, x: torch.Tensor, attn: torch.Tensor, mod: list[torch.Tensor]) -> torch.Tensor:
        x = x + mod[2][:, None] * self.proj(attn)
        return x + mod[5][:, None] * self.mlp(modulate(self.norm2(x), mod[3], mod[4]))


def joint_attention(parts: list[tuple[torch.Tensor, ...]], angles: torch.Tensor | None,
                    key_mask: torch.Tensor | None, return_weights: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    q, k, v = (torch.cat([p[i] for p in parts], dim=2) for i in range(3))
    if angles is not None:
        q, k = apply_rope(q, angles), apply_rope(k, angles)
    out, w = attention(q, k, v, key_mask, return_weights)
    return heads_last(out), w


class DoubleStreamBlock(nn.Module):
    """Modality-specific weights (``img``, ``vox``), one joint attention over [image tokens, voxel tokens]."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        self.img, self.vox = Stream(cfg), Stream(cfg)

    def forward(self, x_img: torch.Tensor, x_vox: torch.Tensor, c: torch.Tensor, angles: torch.Tensor | None,
                key_mask: torch.Tensor | None, return_weights: bool = False):
        qkv_i, mod_i = self.img.pre_attention(x_img, c)
        qkv_v, mod_v = self.vox.pre_attention(x_vox, c)
        out, w = joint_attention([qkv_i, qkv_v], angles, key_mask, return_weights)
        n_img = x_img.shape[1]
        x_img = self.img.post_attention(x_img, out[:, :n_img], mod_i)
        x_vox = self.vox.post_attention(x_vox, out[:, n_img:], mod_v)
        return (x_img, x_vox, w) if return_weights else (x_img, x_vox)


class SingleStreamBlock(nn.Module):
    """A standard adaLN DiT block over the whole concatenated sequence (one set of weights)."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        self.stream = Stream(cfg)

    def forward(self, x: torch.Tensor, c: torch.Tensor, angles: torch.Tensor | None, key_mask: torch.Tensor | None,
                return_weights: bool = False):
        qkv, mod = self.stream.pre_attention(x, c)
        out, w = joint_attention([qkv], angles, key_mask, return_weights)
        x = self.stream.post_attention(x, out, mod)
        return (x, w) if return_weights else x


class FinalLayer(nn.Module):
    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))
        self.linear = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


class ImagePatchify(nn.Module):
    """(B, H, W, C) features -> (B, (H/p)(W/p), hidden) tokens, row-major over the patch grid."""

    def __init__(self, channels: int, hidden: int, p: int):
        super().__init__()
        self.p = p
        self.linear = nn.Linear(channels * p * p, hidden)

    def grid(self, cond: torch.Tensor) -> tuple[int, int]:
        b, h, w, _ = cond.shape
        if h % self.p or w % self.p:
            raise ValueError(f"image features {h}x{w} are not divisible into {self.p}x{self.p} patches")
        return h // self.p, w // self.p

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        b, _, _, c = cond.shape
        gh, gw = self.grid(cond)
        x = cond.reshape(b, gh, self.p, gw, self.p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, gh * gw, -1)
        return self.linear(x)


def zero_init_(model: nn.Module) -> None:
    """DiT's initialisation of the modulation and output layers: every residual branch starts closed."""
    for m in model.modules():
        if isinstance(m, (Stream, FinalLayer, CrossBlock)):
            nn.init.zeros_(m.modulation[-1].weight)
            nn.init.zeros_(m.modulation[-1].bias)
        if isinstance(m, FinalLayer):
            nn.init.zeros_(m.linear.weight)
            nn.init.zeros_(m.linear.bias)


def _token_layers(net: nn.Module, cfg: Diff2to3Config) -> None:
    """What both variants read and write tokens with: voxel latents in, image patches in, the timestep embedding,
    and the final (adaLN) layer back to latents. The blocks between them are what the ablation varies."""
    net.cfg = cfg
    net.vox_in = nn.Linear(cfg.latent_channels, cfg.hidden)
    net.img_in = ImagePatchify(cfg.cond_channels, cfg.hidden, cfg.image_patch)
    net.t_embed = TimestepEmbedder(cfg.hidden)
    net.final = FinalLayer(cfg.hidden, cfg.latent_channels)


class SMDiT(nn.Module):
    """Sparse-structure multi-modal DiT: ``double_blocks`` double-stream blocks, then ``single_blocks``
    single-stream blocks, over [image patch tokens, voxel tokens]; see the module docstring."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        _token_layers(self, cfg)
        self.double_stream = nn.ModuleList(DoubleStreamBlock(cfg) for _ in range(cfg.double_blocks))
        self.single_stream = nn.ModuleList(SingleStreamBlock(cfg) for _ in range(cfg.single_blocks))
        self.axes_dim = split_head_dim(cfg.hidden // cfg.heads)
        if cfg.zero_init:
            zero_init_(self)

    def positions(self, coords: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, N_img + N, 3) positions of [image tokens at (i, j, z_max + 1), voxel tokens at their coordinates]."""
        gh, gw = self.img_in.grid(cond)
        img = image_positions(gh, gw, self.cfg.grid_size).to(coords.device)
        return torch.cat([img.expand(coords.shape[0], -1, -1), coords.float()], 1)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor | None = None, return_weights: bool = False):
        c = self.t_embed(t)
        x_vox, x_img = self.vox_in(x), self.img_in(cond)
        pos = self.positions(coords, cond)
        n_img = x_img.shape[1]
        angles = None
        if self.cfg.pos_embed == "marope":
            angles = rope_angles(pos, self.axes_dim, self.cfg.rope_theta)
        else:
            emb = sinusoidal_3d(pos, self.cfg.hidden).to(x_vox.dtype)
            x_img, x_vox = x_img + emb[:, :n_img], x_vox + emb[:, n_img:]
        key_mask = None
        if mask is not None:
            key_mask = torch.cat([torch.ones(mask.shape[0], n_img, dtype=torch.bool, device=mask.device), mask], 1)
        weights = []
        for blk in self.double_stream:
            x_img, x_vox, *w = blk(x_img, x_vox, c, angles, key_mask, return_weights)
            weights += w
        h = torch.cat([x_img, x_vox], 1)
        for blk in self.single_stream:
            out = blk(h, c, angles, key_mask, return_weights)
            h, weights = (out[0], weights + [out[1]]) if return_weights else (out, weights)
        v = self.final(h[:, n_img:], c)
        return (v, weights) if return_weights else v


class CrossBlock(nn.Module):
    """TRELLIS-style block: adaLN self-attention over voxel tokens, cross-attention to the condition tokens
    (affine LayerNorm, no modulation, ungated residual), adaLN MLP."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        h = cfg.hidden
        self.heads = cfg.heads
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(h, 6 * h))
        self.norm1 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(h, 3 * h)
        self.proj = nn.Linear(h, h)
        self.norm2 = nn.LayerNorm(h, eps=1e-6)
        self.cross_q = nn.Linear(h, h)
        self.cross_kv = nn.Linear(h, 2 * h)
        self.cross_proj = nn.Linear(h, h)
        self.norm3 = nn.LayerNorm(h, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(h, cfg.mlp_ratio)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None,
                return_weights: bool = False):
        mod = self.modulation(c).chunk(6, dim=-1)
        q, k, v = (heads_first(y, self.heads) for y in self.qkv(modulate(self.norm1(x), mod[0], mod[1])).chunk(3, -1))
        out, w_self = attention(q, k, v, mask, return_weights)
        x = x + mod[2][:, None] * self.proj(heads_last(out))
        q = heads_first(self.cross_q(self.norm2(x)), self.heads)
        k, v = (heads_first(y, self.heads) for y in self.cross_kv(ctx).chunk(2, -1))
        out, w_cross = attention(q, k, v, None, return_weights)
        x = x + self.cross_proj(heads_last(out))
        x = x + mod[5][:, None] * self.mlp(modulate(self.norm3(x), mod[3], mod[4]))
        return (x, (w_self, w_cross)) if return_weights else x


class TrellisDiT(nn.Module):
    """The baseline: absolute 3D sinusoidal positions, self-attention over voxel tokens, cross-attention to the
    image tokens (which stay fixed: they are context, never updated)."""

    def __init__(self, cfg: Diff2to3Config):
        super().__init__()
        _token_layers(self, cfg)
        self.blocks = nn.ModuleList(CrossBlock(cfg) for _ in range(cfg.depth))
        if cfg.zero_init:
            zero_init_(self)

    def forward(self, x: torch.Tensor, coords: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor | None = None, return_weights: bool = False):
        c = self.t_embed(t)
        h = self.vox_in(x) + sinusoidal_3d(coords.float(), self.cfg.hidden).to(x.dtype)
        ctx = self.img_in(cond)
        weights = []
        for blk in self.blocks:
            out = blk(h, ctx, c, mask, return_weights)
            h, weights = (out[0], weights + [out[1]]) if return_weights else (out, weights)
        v = self.final(h, c)
        return (v, weights) if return_weights else v


def build(cfg: Diff2to3Config | dict[str, Any]) -> nn.Module:
    """The generator a config describes (a dict is validated by :meth:`Diff2to3Config.from_dict`)."""
    if isinstance(cfg, dict):
        cfg = Diff2to3Config.from_dict(cfg)
    return SMDiT(cfg) if cfg.arch == "smdit" else TrellisDiT(cfg)


def flow_matching_loss(model: nn.Module, z0: torch.Tensor, coords: torch.Tensor, cond: torch.Tensor,
                       mask: torch.Tensor | None = None, t: torch.Tensor | None = None,
                       eps: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Section 3.3's CFM objective: z_t = (1 - t) z0 + t eps, t ~ U(0, 1), target velocity eps - z0, squared error
    averaged over the real (unpadded) voxel tokens and channels."""
    b = z0.shape[0]
    if t is None:
        t = torch.rand(b, generator=generator, dtype=z0.dtype)
    if eps is None:
        eps = torch.randn(z0.shape, generator=generator, dtype=z0.dtype)
    zt = (1 - t[:, None, None]) * z0 + t[:, None, None] * eps
    err = ((model(zt, coords, cond, t, mask) - (eps - z0)) ** 2).mean(-1)
    if mask is None:
        return err.mean()
    return (err * mask).sum() / mask.sum()
