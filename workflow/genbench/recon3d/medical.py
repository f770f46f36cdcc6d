"""Medical data sets of the 3D track: adapters from published file layouts to cases, and the stage that turns every
(case, label) into the legacy and corrected single-slice inputs plus ground truth.

Adapters (``datasets3d.<name>.adapter``), each reading the layout its data set is published in:

* ``phantoms`` — the mini-world: :mod:`genbench.recon3d.phantoms` cases written as NIfTI first.
* ``msd`` — Medical Segmentation Decathlon task folders (``TaskXX_Name/dataset.json``, ``imagesTr/``,
  ``labelsTr/``); label names and modality from dataset.json; 4D volumes (Task01) use ``channel`` (default 0 =
  FLAIR, as the seed code). With ``archive:`` the task's .tar is checked against MONAI's published MD5 and
  extracted safely (no member outside the target folder).
* ``btcv`` — BTCV (Synapse "RawData/Training/img/img0001.nii.gz" + "label/label0001.nii.gz", or the seed's
  ``imagesTr``/``labelsTr`` copy with img -> label names), the 13 organ labels.
* ``aeropath`` — AeroPath (Zenodo): ``<case>/<case>_CT_HR.nii.gz`` with ``<case>_CT_HR_label_lungs.nii.gz`` and
  ``..._label_airways.nii.gz`` (binary maps combined as labels 1 = lungs, 2 = airways).
* ``duke_cspine`` — Duke CSpineSeg: ``X.nii.gz`` with ``X_SEG.nii.gz`` in one folder; label maps are resampled to
  the image grid by nearest neighbour, as the seed code does.
* ``nifti_folder`` — any "image + label map" folder pair (``images/`` and ``labels/`` with the same file names, or
  configured sub-folders and label suffix); label names from the config.

Bad input never stops the data set: a case or item that cannot be used becomes a manifest row with
``status = "skipped"`` and the reason (missing file, 4D without a channel, NaNs, empty or absent label, a surface that
is not closed), and is counted in the tables downstream.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

from ..catalog import MEDICAL_ADAPTERS
from ..errors import GenbenchError
from ..io import ArchiveError, safe_extract, save_npz, sha256_file, write_bytes
from .meshes import MeshError, legacy_surface, mask_surface_world, occupancy_grid, surface_samples, unit_cube
from .phantoms import mini_world_case, save_nifti
from .volumes import VolumeError, check_same_grid, corrected_input, legacy_input, load_nifti, volume_data

log = logging.getLogger(__name__)

# MONAI DecathlonDataset's published MD5s of the MSD task archives (monai/apps/datasets.py, MONAI 1.6.1)
MSD_MD5 = {"Task01_BrainTumour": "240a19d752f0d9e9101544901065d872",
           "Task03_Liver": "a90ec6c4aa7f6a3d087205e23d4e6397",
           "Task06_Lung": "8afd997733c7fc0432f71255ba4e52dc"}

BTCV_LABELS = {1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
               7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "portal and splenic veins", 11: "pancreas",
               12: "right adrenal gland", 13: "left adrenal gland"}


@dataclass
class Case:
    case_id: str
    image: Path
    labels: list[tuple[Path, dict[int, int]]]  # label files, each with {value in file: label id}
    names: dict[int, str]
    modality: str = "ct"  # ct | mri
    channel: int | None = None
    resample_labels: bool = False
    meta: dict[str, Any] = field(default_factory=dict)




class DataSetLayoutError(GenbenchError, FileNotFoundError):
    pass


def _root(spec: dict[str, Any], what: str) -> Path:
    root = Path(spec.get("root", ""))
    if not spec.get("root") or not root.exists():
        raise DataSetLayoutError(f"{what}: data set root '{spec.get('root')}' is missing; download the data set "
                                 f"and set datasets3d.{what}.root to its folder")
    return root


def nifti_folder(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    root = _root(spec, name)
    img_dir, lab_dir = root / spec.get("images", "images"), root / spec.get("labels_dir", "labels")
    suffix = spec.get("label_suffix", "")
    names = {int(k): v for k, v in spec.get("labels", {}).items()}
    cases = []
    for img in sorted(img_dir.glob("*.nii*")):
        stem = img.name.split(".nii")[0]
        lab = lab_dir / f"{stem}{suffix}{img.name[len(stem):]}"
        cases.append(Case(stem, img, [(lab, {})], names, spec.get("modality", "ct"), spec.get("channel")))
    if not cases:
        raise DataSetLayoutError(f"{name}: no *.nii / *.nii.gz images in {img_dir}")
    return cases


def verify_and_extract(archive: Path, md5: str | None, target: Path, what: str) -> None:
    """Check an archive's MD5 (when published) and extract it safely into ``target`` (genbench.io)."""
    try:
        safe_extract(archive, target, what, md5=md5)
    except ArchiveError as exc:
        raise DataSetLayoutError(str(exc)) from None


