"""Flow-ODE samplers in SiT's time convention (t = 0 noise -> t = 1 data), with classifier-free guidance.

A sampler integrates dx/dt = v(x, t) on a uniform grid of ``steps`` intervals and reports the number of
function evaluations (NFE) of the guided velocity per sample. With guidance each evaluation costs two network
forward passes (conditional + unconditional); that count is reported separately as ``forward_passes``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Velocity = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass
class SampleResult:
    x: torch.Tensor
    nfe: int  # guided-velocity evaluations per sample
    forward_passes: int  # network forward passes per sample (2 per guided evaluation)


def euler(velocity: Velocity, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, int]:
    dt = 1.0 / steps
    for i in range(steps):
        x = x + dt * velocity(x, i * dt)
    return x, steps


def heun(velocity: Velocity, x: torch.Tensor, steps: int) -> tuple[torch.Tensor, int]:
    """Explicit trapezoid (Heun's 2nd order) on every interval, the last included: NFE = 2 * steps."""
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        v1 = velocity(x, t)
        x_pred = x + dt * v1
        v2 = velocity(x_pred, t + dt)
        x = x + 0.5 * dt * (v1 + v2)
    return x, 2 * steps


SAMPLERS: dict[str, Callable[[Velocity, torch.Tensor, int], tuple[torch.Tensor, int]]] = {
    "euler": euler,
    "heun": heun,
}


def guided_velocity(net: Callable[..., torch.Tensor], y: torch.Tensor, null_label: int, cfg: float,
                    cfg_channels: int | None = None,
                    interval: tuple[float, float] | None = None) -> tuple[Velocity, Callable[[], int]]:
    """Wrap a class-conditional network ``net(x, t, y)`` into a guided velocity ``v(x, t)``.

    v = v_uncond + cfg * (v_cond - v_uncond) on the first ``cfg_channels`` channels (all if None), inside the
    guidance ``interval`` of t (everywhere if None). cfg == 1 evaluates the conditional branch only, so it is
    exactly the unguided model. Returns the velocity and a counter of forward passes per sample.
    """
    passes = [0]
    y_null = torch.full_like(y, null_label)

    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        tt = torch.full((x.shape[0],), float(t), dtype=x.dtype)
        active = cfg != 1.0 and (interval is None or interval[0] <= t <= interval[1])
        if not active:
            passes[0] += 1
            return net(x, tt, y)
        passes[0] += 2
        out = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, y_null]))
        cond, uncond = out.chunk(2)
        k = cond.shape[1] if cfg_channels is None else cfg_channels
        guided = uncond[:, :k] + cfg * (cond[:, :k] - uncond[:, :k])
        return torch.cat([guided, cond[:, k:]], dim=1)

    return v, lambda: passes[0]


def sample_flow(net: Callable[..., torch.Tensor], noise: torch.Tensor, y: torch.Tensor, *, steps: int, cfg: float,
                null_label: int, method: str = "euler", cfg_channels: int | None = None,
                interval: tuple[float, float] | None = None) -> SampleResult:
    if method not in SAMPLERS:
        raise ValueError(f"unknown flow sampler '{method}' (available: {', '.join(SAMPLERS)})")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    v, count = guided_velocity(net, y, null_label, cfg, cfg_channels, interval)
    x, nfe = SAMPLERS[method](v, noise, steps)
    return SampleResult(x=x, nfe=nfe, forward_passes=count())
