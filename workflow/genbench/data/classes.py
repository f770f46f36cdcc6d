"""Class tables: label id -> synset, name, lemmas, definition.

- ``imagenet``: resources/imagenet_classes.tsv, built from timm's shipped synset files by
  resources/build_imagenet_classes.py (label ids = positions of the sorted ILSVRC-2012 WordNet ids).
- ``miniworld``: the configured mini-world classes with their glosses (genbench.data.miniworld.DEFINITIONS).

Lemmas are kept as a list (the WordNet lemmas of the synset, comma-separated in the file).

Name tables (``datasets.<name>.class_names``; the names that go into prompts and labels, recorded per data set in
the manifests and the metric tables' metadata):

- ``wordnet`` (default): the first WordNet lemma ("great white shark"); two names are shared by two classes each
  ("crane": the bird and the machine; "maillot": tights and the bathing suit);
- ``anchor``: the 2D seed benchmark's names, Keras' ``imagenet_class_index.json`` convention (the first lemma with
  spaces as underscores, "great_white_shark"), as its prompts "a photo of a {class}" used them;
- ``disambiguated``: the WordNet names with every shared name replaced by the name OpenAI's CLIP prompt set gives
  that class (open_clip's ``IMAGENET_CLASSNAMES``: "crane bird" / "construction crane", "tights" / "one-piece
  bathing suit"), so every class has its own name.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import GenbenchError

RESOURCES = Path(__file__).resolve().parents[3] / "resources"
IMAGENET_TABLE = RESOURCES / "imagenet_classes.tsv"


class ClassTableError(GenbenchError, ValueError):
    pass


@lru_cache(maxsize=2)
def _imagenet(path: str) -> pd.DataFrame:
    if not Path(path).is_file():
        raise ClassTableError(f"ImageNet class table {path} is missing; rebuild it with "
                              f"`python resources/build_imagenet_classes.py` (needs timm)")
    df = pd.read_csv(path, sep="\t", dtype={"label_id": int, "synset": str, "name": str, "lemmas": str,
                                            "definition": str}, keep_default_na=False)
    if len(df) != 1000 or list(df["label_id"]) != list(range(1000)):
        raise ClassTableError(f"{path}: expected label ids 0..999 in order")
    df["lemmas"] = df["lemmas"].map(lambda s: [x.strip() for x in s.split(",") if x.strip()])
    return df


def imagenet_classes(path: str | Path | None = None) -> pd.DataFrame:
    return _imagenet(str(path or IMAGENET_TABLE)).copy()


def miniworld_classes(classes: list[str]) -> pd.DataFrame:
    from .miniworld import DEFINITIONS

    unknown = [c for c in classes if c not in DEFINITIONS]
    if unknown:
        raise ClassTableError(f"mini-world classes {unknown} have no definition in genbench.data.miniworld")
    return pd.DataFrame({"label_id": range(len(classes)), "synset": [f"mw-{c}" for c in classes],
                         "name": list(classes), "lemmas": [[c] for c in classes],
                         "definition": [DEFINITIONS[c] for c in classes]})


def class_table(kind: str, config: dict[str, Any]) -> pd.DataFrame:
    """``kind``: 'imagenet' or 'miniworld' (the configured mini-world classes)."""
    if kind == "imagenet":
        return imagenet_classes()
    if kind == "miniworld":
        return miniworld_classes(list(config["miniworld"]["classes"]))
    raise ClassTableError(f"unknown class table '{kind}' (use imagenet or miniworld)")


NAME_TABLES = ("wordnet", "anchor", "disambiguated")


def shared_names(names: list[str]) -> dict[str, list[int]]:
    """Names given to more than one class -> their label ids."""
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i)
    return {n: ids for n, ids in seen.items() if len(ids) > 1}


def class_names_table(classes: pd.DataFrame, table: str) -> list[str]:
    """The class names of a name table (module docstring) for a class table's rows, in label order."""
    names = classes["name"].tolist()
    if table == "wordnet":
        return names
    if table == "anchor":
        return [n.replace(" ", "_") for n in names]
    if table != "disambiguated":
        raise ClassTableError(f"unknown class-name table '{table}' (use one of {', '.join(NAME_TABLES)})")
    shared = shared_names(names)
    if shared:
        if len(names) != 1000:
            raise ClassTableError(f"class names {sorted(shared)} are shared by several classes and only the "
                                  f"1000-class ImageNet table has disambiguated names")
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

        for ids in shared.values():
            for i in ids:
                names[i] = IMAGENET_CLASSNAMES[i]
    still = shared_names(names)
    if still:
        raise ClassTableError(f"disambiguated class names are still shared: {still}")
    return names


def norm_folder_name(s: str) -> str:
    """reLAIONet folder names: lower case, spaces / hyphens / apostrophes as underscores."""
    return s.strip().lower().replace(" ", "_").replace("-", "_").replace("'", "_")


def folder_lookup(classes: pd.DataFrame) -> dict[str, int]:
    """Normalised synset id / name / lemma -> label id, for folder names; a name shared by two classes (e.g.
    'crane', the bird and the machine) is left out so it can never pick one of them silently."""
    seen: dict[str, set[int]] = {}
    for row in classes.itertuples():
        for key in {row.synset, row.name, *row.lemmas}:
            seen.setdefault(norm_folder_name(key), set()).add(int(row.label_id))
    return {k: next(iter(v)) for k, v in seen.items() if len(v) == 1}


def prompts_under_table(manifest: pd.DataFrame, spec: dict[str, Any], table: str, dataset: str) -> list[str]:
    """Every item's prompt rebuilt with the class-name table ``table`` (knob prompt_names of the protocol delta):
    the data set's ``prompt_template`` with the item's class under ``table``. The manifest's prompts must be that
    template with the configured table's names (as the ImageNet adapters write them), else nothing can be
    rebuilt: an error naming the first item that differs."""
    classes = imagenet_classes()
    template = spec.get("prompt_template", "a photo of a {class}")
    ours = class_names_table(classes, spec.get("class_names", "wordnet"))
    theirs = class_names_table(classes, table)
    labels = manifest["label_id"].astype(int).tolist()
    unlabelled = [i for i, label in zip(manifest["item_id"], labels, strict=True) if not 0 <= label < len(ours)]
    if unlabelled:
        raise ClassTableError(f"{dataset}: {len(unlabelled)} item(s) without an ImageNet label (e.g. "
                              f"{unlabelled[0]}); the prompt_names knob rebuilds labelled prompts only: drop "
                              "'prompt_names' from protocol_delta.knobs for this data set's config")
    for item, label, prompt in zip(manifest["item_id"], labels, manifest["prompt"].astype(str), strict=True):
        expected = template.format(**{"class": ours[label]})
        if prompt != expected:
            raise ClassTableError(f"{dataset}: item {item}'s prompt {prompt!r} is not the template with its class "
                                  f"name ({expected!r}); the prompt_names knob rebuilds template prompts only: "
                                  "re-prepare the data set (rule prepare_dataset) or drop the knob")
    return [template.format(**{"class": theirs[label]}) for label in labels]
