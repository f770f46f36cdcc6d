"""MMHM against the published formula written out by hand, on a sweep with ties and a constant column, and the
bounds file (save, reuse on another set, values outside reused bounds)."""

import json

import numpy as np
import pytest

from genbench.metrics.composite import load_bounds, mmhm, save_bounds

# five cells; IS has a tie for the best value, CLIP Score is constant across the sweep
SWEEP = {"fid": [10.0, 20.0, 15.0, 30.0, 10.0], "is": [50.0, 80.0, 80.0, 20.0, 35.0],
         "clip_score": [31.0, 31.0, 31.0, 31.0, 31.0], "pick_score": [21.0, 22.5, 20.0, 21.5, 22.0]}


def published(fid, is_, clip, pick, eps=1e-3):
    """The formula of the seed paper's composite_metric.py, element by element."""
    out = []
    for i in range(len(fid)):
        def u(x, vals, lower):
            lo, hi = min(vals), max(vals)
            if hi == lo:
                return 1.0
            return (hi - x) / (hi - lo) if lower else (x - lo) / (hi - lo)
        us = [u(fid[i], fid, True), u(is_[i], is_, False), u(clip[i], clip, False), u(pick[i], pick, False)]
        out.append(4.0 / sum(1.0 / (eps + x) for x in us))
    return np.array(out)


def test_mmhm_equals_the_published_formula_with_ties_and_a_constant_column():
    scores, bounds, warnings = mmhm(SWEEP)
    expected = published(SWEEP["fid"], SWEEP["is"], SWEEP["clip_score"], SWEEP["pick_score"])
    np.testing.assert_allclose(scores, expected, rtol=1e-15, atol=0)
    assert warnings == []
    assert bounds["CLIP Score"] == {"min": 31.0, "max": 31.0}
    assert bounds["FID"] == {"min": 10.0, "max": 30.0}
    # hand check of one row: cell 1 has u = (10/20, 1, 1, 1)
    assert scores[1] == pytest.approx(4 / (1 / 0.501 + 3 / 1.001), rel=1e-15)
    # the worst FID row has u_FID = 0, so 1/eps dominates
    assert scores[3] < 0.004


def test_bounds_saved_and_reused_without_clipping(tmp_path):
    _, bounds, _ = mmhm(SWEEP)
    path = tmp_path / "bounds.json"
    save_bounds(path, bounds, {"config_hash": "abc"})
    assert json.loads(path.read_text())["_provenance"] == {"config_hash": "abc"}
    loaded = load_bounds(path)
    assert loaded == bounds
    other = {"fid": [40.0, 12.0], "is": [50.0, 90.0], "clip_score": [31.0, 31.0], "pick_score": [21.0, 21.0]}
    scores, used, warnings = mmhm(other, bounds=loaded)
    assert used == bounds
    # FID 40 is worse than the reused max 30: u_FID = (30 - 40) / 20 = -0.5, not clipped (as the reference)
    expected0 = 4 / (1 / (1e-3 - 0.5) + 1 / (1e-3 + 0.5) + 1 / 1.001 + 1 / (1e-3 + 1 / 2.5))
    assert scores[0] == pytest.approx(expected0, rel=1e-12)
    assert any("'fid' value(s) outside the bounds [10, 30]" in w for w in warnings)
    assert any("'is' value(s) outside" in w for w in warnings)  # IS 90 > 80


def test_reference_style_bounds_file_and_bad_input(tmp_path):
    p = tmp_path / "ref.json"
    p.write_text(json.dumps({"FID": {"min": 1, "max": 2}, "IS": {"min": 1, "max": 2},
                             "CLIP Score": {"min": 1, "max": 2}, "Pick Score": {"min": 1, "max": 2}}))
    assert load_bounds(p)["Pick Score"] == {"min": 1, "max": 2}
    p.write_text(json.dumps({"FD": {"min": 1, "max": 2}}))
    with pytest.raises(ValueError, match="unknown metric 'FD'"):
        load_bounds(p)
    with pytest.raises(ValueError, match="missing clip_score, pick_score"):
        mmhm({"fid": [1.0], "is": [1.0]})
    with pytest.raises(ValueError, match="'is' has non-finite values at rows \\[1\\]"):
        mmhm({**SWEEP, "is": [1.0, np.nan, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="equal length"):
        mmhm({**SWEEP, "is": [1.0]})


def test_reused_bounds_warn_on_min_equal_max_and_on_values_outside():
    """Regression: reused bounds with min = max gave u = 1 for any value, silently and without a warning even for a
    value outside them (the check went through u, which is 1 there)."""
    bounds = {"FID": {"min": 10.0, "max": 30.0}, "IS": {"min": 20.0, "max": 80.0},
              "CLIP Score": {"min": 31.0, "max": 31.0}, "Pick Score": {"min": 21.0, "max": 22.0}}
    other = {"fid": [20.0, 12.0], "is": [50.0, 60.0], "clip_score": [35.0, 31.0], "pick_score": [21.5, 21.0]}
    scores, _, warnings = mmhm(other, bounds=bounds)
    assert any("reused bounds of 'clip_score' have min = max = 31" in w for w in warnings)
    assert any("1 'clip_score' value(s) outside the bounds [31, 31] (rows [0], values [35.0])" in w
               for w in warnings)
    assert len(warnings) == 2  # nothing about fid / is / pick_score, which lie inside
    # the sweep's own bounds: a constant column is the reference behaviour, not a warning
    assert mmhm(other)[2] == []
    assert np.isfinite(scores).all()
