"""A small differentiable 3D Gaussian-splat renderer in plain torch (CPU), and a loader for 3DGS PLY files.

What it computes (Kerbl et al. 2023, "3D Gaussian Splatting"; Zwicker et al. 2002, "EWA splatting"):

* each Gaussian i has a mean mu_i (world), a 3D covariance Sigma_i = R_i S_i S_i^T R_i^T (R_i from the unit
  quaternion q_i = (w, x, y, z), S_i = diag(scales_i)), an opacity o_i in [0, 1] and an RGB colour c_i;
* colour is spherical harmonics of degree 0 only, i.e. view independent: a 3DGS file's ``f_dc`` coefficients become
  RGB by c = max(0, 0.5 + C0 * f_dc), C0 = 1 / (2 sqrt(pi)), as 3DGS does; higher bands (``f_rest_*``) are ignored;
* the mean is moved to camera space, t = W mu + b, and projected by the pinhole camera; the covariance is projected
  by the local affine approximation of the perspective map (EWA): Sigma_2D = J W Sigma W^T J^T, J the 2x3 Jacobian
  of (u, v) w.r.t. camera-space (x, y, z) at t;
* a low-pass dilation of 0.3 px^2 is added to both diagonal entries of Sigma_2D (3DGS' ``+ 0.3``): every splat
  covers at least about one pixel, so Gaussians much smaller than a pixel do not alias or vanish between pixel
  centres; it also widens larger footprints slightly (the 2D covariance is (f sigma / z)^2 + 0.3 for an
  isotropic Gaussian of std sigma at depth z on the optical axis). The opacity is not rescaled (3DGS does not
  either; the "anti-aliased" variants that rescale it are not what the released models were trained with);
* at pixel centre p the splat's alpha is a_i(p) = min(alpha_max, o_i exp(-1/2 d^T Sigma_2D^-1 d)), d = p - (u_i, v_i),
  set to 0 below ``alpha_min`` (3DGS: 0.99 and 1/255);
* splats are sorted by camera depth (one global sort per image, as 3DGS) and composited front to back:
  C(p) = sum_i c_i a_i T_i + T_N * background, T_i = prod_{j<i} (1 - a_j); alpha(p) = 1 - T_N; depth is the
  alpha-normalised expected depth sum_i z_i a_i T_i / alpha (0 where nothing is hit).

Departures from the CUDA rasteriser, all deliberate at this scale: the image is dense (every splat against every
pixel, in chunks of pixels that bound the size of each intermediate) rather than tiled with 3-sigma bounding boxes;
there is no early stop when the transmittance falls below 1e-4 (the difference per pixel is at most 1e-4 of the
background); splats whose depth is below ``near`` are dropped, and the 3DGS clamp of x/z, y/z to 1.3 x the field of
view before the Jacobian is not applied (it only matters for splats far outside the image). Everything is plain
autograd, so gradients reach means, scales, rotations, opacities and colours (tests/test_gaussians.py checks them
against finite differences in float64); the depth sort itself is piecewise constant, as in every rasteriser.

Camera convention: the one of genbench.recon3d.render (OpenGL / NeRF): camera space looks down its -Z with +Y up,
the world-to-camera matrix maps world points to that space, depth is z_depth = -z_cam, and the pixel at row r,
column c has its centre at (u, v) = (c + 0.5, r + 0.5) with u = cx + fx x / z_depth, v = cy - fy y / z_depth
(image rows go down, camera Y goes up). Images are (H, W, 3) float, row-major from the top-left pixel, as the RGBA
renders of render.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import GenbenchError

SH_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi)): the degree-0 real spherical harmonic
LOWPASS = 0.3  # px^2, 3DGS' dilation of the projected covariance


@dataclass(frozen=True)
class Camera:
    """Pinhole camera: ``w2c`` (4, 4) world-to-camera (OpenGL: looks down -Z, +Y up), intrinsics in pixels."""

    w2c: torch.Tensor
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_view(cls, view, size: int, dtype: torch.dtype = torch.float32) -> Camera:
        """The camera of a :class:`genbench.recon3d.render.View` rendered at ``size`` x ``size`` (same pixels as
        render.render: the ray of pixel (r, c) hits what this camera projects to pixel (r, c))."""
        from .render import intrinsics

        k = intrinsics(view, size)
        w2c = torch.as_tensor(np.linalg.inv(view.c2w()), dtype=dtype)
        return cls(w2c, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), size, size)

    def to(self, dtype: torch.dtype) -> Camera:
        return replace(self, w2c=self.w2c.to(dtype))


@dataclass
class Gaussians:
    """N Gaussians with activated parameters: means (N, 3), scales (N, 3) standard deviations (> 0), rotations (N, 4)
    quaternions (w, x, y, z), normalised when used, opacities (N,) in [0, 1], colours (N, 3) RGB (SH degree 0)."""

    means: torch.Tensor
    scales: torch.Tensor
    rotations: torch.Tensor
    opacities: torch.Tensor
    colours: torch.Tensor

    def __len__(self) -> int:
        return self.means.shape[0]


class Projected(NamedTuple):
    means2d: torch.Tensor  # (N, 2) pixel coordinates (u, v)
    cov2d: torch.Tensor  # (N, 2, 2) with the low-pass dilation
    depths: torch.Tensor  # (N,) z_depth = -z_cam


class Render(NamedTuple):
    rgb: torch.Tensor  # (H, W, 3)
    alpha: torch.Tensor  # (H, W)
    depth: torch.Tensor | None  # (H, W) alpha-normalised expected depth, or None


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm > 0 -> (N, 3, 3) rotation matrices."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def covariance3d(scales: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Sigma = R S S^T R^T, (N, 3, 3)."""
    m = quat_to_rotmat(rotations) * scales[..., None, :]  # R S
    return m @ m.transpose(-1, -2)


