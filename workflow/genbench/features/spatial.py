"""sFID's spatial features (Nash et al. 2021, "Generating images with sparse representations"): the first channels of
an intermediate convolutional feature map, flattened per image. Shared by the TF-FID Inception (the sFID layer
itself) and the mini-world classifier (its stand-in)."""

from __future__ import annotations

import torch


def flatten_spatial(fmap: torch.Tensor, channels: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, H * W * channels): the first ``channels`` channels, flattened in NHWC order (row, column,
    channel), as ADM's evaluator reshapes the TF tensor ``spatial[..., :7]`` (NHWC) to (N, -1)."""
    if fmap.ndim != 4 or fmap.shape[1] < channels:
        raise ValueError(f"spatial features: need an (N, C >= {channels}, H, W) map, got {tuple(fmap.shape)}")
    return fmap[:, :channels].permute(0, 2, 3, 1).reshape(len(fmap), -1)
