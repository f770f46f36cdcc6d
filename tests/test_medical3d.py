"""3D track, medical inputs: phantoms, world-frame ground truth, legacy vs corrected slices, intensity windows,
the published-layout adapters and bad input. References: nilearn's crop_img (the seed code's crop), analytic
volumes, nibabel's affine algebra, trimesh.contains."""

import json
import tarfile

import nibabel as nib
import numpy as np
import pytest
import trimesh
from PIL import Image

from genbench.recon3d.medical import DataSetLayoutError, prepare_medical, verify_and_extract
from genbench.recon3d.meshes import MeshError, check_mesh, mask_surface_world, occupancy_grid, unit_cube
from genbench.recon3d.phantoms import Structure, build_phantom, mini_world_case, rotation, save_nifti
from genbench.recon3d.volumes import (
    VolumeError,
    corrected_input,
    legacy_input,
    load_nifti,
    to_uint8_legacy,
    volume_data,
    window,
)


@pytest.mark.parametrize("orientation", ["lps", "oblique"])
def test_phantom_ellipsoid_volume_and_world_position(orientation):
    centre = np.array([6.0, -4.0, 3.0])
    ell = Structure(1, "ellipsoid", "ellipsoid", centre, {"radii": (12.0, 9.0, 15.0)}, rotation(0.4, -0.3, 0.7))
    ph = build_phantom([ell], (80, 80, 56), (0.55, 0.5, 0.8), orientation, seed=0)
    mask = np.asarray(ph.labels.dataobj) == 1
    mesh = mask_surface_world(mask, ph.labels.affine, "ellipsoid")
    assert mesh.is_watertight and mesh.volume > 0
    assert abs(mesh.volume / ell.analytic_volume() - 1) < 0.01  # within 1 % of 4/3 pi abc
    np.testing.assert_allclose(mesh.center_mass, centre, atol=0.1)  # world mm, through the full affine
    # the mask's voxel centroid mapped with nibabel's affine lands there too
    np.testing.assert_allclose(nib.affines.apply_affine(ph.labels.affine, np.argwhere(mask).mean(0)), centre,
                               atol=0.1)
    if orientation == "lps":
        assert nib.aff2axcodes(ph.labels.affine) == ("L", "P", "S")
    # the analytic surface: every vertex lies on the ellipsoid up to one voxel
    q = (mesh.vertices - centre) @ ell.rot
    r = np.sqrt(((q / np.asarray(ell.params["radii"])) ** 2).sum(1))
    assert np.abs(r - 1).max() < 0.08


def test_torus_volume_and_occupancy_matches_trimesh_contains():
    torus = Structure(1, "torus", "torus", np.zeros(3), {"R": 10.0, "r": 4.0}, rotation(0.5, 0.2, 0.0))
    ph = build_phantom([torus], (72, 72, 48), (0.5, 0.5, 0.7), "ras", seed=1)
    mesh = mask_surface_world(np.asarray(ph.labels.dataobj) == 1, ph.labels.affine, "torus")
    assert abs(mesh.volume / torus.analytic_volume() - 1) < 0.02
    norm = unit_cube(mesh)
    occ = occupancy_grid(mesh, norm, 24)
    c = (np.arange(24) + 0.5) / 24 - 0.5
    grid = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    moved = trimesh.Trimesh(norm.apply(mesh.vertices), mesh.faces)
    ref = moved.contains(grid).reshape(24, 24, 24)
    assert (occ == ref).mean() > 0.999 and occ.sum() > 100  # winding numbers = contains on a watertight mesh


def wedge_phantom(orientation="ras"):
    """A wedge growing along +z (superior): area is maximal at its top, so max-area != centre."""
    ph = build_phantom([], (40, 40, 30), (1.0, 1.0, 1.0), orientation, seed=3)
    lab = np.zeros((40, 40, 30), np.uint8)
    img = np.asarray(ph.image.dataobj).astype(np.int16)
    for z in range(5, 25):
        half = 2 + (z - 5) // 2
        lab[20 - half: 20 + half, 12:20, z] = 1
    lab[30:34, 28:32, 10:14] = 2  # a small second structure at high x (patient right in RAS), high y (anterior)
    img[lab == 1] = 200
    img[lab == 2] = 400
    return nib.Nifti1Image(img, ph.image.affine), nib.Nifti1Image(lab, ph.image.affine)


