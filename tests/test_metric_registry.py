"""One definition of metric knowledge: every metric name the scoring code emits has a registry entry (direction,
display name, formula anchor that exists in the docs), the schema's metric and figure enums equal the registry's
names, and the directions reproduce the golden tables' ``higher_is_better`` column."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genbench.metrics.registry import (
    LABELS,
    METRICS,
    SCORING_METRICS,
    display_name,
    higher_is_better,
    is_registered,
    lower_is_better,
    metric_info,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/golden/tables"


def _schema() -> dict:
    """The schema validation uses: the file's, with the enums of registry names filled (genbench.config)."""
    from genbench.config import load_schema, with_registry_enums

    return with_registry_enums(load_schema())


def _slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower()
    return "".join(c for c in text if c.isalnum() or c in "-_ ").replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", doc.read_text(), re.M)}


def test_every_entry_names_an_existing_formula_anchor():
    for track, table in METRICS.items():
        for m in table.values():
            path, _, anchor = m.doc.partition("#")
            assert anchor in _anchors(ROOT / path), (track, m.name, m.doc)
            assert m.direction in ("lower", "higher", "none") and m.display


def test_schema_metric_enum_equals_the_requestable_2d_metrics():
    enum = _schema()["properties"]["scoring"]["properties"]["metrics"]["items"]["enum"]
    assert sorted(enum) == sorted(SCORING_METRICS) and len(enum) == len(set(enum))
    assert list(LABELS) == SCORING_METRICS


def test_schema_figure_enum_equals_the_figure_registry():
    from genbench.config import FIGURE_METRICS
    from genbench.plots.registry import FIGURES

    enum = _schema()["properties"]["figures"]["items"]["enum"]
    assert sorted(enum) == sorted(FIGURES) == sorted(FIGURE_METRICS)
    for name, fig in FIGURES.items():  # every figure draws a metric the registry knows and the config can request
        assert fig.kwargs["metric"] == FIGURE_METRICS[name] and FIGURE_METRICS[name] in SCORING_METRICS


def test_every_2d_metric_score_cell_emits_is_registered():
    from genbench.metrics.score2d import score_cell

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(80, 8))
    spatial = rng.normal(size=(80, 12))
    real = {"features": feats[:40], "spatial": spatial[:40]}
    gen = {"features": feats[40:], "logits": rng.normal(size=(40, 5)), "spatial": spatial[40:]}
    ids = np.array([f"i{k}" for k in range(40)])
    text = rng.normal(size=(40, 6))
    real_ti = {"item_id": ids, "image_emb": text + rng.normal(size=(40, 6)), "text_emb": text,
               "logit_scale": np.float64(np.log(100.0))}
    gen_ti = {"item_id": ids, "image_emb": text + 1.5 * rng.normal(size=(40, 6))}
    dino = ({"features": rng.normal(size=(40, 4))}, {"features": rng.normal(size=(40, 4))}, "dino")
    wanted = [m for m in SCORING_METRICS if m != "mmhm"]  # MMHM is computed over the sweep (aggregate_gen2d)
    df = score_cell(real, gen, cell=dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0), metrics=wanted,
                    is_splits=2, bootstrap={"n": 5, "confidence": 0.9, "seed": 0},
                    kid={"subsets": 5, "subset_size": 20}, text_image={"clip": (real_ti, gen_ti),
                                                                      "pick": (real_ti, gen_ti)},
                    dinov2=dino, fd_inf={"points": 3, "min_n": 10})
    emitted = set(df["metric"])
    assert set(wanted) <= emitted
    assert {m for m in emitted if not is_registered(m, "2d")} == set()


def test_every_3d_metric_the_scorers_emit_is_registered():
    from genbench.recon3d.distances import distance_bundle, surface_metrics

    rng = np.random.default_rng(0)
    p, g = rng.normal(size=(50, 3)), rng.normal(size=(60, 3))
    names = set(distance_bundle(p, g, taus=(0.005, 0.01), pred_normals=p, gt_normals=g))
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    names |= set(surface_metrics(a, np.roll(a, 1, 0)))
    # the legacy protocol's and the appearance stage's names (those functions need meshes, renders, models)
    names |= {"f1", "precision", "recall", "point_bin_iou", "point_bin_dice", "solid_iou", "solid_dice", "emd",
              "icp_fitness", "icp_rmse", "sample_spacing", "iou", "psnr", "ssim", "silhouette_iou", "lpips",
              "clip_input", "fd_inception", "kd_dinov2"}
    assert {m for m in names if not is_registered(m, "3d")} == set()


@pytest.mark.parametrize("table,column,track", [
    ("gen2d_metrics", "metric", "2d"), ("gen2d_per_class", "metric", "2d"), ("gen2d_pairwise", "metric", "2d"),
    ("metric_validation", "metric", "2d"), ("gen2d_selection_stability", "criterion", "2d"),
    ("recon3d_summary", "metric", "3d"), ("recon3d_pairwise", "metric", "3d")])
def test_every_metric_in_the_golden_tables_is_registered(table, column, track):
    names = set(pd.read_parquet(GOLDEN / f"{table}.parquet")[column])
    assert names and {m for m in names if not is_registered(m, track)} == set()


def test_protocol_delta_directions_follow_the_registry():
    df = pd.read_parquet(GOLDEN / "protocol_delta.parquet")
    rows = df[(df["metric"] != "*") & df["higher_is_better"].notna()]
    assert len(rows)
    for (track, metric), hib in rows.groupby(["track", "metric"])["higher_is_better"]:
        assert set(hib) == {higher_is_better(metric, track)}, (track, metric)


def test_directions_reproduce_the_golden_3d_summary():
    s = pd.read_parquet(GOLDEN / "recon3d_summary.parquet")
    for metric, hib in s.groupby("metric")["higher_is_better"]:
        assert set(hib) == {higher_is_better(metric, "3d")}, metric


def test_lookups():
    assert lower_is_better("fid") and not lower_is_better("is") and lower_is_better("fid_inf")
    assert metric_info("fscore@0.01", "3d").name == "fscore@{tau}"
    assert metric_info("precision", "3d").name == "precision" and metric_info("precision").track == "2d"
    assert display_name("fscore@0.01", "3d") == "F-score@0.01" and display_name("voxel_hd95", "3d") == "voxel HD95"
    assert display_name("fid_inf") == "FID∞" and display_name("unknown_metric") == "unknown_metric"
    assert not higher_is_better("chamfer_l1", "3d") and not higher_is_better("fd_inception", "3d")
    with pytest.raises(KeyError, match="not in genbench.metrics.registry"):
        metric_info("nonsense", "3d")
