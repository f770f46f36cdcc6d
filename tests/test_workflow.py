"""Workflow tests: Snakemake itself on a temporary copy of the workflow (the tiny config end to end, rerun
behaviour, lint, and the paper DAG through the slurm profile)."""

import os
import shutil
import subprocess

import pandas as pd
import pytest
from wfutil import SNAKEMAKE, copy_workflow, planned_jobs, smk

from genbench.tables import read_metadata

pytestmark = pytest.mark.workflow
def test_tiny_end_to_end(tiny_run):
    table = pd.read_parquet(tiny_run / "results/tables/gen2d_metrics.parquet")
    assert len(table) == 4 * 5  # 4 cells x (fid, is, is_std, kid, kid_std)
    assert set(table["metric"]) == {"fid", "is", "is_std", "kid", "kid_std"}
    assert (table.loc[table["metric"] == "kid", "note"] == "10 subsets of 40 (shrunk from 1000)").all()
    assert set(zip(table["steps"], table["cfg"], strict=True)) == {(1, 1.0), (1, 2.0), (2, 1.0), (2, 2.0)}
    fid = table[table["metric"] == "fid"]
    assert (fid["value"] > 0).all() and fid["value"].notna().all()
    assert (fid["ci_low"] <= fid["ci_high"]).all()
    # Heun: 2 evaluations per step
    assert sorted(set(fid["nfe"])) == [2, 4]
    meta = read_metadata(tiny_run / "results/tables/gen2d_metrics.parquet")
    assert meta["config_hash"] and "torch" in meta["versions"]
    assert meta["extractors"]["mw_classifier"]["kind"] == "miniworld_classifier"
    for ext in ("pdf", "png", "csv"):
        assert (tiny_run / f"results/figures/fid_vs_cfg.{ext}").stat().st_size > 0
    assert len(list((tiny_run / "results/gen2d/sit_tiny/mw_val/steps1_cfg2/seed0").glob("shard-*.npz"))) == 2
    assert (tiny_run / "results/logs/generate/sit_tiny/mw_val/steps1_cfg2/seed0/shard-1.log").exists()


def test_second_run_is_noop(tiny_run):
    out = smk(tiny_run, "-n", "--cores", "2")
    assert planned_jobs(out.stdout + out.stderr) == {}


def test_deleted_figure_rebuilds_alone(tiny_run):
    (tiny_run / "results/figures/fid_vs_cfg.pdf").unlink()
    out = smk(tiny_run, "-n", "results/figures/fid_vs_cfg.pdf")
    assert planned_jobs(out.stdout + out.stderr) == {"figure_fid_vs_cfg": 1}
    smk(tiny_run, "--cores", "1", "results/figures/fid_vs_cfg.pdf")
    assert (tiny_run / "results/figures/fid_vs_cfg.pdf").exists()


def test_bad_config_fails_at_start_with_key(root, tmp_path):
    wd = copy_workflow(root, tmp_path)
    text = (root / "tests/config/tiny.yaml").read_text().replace("is_splits: 4", "is_spilts: 4")
    (wd / "config/config.yaml").write_text(text)
    out = smk(wd, "-n", check=False)
    assert out.returncode != 0
    assert "is_spilts" in out.stdout + out.stderr and "scoring" in out.stdout + out.stderr


def test_lint_is_clean(root, tmp_path):
    wd = copy_workflow(root, tmp_path)
    out = smk(wd, "--lint", check=False)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Lints for" not in text, text


def test_paper_dag_through_slurm_profile(root, tmp_path):
    """The cluster profile builds the full paper DAG on a machine without SLURM, GPUs on the GPU rules."""
    wd = copy_workflow(root, tmp_path)
    out = smk(wd, "-n", "--profile", "profiles/slurm", "--forceall", "--", "results/tables/gen2d_metrics.parquet")
    jobs = planned_jobs(out.stdout + out.stderr)
    assert jobs["generate"] > 1000 and jobs["score_cell"] >= 8 * 3
    assert "mw_train" not in out.stdout  # the mini-world config is replaced, not merged
    gen_block = out.stdout.split("rule generate:")[1].split("\n\n")[0]
    assert "gpu=1" in gen_block


def test_profile_by_name_after_make_slurm_profile(root, tmp_path):
    """`make slurm-profile` is the one documented step that makes `--profile slurm` resolve from the repo root."""
    wd = tmp_path / "repo"
    wd.mkdir()
    copy_workflow(root, wd)
    shutil.copy2(root / "Makefile", wd / "Makefile")
    home = tmp_path / "home"
    home.mkdir()
    subprocess.run(["make", "-s", "slurm-profile", f"HOME={home}"], cwd=wd, check=True, capture_output=True)
    assert (home / ".config/snakemake/slurm/config.yaml").exists()
    env = dict(os.environ, HOME=str(home))
    out = subprocess.run([*SNAKEMAKE, "-n", "--profile", "slurm", "results/tables/gen2d_metrics.parquet"], cwd=wd,
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert planned_jobs(out.stdout + out.stderr)["score_cell"] >= 8 * 3
