"""Figures and paper tables drawn from a synthetic metrics table: what they select, their order, their escaping,
and byte-identical output for identical input."""

import hashlib

import matplotlib
import matplotlib.collections
import matplotlib.colors
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.config import FIGURE_METRICS, ConfigError, validate_config, with_registry_enums
from genbench.layout import Cell
from genbench.plots.figures import best_settings, draw_figure
from genbench.plots.registry import FIGURES
from genbench.tables.export import best_table, export_tables, latex_escape, to_html, to_markdown, wide_table
from genbench.tables.keys import CELL_KEYS_BY_DATASET


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


def test_figure_registry_is_the_one_list():
    """The figure registry is the one list of figures: the config check, the drawing functions, the schema's
    names, the report captions, the rules (one figure_{name} rule each, figures.smk) and the CI config follow it."""
    import re

    import yaml

    assert FIGURE_METRICS == {name: fig.metric for name, fig in FIGURES.items()}
    for name, fig in FIGURES.items():
        assert fig.name == name and callable(fig.load_draw()), name
        assert (REPORT / f"figures/{name}.rst").is_file(), name
    schema = with_registry_enums(yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text()))
    enum = schema["properties"]["figures"]["items"]["enum"]
    assert enum == list(FIGURES) and set(schema["properties"]["figures"]["default"]) <= set(FIGURES)
    tiny = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    assert set(tiny["figures"]) == set(FIGURES)  # the CI run draws (and the golden artifacts hold) every figure
    rules = (ROOT / "workflow/rules/figures.smk").read_text()
    assert "for fig in FIGURES.values():" in rules and 'f"figure_{fig.name}"' in rules
    assert not re.search(r"^(use )?rule figure_", rules, re.M), "figures.smk defines its rules from the registry"


def test_figure_rule_io_follows_the_registry():
    """What the rules read: the table each figure is drawn from, the pairwise table for the significance marks,
    the cells' sample grids (with the cells, in their order, as params) for the qualitative figure."""
    grids = ["results/gen2d/a/grid.png", "results/gen2d/b/grid.png"]
    shards, manifests = ["s0.npz", "s1.npz", "s2.npz"], ["m.parquet"]
    for name, fig in FIGURES.items():
        inputs = fig.inputs(grids=grids, shards=shards, manifests=manifests)
        assert inputs["table"] == f"results/tables/{fig.table}.parquet"
        assert ("pairwise" in inputs) == fig.pairwise and ("grids" in inputs) == fig.needs_grids, name
        assert inputs.get("tables", []) == [f"results/tables/{t}.parquet" for t in fig.extra_tables], name
        assert (inputs.get("shards"), inputs.get("manifests")) == ((shards, manifests) if fig.needs_images
                                                                  else (None, None)), name
        params = fig.params(confidence=0.9, cells=["a", "b"], shard_cells=["a", "a", "b"], datasets=["d"])
        assert params == {"name": name, "confidence": 0.9, **({"cells": ["a", "b"]} if fig.needs_grids else {}),
                          **({"table_names": list(fig.extra_tables)} if fig.extra_tables else {}),
                          **({"shard_cells": ["a", "a", "b"], "datasets": ["d"]} if fig.needs_images else {}),
                          **({"options": dict(fig.options)} if fig.options else {})}, name
    assert FIGURES["sample_grids"].inputs(grids=grids)["grids"] == grids
    assert [n for n, f in FIGURES.items() if f.pairwise] == ["fid_vs_cfg", "is_vs_cfg", "step_scaling"]
    assert [n for n, f in FIGURES.items() if f.table != "gen2d_metrics"] == ["per_class_fid", "class_extremes"]
    assert [n for n, f in FIGURES.items() if f.needs_images] == ["class_pinned", "class_extremes"]


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
    out1 = draw_figure(name, t, tmp_path / "a.pdf", tmp_path / "a.png", tmp_path / "a.csv", confidence=0.9)
    draw_figure(name, t, tmp_path / "b.pdf", tmp_path / "b.png", tmp_path / "b.csv", confidence=0.9)
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
            grids[str(Cell("a", "zeta", steps, cfg, 0))] = p
    out = draw_figure("sample_grids", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv", grids=grids,
                      confidence=0.9)
    assert len(out) == 6 and Image.open(tmp_path / "s.png").width > 300
    with pytest.raises(ValueError, match="none of the table's cells has a sample grid"):
        draw_figure("sample_grids", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv", grids={},
                    confidence=0.9)


