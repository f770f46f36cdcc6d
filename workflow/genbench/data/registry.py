"""Data set adapters: a name -> function that writes a data set's manifest (and files) into a folder (the names are
genbench.catalog.ADAPTERS's entries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..catalog import ADAPTERS
from . import miniworld

Adapter = Callable[[str, dict[str, Any], dict[str, Any], Path], pd.DataFrame]


def miniworld_adapter(name: str, spec: dict[str, Any], config: dict[str, Any], out_dir: Path) -> pd.DataFrame:
    mw = config["miniworld"]
    split = spec["split"]
    noise = mw.get("laion_noise", {})
    return miniworld.build_split(
        out_dir, split, seed=config["seed"], classes=mw["classes"], per_class=mw["per_class"][split],
        image_size=mw["image_size"], dataset=name, laion_wrong=noise.get("wrong", 0.15),
        laion_ambiguous=noise.get("ambiguous", 0.10), prompt_template=spec["prompt_template"])


def prepare_dataset(name: str, config: dict[str, Any], out_dir: str | Path) -> pd.DataFrame:
    spec = config["datasets"][name]
    df = ADAPTERS.lookup(spec["adapter"])(name, spec, config, Path(out_dir))
    if "max_items" in spec:
        df = df.iloc[: spec["max_items"]].reset_index(drop=True)
    return df


def class_names(config: dict[str, Any], dataset: str) -> list[str]:
    spec = config["datasets"][dataset]
    if spec["adapter"] == "miniworld":
        return list(config["miniworld"]["classes"])
    if spec["adapter"] == "curated":
        from .classes import class_table

        return class_table(spec["classes"], config)["name"].tolist()
    from .classes import imagenet_classes

    return imagenet_classes()["name"].tolist()
