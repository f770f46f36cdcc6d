"""Qualitative sample grids (PIL only, no matplotlib)."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def sample_grid(images: np.ndarray, n: int = 20, ncols: int = 10, scale: int = 2, pad: int = 2) -> Image.Image:
    """The first ``n`` images in a grid (nearest-neighbour upscaled), white padding between them."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"a sample grid is drawn from uint8 NHWC RGB images, got {images.dtype}"
                         f"{list(images.shape)}; convert them first (float images: clip to [0, 1], x 255, round)")
    images = images[:n]
    if len(images) == 0:
        raise ValueError("no images to put in a sample grid")
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    h, w = images.shape[1] * scale, images.shape[2] * scale
    canvas = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        big = img.repeat(scale, axis=0).repeat(scale, axis=1)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = big
    return Image.fromarray(canvas)