def test_legacy_slice_matches_the_seed_pipeline_with_nilearn_crop():
    from nilearn.image import crop_img

    image, labels = wedge_phantom("lps")
    data, lab = volume_data(image, "w"), np.asarray(labels.dataobj)
    leg, cmask = legacy_input(data, lab, 1, "w")
    # the seed code: crop_img(binary mask) (one-voxel pad), the masked image on that grid, (min+max)//2 on axis 0
    binary = nib.Nifti1Image((lab == 1).astype(np.float32), image.affine)
    cropped, slices = crop_img(binary, return_offset=True, copy_header=True)
    obj = (data * (lab == 1))[slices]
    cm = np.asarray(cropped.dataobj)
    along = np.where(cm == 1)[0]
    k = (along.min() + along.max()) // 2
    rgb = np.repeat(obj[k][:, :, None], 3, axis=2)
    ref = ((rgb - rgb.min()) / (rgb.max() - rgb.min()) * 255).astype(np.uint8)
    assert leg.slice_index == k
    np.testing.assert_array_equal(leg.rgba[:, :, :3], ref)
    np.testing.assert_array_equal(leg.rgba[:, :, 3], cm[k].astype(np.uint8) * 255)
    np.testing.assert_array_equal(cmask, cm == 1)
    assert to_uint8_legacy(np.full((2, 2), 3.0)).max() == 0  # constant slice -> zeros, as the seed code
    # the seed's --slice_axis runs (inference_*.py): the middle of the label's extent along that voxel axis
    for axis in (1, 2):
        leg_a, _ = legacy_input(data, lab, 1, "w", axis=axis)
        along = np.where(cm == 1)[axis]
        k = (along.min() + along.max()) // 2
        sl = np.take(obj, k, axis=axis)
        rgb = np.repeat(sl[:, :, None], 3, axis=2)
        ref = ((rgb - rgb.min()) / (rgb.max() - rgb.min()) * 255).astype(np.uint8)
        assert leg_a.slice_index == k and leg_a.plane == f"axis{axis}"
        assert leg_a.meta["volume_slice_index"] == k + slices[axis].start
        np.testing.assert_array_equal(leg_a.rgba[:, :, :3], ref)
        np.testing.assert_array_equal(leg_a.rgba[:, :, 3], np.take(cm, k, axis=axis).astype(np.uint8) * 255)


def test_corrected_slice_policy_plane_and_orientation():
    for orientation in ("ras", "lps"):
        image, labels = wedge_phantom(orientation)
        centre = corrected_input(image, labels, 1, "w", plane="axial", policy="centre", margin=0.0)
        top = corrected_input(image, labels, 1, "w", plane="axial", policy="max_area", margin=0.0)
        assert centre.slice_index == 14 and top.slice_index in (23, 24)  # z extent 5..24; widest at the top
        assert (top.rgba[:, :, 3] > 0).sum() > (centre.rgba[:, :, 3] > 0).sum()
    # radiological display: a marker at the patient's right-anterior (world x > 0, y > 0 in RAS mm) appears in the
    # top-left quadrant of the axial image, whatever the voxel storage order
    for orientation in ("ras", "lps"):
        body = Structure(1, "organ", "ellipsoid", np.zeros(3), {"radii": (14.0, 14.0, 6.0)}, hu=100.0)
        marker = Structure(2, "marker", "ellipsoid", np.array([10.0, 10.0, 0.0]), {"radii": (3.0, 3.0, 3.0)},
                           hu=400.0)
        ph = build_phantom([body, marker], (40, 40, 20), (1.0, 1.0, 1.0), orientation, seed=0, noise_hu=0.0)
        view = corrected_input(ph.image, ph.labels, 1, "w", plane="axial", margin=0.3)
        rows, cols = np.nonzero(view.rgba[:, :, 0] == 255)  # 400 HU: the only value at the window's top
        side = view.rgba.shape[0]
        assert len(rows) > 5 and rows.max() < side / 2 and cols.max() < side / 2, orientation
    # the legacy slice of the LPS volume is cut along stored voxel axis 0 (sagittal here), not axially
    data = volume_data(image, "w")
    leg, _ = legacy_input(data, np.asarray(labels.dataobj), 1, "w")
    assert leg.rgba.shape[:2] == (10, 22)  # (y extent 8 + pad 2) x (z extent 20 + pad 2)


