"""The 2D protocol knobs of the protocol-delta table (docs/protocol.md): which are requested, which apply to which
data set under this config (and why not, where not), and the anchor's setting of each.

A knob that needs features or embeddings the sweep does not compute (``resize_mode``: every cell's and real set's
scoring features under the anchor's resize; ``real_preparation``: each real set's features under the anchor's
preparation; ``prompt_names``: each real set's prompts embedded under the anchor's class-name table) adds jobs to
the run only when ``protocol_delta.knobs`` lists it and it applies; :class:`Knob2D` says what it needs, and the
wiring (genbench.wiring) turns that into rules' inputs. A knob that does not apply is one ``not_applicable`` row
with its reason (decided here from the config alone, so a dry run plans exactly the jobs the table uses).

No heavy imports here: the Snakefile imports it (through genbench.wiring) at parse time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

KNOBS_2D = ("statistics_precision", "resize_mode", "real_preparation", "prompt_names")
DEFAULT_KNOBS = ("statistics_precision",)
# the anchor's protocol (the 2D seed benchmark): torchmetrics' FID (bilinear with antialias), its underscored class
# names, and ADM's centre crop at 256 px for the real images (the evaluation convention of the reference batches)
DEFAULT_ANCHOR: dict[str, Any] = {"resize": "bilinear_antialias", "class_names": "anchor",
                                  "prepare": {"method": "center_crop", "size": 256}}
# the adapters whose prompts come from a selectable class-name table (genbench.data.classes)
CLASS_NAME_ADAPTERS = ("imagenet_val", "imagenetv2", "relaionet", "adm_ref")


def requested(config: dict[str, Any]) -> list[str]:
    """The knobs ``protocol_delta.knobs`` asks for (default: statistics_precision only, which costs no job)."""
    return list((config.get("protocol_delta") or {}).get("knobs", DEFAULT_KNOBS))


def anchor(config: dict[str, Any]) -> dict[str, Any]:
    """The anchor's settings: DEFAULT_ANCHOR with ``protocol_delta.anchor``'s keys over it."""
    return {**copy.deepcopy(DEFAULT_ANCHOR), **copy.deepcopy((config.get("protocol_delta") or {}).get("anchor", {}))}


def prepare_text(spec: dict[str, Any] | None) -> str:
    """A preparation's short name: ``none``, ``center_crop 256``, ``squash 256 lanczos``."""
    spec = spec or {}
    method = spec.get("method", "none")
    if method == "none":
        return "none"
    filt = f" {spec['filter']}" if method == "squash" and spec.get("filter", "bicubic") != "bicubic" else ""
    return f"{method} {spec.get('size')}{filt}"


def _same_prepare(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return prepare_text(a) == prepare_text(b)


def _miniworld_rendered(spec: dict[str, Any]) -> bool:
    """A set rendered by the mini-world (its splits, or a curated set whose source the mini-world renders)."""
    return spec.get("adapter") == "miniworld" or (spec.get("adapter") == "curated"
                                                   and spec.get("source", {}).get("kind") == "miniworld")


@dataclass
class Knob2D:
    """One 2D knob under one config: its two settings (per data set where they differ by data set), the data sets
    it is evaluated on, and the reason for each one it is not (``"*"``: for all)."""

    knob: str
    from_setting: str
    to_setting: str
    datasets: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)
    to_by_dataset: dict[str, str] = field(default_factory=dict)

    @property
    def evaluated(self) -> bool:
        return bool(self.datasets)

    def reasons(self) -> dict[str, str]:
        """The not-applicable reasons by data set, collapsed to one ``"*"`` entry when the knob is evaluated
        nowhere and every data set has the same reason."""
        if not self.datasets and len(set(self.not_applicable.values())) == 1:
            return {"*": next(iter(self.not_applicable.values()))}
        return dict(self.not_applicable)


def _resize_mode(config: dict[str, Any], datasets: list[str], anc: dict[str, Any]) -> Knob2D:
    name = config["scoring"]["extractor"]
    spec = config["extractors"][name]
    if spec.get("kind") != "inception_tf":
        return Knob2D("resize_mode", "bilinear_antialias", "clean", not_applicable={
            "*": f"the scoring extractor '{name}' ({spec.get('kind')}) takes the images at their size and resizes "
                 "nothing, so both modes give the same features"})
    ours = str(spec.get("resize", "clean"))
    knob = Knob2D("resize_mode", f"{anc['resize']} (anchor)", ours)
    if ours == anc["resize"]:
        knob.not_applicable["*"] = f"extractors.{name}.resize is already the anchor's ({ours})"
    else:
        knob.datasets = list(datasets)
    return knob


