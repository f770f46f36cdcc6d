"""The mini-world classifier: a small CNN trained on the mini-world's train split.

It stands in for the Inception network of FID/IS: its 64-d global-average-pooled activations play the role of
Inception's pool3 features (FID, KID) and its class logits the role of Inception's logits (IS). Its sFID features
(:meth:`MiniClassifier.forward_all`) play the role of Inception's ``mixed_6/conv``: the output of its third block
(conv, BatchNorm, ReLU: the last layer at the second-to-last resolution, H/2 x W/2, as Mixed_6d's 17 x 17 is the
stage before Inception's last, 8 x 8), its first 2 of 64 channels (sFID takes 7 of 192) flattened in NHWC order:
8 * 8 * 2 = 128 values at the mini-world's 16 x 16, fewer than the 400 images of a mini-world set as 2023 is fewer
than the 50k of paper scale (4 channels, 256-d, made each cell's sfid bootstrap 5x slower). The architecture is
unchanged: the features are read off a layer the pooled features already pass through.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..repro import perturb_parameters, training_dtype
from .spatial import flatten_spatial

log = logging.getLogger(__name__)


class MiniClassifier(nn.Module):
    SPATIAL_LAYER = 2  # index in ``body`` of the block whose output gives the sFID features
    SPATIAL_CHANNELS = 2

    def __init__(self, num_classes: int, width: int = 32, feature_dim: int = 64):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.body = nn.Sequential(block(3, width, 1), block(width, width, 2), block(width, 2 * width, 1),
                                  block(2 * width, 2 * width, 2), block(2 * width, feature_dim, 1))
        self.head = nn.Linear(feature_dim, num_classes)
        self.num_classes = num_classes
        self.feature_dim = feature_dim

    @staticmethod
    def preprocess(images: np.ndarray) -> torch.Tensor:
        """uint8 NHWC at the native mini-world size -> float NCHW, (x - 127.5) / 127.5. No resize."""
        return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().sub(127.5).div(127.5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.head(f)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(features, logits, sFID spatial features) from one pass; the first two equal :meth:`forward`'s."""
        spatial = None
        for i, block in enumerate(self.body):
            x = block(x)
            if i == self.SPATIAL_LAYER:
                spatial = flatten_spatial(x, self.SPATIAL_CHANNELS)
        f = x.mean(dim=(2, 3))
        return f, self.head(f), spatial


AUGMENT_KEYS = ("brightness", "contrast", "saturation", "invert", "noise", "scale", "shift")


def augment_batch(x: torch.Tensor, spec: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
    """Per-image random photometric and geometric jitter of a preprocessed batch (NCHW in [-1, 1], any float dtype),
    drawn from ``gen`` (so a seeded training run stays bit-identical). ``spec`` entries, each optional:

    - ``brightness: b``: add U(-b, b) (in the [-1, 1] units of the preprocessing);
    - ``contrast: c``: scale deviations from the image's mean by U(1 - c, 1 + c);
    - ``saturation: s``: blend with the image's grey (channel mean) by U(1 - s, 1 + s);
    - ``invert: p``: with probability p, the negative image (255 - pixel): both polarities, dark shapes on bright
      backgrounds as well as bright on dark;
    - ``noise: s``: add Gaussian pixel noise of a standard deviation drawn from U(0, s) per image;
    - ``scale: [lo, hi]``: zoom the content by U(lo, hi) (< 1 shrinks the shape), edges extended;
    - ``shift: t``: translate by U(-t, t) of the image size in x and y.

    Off in the shipped configs: benchmarks/ood_fid.py trains stand-ins with it as candidate fixes of the OOD-FID
    inversion, and none removed it (docs/metrics.md, "OOD-FID inversion")."""
    unknown = set(spec) - set(AUGMENT_KEYS)
    if unknown:
        raise ValueError(f"classifier train.augment: unknown key(s) {sorted(unknown)}; known: "
                         f"{', '.join(AUGMENT_KEYS)}")
    n, dt = len(x), x.dtype

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return (torch.rand(n, *shape, generator=gen, dtype=torch.float64) * (hi - lo) + lo).to(dt)

    if spec.get("invert"):
        x = torch.where(torch.rand(n, 1, 1, 1, generator=gen, dtype=torch.float64) < spec["invert"], -x, x)
    if spec.get("saturation"):
        grey = x.mean(1, keepdim=True)
        x = grey + (x - grey) * u(1 - spec["saturation"], 1 + spec["saturation"], 1, 1, 1)
    if spec.get("contrast"):
        mean = x.mean((1, 2, 3), keepdim=True)
        x = mean + (x - mean) * u(1 - spec["contrast"], 1 + spec["contrast"], 1, 1, 1)
    if spec.get("brightness"):
        x = x + u(-spec["brightness"], spec["brightness"], 1, 1, 1)
    if spec.get("scale") or spec.get("shift"):
        lo, hi = spec.get("scale", (1.0, 1.0))
        zoom = u(lo, hi)
        t = spec.get("shift", 0.0)
        theta = torch.zeros(n, 2, 3, dtype=dt)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / zoom  # the sampling grid's scale is the inverse of the zoom
        theta[:, :, 2] = u(-2 * t, 2 * t, 2)  # grid units: the image spans [-1, 1]
        grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        x = nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if spec.get("noise"):
        sigma = u(0.0, spec["noise"], 1, 1, 1)
        x = x + sigma * torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dt)
    return x.clamp(-1.0, 1.0)


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int, train: dict[str, Any],
                     progress: bool = True) -> tuple[MiniClassifier, dict[str, float]]:
    """Train with light augmentation (flips, 90-degree rotations; ``train['augment']`` adds the photometric and
    geometric jitter of :func:`augment_batch`) in ``train['precision']``; returns the model (in that precision)
    and the train accuracy. ``train['init_perturbation']`` perturbs the initial weights (the
    cross-machine test's emulation of another machine)."""
    dtype = training_dtype(train, default="float64")
    torch.manual_seed(train["seed"])
    gen = torch.Generator().manual_seed(train["seed"])
    net = MiniClassifier(num_classes).to(dtype)
    perturb_parameters(net, train.get("init_perturbation", 0.0), seed=train["seed"] + 1)
    x_all = MiniClassifier.preprocess(images).to(dtype)
    y_all = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.AdamW(net.parameters(), lr=train["lr"], weight_decay=1e-4)
    bs, n = train["batch_size"], len(x_all)
    steps = train["epochs"] * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train["lr"], total_steps=steps)
    augment = train.get("augment") or {}
    net.train()
    for epoch in range(train["epochs"]):
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for start in tqdm(range(0, n, bs), desc=f"classifier epoch {epoch}", disable=not progress, mininterval=5):
            idx = perm[start:start + bs]
            x = x_all[idx]
            k = int(torch.randint(0, 4, (1,), generator=gen))
            x = torch.rot90(x, k, dims=(2, 3))
            if torch.rand(1, generator=gen) < 0.5:
                x = x.flip(3)
            if augment:
                x = augment_batch(x, augment, gen)
            _, logits = net(x)
            loss = nn.functional.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        log.info("classifier epoch %d loss %.4f", epoch, total / n)
    net.eval()
    with torch.no_grad():
        acc = float((net(x_all)[1].argmax(1) == y_all).float().mean())
    return net, {"train_accuracy": acc, "final_loss": total / n}
