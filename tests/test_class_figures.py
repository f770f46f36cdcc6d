"""The per-class qualitative figures (genbench.plots.classes) on a small synthetic world: two data sets, two models,
tiny shards and manifests whose images encode their cell, class and position, so that each drawn tile can be traced
back to the image the CSV names. Checked: the cells (the best table's choice, over steps and guidance), the pinned
and the best/worst classes (ties to the smaller label id), the labels (FID, CI, MMHM, confidence level), a missing
class drawn as such, and the CSV against the tiles drawn."""

import copy
from pathlib import Path

import matplotlib.text
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from genbench.config import ConfigError, validate_config
from genbench.data.stream import ShardImages
from genbench.layout import Cell
from genbench.metrics.names import best_settings
from genbench.plots import classes
from genbench.plots.figures import draw_figure
from genbench.plots.registry import FIGURES
from genbench.tables.keys import CELL_KEYS_BY_DATASET
from genbench.wiring import Wiring

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"zeta": [0, 1, 2, 3, 4], "alpha": [0, 1, 2, 3]}  # label ids per data set (alpha lacks 4)
NAMES = {0: "c0", 1: "c1", 2: "c2", 3: "c$3", 4: "c4"}  # a '$' must not start mathtext
MISSING = ("a", "zeta", 2)  # model a generated no image of class 2 on zeta
SIZE = 8


def fid_of(ds: str, model: str, steps: int, cfg: float, seed: int) -> float:
    """a: best at 2 steps, CFG 1 (40 / 41 over seeds); b: tied between (1, 2.0) and (2, 1.0) (30): fewer steps
    win. alpha is 3 worse throughout."""
    shift = 3.0 if ds == "alpha" else 0.0
    if model == "a":
        return 50 - 10 * (steps == 2) + 5 * (cfg == 2.0) + seed + shift
    return (30.0 if (steps, cfg) in {(1, 2.0), (2, 1.0)} else 35.0) + shift


def cells():
    for ds in DATASETS:
        for model in ("a", "b"):
            for steps in (1, 2):
                for cfg in (1.0, 2.0):
                    for seed in (0, 1):
                        yield Cell(model, ds, steps, cfg, seed)


def metrics_table() -> pd.DataFrame:
    rows = []
    for c in cells():
        v = fid_of(c.dataset, c.model, c.steps, c.cfg, c.seed)
        base = dict(dataset=c.dataset, model=c.model, steps=c.steps, cfg=c.cfg, seed=c.seed)
        rows.append(base | dict(metric="fid", value=v, ci_low=v - 1, ci_high=v + 1))
        rows.append(base | dict(metric="mmhm", value=1 / v, ci_low=np.nan, ci_high=np.nan))
    return pd.DataFrame(rows)


def per_class_table() -> pd.DataFrame:
    """Per cell and class: ties (0 and 1 lowest, 3 and 4 highest on zeta), a class without a value (2 for a/zeta)."""
    rows = []
    for c in cells():
        for lid in DATASETS[c.dataset]:
            v = {0: 20.0, 1: 20.0, 2: 30.0, 3: 50.0, 4: 50.0}[lid]
            if (c.model, c.dataset, lid) == MISSING:
                v = np.nan
            rows.append(dict(model=c.model, dataset=c.dataset, steps=c.steps, cfg=c.cfg, seed=c.seed, label_id=lid,
                             metric="fid", class_name=NAMES[lid], n=2, n_real=2, value=v, ci_low=v - 2,
                             ci_high=v + 2))
    return pd.DataFrame(rows)


def gen_image(code: int, lid: int, j: int) -> np.ndarray:
    return np.full((SIZE, SIZE, 3), (code, 40 * lid, 100 * j), np.uint8)


