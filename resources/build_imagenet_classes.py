"""Build resources/imagenet_classes.tsv from the synset files the timm package ships.

    python resources/build_imagenet_classes.py            # writes resources/imagenet_classes.tsv

Sources (timm 1.0.31, timm/data/_info/): imagenet_synsets.txt (the 1000 ILSVRC-2012 WordNet ids, sorted, so a
line's position is the standard label id 0..999), imagenet_synset_to_lemma.txt (comma-separated WordNet lemmas)
and imagenet_synset_to_definition.txt (the WordNet gloss). Columns written: label_id, synset, name (the first
lemma, as torchvision/timm name classes), lemmas (the full comma-separated list) and definition. The file is
committed; the pipeline never needs timm at run time for it. Rebuild only when the timm files change, and commit
the diff with the timm version in the message.
"""

from __future__ import annotations

import csv
import sys
from importlib import metadata, resources
from pathlib import Path


def _table(name: str) -> dict[str, str]:
    text = resources.files("timm.data._info").joinpath(name).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if line.strip():
            key, _, value = line.partition("\t")
            out[key.strip()] = value.strip()
    return out


def build(out: Path) -> int:
    synsets = [s.strip() for s in resources.files("timm.data._info").joinpath("imagenet_synsets.txt")
               .read_text(encoding="utf-8").splitlines() if s.strip()]
    if len(synsets) != 1000 or synsets != sorted(synsets):
        raise SystemExit("imagenet_synsets.txt: expected 1000 sorted WordNet ids")
    lemmas, definitions = _table("imagenet_synset_to_lemma.txt"), _table("imagenet_synset_to_definition.txt")
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["label_id", "synset", "name", "lemmas", "definition"])
        for i, s in enumerate(synsets):
            lem = lemmas[s]
            w.writerow([i, s, lem.split(",")[0].strip(), lem, definitions[s]])
    tmp.replace(out)
    return len(synsets)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("imagenet_classes.tsv")
    n = build(target)
    print(f"wrote {n} classes to {target} (timm {metadata.version('timm')})")
