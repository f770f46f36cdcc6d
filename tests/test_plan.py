"""genbench plan: jobs from a forced dry run, costs fitted to recorded jobs, items from manifests or the config."""

import re

import numpy as np
import pandas as pd
import pytest

from genbench.cli import main
from genbench.plan import (
    ITEM_RULES,
    PER_MODEL_RULES,
    Job,
    PlanError,
    costs_from_file,
    dataset_sizes,
    fit_linear,
    job_items,
    make_plan,
    parse_dry_run,
)

DRY_RUN = """Building DAG of jobs...
Job stats:
job         count
--------  -------
generate        2

[Thu Dec  3 11:42:29 2026]
rule generate:
    input: results/data/mw_v2/manifest.parquet, results/models/sit_tiny/model.safetensors
    output: results/gen2d/sit_tiny/mw_v2/steps2_cfg2/seed0/shard-0.npz
    log: results/logs/generate/sit_tiny/mw_v2/steps2_cfg2/seed0/shard-0.log
    jobid: 51
    benchmark: results/benchmarks/generate/sit_tiny/mw_v2/steps2_cfg2/seed0/shard-0.tsv
    reason: Forced execution
    wildcards: model=sit_tiny, dataset=mw_v2, steps=2, cfg=2, seed=0, shard=0
    threads: 2
    resources: tmpdir=/tmp, gpu=1, runtime=240, mem_mb=8000, mem=8 GB, mem_mib=7630
Shell command: None

[Thu Dec  3 11:42:29 2026]
localrule export_gen2d_tables:
    input: results/tables/gen2d_metrics.parquet
    output: results/tables/gen2d_metrics.csv, results/tables/gen2d_metrics.md
    jobid: 7
    reason: Forced execution
    resources: tmpdir=/tmp
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""


def test_dry_run_jobs_are_parsed_with_wildcards_resources_and_files():
    gen, export = parse_dry_run(DRY_RUN)
    assert gen.rule == "generate" and export.rule == "export_gen2d_tables"
    assert gen.wildcards == {"model": "sit_tiny", "dataset": "mw_v2", "steps": "2", "cfg": "2", "seed": "0",
                             "shard": "0"}
    assert gen.resources["mem"] == "8 GB" and gen.gpus == 1 and gen.threads == 2
    assert gen.benchmark.endswith("shard-0.tsv") and gen.outputs == ["results/gen2d/sit_tiny/mw_v2/steps2_cfg2/"
                                                                     "seed0/shard-0.npz"]
    assert export.gpus == 0 and export.benchmark is None and len(export.outputs) == 2


def test_fit_recovers_a_line_and_every_fallback_keeps_the_total():
    items = np.array([10, 20, 40, 80])
    assert fit_linear(items, 3 + 0.5 * items) == pytest.approx((3.0, 0.5))
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = rng.integers(1, 6)
        it = rng.choice([1, 5, 10, 50, 100], size=n)
        y = rng.uniform(0, 10, size=n)
        a, b = fit_linear(it, y)
        assert a >= 0 and b >= 0
        assert (a * n + b * it.sum()) == pytest.approx(y.sum(), rel=1e-9, abs=1e-9)
    assert fit_linear([5, 5, 5], [1.0, 2.0, 3.0]) == (2.0, 0.0)  # one item count: a per-job cost


def test_items_come_from_given_counts_manifests_the_config_and_official_sizes(tmp_path):
    config = {
        "miniworld": {"classes": ["a", "b", "c"], "per_class": {"val": 10}},
        "models": {"m": {"shards": 4}}, "generation": {"shards": 1},
        "datasets": {"mw": {"adapter": "miniworld", "split": "val"}, "in": {"adapter": "imagenet_val"},
                     "laion": {"adapter": "relaionet"}, "done": {"adapter": "relaionet"}},
        "datasets3d": {"ph": {"adapter": "phantoms", "cases": 2}},
    }
    (tmp_path / "results/data/done").mkdir(parents=True)
    pd.DataFrame({"item_id": range(7)}).to_parquet(tmp_path / "results/data/done/manifest.parquet")
    sizes = dataset_sizes(config, tmp_path, {"in": 123})
    assert {k: v[0] for k, v in sizes.items()} == {"mw": 30, "in": 123, "laion": None, "done": 7, "ph": 2}
    assert sizes["in"][1] == "--items" and "manifest" in sizes["done"][1] and "--items" in sizes["laion"][1]
    assert dataset_sizes(config, tmp_path)["in"][0] == 50_000
    gen = Job("generate", {"model": "m", "dataset": "mw", "shard": "0"})
    assert job_items(gen, config, sizes) == 8  # ceil(30 / 4)
    assert job_items(Job("score_3d", {"dataset3d": "ph"}), config, sizes) == 2
    assert job_items(Job("cell_features", {"dataset": "laion"}), config, sizes) is None
    assert job_items(Job("figure_fid_vs_cfg"), config, sizes) == 1
    with pytest.raises(PlanError, match="--items nope: no such data set"):
        dataset_sizes(config, tmp_path, {"nope": 3})


def test_plan_sums_costs_per_rule_and_marks_what_is_unknown(tmp_path):
    config = {"datasets": {"a": {"adapter": "imagenet_val"}, "b": {"adapter": "relaionet"}}}
    sizes = dataset_sizes(config, tmp_path)
    jobs = [Job("features_real", {"dataset": "a"}, {"gpu": "1"}), Job("features_real", {"dataset": "b"}),
            Job("score_cell", {"dataset": "a"}), Job("score_cell", {"dataset": "a"}), Job("figure_x")]
    f = tmp_path / "costs.yaml"
    f.write_text("score_cell: {seconds_per_job: 6, seconds_per_item: 0.0072, bytes_per_item: 100, "
                 "rss_mib: 512, source: measured on the pilot}\n"
                 "features_real: {seconds_per_item: 0.001, source: bench_torch_stages on an H100}\n")
    df = make_plan(jobs, config, sizes, costs_from_file(f)).set_index("rule")
    assert df.loc["score_cell", "jobs"] == 2 and df.loc["score_cell", "items"] == 100_000
    assert df.loc["score_cell", "hours"] == pytest.approx(2 * (6 + 0.0072 * 50_000) / 3600)
    assert df.loc["score_cell", "gpu_hours"] == 0 and df.loc["score_cell", "disk_gb"] == pytest.approx(0.01)
    assert np.isnan(df.loc["features_real", "hours"]) and df.loc["features_real", "unknown_items"] == "b"
    assert np.isnan(df.loc["figure_x", "hours"]) and "no recorded cost" in df.loc["figure_x", "cost_source"]
    (tmp_path / "bad.yaml").write_text("score_cell: {seconds_per_job: 1}\n")
    with pytest.raises(PlanError, match="rule 'score_cell' needs a mapping with a 'source'"):
        costs_from_file(tmp_path / "bad.yaml")


def test_every_rule_the_plan_scales_by_items_exists(root):
    rules = set()
    for smk in (root / "workflow/rules").glob("*.smk"):
        rules |= set(re.findall(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), flags=re.M))
    assert set(ITEM_RULES) <= rules, set(ITEM_RULES) - rules


def test_cli_refuses_a_bad_item_count_in_one_line(capsys):
    assert main(["plan", "--items", "relaionet=many"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "expected NAME=N" in err


def test_generation_is_costed_per_model_and_per_sampling_step(tmp_path):
    config = {"datasets": {"a": {"adapter": "imagenetv2"}}, "generation": {"shards": 2},
              "models": {"sit": {}, "flux": {}}}
    sizes = dataset_sizes(config, tmp_path)
    jobs = [Job("generate", {"model": m, "dataset": "a", "steps": st, "cfg": "1", "seed": "0", "shard": sh},
                {"gpu": "1"}) for m in ("sit", "flux") for st in ("1", "4") for sh in ("0", "1")]
    f = tmp_path / "costs.yaml"
    f.write_text("generate[sit]: {seconds_per_item: 0.001, source: pilot}\n")
    df = make_plan(jobs, config, sizes, costs_from_file(f)).set_index("rule")
    assert set(df.index) == {"generate[sit]", "generate[flux]"}
    assert df.loc["generate[sit]", "items"] == 2 * 10_000 and df.loc["generate[sit]", "work"] == (1 + 4) * 10_000
    assert df.loc["generate[sit]", "gpu_hours"] == pytest.approx(0.001 * 50_000 / 3600)
    assert np.isnan(df.loc["generate[flux]", "hours"])  # no model borrows another's cost
    assert "generate" in PER_MODEL_RULES


@pytest.mark.workflow
def test_plan_of_a_run_reproduces_its_recorded_costs(tiny_run, tmp_path, capsys):
    """Planned from its own benchmark records, the tiny config's wall time per rule equals what its jobs recorded
    (the per-rule fits keep totals), and more items cost more where a rule scales with them."""
    out = tmp_path / "plan.csv"
    assert main(["plan", "-d", str(tiny_run), "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    plan = pd.read_csv(out)
    plan["base"] = plan.rule.str.replace(r"\[.*\]$", "", regex=True)  # generate[sit_tiny] -> generate
    per_rule = plan.groupby("base")[["hours", "items", "jobs", "gpu_jobs"]].sum()
    recorded = {}
    for tsv in (tiny_run / "results/benchmarks").rglob("*.tsv"):
        rule = tsv.relative_to(tiny_run / "results/benchmarks").parts[0]
        recorded.setdefault(rule, []).append(float(pd.read_csv(tsv, sep="\t")["s"].iloc[-1]))
    for rule in ("generate", "cell_features", "score_cell", "features_real", "train_generator"):
        assert per_rule.loc[rule, "hours"] * 3600 == pytest.approx(sum(recorded[rule]), rel=1e-6), rule
    assert per_rule.loc["generate", "items"] == per_rule.loc["cell_features", "items"] > 0
    assert per_rule.loc["generate", "gpu_jobs"] == per_rule.loc["generate", "jobs"]
    assert (plan.base == "generate").sum() == 3  # one row per model
    assert "costs from:" in text and "recorded job(s)" in text
    bigger = tmp_path / "bigger.csv"
    assert main(["plan", "-d", str(tiny_run), "--items", "mw_val=4000", "--csv", str(bigger)]) == 0
    big = pd.read_csv(bigger).set_index("rule")
    small = plan.set_index("rule")
    for key in small.index[small.base == "generate"]:
        assert big.loc[key, "items"] > small.loc[key, "items"]
        assert big.loc[key, "hours"] >= small.loc[key, "hours"]
