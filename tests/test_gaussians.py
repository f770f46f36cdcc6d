"""The torch Gaussian-splat renderer (genbench.recon3d.gaussians) against analytic projections, a brute-force
float64 compositor, finite differences, and a hand-written 3DGS PLY."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.recon3d import gaussians as gs
from genbench.recon3d.render import View, camera_rays

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def axis_quat(axis: tuple[float, float, float], angle: float) -> list[float]:
    a = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    return [math.cos(angle / 2), *(math.sin(angle / 2) * a)]


def one(mean, scale, quat=(1.0, 0, 0, 0), opacity=0.8, colour=(1.0, 0.5, 0.25)) -> gs.Gaussians:
    t = lambda x: torch.tensor([x], dtype=F64)  # noqa: E731
    return gs.Gaussians(t(mean), t(scale), t(quat), t(opacity), t(colour))


def moments(alpha: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Centre (u, v) and 2x2 covariance of an alpha image read as a density on pixel centres."""
    a = alpha.detach().numpy()
    v, u = np.meshgrid(np.arange(a.shape[0]) + 0.5, np.arange(a.shape[1]) + 0.5, indexing="ij")
    w = a / a.sum()
    mu = np.array([(w * u).sum(), (w * v).sum()])
    du, dv = u - mu[0], v - mu[1]
    cov = np.array([[(w * du * du).sum(), (w * du * dv).sum()], [(w * du * dv).sum(), (w * dv * dv).sum()]])
    return mu, cov


# (a) one isotropic Gaussian facing the camera ---------------------------------------------------------------------

def test_isotropic_gaussian_matches_pinhole_projection():
    size, f, sigma, z = 65, 60.0, 0.15, 3.0
    cam = gs.Camera(torch.eye(4, dtype=F64), f, f, size / 2, size / 2, size, size)
    g = one((0.0, 0.0, -z), (sigma,) * 3, opacity=0.7)
    proj = gs.project(g.means, g.scales, g.rotations, cam)
    expect = (f * sigma / z) ** 2 + 0.3
    assert np.allclose(proj.cov2d[0].numpy(), expect * np.eye(2), atol=1e-12)
    assert np.allclose(proj.means2d[0].numpy(), [size / 2, size / 2])
    out = gs.render(g, cam, alpha_min=0.0)
    # the centre lies on the centre of pixel (32, 32): the peak alpha is the opacity
    assert out.alpha.max().item() == pytest.approx(0.7, abs=1e-12)
    assert out.alpha[32, 32].item() == pytest.approx(0.7, abs=1e-12)
    # the alpha image's second moments are the projected covariance (a 3-px std footprint, well sampled)
    mu, cov = moments(out.alpha)
    assert np.allclose(mu, [size / 2, size / 2], atol=1e-9)
    assert np.allclose(cov, expect * np.eye(2), rtol=2e-3, atol=1e-3)
    # colour of a single splat on black: colour x alpha
    assert torch.allclose(out.rgb, out.alpha[..., None] * g.colours[0])


def test_off_axis_anisotropic_projection_matches_sampled_points():
    """EWA's affine approximation vs the exact perspective image of samples from a small rotated 3D Gaussian,
    seen through a rotated, translated camera (first-order agreement: sigma / depth = 1 %)."""
    rng = np.random.default_rng(0)
    ang = 0.4
    rot = np.array([[math.cos(ang), 0, math.sin(ang)], [0, 1, 0], [-math.sin(ang), 0, math.cos(ang)]])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rot, [0.2, -0.1, -0.5]
    cam = gs.Camera(torch.tensor(w2c), 80.0, 70.0, 30.0, 34.0, 64, 64)
    mean, scale, quat = (0.9, 0.5, -3.5), (0.04, 0.015, 0.025), axis_quat((1, 2, 0.5), 0.9)
    g = one(mean, scale, quat)
    proj = gs.project(g.means, g.scales, g.rotations, cam, lowpass=0.0)
    sig = gs.covariance3d(g.scales, g.rotations)[0].numpy()
    pts = rng.multivariate_normal(mean, sig, size=400_000)
    cam_pts = pts @ rot.T + w2c[:3, 3]
    d = -cam_pts[:, 2]
    uv = np.stack([30.0 + 80.0 * cam_pts[:, 0] / d, 34.0 - 70.0 * cam_pts[:, 1] / d], -1)
    ref_cov = np.cov(uv.T)
    assert np.allclose(proj.means2d[0].numpy(), uv.mean(0), atol=0.02 * math.sqrt(ref_cov.trace()))
    assert np.allclose(proj.cov2d[0].numpy(), ref_cov, rtol=0.03, atol=0.03 * ref_cov.trace())
    assert proj.depths[0].item() == pytest.approx(-(rot @ mean + w2c[:3, 3])[2])


