"""Improved MeanFlow (iMF; Lyy-iiis/imeanflow, PyTorch inference branch) in plain PyTorch, with the parameter names of
the published ``.pth`` files (HF Lyy0725/iMF): the checkpoint is the state dict of the upstream ``iMeanFlow``
wrapper, so every key starts with ``net.``; linear layers are wrapped (``…._flax_linear.weight``) as upstream.

Architecture (in-context conditioning, no adaLN): conditioning tokens are learned token groups plus the embedding of
their scalar (class ``y``, guidance ``omega`` embedded as 1 - 1/omega, guidance interval ``t_min``/``t_max``, and
``h = t - r``: the network does not see t itself), prepended to the patch tokens; RMSNorm, RoPE attention with
q/k RMSNorm, SwiGLU MLPs and zero-initialised per-channel residual gates; a shared trunk of ``depth -
aux_head_depth`` blocks, then the u head (the v head is training-only and absent from inference checkpoints).
Sampling is MeanFlow's: t = linspace(1, 0, N + 1), z_r = z_t - (t - r) u with omega and the interval as inputs.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IMF_CONFIGS = {
    "iMF-B/2": dict(depth=12, hidden_size=768, patch_size=2, num_heads=12, aux_head_depth=8),
    "iMF-M/2": dict(depth=24, hidden_size=768, patch_size=2, num_heads=12, aux_head_depth=8),
    "iMF-L/2": dict(depth=32, hidden_size=1024, patch_size=2, num_heads=16, aux_head_depth=8),
    "iMF-XL/2": dict(depth=48, hidden_size=1024, patch_size=2, num_heads=16, aux_head_depth=8),
}


class Linear(nn.Module):
    """nn.Linear under the attribute name the upstream port uses (``_flax_linear``)."""

    def __init__(self, fan_in: int, fan_out: int, bias: bool = True):
        super().__init__()
        self._flax_linear = nn.Linear(fan_in, fan_out, bias=bias)
        nn.init.normal_(self._flax_linear.weight, std=1 / math.sqrt(fan_in))
        if bias:
            nn.init.zeros_(self._flax_linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._flax_linear(x)


class Embedding(nn.Module):
    def __init__(self, n: int, dim: int):
        super().__init__()
        self._flax_embedding = nn.Embedding(n, dim)
        nn.init.normal_(self._flax_embedding.weight, std=1 / math.sqrt(dim))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self._flax_embedding(y)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class ScalarEmbedder(nn.Module):
    """Sinusoidal features of a scalar (cos first, 256 frequencies) -> MLP, as DiT's timestep embedder."""

    def __init__(self, hidden: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(Linear(freq_dim, hidden), nn.SiLU(), Linear(hidden, hidden))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=s.device) / half)
        args = s.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


def rope_tables(head_dim: int, n_tokens: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = torch.outer(torch.arange(n_tokens, dtype=torch.float32), inv)
    return torch.cos(ang), torch.sin(ang)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on consecutive channel pairs (a, b) -> (a cos - b sin, a sin + b cos); x is (B, T, H, D)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    c, s = cos[None, :, None], sin[None, :, None]
    return torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2).to(x.dtype)


class RoPEAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (Linear(hidden, hidden, bias=False) for _ in range(4))
        self.q_norm, self.k_norm = RMSNorm(self.head_dim), RMSNorm(self.head_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        split = lambda z: z.view(b, t, self.heads, self.head_dim)  # noqa: E731
        q = rotate(self.q_norm(split(self.q_proj(x))), cos, sin)
        k = rotate(self.k_norm(split(self.k_proj(x))), cos, sin)
        v = split(self.v_proj(x))
        w = torch.einsum("bqhd,bkhd->bhqk", q / math.sqrt(self.head_dim), k).softmax(dim=-1, dtype=torch.float32)
        return self.out_proj(torch.einsum("bhqk,bkhd->bqhd", w.to(v.dtype), v).reshape(b, t, c))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w1, self.w3 = Linear(dim, hidden, bias=False), Linear(dim, hidden, bias=False)
        self.w2 = Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        self.attn = RoPEAttention(hidden, heads)
        self.mlp = SwiGLU(hidden, int(hidden * mlp_ratio))
        self.attn_scale = nn.Parameter(torch.zeros(hidden))
        self.mlp_scale = nn.Parameter(torch.zeros(hidden))

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin) * self.attn_scale
        return x + self.mlp(self.norm2(x)) * self.mlp_scale