def project(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, camera: Camera,
            lowpass: float = LOWPASS) -> Projected:
    """EWA projection of the Gaussians: pixel centres, 2D covariances (dilated by ``lowpass`` px^2), depths."""
    w2c = camera.w2c.to(means.dtype)
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    t = means @ rot.T + trans
    x, y, depth = t[:, 0], t[:, 1], -t[:, 2]
    u = camera.cx + camera.fx * x / depth
    v = camera.cy - camera.fy * y / depth
    zero = torch.zeros_like(depth)
    # d(u, v) / d(x, y, z_cam), with z_cam = -depth
    jac = torch.stack([
        torch.stack([camera.fx / depth, zero, camera.fx * x / depth**2], -1),
        torch.stack([zero, -camera.fy / depth, -camera.fy * y / depth**2], -1),
    ], -2)
    jw = jac @ rot
    cov = jw @ covariance3d(scales, rotations) @ jw.transpose(-1, -2)
    cov = cov + lowpass * torch.eye(2, dtype=cov.dtype)
    return Projected(torch.stack([u, v], -1), cov, depth)


def pixel_centres(camera: Camera, dtype: torch.dtype) -> torch.Tensor:
    """(H * W, 2) pixel centres (u, v), row-major from the top-left pixel."""
    v, u = torch.meshgrid(torch.arange(camera.height, dtype=dtype) + 0.5,
                          torch.arange(camera.width, dtype=dtype) + 0.5, indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], -1)


def splat_alpha(pix: torch.Tensor, means2d: torch.Tensor, cov2d: torch.Tensor, opacities: torch.Tensor,
                alpha_min: float, alpha_max: float) -> torch.Tensor:
    """(P, N) alpha of every splat at every pixel centre ``pix`` (P, 2)."""
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det = a * c - b * b
    d = pix[:, None, :] - means2d[None]  # (P, N, 2)
    maha = (c * d[..., 0] ** 2 - 2 * b * d[..., 0] * d[..., 1] + a * d[..., 1] ** 2) / det
    alpha = (opacities * torch.exp(-0.5 * maha)).clamp(max=alpha_max)
    return torch.where(alpha >= alpha_min, alpha, torch.zeros_like(alpha))


