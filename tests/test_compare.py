"""Paired comparison of two cells on the same items: the difference, its CI and p-value, and the CLI."""

import numpy as np
import pytest

from genbench.cli import main
from genbench.io import save_npz
from genbench.metrics.compare import compare_cells
from genbench.metrics.fid import MetricInputError, frechet_distance_features
from genbench.metrics.inception_score import inception_score


def cells(shift_b: float, n: int = 300, d: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = np.array([f"item{i:04d}" for i in range(n)])
    real = {"features": rng.normal(size=(n, d)), "item_id": items}
    base = rng.normal(size=(n, d)) * 1.2
    a = {"features": base, "logits": rng.normal(size=(n, 10)), "item_id": items}
    perm = rng.permutation(n)  # B stored in another order: rows are matched by item_id
    b = {"features": (base + shift_b)[perm], "logits": a["logits"][perm] * 2, "item_id": items[perm]}
    return real, a, b


def test_difference_equals_the_two_metrics_and_ci_excludes_zero_for_a_real_shift():
    real, a, b = cells(shift_b=0.5)
    r = compare_cells(real, a, b, "fid", n_boot=200, confidence=0.95)
    fid_a = frechet_distance_features(real["features"], a["features"])
    fid_b = frechet_distance_features(real["features"], b["features"])
    assert r["diff"] == pytest.approx(fid_a - fid_b, rel=1e-10)
    assert r["ci_high"] < 0 and r["p_value"] < 0.05  # B is shifted away from the real set: A is better
    r_is = compare_cells(real, a, b, "is", n_boot=100, is_splits=2)
    order = np.argsort(b["item_id"])
    expected = inception_score(a["logits"], 2)[0] - inception_score(b["logits"][order], 2)[0]
    assert r_is["diff"] == pytest.approx(expected, rel=1e-10)


def test_identical_cells_differ_by_exactly_zero():
    real, a, _ = cells(shift_b=0.0)
    r = compare_cells(real, a, dict(a), "fid", n_boot=50)
    assert r["diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 and r["p_value"] == 1.0


def test_pairing_narrows_the_interval():
    """Two noisy cells that share their items' variance: the paired CI is much tighter than the spread of the
    difference of two independent bootstraps."""
    real, a, b = cells(shift_b=0.05)
    paired = compare_cells(real, a, b, "fid", n_boot=200)
    rng = np.random.default_rng(1)
    n = len(a["features"])
    diffs = []
    for _ in range(200):
        i, j, k = (rng.integers(0, n, n) for _ in range(3))
        diffs.append(frechet_distance_features(real["features"][k], a["features"][i])
                     - frechet_distance_features(real["features"][k], b["features"][j]))
    independent = np.quantile(diffs, [0.025, 0.975])
    assert (paired["ci_high"] - paired["ci_low"]) < 0.5 * (independent[1] - independent[0])


def test_different_items_are_refused():
    real, a, b = cells(0.1)
    b = dict(b, item_id=np.array([f"other{i}" for i in range(len(b["item_id"]))]))
    with pytest.raises(MetricInputError, match="same items in both cells"):
        compare_cells(real, a, b, "fid", n_boot=10)


def test_cli(tmp_path, capsys):
    real, a, b = cells(0.5, n=120)
    for name, d in (("real", real), ("a", a), ("b", b)):
        save_npz(tmp_path / f"{name}.npz", **d)
    args = [str(tmp_path / f"{n}.npz") for n in ("real", "a", "b")]
    assert main(["compare", *args, "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FID(A) - FID(B) = -") and "paired bootstrap CI, 50 resamples of 120 items" in out
    assert main(["compare", args[0], args[1], str(tmp_path / "nope.npz")]) == 2
