"""Statistics across the sweep (issue 19, part 2): multiple-comparison corrections, paired p-values, the pairwise
tables and selection stability, each on synthetic data with a known answer."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genbench.layout import Cell
from genbench.metrics.fid import MetricInputError, frechet_distance_features
from genbench.metrics.pairwise import (
    benjamini_hochberg,
    gen2d_comparisons,
    gen2d_pairwise,
    holm,
    paired_mean_difference,
    recon3d_pairwise,
)
from genbench.metrics.stability import selection_stability


def _holm_by_hand(p):
    m, order = len(p), np.argsort(p)
    adj, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj


def _bh_by_hand(p):
    m, order = len(p), np.argsort(p)
    adj, running = np.empty(m), 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, min(1.0, m * p[i] / (rank + 1)))
        adj[i] = running
    return adj


def test_holm_and_bh_match_a_hand_computation_and_a_textbook_case():
    # statsmodels is not a dependency: the textbook values (Holm 1979 style) and a direct loop are the references
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(0, 0.2, rng.integers(1, 12))
        np.testing.assert_allclose(holm(q), _holm_by_hand(q))
        np.testing.assert_allclose(benjamini_hochberg(q), _bh_by_hand(q))
    # NaN (a degenerate comparison) is kept and does not count in m
    np.testing.assert_allclose(holm(np.array([0.01, np.nan, 0.02])), [0.02, np.nan, 0.02])
    with pytest.raises(ValueError, match="available"):
        from genbench.metrics.pairwise import adjust
        adjust(p, "bonferonni")


def test_paired_bootstrap_p_value_agrees_with_the_paired_t_test():
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    for shift, tol in ((0.1, 0.03), (0.0, 0.06)):
        b = a + rng.normal(scale=1.0, size=400) - shift
        r = paired_mean_difference(a, b, 4000, 0.95, np.random.default_rng(1))
        t = stats.ttest_rel(a, b)
        assert r["diff"] == pytest.approx(np.mean(a - b))
        assert r["p_value"] == pytest.approx(t.pvalue, abs=tol)
        ci = t.confidence_interval(0.95)
        assert r["ci_low"] == pytest.approx(ci.low, abs=0.02) and r["ci_high"] == pytest.approx(ci.high, abs=0.02)


def _cells_table():
    rows = [dict(model=m, dataset="d", steps=s, cfg=c, seed=0) for m in ("a", "b") for s in (1, 2) for c in (1.0, 2.0)]
    rows.append(dict(model="c", dataset="d", steps=1, cfg=1.0, seed=0))
    return pd.DataFrame(rows)


def test_comparisons_are_the_pairs_that_differ_in_one_key():
    comps = gen2d_comparisons(_cells_table())
    kinds = pd.Series([k for k, _, _ in comps]).value_counts().to_dict()
    # models at (1, 1.0): a, b, c -> 3 pairs; at the other 3 settings a vs b -> 3; cfg pairs: 2 models x 2 steps;
    # steps pairs: 2 models x 2 cfgs
    assert kinds == {"model": 6, "cfg": 4, "steps": 4}
    for kind, a, b in comps:
        differ = [k for k in ("model", "steps", "cfg") if a[k] != b[k]]
        assert differ == [kind]


def _features(n=120, d=6, seed=0):
    rng = np.random.default_rng(seed)
    items = np.array([f"i{k:03d}" for k in range(n)])
    real = {"features": rng.normal(size=(n, d)), "item_id": items}

    def cell(shift, seed2):
        r2 = np.random.default_rng(seed2)
        perm = r2.permutation(n)
        return {"features": (r2.normal(size=(n, d)) + shift)[perm],
                "logits": r2.normal(size=(n, 4))[perm] * (1 + shift), "item_id": items[perm]}
    return real, cell


def test_gen2d_pairwise_flags_a_real_shift_and_names_the_correction():
    real, cell = _features()
    shifts = {"a": 0.0, "b": 1.0}
    cells = pd.DataFrame([dict(model=m, dataset="d", steps=1, cfg=c, seed=0) for m in shifts for c in (1.0, 2.0)])
    feats = {(m, c): cell(shifts[m] + (0.05 if c == 2.0 else 0), int(10 * c) + len(m) + ord(m)) for m in shifts
             for c in (1.0, 2.0)}
    df = gen2d_pairwise(cells, lambda c: feats[(c["model"], c["cfg"])], lambda d: real, metrics=("fid",),
                        n_boot=200, confidence=0.95, seed=0, is_splits=1)
    assert len(df) == 4 and set(df["comparison"]) == {"model", "cfg"}
    ab = df[(df["comparison"] == "model") & (df["cfg_a"] == 1.0)].iloc[0]
    fa = frechet_distance_features(real["features"], feats[("a", 1.0)]["features"])
    fb = frechet_distance_features(real["features"], feats[("b", 1.0)]["features"])
    assert ab["diff"] == pytest.approx(fa - fb, rel=1e-9)
    assert ab["ci_high"] < 0 and ab["significant"]
    assert (df["p_adjusted"] >= df["p_value"]).all()
    assert df["correction"].str.startswith("Holm over the 4 comparisons").all()
    assert df["ci_method"].str.startswith("percentile, 200 resamples").all()


def test_recon3d_pairwise_pairs_items_and_records_a_pair_without_common_items():
    rng = np.random.default_rng(0)
    n = 30
    base = rng.uniform(size=n)
    rows = []
    for model, shift in (("m1", 0.0), ("m2", 0.2)):
        for i in range(n):
            rows.append(dict(dataset="d", protocol="p", model=model, item_id=f"x{i}", status="ok",
                             chamfer=base[i] + shift + rng.normal(scale=0.01)))
    rows += [dict(dataset="d", protocol="p", model="m3", item_id="other", status="ok", chamfer=1.0),
             dict(dataset="d", protocol="p", model="m1", item_id="skipped", status="skipped", chamfer=np.nan)]
    df = recon3d_pairwise(pd.DataFrame(rows), ["chamfer"], n_boot=500, confidence=0.95, seed=0)
    m12 = df[(df["model_a"] == "m1") & (df["model_b"] == "m2")].iloc[0]
    assert m12["n_items"] == n and m12["diff"] == pytest.approx(-0.2, abs=0.01) and m12["significant"]
    none = df[df["model_b"] == "m3"]
    assert (none["n_items"] == 0).all() and none["note"].str.contains("no item").all()
    # the two pairs without a common item (NaN p) do not count in m
    assert df["correction"].str.startswith("Holm over the 1 comparison of metric chamfer").all()


def test_selection_stability_is_certain_for_a_clear_winner_and_split_for_a_tie():
    real, cell = _features(n=150)
    cells = []
    for steps, cfg, shift in ((1, 1.0, 0.0), (1, 2.0, 2.0), (2, 1.0, 2.0)):
        cells.append(dict(model="a", dataset="d", steps=steps, cfg=cfg, seed=0, **cell(shift, 7 + steps + int(cfg))))
    # model b: two settings with the same distribution, so FID's choice between them is a coin flip
    for cfg in (1.0, 2.0):
        cells.append(dict(model="b", dataset="d", steps=1, cfg=cfg, seed=0, **cell(0.0, 100 + int(cfg))))
    df = selection_stability(real, cells, None, n_boot=60, seed=0, is_splits=1)
    assert set(df["criterion"]) == {"fid", "is"}  # no text-image scores: no CLIP, Pick, MMHM
    fid_a = df[(df["model"] == "a") & (df["criterion"] == "fid")].set_index(["steps", "cfg"])
    assert fid_a.loc[(1, 1.0), "frequency"] == 1.0 and fid_a.loc[(1, 1.0), "selected_full"]
    fid_b = df[(df["model"] == "b") & (df["criterion"] == "fid")]
    assert fid_b["frequency"].sum() == pytest.approx(1.0)
    assert 0.1 < fid_b["frequency"].max() < 0.95
    again = selection_stability(real, cells, None, n_boot=60, seed=0, is_splits=1)
    pd.testing.assert_frame_equal(df, again)  # seeded


def test_selection_stability_with_text_image_scores_selects_by_mmhm_and_rejects_missing_items():
    real, cell = _features(n=80)
    cells = [dict(model="a", dataset="d", steps=1, cfg=c, seed=0, **cell(s, int(c)))
             for c, s in ((1.0, 0.0), (2.0, 1.0))]
    ti = {}
    for c in cells:
        ti[str(Cell.from_mapping(c))] = {"clip": np.full(80, 30.0 - c["cfg"]), "pick": np.full(80, 20.0 - c["cfg"])}
    df = selection_stability(real, cells, ti, n_boot=20, seed=0, is_splits=1)
    mm = df[df["criterion"] == "mmhm"].set_index("cfg")
    assert mm.loc[1.0, "frequency"] == 1.0  # best on every metric
    bad = dict(cells[0], item_id=cells[0]["item_id"][:-1], features=cells[0]["features"][:-1],
               logits=cells[0]["logits"][:-1])
    with pytest.raises(MetricInputError, match="exactly one image for each item"):
        selection_stability(real, [bad], None, n_boot=2, seed=0, is_splits=1)


def test_best_table_marks_whether_its_choice_of_guidance_is_significant():
    from genbench.tables.export import SIGNIFICANCE_HEADER, best_table

    rows = []
    for cfg, fid in ((1.0, 30.0), (2.0, 10.0), (4.0, 11.0)):
        rows.append(dict(dataset="d", model="m", steps=1, cfg=cfg, seed=0, metric="fid", value=fid,
                         ci_low=fid - 1, ci_high=fid + 1, nfe=1))
    rows.append(dict(dataset="d", model="o", steps=1, cfg=1.0, seed=0, metric="fid", value=5.0, ci_low=4.0,
                     ci_high=6.0, nfe=1))
    table = pd.DataFrame(rows)
    pw = pd.DataFrame([dict(comparison="cfg", metric="fid", dataset="d", model_a="m", steps_a=1, cfg_a=a,
                            model_b="m", steps_b=1, cfg_b=b, seed=0, p_adjusted=p, significant=p < 0.05)
                       for a, b, p in ((1.0, 2.0, 0.001), (1.0, 4.0, 0.002), (2.0, 4.0, 0.4))])
    best = best_table(table, pairwise=pw)
    assert best[SIGNIFICANCE_HEADER].tolist() == ["cfg 1: p_adj 0.001*; cfg 4: p_adj 0.4", "only setting"]
    assert SIGNIFICANCE_HEADER not in best_table(table).columns


def test_fid_vs_cfg_and_step_scaling_mark_significant_neighbours(tmp_path):
    from genbench.plots.figures import draw_figure

    rows = []
    for steps, nfe in ((1, 1), (2, 2)):
        for cfg, fid in ((1.0, 30.0), (2.0, 10.0), (4.0, 11.0)):
            rows.append(dict(dataset="d", model="m", steps=steps, cfg=cfg, seed=0, metric="fid",
                             value=fid + steps, ci_low=fid + steps - 1, ci_high=fid + steps + 1, nfe=nfe))
    table = pd.DataFrame(rows)
    pw = [dict(comparison="cfg", metric="fid", dataset="d", model_a="m", steps_a=s, cfg_a=a, model_b="m", steps_b=s,
               cfg_b=b, seed=0, significant=a == 1.0) for s in (1, 2) for a, b in ((1.0, 2.0), (1.0, 4.0), (2.0, 4.0))]
    pw += [dict(comparison="steps", metric="fid", dataset="d", model_a="m", steps_a=1, cfg_a=c, model_b="m",
                steps_b=2, cfg_b=c, seed=0, significant=c == 4.0) for c in (1.0, 2.0, 4.0)]
    pw = pd.DataFrame(pw)
    out = {e: tmp_path / f"f.{e}" for e in ("pdf", "png", "csv")}
    df = draw_figure("fid_vs_cfg", table, out["pdf"], out["png"], out["csv"], confidence=0.95, pairwise=pw)
    flags = df.set_index(["steps", "cfg"])["significant_vs_next"]
    assert flags.loc[(1, 1.0)] == True and flags.loc[(1, 2.0)] == False and pd.isna(flags.loc[(1, 4.0)])  # noqa: E712
    assert "significant_vs_next" in pd.read_csv(out["csv"]).columns
    df = draw_figure("step_scaling", table, out["pdf"], out["png"], out["csv"], confidence=0.95, pairwise=pw)
    flags = df.set_index(["cfg", "steps"])["significant_vs_next"]
    assert flags.loc[(4.0, 1)] == True and flags.loc[(1.0, 1)] == False  # noqa: E712
    # the figures without a pairwise table are drawn as before (no flag column)
    df = draw_figure("fid_vs_cfg", table, out["pdf"], out["png"], out["csv"], confidence=0.95)
    assert "significant_vs_next" not in df.columns


def test_degradations_and_validation_rank_a_known_ordering():
    from genbench.metrics.validation import DEGRADATIONS, degrade, kendall_tau, split_halves, validate_metrics

    rng = np.random.default_rng(0)
    n, classes = 80, 4
    labels = np.arange(n) % classes
    # class c: a bright square of colour c on a dark noisy background
    colours = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]])
    images = rng.integers(0, 40, (n, 16, 16, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4:12, 4:12] = colours[c] + rng.integers(-15, 15, 3)

    blurred = degrade(images, labels, "blur", 2.0, rng)
    assert blurred.shape == images.shape and np.abs(np.diff(blurred.astype(float), axis=1)).mean() < \
        np.abs(np.diff(images.astype(float), axis=1)).mean()
    dropped = degrade(images, labels, "mode_dropping", 2.0, np.random.default_rng(1))
    # the first two classes' colours are gone
    centre = dropped[:, 8, 8].astype(int)
    assert not any(np.abs(centre - colours[c]).max(1).min() < 20 for c in (0, 1))
    noisy = degrade(images, labels, "label_noise", 0.5, np.random.default_rng(2))
    assert (np.any(noisy != images, axis=(1, 2, 3))).sum() == n // 2
    with pytest.raises(ValueError, match="leaves none"):
        degrade(images, labels, "mode_dropping", 4.0, rng)

    def extract(ims):  # a stand-in extractor: colour histogram features and class logits from the centre colour
        x = ims.astype(np.float64) / 255
        feats = np.concatenate([x.mean((1, 2)), x[:, 4:12, 4:12].mean((1, 2)), x.std((1, 2)),
                                np.abs(np.diff(x, axis=1)).mean((1, 2, 3))[:, None]], 1)
        logits = -((x[:, 4:12, 4:12].mean((1, 2))[:, None, :] * 255 - colours[None]) ** 2).sum(-1) / 500
        return {"features": feats, "logits": logits}

    ref, deg = split_halves(labels)
    assert len(ref) == len(deg) == n // 2 and (np.bincount(labels[ref]) == np.bincount(labels[deg])).all()
    real = extract(images[ref])
    df = validate_metrics(real, extract, images[deg], labels[deg], n_boot=20, confidence=0.9, seed=0,
                          degradations={"blur": DEGRADATIONS["blur"], "label_noise": DEGRADATIONS["label_noise"]})
    t = df.set_index(["degradation", "metric"])
    assert t.loc[("blur", "fid"), "tau"] == 1.0  # FID sees blur
    assert t.loc[("label_noise", "label_accuracy"), "tau"] == 1.0  # only a label-aware metric sees label noise
    assert t.loc[("label_noise", "label_accuracy"), "frac_correct"] > 0.5
    assert (df["tau_ci_low"] <= df["tau_ci_high"]).all()
    assert kendall_tau(np.arange(4), np.zeros(4)) == 0.0
    from scipy.stats import kendalltau  # the reference: tau-b, ties included

    for values in rng.integers(0, 3, (30, 4)).astype(float).tolist() + rng.normal(size=(10, 6)).tolist():
        if np.ptp(values):
            assert kendall_tau(np.arange(len(values)), values) == pytest.approx(
                kendalltau(np.arange(len(values)), values).statistic, abs=1e-12), values
    assert kendall_tau(np.arange(4), [1.0, 2.0, np.inf, np.inf]) == pytest.approx(
        kendalltau(np.arange(4), [1, 2, 3, 3]).statistic)


def _coloured_squares(n: int, classes: int, seed: int = 0):
    """Images of ``classes`` classes (class c: a bright square of colour c on a dark noisy background)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    colours = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [220, 220, 40]])[:classes]
    images = rng.integers(0, 40, (n, 16, 16, 3)).astype(np.uint8)
    for i, c in enumerate(labels):
        images[i, 4:12, 4:12] = colours[c] + rng.integers(-15, 15, 3)
    return images, labels, colours


