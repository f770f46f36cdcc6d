"""Samplers on analytic fields whose exact answers are known: a 1D Gaussian N(0, 1) -> N(mu, sigma^2) flow.

Under SiT's convention (x_t = t x + (1 - t) e) the ODE's flow map is x_t = t mu + s(t) e with
s(t)^2 = (1 - t)^2 + t^2 sigma^2, and its velocity is v(x, t) = mu + (t sigma^2 - (1 - t)) / s(t)^2 (x - t mu).
Under MeanFlow's / SoFlow's (z_t = (1 - t) x + t e) the map is z_t = (1 - t) mu + q(t) e with
q(t)^2 = (1 - t)^2 sigma^2 + t^2, so the exact average velocity and solution function are closed forms too.
"""

import math

import numpy as np
import pytest
import torch

from genbench.gen2d.samplers import (
    Counted,
    classifier_free,
    dopri5,
    euler,
    euler_maruyama,
    heun,
    mean_flow,
    solution_steps,
)

MU, SIGMA = 1.5, 0.5


def sit_velocity(x, t):
    s2 = (1 - t) ** 2 + t**2 * SIGMA**2
    return MU + (t * SIGMA**2 - (1 - t)) / s2 * (x - t * MU)


def mf_mean(t):
    return (1 - t) * MU


def mf_scale(t):
    return math.sqrt((1 - t) ** 2 * SIGMA**2 + t**2)


def mf_solution(z, t, s):
    """Exact f(z_t, t, s) = z_s on the trajectory through z_t."""
    return mf_mean(s) + mf_scale(s) / mf_scale(t) * (z - mf_mean(t))


def mf_average_velocity(z, t, r):
    return (z - mf_solution(z, t, r)) / (t - r)


E0 = torch.linspace(-2, 2, 9, dtype=torch.float64)


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
def test_flow_ode_order_on_gaussian_flow(method, order):
    f = {"euler": euler, "heun": heun}[method]
    exact = MU + SIGMA * E0
    errs = [float((f(sit_velocity, E0.clone(), n) - exact).abs().max()) for n in (16, 32, 64, 128)]
    rates = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(rates - order) < 0.2), rates


def test_dopri5_error_follows_its_tolerance():
    """Adaptive: a tighter tolerance costs more evaluations and shrinks the (global) error with it."""
    calls, errs = [], []
    for rtol in (1e-3, 1e-5, 1e-7):
        counted = Counted(sit_velocity)
        x = dopri5(counted, E0.clone(), steps=0, atol=rtol * 1e-3, rtol=rtol)
        calls.append(counted.calls)
        errs.append(float((x - (MU + SIGMA * E0)).abs().max()))
    assert calls[0] < calls[1] < calls[2] < 200, calls
    assert errs[0] < 0.05 and errs[1] < 1e-4 and errs[2] < 1e-6, errs


def test_euler_maruyama_reaches_the_data_distribution():
    n = 20000
    gen = torch.Generator().manual_seed(0)
    noise = lambda k: torch.randn(n, generator=gen, dtype=torch.float64)  # noqa: E731
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    counted = Counted(sit_velocity)
    x = euler_maruyama(counted, x0, 200, noise_source=noise, last_step_size=0.02)
    assert counted.calls == 200
    assert abs(float(x.mean()) - MU) < 0.02
    assert abs(float(x.std()) - SIGMA) < 0.03
    # the SDE is stochastic: a different noise stream moves each sample, not the distribution
    gen.manual_seed(5)
    y = euler_maruyama(sit_velocity, x0, 200, noise_source=noise, last_step_size=0.02)
    assert float((x - y).abs().mean()) > 0.05


def test_euler_maruyama_without_diffusion_is_euler_on_its_grid():
    x0 = E0.clone()
    x = euler_maruyama(sit_velocity, x0, 400, noise_source=lambda k: torch.zeros_like(x0), diffusion_norm=0.0,
                       last_step_size=0.01)
    torch.testing.assert_close(x, MU + SIGMA * E0, atol=5e-3, rtol=0)


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_mean_flow_exact_average_velocity_is_exact_in_any_step_count(steps):
    counted = Counted(mf_average_velocity)
    x = mean_flow(counted, E0.clone(), steps)
    torch.testing.assert_close(x, MU + SIGMA * E0, atol=1e-12, rtol=0)
    assert counted.calls == steps


def test_mean_flow_one_step_closed_form_for_linear_u():
    """u(z, t, r) = a z + b: one step from t = 1 to r = 0 is x = z - (a z + b)."""
    a, b = 0.3, -0.7
    z = E0.clone()
    seen = []

    def u(zz, t, r):
        seen.append((t, r))
        return a * zz + b

    torch.testing.assert_close(mean_flow(u, z, 1), z - (a * z + b))
    assert seen == [(1.0, 0.0)]