def _real_preparation(config: dict[str, Any], datasets: list[str], anc: dict[str, Any]) -> Knob2D:
    theirs = prepare_text(anc["prepare"])
    knob = Knob2D("real_preparation", f"{theirs} (anchor)", "genbench (datasets.<name>.prepare)")
    size = (config.get("miniworld") or {}).get("image_size")
    for d in datasets:
        spec = config["datasets"][d]
        if _miniworld_rendered(spec):
            knob.not_applicable[d] = (f"every image of the mini-world is rendered square at miniworld.image_size "
                                      f"({size} x {size} px, one size), so a centre crop, a squash and no "
                                      "preparation at that size give the same pixels")
        elif _same_prepare(spec.get("prepare"), anc["prepare"]):
            knob.not_applicable[d] = f"datasets.{d}.prepare is already the anchor's ({theirs})"
        else:
            knob.datasets.append(d)
            knob.to_by_dataset[d] = prepare_text(spec.get("prepare"))
    return knob


def _prompt_names(config: dict[str, Any], datasets: list[str], anc: dict[str, Any]) -> Knob2D:
    theirs = anc["class_names"]
    knob = Knob2D("prompt_names", theirs if theirs == "anchor" else f"{theirs} (anchor)",
                  "datasets.<name>.class_names")
    if not config["scoring"].get("text_image"):
        knob.not_applicable["*"] = "no text-image embedder is configured (scoring.text_image)"
        return knob
    classes = ", ".join((config.get("miniworld") or {}).get("classes", []))
    for d in datasets:
        spec = config["datasets"][d]
        ours = spec.get("class_names", "wordnet")
        if _miniworld_rendered(spec):
            knob.not_applicable[d] = (f"the mini-world's class names ({classes}) are one distinct word per class: "
                                      "the anchor's underscored names and disambiguated names are the same words, "
                                      "so the prompts do not change")
        elif spec.get("adapter") not in CLASS_NAME_ADAPTERS:
            knob.not_applicable[d] = (f"adapter '{spec['adapter']}' has no selectable class-name table "
                                      f"({', '.join(CLASS_NAME_ADAPTERS)} have)")
        elif ours == theirs:
            knob.not_applicable[d] = f"datasets.{d}.class_names is already the anchor's table ({theirs})"
        else:
            knob.datasets.append(d)
            knob.to_by_dataset[d] = ours
    return knob


def plan(config: dict[str, Any], datasets: list[str]) -> dict[str, Knob2D]:
    """Every 2D knob under ``config`` for the sweep's real sets ``datasets``. A requested knob that applies is
    evaluated on its data sets; one that is not requested keeps its reasons and, where it would apply, says so."""
    anc = anchor(config)
    knobs = {"statistics_precision": Knob2D("statistics_precision", "float32", "float64", datasets=list(datasets)),
             "resize_mode": _resize_mode(config, datasets, anc),
             "real_preparation": _real_preparation(config, datasets, anc),
             "prompt_names": _prompt_names(config, datasets, anc)}
    wanted = requested(config)
    for name, knob in knobs.items():
        if name not in wanted and knob.datasets:
            for d in knob.datasets:
                knob.not_applicable[d] = f"not requested: add '{name}' to protocol_delta.knobs (docs/protocol.md)"
            knob.datasets = []
    return knobs


def variant_config(config: dict[str, Any], knob: str, extractor: str, dataset: str | None) -> dict[str, Any]:
    """The config subset a features job of ``knob`` runs under: the extractor's entry (and the data set's image
    policy) with the anchor's setting of the knob in place of the configured one."""
    from .config import select

    anc = anchor(config)
    paths = [f"extractors.{extractor}", "runtime.device"]
    if dataset is not None:
        paths += [f"datasets.{dataset}"]
    out = select(config, *paths)
    if knob == "resize_mode":
        out["extractors"][extractor]["resize"] = anc["resize"]
    elif knob == "real_preparation":
        if dataset is None:
            raise ValueError("real_preparation re-prepares real sets only: name the data set")
        out["datasets"][dataset]["prepare"] = copy.deepcopy(anc["prepare"])
    else:
        raise ValueError(f"protocol knob '{knob}' extracts no features (resize_mode and real_preparation do)")
    # only this knob's anchor setting: another knob's (e.g. the text-only class-name table) must not rerun the
    # Inception passes of this one
    own = {"resize_mode": "resize", "real_preparation": "prepare"}[knob]
    out["protocol_delta"] = {"knob": knob, "anchor": {own: anc[own]}}
    return out
