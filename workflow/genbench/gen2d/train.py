"""Training of the mini-world generators (SiT-mini: flow matching with a null class for CFG)."""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .families import sit_from_arch
from .sit import SiT

log = logging.getLogger(__name__)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (round half to even after clamping)."""
    x = x.clamp(-1, 1).add(1).mul(127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def flow_matching_loss(net: SiT, x1: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                       class_dropout: float) -> torch.Tensor:
    """SiT linear interpolant: x_t = t x1 + (1 - t) x0, target velocity x1 - x0, t ~ U(0, 1)."""
    n = x1.shape[0]
    x0 = torch.randn(x1.shape, generator=gen)
    t = torch.rand(n, generator=gen)
    drop = torch.rand(n, generator=gen) < class_dropout
    xt = t.view(-1, 1, 1, 1) * x1 + (1 - t.view(-1, 1, 1, 1)) * x0
    v = net(xt, t, y, drop=drop)
    return (v - (x1 - x0)).pow(2).mean()


def train_sit(images: np.ndarray, labels: np.ndarray, arch: dict[str, Any], train: dict[str, Any],
              progress: bool = True) -> tuple[SiT, list[float]]:
    """Train a SiT on uint8 images; returns the EMA network and the per-step loss history."""
    torch.manual_seed(train["seed"])
    gen = torch.Generator().manual_seed(train["seed"])
    net = sit_from_arch(arch)
    if net.y_embedder.dropout_prob <= 0:
        raise ValueError("SiT-mini needs class_dropout_prob > 0 in its arch to learn the null class for CFG")
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    data = images_to_tensor(images)
    y_all = torch.from_numpy(labels.astype(np.int64))
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=train["lr"], weight_decay=train["weight_decay"])
    steps, warm = train["steps"], train["warmup_steps"]

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))) * 0.9 + 0.1

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    losses = []
    net.train()
    for step in tqdm(range(steps), desc="train sit", disable=not progress, mininterval=5):
        idx = torch.randint(0, len(data), (train["batch_size"],), generator=gen)
        loss = flow_matching_loss(net, data[idx], y_all[idx], gen, train["class_dropout"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(train["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(pn, 1 - decay)
        losses.append(float(loss.detach()))
        if step % 200 == 0:
            log.info("step %d loss %.4f", step, losses[-1])
    return ema, losses
