"""One error base: every exception class genbench defines derives from GenbenchError, names the item and the fix in
one line, keeps the builtin base its callers catch, and the genbench command prints it as one line (no traceback)."""

import importlib
import inspect
import pickle
import pkgutil

import pytest

import genbench
from genbench.errors import GenbenchError, one_line


def _exception_classes() -> list[type[BaseException]]:
    found = {}
    for mod in pkgutil.walk_packages(genbench.__path__, "genbench."):
        module = importlib.import_module(mod.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("genbench"):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[k] for k in sorted(found)]


CLASSES = _exception_classes()


def test_the_package_defines_exception_classes():
    assert len(CLASSES) >= 28  # 28 when the base was introduced: the walk finds them


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_exception_class_derives_from_the_base(cls):
    assert issubclass(cls, GenbenchError), f"{cls.__module__}.{cls.__name__} does not derive from GenbenchError"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_str_is_one_line_naming_item_and_fix(cls):
    exc = cls("is broken:\n  first problem\n  second problem", item="results/x.parquet", fix="rerun the rule")
    text = str(exc)
    assert "\n" not in text
    assert text == "results/x.parquet: is broken: first problem; second problem; rerun the rule"
    assert (exc.item, exc.fix) == ("results/x.parquet", "rerun the rule")
    assert "\n" not in str(cls("a message\nover two lines"))
    back = pickle.loads(pickle.dumps(exc))  # worker processes send exceptions back pickled
    assert type(back) is cls and str(back) == text and back.item == exc.item


def test_builtin_bases_are_kept():
    from genbench.config import ConfigError
    from genbench.data.manifest import ManifestError
    from genbench.recon3d.external import UpstreamMissingError
    from genbench.weights import WeightsMissingError

    assert issubclass(ConfigError, ValueError) and issubclass(ManifestError, ValueError)
    assert issubclass(WeightsMissingError, FileNotFoundError) and issubclass(UpstreamMissingError, ImportError)
    with pytest.raises(FileNotFoundError, match="fetch it"):
        raise WeightsMissingError("no checkpoint", item="w.pt", fix="fetch it")


def test_render_leaves_out_what_is_not_given():
    assert str(GenbenchError("plain problem")) == "plain problem"
    assert str(GenbenchError("problem", item="item")) == "item: problem"
    assert str(GenbenchError("problem", fix="do this")) == "problem; do this"
    assert one_line("head:\n  a\n  b\n") == "head: a; b"


def test_config_error_is_one_line_and_keeps_each_problem(default_config):
    from genbench.config import ConfigError, validate_config

    default_config["sweep"][0]["steps"] = ["four"]
    default_config["scorng"] = {}
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    assert "\n" not in str(err.value) and str(err.value).startswith("invalid genbench config (2 error(s)): ")
    assert len(err.value.problems) == 2


def test_cli_prints_a_genbench_error_as_one_line(monkeypatch, capsys):
    from genbench import cli
    from genbench.data.stream import ShardError

    def broken(args):
        raise ShardError("truncated shard:\n  3 of 8 images", item="results/gen2d/x/shard-0.npz",
                         fix="rerun generate")

    monkeypatch.setattr(cli, "_provenance", broken)
    assert cli.main(["provenance", "whatever.parquet"]) == 2
    err = capsys.readouterr().err
    assert err == ("genbench provenance: results/gen2d/x/shard-0.npz: truncated shard: 3 of 8 images; "
                   "rerun generate\n")
