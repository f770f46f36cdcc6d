"""3D track, object inputs: camera conventions, the ray-cast renderer against an independent silhouette raster,
procedural solids, published-layout adapters and bad meshes."""

import csv
import hashlib
import json
import math

import numpy as np
import pytest
import trimesh

from genbench.recon3d.meshes import MeshError
from genbench.recon3d.objects import load_mesh, normalise_unit_cube, prepare_objects, procedural_solid
from genbench.recon3d.render import View, camera_set, intrinsics, render, sphere_hammersley


def projected_silhouette(mesh, view, size):
    """Rasterise every projected triangle with scikit-image (pixel-centre coverage), a reference independent of the
    ray caster: project with the intrinsics and the inverse camera-to-world matrix."""
    from skimage.draw import polygon

    w2c = np.linalg.inv(view.c2w())
    cam = mesh.vertices @ w2c[:3, :3].T + w2c[:3, 3]
    k = intrinsics(view, size)
    u = k[0, 0] * cam[:, 0] / -cam[:, 2] + k[0, 2]
    v = -k[1, 1] * cam[:, 1] / -cam[:, 2] + k[1, 2]  # image rows go down
    out = np.zeros((size, size), bool)
    for f in mesh.faces:  # skimage puts pixel (r, c)'s centre at (r, c); ours is at (r + 0.5, c + 0.5)
        rr, cc = polygon(v[f] - 0.5, u[f] - 0.5, shape=out.shape)
        out[rr, cc] = True
    return out


@pytest.mark.parametrize("index", range(8))
def test_render_silhouette_matches_the_projected_mesh(index):
    _, mesh = procedural_solid(index, seed=0)
    unit, _ = normalise_unit_cube(mesh)
    for view in camera_set("one2345")[::5] + camera_set("trellis", n=6, seed=1)[:3]:
        alpha = render(unit, view, 96)[:, :, 3] > 0
        ref = projected_silhouette(unit, view, 96)
        iou = (alpha & ref).sum() / (alpha | ref).sum()
        assert iou >= 0.98, (index, view, iou)


def test_cameras_follow_the_trellis_and_one2345_conventions():
    # Hammersley: view 0 of n has u = offset/n, v = offset; u < 1/4 is doubled; pitch = acos(1 - 2u) - pi/2
    yaw, pitch = sphere_hammersley(0, 4)
    assert yaw == 0 and pitch == pytest.approx(-math.pi / 2)
    yaw, pitch = sphere_hammersley(3, 4)  # u = 3/4 -> 2/3 * 3/4 + 1/3 = 5/6; v = radical inverse of 3 in base 2
    assert yaw == pytest.approx(0.75 * 2 * math.pi) and pitch == pytest.approx(math.acos(1 - 5 / 3) - math.pi / 2)
    views = camera_set("trellis", n=150, seed=0)
    assert len(views) == 150 and {v.radius for v in views} == {2.0} and views[0].fov == pytest.approx(math.radians(40))
    o = camera_set("one2345")
    assert len(o) == 24 and sorted({round(math.degrees(v.pitch)) for v in o}) == [0, 30]
    assert sorted({round(math.degrees(v.yaw)) for v in o}) == list(range(0, 360, 30))
    # look-at: the camera sits at r (cos yaw cos pitch, sin yaw cos pitch, sin pitch), its -Z axis hits the origin,
    # and world up (Z) projects upward in the image
    v = View(math.radians(30), math.radians(20), 2.0, math.radians(40))
    m = v.c2w()
    np.testing.assert_allclose(m[:3, 3], 2 * np.array([math.cos(math.radians(30)) * math.cos(math.radians(20)),
                                                       math.sin(math.radians(30)) * math.cos(math.radians(20)),
                                                       math.sin(math.radians(20))]))
    np.testing.assert_allclose(m[:3, 3] - 2 * m[:3, 2], 0, atol=1e-12)
    np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
    assert m[2, 1] > 0
    # a small sphere above the origin renders in the upper half of the image
    ball = trimesh.creation.icosphere(2, radius=0.08)
    ball.apply_translation([0, 0, 0.3])
    rows, _ = np.nonzero(render(ball, View(0.0, 0.0, 2.0, math.radians(40)), 64)[:, :, 3])
    assert rows.max() < 32


def test_procedural_objects_renders_and_gt_are_deterministic(tmp_path):
    spec = {"adapter": "procedural", "objects": 8, "require_watertight": True,
            "render": {"size": 32, "cameras": "one2345"}, "gt": {"samples": 500, "occupancy_res": 16}}
    a = prepare_objects("s", spec, tmp_path / "a")
    b = prepare_objects("s", spec, tmp_path / "b")
    assert a.equals(b) and (a.status == "ok").all() and a.watertight.all()
    assert list(a.category) == ["box", "sphere", "cylinder", "cone", "torus", "capsule", "union", "difference"]
    for _, r in a.iterrows():
        tj = json.loads((tmp_path / "a" / r.views_path).read_text())
        assert len(tj["frames"]) == 24 and tj["camera_angle_x"] == pytest.approx(math.radians(40))
        for rel in [r.input_path, r.gt_mesh, r.gt_samples, r.views_path] + [f"items/{r.item_id}/{f['file_path']}"
                                                                            for f in tj["frames"]]:
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
        mesh = trimesh.load(tmp_path / "a" / r.gt_mesh)
        extent = mesh.bounds[1] - mesh.bounds[0]
        assert extent.max() == pytest.approx(1.0) and np.allclose(mesh.bounds.sum(0), 0, atol=1e-9)
        gt = np.load(tmp_path / "a" / r.gt_samples)
        occ = np.unpackbits(gt["occupancy"])[: 16**3]
        # the occupancy's solid fraction matches the mesh volume over the [-0.5, 0.5]^3 cube (16^3 grid: coarse)
        assert abs(occ.mean() - mesh.volume) < 0.05
    # the union is one solid: boolean by manifold3d, watertight
    assert procedural_solid(6, 0)[1].is_watertight


