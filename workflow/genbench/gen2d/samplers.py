"""Samplers of every 2D family, generic over a network, each counting its function evaluations (NFE).

Time conventions follow each family's upstream code (REFERENCE.md):

* flow ODE / SDE (SiT): ``x_t = t * x + (1 - t) * noise``, t = 0 noise -> t = 1 data, velocity ``v(x, t)``;
* MeanFlow / Improved MeanFlow: ``z_t = (1 - t) * x + t * e``, t = 1 noise, average velocity ``u(z, t, r)``,
  step ``z_r = z_t - (t - r) * u``;
* SoFlow: ``x_t = (1 - t) * x + t * e``, solution function ``f(x_t, t, s)``; one step ``f(e, 1, 0)``; several steps
  jump to s = 0 and re-noise to the next t.

``nfe`` counts evaluations of the (guided) model function per sample; with classifier-free guidance an evaluation
costs two network forward passes (conditional + unconditional), counted separately as ``forward_passes``. A
``guidance_interval`` is given in the family's own time convention, as upstream configs give it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Velocity = Callable[[torch.Tensor, float], torch.Tensor]
NoiseSource = Callable[[int], torch.Tensor]


@dataclass
class SampleResult:
    x: torch.Tensor
    nfe: int  # model-function evaluations per sample
    forward_passes: int  # network forward passes per sample (2 per guided evaluation)


class Counted:
    """Wraps a function of (x, t, ...) and counts its calls."""

    def __init__(self, fn: Callable[..., torch.Tensor]):
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Any) -> torch.Tensor:
        self.calls += 1
        return self.fn(*args)


def batch_scalar(x: torch.Tensor, value: float) -> torch.Tensor:
    """A scalar condition (t, h, omega, ...) as the (N,) tensor networks take, in ``x``'s dtype and device."""
    return torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)


# ---------------------------------------------------------------------------------------------- flow ODE / SDE


def euler(velocity: Velocity, x: torch.Tensor, steps: int, **_: Any) -> torch.Tensor:
    dt = 1.0 / steps
    for i in range(steps):
        x = x + dt * velocity(x, i * dt)
    return x


def heun(velocity: Velocity, x: torch.Tensor, steps: int, **_: Any) -> torch.Tensor:
    """Explicit trapezoid (Heun's 2nd order) on every interval, the last included: NFE = 2 * steps."""
    dt = 1.0 / steps
    for i in range(steps):
        t = i * dt
        v1 = velocity(x, t)
        x_pred = x + dt * v1
        v2 = velocity(x_pred, t + dt)
        x = x + 0.5 * dt * (v1 + v2)
    return x