def test_per_class_figure_best_and_worst_classes(tmp_path):
    rows = []
    for cfg, shift in ((1.0, 10.0), (2.0, 0.0)):  # cfg 2 has the lower median per-class FID
        for c in range(8):
            rows.append(dict(model="a", dataset="zeta", steps=1, cfg=cfg, seed=0, label_id=c, metric="fid",
                             class_name=f"class{c}", value=shift + c, ci_low=shift + c - 1, ci_high=shift + c + 1))
        rows.append(dict(model="a", dataset="zeta", steps=1, cfg=cfg, seed=0, label_id=8, metric="fid",
                         class_name="tiny", value=np.nan, ci_low=np.nan, ci_high=np.nan))  # a skipped class
    out = draw_figure("per_class_fid", pd.DataFrame(rows), tmp_path / "p.pdf", tmp_path / "p.png", tmp_path / "p.csv",
                      confidence=0.9)
    assert set(out["cfg"]) == {2.0}
    assert list(out["class_name"]) == ["class0", "class1", "class2", "class3", "class4", "class5", "class6", "class7"]
    assert list(out["group"]) == ["best"] * 4 + ["worst"] * 4
    with pytest.raises(ValueError, match="no 'fid' values"):
        draw_figure("per_class_fid", pd.DataFrame(rows[-1:]), tmp_path / "p.pdf", tmp_path / "p.png",
                    tmp_path / "p.csv", confidence=0.9)


def test_missing_metric_names_the_figure(tmp_path):
    t = table()
    with pytest.raises(ValueError, match="figure is_vs_cfg: the table has no 'is' rows"):
        draw_figure("is_vs_cfg", t[t["metric"] != "is"], tmp_path / "a.pdf", tmp_path / "a.png", tmp_path / "a.csv",
                    confidence=0.9)


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


# --- what the figures show: layout, styles, intervals and their confidence level (issue 22) ----------------------


@pytest.fixture
def drawn(monkeypatch):
    """Every figure drawn in the test, kept for inspection after it is saved."""
    from genbench.plots import figures, figures3d

    figs = []

    def keep(fig, pdf, png, save=figures.save_figure):
        figs.append(fig)
        save(fig, pdf, png)

    monkeypatch.setattr(figures, "save_figure", keep)
    monkeypatch.setattr(figures3d, "save_figure", keep)
    return figs


def texts(fig) -> str:
    """All text a reader sees on a figure: titles, axis labels, legends, annotations."""
    out = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    return " ".join(" ".join(out).split())


def full_table() -> pd.DataFrame:
    """table() plus the text-image metrics, the scaled FIDs and MMHM, so every 2D figure can be drawn."""
    t = table()
    fid = t[t["metric"] == "fid"]
    extra = [fid.assign(metric=m, value=fid["value"] * f, ci_low=fid["ci_low"] * f, ci_high=fid["ci_high"] * f)
             for m, f in (("clip_score", 0.9), ("pick_score", 0.2), ("csfid", 1.1), ("psfid", 1.2))]
    extra.append(fid.assign(metric="mmhm", value=1 / fid["value"], ci_low=np.nan, ci_high=np.nan, ci_method="none"))
    return pd.concat([t, *extra], ignore_index=True)


def per_class_rows(n_panels: int) -> pd.DataFrame:
    rows = []
    for p in range(n_panels):
        for c in range(6):
            v = 10.0 * (c + 1) + p
            rows.append(dict(model=f"m{p}", dataset="zeta", steps=1, cfg=1.0, seed=0, label_id=c, metric="fid",
                             class_name=f"class{c}", value=v, ci_low=v - 2, ci_high=v + 3))
    return pd.DataFrame(rows)


