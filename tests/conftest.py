import copy
import os

# before anything loads torch: OpenMP threads sleep while they wait (genbench/__init__.py says why), so that the
# unit tests and the background runs below share the cores instead of spinning against each other
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import shutil
import sys
import threading
from pathlib import Path

import pytest
import yaml

# the environment as the session started, for the background runs below: some libraries set variables when a test
# imports them (MONAI sets CUBLAS_WORKSPACE_CONFIG), and a run started after that would inherit them and record
# them in its provenance (train.json's machine entry), unlike the runs started before
SESSION_ENV = dict(os.environ)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def one_torch_thread():
    """For tiny torch tests (pytestmark = pytest.mark.usefixtures("one_torch_thread")): intra-op threads would only
    contend with each other, and with the background runs, on a shared machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def default_config() -> dict:
    with open(ROOT / "config" / "config.yaml") as f:
        return yaml.safe_load(f)


@pytest.fixture
def tiny_sit_spec() -> dict:
    return copy.deepcopy({
        "family": "sit",
        "arch": {"input_size": 16, "patch_size": 4, "in_channels": 3, "hidden_size": 32, "depth": 2,
                 "num_heads": 2, "num_classes": 4, "learn_sigma": False, "class_dropout_prob": 0.1},
        "train": {"dataset": "x", "steps": 1},
        "sampler": {"method": "euler", "cfg_channels": None},
    })


# ---------------------------------------------------------------------------------------------------------------
# The suite's three runs of the CI config (tests/config/tiny.yaml): the clean run every workflow test reads
# (tiny_run), the same config as on another machine (other_machine_run, tests/test_reproducible.py) and a run killed
# mid-way and resumed (resumed_run, tests/test_resume.py). Each costs minutes, and a run keeps 2 cores only ~75 %
# busy (job start-up, dependencies), so they start together in background threads when the session starts (only
# those a selected test needs), and the tests that read them are moved to the end of the session: the unit tests
# run meanwhile. The runs do not depend on each other's timing: training uses a fixed thread count, and the resumed
# run's kill point is chosen from its own progress.


def _run_tiny(wd: Path) -> Path:
    from wfutil import copy_workflow, smk

    wd = copy_workflow(ROOT, wd)
    shutil.copy(ROOT / "tests" / "config" / "tiny.yaml", wd / "config" / "config.yaml")
    smk(wd, "--cores", "2", base_env=SESSION_ENV)
    return wd


def _run_other_machine(wd: Path) -> Path:
    from wfutil import copy_workflow, smk

    from genbench.repro import other_machine_config, other_machine_env

    wd = copy_workflow(ROOT, wd)
    cfg = other_machine_config(yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text()))
    (wd / "config/config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    smk(wd, "--cores", "2", env=other_machine_env(), base_env=SESSION_ENV)
    return wd


def _run_killed_and_resumed(wd: Path) -> dict:
    """The tiny config killed (SIGKILL to snakemake and its jobs) past half of its jobs with one in flight, unlocked,
    then resumed. Returns the folder, what was seen at the kill and both runs' results for the test to check."""
    from wfutil import copy_workflow, progress, running_jobs, smk

    wd = copy_workflow(ROOT, wd)
    shutil.copy(ROOT / "tests" / "config" / "tiny.yaml", wd / "config" / "config.yaml")
    seen: dict = {}

    def midway(output: str) -> bool:
        done, total = progress(output)
        running = running_jobs(output)
        if total and done >= total // 2 and running:  # past half, with a job in flight: kill it mid-write
            seen.update(done=done, total=total, running=[j["rule"] for j in running])
            return True
        return False

    killed = smk(wd, "--cores", "2", stop_when=midway, base_env=SESSION_ENV)
    if killed.returncode == -9:
        # a SIGKILLed snakemake leaves its lock (README: run --unlock once after a hard kill)
        smk(wd, "--unlock", base_env=SESSION_ENV)
    resumed = smk(wd, "--cores", "2", base_env=SESSION_ENV)
    return {"wd": wd, "killed": killed, "seen": seen, "resumed": resumed}


BACKGROUND_RUNS = {"tiny_run": _run_tiny, "other_machine_run": _run_other_machine,
                   "resumed_run": _run_killed_and_resumed}


class BackgroundRun:
    """One run in a daemon thread; ``result()`` waits for it and re-raises what it raised."""

    def __init__(self, fn, wd: Path):
        self.value = self.error = None
        self.thread = threading.Thread(target=self._target, args=(fn, wd), daemon=True, name=fn.__name__)
        self.thread.start()

    def _target(self, fn, wd: Path) -> None:
        try:
            self.value = fn(wd)
        except BaseException as e:  # noqa: BLE001 (re-raised in the test that waits for it)
            self.error = e

    def result(self):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def pytest_collection_modifyitems(session, config, items):
    """Tests that read a run of the CI config go last (in their own order), after the unit tests that run while
    the runs compute."""
    items.sort(key=lambda item: any(name in BACKGROUND_RUNS for name in getattr(item, "fixturenames", ())))


def pytest_sessionfinish(session, exitstatus):
    """A session that ends before its background runs (-x, Ctrl-C) kills them rather than leaving them running."""
    import wfutil

    wfutil.kill_live()


@pytest.fixture(scope="session", autouse=True)
def _background_runs(request, tmp_path_factory) -> dict[str, BackgroundRun]:
    needed = {name for item in request.session.items for name in getattr(item, "fixturenames", ())
              if name in BACKGROUND_RUNS}
    return {name: BackgroundRun(BACKGROUND_RUNS[name], tmp_path_factory.mktemp(name)) for name in sorted(needed)}


@pytest.fixture(scope="session")
def tiny_run(_background_runs) -> Path:
    """The tiny config run locally end to end once per session (shared by the workflow and SLURM tests)."""
    return _background_runs["tiny_run"].result()


@pytest.fixture(scope="session")
def other_machine_run(_background_runs) -> Path:
    """The tiny config run as on another machine: repro.other_machine_config and other_machine_env."""
    return _background_runs["other_machine_run"].result()


@pytest.fixture(scope="session")
def resumed_run(_background_runs) -> dict:
    """The tiny config killed mid-way and resumed (see _run_killed_and_resumed)."""
    return _background_runs["resumed_run"].result()
