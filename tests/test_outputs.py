"""Figures and paper tables drawn from a synthetic metrics table: what they select, their order, their escaping,
and byte-identical output for identical input."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.config import FIGURE_METRICS, ConfigError, validate_config
from genbench.plots.figures import FIGURES, best_settings, draw_figure
from genbench.tables.export import best_table, export_tables, latex_escape, to_html, to_markdown, wide_table


def table() -> pd.DataFrame:
    """Two data sets (in config order 'zeta' before 'alpha'), two models, steps x cfg; FID best at cfg 2 for
    steps 1 and tied between cfg 2 and 4 for model b."""
    rows = []
    fid = {("a", 1): {1.0: 30.0, 2.0: 20.0, 4.0: 25.0}, ("a", 4): {1.0: 12.0, 2.0: 9.0, 4.0: 10.0},
           ("b", 1): {1.0: 40.0, 2.0: 35.0, 4.0: 35.0}, ("b", 4): {1.0: 15.0, 2.0: 14.0, 4.0: 16.0}}
    for ds, shift in (("zeta", 0.0), ("alpha", 5.0)):
        for (model, steps), by_cfg in fid.items():
            for cfg, v in by_cfg.items():
                cell = dict(dataset=ds, model=model, steps=steps, cfg=cfg, seed=0, nfe=steps * 2,
                            forward_passes=steps * 4, n=100, n_real=100, note="", extractor="x")
                rows.append(cell | dict(metric="fid", value=v + shift, ci_low=v + shift - 1, ci_high=v + shift + 1,
                                        ci_method="bootstrap"))
                rows.append(cell | dict(metric="is", value=100 / v, ci_low=100 / v - 0.1, ci_high=100 / v + 0.1,
                                        ci_method="bootstrap"))
                rows.append(cell | dict(metric="is_std", value=0.05, ci_low=np.nan, ci_high=np.nan, ci_method="none"))
                rows.append(cell | dict(metric="kid", value=v / 1000, ci_low=np.nan, ci_high=np.nan, ci_method="none"))
                rows.append(cell | dict(metric="kid_std", value=v / 1e5, ci_low=np.nan, ci_high=np.nan,
                                        ci_method="none"))
    return pd.DataFrame(rows)


def test_figure_registry_matches_config_check():
    assert set(FIGURES) == set(FIGURE_METRICS)
    for name, fig in FIGURES.items():
        assert fig.kwargs["metric"] == FIGURE_METRICS[name]


def test_config_rejects_figure_without_its_metric(default_config):
    default_config["scoring"]["metrics"] = ["fid"]
    default_config["figures"] = ["fid_vs_cfg", "is_vs_cfg"]
    with pytest.raises(ConfigError, match=r"figures.1: figure 'is_vs_cfg' draws 'is'"):
        validate_config(default_config)


def test_best_settings_per_model_and_steps_with_ties_to_smaller_cfg():
    best = best_settings(table(), "fid", "zeta")
    assert list(map(tuple, best.to_numpy())) == [("a", 1, 2.0), ("a", 4, 2.0), ("b", 1, 2.0), ("b", 4, 2.0)]
    best_is = best_settings(table(), "is", "zeta")  # higher is better for IS: same cells here
    assert list(best_is["cfg"]) == [2.0, 2.0, 2.0, 2.0]


@pytest.mark.parametrize("name", ["fid_vs_cfg", "is_vs_cfg", "kid_vs_cfg", "step_scaling", "dataset_comparison"])
def test_figures_draw_the_rows_they_claim_and_are_byte_identical(tmp_path, name):
    t = table()
    out1 = draw_figure(name, t, tmp_path / "a.pdf", tmp_path / "a.png", tmp_path / "a.csv")
    draw_figure(name, t, tmp_path / "b.pdf", tmp_path / "b.png", tmp_path / "b.csv")
    for ext in ("pdf", "png", "csv"):
        assert hashlib.sha256((tmp_path / f"a.{ext}").read_bytes()).digest() == \
            hashlib.sha256((tmp_path / f"b.{ext}").read_bytes()).digest(), ext
    assert Image.open(tmp_path / "a.png").width > 300
    data = pd.read_csv(tmp_path / "a.csv")
    assert list(dict.fromkeys(data["dataset"])) == ["zeta", "alpha"]  # the table's order, not alphabetical
    metric = FIGURE_METRICS[name]
    if name == "dataset_comparison":
        assert len(data) == 2 * 4 and set(data["cfg"]) == {2.0}  # best cfg on 'zeta', shown on both data sets
        assert np.allclose(data.loc[data["dataset"] == "alpha", "value"].to_numpy(),
                           data.loc[data["dataset"] == "zeta", "value"].to_numpy() + 5)
    elif name == "step_scaling":
        assert len(data) == 2 * 2 * 3 * 2 and sorted(set(data["nfe"])) == [2, 8]
    else:
        assert len(out1) == len(data) == 2 * 2 * 2 * 3 and set(data["metric"]) == {metric}
    if name == "kid_vs_cfg":  # no CI: the band is +- the std over subsets
        assert np.allclose(data["band_high"] - data["value"], data["value"] / 100)


def test_sample_grid_figure_reads_cell_grids(tmp_path):
    t = table()
    t = t[(t["dataset"] == "zeta") & (t["model"] == "a")]
    grids = {}
    for steps in (1, 4):
        for cfg in (1.0, 2.0, 4.0):
            p = tmp_path / f"grid_{steps}_{cfg:g}.png"
            Image.fromarray(np.full((20, 60, 3), 40 * steps, np.uint8)).save(p)
            grids[f"a/zeta/steps{steps}_cfg{cfg:g}/seed0"] = p
    out = draw_figure("sample_grids", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv", grids=grids)
    assert len(out) == 6 and Image.open(tmp_path / "s.png").width > 300
    with pytest.raises(ValueError, match="none of the table's cells has a sample grid"):
        draw_figure("sample_grids", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv", grids={})


def test_per_class_figure_best_and_worst_classes(tmp_path):
    rows = []
    for cfg, shift in ((1.0, 10.0), (2.0, 0.0)):  # cfg 2 has the lower median per-class FID
        for c in range(8):
            rows.append(dict(model="a", dataset="zeta", steps=1, cfg=cfg, seed=0, label_id=c, metric="fid",
                             class_name=f"class{c}", value=shift + c, ci_low=shift + c - 1, ci_high=shift + c + 1))
        rows.append(dict(model="a", dataset="zeta", steps=1, cfg=cfg, seed=0, label_id=8, metric="fid",
                         class_name="tiny", value=np.nan, ci_low=np.nan, ci_high=np.nan))  # a skipped class
    out = draw_figure("per_class_fid", pd.DataFrame(rows), tmp_path / "p.pdf", tmp_path / "p.png", tmp_path / "p.csv")
    assert set(out["cfg"]) == {2.0}
    assert list(out["class_name"]) == ["class0", "class1", "class2", "class3", "class4", "class5", "class6", "class7"]
    assert list(out["group"]) == ["best"] * 4 + ["worst"] * 4
    with pytest.raises(ValueError, match="no 'fid' values"):
        draw_figure("per_class_fid", pd.DataFrame(rows[-1:]), tmp_path / "p.pdf", tmp_path / "p.png",
                    tmp_path / "p.csv")


def test_missing_metric_names_the_figure(tmp_path):
    t = table()
    with pytest.raises(ValueError, match="figure is_vs_cfg: the table has no 'is' rows"):
        draw_figure("is_vs_cfg", t[t["metric"] != "is"], tmp_path / "a.pdf", tmp_path / "a.png", tmp_path / "a.csv")


def test_wide_and_best_tables():
    wide = wide_table(table())
    assert len(wide) == 2 * 2 * 2 * 3
    assert list(wide.columns) == ["dataset", "model", "steps", "cfg", "seed", "NFE", "FID", "IS", "KID×10³"]
    first = wide.iloc[0]
    assert (first["dataset"], first["model"], first["steps"], first["cfg"]) == ("zeta", "a", 1, "1")
    assert first["FID"] == "30 [29, 31]"
    assert first["IS"] == "3.333 [3.233, 3.433]"
    assert first["KID×10³"] == "30 ± 0.3"  # KID has no CI: mean ± std over subsets, scaled by 1000
    best = best_table(table())
    assert len(best) == 2 * 2 * 2
    assert list(best.loc[(best["model"] == "b") & (best["steps"] == 1), "cfg"]) == ["2", "2"]  # tie -> smaller
    assert best.iloc[0]["FID"] == "20 [19, 21]"


def test_exports_escape_their_formats(tmp_path):
    df = pd.DataFrame({"model": ["a|b", "x_y & <z>"], "FID": ["1 [0.5, 2]", "3 ± 0.1"]})
    md = to_markdown(df)
    assert "| a\\|b |" in md and md.splitlines()[1] == "|:---|---:|"
    assert latex_escape("x_y & 50% ± 1") == r"x\_y \& 50\% $\pm$ 1"
    assert "&lt;z&gt;" in to_html(df, "cap <b>") and "<b>" not in to_html(df, "cap <b>").split("<body>")[1]
    outputs = {f"{n}_{f}": tmp_path / f"{n}.{f}" for n in ("sweep", "best") for f in ("md", "tex", "html")}
    export_tables(table(), outputs)
    assert all(p.stat().st_size > 0 for p in outputs.values())
    assert (tmp_path / "best.tex").read_text().count(r" \\") == 1 + 8