def test_corrected_input_resamples_anisotropic_pixels_and_sizes():
    ph = mini_world_case(0, 0)  # spacing 0.9 x 0.8 x 2.5 mm
    cor = corrected_input(ph.image, ph.labels, 1, "c", plane="coronal", policy="max_area", margin=0.1)
    assert cor.pixel_mm == pytest.approx((0.9, 0.9))  # coronal: in-plane x 0.9 and z 2.5 mm -> square pixels of 0.9 mm
    rows, cols = np.nonzero(cor.rgba[:, :, 3])
    # the ellipsoid's coronal section, in square pixels, has the physical aspect of the mask (not 2.5 / 0.9 off)
    lab = np.asarray(nib.as_closest_canonical(ph.labels).dataobj) == 1
    sl = lab[:, cor.slice_index, :]
    xs, zs = np.nonzero(sl)
    aspect_mm = ((zs.max() - zs.min() + 1) * 2.5) / ((xs.max() - xs.min() + 1) * 0.9)
    aspect_px = (rows.max() - rows.min() + 1) / (cols.max() - cols.min() + 1)
    assert abs(aspect_px / aspect_mm - 1) < 0.12
    sized = corrected_input(ph.image, ph.labels, 1, "c", size=96)
    assert sized.rgba.shape == (96, 96, 4) and set(np.unique(sized.rgba[:, :, 3])) <= {0, 255}


def test_ct_window_and_mri_percentiles():
    v = np.array([-1000.0, -160.0, 40.0, 240.0, 3000.0])
    np.testing.assert_allclose(window(v, {"kind": "ct", "level": 40, "width": 400}, v), [0, 0, 0.5, 1, 1])
    np.testing.assert_allclose(window(v, {"kind": "ct", "level": -600, "width": 1500}, v),
                               np.clip((v + 1350) / 1500, 0, 1))  # lung window W1500/L-600
    inside = np.arange(1.0, 101.0)
    out = window(np.array([1.0, 50.5, 100.0]), {"kind": "mri", "percentiles": [0, 100]}, inside)
    np.testing.assert_allclose(out, [0, 0.5, 1])
    with pytest.raises(ValueError, match="width must be > 0"):
        window(v, {"kind": "ct", "width": 0}, v)


def write_case(folder, name, image, labels, label_name=None):
    folder.mkdir(parents=True, exist_ok=True)
    save_nifti(image, folder / f"{name}.nii.gz")
    save_nifti(labels, folder / (label_name or f"{name}_label.nii.gz"))