def write_box_obj(path, extents=(0.2, 1.0, 0.4)):
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.creation.box(extents=extents).export(path)


def test_published_layouts_and_y_up_conversion(tmp_path):
    # GSO: <name>/meshes/model.obj, Y-up: a box long along file Y becomes long along world Z
    write_box_obj(tmp_path / "gso" / "Toy_Car" / "meshes" / "model.obj")
    df = prepare_objects("gso", {"adapter": "gso", "root": str(tmp_path / "gso"), "render": {"size": 16,
                                                                                           "cameras": "single"},
                                 "gt": {"samples": 200, "occupancy_res": 8}}, tmp_path / "o_gso")
    assert list(df.status) == ["ok"] and df.licence[0] == "CC BY 4.0"
    mesh = trimesh.load(tmp_path / "o_gso" / df.gt_mesh[0])
    ext = mesh.bounds[1] - mesh.bounds[0]
    assert np.argmax(ext) == 2 and ext[1] == pytest.approx(0.4)
    # Objaverse cache: glbs/<shard>/<uid>.glb; a requested uid that is not cached is skipped with the fetch hint
    (tmp_path / "ov" / "glbs" / "000-001").mkdir(parents=True)
    trimesh.creation.icosphere(2).export(tmp_path / "ov" / "glbs" / "000-001" / "abc123.glb")
    (tmp_path / "ov" / "annotations.json").write_text(json.dumps({"abc123": {"license": "by", "name": "ball"}}))
    df = prepare_objects("ov", {"adapter": "objaverse", "root": str(tmp_path / "ov"), "uids": ["abc123", "zzz"],
                                "render": {"size": 16, "cameras": "single"},
                                "gt": {"samples": 200, "occupancy_res": 8}}, tmp_path / "o_ov").set_index("item_id")
    assert df.loc["abc123", "status"] == "ok" and df.loc["abc123", "licence"] == "by"
    assert "not in the local cache" in df.loc["zzz", "reason"] and "load_objects" in df.loc["zzz", "reason"]
    # Toys4k: .blend files checked against the sha256 list; an exported mesh beside it is used, else skipped
    t = tmp_path / "toys4k" / "toys4k_blend_files"
    for cat, obj in (("cup", "cup_001"), ("cup", "cup_002"), ("car", "car_001")):
        (t / cat / obj).mkdir(parents=True)
        (t / cat / obj / f"{obj}.blend").write_bytes(f"BLENDER {obj}".encode())
    write_box_obj(t / "cup" / "cup_001" / "cup_001.obj")
    with open(tmp_path / "toys.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_identifier", "sha256"])
        for cat, obj in (("cup", "cup_001"), ("cup", "cup_002")):
            w.writerow([f"{cat}/{obj}/{obj}.blend", hashlib.sha256(f"BLENDER {obj}".encode()).hexdigest()])
        w.writerow(["car/car_001/car_001.blend", "0" * 64])
    df = prepare_objects("toys", {"adapter": "toys4k", "root": str(tmp_path / "toys4k"),
                                  "sha256_csv": str(tmp_path / "toys.csv"), "render": {"size": 16, "cameras": "single"},
                                  "gt": {"samples": 200, "occupancy_res": 8}}, tmp_path / "o_t").set_index("item_id")
    assert df.loc["cup_001", "status"] == "ok" and df.loc["cup_001", "category"] == "cup"
    assert "export it to cup_002.glb" in df.loc["cup_002", "reason"]
    assert "sha256 does not match" in df.loc["car_001", "reason"]
    with pytest.raises(FileNotFoundError, match="root .* is missing"):
        prepare_objects("gso", {"adapter": "gso", "root": str(tmp_path / "none")}, tmp_path / "o")


def test_bad_meshes_are_skipped_with_reasons(tmp_path):
    root = tmp_path / "animals"
    root.mkdir()
    (root / "empty.obj").write_text("# nothing\n")
    (root / "points.ply").write_bytes(trimesh.PointCloud(np.random.rand(10, 3)).export(file_type="ply"))
    (root / "nan.obj").write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    (root / "open.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\n")
    (root / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    trimesh.creation.box().export(root / "good.obj")
    spec = {"adapter": "animal3d", "root": str(root), "render": {"size": 16, "cameras": "single"},
            "gt": {"samples": 200, "occupancy_res": 8}}
    df = prepare_objects("a", spec, tmp_path / "o").set_index("item_id")
    assert df.loc["good", "status"] == "ok" and df.loc["open", "status"] == "ok"  # open: winding numbers cope
    assert not df.loc["open", "watertight"]
    assert "has no vertices" in df.loc["empty", "reason"]
    assert "point cloud (10 points), no faces" in df.loc["points", "reason"]
    assert "NaN" in df.loc["nan", "reason"]
    assert "degenerate" in df.loc["flat", "reason"]
    strict = prepare_objects("a", {**spec, "require_watertight": True}, tmp_path / "o2").set_index("item_id")
    assert "not watertight" in strict.loc["open", "reason"] and strict.loc["good", "status"] == "ok"
    with pytest.raises(MeshError, match="cannot be read|no triangle mesh"):
        from genbench.recon3d.objects import ObjectItem

        load_mesh(ObjectItem("x", "x", root / "missing.obj"), "x")