def panel_layout(fig) -> tuple[int, int]:
    """(rows, columns) of the visible data panels (colour bars excluded)."""
    axes = [a for a in fig.axes if a.get_visible() and a.get_label() != "<colorbar>"]
    xs = {round(a.get_position().x0, 3) for a in axes}
    ys = {round(a.get_position().y0, 3) for a in axes}
    return len(ys), len(xs)


def test_per_class_fid_wraps_nine_panels_into_a_grid(tmp_path, drawn):
    """9 panels used to be one 4909-px row; at most three per row keeps them readable at page width."""
    out = draw_figure("per_class_fid", per_class_rows(9), tmp_path / "p.pdf", tmp_path / "p.png", tmp_path / "p.csv",
                      confidence=0.9)
    assert out.groupby(["model", "dataset"]).ngroups == 9
    assert panel_layout(drawn[0]) == (3, 3)
    w, h = Image.open(tmp_path / "p.png").size
    assert w < 1800 and h > 0.5 * w, (w, h)
    assert "90% bootstrap CI" in texts(drawn[0])


def test_mmhm_heatmap_wraps_into_a_grid(tmp_path, drawn):
    t = full_table()
    t = pd.concat([t, t[t["model"] == "a"].assign(model="c"), t[t["model"] == "a"].assign(model="d")])
    draw_figure("mmhm_heatmap", t, tmp_path / "m.pdf", tmp_path / "m.png", tmp_path / "m.csv", confidence=0.9)
    assert panel_layout(drawn[0]) == (3, 3)  # 4 models x 2 data sets = 8 heatmaps


def test_step_scaling_colour_by_model_line_style_by_cfg(tmp_path, drawn):
    t = table()
    t = pd.concat([t] + [t[t["model"] == "a"].assign(model=f"m{i}") for i in range(9)])  # 11 models > 8 colours
    draw_figure("step_scaling", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv", confidence=0.9)
    fig = drawn[0]
    series = {}  # (colour, marker, line style) -> how often
    for ax in fig.axes:
        for line in ax.get_lines():
            if line.get_marker() in ("_", "|"):  # error bar caps
                continue
            style = (matplotlib.colors.to_hex(line.get_color()), line.get_marker(), str(line.get_linestyle()))
            series[style] = series.get(style, 0) + 1
    # 11 models x 3 guidance scales on each of 2 data sets, each (model, CFG) line with its own look
    assert len(series) == 11 * 3 and set(series.values()) == {2}
    by_model = {}
    for colour, marker, ls in series:
        by_model.setdefault((colour, marker), set()).add(ls)
    assert len(by_model) == 11 and all(len(v) == 3 for v in by_model.values())
    assert len({ls for _, _, ls in series}) == 3
    legend = texts(fig)
    assert "model (colour, marker)" in legend and "CFG 4" in legend and "90% bootstrap CI" in legend


def test_a_lone_setting_keeps_its_ci(tmp_path, drawn):
    """A model run at one guidance scale is a single point: a band of one point has no width, so its CI is an
    error bar."""
    t = table()
    lone = t[(t["model"] == "b") & (t["cfg"] == 2.0)].assign(model="one_cfg")
    draw_figure("fid_vs_cfg", pd.concat([t, lone]), tmp_path / "f.pdf", tmp_path / "f.png", tmp_path / "f.csv",
                confidence=0.9)
    fig = drawn[0]
    ax = fig.axes[0]  # zeta
    segs = [seg for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)
            for seg in c.get_segments()]
    one = lone[(lone["dataset"] == "zeta") & (lone["metric"] == "fid")]
    for r in one.itertuples():
        assert any(np.allclose(seg, [[r.cfg, r.ci_low], [r.cfg, r.ci_high]]) for seg in segs), (r.steps, segs)
    assert "band, or bar on a lone point: 90% bootstrap CI" in texts(fig)