def test_solution_steps_exact_solution_one_and_multi_step():
    n = 20000
    e = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    one = solution_steps(mf_solution, e.clone(), 1, noise=lambda k: pytest.fail("one step draws no noise"))
    torch.testing.assert_close(one, MU + SIGMA * e)
    gen = torch.Generator().manual_seed(1)
    draws = []

    def noise(k):
        draws.append(k)
        return torch.randn(n, generator=gen, dtype=torch.float64)

    counted = Counted(mf_solution)
    multi = solution_steps(counted, e.clone(), 4, noise)
    assert counted.calls == 4 and draws == [0, 1, 2]
    assert abs(float(multi.mean()) - MU) < 0.02 and abs(float(multi.std()) - SIGMA) < 0.02
    assert float((multi - one).abs().mean()) > 0.05  # re-noising makes the samples differ from the 1-step ones


def test_classifier_free_guidance_interval_and_passes():
    def fn(x, t, y, *scalars):
        return torch.where((y == 9).view(-1, 1), torch.zeros_like(x), torch.ones_like(x))

    g, passes = classifier_free(fn, torch.tensor([0, 1]), 9, cfg=3.0, interval=(0.25, 0.5))
    x = torch.zeros(2, 1)
    assert float(g(x, 0.3)[0]) == 3.0 and passes() == 2
    assert float(g(x, 0.7)[0]) == 1.0 and passes() == 3  # outside the interval: conditional branch only
    g1, passes1 = classifier_free(fn, torch.tensor([0]), 9, cfg=1.0)
    assert float(g1(torch.zeros(1, 1), 0.3)[0]) == 1.0 and passes1() == 1


def _toy_sit(seed=0):
    from genbench.gen2d.sit import SiT

    torch.manual_seed(seed)
    net = SiT(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2, num_classes=5,
              learn_sigma=False).eval()
    with torch.no_grad():
        for p in net.parameters():  # off the zero init, so the field is non-trivial and label dependent
            p.add_(0.05 * torch.randn_like(p))
    return net


def _upstream_dopri5(net, z, y, null, cfg, k, atol=1e-6, rtol=1e-3):
    """SiT's sample_ddp.py path written out: [z; z] with [y; null], forward_with_cfg (guidance on the first k
    channels, the rest from each half's own label), odeint(..., atol=[atol], rtol=[rtol]), conditional half."""
    from torchdiffeq import odeint

    yy = torch.cat([y, torch.full_like(y, null)])

    def fn(t, x):
        half = x[: len(x) // 2]
        out = net(torch.cat([half, half]), torch.ones(x.shape[0]) * t, yy)
        eps, rest = out[:, :k], out[:, k:]
        c, u = torch.split(eps, len(eps) // 2)
        he = u + cfg * (c - u)
        return torch.cat([torch.cat([he, he]), rest], dim=1)

    x = odeint(fn, torch.cat([z, z]), torch.linspace(0, 1, 2), method="dopri5", atol=[atol], rtol=[rtol])[-1]
    return x.chunk(2)[0]


@torch.no_grad()
def test_dopri5_matches_sit_upstream_by_default():
    """Regression: genbench integrated only the guided conditional batch with scalar tolerances; SiT integrates
    [z; z] (the null half steers the step size) with list tolerances (float64 error scale)."""
    from genbench.gen2d.samplers import sample_flow

    net = _toy_sit()
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 2, 4])
    ref = _upstream_dopri5(net, z, y, 5, 4.0, 3)
    got = sample_flow(net, z, y, steps=1, cfg=4.0, null_label=5, method="dopri5", cfg_channels=3)
    assert torch.equal(got.x, ref)
    assert got.forward_passes == 2 * got.nfe
    own = sample_flow(net, z, y, steps=1, cfg=4.0, null_label=5, method="dopri5", cfg_channels=3,
                      upstream_compat=False)
    assert not torch.equal(own.x, ref)  # the switch changes the adaptive steps


@torch.no_grad()
def test_dopri5_tolerances_as_lists_change_the_error_scale():
    """Upstream's one-element tolerance lists promote torchdiffeq's error scale to float64: unguided, the default
    equals odeint with list tolerances exactly."""
    from torchdiffeq import odeint

    from genbench.gen2d.samplers import sample_flow

    net = _toy_sit(3)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([1, 3])
    ref = odeint(lambda t, x: net(x, torch.ones(x.shape[0]) * t, y), z, torch.linspace(0, 1, 2), method="dopri5",
                 atol=[1e-6], rtol=[1e-3])[-1]
    got = sample_flow(net, z, y, steps=1, cfg=1.0, null_label=5, method="dopri5")
    assert torch.equal(got.x, ref)
    scalar = sample_flow(net, z, y, steps=1, cfg=1.0, null_label=5, method="dopri5", upstream_compat=False)
    assert not torch.equal(scalar.x, ref)  # scalar tolerances keep a float32 error scale: other adaptive steps
