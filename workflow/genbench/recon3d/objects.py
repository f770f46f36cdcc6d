"""Object data sets of the 3D track: adapters, procedural solids (the mini-world), and the stage that normalises each
object, renders its conditioning view and evaluation views, and writes its ground truth.

Adapters (``datasets3d.<name>.adapter``):

* ``procedural`` — boxes, spheres, cylinders, cones, tori, capsules and boolean combinations (manifold3d), with
  vertex colours, a pure function of (seed, index).
* ``objaverse`` — the ``objaverse`` package's local cache (``root`` = e.g. ~/.objaverse/hf-objaverse-v1): GLBs at
  ``glbs/<shard>/<uid>.glb``, listed by ``uids`` (or every GLB present); licences come from the cached annotations
  when present. Fetching (``objaverse.load_objects``) is a connected-node step.
* ``toys4k`` — the user-provided ``toys4k_blend_files`` (extracted archive), checked against a sha256 list
  (``sha256_csv`` with columns file_identifier, sha256, as TRELLIS' Toys4k.csv). Toys4k ships .blend files: items
  need a mesh export next to them (``<name>.glb``/``.obj``, e.g. from Blender) and are skipped with that reason
  otherwise.
* ``gso`` — Google Scanned Objects: ``<name>/meshes/model.obj`` (+ its texture), extracted per-object zips.
* ``animal3d`` — mesh files under ``root`` (``*.obj``/``*.ply``/``*.glb``; Animal3D's meshes posed from its SMAL
  fits, exported by the user; in the seed's layout ``obj_files/<split>/...`` beside ``images/`` and ``masks/``).

With ``legacy_input`` (gso, animal3d), each object also gets the photograph and mask the seed benchmark fed the
models, as ``legacy_input.png`` (:mod:`genbench.recon3d.photos`); the legacy protocol reconstructs from it, the
corrected one from the render.

Meshes are loaded as Blender's importers would (glTF/OBJ Y-up -> Z-up), normalised to [-0.5, 0.5]^3 by their
bounding box (TRELLIS: scale = 1 / longest side, centre to the origin; both recorded), rendered with
:mod:`genbench.recon3d.render`, and their GT written: the normalised mesh, surface samples with normals, solid
occupancy by winding numbers. Unusable meshes are skipped with the reason.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trimesh

from ..catalog import OBJECT_ADAPTERS
from ..io import save_npz, sha256_file, write_bytes, write_json
from ..seeding import derive_seed
from .meshes import MeshError, Normalisation, check_mesh, occupancy_grid, surface_samples
from .phantoms import rotation
from .render import camera_set, render, transforms_json

log = logging.getLogger(__name__)

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
Y_UP_TO_Z_UP = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@dataclass
class ObjectItem:
    object_id: str
    category: str
    path: Path | None = None
    build: Callable[[], trimesh.Trimesh] | None = None
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None


def _root(name: str, spec: dict[str, Any]) -> Path:
    root = Path(spec.get("root", ""))
    if not spec.get("root") or not root.exists():
        raise FileNotFoundError(f"{name}: data set root '{spec.get('root')}' is missing; download the data set and "
                                f"set datasets3d.{name}.root to its folder")
    return root


# ---------------------------------------------------------------------------------------------------------------
# procedural solids

SOLIDS = ("box", "sphere", "cylinder", "cone", "torus", "capsule", "union", "difference")


def _hue_rgb(h: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, 0.65, 0.9)) * 255


def procedural_solid(index: int, seed: int) -> tuple[str, trimesh.Trimesh]:
    rng = np.random.default_rng(derive_seed(seed, "solid", index))
    kind = SOLIDS[index % len(SOLIDS)]
    s = rng.uniform(0.6, 1.4, 3)
    if kind == "box":
        m = trimesh.creation.box(extents=s)
    elif kind == "sphere":
        m = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
        m.apply_scale(s / s.max())
    elif kind == "cylinder":
        m = trimesh.creation.cylinder(radius=0.4 * s[0], height=1.2 * s[2], sections=48)
    elif kind == "cone":
        m = trimesh.creation.cone(radius=0.5 * s[0], height=1.2 * s[2], sections=48)
    elif kind == "torus":
        m = trimesh.creation.torus(major_radius=0.5, minor_radius=0.12 + 0.1 * rng.random(), major_sections=48,
                                   minor_sections=24)
    elif kind == "capsule":
        m = trimesh.creation.capsule(height=0.8 * s[2], radius=0.3 * s[0], count=[24, 24])
    elif kind == "union":
        b = trimesh.creation.box(extents=s * 0.8)
        c = trimesh.creation.icosphere(subdivisions=3, radius=0.45)
        c.apply_translation([0.35 * s[0], 0, 0.3 * s[2]])
        m = trimesh.boolean.union([b, c], engine="manifold")
    else:  # difference: a cylinder with a box-shaped notch
        a = trimesh.creation.cylinder(radius=0.5, height=1.0 * s[2], sections=48)
        b = trimesh.creation.box(extents=[0.6, 0.6, 1.2 * s[2]])
        b.apply_translation([0.45, 0.45, 0.25])
        m = trimesh.boolean.difference([a, b], engine="manifold")
    r = np.eye(4)
    r[:3, :3] = rotation(*rng.uniform(-0.7, 0.7, 3))
    m.apply_transform(r)
    # vertex colours: the object's hue with a gradient along z and a second hue band
    z = m.vertices[:, 2]
    t = (z - z.min()) / max(np.ptp(z), 1e-9)
    h = rng.random()
    col = (1 - t)[:, None] * _hue_rgb(h) + t[:, None] * _hue_rgb(h + 0.3)
    m.visual.vertex_colors = np.concatenate([np.round(col), np.full((len(col), 1), 255)], 1).astype(np.uint8)
    return kind, m


def procedural(name: str, spec: dict[str, Any]) -> list[ObjectItem]:
    seed = int(spec.get("seed", 0))
    items = []
    for i in range(int(spec.get("objects", 8))):
        kind = SOLIDS[i % len(SOLIDS)]
        items.append(ObjectItem(f"solid{i:03d}", kind, build=lambda i=i: procedural_solid(i, seed)[1],
                                meta={"licence": "generated"}))
    return items


# ---------------------------------------------------------------------------------------------------------------
# published data sets


def objaverse(name: str, spec: dict[str, Any]) -> list[ObjectItem]:
    root = _root(name, spec)
    found = {p.stem: p for p in root.glob("glbs/*/*.glb")}
    uids = spec.get("uids") or sorted(found)
    ann_path = root / "annotations.json"
    ann = json.loads(ann_path.read_text()) if ann_path.exists() else {}
    items = []
    for uid in uids:
        a = ann.get(uid, {})
        meta = {"licence": a.get("license"), "name": a.get("name")}
        if uid not in found:
            items.append(ObjectItem(uid, "objaverse", skip=f"{uid}.glb is not in the local cache {root}/glbs/ "
                                                       f"(fetch it with objaverse.load_objects on a connected node)"))
        else:
            items.append(ObjectItem(uid, a.get("category", "objaverse"), found[uid], meta=meta))
    return items


def toys4k(name: str, spec: dict[str, Any]) -> list[ObjectItem]:
    root = _root(name, spec)
    folder = root / "toys4k_blend_files" if (root / "toys4k_blend_files").is_dir() else root
    expected = {}
    if spec.get("sha256_csv"):
        with open(spec["sha256_csv"], newline="") as f:
            expected = {r["file_identifier"]: r["sha256"] for r in csv.DictReader(f)}
    items = []
    for blend in sorted(folder.glob("*/*/*.blend")):
        ident = str(blend.relative_to(folder))
        category = blend.parent.parent.name
        export = next((blend.with_suffix(s) for s in (".glb", ".obj", ".ply") if blend.with_suffix(s).exists()), None)
        item = ObjectItem(blend.stem, category, export, sha256=expected.get(ident), meta={"blend": ident})
        if expected and ident not in expected:
            item.skip = f"{ident} is not in the sha256 list {spec['sha256_csv']}"
        elif expected and sha256_file(blend) != expected[ident]:
            item.skip = f"{ident}: sha256 does not match the list (corrupt or different version): re-extract it"
        elif export is None:
            item.skip = (f"{ident} is a .blend file: export it to {blend.with_suffix('.glb').name} with Blender "
                         f"(bpy) first; the renderer here reads mesh formats only")
        items.append(item)
    if not items:
        raise FileNotFoundError(f"{name}: no <category>/<object>/<object>.blend under {folder} (Toys4k layout)")
    return items


def gso(name: str, spec: dict[str, Any]) -> list[ObjectItem]:
    root = _root(name, spec)
    items = [ObjectItem(p.parent.parent.name, "gso", p, meta={"licence": "CC BY 4.0"})
             for p in sorted(root.glob("*/meshes/model.obj"))]
    if not items:
        raise FileNotFoundError(f"{name}: no <object>/meshes/model.obj under {root} (extracted GSO zips)")
    return items


def animal3d(name: str, spec: dict[str, Any]) -> list[ObjectItem]:
    root = _root(name, spec)
    # the seed's layout keeps photographs and masks beside the meshes: only mesh files are items
    items = [ObjectItem(p.stem, p.parent.name, p) for p in sorted(root.rglob("*")) if p.suffix in MESH_SUFFIXES
             and not {"images", "masks"} & set(p.relative_to(root).parts[:1])]
    if not items:
        raise FileNotFoundError(f"{name}: no mesh files ({', '.join(MESH_SUFFIXES)}) under {root}")
    return items


# ---------------------------------------------------------------------------------------------------------------
# the stage


def load_mesh(item: ObjectItem, what: str) -> trimesh.Trimesh:
    if item.build is not None:
        mesh = item.build()
    else:
        try:
            raw = trimesh.load(str(item.path), process=False)
            if isinstance(raw, trimesh.PointCloud):
                raise MeshError(f"{what}: {item.path} is a point cloud ({len(raw.vertices)} points), no faces")
            loaded = trimesh.load(str(item.path), force="mesh", process=False)
        except MeshError:
            raise
        except Exception as exc:
            raise MeshError(f"{what}: {item.path} cannot be read as a mesh ({exc})") from exc
        if not isinstance(loaded, trimesh.Trimesh):
            raise MeshError(f"{what}: {item.path} holds no triangle mesh (empty scene or point cloud)")
        mesh = loaded
        if item.path.suffix.lower() in (".glb", ".gltf", ".obj"):
            mesh.apply_transform(Y_UP_TO_Z_UP)  # as Blender's importers: Y-up formats to Z-up
    check_mesh(mesh, what)
    return mesh


def normalise_unit_cube(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, Normalisation]:
    lo, hi = mesh.bounds
    norm = Normalisation(tuple(float(v) for v in (lo + hi) / 2), float(1.0 / (hi - lo).max()))
    out = mesh.copy()
    out.vertices = norm.apply(np.asarray(mesh.vertices))
    return out, norm


def _png(rgba: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _photo(name: str, spec: dict[str, Any], photo_spec: dict[str, Any], item: ObjectItem):
    from .photos import Photo, animal3d_photo, gso_photo

    if item.path is None:
        return Photo(None, skip="a procedural object has no photograph")
    if spec["adapter"] == "gso":
        return gso_photo(item.path, photo_spec)
    return animal3d_photo(Path(spec["root"]), item.category, item.object_id, photo_spec)


def _mask_generator(name: str, spec: dict[str, Any], photo_spec: dict[str, Any]) -> Callable[[], Any]:
    """The automatic mask generator of ``mask: {source: sam2_auto}``, loaded on first use (local weights only)."""
    made: list[Any] = []

    def get():
        if not made:
            from ..runtime import resolve_runtime
            from ..weights import WeightSpec, resolve
            from .photos import Sam2AutoMasks

            m = photo_spec["mask"]
            weights = resolve(WeightSpec.from_config(f"datasets3d.{name}.legacy_input.mask.model", m["model"]))
            runtime = resolve_runtime({"runtime": spec.get("runtime") or {}}, f"prepare_3d[{name}]", metric=True)
            made.append(Sam2AutoMasks(weights, runtime, m.get("points_per_batch", 64)))
            log.info("%s: automatic masks from %s on %s", name, weights, runtime.device)
        return made[0]

    return get


def prepare_objects(name: str, spec: dict[str, Any], out_dir: str | Path) -> pd.DataFrame:
    from .photos import PhotoInputError, build_photo_input, legacy_input_spec

    out_dir = Path(out_dir)
    adapter = OBJECT_ADAPTERS.lookup(spec["adapter"])
    photo_spec = legacy_input_spec(name, spec)
    generator = _mask_generator(name, spec, photo_spec) if photo_spec else None
    rend = spec.get("render", {})
    size = int(rend.get("size", 512))
    cond = rend.get("condition", {})
    eval_kind = rend.get("cameras", "one2345")
    gt = spec.get("gt", {})
    seed = int(spec.get("seed", 0))
    items = adapter(name, spec)
    if spec.get("max_objects"):
        items = items[: int(spec["max_objects"])]
    rows = []
    for item in items:
        what = f"{name}/{item.object_id}"
        row = {"dataset": name, "item_id": item.object_id, "category": item.category,
               "source": str(item.path) if item.path else "procedural", "licence": item.meta.get("licence")}
        if item.skip:
            rows.append({**row, "status": "skipped", "reason": item.skip})
            continue
        try:
            mesh = load_mesh(item, what)
            if spec.get("require_watertight") and not mesh.is_watertight:
                raise MeshError(f"{what}: the mesh is not watertight (non-manifold or open) and the data set "
                                f"requires watertight meshes")
            unit, norm = normalise_unit_cube(mesh)
            folder = out_dir / "items" / item.object_id
            rel = f"items/{item.object_id}"
            views = camera_set("single", elevation_deg=float(cond.get("elevation", 20.0)),
                               azimuth_deg=float(cond.get("azimuth", 45.0)), fov_deg=float(rend.get("fov", 40.0)),
                               radius=float(rend.get("radius", 2.0)))
            write_bytes(folder / "input.png", _png(render(unit, views[0], size)))
            write_json(folder / "input.json", transforms_json(views, ["input.png"]))
            evals = camera_set(eval_kind, n=int(rend.get("views", 150)),
                               seed=derive_seed(seed, "views", item.object_id), fov_deg=float(rend.get("fov", 40.0)),
                               radius=float(rend.get("radius", 2.0)))
            files = [f"views/{i:03d}.png" for i in range(len(evals))]
            for v, f in zip(evals, files, strict=True):
                write_bytes(folder / f, _png(render(unit, v, size)))
            write_json(folder / "transforms.json", {**transforms_json(evals, files),
                                                    "normalisation": norm.as_dict()})
            pts, normals = surface_samples(unit, int(gt.get("samples", 100_000)), seed)
            res = int(gt.get("occupancy_res", 128))
            occ = occupancy_grid(unit, Normalisation((0.0, 0.0, 0.0), 1.0), res)
            write_bytes(folder / "gt.ply", unit.export(file_type="ply", encoding="binary"))
            save_npz(folder / "gt.npz", points=pts, normals=normals, occupancy=np.packbits(occ.reshape(-1)),
                     occupancy_res=np.int32(res))
            rows.append({**row, "status": "ok", "reason": None, "input_path": f"{rel}/input.png",
                         "views_path": f"{rel}/transforms.json", "n_views": len(evals), "cameras": eval_kind,
                         "gt_mesh": f"{rel}/gt.ply", "gt_samples": f"{rel}/gt.npz",
                         "watertight": bool(mesh.is_watertight), "n_faces": int(len(mesh.faces)),
                         "norm_centre": json.dumps([round(c, 6) for c in norm.centre]), "norm_scale": norm.scale,
                         "source_sha256": sha256_file(item.path) if item.path else None,
                         "solid_fraction": float(occ.mean()), "area": float(unit.area)})
            if photo_spec:  # the seed's own input: the legacy protocol reconstructs from it
                photo = _photo(name, spec, photo_spec, item)
                try:
                    if photo.skip:
                        raise PhotoInputError(f"{what}: {photo.skip}")
                    rgba, facts = build_photo_input(photo, photo_spec, what, generator)
                    write_bytes(folder / "legacy_input.png", _png(rgba))
                    rows[-1].update({"legacy_input_path": f"{rel}/legacy_input.png", "legacy_input_kind": "photo",
                                     **facts})
                except PhotoInputError as exc:
                    rows[-1].update({"legacy_input_path": None, "legacy_input_kind": "photo",
                                     "legacy_input_reason": str(exc)})
                    log.warning("no legacy input: %s", exc)
        except MeshError as exc:
            rows.append({**row, "status": "skipped", "reason": str(exc)})
            log.warning("skipped %s: %s", what, exc)
    df = pd.DataFrame(rows)
    for col in ("reason", "input_path", "gt_mesh"):
        if col not in df:
            df[col] = None
    return df
