"""Training of the mini-world generators: one loop (AdamW, warm-up + cosine, EMA, gradient clipping) and one loss
per family, each the upstream objective at a small scale:

* ``sit``: flow matching on the linear interpolant x_t = t x + (1 - t) e (t = 0 noise), null class for CFG;
* ``meanflow``: MeanFlow's objective (t = 1 noise): u_tgt = v_g - clip(t - r, 0, 1) * du/dt with du/dt from a
  forward-mode JVP along (v_g, 1, 0), guided target v_g = w v + (1 - w - k) v_uncond + k v_cond inside the
  guidance interval, adaptive loss weight 1 / (||u - u_tgt||^2 + eps)^p; with ``guidance_input`` w is drawn per
  sample from [1, omega_max] and fed to the network (Improved MeanFlow's guidance-as-input);
* ``soflow``: SoFlow's objective (t = 1 noise): a flow-matching share of the batch on f's velocity at s = t with the
  guided target, the rest the solution-consistency loss between (t, s) and a nearby l on the same trajectory, l
  moving towards t over training (exponential schedule).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..repro import perturb_parameters
from .families import SoFlowNet, get_family_net
from .sit import SiT

log = logging.getLogger(__name__)

# (net, images, labels, generator, class_dropout, options) -> (loss to minimise, unweighted MSE to monitor)
Loss = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (round half to even after clamping)."""
    x = x.clamp(-1, 1).add(1).mul(127.5).round()
    return x.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def _bcast(t: torch.Tensor) -> torch.Tensor:
    return t.view(-1, 1, 1, 1)


def logit_normal(n: int, mean: float, std: float, gen: torch.Generator) -> torch.Tensor:
    return torch.sigmoid(torch.randn(n, generator=gen) * std + mean)


# ---------------------------------------------------------------------------------------------- losses


def flow_matching_loss(net: SiT, x1: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
                       class_dropout: float, opts: dict[str, Any] | None = None) -> torch.Tensor:
    """SiT linear interpolant: x_t = t x1 + (1 - t) x0, target velocity x1 - x0, t ~ U(0, 1)."""
    n = x1.shape[0]
    x0 = torch.randn(x1.shape, generator=gen)
    t = torch.rand(n, generator=gen)
    drop = torch.rand(n, generator=gen) < class_dropout
    xt = _bcast(t) * x1 + (1 - _bcast(t)) * x0
    v = net(xt, t, y, drop=drop)
    loss = (v - (x1 - x0)).pow(2).mean()
    return loss, loss.detach()


def meanflow_loss(net: SiT, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, class_dropout: float,
                  opts: dict[str, Any]) -> torch.Tensor:
    n = x.shape[0]
    t = logit_normal(n, opts["p_mean"], opts["p_std"], gen)
    r = logit_normal(n, opts["p_mean"], opts["p_std"], gen)
    t, r = torch.maximum(t, r), torch.minimum(t, r)
    r = torch.where(torch.arange(n) < int(n * opts["flow_ratio"]), t, r)  # a share of plain flow matching (r = t)
    e = torch.randn(x.shape, generator=gen)
    z = (1 - _bcast(t)) * x + _bcast(t) * e
    v = e - x
    omega_input = "omega" in net.extra_inputs
    if omega_input:
        omega = 1.0 + (opts["omega_max"] - 1.0) * torch.rand(n, generator=gen)
    else:
        omega = torch.full((n,), float(opts["omega"]))
    extra_w = {"omega": omega} if omega_input else {}
    kappa = float(opts["kappa"])
    lo, hi = opts["guidance_interval"]
    inside = (t >= lo) & (t <= hi)
    w = torch.where(inside, omega, torch.ones_like(omega))
    k = torch.where(inside, torch.full_like(omega, kappa), torch.zeros_like(omega))
    null = torch.full_like(y, net.num_classes)
    zero = torch.zeros_like(t)
    with torch.no_grad():
        guided = (w != 1) | (k != 0)
        v_g = v
        if bool(guided.any()):
            v_uncond = net(z, t, null, h=zero, **extra_w)
            v_cond = net(z, t, y, h=zero, **extra_w) if kappa else v_uncond
            v_g = _bcast(w) * v + _bcast(1 - w - k) * v_uncond + _bcast(k) * v_cond
    drop = torch.rand(n, generator=gen) < class_dropout
    y_in = torch.where(drop, null, y)
    v_g = torch.where(_bcast(drop), v, v_g)

    def u_fn(z_: torch.Tensor, t_: torch.Tensor, r_: torch.Tensor, y_: torch.Tensor,
             w_: dict[str, torch.Tensor]) -> torch.Tensor:
        return net(z_, t_, y_, h=t_ - r_, **w_)

    # where r = t the target is v_g itself ((t - r) du/dt = 0): the JVP is only needed on the rest of the batch
    need = t > r
    u = torch.empty_like(z)
    u_tgt = v_g.clone()
    sub = lambda m: {k: v[m] for k, v in extra_w.items()}  # noqa: E731
    flat = ~need
    if bool(flat.any()):
        u[flat] = u_fn(z[flat], t[flat], r[flat], y_in[flat], sub(flat))
    if bool(need.any()):
        m = need
        fn = lambda z_, t_, r_: u_fn(z_, t_, r_, y_in[m], sub(m))  # noqa: E731
        u_m, du_dt = torch.func.jvp(fn, (z[m], t[m], r[m]), (v_g[m], torch.ones_like(t[m]), torch.zeros_like(r[m])))
        u[m] = u_m
        u_tgt[m] = v_g[m] - _bcast((t[m] - r[m]).clamp(0, 1)) * du_dt
    u_tgt = u_tgt.detach()
    err = (u - u_tgt).pow(2).flatten(1).sum(1)
    weight = (err.detach() + opts["norm_eps"]).pow(opts["norm_p"])
    return (err / weight).mean(), err.detach().mean() / x[0].numel()