@pytest.fixture
def world(tmp_path):
    """Shards of every cell (two images per class) and a manifest per data set (two real images per class; the
    first of class 0 on alpha does not decode)."""
    shards, manifests = {}, {}
    for i, c in enumerate(cells()):
        items, labels, images = [], [], []
        for lid in DATASETS[c.dataset]:
            if (c.model, c.dataset, lid) == MISSING:
                continue
            for j in range(2):
                items.append(f"{c.dataset}-{lid}-{j}")
                labels.append(lid)
                images.append(gen_image(i, lid, j))
        p = tmp_path / "gen" / c.path / "shard-0.npz"
        p.parent.mkdir(parents=True)
        np.savez(p, images=np.stack(images), item_id=np.array(items), label_id=np.array(labels, np.int64))
        shards[c.path] = [str(p)]
    for ds, ids in DATASETS.items():
        root = tmp_path / "data" / ds
        (root / "img").mkdir(parents=True)
        rows = []
        for lid in ids:
            for j in range(2):
                rel = f"img/{lid}_{j}.png"
                if ds == "alpha" and lid == 0 and j == 0:
                    (root / rel).write_bytes(b"not a png")
                else:
                    Image.fromarray(np.full((SIZE, SIZE, 3), (200, 40 * lid, 100 * j), np.uint8)).save(root / rel)
                rows.append(dict(item_id=f"{ds}-real-{lid}-{j}", label_id=lid, label_name=NAMES[lid], prompt="",
                                 path=rel, split="val", source="test", sha256=""))
        pd.DataFrame(rows).to_parquet(root / "manifest.parquet")
        manifests[ds] = str(root / "manifest.parquet")
    return shards, manifests


