"""Environments and dependencies: `make run` needs no test-only Debian package, and every rule's conda env holds
the third-party packages its script imports (through genbench, followed statically)."""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet


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


# --- every rule's conda env holds what its script imports -----------------------------------------------------
#
# A static walk (nothing but the light registry modules is imported): from the rule's script, follow what runs: a
# genbench module's top-level code when it is imported (its imports, class bodies, assignments), a function's or
# class's whole body when code that runs names it (including imports inside functions), and the import targets of a
# registry's entries (genbench.catalog's generator families, extractors, reconstructors, ...; the figures' drawing
# functions) when code that runs looks the registry up. For a rule whose env is chosen per entry (generate,
# reconstruct_3d: genbench.wiring.plugin_env), each catalog entry is checked against its own env, with the other
# entries' targets left out. Third-party modules map to distributions through the installed metadata; a
# third-party submodule genbench imports (trimesh.ray.ray_pyembree, safetensors.torch) also needs what that
# submodule imports beyond its distribution's own required dependencies (embreex, torch).

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
IMPORT_GUARDS = {"ImportError", "ModuleNotFoundError"}


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _is_genbench(module: str) -> bool:
    return module == "genbench" or module.startswith("genbench.")


@functools.cache
def _module_file(module: str) -> Path | None:
    base = WORKFLOW.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    if not level:
        return module or ""
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _guarded_imports(tree: ast.AST) -> set[int]:
    """ids of import statements inside ``try: ... except ImportError`` whose handler carries on without the
    module (optional dependencies; a handler that raises, e.g. with a better message, keeps it required)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            caught = set()
            for h in node.handlers:
                if any(isinstance(n, ast.Raise) for n in ast.walk(h)):
                    continue
                for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
                    if isinstance(t, ast.Name):
                        caught.add(t.id)
            if caught & IMPORT_GUARDS:
                out |= {id(n) for stmt in node.body for n in ast.walk(stmt)
                        if isinstance(n, ast.Import | ast.ImportFrom)}
    return out


@functools.cache
def _namespace(module: str) -> dict[str, tuple]:
    """A genbench module's top-level names: ("import", target module), ("from", module, name), ("def", node),
    ("assign", [value nodes])."""
    path = _module_file(module)
    ns: dict[str, tuple] = {}
    is_pkg = path.name == "__init__.py"

    def visit(stmts):
        for stmt in stmts:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    ns[a.asname or a.name.split(".")[0]] = ("import", a.name if a.asname else a.name.split(".")[0])
            elif isinstance(stmt, ast.ImportFrom):
                src = _absolute(stmt.module, stmt.level, module, is_pkg)
                for a in stmt.names:
                    ns[a.asname or a.name] = ("from", src, a.name)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ns[stmt.name] = ("def", stmt)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            old = ns.get(n.id)
                            values = old[1] if old and old[0] == "assign" else []
                            ns[n.id] = ("assign", values + [stmt.value] if stmt.value is not None else values)
            elif isinstance(stmt, ast.If | ast.Try | ast.With):
                visit(stmt.body)
                visit(getattr(stmt, "orelse", []))
                for h in getattr(stmt, "handlers", []):
                    visit(h.body)
                visit(getattr(stmt, "finalbody", []))

    visit(_parse(path).body)
    return ns


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return {k: [_norm(d) for d in v] for k, v in importlib.metadata.packages_distributions().items()}


@functools.cache
def _required_by(dist: str) -> set[str]:
    """A distribution's direct unconditional requirements (installed with it, whatever the extras)."""
    try:
        reqs = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    return {_norm(re.split(r"[\s<>=!~;\[(@]", r, maxsplit=1)[0]) for r in reqs if "extra ==" not in r}


def _site_file(dotted: str) -> Path | None:
    for entry in sys.path:
        base = Path(entry or ".").joinpath(*dotted.split("."))
        for p in (base.with_suffix(".py"), base / "__init__.py"):
            if p.is_file():
                return p
    return None


