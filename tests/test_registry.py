"""The registries (genbench.catalog): explicit maps whose entries load their implementation on look-up, readable
without torch (the Snakefile reads them at parse time in every job), failing in one line on an unknown name."""

import subprocess
import sys
from pathlib import Path

import pytest

from genbench import catalog
from genbench.errors import GenbenchError
from genbench.gen2d.registry import get_generator_class
from genbench.registry import Plugin, Registry, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


def test_registry_lookup_and_duplicates():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    assert reg.lookup("a") == 1
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register("a")(2)
    with pytest.raises(NotImplementedError, match=r"widget 'b' is not available .*\(available: a\)"):
        reg.lookup("b")


def test_an_unknown_name_is_one_genbench_error_line_listing_the_names():
    with pytest.raises(UnknownNameError) as err:
        catalog.GENERATORS.plugin("sitt")
    assert isinstance(err.value, GenbenchError) and "\n" not in str(err.value)
    assert str(err.value) == ("generator family 'sitt' is not available in this genbench version (available: flux1, "
                              "imeanflow, meanflow, rae, scale_rae, sd35, sit, soflow)")


def test_an_entry_loads_its_module_on_lookup_only(tmp_path, monkeypatch):
    (tmp_path / "widget_impl.py").write_text("class Widget:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", {"w": Plugin("widget_impl:Widget", env="gen2d", gpus=1)})
    assert "widget_impl" not in sys.modules
    assert reg.plugin("w").env == "gen2d" and "widget_impl" not in sys.modules  # the wiring needs no import
    assert reg.lookup("w").__name__ == "Widget" and "widget_impl" in sys.modules
    with pytest.raises(ValueError, match="not 'package.module:attribute'"):
        Plugin("widget_impl.Widget")


def test_the_catalog_and_the_config_check_import_no_torch():
    """What the Snakefile imports at parse time (common.smk): the catalog, the config check, the figure registry,
    the wiring."""
    code = ("import sys, genbench.catalog, genbench.config, genbench.plots.registry, genbench.wiring; "
            "heavy = {'torch', 'numpy', 'matplotlib', 'trimesh'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT / "workflow", check=True)


KINDS = {  # registry -> the base its entries implement (None: a function)
    "GENERATORS": ("genbench.gen2d.registry", "Generator"),
    "EXTRACTORS": ("genbench.features.registry", "Extractor"),
    "EMBEDDERS": ("genbench.features.text_image", "TextImageEmbedder"),
    "RECONSTRUCTORS": ("genbench.recon3d.reconstructors", "Reconstructor"),
    "ADAPTERS": None,
    "OBJECT_ADAPTERS": None,
    "MEDICAL_ADAPTERS": None,
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_catalog_entry_loads_and_declares_its_wiring(kind):
    import importlib

    registry = getattr(catalog, kind)
    base = getattr(importlib.import_module(KINDS[kind][0]), KINDS[kind][1]) if KINDS[kind] else None
    envs = {p.stem for p in (ROOT / "workflow/envs").glob("*.yaml")}
    for name, plugin in registry.items():
        if not plugin.target.startswith("genbench."):
            continue  # a test's stand-in
        obj = registry.lookup(name)
        assert issubclass(obj, base) if base else callable(obj), name
        if kind in ("GENERATORS", "RECONSTRUCTORS"):  # one entry per job: the job's env and GPUs are the entry's
            assert plugin.env in envs and plugin.gpus in (0, 1), name
        else:  # run side by side in jobs whose rule fixes env and resources
            assert plugin.env is None and plugin.gpus == 0, name


def test_shipped_registries():
    assert get_generator_class("sit").__name__ == "SiTGenerator"
    assert "miniworld_classifier" in catalog.EXTRACTORS
    assert "miniworld" in catalog.ADAPTERS
    assert catalog.GENERATORS.plugin("rae").env == "rae" and catalog.RECONSTRUCTORS.plugin("trellis").gpus == 1