@pytest.fixture
def drawn(monkeypatch):
    """The figures and the tiles handed to the mosaic, kept for inspection."""
    seen = {"figs": [], "tiles": []}
    save, mosaic = classes.save_figure, classes.mosaic

    def keep_fig(fig, pdf, png):
        seen["figs"].append(" ".join(" ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text)).split()))
        save(fig, pdf, png)

    def keep_tiles(tiles, size, gap_after=None):
        seen["tiles"].append(tiles)
        return mosaic(tiles, size, gap_after)

    monkeypatch.setattr(classes, "save_figure", keep_fig)
    monkeypatch.setattr(classes, "mosaic", keep_tiles)
    return seen


def out_paths(tmp_path, name):
    return [tmp_path / f"{name}.{e}" for e in ("pdf", "png", "csv")]


def check_tiles_match_csv(csv: pd.DataFrame, tiles: list, shards, manifests, panel_col: str | None = None):
    """Every tile drawn is the image the CSV row names (its position in the cell's shards or the manifest), of the
    row's class; a missing tile is a row with present false."""
    for r in csv.itertuples(index=False):
        grid = tiles[getattr(r, panel_col)] if panel_col else tiles
        tile = grid[r.row][r.column]
        if not r.present:
            assert tile is None and pd.isna(r.index)
            continue
        i = int(r.index)
        if r.kind == "generated":
            imgs = ShardImages(shards[Cell(r.model, r.dataset, r.steps, r.cfg, r.seed).path], "x")
            assert imgs.label_id[i] == r.label_id and imgs.item_id[i] == r.item_id
            expected = imgs.load(i)
        else:
            df = pd.read_parquet(manifests[r.dataset])
            assert df["label_id"].iloc[i] == r.label_id and df["path"].iloc[i] == r.path
            expected = np.asarray(Image.open(Path(manifests[r.dataset]).parent / r.path).convert("RGB"))
        assert np.array_equal(tile, expected), r


def test_best_settings_over_steps_and_guidance_ties_to_fewer_steps():
    t = metrics_table()
    best = best_settings(t, "fid", ["dataset", "model"], over=("steps", "cfg"))
    assert best.to_dict("records")[:2] == [{"dataset": "zeta", "model": "a", "steps": 2, "cfg": 1.0},
                                           {"dataset": "zeta", "model": "b", "steps": 1, "cfg": 2.0}]
    default = best_settings(t, "fid", ["dataset", "model", "steps"])  # the best table's choice, unchanged
    assert default[default["dataset"] == "zeta"]["cfg"].tolist() == [1.0, 1.0, 2.0, 1.0]


def test_chosen_cells_are_the_best_settings_at_the_first_seed():
    cells_ = classes.chosen_cells(metrics_table(), "class_pinned")
    assert cells_[[*CELL_KEYS_BY_DATASET, "seeds"]].values.tolist() == [
        ["zeta", "a", 2, 1.0, 0, 2], ["zeta", "b", 1, 2.0, 0, 2], ["alpha", "a", 2, 1.0, 0, 2],
        ["alpha", "b", 1, 2.0, 0, 2]]
    assert cells_["fid"].tolist() == [40.0, 30.0, 43.0, 33.0] and cells_["fid_ci_low"].tolist()[0] == 39.0
    assert np.allclose(cells_["mmhm"], 1 / cells_["fid"])
    by_steps = classes.chosen_cells(metrics_table(), "x", by_steps=True, models=["b"], datasets=["alpha"])
    assert by_steps[["steps", "cfg"]].values.tolist() == [[1, 2.0], [2, 1.0]]
    with pytest.raises(classes.ClassFigureError, match=r"model\(s\) \['nope'\] have no cells.*figure_options"):
        classes.chosen_cells(metrics_table(), "class_pinned", models=["nope"])


def test_rank_classes_ties_to_the_smaller_label_id_and_never_overlap():
    sub = per_class_table()
    sub = sub[(sub["dataset"] == "zeta") & (sub["model"] == "b") & (sub["steps"] == 1) & (sub["cfg"] == 1.0)
              & (sub["seed"] == 0)]
    one = classes.rank_classes(sub, 1)
    assert one[["group", "rank", "label_id"]].values.tolist() == [["best", 1, 0], ["worst", 1, 3]]
    many = classes.rank_classes(sub, 5)  # 5 ranked classes: at most 2 each
    assert many[["group", "label_id"]].values.tolist() == [["best", 0], ["best", 1], ["worst", 3], ["worst", 4]]
    assert set(many["n_ranked"]) == {5}
    single = classes.rank_classes(sub.head(1), 3)
    assert single[["group", "label_id"]].values.tolist() == [["best", 0]]


def test_pinned_classes_default_config_and_unknown():
    labels = {ds: pd.DataFrame({"label_id": ids, "label_name": [NAMES[i] for i in ids]})
              for ds, ids in DATASETS.items()}
    assert classes.pinned_classes(None, 2, labels)[0] == [0, 2]  # evenly spaced over the 4 shared ids
    assert classes.pinned_classes(None, 9, labels)[0] == [0, 1, 2, 3]
    ids, how = classes.pinned_classes(["c$3", 1, 4], 2, labels)
    assert ids == [3, 1, 4] and how == "figure_options.classes"  # 4: only zeta has it; shown as missing on alpha
    with pytest.raises(classes.ClassFigureError, match=r"\['dog', 7\] are in no shown data set"):
        classes.pinned_classes(["dog", 7], 2, labels)


def test_class_pinned_shows_the_pinned_classes_of_each_best_cell(tmp_path, world, drawn):
    shards, manifests = world
    pdf, png, data = out_paths(tmp_path, "pinned")
    out = draw_figure("class_pinned", metrics_table(), pdf, png, data, confidence=0.95, shards=shards,
                      manifests=manifests, options={"k": 2})
    csv = pd.read_csv(data)
    assert len(csv) == len(out) == 2 * 3 * 2  # data sets x (real + 2 models) x pinned classes
    assert csv["label_id"].tolist()[:2] == [0, 2] and csv["pinned_by"].str.startswith("default").all()
    gen = csv[csv["kind"] == "generated"]
    assert gen.drop_duplicates(["dataset", "model"])[list(CELL_KEYS_BY_DATASET)].values.tolist() == [
        ["zeta", "a", 2, 1.0, 0], ["zeta", "b", 1, 2.0, 0], ["alpha", "a", 2, 1.0, 0], ["alpha", "b", 1, 2.0, 0]]
    # the missing class stays, marked
    miss = csv[~csv["present"]]
    assert miss[["kind", "dataset", "model", "label_id"]].values.tolist() == [["generated", "zeta", "a", 2]]
    (tiles,) = drawn["tiles"]
    check_tiles_match_csv(csv, tiles, shards, manifests)
    # the first real image of class 0 on alpha does not decode: the next one is shown, the skip recorded
    r = csv[(csv["kind"] == "real") & (csv["dataset"] == "alpha") & (csv["label_id"] == 0)].iloc[0]
    assert r["item_id"] == "alpha-real-0-1" and r["skipped_undecodable"] == 1
    (text,) = drawn["figs"]
    assert "a on zeta 2 steps, CFG 1 FID 40 [39, 41], MMHM 0.025" in text
    assert "b on alpha 1 step, CFG 2 FID 33 [32, 34], MMHM 0.0303" in text
    assert "95% bootstrap CI" in text and "none" in text and "c2 (2)" in text
    assert Image.open(png).width > 500
    # byte-identical on a second draw
    draw_figure("class_pinned", metrics_table(), tmp_path / "b.pdf", tmp_path / "b.png", tmp_path / "b.csv",
                confidence=0.95, shards=shards, manifests=manifests, options={"k": 2})
    for a, b in ((pdf, tmp_path / "b.pdf"), (png, tmp_path / "b.png"), (data, tmp_path / "b.csv")):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_class_pinned_options_choose_classes_rows_and_order(tmp_path, world, drawn):
    shards, manifests = world
    pdf, png, data = out_paths(tmp_path, "pinned")
    draw_figure("class_pinned", metrics_table(), pdf, png, data, confidence=0.9, shards=shards, manifests=manifests,
                options={"classes": ["c$3", 4], "real": False, "models": ["b"], "datasets": ["alpha", "zeta"]})
    csv = pd.read_csv(data)
    assert csv[["dataset", "model", "label_id", "present"]].values.tolist() == [
        ["alpha", "b", 3, True], ["alpha", "b", 4, False], ["zeta", "b", 3, True], ["zeta", "b", 4, True]]
    check_tiles_match_csv(csv, drawn["tiles"][0], shards, manifests)
    assert r"c\$3 (3)" in drawn["figs"][0]  # escaped: matplotlib shows '$' instead of starting mathtext
    assert "90% bootstrap CI" in drawn["figs"][0]
    with pytest.raises(KeyError, match=r"figure_options.class_pinned: unknown option\(s\) \['colour'\]"):
        draw_figure("class_pinned", metrics_table(), pdf, png, data, confidence=0.9, shards=shards,
                    manifests=manifests, options={"colour": "red"})
    with pytest.raises(classes.ClassFigureError, match="no manifest given for data set zeta"):
        draw_figure("class_pinned", metrics_table(), pdf, png, data, confidence=0.9, shards=shards,
                    manifests={"alpha": manifests["alpha"]})


def test_class_extremes_shows_best_and_worst_classes_beside_real_images(tmp_path, world, drawn):
    shards, manifests = world
    pdf, png, data = out_paths(tmp_path, "extremes")
    out = draw_figure("class_extremes", per_class_table(), pdf, png, data, confidence=0.9,
                      tables={"gen2d_metrics": metrics_table()}, shards=shards, manifests=manifests,
                      options={"k": 1, "images": 2})
    csv = pd.read_csv(data)
    assert len(csv) == len(out) == 4 * 2 * 4  # panels x (best, worst) x (2 generated + 2 real)
    first = csv[csv["panel"] == 0]
    assert first[list(CELL_KEYS_BY_DATASET)].drop_duplicates().values.tolist() == [
        ["zeta", "a", 2, 1.0, 0]]
    # a/zeta: class 2 has no value (no images), 0 and 1 tie lowest, 3 and 4 tie highest: the smaller id each
    assert first.drop_duplicates("row")[["group", "label_id", "value", "n_ranked"]].values.tolist() == [
        ["best", 0, 20.0, 4], ["worst", 3, 50.0, 4]]
    assert set(first["kind"][first["column"] < 2]) == {"generated"} and set(first["kind"][first["column"] >= 2]) == {
        "real"}
    assert (csv["metric"] == "fid").all()
    # alpha's class 0 has one real image that decodes: the second real tile is missing, and says why
    miss = csv[~csv["present"]]
    assert miss[["dataset", "kind", "label_id", "image", "skipped_undecodable"]].values.tolist() == [
        ["alpha", "real", 0, 1, 1]] * 2  # both models' panels on alpha
    check_tiles_match_csv(csv, drawn["tiles"], shards, manifests, panel_col="panel")
    (text,) = drawn["figs"]
    assert "best 1: c0 FID 20 [18, 22]" in text and r"worst 1: c\$3 FID 50 [48, 52]" in text
    assert "cell FID 40 [39, 41]" in text and "90% bootstrap CI" in text
    assert hash(FIGURES["class_extremes"]) == hash(FIGURES["class_extremes"])  # options stay out of the hash


def test_class_extremes_needs_the_chosen_cells_per_class_rows(tmp_path, world):
    shards, manifests = world
    pc = per_class_table()
    pc = pc[~((pc["model"] == "b") & (pc["steps"] == 1) & (pc["cfg"] == 2.0))]
    with pytest.raises(classes.ClassFigureError, match=r"no fid value for cell b/zeta/steps1_cfg2/seed0.*forcerun"):
        draw_figure("class_extremes", pc, *out_paths(tmp_path, "x"), confidence=0.9,
                    tables={"gen2d_metrics": metrics_table()}, shards=shards, manifests=manifests)
    with pytest.raises(KeyError, match=r"table\(s\) \['gen2d_metrics'\] not given"):
        draw_figure("class_extremes", pc, *out_paths(tmp_path, "x"), confidence=0.9, shards=shards,
                    manifests=manifests)


def tiny_config() -> dict:
    return yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())


def test_class_figures_rules_read_every_cells_shards_and_the_manifests():
    config = validate_config(tiny_config())
    w = Wiring(copy.deepcopy(config))
    for name in ("class_pinned", "class_extremes"):
        fig = FIGURES[name]
        inputs, params = w.figure_inputs(fig), w.figure_params(fig)
        expected = [s for c in w.cells for s in w.cell_shards(c)]
        assert inputs["shards"] == expected and len(params["shard_cells"]) == len(expected)
        assert params["shard_cells"][0] == w.cells[0].path
        assert inputs["manifests"] == [f"results/data/{d}/manifest.parquet" for d in params["datasets"]]
        assert params["options"] == fig.resolve_options(config["figure_options"].get(name))
    assert FIGURES["class_extremes"].inputs([])["tables"] == ["results/tables/gen2d_metrics.parquet"]
    assert FIGURES["class_extremes"].per_class and not FIGURES["class_pinned"].per_class
    assert FIGURES["class_pinned"].metrics == ("fid", "mmhm")


def test_config_checks_what_the_class_figures_need():
    base = tiny_config()
    bad = copy.deepcopy(base)
    bad["scoring"]["per_class"] = {"enabled": False}
    bad["figures"] = ["class_extremes"]
    with pytest.raises(ConfigError, match="'class_extremes' needs scoring.per_class.enabled: true"):
        validate_config(bad)
    bad = copy.deepcopy(base)
    bad["scoring"]["metrics"] = ["fid"]
    bad["figures"] = ["class_pinned"]
    with pytest.raises(ConfigError, match="figure 'class_pinned' draws 'mmhm'"):
        validate_config(bad)
    bad = copy.deepcopy(base)
    bad["figure_options"] = {"class_pinned": {"models": ["nope"]}}
    with pytest.raises(ConfigError, match="figure_options.class_pinned.models: unknown model 'nope'"):
        validate_config(bad)
    bad["figure_options"] = {"class_pinned": {"colour": "red"}}
    with pytest.raises(ConfigError, match="colour"):
        validate_config(bad)


def test_schema_options_are_the_registrys():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["figure_options"]["properties"]
    assert {n: set(p["properties"]) for n, p in props.items()} == {
        n: set(f.options) for n, f in FIGURES.items() if f.options}
