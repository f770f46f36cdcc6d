"""Issue 21's acceptance test: a 2D metric is one module (a function ``(ctx, metrics) -> rows``) plus one entry in
``genbench.metrics.registry`` that names it. Here a stand-in metric lives in a package of its own on ``sys.path``,
its entry is added the way an author adds its line to ``_METRICS_2D``, and ``score_cell`` computes it when
requested, with the registry's display name and direction used downstream."""

import dataclasses
import inspect
import sys

import numpy as np
import pandas as pd
import pytest

from genbench.metrics.registry import METRICS, SCORING_METRICS, MetricRegistryError, _m, metric_info
from genbench.metrics.score2d import score_cell

MODULE = '''
"""Mean L2 norm of the generated features (lower is better, for the test's sake)."""
import numpy as np

from genbench.metrics.bootstrap import resamples


def rows(ctx, metrics):
    fr, fg = ctx.features
    norms = np.linalg.norm(fg, axis=1)
    reps = np.array([norms[i].mean() for (i,) in resamples(ctx.rng_for("mean_norm"), (len(fg),), ctx.n_boot)])
    return [dict(metric="mean_norm", n=len(fg), n_real=len(fr), **ctx.debiased(float(norms.mean()), reps),
                 note="mean L2 norm of the generated features")]
'''
ANCHOR = "fréchet-distance-fid-on-inception-features-fd-on-any-extractors-features"
CELL = dict(model="m", dataset="d", steps=1, cfg=1.0, seed=0)
BOOT = {"n": 30, "confidence": 0.9, "seed": 0}


def _cell(seed=0, n=40, d=4):
    rng = np.random.default_rng(seed)
    return {"features": rng.normal(size=(n, d))}, {"features": rng.normal(size=(n, d)) + 0.3,
                                                   "logits": rng.normal(size=(n, 5))}


@pytest.fixture
def mean_norm(tmp_path, monkeypatch):
    """The module in a package of its own and its registry entry (one line in _METRICS_2D)."""
    pkg = tmp_path / "extra_metrics"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mean_norm.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = _m("2d", "mean_norm", "lower", "Mean norm", ANCHOR, True, "extra_metrics.mean_norm:rows")
    monkeypatch.setitem(METRICS["2d"], entry.name, entry)
    yield entry
    for mod in ("extra_metrics.mean_norm", "extra_metrics"):
        sys.modules.pop(mod, None)


def test_a_metric_is_one_module_and_one_registry_entry(mean_norm, monkeypatch):
    from genbench.metrics.names import best_settings
    from genbench.tables.export import wide_table

    real, gen = _cell()
    frames = [score_cell(real, dict(gen, features=gen["features"] * scale), cell=dict(CELL, cfg=cfg),
                         metrics=["mean_norm", "fid"], is_splits=2, bootstrap=BOOT)
              for cfg, scale in ((1.0, 1.0), (2.0, 0.5))]
    assert frames[0]["metric"].tolist() == ["fid", "mean_norm"]  # the registry's order: the new entry is last
    row = frames[0].set_index("metric").loc["mean_norm"]
    assert row["value"] == pytest.approx(np.linalg.norm(gen["features"], axis=1).mean(), rel=1e-12)
    assert row["ci_method"] == "debiased-percentile, 30 resamples, 0.9" and np.isfinite([row["ci_low"],
                                                                                        row["ci_high"]]).all()
    assert (row["model"], row["cfg"], row["n"]) == ("m", 1.0, 40)  # score_cell adds the cell's columns
    table = pd.concat(frames, ignore_index=True)
    # the registry's display name heads its column in the exported table ...
    assert "Mean norm" in wide_table(table).columns
    # ... and its direction picks the best setting (lower: the halved features of cfg 2)
    assert best_settings(table, "mean_norm", ["dataset", "model", "steps"])["cfg"].tolist() == [2.0]
    monkeypatch.setitem(METRICS["2d"], "mean_norm", dataclasses.replace(mean_norm, direction="higher"))
    assert best_settings(table, "mean_norm", ["dataset", "model", "steps"])["cfg"].tolist() == [1.0]