def dopri5(velocity: Velocity, x: torch.Tensor, steps: int, *, atol: float = 1e-6, rtol: float = 1e-3,
           upstream_compat: bool = True, **_: Any) -> torch.Tensor:
    """Adaptive Dormand-Prince 5(4) from t = 0 to 1 (torchdiffeq, as SiT's ODE mode); ``steps`` is unused.

    ``upstream_compat`` (default) passes the tolerances as one-element lists as SiT's ``transport/integrators.py``
    does: torchdiffeq then holds them as shape-(1,) float64 tensors, which promote its error scale
    ``atol + rtol * |y|`` to float64 (a 0-d tensor does not), so the accepted steps are upstream's. Off, the
    tolerances are scalars and the error scale is computed in the state's dtype.

    The step size is chosen for the whole batch (as upstream), so a sample depends on its batch; generation fixes
    the batches globally (genbench.gen2d.generate), so sharding still does not change any image."""
    from torchdiffeq import odeint

    def f(t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return velocity(state, float(t))

    tol: dict[str, Any] = {"atol": [atol], "rtol": [rtol]} if upstream_compat else {"atol": atol, "rtol": rtol}
    ts = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
    return odeint(f, x, ts, method="dopri5", **tol)[-1]


def euler_maruyama(velocity: Velocity, x: torch.Tensor, steps: int, *, noise_source: NoiseSource,
                   diffusion_norm: float = 1.0, last_step_size: float = 0.04, **_: Any) -> torch.Tensor:
    """SiT's SDE sampler for the linear path: dx = [v + w s] dt + sqrt(2 w) dW with w(t) = norm * (1 - t) and the
    score from the velocity, s = (t v - x) / (1 - t); ``steps - 1`` Euler-Maruyama steps on linspace(0, 1 - h,
    steps), then one deterministic (mean) step of size h = ``last_step_size``: NFE = steps."""
    if steps < 2:
        raise ValueError(f"the SDE sampler needs steps >= 2 (steps - 1 stochastic steps + the final mean step), "
                         f"got {steps}")
    if not 0 < last_step_size < 1:
        raise ValueError(f"last_step_size must be in (0, 1), got {last_step_size}")
    t1 = 1.0 - last_step_size

    def drift(x: torch.Tensor, t: float) -> torch.Tensor:
        v = velocity(x, t)
        w = diffusion_norm * (1.0 - t)
        score = (t * v - x) / (1.0 - t)
        return v + w * score

    ts = torch.linspace(0.0, t1, steps, dtype=torch.float64).tolist()
    for i in range(steps - 1):
        t, dt = ts[i], ts[i + 1] - ts[i]
        w = diffusion_norm * (1.0 - t)
        x = x + drift(x, t) * dt + math.sqrt(2.0 * w * dt) * noise_source(i)
    return x + drift(x, t1) * last_step_size


FLOW_SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": euler,
    "heun": heun,
    "dopri5": dopri5,
    "euler_maruyama": euler_maruyama,
}


# ---------------------------------------------------------------------------------------------- guidance


def classifier_free(fn: Callable[..., torch.Tensor], y: torch.Tensor, null_label: int, cfg: float,
                    cfg_channels: int | None = None, interval: tuple[float, float] | None = None,
                    ) -> tuple[Callable[..., torch.Tensor], Callable[[], int]]:
    """Wrap a class-conditional model function ``fn(x, t, y, *scalars)`` into a guided ``g(x, t, *scalars)``.

    g = f_uncond + cfg * (f_cond - f_uncond) on the first ``cfg_channels`` channels (all if None), for t inside the
    guidance ``interval`` (everywhere if None). cfg == 1 evaluates the conditional branch only, so it is exactly the
    unguided model. Returns the function and a counter of forward passes per sample.
    """
    passes = [0]
    y_null = torch.full_like(y, null_label)

    def g(x: torch.Tensor, t: float, *scalars: float) -> torch.Tensor:
        active = cfg != 1.0 and (interval is None or interval[0] <= t <= interval[1])
        if not active:
            passes[0] += 1
            return fn(x, t, y, *scalars)
        passes[0] += 2
        out = fn(torch.cat([x, x]), t, torch.cat([y, y_null]), *scalars)
        cond, uncond = out.chunk(2)
        k = cond.shape[1] if cfg_channels is None else cfg_channels
        guided = uncond[:, :k] + cfg * (cond[:, :k] - uncond[:, :k])
        return torch.cat([guided, cond[:, k:]], dim=1)

    return g, lambda: passes[0]


def guided_velocity(net: Callable[..., torch.Tensor], y: torch.Tensor, null_label: int, cfg: float,
                    cfg_channels: int | None = None,
                    interval: tuple[float, float] | None = None) -> tuple[Velocity, Callable[[], int]]:
    """A class-conditional velocity network ``net(x, t_tensor, y)`` as a guided velocity ``v(x, t)``."""

    def fn(x: torch.Tensor, t: float, yy: torch.Tensor) -> torch.Tensor:
        return net(x, batch_scalar(x, t), yy)

    return classifier_free(fn, y, null_label, cfg, cfg_channels, interval)