@functools.cache
def _submodule_needs(dotted: str) -> frozenset[str]:
    """Distributions a third-party submodule imports at its top level beyond its own distribution's
    unconditional requirements (the extras genbench then has to install itself)."""
    path = _site_file(dotted)
    top = dotted.split(".")[0]
    if path is None:
        return frozenset()
    own = set(_distributions().get(top, [_norm(top)]))
    installed_with, todo = set(own), list(own)  # the distribution and its requirements, transitively
    while todo:
        for dep in _required_by(todo.pop()) - installed_with:
            installed_with.add(dep)
            todo.append(dep)
    out = set()
    for stmt in _parse(path).body:  # top level only: imports inside try/if are optional or platform-specific
        names = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else \
            [stmt.module] if isinstance(stmt, ast.ImportFrom) and not stmt.level and stmt.module else []
        for name in names:
            root = name.split(".")[0]
            if root in STDLIB or root == top:
                continue
            dists = set(_distributions().get(root, [_norm(root)]))
            if not dists & installed_with:
                out.add(sorted(dists)[0])
    return frozenset(out)


# maps of import targets that are not genbench.registry.Registry objects: the figures (each names its drawing function)
# and the 2D metrics score_cell computes (each names its compute function)
TARGET_MAPS = {("genbench.plots.registry", "FIGURES"): "draw",
               ("genbench.metrics.registry", "CELL_METRICS_2D"): "compute"}


def _registry_targets(module: str, name: str) -> dict[str, str]:
    """{key: "module:attribute"} of a registry's entries that genbench itself declares (tests register stand-ins of
    their own at run time; the registry modules are light: genbench.catalog, genbench.plots.registry)."""
    registry = getattr(importlib.import_module(module), name)
    field = TARGET_MAPS.get((module, name), "target")
    targets = {key: getattr(entry, field) for key, entry in registry.items()}
    return {key: target for key, target in targets.items() if _is_genbench(target.partition(":")[0])}


