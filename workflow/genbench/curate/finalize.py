"""The end of the curation: every candidate's final status, the curated manifest, the datasheet tables.

Final status, first reason in pipeline order: ``invalid_key`` (a sample key that is not a plain file name: never
used in a path), ``download`` (no image), ``no_lemma`` / ``multiple_synsets``
(lemma matching), ``text_similarity`` (text filter), then the automatic checks (genbench.curate.screen.CHECKS),
then the review. Reviews: with several decision files, an item is accepted when every reviewer who decided it
accepted it, rejected when any rejected it (``combine: all``), or by majority (``combine: majority``, ties
reject). Automatic checks listed in ``review.overridable`` (default: zero_shot) can be overruled by a reviewer's
accept; the others always exclude. Items nobody decided follow ``review.policy``: ``exclude`` or
``accept_if_checks_pass``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import GenbenchError
from ..io import sha256_file
from .screen import CHECKS

STAGE_ORDER = ("invalid_key", "download", "no_lemma", "multiple_synsets", "text_similarity", *CHECKS, "reviewer_reject",
               "undecided_excluded")
POLICIES = ("exclude", "accept_if_checks_pass")


def combine_reviews(decisions: dict[str, dict[str, str]], combine: str = "all") -> dict[str, str]:
    """item_id -> accept / reject from all reviewers' decisions (skips ignored)."""
    votes: dict[str, list[str]] = {}
    for d in decisions.values():
        for item, v in d.items():
            if v != "skip":
                votes.setdefault(item, []).append(v)
    out = {}
    for item, vs in votes.items():
        if combine == "all":
            out[item] = "reject" if "reject" in vs else "accept"
        elif combine == "majority":
            out[item] = "accept" if vs.count("accept") > vs.count("reject") else "reject"
        else:
            raise ValueError(f"review.combine must be 'all' or 'majority', got {combine!r}")
    return out


def final_status(text: pd.DataFrame, checks: pd.DataFrame, decisions: dict[str, dict[str, str]],
                 review: dict[str, Any]) -> pd.DataFrame:
    """One row per candidate: item_id, label_id, accepted, reason, detail, review (combined decision or '')."""
    policy = review.get("policy", "exclude")
    if policy not in POLICIES:
        raise ValueError(f"review.policy must be one of {POLICIES}, got {policy!r}")
    overridable = set(review.get("overridable", ["zero_shot"]))
    combined = combine_reviews(decisions, review.get("combine", "all"))
    chk = checks.set_index("item_id")
    rows = []
    for r in text.itertuples(index=False):
        item = str(r.item_id)
        reason, detail, accepted = "", "", False
        verdict = combined.get(item, "")
        if r.status == "invalid_key":
            reason, detail = "invalid_key", str(r.error_message or "")
        elif r.status != "success" or not r.path:
            reason, detail = "download", f"{r.status}: {r.error_message or ''}".strip()
        elif r.match == "none":
            reason = "no_lemma"
        elif r.match == "multiple":
            reason, detail = "multiple_synsets", r.matched_lemmas
        elif not r.text_pass:
            reason, detail = "text_similarity", f"{r.text_similarity:.3f}"
        else:
            c = chk.loc[item]
            failed = [k for k in CHECKS if not c[f"{k}_ok"]]
            hard = [k for k in failed if k not in overridable or verdict != "accept"]
            if hard:
                reason, detail = hard[0], c[f"{hard[0]}_reason"]
            elif verdict == "reject":
                reason = "reviewer_reject"
            elif verdict == "accept" or policy == "accept_if_checks_pass":
                accepted = True
                reason = "accepted" if verdict == "accept" else "accepted_by_policy"
            else:
                reason = "undecided_excluded"
        rows.append({"item_id": item, "label_id": int(r.label_id), "accepted": accepted, "reason": reason,
                     "detail": detail, "review": verdict})
    return pd.DataFrame(rows)


def build_manifest(text: pd.DataFrame, status: pd.DataFrame, classes: pd.DataFrame, source_root: Path,
                   out_dir: Path, prompt_template: str, source: str) -> pd.DataFrame:
    """Link (or copy) the accepted images into ``out_dir/images`` and return the curated manifest."""
    acc = status[status["accepted"]].merge(text.drop(columns=["label_id"]), on="item_id", how="left")
    names = classes.set_index("label_id")
    # every key and path is checked before any file operation: nothing is linked from or to outside the data set
    links = [_checked_link(str(r.item_id), str(r.path), source_root, out_dir) for r in acc.itertuples(index=False)]
    shutil.rmtree(out_dir / "images", ignore_errors=True)  # a rerun with other decisions leaves no stale files
    rows = []
    for r, (src, rel) in zip(acc.itertuples(index=False), links, strict=True):
        _link_or_copy(src, out_dir / rel)
        name = str(names.at[r.label_id, "name"])
        rows.append({"item_id": r.item_id, "label_id": int(r.label_id), "label_name": name,
                     "prompt": prompt_template.format(**{"class": name}), "path": rel, "split": "relaionet",
                     "source": source, "sha256": sha256_file(out_dir / rel),
                     "synset": str(names.at[r.label_id, "synset"]), "caption": r.caption,
                     "url": getattr(r, "url", "") or "", "curation": r.reason})
    return pd.DataFrame(rows)


