"""Adapters of the real 2D data sets: ImageNet val (ILSVRC-2012), ImageNetV2 and reLAIONet as released.

Each writes ``results/data/{name}/`` with an ``images`` entry and returns the manifest (paths relative to the
manifest's folder). A local folder is linked (``images`` -> the folder, nothing copied); an archive is checked
against its published MD5 and extracted safely into ``images``. Labels are the standard ImageNet ids 0..999
(sorted WordNet ids; resources/imagenet_classes.tsv).

- ImageNet val: ``root`` holds ``ILSVRC2012_img_val.tar`` (or ``val/``, the 50,000 JPEGs flat, or one folder per
  WordNet id) and the devkit ``ILSVRC2012_devkit_t12.tar.gz`` (or its extracted folder). The devkit's ground truth
  lists ILSVRC2012_IDs (1..1000, *not* the sorted order); data/meta.mat maps them to WordNet ids.
- ImageNetV2: ``root`` holds ``imagenetv2-{variant}-format-val/`` (or is it) with folders "0".."999". The label
  is ``int(folder_name)``: torchvision's ImageFolder sorts folder names as text ("10" < "2") and mislabels them.
- reLAIONet as released: ``root`` holds ``reLAIONet-cleaned-v1/images/{class}/`` (or is that folder); a folder
  is a WordNet id, a class name or one of its lemmas, compared lower-case with spaces, hyphens and apostrophes as
  underscores. A folder that names no class, or two, is an error naming it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import GenbenchError
from ..io import atomic_path, safe_extract, sha256_file
from .classes import class_names_table, folder_lookup, imagenet_classes, norm_folder_name

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
IMAGENET_VAL_TAR = ("ILSVRC2012_img_val.tar", "29b22e2961454d5413ddabcf34fc5622")
IMAGENET_DEVKIT = ("ILSVRC2012_devkit_t12.tar.gz", "fa75699e90414af021442c21a62c3abf")
IMAGENETV2_VARIANTS = {"matched-frequency": "imagenetv2-matched-frequency-format-val",
                       "threshold0.7": "imagenetv2-threshold0.7-format-val",
                       "top-images": "imagenetv2-top-images-format-val"}
RELAIONET_DIR = "reLAIONet-cleaned-v1"


class DataSetError(GenbenchError, FileNotFoundError):
    pass


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def link_images(out_dir: Path, source: Path) -> Path:
    """``out_dir/images`` -> ``source`` (a symlink, replaced atomically), so manifest paths stay relative."""
    out_dir.mkdir(parents=True, exist_ok=True)
    link = out_dir / "images"
    if link.is_symlink() and Path(os.readlink(link)) == source.resolve():
        return link
    if link.exists() and not link.is_symlink():
        raise DataSetError(f"{link} exists and is not a link; remove it (an earlier extraction?)")
    tmp = out_dir / ".images.link.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(source.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link


def _rows(name: str, items: list[tuple[str, int, str]], out_dir: Path, spec: dict[str, Any], split: str,
          source: str, classes: pd.DataFrame) -> pd.DataFrame:
    template = spec.get("prompt_template", "a photo of a {class}")
    table = spec.get("class_names", "wordnet")
    names = class_names_table(classes, table)
    rows = []
    for item_id, label, rel in items:
        rows.append({"item_id": item_id, "label_id": int(label), "label_name": names[label],
                     "prompt": template.format(**{"class": names[label]}), "path": rel, "split": split,
                     "source": source, "sha256": sha256_file(out_dir / rel),
                     "synset": classes["synset"].iat[label], "class_names": table})
    if not rows:
        raise DataSetError(f"{name}: no images found")
    log.info("%s: %d images, %d classes", name, len(rows), len({r["label_id"] for r in rows}))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- ImageNet val


def devkit_labels(devkit: Path, work: Path) -> tuple[list[int], list[str]]:
    """The validation ground truth of the ILSVRC-2012 devkit as sorted-WordNet-id label ids (one per image in
    file order), and the WordNet ids in ILSVRC2012_ID order."""
    from scipy.io import loadmat

    if devkit.is_file():
        target = work / "devkit"
        if not (target / "ILSVRC2012_devkit_t12").is_dir():
            md5 = IMAGENET_DEVKIT[1] if devkit.name == IMAGENET_DEVKIT[0] else None
            safe_extract(devkit, target, f"ImageNet devkit {devkit}", md5=md5)
        devkit = target
    if (devkit / "ILSVRC2012_devkit_t12").is_dir():
        devkit = devkit / "ILSVRC2012_devkit_t12"
    meta_path, gt_path = devkit / "data" / "meta.mat", devkit / "data" / "ILSVRC2012_validation_ground_truth.txt"
    for p in (meta_path, gt_path):
        if not p.is_file():
            raise DataSetError(f"ImageNet devkit: {p} is missing; point `devkit` at ILSVRC2012_devkit_t12.tar.gz "
                               f"or its extracted folder")
    synsets = loadmat(meta_path, squeeze_me=True)["synsets"]
    leaves = [s for s in synsets if int(s["num_children"]) == 0]
    by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in leaves}
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise DataSetError(f"{meta_path}: leaf ILSVRC2012_IDs are not 1..{len(by_id)}")
    sorted_wnids = sorted(by_id.values())
    index = {w: i for i, w in enumerate(sorted_wnids)}
    gt = [int(x) for x in gt_path.read_text().split()]
    return [index[by_id[g]] for g in gt], sorted_wnids


def imagenet_val(name: str, spec: dict[str, Any], config: dict[str, Any], out_dir: Path) -> pd.DataFrame:
    classes = imagenet_classes()
    root = Path(spec["root"])
    if not root.exists():
        raise DataSetError(f"{name}: root {root} is missing; put {IMAGENET_VAL_TAR[0]} (or val/) and "
                           f"{IMAGENET_DEVKIT[0]} there (https://image-net.org, login required)")
    tar, folder = root / IMAGENET_VAL_TAR[0], root / "val"
    if root.is_file():
        tar, folder = root, Path("/nonexistent")
    if folder.is_dir():
        images = link_images(out_dir, folder)
    elif tar.is_file():
        images = out_dir / "images"
        if not (out_dir / ".extracted").is_file():
            md5 = IMAGENET_VAL_TAR[1] if tar.name == IMAGENET_VAL_TAR[0] else spec.get("md5")
            safe_extract(tar, images, f"{name}: {tar}", md5=md5)
            with atomic_path(out_dir / ".extracted") as tmp:
                tmp.write_text(tar.name)
    else:
        raise DataSetError(f"{name}: neither {folder} nor {tar} exists")
    subdirs = sorted(p for p in images.iterdir() if p.is_dir() and re.fullmatch(r"n\d{8}", p.name))
    items = []
    if subdirs:  # one folder per WordNet id (the common re-arranged layout): labels from the folder names
        index = dict(zip(classes["synset"], classes["label_id"], strict=True))
        unknown = [d.name for d in subdirs if d.name not in index]
        if unknown:
            raise DataSetError(f"{name}: folders {unknown[:5]} are not ILSVRC-2012 WordNet ids")
        for d in subdirs:
            items += [(p.stem, index[d.name], f"images/{d.name}/{p.name}") for p in _images(d)]
    else:
        files = _images(images)
        devkit = Path(spec.get("devkit") or root / IMAGENET_DEVKIT[0])
        if not devkit.exists():
            devkit = root / "ILSVRC2012_devkit_t12"
        labels, wnids = devkit_labels(devkit, out_dir)
        if wnids != classes["synset"].tolist():
            raise DataSetError(f"{name}: the devkit's WordNet ids differ from resources/imagenet_classes.tsv")
        if len(files) != len(labels):
            raise DataSetError(f"{name}: {len(files)} images but {len(labels)} ground-truth labels in the devkit")
        pat = re.compile(r"ILSVRC2012_val_(\d{8})")
        for p in files:
            m = pat.fullmatch(p.stem)
            if not m:
                raise DataSetError(f"{name}: unexpected file name {p.name} (expected ILSVRC2012_val_XXXXXXXX.JPEG)")
            items.append((p.stem, labels[int(m.group(1)) - 1], f"images/{p.name}"))
    return _rows(name, items, out_dir, spec, "val", "imagenet", classes)


# ---------------------------------------------------------------- ImageNetV2


def imagenetv2_items(folder: Path) -> list[tuple[str, int, str]]:
    """(item_id, label, relative path) for a variant folder: label = int(folder name), never the text order."""
    items = []
    for d in sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name)):
        if not d.name.isdigit() or not 0 <= int(d.name) < 1000:
            raise DataSetError(f"ImageNetV2 {folder}: folder '{d.name}' is not a class id 0..999")
        label = int(d.name)
        items += [(f"{label}/{p.stem}", label, f"images/{d.name}/{p.name}") for p in _images(d)]
    return items


def imagenetv2(name: str, spec: dict[str, Any], config: dict[str, Any], out_dir: Path) -> pd.DataFrame:
    variant = spec.get("variant", "matched-frequency")
    if variant not in IMAGENETV2_VARIANTS:
        raise DataSetError(f"{name}: variant '{variant}' unknown; use one of {sorted(IMAGENETV2_VARIANTS)}")
    root = Path(spec["root"])
    folder = root / IMAGENETV2_VARIANTS[variant]
    if not folder.is_dir() and root.name == IMAGENETV2_VARIANTS[variant]:
        folder = root
    if not folder.is_dir():
        raise DataSetError(f"{name}: {folder} is missing; download {IMAGENETV2_VARIANTS[variant]}.tar.gz from "
                           f"the ImageNetV2 release (Hugging Face vaishaal/ImageNetV2) and extract it into {root}")
    link_images(out_dir, folder)
    return _rows(name, imagenetv2_items(folder), out_dir, spec, f"v2-{variant}", "imagenetv2", imagenet_classes())


# ---------------------------------------------------------------- reLAIONet (released)


def relaionet(name: str, spec: dict[str, Any], config: dict[str, Any], out_dir: Path) -> pd.DataFrame:
    classes = imagenet_classes()
    root = Path(spec["root"])
    base = root if root.name == RELAIONET_DIR else root / RELAIONET_DIR
    folder = base / "images" if (base / "images").is_dir() else base
    if not folder.is_dir():
        raise DataSetError(f"{name}: {base} is missing; download the Hugging Face data set "
                           f"harvardairobotics/reLAIONet into {root}")
    lookup = folder_lookup(classes)
    link_images(out_dir, folder)
    items, unknown, folder_of = [], [], {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        label = lookup.get(norm_folder_name(d.name))
        if label is None:
            unknown.append(d.name)
            continue
        if label in folder_of:
            raise DataSetError(f"{name}: folders '{folder_of[label]}' and '{d.name}' are the same class; merge them")
        folder_of[label] = d.name
        items += [(f"{d.name}/{p.stem}", label, f"images/{d.name}/{p.name}") for p in _images(d)]
    if unknown:
        raise DataSetError(f"{name}: class folder(s) {unknown[:10]} name no single ImageNet class (or two); "
                           f"rename them to their WordNet ids (e.g. n01440764)")
    return _rows(name, items, out_dir, spec, "relaionet", "relaionet", classes)
