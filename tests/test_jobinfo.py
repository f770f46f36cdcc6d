"""The cost line every job writes at the end of its log (genbench.jobinfo): start-up before the stage, stage time,
whether torch was imported, peak RSS."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from genbench import jobinfo

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


def _job(tmp_path: Path, body: str) -> dict:
    """Run a job-like process: it sleeps 0.4 s before setting up logging (its start-up), then runs ``body``."""
    log = tmp_path / "logs" / "some_rule" / "a.log"
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(WORKFLOW)!r})
        time.sleep(0.4)
        from genbench.stages import setup_logging
        setup_logging({str(log)!r}, 1)
    """) + textwrap.dedent(body)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    info = jobinfo.parse(log.read_text())
    assert info is not None, log.read_text()
    return info


def test_a_light_job_reports_its_start_up_and_no_torch(tmp_path):
    info = _job(tmp_path, "time.sleep(0.3)\n")
    assert info["startup"] >= 0.4
    assert 0.3 <= info["stage"] < 5
    assert info["torch"] is False
    assert info["rss_mib"] > 0


def test_a_job_that_imports_torch_says_so(tmp_path):
    assert _job(tmp_path, "import torch\n")["torch"] is True


def test_summarise_groups_by_rule_and_takes_the_last_attempt(tmp_path):
    _job(tmp_path, "pass\n")
    log = tmp_path / "logs" / "some_rule" / "a.log"
    text = log.read_text()
    log.write_text(text.replace("torch imported: no", "torch imported: yes") + text)  # a rerun appended
    other = tmp_path / "logs" / "other" / "b.log"
    other.parent.mkdir(parents=True)
    other.write_text("a job killed before its end writes no cost line\n")
    summary = jobinfo.summarise([log, other])
    assert set(summary) == {"some_rule"}
    nested = tmp_path / "logs" / "project" / "results" / "logs" / "inner_rule" / "x.log"  # a results tree under a
    nested.parent.mkdir(parents=True)  # folder that is also called logs: the rule is under the last one
    nested.write_text(text)
    assert set(jobinfo.summarise([nested])) == {"inner_rule"}
    assert summary["some_rule"]["jobs"] == 1 and summary["some_rule"]["torch_jobs"] == 0


@pytest.mark.parametrize("text", ["", "job cost: start-up x s"])
def test_parse_without_a_cost_line(text):
    assert jobinfo.parse(text) is None