class CuratedPathError(GenbenchError, ValueError):
    """An accepted item whose key or image path would read or write outside the data set's folders."""


def _checked_link(item_id: str, path: str, source_root: Path, out_dir: Path) -> tuple[Path, str]:
    """(source file, manifest-relative destination) of one accepted item, after checking that the key is a plain
    file name and the source resolves to a file inside ``source_root``."""
    from .source import valid_key

    if not valid_key(item_id):
        raise CuratedPathError(f"accepted item {item_id!r}: the key is not a plain file name; fix the key column of "
                               f"the img2dataset shard tables and rerun the ingest")
    root = source_root.resolve()
    src = (root / path).resolve() if path and "\x00" not in path else root
    if root not in src.parents or not src.is_file():
        raise CuratedPathError(f"accepted item {item_id!r}: image path {path!r} is not a file inside {source_root}; "
                               f"fix the shard table or rerun the ingest")
    rel = f"images/{item_id}{Path(path).suffix.lower()}"
    return src, rel


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    if tmp.exists():
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:  # another file system: copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def per_class_table(text: pd.DataFrame, status: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """Per class: candidates whose caption matched it, left after the text filter, after the checks, accepted."""
    s = status.set_index("item_id")
    single = text[text["match"] == "single"].copy()
    single["text_pass"] = single["text_pass"].astype(bool)
    single["reason"] = s.loc[single["item_id"], "reason"].to_numpy()
    single["accepted"] = s.loc[single["item_id"], "accepted"].to_numpy()
    after_checks = single["text_pass"] & ~single["reason"].isin(CHECKS)
    g = pd.DataFrame({"label_id": single["label_id"], "matched": 1, "text_filter": single["text_pass"],
                      "checks": after_checks, "accepted": single["accepted"]}).groupby("label_id").sum()
    out = classes[["label_id", "synset", "name"]].merge(g, left_on="label_id", right_index=True, how="left")
    for c in ("matched", "text_filter", "checks", "accepted"):
        out[c] = out[c].fillna(0).astype(int)
    return out.reset_index(drop=True)


def reasons_table(status: pd.DataFrame) -> pd.DataFrame:
    order = {k: i for i, k in enumerate((*STAGE_ORDER, "accepted", "accepted_by_policy"))}
    t = status.groupby("reason").size().rename("items").reset_index()
    t["stage_order"] = t["reason"].map(order).fillna(len(order)).astype(int)
    t["fraction"] = t["items"] / len(status)
    return t.sort_values("stage_order").drop(columns="stage_order").reset_index(drop=True)


def catch_table(text: pd.DataFrame, checks: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Mini-world only (hidden ground truth ``mw_true_label``): how well each stage catches wrong labels.

    Among downloaded candidates with a single-synset match, a *planted wrong* item is one whose caption names
    another class than the image shows. The label checks are the text filter, the zero-shot check and the review
    (a reviewer's reject, or no decision under policy exclude). For each stage S: ``excluded`` = items excluded
    by a label check of S or earlier; ``caught`` = planted wrong items among them; precision = caught /
    excluded; recall = caught / planted wrong. ``wrong_kept`` and ``label_purity_kept`` describe the items
    left after every exclusion (label checks and the others: duplicates, size, safety) up to S."""
    single = text[(text["match"] == "single") & (text["status"] == "success")].copy()
    wrong = (single["label_id"] != single["mw_true_label"]).to_numpy()
    s = status.set_index("item_id").loc[single["item_id"]]
    reason = s["reason"].to_numpy()
    label = [("text filter", {"text_similarity"}, set()),
             ("automatic checks", {"text_similarity", "zero_shot"}, set(CHECKS) - {"zero_shot"}),
             ("human review + policy", {"text_similarity", "zero_shot", "reviewer_reject", "undecided_excluded"},
              set(CHECKS) - {"zero_shot"})]
    rows = []
    for name, excl, other in label:
        out = np.isin(reason, list(excl))
        gone = out | np.isin(reason, list(other))
        caught = int((out & wrong).sum())
        rows.append({"stage": name, "candidates": len(single), "planted_wrong": int(wrong.sum()),
                     "excluded": int(out.sum()), "caught": caught,
                     "precision": caught / out.sum() if out.sum() else np.nan,
                     "recall": caught / wrong.sum() if wrong.sum() else np.nan,
                     "wrong_kept": int((~gone & wrong).sum()),
                     "label_purity_kept": float(1 - (~gone & wrong).sum() / max((~gone).sum(), 1))})
    return pd.DataFrame(rows)