def test_bad_input_is_skipped_with_reasons(tmp_path):
    ph = mini_world_case(1, 0)
    root = tmp_path / "data"
    write_case(root / "images", "good", ph.image, ph.labels, "../labels/good.nii.gz")
    empty = nib.Nifti1Image(np.zeros(ph.labels.shape, np.uint8), ph.labels.affine)
    write_case(root / "images", "empty", ph.image, empty, "../labels/empty.nii.gz")
    nan = np.asarray(ph.image.dataobj).astype(np.float32)
    nan[3, 3, 3] = np.nan
    write_case(root / "images", "nan", nib.Nifti1Image(nan, ph.image.affine), ph.labels, "../labels/nan.nii.gz")
    four = nib.Nifti1Image(np.stack([np.asarray(ph.image.dataobj)] * 2, -1), ph.image.affine)
    write_case(root / "images", "four", four, ph.labels, "../labels/four.nii.gz")
    save_nifti(ph.image, root / "images" / "nolabel.nii.gz")
    (root / "images" / "corrupt.nii.gz").write_bytes(b"not a nifti")
    save_nifti(ph.labels, root / "labels" / "corrupt.nii.gz")
    spec = {"adapter": "nifti_folder", "root": str(root), "labels": {"1": "ellipsoid", "2": "torus", "3": "blob"},
            "gt": {"samples": 500, "occupancy_res": 16}}
    df = prepare_medical("bad", spec, tmp_path / "out").set_index("item_id")
    assert (df.loc[[f"good__{k}" for k in (1, 2, 3)], "status"] == "ok").all()
    reasons = df[df.status == "skipped"]["reason"].to_dict()
    assert "label map is empty" in reasons["empty__case"]
    assert "NaN" in reasons["nan__case"] and "replace them in the file" in reasons["nan__case"]
    assert "nan_policy" not in reasons["nan__case"]  # an option that does not exist is never recommended
    assert "is 4D" in reasons["four__case"] and "channel" in reasons["four__case"]
    assert "missing" in reasons["nolabel__case"]
    assert "not a readable NIfTI" in reasons["corrupt__case"]
    # a label that is not in the map: a skipped item naming the labels present
    spec_sel = {**spec, "labels": {"1": "ellipsoid", "7": "ghost"}, "select_labels": True}
    sel = prepare_medical("sel", spec_sel, tmp_path / "out2").set_index("item_id")
    assert sel.loc["good__1", "status"] == "ok"
    assert "label 7 is absent" in sel.loc["good__7", "reason"] and "[1, 2, 3]" in sel.loc["good__7", "reason"]
    with pytest.raises(DataSetLayoutError, match="data set root .* is missing"):
        prepare_medical("none", {"adapter": "btcv", "root": str(tmp_path / "nowhere")}, tmp_path / "o3")
    with pytest.raises(VolumeError, match="channel 5 is out of range"):
        load_nifti(root / "images" / "four.nii.gz", "four", channel=5)


def test_mesh_checks_name_the_problem():
    with pytest.raises(MeshError, match="no faces"):
        check_mesh(trimesh.Trimesh(np.random.rand(5, 3), np.zeros((0, 3), int)), "m")
    with pytest.raises(MeshError, match="NaN"):
        check_mesh(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], [[0, 1, 2]], process=False), "m")
    with pytest.raises(MeshError, match="not watertight"):
        check_mesh(trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]]), "m", watertight=True)
    with pytest.raises(MeshError, match="empty mask"):
        mask_surface_world(np.zeros((4, 4, 4), bool), np.eye(4), "m")


def test_published_layout_adapters(tmp_path):
    ph = mini_world_case(2, 0)
    img, lab = ph.image, ph.labels
    # MSD: dataset.json, imagesTr/labelsTr, a 4D multi-modal image (Task01-like) sliced at channel 0
    task = tmp_path / "msd" / "Task01_BrainTumour"
    four = nib.Nifti1Image(np.stack([np.asarray(img.dataobj), -np.asarray(img.dataobj)], -1), img.affine)
    save_nifti(four, task / "imagesTr" / "BRATS_001.nii.gz")
    save_nifti(lab, task / "labelsTr" / "BRATS_001.nii.gz")
    (task / "dataset.json").write_text(json.dumps({
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "modality": {"0": "FLAIR", "1": "T1w"},
        "training": [{"image": "./imagesTr/BRATS_001.nii.gz", "label": "./labelsTr/BRATS_001.nii.gz"}]}))
    df = prepare_medical("msd", {"adapter": "msd", "task": "Task01_BrainTumour", "root": str(tmp_path / "msd"),
                                 "gt": {"samples": 500, "occupancy_res": 16}}, tmp_path / "o_msd")
    assert list(df.status) == ["ok"] * 3 and list(df.label_name) == ["edema", "non-enhancing tumor",
                                                                     "enhancing tumour"]
    assert set(df.modality) == {"mri"} and json.loads(df.intensity[0])["kind"] == "mri"
    # BTCV (Synapse layout)
    save_nifti(img, tmp_path / "btcv/RawData/Training/img/img0001.nii.gz")
    save_nifti(lab, tmp_path / "btcv/RawData/Training/label/label0001.nii.gz")
    df = prepare_medical("btcv", {"adapter": "btcv", "root": str(tmp_path / "btcv"),
                                  "gt": {"samples": 500, "occupancy_res": 16}}, tmp_path / "o_btcv")
    assert list(df.label_name) == ["spleen", "right kidney", "left kidney"]
    # AeroPath: two binary maps combined (lungs = 1, airways = 2)
    case = tmp_path / "aero" / "1"
    labs = np.asarray(lab.dataobj)
    save_nifti(img, case / "1_CT_HR.nii.gz")
    save_nifti(nib.Nifti1Image((labs == 1).astype(np.uint8), img.affine), case / "1_CT_HR_label_lungs.nii.gz")
    save_nifti(nib.Nifti1Image((labs == 2).astype(np.uint8), img.affine), case / "1_CT_HR_label_airways.nii.gz")
    df = prepare_medical("aero", {"adapter": "aeropath", "root": str(tmp_path / "aero"),
                                  "gt": {"samples": 500, "occupancy_res": 16}}, tmp_path / "o_aero")
    assert list(df.label_name) == ["lungs", "airways"] and list(df.n_voxels) == [(labs == 1).sum(), (labs == 2).sum()]
    # Duke C-Spine: the label map on another grid (half resolution) is resampled by nearest neighbour
    coarse_aff = img.affine.copy()
    coarse_aff[:3, :3] *= 2
    coarse = nib.Nifti1Image(labs[::2, ::2, ::2].copy(), coarse_aff)
    save_nifti(img, tmp_path / "duke" / "case7.nii.gz")
    save_nifti(coarse, tmp_path / "duke" / "case7_SEG.nii.gz")
    df = prepare_medical("duke", {"adapter": "duke_cspine", "root": str(tmp_path / "duke"),
                                  "gt": {"samples": 500, "occupancy_res": 16}}, tmp_path / "o_duke")
    assert (df.status == "ok").all() and len(df) == 3


