import pytest

from genbench.data.registry import ADAPTERS
from genbench.features.registry import EXTRACTORS
from genbench.gen2d.registry import get_generator_class
from genbench.registry import Registry


def test_registry_lookup_and_duplicates():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    assert reg.lookup("a") == 1
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.register("a")(2)
    with pytest.raises(NotImplementedError, match=r"widget 'b' is not available .*\(available: a\)"):
        reg.lookup("b")


def test_shipped_registries():
    assert get_generator_class("sit").__name__ == "SiTGenerator"
    assert "miniworld_classifier" in EXTRACTORS
    assert "miniworld" in ADAPTERS
