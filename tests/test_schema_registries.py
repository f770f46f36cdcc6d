"""The schema's name enums come from the registries: the schema file lists no generator family,
extractor, embedder, reconstructor, data set adapter, requestable metric or figure; validate_config fills each enum
from its registry, so adding one is one registry entry, and an unknown name fails naming the available ones."""

from pathlib import Path

import pytest

from genbench import catalog
from genbench.config import CURATED_ADAPTER, ConfigError, load_schema, registry_enums, validate_config
from genbench.metrics.registry import SCORING_METRICS
from genbench.plots.registry import FIGURES

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    "generator families": ("properties/models/additionalProperties/properties/family", catalog.GENERATORS),
    "feature extractors": ("properties/extractors/additionalProperties/properties/kind", catalog.EXTRACTORS),
    "text-image embedders": ("properties/embedders/additionalProperties/properties/kind", catalog.EMBEDDERS),
    "reconstructors": ("properties/reconstructors/additionalProperties/properties/kind", catalog.RECONSTRUCTORS),
    "2D data set adapters": ("properties/datasets/additionalProperties/properties/adapter",
                             [*catalog.ADAPTERS, CURATED_ADAPTER]),
    "3D data set adapters": ("properties/datasets3d/additionalProperties/properties/adapter",
                             [*catalog.OBJECT_ADAPTERS, *catalog.MEDICAL_ADAPTERS]),
    "metrics": ("properties/scoring/properties/metrics/items", SCORING_METRICS),
    "figures": ("properties/figures/items", FIGURES),
}


def _node(schema: dict, path: str) -> dict:
    for part in path.split("/"):
        schema = schema[part]
    return schema


@pytest.mark.parametrize("kind", CASES)
def test_the_schema_file_lists_no_names_and_validation_takes_the_registrys(kind):
    path, names = CASES[kind]
    assert "enum" not in _node(load_schema(), path), f"{kind}: {path} lists names by hand"
    assert sorted(registry_enums()[path]) == sorted(names), kind


def test_every_registry_enum_is_a_schema_node():
    """registry_enums covers exactly the cases above (a new name field gets a case here too)."""
    assert set(registry_enums()) == {path for path, _ in CASES.values()}
    for path in registry_enums():
        assert _node(load_schema(), path)["type"] == "string", path


def test_an_unknown_family_fails_in_one_line_naming_the_available_ones(default_config):
    default_config["models"]["sit_mini"]["family"] = "sitt"
    with pytest.raises(ConfigError) as err:
        validate_config(default_config)
    assert "\n" not in str(err.value)
    assert "models.sit_mini.family: 'sitt' is not one of ['flux1', 'imeanflow', 'meanflow', 'rae', 'scale_rae', " \
           "'sd35', 'sit', 'soflow']" in str(err.value)


def test_an_entry_added_to_a_registry_is_a_valid_name(default_config, monkeypatch):
    """What makes adding a kind one entry: validation reads the registry at call time."""
    from genbench.registry import Plugin

    monkeypatch.setitem(catalog.GENERATORS, "widget", Plugin("genbench.gen2d.families:SiTGenerator", "gen2d", 1))
    default_config["models"]["sit_mini"]["family"] = "widget"
    validate_config(default_config)