def test_camera_from_view_agrees_with_mesh_renderer_rays():
    """A tiny splat on the ray of pixel (r, c) of render.camera_rays peaks at pixel (r, c)."""
    view, size = View(yaw=0.7, pitch=0.3, radius=2.0, fov=math.radians(40)), 24
    cam = gs.Camera.from_view(view, size, dtype=F64)
    origins, dirs = camera_rays(view, size)
    for r, c in [(3, 17), (20, 5), (12, 12)]:
        p = origins[r * size + c] + 1.7 * dirs[r * size + c]
        out = gs.render(one(tuple(p), (0.002,) * 3, opacity=0.9), cam)
        assert np.unravel_index(out.alpha.argmax().item(), (size, size)) == (r, c)


# (b) compositing order -----------------------------------------------------------------------------------------

def random_scene(n: int, seed: int, dtype=F64) -> gs.Gaussians:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g, dtype=dtype)  # noqa: E731
    means = torch.stack([(r(n) - 0.5) * 0.6, (r(n) - 0.5) * 0.6, -2.0 - 2.0 * r(n)], -1)
    return gs.Gaussians(means, 0.08 + 0.2 * r(n, 3), torch.randn(n, 4, generator=g, dtype=dtype),
                        0.3 + 0.65 * r(n), r(n, 3))


def brute_force(g: gs.Gaussians, cam: gs.Camera, bg, alpha_min=1 / 255, alpha_max=0.99,
                reverse=False) -> tuple[np.ndarray, ...]:
    """Per pixel: every splat's alpha from its projected conic, sorted by depth, composited front to back (back to
    front with ``reverse``); also the number of splats with alpha > 0.1 per pixel."""
    proj = gs.project(g.means, g.scales, g.rotations, cam)
    m2, cov, dep = (x.detach().numpy().astype(np.float64) for x in proj)
    opa, col = g.opacities.detach().numpy(), g.colours.detach().numpy()
    rgb = np.zeros((cam.height, cam.width, 3))
    alpha = np.zeros((cam.height, cam.width))
    depth = np.zeros((cam.height, cam.width))
    count = np.zeros((cam.height, cam.width), dtype=int)
    for r in range(cam.height):
        for c in range(cam.width):
            p = np.array([c + 0.5, r + 0.5])
            splats = []
            for i in range(len(opa)):
                d = p - m2[i]
                a = min(alpha_max, opa[i] * math.exp(-0.5 * d @ np.linalg.solve(cov[i], d)))
                if a >= alpha_min:
                    splats.append((dep[i], a, col[i]))
            count[r, c] = sum(s[1] > 0.1 for s in splats)
            trans, acc, accd = 1.0, np.zeros(3), 0.0
            for z, a, cl in sorted(splats, key=lambda s: s[0], reverse=reverse):
                acc += trans * a * cl
                accd += trans * a * z
                trans *= 1 - a
            rgb[r, c] = acc + trans * np.asarray(bg)
            alpha[r, c] = 1 - trans
            depth[r, c] = accd / (1 - trans) if trans < 1 else 0.0
    return rgb, alpha, depth, count


