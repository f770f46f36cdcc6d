"""Headless CPU rendering of meshes to RGBA by ray casting (trimesh + Embree via embreex), and the camera sets of the
3D protocols.

Why ray casting and not bpy / pyrender: it needs no display, GL or Vulkan stack (pyrender needs EGL/OSMesa system
libraries, open3d's offscreen renderer needs Vulkan, Blender-as-a-module is a 200-300 MB wheel), it is a pure
function of (mesh, camera) — renders are byte-identical across runs and machines, which the artifact diffs rely on —
and its silhouette is exact (one primary ray per pixel centre), which is what the inputs of image-to-3D models and the
silhouette test need. Shading is deliberately simple: per-vertex colours (textures are sampled at the vertices)
interpolated at the hit, times a headlight Lambert term with ambient; the alpha channel is coverage. Not done here:
GPU rendering and path-traced appearance (the anchors' Blender Cycles renders): appearance metrics computed on these
renders are comparable between models, not with numbers computed on Cycles renders.

Conventions (TRELLIS / Blender): world Z up; objects normalised to [-0.5, 0.5]^3; a camera at yaw φ, pitch θ,
radius r sits at r (cos φ cos θ, sin φ cos θ, sin θ) looking at the origin, world Z as its up; camera-to-world
matrices in the OpenGL/NeRF convention (the camera looks down its -Z, Y up), saved as ``transforms.json`` with
``camera_angle_x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import trimesh


def radical_inverse(base: int, n: int) -> float:
    val, inv, f = 0.0, 1.0 / base, 1.0 / base
    while n > 0:
        val += (n % base) * f
        n //= base
        f *= inv
    return val


def sphere_hammersley(i: int, n: int, offset: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """TRELLIS' view ``i`` of ``n`` on the sphere: (yaw, pitch), with its remap of u toward the upper hemisphere."""
    u = i / n + offset[0] / n
    v = radical_inverse(2, i) + offset[1]
    u = 2 * u if u < 0.25 else 2 / 3 * u + 1 / 3
    return v * 2 * math.pi, math.acos(1 - 2 * u) - math.pi / 2


@dataclass(frozen=True)
class View:
    yaw: float
    pitch: float
    radius: float
    fov: float  # horizontal field of view, radians

    def c2w(self) -> np.ndarray:
        pos = self.radius * np.array([math.cos(self.yaw) * math.cos(self.pitch),
                                      math.sin(self.yaw) * math.cos(self.pitch), math.sin(self.pitch)])
        back = pos / np.linalg.norm(pos)  # camera +Z (it looks down -Z, at the origin)
        up = np.array([0.0, 0.0, 1.0]) if abs(back[2]) < 0.999 else np.array([0.0, 1.0, 0.0])
        right = np.cross(up, back)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, pos
        return m


def camera_set(kind: str, n: int = 150, seed: int = 0, fov_deg: float = 40.0, radius: float = 2.0,
               elevation_deg: float = 20.0, azimuth_deg: float = 45.0) -> list[View]:
    """``trellis``: n views on a Hammersley sphere (random offset from ``seed``), radius 2, FoV 40 deg;
    ``one2345``: 24 views, elevations 0 and 30 deg, azimuth every 30 deg; ``single``: one conditioning view."""
    fov = math.radians(fov_deg)
    if kind == "trellis":
        rng = np.random.default_rng(seed)
        off = (float(rng.random()), float(rng.random()))
        return [View(*sphere_hammersley(i, n, off), radius, fov) for i in range(n)]
    if kind == "one2345":
        return [View(math.radians(az), math.radians(el), radius, fov) for el in (0.0, 30.0)
                for az in range(0, 360, 30)]
    if kind == "single":
        return [View(math.radians(azimuth_deg), math.radians(elevation_deg), radius, fov)]
    raise ValueError(f"unknown camera set '{kind}' (trellis, one2345, single)")


def intrinsics(view: View, size: int) -> np.ndarray:
    f = size / 2 / math.tan(view.fov / 2)
    return np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]])


def camera_rays(view: View, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One ray per pixel centre, row-major from the top-left pixel."""
    t = math.tan(view.fov / 2)
    c = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(c * t, -c * t)  # image rows go down, camera Y goes up
    d_cam = np.stack([x, y, -np.ones_like(x)], -1).reshape(-1, 3)
    m = view.c2w()
    d = d_cam @ m[:3, :3].T
    return np.broadcast_to(m[:3, 3], d.shape).copy(), d / np.linalg.norm(d, axis=1, keepdims=True)


def vertex_colours(mesh: trimesh.Trimesh) -> np.ndarray:
    try:
        vc = mesh.visual.to_color().vertex_colors if mesh.visual.kind == "texture" else mesh.visual.vertex_colors
    except Exception:  # textures that cannot be sampled: flat grey, recorded by the caller's metadata
        vc = None
    if vc is None or len(vc) != len(mesh.vertices):
        return np.full((len(mesh.vertices), 3), 180.0)
    return np.asarray(vc, dtype=np.float64)[:, :3]


def render(mesh: trimesh.Trimesh, view: View, size: int, ambient: float = 0.35) -> np.ndarray:
    """RGBA uint8 (size, size, 4): shaded vertex colours where a pixel-centre ray hits the mesh, alpha = hit."""
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    origins, dirs = camera_rays(view, size)
    hit_pt, ray, tri = RayMeshIntersector(mesh).intersects_location(origins, dirs, multiple_hits=False)
    out = np.zeros((size * size, 4), dtype=np.float64)
    if len(ray):
        faces = mesh.faces[tri]
        bary = trimesh.triangles.points_to_barycentric(mesh.vertices[faces], hit_pt)
        col = (vertex_colours(mesh)[faces] * bary[:, :, None]).sum(1)
        lam = np.abs((mesh.face_normals[tri] * dirs[ray]).sum(1))
        out[ray, :3] = col * (ambient + (1 - ambient) * lam)[:, None]
        out[ray, 3] = 255
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(size, size, 4)


def transforms_json(views: list[View], files: list[str]) -> dict:
    return {"camera_angle_x": views[0].fov if views else None,
            "frames": [{"file_path": f, "yaw": v.yaw, "pitch": v.pitch, "radius": v.radius, "fov": v.fov,
                        "transform_matrix": v.c2w().round(10).tolist()} for v, f in zip(views, files, strict=True)]}