class Closure:
    """What a rule's script needs: ``needs`` maps a distribution (or its alternatives) to where it is imported.
    ``only``: {"module:REGISTRY": the one key whose entry's target may run} (per-entry envs)."""

    def __init__(self, only: dict[str, str] | None = None):
        self.only = only or {}
        self.needs: dict[frozenset[str], str] = {}
        self.done: set = set()
        self.used_registries: set[tuple[str, str]] = set()
        self.keys: dict[tuple[str, str], set[str]] = {}
        self.stack: list[str] = []  # what is running, outermost first (for the messages)

    # third-party ------------------------------------------------------------------------------------------
    def third_party(self, dotted: str, where: str, optional: bool, names: list[str] = ()) -> None:
        root = dotted.split(".")[0]
        if optional or root in STDLIB or not root:
            return
        via = " <- ".join(reversed(self.stack[-4:]))
        self.needs.setdefault(frozenset(_distributions().get(root, [_norm(root)])), f"{where}, via {via}")
        for sub in [dotted] * ("." in dotted) + [f"{dotted}.{n}" for n in names]:
            for dist in _submodule_needs(sub):
                self.needs.setdefault(frozenset([dist]), f"{where} (through {sub}), via {via}")

    # genbench ---------------------------------------------------------------------------------------------
    def module(self, module: str) -> None:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
            self._run_module(".".join(parts[:i]))

    def _run_module(self, module: str) -> None:
        if ("module", module) in self.done or _module_file(module) is None:
            return
        self.done.add(("module", module))
        tree = _parse(_module_file(module))
        guarded = _guarded_imports(tree)
        self.stack.append(f"import {module}")
        for stmt in tree.body:
            self._top_level(stmt, module, guarded)
        self.stack.pop()

    def calls(self, node, module) -> None:
        """Import-time code: what it calls runs; what it only names (a dict of functions, a base class) runs
        when code that runs names it."""
        for n in ast.walk(node):
            if isinstance(n, ast.Call):
                self.names(n.func, module, {})

    def _top_level(self, stmt, module, guarded) -> None:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            self.imports(stmt, module, {}, guarded)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in stmt.decorator_list + stmt.args.defaults:
                self.calls(d, module)
        elif isinstance(stmt, ast.ClassDef):
            for d in stmt.decorator_list + stmt.bases + [k.value for k in stmt.keywords]:
                self.calls(d, module)
            for s in stmt.body:  # the class body runs at import; its methods only when called
                if not isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.calls(s, module)
        elif isinstance(stmt, ast.If | ast.Try | ast.With):
            type_checking = isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test)
            for s in ([] if type_checking else stmt.body) + getattr(stmt, "orelse", []) + \
                    getattr(stmt, "finalbody", []):
                self._top_level(s, module, guarded)
            for h in getattr(stmt, "handlers", []):
                for s in h.body:
                    self._top_level(s, module, guarded)
        else:
            self.calls(stmt, module)

    def _final(self, module: str, name: str, depth: int = 0) -> tuple[str, str] | None:
        """Follow ``from x import name`` re-exports to the module that assigns or defines ``name``."""
        b = _namespace(module).get(name) if _module_file(module) else None
        if b is None or depth > 20:
            return None
        if b[0] == "from" and _is_genbench(b[1]) and _module_file(b[1]):
            return self._final(b[1], b[2], depth + 1)
        return (module, name) if b[0] in ("assign", "def") else None

    def symbol(self, module: str, name: str) -> None:
        """Code that runs names ``module.name``."""
        if _module_file(f"{module}.{name}"):
            self.module(f"{module}.{name}")
            return
        self.module(module)
        key = ("symbol", module, name)
        if key in self.done:
            return
        self.done.add(key)
        b = _namespace(module).get(name)
        if b is None:
            return
        if b[0] == "def":
            self.body(b[1], module)
        elif b[0] == "assign":
            for v in b[1]:
                self.names(v, module, {})
        elif b[0] == "from":
            self.resolve_from(b[1], b[2], f"{module}", optional=False)
        elif b[0] == "import":
            self.resolve_import(b[1], module, optional=False)

    def use_registry(self, registry: tuple[str, str]) -> None:
        """Code that runs looks ``registry`` up: its entries' import targets run (with ``only``, one entry's)."""
        if registry in self.used_registries:
            return
        self.used_registries.add(registry)
        targets = _registry_targets(*registry)
        self.keys[registry] = set(targets)
        for key, target in targets.items():
            if self.only.get(":".join(registry), key) != key:
                continue
            module, _, attr = target.partition(":")
            self.stack.append(f"{':'.join(registry)}[{key}]")
            self.symbol(module, attr.split(".")[0])
            self.stack.pop()

    def body(self, node, module) -> None:
        """A function's or class's whole body runs (a class: all its methods)."""
        key = ("body", module, id(node))
        if key in self.done:
            return
        self.done.add(key)
        local: dict[str, tuple] = {}
        guarded = _guarded_imports(node)
        self.stack.append(f"{module}.{node.name}")
        for n in ast.walk(node):
            if isinstance(n, ast.Import | ast.ImportFrom):
                self.imports(n, module, local, guarded)
        self.names(node, module, local, running=True)
        self.stack.pop()

    def imports(self, stmt, module, local, guarded) -> None:
        optional = id(stmt) in guarded
        is_pkg = _module_file(module).name == "__init__.py" if _is_genbench(module) else False
        where = f"{module}:{stmt.lineno}"
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                local[a.asname or a.name.split(".")[0]] = ("import", a.name if a.asname else a.name.split(".")[0])
                self.resolve_import(a.name, where, optional)
        else:
            src = _absolute(stmt.module, stmt.level, module, is_pkg)
            for a in stmt.names:
                local[a.asname or a.name] = ("from", src, a.name)
            if _is_genbench(src):
                self.module(src)
                for a in stmt.names:
                    if _module_file(f"{src}.{a.name}"):
                        self.module(f"{src}.{a.name}")
            else:
                self.third_party(src, where, optional, [a.name for a in stmt.names])

    def resolve_import(self, name, where, optional) -> None:
        if _is_genbench(name):
            self.module(name)
        else:
            self.third_party(name, where, optional)

    def resolve_from(self, src, name, where, optional) -> None:
        if _is_genbench(src):
            self.symbol(src, name)
        else:
            self.third_party(src, where, optional, [name])

    @staticmethod
    def _is_registry(module: str, name: str) -> bool:
        if (module, name) in TARGET_MAPS:
            return True
        b = _namespace(module).get(name)
        return bool(b and b[0] == "assign" and any(isinstance(v, ast.Call) and getattr(v.func, "id", "") ==
                                                   "Registry" for v in b[1]))

    def names(self, node, module, local, running=False) -> None:
        """Every name ``node`` refers to runs (over-approximation: a referenced function may be called).
        ``running``: code that runs when the stage runs (a body), not at import; a registry it names is looked up."""
        ns = _namespace(module) if _is_genbench(module) else {}
        for n in ast.walk(node):
            if running and isinstance(n, ast.Name):
                b = local.get(n.id) or ns.get(n.id)
                final = None
                if b and b[0] == "from" and _is_genbench(b[1]):
                    final = self._final(b[1], b[2])
                elif b and b[0] == "assign" and _is_genbench(module):
                    final = (module, n.id)
                if final and self._is_registry(*final):
                    self.use_registry(final)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                b = local.get(n.value.id) or ns.get(n.value.id)
                target = None
                if b and b[0] == "import" and _is_genbench(b[1]):
                    target = b[1]
                elif b and b[0] == "from" and _is_genbench(b[1]) and _module_file(f"{b[1]}.{b[2]}"):
                    target = f"{b[1]}.{b[2]}"
                if target:
                    self.symbol(target, n.attr)
            if not isinstance(n, ast.Name):
                continue
            b = local.get(n.id) or ns.get(n.id)
            if b is None:
                continue
            if b[0] == "from" and _is_genbench(b[1]):
                self.symbol(b[1], b[2])
            elif b[0] in ("def", "assign") and _is_genbench(module):
                self.symbol(module, n.id)

    # a rule's script ----------------------------------------------------------------------------------------
    def script(self, path: Path, rule: str) -> Closure:
        tree = _parse(path)
        local: dict[str, tuple] = {}
        guarded = _guarded_imports(tree)
        for stmt in self._branch(tree.body, rule):
            for n in ast.walk(stmt):
                if isinstance(n, ast.Import | ast.ImportFrom):
                    self.imports(n, f"script {path.name}", local, guarded)
        for stmt in self._branch(tree.body, rule):
            self.names(stmt, f"script {path.name}", local, running=True)
        return self

    def _branch(self, stmts, rule):
        """The statements that run for ``rule``: of an ``if sm.rule == "x": ... elif ...`` chain, the one branch."""
        for stmt in stmts:
            while isinstance(stmt, ast.If) and self._rule_test(stmt.test) is not None:
                if self._rule_test(stmt.test) == rule:
                    yield from self._branch(stmt.body, rule)
                    break
                if len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If):
                    stmt = stmt.orelse[0]
                    continue
                yield from self._branch(stmt.orelse, rule)
                break
            else:
                yield stmt

    @staticmethod
    def _rule_test(test) -> str | None:
        if isinstance(test, ast.Compare) and isinstance(test.left, ast.Attribute) and test.left.attr == "rule" \
                and isinstance(test.ops[0], ast.Eq) and isinstance(test.comparators[0], ast.Constant):
            return test.comparators[0].value
        return None


