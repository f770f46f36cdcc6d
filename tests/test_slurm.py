"""Integration test against a real single-node SLURM cluster (Debian's slurm-wlm, started and stopped here).

Runs where the machine can host the daemons (root on Debian); elsewhere the tests are skipped with the reason.
The cluster profile under test is profiles/slurm itself, adapted only where a site would adapt it (resources
scaled to a 2-CPU node, squeue as status command since there is no accounting database).
"""

import os
import shutil
import subprocess

import pytest
import yaml
from slurm_cluster import ClusterError, SingleNodeCluster, can_host, install
from wfutil import SNAKEMAKE

from genbench.tables.diff import Tolerances, diff_paths

REASON = can_host()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(REASON is not None, reason=f"SLURM test: {REASON}")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    install()
    c = SingleNodeCluster(tmp_path_factory.mktemp("slurm"))
    try:
        c.start()
    except ClusterError as exc:
        pytest.fail(str(exc))
    yield c
    c.stop()


def site_profile(root, dest, threads: int = 2):
    """profiles/slurm adapted to the 2-CPU test node: what a site profile would override."""
    prof = yaml.safe_load((root / "profiles/slurm/config.yaml").read_text())
    assert "configfile" not in prof  # the profile says where jobs run; the config (here the tiny one) what runs
    for res in prof["set-resources"].values():
        res.update(mem_mb=min(res.get("mem_mb", 1000), 2000), cpus_per_task=threads, runtime=10)
    prof["default-resources"].update(mem_mb=1000, cpus_per_task=1, runtime=10)
    prof["set-threads"] = dict.fromkeys(prof["set-threads"], threads)
    prof.update({"slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 2,
                 "seconds-between-status-checks": 2, "latency-wait": 15, "jobs": 4, "cores": 2})
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(prof))
    return dest


def run(cwd, *args, timeout=480):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        pytest.fail(f"snakemake on SLURM did not finish in {timeout} s:\n{(exc.stdout or b'')[-3000:]!r}")


def test_generation_on_slurm_equals_local(cluster, tiny_run, root, tmp_path):
    """Generation (a GPU rule), features and embeddings, grouped grid + scoring, aggregation and a figure rerun as
    SLURM jobs for one cell give the same results tree as the local run. (One cell keeps the test to 7 jobs:
    every SLURM job costs seconds of scheduling on the test's single node.)"""
    wd = tmp_path / "wf"
    shutil.copytree(tiny_run, wd, symlinks=True)
    prof = site_profile(root, tmp_path / "profile")
    cell = "sit_tiny/mw_val/steps2_cfg2/seed0"
    targets = [f"results/metrics/gen2d/{cell}.parquet", f"results/gen2d/{cell}/grid.png",
               "results/figures/fid_vs_cfg.pdf"]
    shards = [f"results/gen2d/{cell}/shard-{i}.npz" for i in range(2)]
    # force that cell's generation: it and everything drawn from it (7 jobs) run again, on SLURM
    out = run(wd, "--profile", str(prof), "--forcerun", *shards, "--", *targets)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-5000:]
    assert "submitted with SLURM jobid" in text
    assert "group_per_cell_sample_grid_score_cell" in text  # the small per-cell jobs went in as a group job
    for rule in ("generate", "cell_features", "aggregate_gen2d", "figure_fid_vs_cfg"):
        assert f"rule {rule}:" in text or f"Rule: {rule}" in text, rule
    # every generated image, feature, table and figure equals the local run's, to the bit
    same = diff_paths(tiny_run / "results", wd / "results", Tolerances.from_dict({"ignore": ["report.html"]}))
    assert same.ok, same.summary()
    log = (wd / "results/logs/generate/sit_tiny/mw_val/steps2_cfg2/seed0/shard-1.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0" in log, log  # SLURM granted the (fake) GPU the rule asked for
    assert "SLURM_JOB_ID=" in log and "SLURM_JOB_ID=," not in log


FLAKY = """
rule all:
    input: "flaky.txt", "broken.txt"

rule flaky:
    output: "flaky.txt"
    log: "logs/flaky.log"
    resources: gpu=1
    shell: "if [ ! -e first.attempt ]; then touch first.attempt; echo 'fails once' > {log}; exit 1; fi; "
           "echo ok > {output}"

rule broken:
    output: "broken.txt"
    log: "logs/broken.log"
    shell: "echo 'genbench: this job always fails' > {log}; exit 3"
"""


def test_retry_and_failed_log_path(cluster, root, tmp_path):
    """With the profile's retries a job that fails once succeeds; a job that keeps failing names its logs."""
    (tmp_path / "Snakefile").write_text(FLAKY)
    prof = site_profile(root, tmp_path / "profile", threads=1)
    out = run(tmp_path, "--profile", str(prof), "--set-resources", "flaky:gpu=1", timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0, "the broken rule must fail the run"
    assert (tmp_path / "flaky.txt").read_text().strip() == "ok", text[-3000:]
    assert "Error in rule broken" in text
    assert "logs/broken.log" in text and "results/logs/slurm/rule_broken" in text
