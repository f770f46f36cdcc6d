"""The schema's name enums equal the registries' keys (DESIGN.md, Wiring): adding a generator family, extractor,
embedder, reconstructor, data set adapter, metric or figure is one registry entry plus its schema enum, and this
test says when the two disagree."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def _enum(path: str) -> list:
    node = SCHEMA
    for part in path.split("/"):
        node = node[part]
    return node["enum"]


def _generators():
    from genbench.gen2d import families, pipelines, scale_rae, upstream  # noqa: F401  (importing registers them)
    from genbench.gen2d.registry import GENERATORS
    return GENERATORS


def _extractors():
    from genbench.features.registry import EXTRACTORS
    return EXTRACTORS


def _embedders():
    from genbench.features.text_image import EMBEDDERS
    return EMBEDDERS


def _reconstructors():
    from genbench.recon3d.reconstructors import RECONSTRUCTORS
    return RECONSTRUCTORS


def _adapters2d():
    from genbench.data.registry import ADAPTERS
    return ADAPTERS


def _adapters3d():
    from genbench.recon3d.medical import ADAPTERS
    from genbench.recon3d.objects import OBJECT_ADAPTERS
    return {**ADAPTERS, **OBJECT_ADAPTERS}


def _metrics():
    from genbench.metrics.registry import SCORING_METRICS
    return SCORING_METRICS


def _figures():
    from genbench.plots.figures import FIGURES
    return FIGURES


CASES = {
    "generator families": ("properties/models/additionalProperties/properties/family", _generators),
    "feature extractors": ("properties/extractors/additionalProperties/properties/kind", _extractors),
    "text-image embedders": ("properties/embedders/additionalProperties/properties/kind", _embedders),
    "reconstructors": ("properties/reconstructors/additionalProperties/properties/kind", _reconstructors),
    "2D data set adapters": ("properties/datasets/additionalProperties/properties/adapter", _adapters2d),
    "3D data set adapters": ("properties/datasets3d/additionalProperties/properties/adapter", _adapters3d),
    "metrics": ("properties/scoring/properties/metrics/items", _metrics),
    "figures": ("properties/figures/items", _figures),
}


# schema values that are deliberately not registry keys, and why
EXTRA = {
    # a curated data set's manifest is written by the curation stages (curate_final), not by prepare_dataset
    "2D data set adapters": {"curated"},
}


def _package_entries(registry) -> set[str]:
    """The registry's names that genbench itself registers: other test modules register stand-ins of their own
    (e.g. test_reconstruct3d's "_test_flaky"), and the whole suite imports them before this test runs."""
    if not isinstance(registry, dict):
        return set(registry)
    return {name for name, obj in registry.items()
            if getattr(obj, "__module__", "genbench").split(".")[0] == "genbench"}


@pytest.mark.parametrize("kind", CASES)
def test_schema_enum_equals_the_registry(kind):
    path, registry = CASES[kind]
    enum = _enum(path)
    assert len(enum) == len(set(enum)), f"{kind}: duplicates in the schema enum {path}"
    assert sorted(enum) == sorted({*_package_entries(registry()), *EXTRA.get(kind, ())}), \
        f"{kind}: schema {path} vs registry"


def test_entries_registered_by_tests_are_not_taken_for_the_packages():
    from genbench.registry import Registry

    reg: Registry = Registry("thing")
    reg["mine"] = _enum  # a function of this test module
    reg["theirs"] = Registry.register
    assert _package_entries(reg) == {"theirs"}