class Final(nn.Module):
    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.norm = RMSNorm(hidden)
        self.linear = Linear(hidden, out)
        nn.init.zeros_(self.linear._flax_linear.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, cin: int, hidden: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, hidden, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class IMFDiT(nn.Module):
    """iMF's DiT for inference (u head only), upstream names; ``forward`` returns u."""

    def __init__(self, input_size: int = 32, patch_size: int = 2, in_channels: int = 4, hidden_size: int = 1152,
                 depth: int = 28, num_heads: int = 16, mlp_ratio: float = 8 / 3, num_classes: int = 1000,
                 aux_head_depth: int = 8, num_class_tokens: int = 8, num_time_tokens: int = 4,
                 num_cfg_tokens: int = 4, num_interval_tokens: int = 2):
        super().__init__()
        if depth <= aux_head_depth:
            raise ValueError(f"iMF: depth {depth} must exceed aux_head_depth {aux_head_depth}")
        self.input_size, self.patch_size, self.in_channels = input_size, patch_size, in_channels
        self.num_classes = num_classes
        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        for name in ("h", "omega", "cfg_t_start", "cfg_t_end"):
            setattr(self, f"{name}_embedder", ScalarEmbedder(hidden_size))
        self.y_embedder = nn.Module()
        self.y_embedder.embedding_table = Embedding(num_classes + 1, hidden_size)
        std = 1 / math.sqrt(hidden_size)
        counts = {"time": num_time_tokens, "class": num_class_tokens, "omega": num_cfg_tokens,
                  "t_min": num_interval_tokens, "t_max": num_interval_tokens}
        for name, n in counts.items():
            setattr(self, f"{name}_tokens", nn.Parameter(torch.randn(n, hidden_size) * std))
        self.prefix = sum(counts.values())
        n_tokens = self.prefix + (input_size // patch_size) ** 2
        cos, sin = rope_tables(hidden_size // num_heads, n_tokens)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.shared_blocks = nn.ModuleList(Block(hidden_size, num_heads, mlp_ratio)
                                           for _ in range(depth - aux_head_depth))
        self.u_heads = nn.ModuleList(Block(hidden_size, num_heads, mlp_ratio) for _ in range(aux_head_depth))
        out = patch_size * patch_size * in_channels
        self.u_final_layer = Final(hidden_size, out)
        self.v_final_layer = Final(hidden_size, out)  # kept in the inference checkpoints, unused here

    def forward(self, x: torch.Tensor, h: torch.Tensor, omega: torch.Tensor, t_min: torch.Tensor,
                t_max: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        def group(tokens: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
            return tokens[None] + emb[:, None]

        seq = torch.cat([
            group(self.class_tokens, self.y_embedder.embedding_table(y)),
            group(self.omega_tokens, self.omega_embedder(1 - 1 / omega)),
            group(self.t_min_tokens, self.cfg_t_start_embedder(t_min)),
            group(self.t_max_tokens, self.cfg_t_end_embedder(t_max)),
            group(self.time_tokens, self.h_embedder(h)),
            self.x_embedder(x),
        ], dim=1)
        for block in [*self.shared_blocks, *self.u_heads]:
            seq = block(seq, self.rope_cos, self.rope_sin)
        tokens = self.u_final_layer(seq[:, self.prefix:])
        p, c, g = self.patch_size, self.in_channels, self.input_size // self.patch_size
        tokens = tokens.reshape(x.shape[0], g, g, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", tokens).reshape(x.shape[0], c, g * p, g * p)


class IMeanFlowNet(nn.Module):
    """The upstream wrapper (keys ``net.*``)."""

    def __init__(self, **arch: Any):
        super().__init__()
        self.net = IMFDiT(**arch)


def imf_from_arch(arch: dict[str, Any]) -> IMeanFlowNet:
    arch = {k: v for k, v in arch.items() if k not in ("vae",)}
    preset = arch.pop("config", None)
    if preset and preset not in IMF_CONFIGS:
        raise ValueError(f"unknown iMF preset '{preset}' (available: {', '.join(IMF_CONFIGS)})")
    kwargs = {**IMF_CONFIGS.get(preset, {}), **arch}
    try:
        return IMeanFlowNet(**kwargs)
    except TypeError as exc:
        raise ValueError(f"iMF arch {arch}: {exc}") from exc