def test_compositing_matches_brute_force_reference_in_any_input_order():
    cam = gs.fov_camera(14, 50.0, dtype=F64)
    cam = gs.Camera(cam.w2c, cam.fx, cam.fy * 1.1, 6.3, 7.6, 14, 12)  # non-square, off-centre principal point
    g = random_scene(7, seed=1)
    bg = (0.2, 0.9, 0.4)
    ref_rgb, ref_alpha, ref_depth, count = brute_force(g, cam, bg)
    assert count.max() >= 4 and (count >= 2).mean() > 0.1  # the splats really overlap
    for perm_seed in range(3):
        perm = torch.randperm(len(g), generator=torch.Generator().manual_seed(perm_seed))
        gp = gs.Gaussians(*(getattr(g, k)[perm] for k in ("means", "scales", "rotations", "opacities", "colours")))
        out = gs.render(gp, cam, torch.tensor(bg, dtype=F64), with_depth=True, chunk=37)
        assert np.allclose(out.rgb.numpy(), ref_rgb, atol=1e-12)
        assert np.allclose(out.alpha.numpy(), ref_alpha, atol=1e-12)
        assert np.allclose(out.depth.numpy(), ref_depth, atol=1e-10)
    # the order matters: compositing back to front gives a visibly different image
    back_rgb = brute_force(g, cam, bg, reverse=True)[0]
    assert np.abs(back_rgb - ref_rgb).max() > 0.1


def test_front_splat_occludes_back_splat():
    cam = gs.fov_camera(9, 40.0, dtype=F64)
    red = one((0, 0, -2.0), (0.5,) * 3, opacity=0.99, colour=(1, 0, 0))
    blue = one((0, 0, -4.0), (0.5,) * 3, opacity=0.99, colour=(0, 0, 1))
    both = gs.Gaussians(*(torch.cat([getattr(blue, k), getattr(red, k)]) for k in
                          ("means", "scales", "rotations", "opacities", "colours")))
    centre = gs.render(both, cam, (1, 1, 1)).rgb[4, 4]
    # front red: 0.99 of red, then blue through 1 % transmittance, then the white background through 0.01^2
    assert centre.numpy() == pytest.approx([0.99 + 1e-4, 1e-4, 0.01 * 0.99 + 1e-4], abs=1e-6)


# (c) gradients -------------------------------------------------------------------------------------------------