def msd(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    task = spec.get("task")
    if not task:
        raise ValueError(f"{name}: msd needs 'task', e.g. Task03_Liver")
    if spec.get("archive"):
        root = Path(spec.get("root") or work / "extracted")
        if not (root / task / "dataset.json").exists():
            verify_and_extract(Path(spec["archive"]), MSD_MD5.get(task), root, name)
    else:
        root = _root(spec, name)
    folder = root / task
    meta_path = folder / "dataset.json"
    if not meta_path.exists():
        raise DataSetLayoutError(f"{name}: {meta_path} is missing (expected the MSD layout {task}/dataset.json, "
                                 f"imagesTr/, labelsTr/)")
    meta = json.loads(meta_path.read_text())
    names = {int(k): v for k, v in meta.get("labels", {}).items() if int(k) != 0}
    modality = "ct" if "CT" in [str(v).upper() for v in meta.get("modality", {}).values()] else "mri"
    n_mod = len(meta.get("modality", {"0": ""}))
    channel = spec.get("channel", 0) if n_mod > 1 else None
    return [Case(Path(e["image"]).name.split(".nii")[0], folder / e["image"], [(folder / e["label"], {})], names,
                 modality, channel) for e in meta.get("training", [])]


def btcv(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    root = _root(spec, name)
    for img_dir, lab_dir in ((root / "RawData/Training/img", root / "RawData/Training/label"),
                             (root / "imagesTr", root / "labelsTr")):
        if img_dir.is_dir():
            return [Case(p.name.split(".nii")[0], p, [(lab_dir / p.name.replace("img", "label", 1), {})], BTCV_LABELS)
                    for p in sorted(img_dir.glob("img*.nii*"))]
    raise DataSetLayoutError(f"{name}: neither RawData/Training/img nor imagesTr under {root} (BTCV layouts)")


def aeropath(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    root = _root(spec, name)
    cases = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        img = d / f"{d.name}_CT_HR.nii.gz"
        if img.exists():
            cases.append(Case(d.name, img, [(d / f"{d.name}_CT_HR_label_lungs.nii.gz", {1: 1}),
                                            (d / f"{d.name}_CT_HR_label_airways.nii.gz", {1: 2})],
                              {1: "lungs", 2: "airways"}, "ct"))
    if not cases:
        raise DataSetLayoutError(f"{name}: no <case>/<case>_CT_HR.nii.gz under {root} (AeroPath layout)")
    return cases


def duke_cspine(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    root = _root(spec, name)
    names = {int(k): v for k, v in spec.get("labels", {}).items()}
    cases = [Case(p.name[: -len("_SEG.nii.gz")], root / p.name.replace("_SEG.nii.gz", ".nii.gz"), [(p, {})], names,
                  "ct", resample_labels=True) for p in sorted(root.glob("*_SEG.nii.gz"))]
    if not cases:
        raise DataSetLayoutError(f"{name}: no *_SEG.nii.gz label maps in {root} (Duke CSpineSeg layout)")
    return cases


def phantoms(name: str, spec: dict[str, Any], work: Path) -> list[Case]:
    cases = []
    for i in range(int(spec.get("cases", 3))):
        ph = mini_world_case(i, int(spec.get("seed", 0)))
        cid = f"phantom{i:03d}"
        img, lab = work / "volumes" / f"{cid}.nii.gz", work / "volumes" / f"{cid}_label.nii.gz"
        save_nifti(ph.image, img)
        save_nifti(ph.labels, lab)
        cases.append(Case(cid, img, [(lab, {})], {s.label: s.name for s in ph.structures}, "ct",
                          meta={"orientation": ph.orientation}))
    return cases


def load_labels(case: Case, image: nib.Nifti1Image, what: str) -> np.ndarray:
    out = None
    for path, mapping in case.labels:
        lab = load_nifti(path, f"{what} label map")
        raw = volume_data(lab, f"{what} label map")  # decoded (and checked) once, before any resampling
        if case.resample_labels and (lab.shape != image.shape or not np.allclose(lab.affine, image.affine)):
            from nibabel.processing import resample_from_to

            lab = resample_from_to(nib.Nifti1Image(raw, lab.affine), image, order=0)
            raw = np.asarray(lab.dataobj, dtype=np.float64)
        check_same_grid(image, lab, what)
        data = np.rint(raw).astype(np.int32)
        if mapping:
            mapped = np.zeros_like(data)
            for value, label in mapping.items():
                mapped[data == value] = label
            data = mapped
        out = data if out is None else np.where(data > 0, data, out)
    return out


def _png(rgba: np.ndarray, path: Path) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    write_bytes(path, buf.getvalue())


def _ply(mesh, path: Path) -> None:
    write_bytes(path, mesh.export(file_type="ply", encoding="binary"))


def prepare_medical(name: str, spec: dict[str, Any], out_dir: str | Path) -> pd.DataFrame:
    """All items of one medical data set: inputs (legacy + corrected), GT files and the manifest rows (file paths
    relative to ``out_dir``, the manifest's folder)."""
    out_dir = Path(out_dir)
    adapter = MEDICAL_ADAPTERS.lookup(spec["adapter"])
    proto = spec.get("protocol", {})
    gt = spec.get("gt", {})
    n_samples, res, seed = int(gt.get("samples", 100_000)), int(gt.get("occupancy_res", 128)), int(spec.get("seed", 0))
    wanted = {int(k) for k in spec.get("labels", {})} if spec.get("select_labels") else None
    cases = adapter(name, spec, out_dir)
    if spec.get("max_cases"):
        cases = cases[: int(spec["max_cases"])]
    rows = []
    for case in cases:
        what = f"{name}/{case.case_id}"
        source = case.image.relative_to(out_dir) if case.image.is_relative_to(out_dir) else case.image
        base = {"dataset": name, "case_id": case.case_id, "modality": case.modality, "source_image": str(source)}
        try:
            image = load_nifti(case.image, what, case.channel)
            img_data = volume_data(image, what)
            labels = load_labels(case, image, what)
            base["image_sha256"] = sha256_file(case.image)
        except (VolumeError, DataSetLayoutError, OSError) as exc:
            rows.append({**base, "item_id": f"{case.case_id}__case", "label_id": -1, "status": "skipped",
                         "reason": str(exc)})
            log.warning("skipped %s: %s", what, exc)
            continue
        present = sorted(int(v) for v in np.unique(labels) if v != 0)
        targets = sorted(wanted) if wanted else present
        if not targets:
            rows.append({**base, "item_id": f"{case.case_id}__case", "label_id": -1, "status": "skipped",
                         "reason": f"{what}: the label map is empty (no non-zero voxels)"})
            continue
        for label in targets:
            item = f"{case.case_id}__{label}"
            row = {**base, "item_id": item, "label_id": label, "label_name": case.names.get(label, f"label_{label}")}
            try:
                rows.append({**row, **_item(item, image, img_data, labels, label, case, proto, n_samples, res,
                                            seed, out_dir / "items" / item)})
            except (VolumeError, MeshError, ValueError) as exc:
                rows.append({**row, "status": "skipped", "reason": str(exc)})
                log.warning("skipped %s: %s", item, exc)
    df = pd.DataFrame(rows)
    for col in ("label_name", "reason", "input_path", "legacy_input_path"):
        if col not in df:
            df[col] = None
    return df


def _item(item: str, image: nib.Nifti1Image, img_data: np.ndarray, labels: np.ndarray, label: int, case: Case,
          proto: dict[str, Any], n_samples: int, res: int, seed: int, folder: Path) -> dict[str, Any]:
    what = f"{item}"
    lab_img = nib.Nifti1Image(labels.astype(np.int16), image.affine)
    intensity = proto.get("intensity") or ({"kind": "ct", "level": 40, "width": 400} if case.modality == "ct"
                                           else {"kind": "mri", "percentiles": [0.5, 99.5]})
    leg, cmask = legacy_input(img_data, labels, label, what, axis=int(proto.get("legacy_slice_axis", 0)))
    cor = corrected_input(image, lab_img, label, what, plane=proto.get("plane", "axial"),
                          policy=proto.get("policy", "centre"), intensity=intensity,
                          margin=float(proto.get("margin", 0.1)), size=proto.get("size"))
    mesh = mask_surface_world(labels == label, image.affine, what)
    norm = unit_cube(mesh)
    pts, normals = surface_samples(mesh, n_samples, seed)
    occ = occupancy_grid(mesh, norm, res)
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    lv, lf = legacy_surface(cmask, zooms)
    _png(cor.rgba, folder / "input.png")
    _png(leg.rgba, folder / "legacy_input.png")
    _ply(mesh, folder / "gt.ply")
    save_npz(folder / "gt.npz", points=norm.apply(pts).astype(np.float32), normals=normals,
             occupancy=np.packbits(occ.reshape(-1)), occupancy_res=np.int32(res))
    save_npz(folder / "gt_legacy.npz", vertices=lv.astype(np.float32), faces=lf.astype(np.int32))
    rel = f"items/{folder.name}"  # paths relative to the manifest's folder, as the 2D manifests
    return {"status": "ok", "reason": None, "input_path": f"{rel}/input.png",
            "legacy_input_path": f"{rel}/legacy_input.png", "gt_mesh": f"{rel}/gt.ply",
            "gt_samples": f"{rel}/gt.npz", "gt_legacy": f"{rel}/gt_legacy.npz",
            "plane": cor.plane, "slice_index": cor.slice_index, "slice_policy": cor.meta["policy"],
            "pixel_mm": cor.pixel_mm[0], "intensity": json.dumps(intensity, sort_keys=True),
            "legacy_slice_axis": int(leg.plane[-1]),
            "legacy_slice_index": leg.slice_index, "legacy_volume_slice_index": leg.meta["volume_slice_index"],
            "volume_mm3": float(mesh.volume), "n_voxels": int((labels == label).sum()),
            "norm_centre": json.dumps([round(c, 6) for c in norm.centre]), "norm_scale": norm.scale,
            "orientation": "".join(nib.aff2axcodes(image.affine)), **{f"meta_{k}": v for k, v in case.meta.items()}}