# --- the rules and their envs ---------------------------------------------------------------------------------

RULES = WORKFLOW / "rules"


RULE = re.compile(r"^rule(?: (\w+))?:\n((?:[ \t]+.*\n|\n)*)", re.M)
# rules defined in a loop over a registry (figures.smk: `for fig in FIGURES.values():`, each named by `name:`)
LOOP = re.compile(r"^for (\w+) in (\w+)\.values\(\):\n((?:[ \t]+.*\n|\n)*)", re.M)


def _loop_registries() -> dict:
    from genbench.plots.registry import FIGURES

    return {"FIGURES": FIGURES}


def smk_rules() -> dict[str, dict[str, str | None]]:
    """rule name -> {"conda": the env path or the name of the function choosing it (None: no conda directive),
    "script": the script path}, read from workflow/rules/*.smk (a rule defined in a loop over a registry once per
    entry, under the name its `name:` directive gives it)."""
    out = {}

    def add(name: str, body: str, smk: Path) -> None:
        directive = {k: re.search(rf"^    {k}:\n\s+(\S.*)$", body, re.M) for k in ("conda", "script")}
        conda, script = (d.group(1).strip() if d else None for d in directive.values())
        out[name] = {"conda": conda, "script": script, "smk": smk.name}

    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        for m in RULE.finditer(text):
            assert m.group(1), f"{smk.name}: a rule without a name outside a loop"
            add(m.group(1), m.group(2), smk)
        for loop in LOOP.finditer(text):
            var, registry = loop.group(1), _loop_registries()[loop.group(2)]
            for m in RULE.finditer(textwrap.dedent(loop.group(3))):
                name = re.search(r"^    name:\n\s+(\S.*)$", m.group(2), re.M)
                assert name, f"{smk.name}: a rule in a loop needs a name: directive"
                for entry in registry.values():
                    add(eval(name.group(1), {}, {var: entry}), m.group(2), smk)  # the f-string, per entry
    return out


