"""A tiny Flax DiT with the module structure of MeanFlow's official JAX model (Gsunshine/meanflow
models/models_dit.py), written here from its description for the converter test: ``TorchLinear`` wrappers holding
``_flax_linear`` Dense layers, ``_flax_embedding``, ``nn.Sequential`` embedders/modulations (children ``layers_{i}``),
an NHWC conv patch embedding, adaLN-Zero blocks, computed sin-cos positions, conditioning c = t + h + y, t = 1 noise.
It is the reference side of the test: its forward pass must equal the converted PyTorch network's."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from genbench.gen2d.sit import sincos_pos_embed_2d


class TorchLinear(nn.Module):
    features: int

    def setup(self):
        self._flax_linear = nn.Dense(self.features, kernel_init=nn.initializers.normal(0.3),
                                     bias_init=nn.initializers.normal(0.1))

    def __call__(self, x):
        return self._flax_linear(x)


class TorchEmbedding(nn.Module):
    num: int
    dim: int

    def setup(self):
        self._flax_embedding = nn.Embed(self.num, self.dim, embedding_init=nn.initializers.normal(0.5))

    def __call__(self, x):
        return self._flax_embedding(x)


def layer_norm(x, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + eps)


def modulate(x, shift, scale):
    return x * (1 + scale[:, None]) + shift[:, None]


class TimestepEmbedder(nn.Module):
    hidden: int
    freq: int = 256

    def setup(self):
        self.mlp = nn.Sequential([TorchLinear(self.hidden), nn.silu, TorchLinear(self.hidden)])

    def __call__(self, t):
        half = self.freq // 2
        freqs = jnp.exp(-math.log(10000) * jnp.arange(half, dtype=jnp.float32) / half)
        args = t[:, None].astype(jnp.float32) * freqs[None]
        return self.mlp(jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1))


class Attention(nn.Module):
    dim: int
    heads: int

    def setup(self):
        self.qkv = TorchLinear(self.dim * 3)
        self.proj = TorchLinear(self.dim)

    def __call__(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = nn.softmax(q @ k.transpose(0, 1, 3, 2) * (c // self.heads) ** -0.5, axis=-1)
        return self.proj((attn @ v).transpose(0, 2, 1, 3).reshape(b, n, c))


class Mlp(nn.Module):
    dim: int
    hidden: int

    def setup(self):
        self.fc1 = TorchLinear(self.hidden)
        self.fc2 = TorchLinear(self.dim)

    def __call__(self, x):
        return self.fc2(nn.gelu(self.fc1(x), approximate=True))


class DiTBlock(nn.Module):
    hidden: int
    heads: int

    def setup(self):
        self.attn = Attention(self.hidden, self.heads)
        self.mlp = Mlp(self.hidden, 4 * self.hidden)
        self.adaLN_modulation = nn.Sequential([nn.silu, TorchLinear(6 * self.hidden)])

    def __call__(self, x, c):
        s1, sc1, g1, s2, sc2, g2 = jnp.split(self.adaLN_modulation(c), 6, axis=1)
        x = x + g1[:, None] * self.attn(modulate(layer_norm(x), s1, sc1))
        return x + g2[:, None] * self.mlp(modulate(layer_norm(x), s2, sc2))


class FinalLayer(nn.Module):
    hidden: int
    out: int

    def setup(self):
        self.linear = TorchLinear(self.out)
        self.adaLN_modulation = nn.Sequential([nn.silu, TorchLinear(2 * self.hidden)])

    def __call__(self, x, c):
        shift, scale = jnp.split(self.adaLN_modulation(c), 2, axis=1)
        return self.linear(modulate(layer_norm(x), shift, scale))


class PatchEmbed(nn.Module):
    patch: int
    hidden: int

    def setup(self):
        self.proj = nn.Conv(self.hidden, kernel_size=(self.patch, self.patch), strides=(self.patch, self.patch),
                            kernel_init=nn.initializers.normal(0.3), bias_init=nn.initializers.normal(0.1))

    def __call__(self, x):
        x = self.proj(x)
        return x.reshape(x.shape[0], -1, x.shape[3])


class DiT(nn.Module):
    input_size: int = 8
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 32
    depth: int = 2
    num_heads: int = 4
    num_classes: int = 10

    def setup(self):
        self.x_embedder = PatchEmbed(self.patch_size, self.hidden_size)
        self.t_embedder = TimestepEmbedder(self.hidden_size)
        self.h_embedder = TimestepEmbedder(self.hidden_size)
        self.y_embedder = TorchLabelEmbedder(self.num_classes, self.hidden_size)
        self.blocks = nn.Sequential([DiTBlock(self.hidden_size, self.num_heads) for _ in range(self.depth)])
        self.final_layer = FinalLayer(self.hidden_size, self.patch_size ** 2 * self.in_channels)

    def __call__(self, x, t, h, y):
        grid = self.input_size // self.patch_size
        pos = jnp.asarray(sincos_pos_embed_2d(self.hidden_size, grid), dtype=jnp.float32)
        x = self.x_embedder(x) + pos
        c = self.t_embedder(t) + self.h_embedder(h) + self.y_embedder(y)
        for block in self.blocks.layers:
            x = block(x, c)
        x = self.final_layer(x, c)
        p, ch = self.patch_size, self.in_channels
        x = x.reshape(x.shape[0], grid, grid, p, p, ch)
        return jnp.einsum("nhwpqc->nhpwqc", x).reshape(x.shape[0], grid * p, grid * p, ch)


class TorchLabelEmbedder(nn.Module):
    num_classes: int
    hidden: int

    def setup(self):
        self.embedding_table = TorchEmbedding(self.num_classes + 1, self.hidden)  # + the null class

    def __call__(self, y):
        return self.embedding_table(y)


class MeanFlow(nn.Module):
    """The wrapper whose ``net`` attribute puts the DiT under ``params/net`` as upstream."""

    kwargs: dict

    def setup(self):
        self.net = DiT(**self.kwargs)

    def __call__(self, x, t, h, y):
        return self.net(x, t, h, y)


def tiny_train_state(seed: int = 0, **kwargs) -> tuple[MeanFlow, dict]:
    """A tiny model and a TrainState-like tree (step, params, ema_params, opt_state) as the official checkpoints."""
    import jax

    model = MeanFlow(kwargs)
    size, ch = kwargs.get("input_size", 8), kwargs.get("in_channels", 4)
    x = jnp.zeros((1, size, size, ch))
    params = model.init(jax.random.PRNGKey(seed), x, jnp.zeros(1), jnp.zeros(1), jnp.zeros(1, jnp.int32))["params"]
    ema = jax.tree_util.tree_map(lambda a: a * 0.5, params)  # differs from params, so the entry choice is testable
    state = {"step": np.int64(1234), "params": params, "ema_params": ema,
             "opt_state": {"mu": jax.tree_util.tree_map(jnp.zeros_like, params)}}
    return model, state