def cfg_decay(t: torch.Tensor, decay_time: float, k: float = 0.025) -> torch.Tensor:
    """SoFlow's smooth fade of the training guidance to 0 at t = 1 (pure noise), from ``decay_time`` on."""
    if decay_time >= 1.0:
        return torch.ones_like(t)
    d = ((1 - t) / (1 - decay_time)).clamp(0, 1 - 1e-6)
    return torch.where(t <= decay_time, torch.ones_like(t), 1 - torch.exp(-k * d / (1 - d)))


def soflow_loss(net: SoFlowNet, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, class_dropout: float,
                opts: dict[str, Any]) -> torch.Tensor:
    n = x.shape[0]
    cfg = float(opts["cfg_scale"])
    nv = int(opts["flow_ratio"] * n)
    null = torch.full_like(y, net.network.num_classes)
    drop = torch.rand(n, generator=gen) < class_dropout
    e = torch.randn(x.shape, generator=gen)
    (m0, s0), (m1, s1), (m2, s2) = opts["time_mean_std"]
    losses, monitor = [], []

    def velocity(z: torch.Tensor, t: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:  # d/ds f(z, t, s) at s = t
        return net.network(z, t, yy, s=torch.zeros_like(t))

    def guided_target(z: torch.Tensor, t: torch.Tensor, v: torch.Tensor, yy: torch.Tensor,
                      dd: torch.Tensor) -> torch.Tensor:
        if cfg <= 1.0:
            return v
        with torch.no_grad():
            decay = cfg_decay(t, opts["cfg_decay_time"])
            v_g = v + _bcast(decay) * (cfg - 1) * (v - velocity(z, t, torch.full_like(yy, net.network.num_classes)))
        return torch.where(_bcast(dd), v, v_g)

    if nv:
        xs, ys, dd, es = x[:nv], y[:nv], drop[:nv], e[:nv]
        t = logit_normal(nv, m0, s0, gen)
        z = (1 - _bcast(t)) * xs + _bcast(t) * es
        v = es - xs
        target = guided_target(z, t, v, ys, dd)
        pred = velocity(z, t, torch.where(dd, null[:nv], ys))
        err = (pred - target).pow(2).flatten(1).mean(1)
        losses.append((err / (err.detach() + opts["norm_eps"]).pow(opts["norm_p"])).sum())
        monitor.append(err.detach().sum())
    nc = n - nv
    if nc:
        xs, ys, dd, es = x[nv:], y[nv:], drop[nv:], e[nv:]
        s = logit_normal(nc, m1, s1, gen)
        t = logit_normal(nc, m2, s2, gen).clamp(min=1e-4)
        s = torch.minimum(s, t - 1e-4)
        frac = opts["progress"]
        ratio = opts["l_init_ratio"] * (opts["l_end_ratio"] / opts["l_init_ratio"]) ** frac
        l_ = torch.minimum(t + (s - t) * ratio, t - 1e-4)
        z = (1 - _bcast(t)) * xs + _bcast(t) * es
        v = es - xs
        yin = torch.where(dd, null[nv:], ys)
        v_t = guided_target(z, t, v, ys, dd)
        f_t = net.solution(z, t, s, yin)
        with torch.no_grad():
            z_l = z + v_t * _bcast(l_ - t)
            f_l = net.solution(z_l, l_, s, yin)
        dq = (f_t - f_l) / _bcast(t - l_)
        err = dq.pow(2).flatten(1).mean(1)
        losses.append((err / (err.detach() + opts["norm_eps"]).pow(opts["norm_p"])).sum())
        monitor.append(err.detach().sum())
    return sum(losses) / n, sum(monitor) / n


LOSSES: dict[str, tuple[Loss, dict[str, Any]]] = {
    "sit": (flow_matching_loss, {}),
    # MeanFlow's ImageNet defaults (omega 1 = no guidance, kappa 0.5 as upstream when guiding)
    "meanflow": (meanflow_loss, {"p_mean": -0.4, "p_std": 1.0, "flow_ratio": 0.75, "omega": 1.0, "omega_max": 4.0,
                                 "kappa": 0.0, "guidance_interval": [0.0, 1.0], "norm_p": 1.0, "norm_eps": 0.01}),
    # SoFlow's imagenet.yaml (cfg_scale 3.0 there; the mini default is lower)
    "soflow": (soflow_loss, {"flow_ratio": 0.75, "time_mean_std": [[-0.2, 1.0], [-1.0, 0.8], [0.2, 0.8]],
                             "cfg_scale": 1.5, "cfg_decay_time": 0.8, "l_init_ratio": 0.1, "l_end_ratio": 0.002,
                             "norm_p": 1.0, "norm_eps": 0.01}),
}


# ---------------------------------------------------------------------------------------------- loop


def train_generator(family: str, images: np.ndarray, labels: np.ndarray, arch: dict[str, Any],
                    train: dict[str, Any], progress: bool = True) -> tuple[nn.Module, list[float]]:
    """Train a mini-world generator of ``family`` on uint8 images; returns the EMA network and the history of the
    unweighted per-element MSE (the adaptive weights of MeanFlow and SoFlow make the minimised loss itself ~1)."""
    if family not in LOSSES:
        raise NotImplementedError(f"training is available for the families {sorted(LOSSES)}, not '{family}'")
    loss_fn, defaults = LOSSES[family]
    unknown = set(train.get("objective", {})) - set(defaults)
    if unknown:
        raise ValueError(f"train.objective: unknown key(s) {sorted(unknown)} for family {family} "
                         f"(known: {sorted(defaults)})")
    opts = {**defaults, **train.get("objective", {})}
    torch.manual_seed(train["seed"])
    gen = torch.Generator().manual_seed(train["seed"])
    net = get_family_net(family, arch)
    perturb_parameters(net, train.get("init_perturbation", 0.0), seed=train["seed"] + 1)
    backbone = net.network if isinstance(net, SoFlowNet) else net
    if backbone.y_embedder.dropout_prob <= 0:
        raise ValueError(f"{family}: the arch needs class_dropout_prob > 0 to learn the null class for guidance")
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
    for step in tqdm(range(steps), desc=f"train {family}", disable=not progress, mininterval=5):
        idx = torch.randint(0, len(data), (train["batch_size"],), generator=gen)
        opts["progress"] = step / max(1, steps - 1)
        loss, mse = loss_fn(net, data[idx], y_all[idx], gen, train["class_dropout"], opts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(train["ema_decay"], (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pn in zip(ema.parameters(), net.parameters(), strict=True):
                pe.lerp_(pn, 1 - decay)
        losses.append(float(mse))
        if step % 200 == 0:
            log.info("step %d loss %.4f", step, losses[-1])
    return ema, losses
