"""TF-FID Inception (inception-2015-12-05) in PyTorch: the network every FID implementation uses.

The architecture is torchvision's Inception-v3 with the FID port's differences (as pytorch-fid and torch-fidelity
have them): the pooling branches of the A, C and first E blocks average without counting padding, the last E block
max-pools, and the classifier has 1008 outputs. Parameter names are torchvision's, so the state dict of
``pt_inception-2015-12-05-6726825d.pth`` (pytorch-fid's release, also torch-fidelity's) loads as is.

Outputs per image: ``features`` = the 2048-d pool3 activations (FID, KID) and ``logits`` = the 1008 logits without
the classifier bias ("logits_unbiased", torch-fidelity's input to the Inception Score); on request
(:meth:`FIDInception.forward_all`) also ``spatial`` = the sFID features of the same forward pass: the first 7
channels of ``Mixed_6d.branch1x1`` (the TF graph's ``mixed_6/conv:0``: 1x1 conv, BatchNorm, ReLU; 17 x 17),
flattened in NHWC order (row, column, channel) as ADM's evaluator reshapes the TF tensor: 17 * 17 * 7 = 2023 values.

Resizing to 299 x 299 is explicit (``resize``) and recorded with the table:
- ``clean`` (default, clean-fid's "clean" mode): PIL bicubic per channel on float32 ('F' mode), clipped to
  [0, 255], no re-quantisation;
- ``bilinear`` (pytorch-fid): torch bilinear, align_corners=False, no antialias;
- ``tf1_bilinear`` (torch-fidelity; torchmetrics' FID with ``antialias=False``): TensorFlow 1.x
  ``resize_bilinear`` with align_corners=False and no half-pixel centres, source coordinate = i * in / out in
  float32, as the TF-FID graph resized;
- ``bilinear_antialias`` (torchmetrics' FID default, ``antialias=True``): torch bilinear, align_corners=False,
  antialias=True;
- ``none``: the images must already be 299 x 299.
Normalisation is (x - 128) / 128 (torch-fidelity and clean-fid; pytorch-fid's 2x - 1 on [0, 1] differs by 1/255).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision.models import inception as tv

from .spatial import flatten_spatial

SIZE = 299
RESIZE_MODES = ("clean", "bilinear", "tf1_bilinear", "bilinear_antialias", "none")
# which reference implementation each mode reproduces (recorded with the tables through the extractor's describe)
RESIZE_REFERENCE = {"clean": "clean-fid 'clean' (PIL bicubic on float32)",
                    "bilinear": "pytorch-fid (torch bilinear, no antialias)",
                    "tf1_bilinear": "torch-fidelity / torchmetrics antialias=False (TF1 bilinear, align_corners=False)",
                    "bilinear_antialias": "torchmetrics antialias=True (torch bilinear with antialias)",
                    "none": "no resize (299 x 299 input)"}


# sFID (Nash et al. 2021; ADM's evaluator): the first 7 channels of the TF graph's mixed_6/conv:0, the 1x1 branch of
# the block torchvision calls Mixed_6d (torch-fidelity's weight converter maps mixed_6/conv/{conv2d_params,batchnorm}
# to Mixed_6d.branch1x1.{conv,bn})
SPATIAL_BLOCK = "Mixed_6d"
SPATIAL_CHANNELS = 7


class _PoolA(tv.InceptionA):
    def _forward(self, x):
        pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), b5, b3, pool]


class _PoolC(tv.InceptionC):
    def _forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            d = layer(d)
        pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False))
        return [self.branch1x1(x), b7, d, pool]


class _PoolE(tv.InceptionE):
    """``max_pool``: the last block of the TF graph max-pools its pooling branch; the first averages."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return [self.branch1x1(x), b3, d, self.branch_pool(pooled)]


