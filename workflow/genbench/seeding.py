"""Per-sample seeds that do not depend on batching or sharding.

A sample's random stream is a pure function of (global seed, model, dataset, item id, purpose), hashed with
BLAKE2b, so generating a cell in one shard or in many, in any batch order, yields identical images.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from an ordered tuple of parts (stable across Python versions and platforms)."""
    text = "\x1f".join(str(p) for p in parts)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def item_seed(global_seed: int, model: str, dataset: str, item_id: str, purpose: str = "noise") -> int:
    return derive_seed("genbench", global_seed, model, dataset, item_id, purpose)


def item_generator(seed: int) -> torch.Generator:
    import torch

    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def item_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Stack one standard-normal tensor of ``shape`` per seed (float32, CPU)."""
    import torch

    return torch.stack([torch.randn(shape, generator=item_generator(s)) for s in seeds])


def item_noise_stream(seeds: list[int], shape: tuple[int, ...]):
    """``draw(k)``: the k-th further standard-normal draw of each item (stochastic samplers: SDE steps, SoFlow's
    re-noising), from the item's own seed, so it does not depend on the batch either."""

    def draw(k: int) -> torch.Tensor:
        return item_noise([derive_seed(s, "draw", k) for s in seeds], shape)

    return draw


def numpy_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(derive_seed(*parts))