def test_a_requested_metric_without_a_compute_target_is_a_one_line_error_naming_it_and_the_fix(monkeypatch):
    real, gen = _cell()
    entry = _m("2d", "mean_norm", "lower", "Mean norm", ANCHOR, True)
    monkeypatch.setitem(METRICS["2d"], "mean_norm", entry)
    with pytest.raises(MetricRegistryError) as err:
        score_cell(real, gen, cell=CELL, metrics=["fid", "mean_norm"], is_splits=2, bootstrap=BOOT)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("metric 'mean_norm' (2d): no compute target; add compute='package.module:function' to "
                           "its entry in genbench.metrics.registry")
    monkeypatch.setitem(METRICS["2d"], "mean_norm", dataclasses.replace(entry, compute="no_such_package.mod:rows"))
    with pytest.raises(MetricRegistryError, match=r"^metric 'mean_norm' \(2d\): compute target "
                                                  r"'no_such_package.mod:rows' does not import \(No module named"):
        score_cell(real, gen, cell=CELL, metrics=["mean_norm"], is_splits=2, bootstrap=BOOT)


def test_names_score_cell_cannot_compute_fail_before_any_work():
    real, gen = _cell()
    kw = dict(cell=CELL, is_splits=2, bootstrap=BOOT)
    with pytest.raises(MetricRegistryError, match="^metric 'fdd': not a 2D metric in genbench.metrics.registry"):
        score_cell(real, gen, metrics=["fid", "fdd"], **kw)
    with pytest.raises(MetricRegistryError, match="^metric 'is_std': not requestable .*; request the metric it"):
        score_cell(real, gen, metrics=["is_std"], **kw)
    with pytest.raises(MetricRegistryError, match="^metric 'mmhm': computed over the whole sweep by "
                                                  "genbench.stages:add_mmhm_rows, not per cell"):
        score_cell(real, gen, metrics=["mmhm"], **kw)


def test_every_requestable_2d_metric_names_a_compute_function_that_imports():
    for name in SCORING_METRICS:
        m = metric_info(name)
        fn = m.compute_function()
        assert callable(fn), name
        if m.scope == "cell":  # what score_cell calls
            assert list(inspect.signature(fn).parameters) == ["ctx", "metrics"], (name, m.compute)
    mmhm = metric_info("mmhm")
    assert (mmhm.scope, mmhm.compute) == ("sweep", "genbench.stages:add_mmhm_rows")  # the aggregate adds its rows
    assert {m.scope for m in METRICS["2d"].values() if m.requestable} == {"cell", "sweep"}


def test_rows_follow_the_registry_whatever_the_request_order():
    real, gen = _cell(1)
    rng = np.random.default_rng(2)
    ids = np.array([f"i{k}" for k in range(40)])
    text = rng.normal(size=(40, 6))
    real_ti = {"item_id": ids, "image_emb": text + rng.normal(size=(40, 6)), "text_emb": text,
               "logit_scale": np.float64(np.log(100.0))}
    ti = {role: (real_ti, {"item_id": ids, "image_emb": text + 1.5 * rng.normal(size=(40, 6))})
          for role in ("clip", "pick")}
    wanted = ["vendi", "psis", "precision", "csfid", "pick_score", "kid", "is", "coverage", "clip_score"]
    kw = dict(cell=CELL, is_splits=2, bootstrap=BOOT, kid={"subsets": 3, "subset_size": 20}, text_image=ti)
    df = score_cell(real, gen, metrics=wanted, **kw)
    # registry order, rows of one compute function together (clip_score with csfid; pick_score with psis)
    assert df["metric"].tolist() == ["is", "is_std", "kid", "kid_std", "clip_score", "csfid", "pick_score", "psis",
                                     "precision", "coverage", "vendi"]
    pd.testing.assert_frame_equal(score_cell(real, gen, metrics=wanted[::-1], **kw), df, check_exact=True)
