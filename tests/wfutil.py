"""Helpers for tests that run Snakemake on a temporary copy of the workflow."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_workflow(root: Path, dest: Path) -> Path:
    # workflow/ holds the Snakefile, the rules, the envs and genbench (the Snakemake catalogue's layout)
    for name in ["workflow", "config", "profiles"]:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


# A timeout is there to catch hangs, not slow machines: a run fails when snakemake prints nothing (no job started
# or finished) for IDLE_TIMEOUT seconds, or when it runs longer than TOTAL_TIMEOUT in all. Both can be raised on a
# slow machine with GENBENCH_WF_IDLE_TIMEOUT / GENBENCH_WF_TIMEOUT (seconds).
IDLE_TIMEOUT = float(os.environ.get("GENBENCH_WF_IDLE_TIMEOUT", 1800))
TOTAL_TIMEOUT = float(os.environ.get("GENBENCH_WF_TIMEOUT", 4 * 3600))
POLL = 1.0


# Snakemake runs in flight (process group leaders), so that a session ending early kills its background runs
# (conftest.py) instead of leaving them running.
LIVE: set[subprocess.Popen] = set()


def kill_live() -> None:
    for proc in list(LIVE):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class SnakemakeTimeout(AssertionError):
    """A snakemake run that hung; the message names the jobs that were still running."""


def running_jobs(output: str) -> list[dict[str, str]]:
    """The jobs a snakemake log shows as started and not yet finished (or failed): rule, jobid, wildcards, log."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\S+):$", line)
        if m:
            current = {"rule": m.group(1)}
            continue
        if current is not None:
            f = re.match(r"^    (\w+): (.*)$", line)
            if f:
                current[f.group(1)] = f.group(2)
                if f.group(1) == "jobid":
                    jobs[f.group(2)] = current
                continue
            current = None
        m = re.match(r"^Finished jobid: (\d+)", line) or re.match(r"^Finished job (\d+)\.", line)
        if m:
            jobs.pop(m.group(1), None)
            continue
        m = re.match(r"^Error in rule (\S+):", line)
        if m:
            current = None
    # "Error in rule" blocks list the failed job's id on their own line: drop those jobs too
    for m in re.finditer(r"^Error in rule \S+:\n(?:    .*\n)*?    jobid: (\d+)", output, re.M):
        jobs.pop(m.group(1), None)
    return list(jobs.values())


def progress(output: str) -> tuple[int, int]:
    """(done, total) from the last 'N of M steps (x%) done' line; (0, 0) before the first."""
    found = re.findall(r"^(\d+) of (\d+) steps", output, re.M)
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


def _describe(jobs: list[dict[str, str]], cwd: Path) -> str:
    lines = []
    for j in jobs:
        lines.append(f"  rule {j['rule']} (jobid {j.get('jobid')}, wildcards: {j.get('wildcards', '-')}), "
                     f"log: {j.get('log', '-')}")
        for log in (j.get("log") or "").split(", "):
            if log and (cwd / log).is_file():
                tail = (cwd / log).read_text(errors="replace").splitlines()[-5:]
                lines += [f"      | {t}" for t in tail]
    return "\n".join(lines) or "  (no job was running: snakemake itself hung)"


def smk(cwd: Path, *args: str, check: bool = True, stop_when=None,
        env: dict[str, str] | None = None, base_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run snakemake in ``cwd``. A hang (see IDLE_TIMEOUT / TOTAL_TIMEOUT) kills the run and fails with the jobs
    that were still running and the tails of their logs. ``stop_when(output) -> bool``, checked as the output
    grows, kills the run with SIGKILL (snakemake and its jobs, as a crash would) when it returns True; the result's
    returncode is then -9. ``env``: variables added to the run's environment, which is ``base_env`` (default: this
    process's environment now)."""
    env = dict(os.environ if base_env is None else base_env, PYTHONUNBUFFERED="1", **(env or {}))
    with tempfile.TemporaryDirectory() as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            proc = subprocess.Popen([*SNAKEMAKE, *args], cwd=cwd, stdout=out, stderr=err, text=True, env=env,
                                    start_new_session=True)
            LIVE.add(proc)
            start = last_change = time.monotonic()
            size = -1
            reason = None
            while proc.poll() is None:
                time.sleep(POLL)
                now = time.monotonic()
                new_size = out_path.stat().st_size + err_path.stat().st_size
                if new_size != size:
                    size, last_change = new_size, now
                    if stop_when is not None and stop_when(out_path.read_text() + err_path.read_text()):
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        break
                if now - last_change > IDLE_TIMEOUT:
                    reason = f"printed nothing for {IDLE_TIMEOUT:.0f} s (GENBENCH_WF_IDLE_TIMEOUT)"
                elif now - start > TOTAL_TIMEOUT:
                    reason = f"ran longer than {TOTAL_TIMEOUT:.0f} s (GENBENCH_WF_TIMEOUT)"
                if reason:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    break
            LIVE.discard(proc)
        stdout, stderr = out_path.read_text(), err_path.read_text()
    if reason:
        combined = stdout + "\n" + stderr
        done, total = progress(combined)
        raise SnakemakeTimeout(f"snakemake {' '.join(args)} in {cwd} {reason}; {done} of {total} jobs done; "
                               f"still running:\n{_describe(running_jobs(combined), cwd)}\n"
                               f"last output:\n{stderr[-2000:]}")
    result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if check and proc.returncode != 0 and stop_when is None:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{stdout[-4000:]}\n"
                             f"{stderr[-4000:]}")
    return result


def planned_jobs(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    if "Nothing to be done" in output:
        return {}
    block = output.split("Job stats:")[1]
    jobs = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            jobs[m.group(1)] = int(m.group(2))
    return jobs


def planned_job_details(cwd: Path, *args: str) -> list[dict]:
    """A dry run's planned jobs with what the printout leaves out: each job's rule, wildcards, conda env file,
    resources, threads, inputs and outputs (tests/dryrun_jobs.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "jobs.jsonl"
        script = Path(__file__).with_name("dryrun_jobs.py")
        run = subprocess.run([sys.executable, str(script), str(out), *args], cwd=cwd, capture_output=True, text=True)
        if run.returncode != 0:
            raise AssertionError(f"snakemake -n {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-4000:]}\n"
                                 f"{run.stderr[-4000:]}")
        return [json.loads(line) for line in out.read_text().splitlines()]