def test_msd_archive_checksum_and_safe_extraction(tmp_path):
    good = tmp_path / "good.tar"
    (tmp_path / "Task06_Lung").mkdir()
    (tmp_path / "Task06_Lung" / "dataset.json").write_text("{}")
    with tarfile.open(good, "w") as t:
        t.add(tmp_path / "Task06_Lung", arcname="Task06_Lung")
    with pytest.raises(DataSetLayoutError, match="the published one is 8afd9977"):
        verify_and_extract(good, "8afd997733c7fc0432f71255ba4e52dc", tmp_path / "x", "msd_lung")
    verify_and_extract(good, None, tmp_path / "x", "msd_lung")
    assert (tmp_path / "x" / "Task06_Lung" / "dataset.json").exists()
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        t.add(tmp_path / "Task06_Lung" / "dataset.json", arcname="../escape.json")
    with pytest.raises(DataSetLayoutError, match="outside"):
        verify_and_extract(evil, None, tmp_path / "y", "msd_lung")
    assert not (tmp_path / "escape.json").exists()


def test_mini_world_items_are_deterministic(tmp_path):
    spec = {"adapter": "phantoms", "cases": 3, "gt": {"samples": 1000, "occupancy_res": 16}, "protocol": {"size": 64}}
    a = prepare_medical("p", spec, tmp_path / "a")
    b = prepare_medical("p", spec, tmp_path / "b")
    assert a.equals(b) and (a.status == "ok").all() and len(a) == 9
    assert set(a.orientation) == {"RAS", "LPS"} and set(a.meta_orientation) == {"ras", "lps", "oblique"}
    for rel in [*a.input_path, *a.gt_samples, *a.gt_mesh, *a.gt_legacy, "volumes/phantom000.nii.gz"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    rgba = np.asarray(Image.open(tmp_path / "a" / a.input_path[0]))
    assert rgba.shape == (64, 64, 4) and rgba[:, :, 3].max() == 255
    gt = np.load(tmp_path / "a" / a.gt_samples[0])
    assert gt["points"].shape == (1000, 3) and np.abs(gt["points"]).max() <= 0.5 + 1e-6
    mesh = trimesh.load(tmp_path / "a" / a.gt_mesh[0])
    assert mesh.is_watertight and abs(mesh.volume - a.volume_mm3[0]) < 1e-3 * a.volume_mm3[0]