def test_gradients_match_finite_differences():
    cam = gs.Camera(torch.eye(4, dtype=F64), 9.0, 9.0, 4.1, 3.7, 8, 7)
    g = random_scene(3, seed=4)
    g.scales = g.scales * 1.5

    def f(means, scales, rotations, opacities, colours):
        out = gs.rasterize(means, scales, rotations, opacities, colours, cam, (0.3, 0.2, 0.1), with_depth=True,
                           chunk=20)
        return out.rgb, out.alpha, out.depth

    inputs = tuple(getattr(g, k).clone().requires_grad_(True) for k in
                   ("means", "scales", "rotations", "opacities", "colours"))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
    # and every parameter really receives a gradient
    f(*inputs)[0].sum().backward()
    for x in inputs:
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_log_parametrised_scales_optimise_towards_a_target():
    """A few Adam steps fitting one splat's position and size to a target render reduce the photometric loss."""
    cam = gs.fov_camera(24, 45.0)
    target = gs.render(one((0.2, -0.1, -3.0), (0.25, 0.15, 0.2), opacity=0.9), cam.to(F64)).rgb.float()
    mean = torch.tensor([[-0.1, 0.1, -3.0]], requires_grad=True)
    log_scale = torch.full((1, 3), math.log(0.1), requires_grad=True)
    opt = torch.optim.Adam([mean, log_scale], lr=0.03)
    fixed = dict(rotations=torch.tensor([[1.0, 0, 0, 0]]), opacities=torch.tensor([0.9]),
                 colours=torch.tensor([[1.0, 0.5, 0.25]]))
    losses = []
    for _ in range(40):
        out = gs.rasterize(mean, log_scale.exp(), camera=cam, **fixed)
        loss = ((out.rgb - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


# (d) rotation and anisotropy ------------------------------------------------------------------------------------

def test_rotation_about_view_axis_swaps_elongation():
    size = 41
    cam = gs.Camera(torch.eye(4, dtype=F64), 50.0, 50.0, size / 2, size / 2, size, size)
    along_x = one((0, 0, -3.0), (0.4, 0.08, 0.08))
    along_y = one((0, 0, -3.0), (0.4, 0.08, 0.08), quat=axis_quat((0, 0, 1), math.pi / 2))
    (_, cx), (_, cy) = moments(gs.render(along_x, cam, alpha_min=0).alpha), moments(gs.render(along_y, cam,
                                                                                              alpha_min=0).alpha)
    assert cx[0, 0] > 10 * cx[1, 1]  # wide along image u
    assert cy[1, 1] > 10 * cy[0, 0]  # tall along image v
    assert cx[0, 0] == pytest.approx(cy[1, 1], rel=1e-9) and cx[1, 1] == pytest.approx(cy[0, 0], rel=1e-9)
    # and 45 degrees puts the long axis on a diagonal (camera +Y is image up, so u and v anti-correlate)
    diag = one((0, 0, -3.0), (0.4, 0.08, 0.08), quat=axis_quat((0, 0, 1), math.pi / 4))
    cd = gs.project(diag.means, diag.scales, diag.rotations, cam).cov2d[0]
    assert cd[0, 1] < -0.4 * cd[0, 0] and cd[0, 0] == pytest.approx(cd[1, 1].item())
    # a rotation about the view axis by 90 degrees of a quaternion of any norm
    q = torch.tensor([axis_quat((0, 0, 1), math.pi / 2)], dtype=F64) * 3.0
    assert torch.allclose(gs.quat_to_rotmat(q)[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=F64))


# (e) PLY ---------------------------------------------------------------------------------------------------------

PROPS = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "f_rest_0", "f_rest_1", "opacity",
         "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def raw_rows() -> np.ndarray:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(5, len(PROPS))).astype(np.float32)
    return rows


def check_loaded(g: gs.Gaussians, rows: np.ndarray) -> None:
    col = {p: rows[:, k].astype(np.float64) for k, p in enumerate(PROPS)}
    assert np.allclose(g.means.numpy(), np.stack([col["x"], col["y"], col["z"]], -1), atol=1e-6)
    assert np.allclose(g.scales.numpy(), np.exp(np.stack([col[f"scale_{k}"] for k in range(3)], -1)), rtol=1e-6)
    assert np.allclose(g.opacities.numpy(), 1 / (1 + np.exp(-col["opacity"])), atol=1e-6)
    rgb = np.maximum(0, 0.5 + gs.SH_C0 * np.stack([col[f"f_dc_{k}"] for k in range(3)], -1))
    assert np.allclose(g.colours.numpy(), rgb, atol=1e-6)
    assert np.allclose(g.rotations.numpy(), np.stack([col[f"rot_{k}"] for k in range(4)], -1), atol=1e-6)


def test_ply_binary_written_by_hand_loads_and_round_trips(tmp_path):
    rows = raw_rows()
    header = "ply\nformat binary_little_endian 1.0\ncomment written by the test\nelement vertex 5\n"
    header += "".join(f"property float {p}\n" for p in PROPS) + "end_header\n"
    path = tmp_path / "hand.ply"
    path.write_bytes(header.encode() + rows.astype("<f4").tobytes())
    g = gs.load_ply(path, dtype=F64)
    check_loaded(g, rows)
    # write it back and read it again: the same activated values (colours clamped at 0 stay 0 only if > 0 before)
    g.colours = g.colours.clamp(min=0.05)
    gs.save_ply(g, tmp_path / "again.ply")
    g2 = gs.load_ply(tmp_path / "again.ply", dtype=F64)
    for k in ("means", "scales", "rotations", "opacities", "colours"):
        assert torch.allclose(getattr(g2, k), getattr(g, k), rtol=1e-5, atol=1e-6), k
    cam = gs.fov_camera(16, 60.0, torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, -6], [0, 0, 0, 1]]), F64)
    assert torch.allclose(gs.render(g, cam).rgb, gs.render(g2, cam).rgb, atol=1e-5)


