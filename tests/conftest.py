import copy
import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny config run locally end to end once per session (shared by the workflow and SLURM tests)."""
    from wfutil import copy_workflow, smk

    wd = copy_workflow(ROOT, tmp_path_factory.mktemp("wf"))
    shutil.copy(ROOT / "tests" / "config" / "tiny.yaml", wd / "config" / "config.yaml")
    smk(wd, "--cores", "2")
    return wd
