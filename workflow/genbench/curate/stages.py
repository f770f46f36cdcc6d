"""Stage functions of the curation rules (workflow/rules/curate.smk): unpack paths, call the curation code,
write atomically. ``config`` is the rule's config subset; ``spec`` = config['datasets'][dataset]."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from .. import layout
from ..config import config_hash
from ..data.classes import class_table
from ..data.manifest import read_manifest, write_manifest
from ..io import atomic_path
from ..stages import _embedder, embedder_runtime
from ..tables import provenance, write_parquet
from . import finalize, lemmas, screen, source
from .decisions import agreement, read_decisions, reviewer_name

log = logging.getLogger(__name__)


def _meta(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**provenance(config_hash(config)), **extra}


def stage_laion_miniworld(dataset: str, config: dict[str, Any], eval_manifest: str | Path,
                          out_dir: str | Path) -> None:
    spec = config["datasets"][dataset]["source"]
    ev = read_manifest(eval_manifest)
    tmp = Path(str(out_dir) + ".tmp")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    source.write_miniworld_laion(tmp, config, ev, Path(eval_manifest).parent, spec.get("plant", {}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


def stage_laion_download(dataset: str, config: dict[str, Any], out_dir: str | Path) -> None:
    """img2dataset on a connected node, within ``max_count`` samples and the size limits of the spec."""
    spec = config["datasets"][dataset]["source"]
    out_dir = Path(out_dir)
    work = out_dir.parent / "download"
    work.mkdir(parents=True, exist_ok=True)
    if not Path(spec["metadata"]).is_file():
        raise FileNotFoundError(f"{dataset}: LAION metadata {spec['metadata']} is missing; download a part of the "
                                f"LAION-400M / LAION-2B-en metadata (Parquet with URL and TEXT columns) there")
    n = source.limit_metadata(spec["metadata"], work / "url_list.parquet", int(spec.get("max_count", 100_000)),
                              int(config.get("seed", 0)))
    cmd = source.img2dataset_command(spec, work / "url_list.parquet", out_dir)
    log.info("downloading up to %d samples: %s", n, " ".join(cmd))
    subprocess.run(cmd, check=True)


def source_dir(dataset: str, spec: dict[str, Any]) -> str:
    """Where the img2dataset layout of a curated data set lives."""
    src = spec["source"]
    return src["folder"] if src["kind"] == "img2dataset" else layout.curate_file(dataset, "source")


def stage_ingest(dataset: str, config: dict[str, Any], folder: str | Path, out: str | Path) -> None:
    df = source.read_img2dataset(folder)
    write_parquet(df, out, _meta(config, source=str(folder)))
    log.info("%s: %d samples, %d downloaded", dataset, len(df), int((df["status"] == "success").sum()))


def stage_match(dataset: str, config: dict[str, Any], candidates: str | Path, out: str | Path) -> None:
    spec = config["datasets"][dataset]
    classes = class_table(spec["classes"], config)
    df = lemmas.match_captions(pd.read_parquet(candidates), classes)
    index = lemmas.LemmaIndex.from_classes(classes)
    write_parquet(df, out, _meta(config, unique_lemmas=len(index.lemma_to_label), synsets=index.n_synsets,
                                 shared_lemmas=sorted(k.strip() for k in index.dropped)))
    log.info("%s: %s", dataset, df["match"].value_counts().to_dict())


def stage_text_filter(dataset: str, config: dict[str, Any], matched: str | Path, checkpoint: str | Path | None,
                      out: str | Path) -> None:
    spec = config["datasets"][dataset]
    tf = spec["text_filter"]
    classes = class_table(spec["classes"], config)
    emb = _embedder(tf["embedder"], config, checkpoint or None,
                    embedder_runtime(config, tf["embedder"], f"rule curate_text_filter ({dataset})"))
    df = screen.text_filter(pd.read_parquet(matched), classes, emb, float(tf["threshold"]),
                            tf.get("query", "{name} which is {definition}"))
    write_parquet(df, out, _meta(config, threshold=float(tf["threshold"]), embedder=tf["embedder"],
                                 runtime=emb.runtime.metadata()))
    single = df["match"] == "single"
    log.info("%s: %d of %d single-synset captions pass the text filter (>= %g)", dataset,
             int(df["text_pass"].sum()), int(single.sum()), tf["threshold"])


def stage_checks(dataset: str, config: dict[str, Any], text: str | Path, checkpoint: str | Path | None,
                 eval_manifests: dict[str, str], folder: str | Path, out: str | Path, queue: str | Path) -> None:
    spec = config["datasets"][dataset]
    chk = spec.get("checks", {})
    classes = class_table(spec["classes"], config)
    df = pd.read_parquet(text)
    cands = df[df["text_pass"].astype(bool) & (df["path"] != "")]
    name = chk.get("embedder", spec["text_filter"]["embedder"])
    emb = _embedder(name, config, checkpoint or None, embedder_runtime(config, name, f"rule curate_checks ({dataset})"))
    evals = [(n, read_manifest(p), Path(p).parent) for n, p in eval_manifests.items()]
    res = screen.run_checks(cands, folder, classes, emb, chk, evals)
    write_parquet(res, out, _meta(config, runtime=emb.runtime.metadata()))
    q = res[res["decode_ok"]].copy()
    q["flag_reasons"] = ["; ".join(f"{c}: {r[f'{c}_reason']}" for c in screen.CHECKS if r[f"{c}_reason"])
                         for _, r in q.iterrows()]
    cols = ["item_id", "caption", "label_id", "label_name", "path", "flags", "flag_reasons", "zero_shot_top1"]
    rel = os.path.relpath(Path(folder).resolve(), Path(queue).parent.resolve())  # the review server's image root
    write_parquet(q[cols].reset_index(drop=True), queue, _meta(config, image_root=rel))
    log.info("%s: %d checked, %d pass every check; %d in the review queue", dataset, len(res),
             int(res["auto_pass"].sum()), len(q))


def stage_final(dataset: str, config: dict[str, Any], text: str | Path, checks: str | Path,
                decision_files: list[str], folder: str | Path, manifest: str | Path, status_out: str | Path) -> None:
    spec = config["datasets"][dataset]
    classes = class_table(spec["classes"], config)
    review = spec.get("review", {})
    decisions = {reviewer_name(f): read_decisions(f) for f in decision_files}
    t, c = pd.read_parquet(text), pd.read_parquet(checks)
    status = finalize.final_status(t, c, decisions, review)
    out_dir = Path(manifest).parent
    if not status["accepted"].any():
        counts = status["reason"].value_counts().to_dict()
        raise ValueError(f"{dataset}: no candidate is accepted ({counts}). Review the queue with `genbench review "
                         f"{layout.curate_dir(dataset)} --decisions FILE --reviewer NAME` and list the files under "
                         f"datasets.{dataset}.review.decisions, or set review.policy: accept_if_checks_pass")
    df = finalize.build_manifest(t, status, classes, Path(folder), out_dir,
                                 spec.get("prompt_template", "a photo of a {class}"), spec["source"]["kind"])
    write_parquet(status, status_out, _meta(config, reviewers=sorted(decisions), policy=review.get("policy")))
    write_manifest(df, manifest, dataset, metadata=_meta(config, curated_from=str(folder)))
    log.info("%s: %d of %d candidates accepted", dataset, len(df), len(status))


def stage_datasheet(dataset: str, config: dict[str, Any], text: str | Path, checks: str | Path,
                    status: str | Path, decision_files: list[str], out: dict[str, str]) -> None:
    """Tables: per class, per reason, reviewer agreement, and (mini-world) how well wrong captions are caught;
    a Markdown datasheet; the class-coverage figure with its data."""
    from ..plots.curation import coverage_figure

    spec = config["datasets"][dataset]
    classes = class_table(spec["classes"], config)
    t, c, s = pd.read_parquet(text), pd.read_parquet(checks), pd.read_parquet(status)
    meta = _meta(config, dataset=dataset)
    per_class = finalize.per_class_table(t, s, classes)
    reasons = finalize.reasons_table(s)
    decisions = {reviewer_name(f): read_decisions(f) for f in decision_files}
    agree = agreement(decisions)
    catch = finalize.catch_table(t, c, s) if "mw_true_label" in t.columns else pd.DataFrame(
        columns=["stage", "candidates", "planted_wrong", "excluded", "caught", "precision", "recall", "wrong_kept",
                 "label_purity_kept"])
    write_parquet(per_class, out["classes"], meta)
    write_parquet(reasons, out["reasons"], meta)
    write_parquet(agree, out["agreement"], meta)
    write_parquet(catch, out["catch"], meta)
    coverage_figure(per_class, dataset, out["pdf"], out["png"], out["csv"])
    lines = [f"# Datasheet: {dataset}", "",
             f"Curated from `{source_dir(dataset, spec)}` ({spec['source']['kind']}) with the {spec['classes']} "
             f"class table; "
             f"text filter `{spec['text_filter']['embedder']}` >= {spec['text_filter']['threshold']}; "
             f"review policy `{spec.get('review', {}).get('policy', 'exclude')}`.", "",
             f"- candidates: {len(s)}; accepted: {int(s['accepted'].sum())} in "
             f"{int((per_class['accepted'] > 0).sum())} of {len(per_class)} classes", "",
             "## Items per final reason", "", reasons.to_markdown(index=False), "",
             "## Reviewer agreement", "", agree.to_markdown(index=False) if len(agree) else "(one reviewer)", ""]
    if len(catch):
        lines += ["## Planted wrong captions caught (mini-world ground truth)", "", catch.to_markdown(index=False), ""]
    lines += ["## Per class", "", per_class.to_markdown(index=False), ""]
    with atomic_path(out["md"]) as tmp:
        tmp.write_text("\n".join(lines))
    if "html" in out:  # the same datasheet for the Snakemake report
        from ..tables.export import markdown_page

        with atomic_path(out["html"]) as tmp:
            tmp.write_text(markdown_page("\n".join(lines), f"Datasheet: {dataset}"), encoding="utf-8")