def plugin_sections() -> dict[str, str]:
    """The catalog's name behind each config section whose entries choose their rule's env (genbench.wiring's
    PLUGINS table, read by its plugin_env; the wiring module is light: the catalog holds import targets)."""
    import genbench.catalog
    from genbench.wiring import PLUGINS

    return {section: next(n for n, v in vars(genbench.catalog).items() if v is registry)
            for section, (registry, _) in PLUGINS.items()}


# a rule whose env is its catalog entry's: `conda: lambda wc: wiring.plugin_env("models", wc.model)`
PLUGIN_ENV = re.compile(r'^lambda wc: wiring\.plugin_env\("(\w+)", wc\.(\w+)\),?$')


def env_packages(env: str | None) -> tuple[set[str], str | None]:
    """The distributions an env file lists (conda and pip, normalised), and its Python version; ``None`` is the
    default env: the one snakemake runs in (pyproject's dependencies)."""
    root = RULES.parents[1]
    if env is None:
        project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
        return {_norm(re.split(r"[\s<>=!~;\[(@]", d, maxsplit=1)[0]) for d in project["dependencies"]}, "3.11"
    spec = yaml.safe_load((RULES / env).resolve().read_text())
    names, python = set(), None
    for dep in spec["dependencies"]:
        for d in dep["pip"] if isinstance(dep, dict) else [dep]:
            if d.startswith("-"):
                continue
            name = _norm(re.split(r"[\s<>=!~;\[(@]", d, maxsplit=1)[0])
            names.add(name)
            if name == "python":
                python = d.split("=", 1)[1].strip("=")
    return names, python


@functools.cache
def closure_needs(script: str, rule: str, only: tuple[tuple[str, str], ...] = ()) -> dict[frozenset[str], str]:
    return Closure(dict(only)).script(Path(script), rule).needs


@functools.cache
def rule_checks() -> list[tuple[str, str, str | None, dict[str, str]]]:
    """(rule, script, env, registry restriction): one per rule, or one per family / kind where the rule's env
    is chosen per model."""
    from genbench.wiring import PLUGINS, plugin_env

    out = []
    for rule, r in smk_rules().items():
        if not r["script"]:
            continue
        script = str((RULES / r["script"].strip('"')).resolve())
        conda = r["conda"]
        if conda is None or conda.startswith('"'):
            out.append((rule, script, conda and conda.strip('"'), {}))
            continue
        m = PLUGIN_ENV.match(conda)
        assert m, f"rule {rule}: conda: {conda} is neither an env file nor plugin_env(section, wildcard)"
        section, registry = m.group(1), f"genbench.catalog:{plugin_sections()[m.group(1)]}"
        # the script looks the registry up (else the per-entry env would check nothing)
        everything = Closure().script(Path(script), rule)
        keys = everything.keys.get(tuple(registry.split(":")), set())
        assert keys, f"rule {rule}: its script looks up no entry of {registry}"
        field = PLUGINS[section][1]
        for key in sorted(keys):
            env = plugin_env({section: {"x": {field: key}}}, section, "x")  # the env a job of this entry gets
            out.append((f"{rule}[{key}]", script, env, {registry: key}))
    return out


