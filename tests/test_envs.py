"""Environments and dependencies: `make run` needs no test-only Debian package, and every rule's conda env holds
the third-party packages its script imports (through genbench, followed statically)."""

import os
import shutil
import subprocess

import pytest


def _fake_non_root_system(tmp_path):
    """A PATH on which dpkg knows no package and id says "not root": what a fresh machine's user sees."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "dpkg").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_needs_no_test_only_debian_package(root, tmp_path):
    env = _fake_non_root_system(tmp_path)
    shutil.copy2(root / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").touch()  # the venv stamp's prerequisite (`make -n` only prints its recipe)
    run = subprocess.run(["make", "-s", "system-deps"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    test = subprocess.run(["make", "-s", "test-system-deps"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert test.returncode != 0
    assert "make test needs Debian packages: chromium libusb-1.0-0 (run as root" in test.stdout
    # `make run` reaches system-deps only; `make test` both
    plan_run, plan_test = (subprocess.run(["make", "-n", target], cwd=tmp_path, env=env, capture_output=True,
                                          text=True, check=True).stdout for target in ("run", "test"))
    assert "snakemake --cores" in plan_run and "pytest" in plan_test
    assert "chromium" not in plan_run and "libusb" not in plan_run
    assert "chromium libusb-1.0-0" in plan_test