def test_caption_mismatch_moves_the_text_image_metrics_and_leaves_the_image_metrics_flat():
    from genbench.metrics.validation import degrade_items, split_halves, swap_prompts, validate_metrics

    images, labels, colours = _coloured_squares(80, 4)
    swapped = swap_prompts(labels, 0.5, np.random.default_rng(0))
    assert (swapped != labels).sum() == 40 and set(swapped) <= set(labels)
    same, prompts = degrade_items(images, labels, "caption_mismatch", 0.25, np.random.default_rng(0))
    assert same is images and (prompts != labels).sum() == 20

    def centre_colour(ims):
        return ims[:, 4:12, 4:12].astype(np.float64).mean((1, 2))

    def extract(ims):  # features from the whole image, logits from the centre colour
        x = ims.astype(np.float64) / 255
        logits = -((centre_colour(ims)[:, None, :] - colours[None]) ** 2).sum(-1) / 500
        return {"features": np.concatenate([x.mean((1, 2)), x.std((1, 2))], 1), "logits": logits}

    def embed(ims):  # a "CLIP" whose image embedding is the soft class evidence, its text embedding the class
        return np.exp(extract(ims)["logits"]) + 0.05

    ref, deg = split_halves(labels)
    calls = []
    role = {"embed": lambda ims: calls.append(1) or embed(ims), "real_image_emb": embed(images[ref]),
            "text_labels": np.arange(4), "text_emb": np.eye(4), "logit_scale": np.log(50.0)}
    df = validate_metrics(extract(images[ref]), extract, images[deg], labels[deg], n_boot=10, confidence=0.9,
                          seed=0, degradations={"caption_mismatch": [0.0, 0.25, 0.5, 0.75]},
                          text={"clip": role, "pick": role}, real_labels=labels[ref])
    t = df.set_index("metric")
    aware = ["label_accuracy", "clip_score", "pick_score", "csfid", "psfid", "csis", "psis"]
    for m in aware:  # the known ordering: every level ranked, in every resample
        assert t.loc[m, "expected"] == "worse" and t.loc[m, "tau"] == 1.0 and t.loc[m, "frac_correct"] == 1.0, m
    clip = [float(v) for v in t.loc["clip_score", "values"].split(", ")]
    assert clip[0] > clip[1] > clip[2] > clip[3] > 0
    for m in ["fid", "kid", "is", "precision", "recall", "density", "coverage", "cmmd"]:  # the images are unchanged
        assert t.loc[m, "expected"] == "flat" and t.loc[m, "frac_correct"] == 1.0 and t.loc[m, "tau"] == 0.0, m
        assert len(set(t.loc[m, "values"].split(", "))) == 1, m
    assert len(calls) == 8  # each role embeds each level's images once (this test's roles do not share a cache)
    with pytest.raises(ValueError, match="real_labels"):
        validate_metrics(extract(images[ref]), extract, images[deg], labels[deg], n_boot=0, confidence=0.9, seed=0,
                         degradations={"caption_mismatch": [0.0, 0.5]}, text={"clip": role})


