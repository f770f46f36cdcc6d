"""Lemma matching as LAIONet does it (Shirali & Hardt 2023, alishiraliGit/eval-on-laion).

- A caption is prepared by replacing every ASCII punctuation character with a space and padding it with one
  space on each side; a lemma is padded the same way, so 'paid' never matches the lemma 'ai' and 'hot-dog'
  matches 'hot dog'. Matching is a plain substring test of the padded lemma in the padded caption; both sides are
  lower-cased here (LAION captions are mixed case, WordNet lemmas mostly lower case).
- No stemming: a plural matches only when WordNet lists it as a lemma itself ('golden retrievers' does not
  match 'golden retriever').
- Only lemmas that belong to exactly one synset of the class table are used (e.g. 'crane' names a bird and a
  machine, so it is dropped), and a caption that hits lemmas of more than one synset is dropped.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import pandas as pd

_PUNCT = str.maketrans(string.punctuation, " " * len(string.punctuation))


def prepare_caption(text: str) -> str:
    return " " + str(text).lower().translate(_PUNCT) + " "


def prepare_lemma(lemma: str) -> str:
    return " " + " ".join(lemma.lower().replace("_", " ").translate(_PUNCT).split()) + " "


@dataclass(frozen=True)
class LemmaIndex:
    lemma_to_label: dict[str, int]  # prepared lemma -> label id (unique lemmas only)
    dropped: dict[str, list[int]]  # prepared lemma -> the label ids it is shared by

    @classmethod
    def from_classes(cls, classes: pd.DataFrame) -> LemmaIndex:
        owners: dict[str, set[int]] = {}
        for label, lemmas in zip(classes["label_id"], classes["lemmas"], strict=True):
            for lem in lemmas:
                p = prepare_lemma(lem)
                if p.strip():
                    owners.setdefault(p, set()).add(int(label))
        unique = {k: next(iter(v)) for k, v in owners.items() if len(v) == 1}
        shared = {k: sorted(v) for k, v in owners.items() if len(v) > 1}
        return cls(unique, shared)

    @property
    def n_synsets(self) -> int:
        return len(set(self.lemma_to_label.values()))

    def match(self, caption: str) -> tuple[list[str], list[int]]:
        """The matched lemmas (stripped) and the distinct label ids they belong to (sorted)."""
        text = prepare_caption(caption)
        hits = [lem for lem in self.lemma_to_label if lem in text]
        return [h.strip() for h in hits], sorted({self.lemma_to_label[h] for h in hits})


def match_captions(df: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Add lemma-matching columns to a candidates table: ``matched_lemmas`` ('; '-joined), ``matched_labels``
    (';'-joined ids), ``match`` (single / none / multiple) and ``label_id`` (-1 unless exactly one synset)."""
    index = LemmaIndex.from_classes(classes)
    lemmas, labels, kind = [], [], []
    for cap in df["caption"].fillna(""):
        lem, lab = index.match(cap)
        lemmas.append("; ".join(lem))
        labels.append(";".join(map(str, lab)))
        kind.append("single" if len(lab) == 1 else ("none" if not lab else "multiple"))
    out = df.copy()
    out["matched_lemmas"], out["matched_labels"], out["match"] = lemmas, labels, kind
    out["label_id"] = [int(lab) if k == "single" else -1 for lab, k in zip(labels, kind, strict=True)]
    names = classes.set_index("label_id")["name"]
    out["label_name"] = [names[i] if i >= 0 else "" for i in out["label_id"]]
    return out