def rasterize(means: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, opacities: torch.Tensor,
              colours: torch.Tensor, camera: Camera, background: torch.Tensor | tuple[float, float, float] = (0, 0, 0),
              *, with_depth: bool = False, near: float = 0.01, lowpass: float = LOWPASS,
              alpha_min: float = 1 / 255, alpha_max: float = 0.99, chunk: int = 4096) -> Render:
    """Render Gaussians (parameters as in :class:`Gaussians`) into ``camera``: RGB (H, W, 3), alpha (H, W) and,
    with ``with_depth``, the expected depth (H, W). Differentiable w.r.t. every Gaussian parameter."""
    dtype = means.dtype
    proj = project(means, scales, rotations, camera, lowpass)
    order = torch.argsort(proj.depths.detach())
    keep = order[proj.depths.detach()[order] > near]  # front to back, in front of the camera
    m2, cov, dep = proj.means2d[keep], proj.cov2d[keep], proj.depths[keep]
    opa, col = opacities[keep], colours[keep]
    bg = torch.as_tensor(background, dtype=dtype)
    pix = pixel_centres(camera, dtype)
    rgbs, alphas, depths = [], [], []
    for s in range(0, pix.shape[0], chunk):
        a = splat_alpha(pix[s:s + chunk], m2, cov, opa, alpha_min, alpha_max)  # (P, N)
        trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), 1 - a], 1), 1)  # T_0 .. T_N
        w = a * trans[:, :-1]
        rgbs.append(w @ col + trans[:, -1:] * bg)
        alphas.append(1 - trans[:, -1])
        if with_depth:
            acc = w @ dep
            depths.append(torch.where(alphas[-1] > 0, acc / alphas[-1].clamp(min=1e-12), torch.zeros_like(acc)))
    h, wd = camera.height, camera.width
    rgb = torch.cat(rgbs).reshape(h, wd, 3)
    alpha = torch.cat(alphas).reshape(h, wd)
    return Render(rgb, alpha, torch.cat(depths).reshape(h, wd) if with_depth else None)


def render(g: Gaussians, camera: Camera, background: torch.Tensor | tuple[float, float, float] = (0, 0, 0),
           **kw) -> Render:
    """:func:`rasterize` for a :class:`Gaussians`."""
    return rasterize(g.means, g.scales, g.rotations, g.opacities, g.colours, camera, background, **kw)