def test_noise_floor_of_two_real_halves_extrapolates_to_about_zero():
    from genbench.metrics.validation import noise_floor

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    df = noise_floor(a, b, points=8, confidence=0.95, rng=np.random.default_rng(1))
    subsets, inf = df[df["kind"] == "subset"], df[df["kind"] == "fd_inf"].iloc[0]
    assert len(subsets) == 8 and subsets["fid"].iloc[0] > subsets["fid"].iloc[-1]  # the floor falls with N
    assert abs(inf["fid"]) < 0.02 and inf["ci_low"] <= 0.0 <= inf["ci_high"] + 0.01


def test_selection_stability_figure_leaves_out_models_with_one_setting(tmp_path):
    from genbench.plots.statistics import selection_stability_figure

    rows = [dict(dataset="d", seed=0, model="a", criterion=c, steps=1, cfg=cfg, frequency=f, selected_full=f > 0.5,
                 n_boot=10, n_settings=2) for c in ("fid", "mmhm") for cfg, f in ((1.0, 0.8), (2.0, 0.2))]
    rows += [dict(dataset="d", seed=0, model="b", criterion="fid", steps=1, cfg=1.0, frequency=1.0, selected_full=True,
                  n_boot=10, n_settings=1)]
    out = {e: tmp_path / f"s.{e}" for e in ("pdf", "png", "csv")}
    df = selection_stability_figure(pd.DataFrame(rows), out["pdf"], out["png"], out["csv"])
    assert set(df["model"]) == {"a"} and out["png"].stat().st_size > 0
    with pytest.raises(ValueError, match="more than one setting"):
        selection_stability_figure(pd.DataFrame(rows[-1:]), out["pdf"], out["png"], out["csv"])


def test_metric_correlation_orients_metrics_and_leaves_out_constant_ones(tmp_path):
    from genbench.plots.statistics import metric_correlation

    rows = []
    for k in range(6):
        cell = dict(dataset="d", model="m", steps=1, cfg=float(k), seed=0)
        rows += [dict(cell, metric="fid", value=10.0 - k), dict(cell, metric="is", value=float(k) ** 2),
                 dict(cell, metric="kid", value=1.0), dict(cell, metric="kid_std", value=0.1)]
    out = {e: tmp_path / f"c.{e}" for e in ("pdf", "png", "csv")}
    df = metric_correlation(pd.DataFrame(rows), out["pdf"], out["png"], out["csv"]).set_index(["metric", "other"])
    # FID falls while IS rises: oriented (−FID), they agree perfectly
    assert df.loc[("fid", "is"), "spearman"] == pytest.approx(1.0)
    assert "kid" not in df.index.get_level_values(0)  # constant: left out
    with pytest.raises(ValueError, match="fewer than two metrics"):
        metric_correlation(pd.DataFrame([r for r in rows if r["metric"] == "fid"]), out["pdf"], out["png"],
                           out["csv"])
