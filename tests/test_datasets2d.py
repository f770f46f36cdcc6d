"""The real 2D data set adapters on hand-built copies of their published layouts (ImageNet val archive +
devkit, ImageNetV2's numbered folders, reLAIONet's class folders), and the committed class table."""

import io
import tarfile

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from genbench.data.classes import folder_lookup, imagenet_classes
from genbench.data.imagenet import DataSetError, imagenet_val, imagenetv2, imagenetv2_items, relaionet
from genbench.data.manifest import validate_manifest

CLASSES = imagenet_classes()


def _jpeg(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path, format="JPEG")


def test_class_table_matches_timm_files():
    """The committed table is what resources/build_imagenet_classes.py makes from timm's files."""
    from importlib import resources

    info = resources.files("timm.data._info")
    synsets = info.joinpath("imagenet_synsets.txt").read_text().split()
    assert CLASSES["synset"].tolist() == synsets
    lemma = dict(line.split("\t") for line in info.joinpath("imagenet_synset_to_lemma.txt").read_text().splitlines())
    assert CLASSES.loc[207, "name"] == "golden retriever" and lemma["n02099601"] == "golden retriever"
    assert CLASSES.loc[0, "lemmas"] == ["tench", "Tinca tinca"]
    assert CLASSES.loc[0, "definition"].startswith("freshwater dace-like game fish")
    # 'crane' is a bird (134) and a machine (517): a folder called crane cannot be resolved
    assert "crane" not in folder_lookup(CLASSES) and folder_lookup(CLASSES)["n02012849"] == 134


def test_imagenetv2_labels_are_int_folder_names(tmp_path):
    """Folders '0'..'11': text order would put '10' and '11' before '2' and mislabel (the ImageFolder pitfall)."""
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for label in range(12):
        _jpeg(root / str(label) / f"img{label}.jpeg", label * 10)
    items = imagenetv2_items(root)
    assert {rel.split("/")[1]: lab for _, lab, rel in items} == {str(i): i for i in range(12)}
    import torchvision

    folder = torchvision.datasets.ImageFolder(str(root))
    assert folder.class_to_idx["10"] == 2  # the pitfall the adapter avoids
    df = imagenetv2("v2", {"root": str(tmp_path), "variant": "matched-frequency"}, {}, tmp_path / "out")
    validate_manifest(df, "v2")
    row = df[df["path"] == "images/10/img10.jpeg"].iloc[0]
    assert row["label_id"] == 10 and row["label_name"] == CLASSES.loc[10, "name"]
    assert row["prompt"] == f"a photo of a {CLASSES.loc[10, 'name']}"
    assert (tmp_path / "out" / row["path"]).is_file()  # images/ links to the variant folder
    (root / "x").mkdir()
    with pytest.raises(DataSetError, match="folder 'x' is not a class id"):
        imagenetv2("v2", {"root": str(tmp_path)}, {}, tmp_path / "out2")
    with pytest.raises(DataSetError, match="variant 'bogus' unknown"):
        imagenetv2("v2", {"root": str(tmp_path), "variant": "bogus"}, {}, tmp_path / "out3")


def _devkit(tmp_path, gt_ids):
    """A devkit whose ILSVRC2012_IDs are a shuffled order of the sorted WordNet ids, as in the real meta.mat."""
    rng = np.random.default_rng(0)
    order = rng.permutation(1000)  # ILSVRC2012_ID i+1 -> synset CLASSES[order[i]]
    dt = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("gloss", "O"), ("num_children", "O"),
          ("children", "O"), ("wordnet_height", "O"), ("num_train_images", "O")]
    syn = np.zeros(1001, dtype=dt)
    for i in range(1000):
        syn[i] = (i + 1, CLASSES.loc[order[i], "synset"], "w", "g", 0, np.zeros(0), 0, 1300)
    syn[1000] = (1001, "n00001740", "entity", "g", 5, np.zeros(0), 1, 0)  # an inner node: not a class
    d = tmp_path / "ILSVRC2012_devkit_t12" / "data"
    d.mkdir(parents=True)
    savemat(d / "meta.mat", {"synsets": syn})
    (d / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{g}\n" for g in gt_ids))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "ILSVRC2012_devkit_t12", arcname="ILSVRC2012_devkit_t12")
    return buf.getvalue(), order


def test_imagenet_val_archive_and_devkit(tmp_path):
    gt_ids = [5, 1, 1000]
    devkit, order = _devkit(tmp_path / "mk", gt_ids)
    root = tmp_path / "imagenet"
    root.mkdir()
    (root / "ILSVRC2012_devkit_t12.tar.gz.custom").write_bytes(devkit)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(3):
            data = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), i * 50, np.uint8)).save(data, format="JPEG")
            info = tarfile.TarInfo(f"ILSVRC2012_val_{i + 1:08d}.JPEG")
            info.size = len(data.getvalue())
            tar.addfile(info, io.BytesIO(data.getvalue()))
    (root / "val.tar").write_bytes(buf.getvalue())
    spec = {"root": str(root / "val.tar"), "devkit": str(root / "ILSVRC2012_devkit_t12.tar.gz.custom")}
    df = imagenet_val("inval", spec, {}, tmp_path / "out")
    validate_manifest(df, "inval")
    assert df["item_id"].tolist() == [f"ILSVRC2012_val_{i:08d}" for i in (1, 2, 3)]
    # ground-truth ILSVRC2012_IDs map through meta.mat's WNIDs to the sorted-synset label ids
    assert df["label_id"].tolist() == [int(order[g - 1]) for g in gt_ids]
    assert df["synset"].tolist() == [CLASSES.loc[order[g - 1], "synset"] for g in gt_ids]
    assert all((tmp_path / "out" / p).is_file() for p in df["path"])