def rotmat_to_quat(r: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions (w, x, y, z), w >= 0 (Shepperd's method: the largest of
    the four diagonal combinations is the pivot, so no division by a small number)."""
    m = r.reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cand = torch.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1)
    k = cand.argmax(1)
    q = torch.empty(len(m), 4, dtype=m.dtype)
    for idx in range(4):
        sel = k == idx
        if not sel.any():
            continue
        a = m[sel]
        if idx == 0:
            s4 = 2 * torch.sqrt(1 + cand[sel, 0])
            q[sel] = torch.stack([s4 / 4, (a[:, 2, 1] - a[:, 1, 2]) / s4, (a[:, 0, 2] - a[:, 2, 0]) / s4,
                                  (a[:, 1, 0] - a[:, 0, 1]) / s4], 1)
        elif idx == 1:
            s4 = 2 * torch.sqrt(1 + a[:, 0, 0] - a[:, 1, 1] - a[:, 2, 2])
            q[sel] = torch.stack([(a[:, 2, 1] - a[:, 1, 2]) / s4, s4 / 4, (a[:, 0, 1] + a[:, 1, 0]) / s4,
                                  (a[:, 0, 2] + a[:, 2, 0]) / s4], 1)
        elif idx == 2:
            s4 = 2 * torch.sqrt(1 + a[:, 1, 1] - a[:, 0, 0] - a[:, 2, 2])
            q[sel] = torch.stack([(a[:, 0, 2] - a[:, 2, 0]) / s4, (a[:, 0, 1] + a[:, 1, 0]) / s4, s4 / 4,
                                  (a[:, 1, 2] + a[:, 2, 1]) / s4], 1)
        else:
            s4 = 2 * torch.sqrt(1 + a[:, 2, 2] - a[:, 0, 0] - a[:, 1, 1])
            q[sel] = torch.stack([(a[:, 1, 0] - a[:, 0, 1]) / s4, (a[:, 0, 2] + a[:, 2, 0]) / s4,
                                  (a[:, 1, 2] + a[:, 2, 1]) / s4, s4 / 4], 1)
    return q * torch.where(q[:, :1] < 0, -1.0, 1.0).to(q.dtype)


def transform(g: Gaussians, matrix) -> Gaussians:
    """The Gaussians moved by a 4x4 similarity ``matrix`` [s R | t] (e.g. a protocol's alignment): means -> s R x + t,
    covariances -> s^2 R Sigma R^T (scales times s, rotations composed with R); opacities and colours unchanged.
    A matrix whose 3x3 block is not a positive multiple of a rotation fails."""
    m = torch.as_tensor(np.asarray(matrix, dtype=np.float64))
    a, t = m[:3, :3], m[:3, 3]
    det = float(torch.linalg.det(a))
    if det <= 0:
        raise ValueError(f"transform: the 3x3 block has determinant {det:.3g}; a similarity needs > 0")
    s = det ** (1 / 3)
    r = a / s
    if not torch.allclose(r @ r.T, torch.eye(3, dtype=r.dtype), atol=1e-5):
        raise ValueError("transform: the 3x3 block is not a uniform scale times a rotation")
    dt = g.means.dtype
    rot = r.to(dt)
    means = g.means @ rot.T * s + t.to(dt)
    rots = rotmat_to_quat((rot[None] @ quat_to_rotmat(g.rotations).to(dt)).to(torch.float64)).to(dt)
    return Gaussians(means, g.scales * s, rots, g.opacities, g.colours)


def render_rgba(g: Gaussians, view, size: int) -> np.ndarray:
    """RGBA uint8 (size, size, 4) of ``g`` seen from a ``render.View`` (straight colour, alpha = coverage), the
    mesh renderer's format, so the appearance metrics compare it with GT renders the same way."""
    with torch.no_grad():
        out = render(g, Camera.from_view(view, size))
    alpha = out.alpha.clamp(0, 1).numpy().astype(np.float64)
    rgb = out.rgb.numpy().astype(np.float64) / np.maximum(alpha, 1e-6)[..., None]  # un-premultiply (black background)
    rgba = np.concatenate([np.clip(rgb, 0, 1) * 255, alpha[..., None] * 255], -1)
    return np.clip(np.round(rgba), 0, 255).astype(np.uint8)


# --- 3DGS PLY files ----------------------------------------------------------------------------------------------

PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
             "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
             "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
REQUIRED = ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3")


class PlyFormatError(GenbenchError, ValueError):
    """A PLY file that is not a 3DGS point cloud this reader understands (names the file and what is missing)."""


def read_ply_vertices(path: str | Path) -> np.ndarray:
    """The ``vertex`` element of a PLY file (ascii or binary, scalar properties only) as a structured array.
    (numpy parsing: ``plyfile`` is not a dependency of genbench.)"""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise PlyFormatError(f"{path}: not a PLY file (no 'ply' magic / 'end_header')")
    body = data.index(b"\n", end) + 1
    fmt, elements = None, []  # [(name, count, [(prop, dtype)])]
    for line in data[:end].decode("ascii", "replace").splitlines():
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info", "ply"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if tok[1] == "list":
                raise PlyFormatError(f"{path}: list property '{tok[-1]}' in element '{elements[-1][0]}' "
                                     "(3DGS files have scalar properties only)")
            elements[-1][2].append((tok[2], PLY_TYPES[tok[1]]))
    endian = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "<"}.get(fmt or "")
    if endian is None:
        raise PlyFormatError(f"{path}: unknown PLY format {fmt!r}")
    offset = body
    for name, count, props in elements:
        dt = np.dtype([(p, endian + t) for p, t in props])
        if fmt == "ascii":
            if name != "vertex":
                raise PlyFormatError(f"{path}: ascii PLY with an element '{name}' before 'vertex' is not supported")
            rows = np.loadtxt(data[body:].decode("ascii").splitlines()[:count], ndmin=2)
            out = np.empty(count, dtype=dt)
            for k, (p, _) in enumerate(props):
                out[p] = rows[:, k]
            return out
        if name == "vertex":
            return np.frombuffer(data, dtype=dt, count=count, offset=offset).copy()
        offset += dt.itemsize * count
    raise PlyFormatError(f"{path}: no 'vertex' element")


def load_ply(path: str | Path, dtype: torch.dtype = torch.float32) -> Gaussians:
    """A standard 3DGS PLY (as written by 3DGS, TRELLIS, SAM 3D: ``x, y, z, f_dc_0..2, opacity`` (logit),
    ``scale_0..2`` (log), ``rot_0..3`` (w, x, y, z), ``f_rest_*`` ignored) as activated :class:`Gaussians`."""
    v = read_ply_vertices(path)
    missing = [p for p in REQUIRED if p not in (v.dtype.names or ())]
    if missing:
        raise PlyFormatError(f"{path}: not a 3DGS PLY, vertex properties missing: {', '.join(missing)}")

    def cols(*names: str) -> torch.Tensor:
        return torch.as_tensor(np.stack([v[n].astype(np.float64) for n in names], -1), dtype=dtype)

    return Gaussians(
        means=cols("x", "y", "z"),
        scales=torch.exp(cols("scale_0", "scale_1", "scale_2")),
        rotations=cols("rot_0", "rot_1", "rot_2", "rot_3"),
        opacities=torch.sigmoid(cols("opacity")[:, 0]),
        colours=(0.5 + SH_C0 * cols("f_dc_0", "f_dc_1", "f_dc_2")).clamp(min=0),
    )


def ply_bytes(g: Gaussians) -> bytes:
    """``g`` as a binary little-endian 3DGS PLY (the inverse activations of :func:`load_ply`; normals 0, no
    ``f_rest``). Colours must be > 0 and opacities in (0, 1) for the file to load back to the same values."""
    t = {k: getattr(g, k).detach().to(torch.float64).cpu().numpy() for k in
         ("means", "scales", "rotations", "opacities", "colours")}
    fields = {"x": t["means"][:, 0], "y": t["means"][:, 1], "z": t["means"][:, 2],
              "nx": 0 * t["opacities"], "ny": 0 * t["opacities"], "nz": 0 * t["opacities"]}
    for k in range(3):
        fields[f"f_dc_{k}"] = (t["colours"][:, k] - 0.5) / SH_C0
    fields["opacity"] = np.log(t["opacities"]) - np.log1p(-t["opacities"])
    for k in range(3):
        fields[f"scale_{k}"] = np.log(t["scales"][:, k])
    for k in range(4):
        fields[f"rot_{k}"] = t["rotations"][:, k]
    arr = np.empty(len(g), dtype=[(k, "<f4") for k in fields])
    for k, col in fields.items():
        arr[k] = col
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {len(g)}\n"
    header += "".join(f"property float {k}\n" for k in fields) + "end_header\n"
    return header.encode("ascii") + arr.tobytes()


def save_ply(g: Gaussians, path: str | Path) -> None:
    """Write :func:`ply_bytes` of ``g`` to ``path`` (atomically)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(ply_bytes(g))
    tmp.replace(path)


def fov_camera(size: int, fov_deg: float, w2c: torch.Tensor | None = None,
               dtype: torch.dtype = torch.float32) -> Camera:
    """A square camera with horizontal field of view ``fov_deg`` and the principal point at the image centre."""
    f = size / 2 / math.tan(math.radians(fov_deg) / 2)
    return Camera(torch.eye(4, dtype=dtype) if w2c is None else w2c.to(dtype), f, f, size / 2, size / 2, size, size)