@pytest.mark.parametrize("std", [0.0, float("nan")])
def test_kid_without_spread_shows_no_band_and_says_so(tmp_path, drawn, std):
    """KID's std over subsets says nothing when every subset is the whole set: scoring reports it as NaN (with a
    note), a hand-made table may hold 0. Either way no '± 0' band, and a note that says why."""
    t = table()
    t.loc[t["metric"] == "kid_std", "value"] = std
    out = draw_figure("kid_vs_cfg", t, tmp_path / "k.pdf", tmp_path / "k.png", tmp_path / "k.csv", confidence=0.9)
    fig = drawn[0]
    assert not [c for ax in fig.axes for c in ax.collections]  # neither bands nor bars
    assert "every subset is the whole set" in texts(fig)
    assert "± 0" not in texts(fig) and "bootstrap is off" not in texts(fig)
    if std == 0:
        assert np.allclose(out["band_high"], out["value"])  # the CSV keeps what the protocol reported


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_every_figure_with_intervals_states_its_confidence_level(tmp_path, drawn, confidence):
    t = full_table()
    grids = {}
    for r in t[t["metric"] == "fid"].itertuples():
        p = tmp_path / f"g_{r.model}_{r.dataset}_{r.steps}_{r.cfg:g}.png"
        Image.fromarray(np.full((20, 60, 3), 80, np.uint8)).save(p)
        grids[str(Cell(r.model, r.dataset, r.steps, r.cfg, 0))] = p
    level = f"{100 * confidence:g}% bootstrap CI"
    for name, fig in FIGURES.items():
        if fig.needs_images:  # drawn from shards and manifests: tests/test_class_figures.py checks their level
            continue
        src = per_class_rows(2) if fig.table == "gen2d_per_class" else t
        drawn.clear()
        draw_figure(name, src, tmp_path / "x.pdf", tmp_path / "x.png", tmp_path / "x.csv", grids=grids,
                    confidence=confidence)
        shown = texts(drawn[0])
        if name == "kid_vs_cfg":
            assert "± 1 std over subsets, not a CI" in shown
        elif fig.intervals:
            assert level in shown, (name, shown)
        else:
            assert "CI" not in shown, name  # MMHM has none: the caption says why
    with pytest.raises(ValueError, match="confidence level 95 must lie strictly between 0 and 1"):
        draw_figure("fid_vs_cfg", t, tmp_path / "x.pdf", tmp_path / "x.png", tmp_path / "x.csv", confidence=95)


def test_single_points_keep_their_cis_in_the_scatter(tmp_path, drawn):
    t = full_table()
    out = draw_figure("scaled_vs_raw", t, tmp_path / "s.pdf", tmp_path / "s.png", tmp_path / "s.csv",
                      confidence=0.9)
    assert list(out.columns[:8]) == ["dataset", "model", "steps", "cfg", "seed", "fid", "csfid", "psfid"]
    fid = t[t["metric"] == "fid"].set_index(list(CELL_KEYS_BY_DATASET))
    got = out.set_index(list(CELL_KEYS_BY_DATASET))
    assert np.allclose(got["fid_ci_low"], fid.loc[got.index, "ci_low"])
    segs = [seg for c in drawn[0].axes[0].collections if isinstance(c, matplotlib.collections.LineCollection)
            for seg in c.get_segments()]
    r = out.iloc[0]
    assert any(np.allclose(seg, [[r["fid_ci_low"], r["csfid"]], [r["fid_ci_high"], r["csfid"]]]) for seg in segs)
    assert any(np.allclose(seg, [[r["fid"], r["csfid_ci_low"]], [r["fid"], r["csfid_ci_high"]]]) for seg in segs)


