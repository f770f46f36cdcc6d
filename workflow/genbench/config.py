"""Configuration: schema validation with defaults, cross-reference checks, and the sweep's cells.

The Snakefile calls :func:`validate_config` at start; pytest calls it directly. Errors name the offending key as a
dotted path (``models.sit_mini.famly``) and say what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import catalog
from .errors import GenbenchError
from .layout import Cell, fmt_cfg  # noqa: F401  (one definition, in layout; re-exported here)
from .metrics.registry import SCORING_METRICS
from .plots.registry import FIGURES

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(GenbenchError, ValueError):
    """A configuration that does not match the schema or refers to something undefined; ``problems`` lists each
    problem with its key path (``str()`` joins them into one line)."""

    problems: tuple[str, ...] = ()

    @classmethod
    def invalid(cls, problems: list[str], count: bool = False) -> ConfigError:
        head = f"invalid genbench config ({len(problems)} error(s))" if count else "invalid genbench config"
        exc = cls(f"{head}: " + "; ".join(problems))
        exc.problems = tuple(problems)
        return exc


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


# a data set the curation rules write (curate_final), not an adapter of genbench.catalog.ADAPTERS
CURATED_ADAPTER = "curated"


def registry_enums() -> dict[str, list[str]]:
    """The names the schema's enums take from the registries (the schema file lists none of them), by the path
    (``/``-separated) of the schema node that gets the enum."""
    entry = "additionalProperties/properties"
    return {
        f"properties/models/{entry}/family": sorted(catalog.GENERATORS),
        f"properties/extractors/{entry}/kind": sorted(catalog.EXTRACTORS),
        f"properties/embedders/{entry}/kind": sorted(catalog.EMBEDDERS),
        f"properties/reconstructors/{entry}/kind": sorted(catalog.RECONSTRUCTORS),
        f"properties/datasets/{entry}/adapter": sorted([*catalog.ADAPTERS, CURATED_ADAPTER]),
        f"properties/datasets3d/{entry}/adapter": sorted([*catalog.OBJECT_ADAPTERS, *catalog.MEDICAL_ADAPTERS]),
        "properties/scoring/properties/metrics/items": list(SCORING_METRICS),
        "properties/figures/items": list(FIGURES),
    }


def with_registry_enums(schema: dict) -> dict:
    """A copy of ``schema`` whose name fields (generator family, extractor kind, ...) accept the registries' names
    only, so that an unknown one fails validation naming the available ones."""
    schema = copy.deepcopy(schema)
    for path, names in registry_enums().items():
        node = schema
        for part in path.split("/"):
            node = node[part]
        node["enum"] = names
    return schema


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (check the spelling against workflow/schemas/config.schema.yaml)"
    if error.validator == "oneOf" and where.startswith("models."):
        return f"{where}: a model needs exactly one of 'train' (trained by the pipeline) or 'weights' (local files)"
    return f"{where}: {error.message}"


def validate_config(config: dict[str, Any], schema: dict | None = None) -> dict[str, Any]:
    """Validate ``config`` in place (filling schema defaults) and return it; raise :class:`ConfigError`."""
    schema = with_registry_enums(load_schema() if schema is None else schema)
    _string_step_keys(config)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        raise ConfigError.invalid([_describe(e) for e in errors], count=True)
    _check_references(config)
    _check_unguided(config)
    expand_per_steps(config)
    return config


def _check_unguided(config: dict[str, Any]) -> None:
    """A sweep block marked ``anchor.unguided`` (the anchor's cfg flag is ignored) runs cfg 1 only."""
    for i, block in enumerate(config["sweep"]):
        if (block.get("anchor") or {}).get("unguided"):
            used = sorted({float(g) for g in block["cfg"]}
                          | {float(g) for e in (block.get("per_steps") or {}).values() for g in e.get("cfg", [])})
            if used != [1.0]:
                raise ConfigError.invalid([f"sweep.{i}.cfg: {used}: the block is marked anchor.unguided (the anchor "
                                           "ignores its guidance flag), so it runs cfg 1.0 only"])


def _string_step_keys(config: dict[str, Any]) -> None:
    """YAML reads ``per_steps: {2: ...}`` with integer keys; the schema (and JSON) want strings."""
    sweep, models = config.get("sweep"), config.get("models")  # not yet validated: any type may be here
    holders = [b.get("per_steps") for b in (sweep if isinstance(sweep, list) else []) if isinstance(b, dict)]
    holders += [m["sampler"].get("per_steps") for m in (models.values() if isinstance(models, dict) else [])
                if isinstance(m, dict) and isinstance(m.get("sampler"), dict)]
    for h in holders:
        if isinstance(h, dict):
            for k in [k for k in h if isinstance(k, int) and not isinstance(k, bool)]:
                h[str(k)] = h.pop(k)


# families whose sampler honours sampler.per_steps (genbench.gen2d.families.DiTFamily)
PER_STEPS_FAMILIES = tuple(catalog.GENERATORS.with_trait("per_steps"))


def expand_per_steps(config: dict[str, Any]) -> None:
    """Move each sweep block's ``per_steps.<n>.guidance_interval`` into its models' ``sampler.per_steps`` (a cell is
    (model, data set, steps, cfg, seed), so a model has one sampler per step count across the whole sweep); two
    different settings for the same (model, steps) are an error."""
    problems, origin = [], {}
    for i, block in enumerate(config["sweep"]):
        for key, entry in (block.get("per_steps") or {}).items():
            if int(key) not in block["steps"]:
                problems.append(f"sweep.{i}.per_steps.{key}: {key} is not one of this block's steps {block['steps']}")
                continue
            if "guidance_interval" not in entry:
                continue
            for m in block["models"]:
                spec = config["models"][m]
                if spec["family"] not in PER_STEPS_FAMILIES:
                    problems.append(f"sweep.{i}.per_steps.{key}.guidance_interval: model '{m}' (family "
                                    f"{spec['family']}) has no per-steps sampler settings; use a family of "
                                    f"{', '.join(PER_STEPS_FAMILIES)}")
                    continue
                if spec["family"] == "meanflow" and spec.get("arch", {}).get("guidance_input"):
                    problems.append(f"sweep.{i}.per_steps.{key}.guidance_interval: model '{m}' takes guidance as a "
                                    f"network input, so its interval is part of training, not of the sampler; "
                                    f"remove guidance_interval for it")
                    continue
                table = spec["sampler"].setdefault("per_steps", {})
                want = [float(v) for v in entry["guidance_interval"]]
                have = table.get(key, {}).get("guidance_interval")
                if have is not None and [float(v) for v in have] != want:
                    where = origin.get((m, key), f"models.{m}.sampler.per_steps")
                    problems.append(f"sweep.{i}.per_steps.{key}.guidance_interval: {want} for model '{m}' conflicts "
                                    f"with {have} from {where}; one (model, steps) has one sampler")
                    continue
                table.setdefault(key, {})["guidance_interval"] = want
                origin.setdefault((m, key), f"sweep.{i}")
    for name, spec in config["models"].items():
        if (spec.get("sampler") or {}).get("per_steps") and spec["family"] not in PER_STEPS_FAMILIES:
            problems.append(f"models.{name}.sampler.per_steps: family {spec['family']} has no per-steps sampler "
                            f"settings (families with them: {', '.join(PER_STEPS_FAMILIES)})")
    if problems:
        raise ConfigError.invalid(problems)


# the metric each figure draws, from the figure registry
FIGURE_METRICS = {name: fig.metric for name, fig in FIGURES.items()}


def _check_references(config: dict[str, Any]) -> None:
    datasets, models = config["datasets"], config["models"]
    extractors = config.get("extractors", {})
    problems = []
    for name, m in models.items():
        if "train" in m and m["train"]["dataset"] not in datasets:
            problems.append(f"models.{name}.train.dataset: unknown dataset '{m['train']['dataset']}'")
    for name, e in extractors.items():
        if "random_init" in e and (e["kind"] != "dinov2" or "weights" in e or "train" in e):
            problems.append(f"extractors.{name}: random_init is for kind dinov2 without weights or train")
        if "train" in e and e["train"]["dataset"] not in datasets:
            problems.append(f"extractors.{name}.train.dataset: unknown dataset '{e['train']['dataset']}'")
    for i, block in enumerate(config["sweep"]):
        for m in block["models"]:
            if m not in models:
                problems.append(f"sweep.{i}.models: unknown model '{m}' (defined: {', '.join(models)})")
        for d in block["datasets"]:
            if d not in datasets:
                problems.append(f"sweep.{i}.datasets: unknown dataset '{d}' (defined: {', '.join(datasets)})")
    r3 = config.get("recon3d")
    if r3:
        for d in r3["datasets"]:
            if d not in config.get("datasets3d", {}):
                problems.append(f"recon3d.datasets: unknown 3D data set '{d}' (defined under datasets3d: "
                                f"{', '.join(config.get('datasets3d', {})) or 'none'})")
        app = r3.get("appearance") or {}
        for d in app.get("datasets", []):
            if d not in r3["datasets"]:
                problems.append(f"recon3d.appearance.datasets: '{d}' is not in recon3d.datasets")
        for e in app.get("extractors", []):
            if e not in config.get("extractors", {}):
                problems.append(f"recon3d.appearance.extractors: unknown extractor '{e}'")
        if app.get("embedder") and app["embedder"] not in config.get("embedders", {}):
            problems.append(f"recon3d.appearance.embedder: unknown embedder '{app['embedder']}'")
        for proto, pcfg in r3["protocols"].items():
            for d in (pcfg or {}).get("datasets", {}):
                if d not in r3["datasets"]:
                    problems.append(f"recon3d.protocols.{proto}.datasets: '{d}' is not in recon3d.datasets "
                                    f"({', '.join(r3['datasets'])})")
        for m in r3["models"]:
            if m not in config.get("reconstructors", {}):
                problems.append(f"recon3d.models: unknown reconstructor '{m}' (defined under reconstructors: "
                                f"{', '.join(config.get('reconstructors', {})) or 'none'})")
    for name, spec in (config.get("reconstructors") or {}).items():
        if "train" in spec and spec["kind"] in catalog.RECONSTRUCTORS \
                and spec["kind"] not in catalog.RECONSTRUCTOR_TRAINERS:
            problems.append(f"reconstructors.{name}.train: the pipeline cannot train '{spec['kind']}' (trainable "
                            f"kinds: {', '.join(catalog.RECONSTRUCTOR_TRAINERS)}); remove train and give weights")
        if "train" in spec and "weights" in spec:
            problems.append(f"reconstructors.{name}: both train and weights; the trained weights would replace "
                            f"weights: keep one")
        if spec.get("photo_input") == "rgb" and spec["kind"] in catalog.RECONSTRUCTORS \
                and "photo_rgb" not in catalog.RECONSTRUCTORS.plugin(spec["kind"]).traits:
            problems.append(f"reconstructors.{name}.photo_input: '{spec['kind']}' needs the mask, so it cannot take "
                            f"the photo alone (rgb); use rgba")
    for name, spec in (config.get("datasets3d") or {}).items():
        if spec.get("legacy_input") and spec["adapter"] not in ("gso", "animal3d"):
            problems.append(f"datasets3d.{name}.legacy_input: only gso and animal3d have the seed's photographs, not "
                            f"'{spec['adapter']}'; remove the key")
    ex = config["scoring"]["extractor"]
    if ex not in extractors:
        problems.append(f"scoring.extractor: unknown extractor '{ex}' (defined: {', '.join(extractors) or 'none'})")
    elif "sfid" in config["scoring"]["metrics"] and extractors[ex]["kind"] not in (
            spatial := catalog.EXTRACTORS.with_trait("spatial")):
        problems.append(f"scoring.metrics: sfid needs spatial features, which scoring.extractor '{ex}' (kind "
                        f"{extractors[ex]['kind']}) has not; use an extractor of kind {' or '.join(spatial)}")
    for name, d in datasets.items():
        if "class_names" in d and d["adapter"] not in ("imagenet_val", "imagenetv2", "relaionet", "adm_ref"):
            problems.append(f"datasets.{name}.class_names: only the ImageNet adapters (imagenet_val, imagenetv2, "
                            f"relaionet, adm_ref) take a class-name table, not '{d['adapter']}'")
        if d.get("statistics") == "precomputed" and (d["adapter"] != "adm_ref"
                                                     or extractors.get(ex, {}).get("kind") != "inception_tf"):
            problems.append(f"datasets.{name}.statistics: precomputed statistics are an ADM reference batch's "
                            f"(adapter adm_ref) TF-FID Inception mu/sigma, so they need adapter adm_ref and an "
                            f"inception_tf scoring extractor, not '{d['adapter']}' with '{ex}'")
        if d["adapter"] == "miniworld":
            if "split" not in d:
                problems.append(f"datasets.{name}: a miniworld data set needs 'split'")
            if "miniworld" not in config:
                problems.append(f"datasets.{name}: uses the miniworld adapter but the config has no 'miniworld' block")
        elif d["adapter"] == "curated":
            problems += _curated_problems(name, d, config)
        elif "root" not in d:
            problems.append(f"datasets.{name}: adapter '{d['adapter']}' needs 'root' (where the data set lies)")
    embedders = config.get("embedders", {})
    for name, e in embedders.items():
        for d in ([e["train"]["dataset"], *e["train"].get("extra", [])] if "train" in e else []):
            if d not in datasets:
                problems.append(f"embedders.{name}.train: unknown dataset '{d}'")
        if e["kind"] == "open_clip" and "model" not in e:
            problems.append(f"embedders.{name}: an open_clip embedder needs 'model'")
        if "train" in e and (e["kind"] != "open_clip" or "model_config" not in e):
            problems.append(f"embedders.{name}: training needs kind open_clip with a 'model_config'")
    metrics = config["scoring"]["metrics"]
    ti = config["scoring"].get("text_image", {})
    for role, uses in (("clip", ("clip_score", "csfid", "csis", "cmmd")), ("pick", ("pick_score", "psfid", "psis"))):
        wanted = [m for m in uses if m in metrics]
        if wanted and role not in ti:
            problems.append(f"scoring.metrics: {', '.join(wanted)} need scoring.text_image.{role} (an embedder)")
        if role in ti and ti[role] not in embedders:
            problems.append(f"scoring.text_image.{role}: unknown embedder '{ti[role]}' "
                            f"(defined: {', '.join(embedders) or 'none'})")
    dino = config["scoring"].get("dinov2")
    wanted = [m for m in ("fd_dinov2", "kd_dinov2") if m in metrics]
    if wanted and not dino:
        problems.append(f"scoring.metrics: {', '.join(wanted)} need scoring.dinov2 (an extractor of kind dinov2)")
    if dino and (dino not in extractors or extractors[dino]["kind"] != "dinov2"):
        problems.append(f"scoring.dinov2: '{dino}' is not an extractor of kind dinov2")
    needs = {"csfid": ("fid", "clip_score"), "psfid": ("fid", "pick_score"), "csis": ("is", "clip_score"),
             "psis": ("is", "pick_score"), "mmhm": ("fid", "is", "clip_score", "pick_score")}
    for m, deps in needs.items():
        missing = [d for d in deps if d not in metrics]
        if m in metrics and missing:
            problems.append(f"scoring.metrics: '{m}' is computed from {', '.join(deps)}; add {', '.join(missing)}")
    for i, fig in enumerate(config.get("figures", [])):
        for need in FIGURES[fig].metrics if fig in FIGURES else ():
            if need not in metrics:
                problems.append(f"figures.{i}: figure '{fig}' draws '{need}', which scoring.metrics does not compute "
                                f"(it has {', '.join(metrics)}); add it there or drop the figure")
        if fig in FIGURES and FIGURES[fig].per_class and not config["scoring"]["per_class"]["enabled"]:
            problems.append(f"figures: '{fig}' needs scoring.per_class.enabled: true")
    for fig, opts in (config.get("figure_options") or {}).items():
        for key, known in (("models", models), ("datasets", datasets)):
            for name in (opts or {}).get(key) or []:
                if name not in known:
                    problems.append(f"figure_options.{fig}.{key}: unknown {key[:-1]} '{name}' "
                                    f"(defined: {', '.join(known)})")
    if problems:
        raise ConfigError.invalid(problems)


def load_config(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return validate_config(yaml.safe_load(f) or {})


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of the validated config (recorded in every table's metadata)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def iter_cells(config: dict[str, Any]) -> Iterator[Cell]:
    seen = set()
    for block in config["sweep"]:
        for m in block["models"]:
            for d in block["datasets"]:
                for s in block["steps"]:
                    for g in (block.get("per_steps") or {}).get(str(s), {}).get("cfg", block["cfg"]):
                        for k in block.get("seeds", [0]):
                            cell = Cell(m, d, int(s), float(g), int(k))
                            if cell not in seen:
                                seen.add(cell)
                                yield cell


def cells(config: dict[str, Any]) -> list[Cell]:
    return sorted(iter_cells(config))


def model_shards(config: dict[str, Any], model: str) -> int:
    return int(config["models"][model].get("shards", config["generation"]["shards"]))


def model_batch_size(config: dict[str, Any], model: str) -> int:
    return int(config["models"][model].get("batch_size", config["generation"]["batch_size"]))


def _curated_problems(name: str, d: dict[str, Any], config: dict[str, Any]) -> list[str]:
    out = []
    for key in ("source", "classes", "text_filter"):
        if key not in d:
            out.append(f"datasets.{name}: a curated data set needs '{key}' (docs/curation.md)")
    if out:
        return out
    src = d["source"]
    need = {"miniworld": "eval", "img2dataset": "folder", "download": "metadata"}[src["kind"]]
    if need not in src:
        out.append(f"datasets.{name}.source: kind '{src['kind']}' needs '{need}'")
    if src["kind"] == "miniworld" and "miniworld" not in config:
        out.append(f"datasets.{name}: a miniworld source needs the config's 'miniworld' block")
    embedders = config.get("embedders", {})
    named = (("text_filter", d["text_filter"].get("embedder")), ("checks", d.get("checks", {}).get("embedder")))
    for where, e in named:
        if e is not None and e not in embedders:
            out.append(f"datasets.{name}.{where}.embedder: unknown embedder '{e}'")
    against = [src.get("eval")] if src["kind"] == "miniworld" else []
    against += d.get("checks", {}).get("near_duplicates", {}).get("against", [])
    for other in against:
        if other not in config["datasets"] or other == name:
            out.append(f"datasets.{name}: evaluation set '{other}' is not another data set of the config")
    return out


def select(config: dict[str, Any], *paths: str) -> dict[str, Any]:
    """The sub-config holding only the dotted ``paths`` (e.g. 'seed', 'datasets.mw_val'), same nesting.

    Rules pass such subsets as params, so Snakemake reruns a job exactly when a setting it uses changes.
    """
    out: dict[str, Any] = {}
    for path in paths:
        keys = path.split(".")
        src, dst = config, out
        for i, k in enumerate(keys):
            if k not in src:
                break
            if i == len(keys) - 1:
                dst[k] = copy.deepcopy(src[k])
            else:
                src = src[k]
                dst = dst.setdefault(k, {})
    return out