def test_ply_ascii_and_errors(tmp_path):
    rows = raw_rows()
    header = "ply\nformat ascii 1.0\nelement vertex 5\n" + "".join(f"property float {p}\n" for p in PROPS)
    body = "\n".join(" ".join(repr(float(x)) for x in r) for r in rows)
    (tmp_path / "a.ply").write_text(header + "end_header\n" + body + "\n")
    check_loaded(gs.load_ply(tmp_path / "a.ply", dtype=F64), rows)
    (tmp_path / "b.ply").write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(gs.PlyFormatError, match="b.ply.*missing: y, z"):
        gs.load_ply(tmp_path / "b.ply")
    (tmp_path / "c.ply").write_bytes(b"not a ply")
    with pytest.raises(gs.PlyFormatError, match="c.ply"):
        gs.load_ply(tmp_path / "c.ply")


def test_transform_moves_means_and_covariances_by_a_similarity():
    """gs.transform with [s R | t]: means s R x + t, covariances s^2 R Sigma R^T (float64, 1e-10); the quaternion
    round trip holds for each of Shepperd's four pivots (identity and half turns about x, y, z); non-similarities
    fail; render_rgba on white equals the renderer's own white-background image (to the uint8 rounding)."""
    torch.manual_seed(0)
    n = 6
    g = gs.Gaussians(torch.randn(n, 3, dtype=torch.float64), torch.rand(n, 3, dtype=torch.float64) * 0.2 + 0.05,
                     torch.randn(n, 4, dtype=torch.float64), torch.rand(n, dtype=torch.float64),
                     torch.rand(n, 3, dtype=torch.float64))
    rot = gs.quat_to_rotmat(torch.tensor([[0.3, -0.5, 0.7, 0.2]], dtype=torch.float64))[0]
    s, t = 1.7, torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = s * rot.numpy(), t.numpy()
    h = gs.transform(g, m)

    def cov(x):
        r = gs.quat_to_rotmat(x.rotations)
        return r @ torch.diag_embed(x.scales ** 2) @ r.transpose(1, 2)

    assert torch.allclose(h.means, g.means @ rot.T * s + t, atol=1e-10)
    assert torch.allclose(cov(h), s ** 2 * rot @ cov(g) @ rot.T, atol=1e-10)
    assert torch.equal(h.opacities, g.opacities) and torch.equal(h.colours, g.colours)
    half = [torch.eye(3, dtype=torch.float64)] + [torch.diag(torch.tensor(d, dtype=torch.float64))
                                                  for d in ([1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    for r in [*half, *gs.quat_to_rotmat(torch.randn(20, 4, dtype=torch.float64))]:
        q = gs.rotmat_to_quat(r[None])
        assert torch.allclose(gs.quat_to_rotmat(q)[0], r, atol=1e-10) and q[0, 0] >= 0
    for bad in (np.diag([1.0, 1.0, 2.0, 1.0]), np.diag([1.0, 1.0, -1.0, 1.0])):
        with pytest.raises(ValueError, match="transform"):
            gs.transform(g, bad)
    view = View(0.4, 0.3, 2.5, math.radians(40))
    g32 = gs.Gaussians(*(getattr(g, k).float() * (0.3 if k == "means" else 1.0)
                         for k in ("means", "scales", "rotations", "opacities", "colours")))
    rgba = gs.render_rgba(g32, view, 24).astype(np.float64) / 255
    ref = gs.render(g32, gs.Camera.from_view(view, 24), background=(1.0, 1.0, 1.0))
    white = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    assert np.abs(white - ref.rgb.numpy()).max() < 3 / 255
    assert np.abs(rgba[..., 3] - ref.alpha.numpy()).max() <= 0.5 / 255 + 1e-6