def doubled_guided_velocity(net: Callable[..., torch.Tensor], y: torch.Tensor, null_label: int, cfg: float,
                            cfg_channels: int | None = None, interval: tuple[float, float] | None = None,
                            ) -> tuple[Velocity, Callable[[], int]]:
    """SiT's ``forward_with_cfg`` on the doubled state ``[x_cond; x_null]``: the network sees the conditional half
    twice, with labels ``[y; null]``; both halves get the guided first ``cfg_channels`` channels and each keeps its
    own label's remaining channels, so the null half's state drifts apart there and, though never fed back to the
    network, enters the solver's error norm. Outside the guidance ``interval`` each half gets its own label's
    output. Returns the velocity of the doubled state and a counter of forward passes per sample (2 per call)."""
    passes = [0]
    yy = torch.cat([y, torch.full_like(y, null_label)])

    def v(x: torch.Tensor, t: float) -> torch.Tensor:
        passes[0] += 2
        half = x[: x.shape[0] // 2]
        out = net(torch.cat([half, half]), batch_scalar(x, t), yy)
        if interval is not None and not interval[0] <= t <= interval[1]:
            return out
        cond, uncond = out.chunk(2)
        k = cond.shape[1] if cfg_channels is None else cfg_channels
        guided = uncond[:, :k] + cfg * (cond[:, :k] - uncond[:, :k])
        return torch.cat([torch.cat([guided, guided]), out[:, k:]], dim=1)

    return v, lambda: passes[0]


def sample_flow(net: Callable[..., torch.Tensor], noise: torch.Tensor, y: torch.Tensor, *, steps: int, cfg: float,
                null_label: int, method: str = "euler", cfg_channels: int | None = None,
                interval: tuple[float, float] | None = None, **options: Any) -> SampleResult:
    """Integrate a (guided) flow network from noise (t = 0) to data (t = 1) with a FLOW_SAMPLERS method.

    dopri5 with ``upstream_compat`` (the default) and guidance on integrates the doubled batch ``[z; z]`` as SiT's
    ``sample.py`` / ``sample_ddp.py`` do (``using_cfg = cfg_scale > 1`` there; cfg != 1 here), so the null half
    enters the adaptive step-size control, and returns the conditional half."""
    if method not in FLOW_SAMPLERS:
        raise ValueError(f"unknown flow sampler '{method}' (available: {', '.join(FLOW_SAMPLERS)})")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if method == "dopri5" and options.get("upstream_compat", True) and cfg != 1.0:
        v, passes = doubled_guided_velocity(net, y, null_label, cfg, cfg_channels, interval)
        counted = Counted(v)
        x = dopri5(counted, torch.cat([noise, noise]), steps, **options)[: noise.shape[0]]
        return SampleResult(x=x, nfe=counted.calls, forward_passes=passes())
    v, passes = guided_velocity(net, y, null_label, cfg, cfg_channels, interval)
    counted = Counted(v)
    x = FLOW_SAMPLERS[method](counted, noise, steps, **options)
    return SampleResult(x=x, nfe=counted.calls, forward_passes=passes())


# ---------------------------------------------------------------------------------------------- one-step families


def mean_flow(u: Callable[[torch.Tensor, float, float], torch.Tensor], z: torch.Tensor,
              steps: int) -> torch.Tensor:
    """MeanFlow sampling: t = linspace(1, 0, steps + 1), z_r = z_t - (t - r) * u(z_t, t, r); NFE = steps."""
    ts = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()
    for t, r in zip(ts[:-1], ts[1:], strict=True):
        z = z - (t - r) * u(z, t, r)
    return z


def solution_steps(f: Callable[[torch.Tensor, float, float], torch.Tensor], x: torch.Tensor, steps: int,
                   noise: NoiseSource) -> torch.Tensor:
    """SoFlow sampling: times 1 - i/steps; at each time jump to s = 0 with f(x, t, 0), then (except after the last)
    re-noise to the next time, x = (1 - t') x0 + t' e with fresh noise e; NFE = steps."""
    ts = [1.0 - i / steps for i in range(steps)]
    for i, t in enumerate(ts):
        x0 = f(x, t, 0.0)
        if i + 1 == len(ts):
            return x0
        t_next = ts[i + 1]
        x = (1.0 - t_next) * x0 + t_next * noise(i)
    raise AssertionError("unreachable")