def test_imagenet_val_archive_cannot_escape(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../evil.JPEG")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / "val.tar").write_bytes(buf.getvalue())
    from genbench.io import ArchiveError

    with pytest.raises(ArchiveError, match="outside"):
        imagenet_val("inval", {"root": str(tmp_path / "val.tar")}, {}, tmp_path / "out")
    assert not (tmp_path / "evil.JPEG").exists() and not (tmp_path / "out" / "evil.JPEG").exists()


def test_imagenet_val_class_folders(tmp_path):
    root = tmp_path / "imagenet"
    _jpeg(root / "val" / "n01440764" / "ILSVRC2012_val_00000293.JPEG", 10)
    _jpeg(root / "val" / "n02099601" / "ILSVRC2012_val_00000001.JPEG", 20)
    df = imagenet_val("inval", {"root": str(root)}, {}, tmp_path / "out")
    assert dict(zip(df["item_id"], df["label_id"], strict=True)) == {"ILSVRC2012_val_00000293": 0,
                                                                      "ILSVRC2012_val_00000001": 207}


def test_relaionet_released_layout(tmp_path):
    base = tmp_path / "reLAIONet-cleaned-v1" / "images"
    _jpeg(base / "golden_retriever" / "a.jpg", 1)
    _jpeg(base / "n01440764" / "b.png", 2)
    _jpeg(base / "carpenter_s_kit" / "c.jpg", 3)
    df = relaionet("rl", {"root": str(tmp_path)}, {}, tmp_path / "out")
    kit = int(CLASSES.index[CLASSES["name"] == "carpenter's kit"][0])
    assert dict(zip(df["path"], df["label_id"], strict=True)) == {
        "images/golden_retriever/a.jpg": 207, "images/n01440764/b.png": 0, "images/carpenter_s_kit/c.jpg": kit}
    _jpeg(base / "crane" / "d.jpg", 4)  # two classes are called crane
    with pytest.raises(DataSetError, match=r"\['crane'\].*WordNet ids"):
        relaionet("rl", {"root": str(tmp_path)}, {}, tmp_path / "out2")


def test_class_name_tables(tmp_path):
    """Regression: one name table, in which 'crane' and 'maillot' name two classes each; now a selectable table
    (wordnet, the anchor's underscored names, disambiguated), written into the prompts and the manifest."""
    from genbench.data.classes import class_names_table, shared_names

    wordnet = class_names_table(CLASSES, "wordnet")
    assert shared_names(wordnet) == {"crane": [134, 517], "maillot": [638, 639]}
    anchor = class_names_table(CLASSES, "anchor")
    assert anchor[2] == "great_white_shark" and anchor[0] == "tench" and anchor[607] == "jack-o'-lantern"
    dis = class_names_table(CLASSES, "disambiguated")
    assert len(set(dis)) == 1000
    assert [dis[i] for i in (134, 517, 638, 639)] == ["crane bird", "construction crane", "tights",
                                                      "one-piece bathing suit"]
    assert sum(a != b for a, b in zip(dis, wordnet, strict=True)) == 4  # only the shared names change
    with pytest.raises(ValueError, match="unknown class-name table 'keras'"):
        class_names_table(CLASSES, "keras")
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for label in (134, 517):
        _jpeg(root / str(label) / f"img{label}.jpeg", 100)
    df = imagenetv2("v2", {"root": str(tmp_path), "class_names": "disambiguated"}, {}, tmp_path / "out")
    validate_manifest(df, "v2")
    assert sorted(df["prompt"]) == ["a photo of a construction crane", "a photo of a crane bird"]
    assert set(df["class_names"]) == {"disambiguated"}
    df = imagenetv2("v2", {"root": str(tmp_path), "class_names": "anchor"}, {}, tmp_path / "out2")
    assert set(df["prompt"]) == {"a photo of a crane"}


def test_class_names_only_for_imagenet_adapters(root):
    import copy

    import yaml

    from genbench.config import ConfigError, validate_config

    cfg = yaml.safe_load(open(root / "config/config.yaml"))
    name = next(n for n, d in cfg["datasets"].items() if d["adapter"] == "miniworld")
    bad = copy.deepcopy(cfg)
    bad["datasets"][name]["class_names"] = "anchor"
    with pytest.raises(ConfigError, match=f"datasets.{name}.class_names: only the ImageNet adapters"):
        validate_config(bad)


def test_class_name_table_recorded_in_metric_tables(root, tmp_path):
    import pandas as pd
    import yaml

    from genbench.config import validate_config
    from genbench.stages import stage_aggregate
    from genbench.tables import read_metadata, write_parquet

    cfg = validate_config(yaml.safe_load(open(root / "config/paper.yaml")))
    cfg["scoring"]["metrics"] = ["fid"]
    cfg["datasets"]["imagenetv2"]["class_names"] = "anchor"
    rows = pd.DataFrame({"dataset": ["imagenet_val", "imagenetv2"], "model": ["sit", "sit"], "steps": [1, 1],
                         "cfg": [1.0, 1.0], "seed": [0, 0], "metric": ["fid", "fid"], "value": [1.0, 2.0]})
    write_parquet(rows, tmp_path / "cell.parquet")
    # the rule passes the config subset select() makes (common.smk: class_name_paths()), as the workflow does
    from genbench.config import select

    paths = ["scoring", "extractors", "embedders", "sweep",
             *[f"datasets.{d}.{k}" for d in cfg["datasets"] for k in ("adapter", "class_names")]]
    stage_aggregate([tmp_path / "cell.parquet"], select(cfg, *paths), "hash", tmp_path / "all.parquet")
    assert read_metadata(tmp_path / "all.parquet")["class_names"] == {"imagenet_val": "disambiguated",
                                                                      "imagenetv2": "anchor"}
    # a subset without data sets (an older rule) records none instead of failing the job
    stage_aggregate([tmp_path / "cell.parquet"], select(cfg, *paths[:4]), "hash", tmp_path / "all.parquet")
    assert read_metadata(tmp_path / "all.parquet")["class_names"] == {}


def test_aggregated_tables_take_the_extractors_preprocessing_from_the_feature_records(root, tmp_path):
    """The extractor's preprocessing in the aggregated table's metadata is what the feature stage recorded (the
    .npz runtime record the score table carries), so aggregation never imports the extractor's code and torch."""
    import pandas as pd
    import yaml

    from genbench.config import select, validate_config
    from genbench.stages import stage_aggregate
    from genbench.tables import read_metadata, write_parquet

    cfg = validate_config(yaml.safe_load(open(root / "config/config.yaml")))
    cfg["scoring"]["metrics"] = ["fid"]
    rows = pd.DataFrame({"dataset": ["mw_val"], "model": ["sit_mini"], "steps": [1], "cfg": [1.0], "seed": [0],
                         "metric": ["fid"], "value": [1.0]})
    record = {"cell_features": {"device": "cpu"}, "preprocessing": "as the stage said"}
    write_parquet(rows, tmp_path / "old.parquet")  # a table from before the record held it
    write_parquet(rows, tmp_path / "cell.parquet", metadata={"runtime": {"generated features": record}})
    sub = select(cfg, "scoring", "extractors", "embedders", "sweep")
    stage_aggregate([tmp_path / "old.parquet", tmp_path / "cell.parquet"], sub, "hash", tmp_path / "all.parquet")
    got = read_metadata(tmp_path / "all.parquet")["extractors"]["mw_classifier"]
    assert got == {"kind": "miniworld_classifier", "preprocessing": "as the stage said"}
    stage_aggregate([tmp_path / "old.parquet"], sub, "hash", tmp_path / "all.parquet")
    assert read_metadata(tmp_path / "all.parquet")["extractors"]["mw_classifier"]["preprocessing"].startswith(
        "not recorded")