def test_recon3d_bars_state_the_configured_level_in_a_grid(tmp_path, drawn):
    """One panel per headline metric, at most three per row (it was data sets x metrics in one wide grid); the
    level is the configured one (it said a fixed 95%); the CSV keeps one row per data set, metric and model."""
    from genbench.plots.figures3d import BAR_METRICS, draw_figure_3d

    rows = [dict(dataset=d, model=m, protocol=proto, metric=metric, value=v, ci_low=v - 0.1, ci_high=v + 0.1, n=4,
                 n_scored=4, n_skipped=0, n_failed=0, ceiling=m == "gt", note=None)
            for d in ("d1", "d2") for proto, metric, _ in BAR_METRICS for m, v in (("r", 0.3), ("gt", 0.9))
            if not (d == "d2" and proto == "appearance")]
    draw_figure_3d("recon3d_bars", pd.DataFrame(rows), tmp_path / "b.pdf", tmp_path / "b.png", tmp_path / "b.csv",
                   confidence=0.8)
    shown = texts(drawn[0])
    assert "80% bootstrap CI" in shown and "95%" not in shown and "no bar: not computed for that data set" in shown
    assert panel_layout(drawn[0]) == (2, 3)
    data = pd.read_csv(tmp_path / "b.csv")
    assert len(data) == len(rows) and list(data["dataset"].iloc[:2]) == ["d1", "d1"]


def test_dataset_comparison_wraps_many_settings(tmp_path, drawn):
    t = table()
    t = pd.concat([t] + [t.assign(model=f"m{i}") for i in range(6)])  # 8 models x 2 step counts = 16 settings
    out = draw_figure("dataset_comparison", t, tmp_path / "d.pdf", tmp_path / "d.png", tmp_path / "d.csv",
                      confidence=0.9)
    assert len(out) == 16 * 2
    rows, cols = panel_layout(drawn[0])
    assert rows >= 2 and cols == 1
    assert Image.open(tmp_path / "d.png").width < 1800


@pytest.mark.parametrize("std", [0.0, float("nan")])
def test_tables_never_show_plus_minus_zero(tmp_path, std):
    t = table()
    t.loc[t["metric"] == "kid_std", "value"] = std
    wide = wide_table(t)
    assert wide.iloc[0]["KID×10³"] == "30†"
    assert not wide.apply(lambda c: c.astype(str).str.contains("± 0")).any().any()
    outputs = {f"sweep_{f}": tmp_path / f"sweep.{f}" for f in ("md", "tex", "html")}
    export_tables(t, outputs)
    for f in ("md", "html"):
        text = (tmp_path / f"sweep.{f}").read_text()
        assert "± 0" not in text and "† no spread shown: every split/subset is the whole set" in text
    assert r"30\textdagger{}" in (tmp_path / "sweep.tex").read_text()
    export_tables(table(), outputs)  # with a spread: no footnote
    assert "no spread shown" not in (tmp_path / "sweep.md").read_text()


# --- the Snakemake report: the datasheet, the coverage figure and the 3D summary; captions state the level -------


def test_recon3d_summary_table_for_the_report(tmp_path):
    from genbench.tables.export import export_recon3d_table, recon3d_table

    rows = []
    for m, v, ceiling in (("revolution", 0.3, False), ("ceiling", 0.9, True)):
        for proto, metric in (("corrected", "fscore@0.01"), ("corrected", "solid_iou"), ("legacy", "f1"),
                              ("corrected", "hausdorff")):
            rows.append(dict(dataset="mw_solids", model=m, protocol=proto, metric=metric, value=v, ci_low=v - 0.05,
                             ci_high=v + 0.05, n=6, n_scored=5, n_skipped=0, n_failed=1 if m == "revolution" else 0,
                             ceiling=ceiling, higher_is_better=True,
                             note="capped <b>" if metric == "fscore@0.01" else None))
    df = recon3d_table(pd.DataFrame(rows))
    assert list(df.columns) == ["dataset", "model", "kind", "items scored", "failed", "F-score@0.01 (corrected)",
                                "solid IoU (corrected)", "F1@0.01 (legacy)", "notes"]  # headline metrics only
    assert list(df["model"]) == ["revolution", "ceiling"] and list(df["kind"]) == ["reconstructor", "GT ceiling"]
    assert df.iloc[0]["items scored"] == "5 of 6" and df.iloc[0]["failed"] == 1
    assert df.iloc[0]["F-score@0.01 (corrected)"] == "0.3 [0.25, 0.35]"
    assert df.iloc[0]["notes"] == "fscore@0.01: capped <b>"
    out = {f: tmp_path / f"s.{f}" for f in ("md", "tex", "html")}
    export_recon3d_table(pd.DataFrame(rows), out, confidence=0.8)
    page = out["html"].read_text()
    assert "80% bootstrap CI" in page and "capped &lt;b&gt;" in page and "<b>" not in page.split("<body>")[1]
    with pytest.raises(ValueError, match="none of the headline metrics"):
        recon3d_table(pd.DataFrame(rows).assign(metric="hausdorff"))


