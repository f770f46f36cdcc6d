"""A run killed mid-way (SIGKILL to snakemake and its jobs, as a crash or a pre-empted node) and resumed gives the
same results as a clean run, compared by ``genbench diff`` at zero tolerance."""

import shutil

import pytest
from wfutil import copy_workflow, planned_jobs, progress, running_jobs, smk

from genbench.tables.diff import Tolerances, diff_paths

pytestmark = pytest.mark.workflow


def test_killed_run_resumes_identically(tiny_run, root, tmp_path):
    (tmp_path / "wf").mkdir()
    wd = copy_workflow(root, tmp_path / "wf")
    shutil.copy(root / "tests" / "config" / "tiny.yaml", wd / "config" / "config.yaml")
    seen = {}

    def midway(output: str) -> bool:
        done, total = progress(output)
        running = running_jobs(output)
        if total and done >= total // 2 and running:  # past half, with a job in flight: kill it mid-write
            seen.update(done=done, total=total, running=[j["rule"] for j in running])
            return True
        return False

    killed = smk(wd, "--cores", "2", stop_when=midway)
    assert killed.returncode == -9 and seen, "the run finished before it could be killed mid-way"
    smk(wd, "--unlock")  # a SIGKILLed snakemake leaves its lock (README: run --unlock once after a hard kill)
    resumed = smk(wd, "--cores", "2")
    # it resumed: only the jobs not finished before the kill ran again, the killed ones among them
    rerun = planned_jobs(resumed.stdout + resumed.stderr)
    assert 0 < sum(rerun.values()) <= seen["total"] - seen["done"]
    assert set(seen["running"]) <= set(rerun)
    res = diff_paths(tiny_run / "results", wd / "results", Tolerances())
    assert res.compared > 100
    assert res.ok, res.summary()