def test_every_rule_env_holds_its_import_closure():
    problems = []
    checked = 0
    for rule, script, env, only in rule_checks():
        listed, python = env_packages(env)
        needs = closure_needs(script, rule.split("[")[0], tuple(sorted(only.items())))
        for alternatives, where in sorted(needs.items(), key=lambda kv: kv[1]):
            if not alternatives & listed:
                problems.append(f"{rule}: {env or 'pyproject.toml'} lacks {'/'.join(sorted(alternatives))} "
                                f"(imported at {where})")
        checked += 1
        requires = tomllib.loads((RULES.parents[1] / "pyproject.toml").read_text())["project"]["requires-python"]
        if python is None or python not in SpecifierSet(requires):
            problems.append(f"{rule}: {env} pins python={python}; genbench requires {requires}")
    assert checked >= 30
    assert not problems, "\n".join(sorted(set(problems)))


def _closure(rule: str, only: dict[str, str] | None = None) -> dict[str, str]:
    script = str((RULES / smk_rules()[rule]["script"].strip('"')).resolve())
    needs = closure_needs(script, rule, tuple(sorted((only or {}).items())))
    return {"/".join(sorted(k)): where for k, where in needs.items()}


def test_the_import_walk_follows_what_runs():
    """The check is as good as its walk: it sees imports inside functions, through a third-party submodule and
    through one branch of a multi-rule script, and leaves out what does not run for the rule or family."""
    grid = _closure("figure_recon3d_grid")
    assert {"trimesh", "scikit-image", "matplotlib", "pillow"} <= set(grid)
    assert "trimesh.ray.ray_pyembree" in grid["embreex"]  # an extra of trimesh, imported inside a function
    assert "torch" not in grid  # genbench.seeding imports torch only for type checking and inside functions
    assert {"jsonschema", "pyyaml", "pillow"} <= set(_closure("laion_download"))  # via genbench, not img2dataset
    assert "flax" in _closure("convert_weights")  # a guarded import whose handler re-raises stays required
    checks = _closure("curate_checks")  # curate.py runs one stage per rule
    assert "imagehash" in checks and "imagehash" not in _closure("curate_match")
    assert "torch" not in _closure("score_3d")  # the external reconstructors' torch code runs in their own envs
    assert "torch" in _closure("reconstruct_3d", {"genbench.catalog:RECONSTRUCTORS": "trellis"})
    assert "torch" not in _closure("reconstruct_3d", {"genbench.catalog:RECONSTRUCTORS": "ellipsoid"})
    assert "diffusers" in _closure("generate", {"genbench.catalog:GENERATORS": "sd35"})
    assert "diffusers" not in _closure("generate", {"genbench.catalog:GENERATORS": "rae"})
    assert "matplotlib" in _closure("figure_fid_vs_cfg")  # the drawing function, by its import target
    assert {rule for rule, *_ in rule_checks() if rule.startswith("reconstruct_3d[")} >= {
        f"reconstruct_3d[{k}]" for k in ("trellis", "hi3dgen", "hunyuan3d21", "direct3d", "triposg", "sam3d",
                                         "ellipsoid", "shap_e", "lgm", "instantmesh", "gaussiananything",
                                         "3dtopia_xl")}
    # InstantMesh's adapter loads its config with OmegaConf and Zero123++ through diffusers, in its env only
    im = set(_closure("reconstruct_3d", {"genbench.catalog:RECONSTRUCTORS": "instantmesh"}))
    assert {"omegaconf", "diffusers"} <= im and "omegaconf" not in _closure(
        "reconstruct_3d", {"genbench.catalog:RECONSTRUCTORS": "trellis"})


def test_a_missing_package_is_reported(monkeypatch):
    """The check fails, naming the rule, the env and the import, when an env lacks a package."""
    original = env_packages

    def without_pillow(env):
        names, python = original(env)
        return (names - {"pillow"} if env and env.endswith("plots.yaml") else names), python

    monkeypatch.setattr(sys.modules[__name__], "env_packages", without_pillow)
    with pytest.raises(AssertionError, match=r"figure_fid_vs_cfg: \.\./envs/plots\.yaml lacks pillow "
                                             r"\(imported at genbench\.data\.manifest:\d+"):
        test_every_rule_env_holds_its_import_closure()
