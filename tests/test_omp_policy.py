"""OpenMP threads sleep while waiting (genbench/__init__.py): set before torch loads, in every rule's process."""

import ast
import os
import subprocess
import sys


def _policy(env_extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(env_extra, PYTHONPATH=os.pathsep.join(sys.path))
    code = "import genbench, os, sys; assert 'torch' not in sys.modules; print(os.environ['OMP_WAIT_POLICY'])"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_genbench_sets_passive_and_keeps_a_users_choice():
    assert _policy({}) == "PASSIVE"
    assert _policy({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_every_rule_script_imports_genbench_before_anything_that_loads_torch(root):
    """A rule's script must import genbench first: libgomp reads the policy once, when torch loads it."""
    for script in sorted((root / "workflow/scripts").glob("*.py")):
        imports = [n for n in ast.parse(script.read_text()).body if isinstance(n, ast.Import | ast.ImportFrom)]
        third_party = [n for n in imports
                       if not (isinstance(n, ast.Import) and all(a.name in sys.stdlib_module_names for a in n.names))
                       and not (isinstance(n, ast.ImportFrom) and (n.module or "").split(".")[0]
                                in sys.stdlib_module_names)]
        assert third_party, script.name
        first = third_party[0]
        module = first.module if isinstance(first, ast.ImportFrom) else first.names[0].name
        assert module.split(".")[0] == "genbench", f"{script.name}: imports {module} before genbench"
