"""A run killed mid-way (SIGKILL to snakemake and its jobs, as a crash or a pre-empted node) and resumed gives the
same results as a clean run, compared by ``genbench diff`` at zero tolerance. The runs are made in the background
(conftest.py: resumed_run).

This is also the suite's "two runs are identical" check: the resumed run is a second run of the CI config in another
directory, and its results tree must equal the session's first run to the bit (on CPU). One run serves both checks
because each run of the CI config costs minutes of the suite's 25-minute budget."""

import subprocess
import sys

import pytest
from wfutil import planned_jobs

from genbench.tables.diff import Tolerances, diff_paths

pytestmark = pytest.mark.workflow


def test_killed_run_resumes_identically(tiny_run, resumed_run, root):
    seen, killed, resumed, wd = resumed_run["seen"], resumed_run["killed"], resumed_run["resumed"], resumed_run["wd"]
    assert killed.returncode == -9 and seen, "the run finished before it could be killed mid-way"
    # it resumed: only the jobs not finished before the kill ran again, the killed ones among them
    rerun = planned_jobs(resumed.stdout + resumed.stderr)
    assert 0 < sum(rerun.values()) <= seen["total"] - seen["done"]
    assert set(seen["running"]) <= set(rerun)
    res = diff_paths(tiny_run / "results", wd / "results", Tolerances())
    assert res.compared > 100
    assert res.ok, res.summary()
    # the user's command for the same comparison agrees
    out = subprocess.run([sys.executable, "-m", "genbench.cli", "diff", str(tiny_run / "results"), str(wd / "results")],
                         capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr
    assert "identical within tolerance" in out.stdout