class FIDInception(nn.Module):
    """Input: float images (N, 3, 299, 299) already normalised to (x - 128) / 128."""

    def __init__(self):
        super().__init__()
        base = tv.Inception3(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_6a", "Mixed_7a", "avgpool", "fc"):
            setattr(self, name, getattr(base, name))
        self.Mixed_5b = _PoolA(192, pool_features=32)
        self.Mixed_5c = _PoolA(256, pool_features=64)
        self.Mixed_5d = _PoolA(288, pool_features=64)
        self.Mixed_6b = _PoolC(768, channels_7x7=128)
        self.Mixed_6c = _PoolC(768, channels_7x7=160)
        self.Mixed_6d = _PoolC(768, channels_7x7=160)
        self.Mixed_6e = _PoolC(768, channels_7x7=192)
        self.Mixed_7b = _PoolE(1280, max_pool=False)
        self.Mixed_7c = _PoolE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pool, logits, _ = self.forward_all(x)
        return pool, logits

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pool3 features, unbiased logits, sFID spatial features (N, 2023)) from one pass: Mixed_6d's branches
        are concatenated here as its own forward does, keeping its 1x1 branch."""
        spatial = None
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b",
                     "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            if name == SPATIAL_BLOCK:
                branches = getattr(self, name)._forward(x)
                spatial = flatten_spatial(branches[0], SPATIAL_CHANNELS)
                x = torch.cat(branches, 1)
            else:
                x = getattr(self, name)(x)
        pool = torch.flatten(self.avgpool(x), 1)
        return pool, pool @ self.fc.weight.T, spatial

    def load_fid_state_dict(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Strict apart from BatchNorm's ``num_batches_tracked`` counters (absent from converted TF weights)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        unexpected = [k for k in unexpected if not k.startswith("AuxLogits.")]
        if missing or unexpected:
            raise ValueError(f"{source} is not a TF-FID Inception state dict: missing {missing[:5]} "
                             f"(+{max(0, len(missing) - 5)}), unexpected {unexpected[:5]}")


def resize_to_299(images: np.ndarray, mode: str) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW at 299 x 299 in [0, 255] (not re-quantised)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"Inception resize '{mode}': expected one of {RESIZE_MODES}")
    n, h, w, _ = images.shape
    if (h, w) == (SIZE, SIZE) or mode == "none":
        if (h, w) != (SIZE, SIZE):
            raise ValueError(f"Inception resize 'none' needs 299 x 299 images, got {h} x {w}")
        return images.transpose(0, 3, 1, 2).astype(np.float32)
    if mode in ("bilinear", "bilinear_antialias"):
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
        return F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False,
                             antialias=mode == "bilinear_antialias").numpy()
    if mode == "tf1_bilinear":
        return tf1_bilinear(torch.from_numpy(images).permute(0, 3, 1, 2).float(), SIZE, SIZE).numpy()
    out = np.empty((n, 3, SIZE, SIZE), np.float32)
    for i in range(n):
        for c in range(3):
            ch = Image.fromarray(images[i, :, :, c].astype(np.float32), mode="F")
            out[i, c] = np.asarray(ch.resize((SIZE, SIZE), resample=Image.Resampling.BICUBIC), dtype=np.float32)
    return np.clip(out, 0, 255, out=out)  # bicubic overshoots; clean-fid clips to the pixel range


def _tf1_axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 ``resize_bilinear`` (align_corners=False, half_pixel_centers=False) along one axis: source position
    i * (n_in / n_out) in float32, its floor, the next index clamped to the edge, and the fraction."""
    pos = torch.arange(n_out, dtype=torch.float32) * torch.tensor(n_in / n_out, dtype=torch.float32)
    lo = pos.long()
    return lo, (lo + 1).clamp_max(n_in - 1), pos - lo.float()


def tf1_bilinear(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Float NCHW -> NCHW at (height, width), interpolating along width first, then height (TF1's order)."""
    x0, x1, fx = _tf1_axis(x.shape[3], width)
    y0, y1, fy = _tf1_axis(x.shape[2], height)
    top, bottom = x[:, :, y0], x[:, :, y1]
    top = top[..., x0] + (top[..., x1] - top[..., x0]) * fx
    bottom = bottom[..., x0] + (bottom[..., x1] - bottom[..., x0]) * fx
    return top + (bottom - top) * fy.view(-1, 1)


def normalise(x: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(x) - 128.0) / 128.0
