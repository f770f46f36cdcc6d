"""Token positions of the Diff2to3 generator: MARoPE (3D rotary embedding with the image on a virtual plane) and
the absolute sinusoidal 3D embedding of the TRELLIS baseline.

MARoPE (Diff2to3 section 3.2, "Modal-Aware Rotary Position Embedding"): every token gets a 3D integer position;
a voxel token keeps its voxel coordinate (x, y, z) in the latent grid (0 .. grid_size - 1 on each axis), an image
patch token at patch row i, column j is placed at (i, j, z_max + 1) with z_max = grid_size - 1, a "virtual plane"
just outside the volume. The rotary embedding is the 3D axial one of FLUX (Su et al.'s RoPE per axis): the head
dimension is split into three even parts, part a rotates its consecutive channel pairs (2k, 2k+1) by the angle
p_a * theta^(-2k / d_a). Rotations compose, so q . k after the embedding depends on the positions only through
their difference: attention sees relative 3D offsets, between voxels and between voxels and image patches alike.
"""

from __future__ import annotations

import torch


def split_head_dim(head_dim: int) -> tuple[int, int, int]:
    """Channels of the head dimension given to the x, y and z rotations: three even parts, as equal as possible
    (the first axes get the remainder pairs), e.g. 64 -> (22, 22, 20)."""
    if head_dim % 2 or head_dim < 6:
        raise ValueError(f"3D RoPE needs an even head dimension >= 6, got {head_dim}")
    pairs = head_dim // 2
    return tuple(2 * (pairs // 3 + (a < pairs % 3)) for a in range(3))  # type: ignore[return-value]


def rope_angles(pos: torch.Tensor, axes_dim: tuple[int, int, int], theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles (..., L, sum(axes_dim) / 2) of 3D positions ``pos`` (..., L, 3)."""
    out = []
    for a, d in enumerate(axes_dim):
        freqs = theta ** (-torch.arange(0, d, 2, dtype=pos.dtype, device=pos.device) / d)
        out.append(pos[..., a, None] * freqs)
    return torch.cat(out, -1)


def apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the channel pairs (2k, 2k+1) of ``x`` (B, H, L, D) by ``angles`` (B, L, D/2) (or (L, D/2))."""
    if angles.dim() == 3:
        angles = angles[:, None]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], -1).flatten(-2)


def image_positions(h: int, w: int, grid_size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(h * w, 3) MARoPE positions of an h x w grid of image patch tokens, row-major: (i, j, z_max + 1),
    z_max = grid_size - 1 the last voxel index of the latent volume."""
    i, j = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
    return torch.stack([i.reshape(-1), j.reshape(-1), torch.full((h * w,), float(grid_size), dtype=dtype)], -1)


def sinusoidal_3d(pos: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Absolute 3D sinusoidal embedding (..., dim) of positions (..., 3): per axis ``dim // 3`` channels rounded
    down to even, half sines and half cosines of p * max_period^(-k / half); zero padding up to ``dim``."""
    per_axis = (dim // 3) // 2 * 2
    half = per_axis // 2
    freqs = max_period ** (-torch.arange(half, dtype=pos.dtype, device=pos.device) / half)
    parts = []
    for a in range(3):
        ang = pos[..., a, None] * freqs
        parts += [ang.sin(), ang.cos()]
    emb = torch.cat(parts, -1)
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[-1]))