def test_datasheet_page_renders_markdown_and_escapes_data():
    from genbench.tables.export import markdown_page

    page = markdown_page("# Datasheet: x<script>\n\n| class | n |\n|:---|---:|\n| <img src=x> | 3 |\n\n"
                         "[link](javascript:alert(1))\n", "Datasheet: x<script>")
    body = page.split("<body>")[1]
    assert "<h1>Datasheet: x&lt;script&gt;</h1>" in body and "<table>" in body
    assert "&lt;img src=x&gt;" in body and "<img" not in body and "href=\"javascript" not in body


def _caption(path, confidence=0.9, wildcards=None):
    """A report caption as Snakemake renders it: Jinja with the job's `snakemake` object, then reStructuredText."""
    import types

    import jinja2
    from docutils.core import publish_parts

    from genbench.config import load_config

    config = load_config(ROOT / "tests/config/tiny.yaml")
    sm = types.SimpleNamespace(params=types.SimpleNamespace(confidence=confidence), config=config,
                               wildcards=types.SimpleNamespace(**(wildcards or {})))
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(path.read_text()).render(snakemake=sm)
    body = publish_parts(text, writer="html", settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    return " ".join(body.split())


ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
REPORT = ROOT / "workflow/report"


def test_report_captions_render_and_state_the_level():
    for name, fig in FIGURES.items():
        html = _caption(REPORT / f"figures/{name}.rst")
        if fig.intervals and name != "kid_vs_cfg":
            assert "90% bootstrap" in html, name
    for name in ("recon3d_bars", "recon3d_grid", "recon3d_protocols"):
        assert "80% bootstrap" in _caption(REPORT / f"figures/{name}.rst", confidence=0.8) or \
            "80% CIs" in _caption(REPORT / f"figures/{name}.rst", confidence=0.8), name
    assert "80% bootstrap CI" in _caption(REPORT / "tables/recon3d_summary.rst", confidence=0.8)
    for name in ("gen2d_sweep", "gen2d_best"):  # the tiny config's scoring.bootstrap.confidence
        assert "[90% bootstrap CI]" in _caption(REPORT / f"tables/{name}.rst"), name
    for name in ("coverage", "datasheet"):
        assert "mw_relaionet" in _caption(REPORT / f"curation/{name}.rst", wildcards={"dataset": "mw_relaionet"})


def test_report_includes_datasheet_coverage_and_3d_summary():
    """The rules mark the curation datasheet (HTML), the coverage figure and the 3D summary table for the report,
    each with a caption that exists, and the default target builds them."""
    import re

    rules = "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    marked = dict(re.findall(r'report\(\s*(layout\.\w+\([^)]*\)),\s*caption="\.\./report/([^"]+)"', rules))
    for path in ('layout.curate_file("{dataset}", "datasheet.html")',
                 'layout.figure("curation_coverage_{dataset}", "png")', 'layout.table("recon3d_summary", "html")'):
        assert path in marked, path
        assert (REPORT / marked[path]).is_file(), marked[path]
    wiring = (ROOT / "workflow/genbench/wiring.py").read_text()  # the targets' lists (rule all)
    assert 'layout.curate_file(d, f"datasheet.{e}") for e in ("md", "html")' in wiring
    assert 'layout.table("recon3d_summary", e) for e in ("md", "tex", "html")' in wiring
