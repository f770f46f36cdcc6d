"""One function per pipeline stage: what each ``workflow/scripts/*.py`` calls with its rule's paths and params.

These functions take plain paths and dicts (no Snakemake objects), read their inputs, call the library and write
their outputs atomically, so tests can run any stage without Snakemake.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import config_hash
from .data.manifest import load_images, read_manifest, write_manifest
from .data.registry import class_names, prepare_dataset
from .io import atomic_path, load_npz, read_npz_runtime, save_npz, write_bytes, write_json
from .jobinfo import report_at_exit
from .layout import Cell
from .metrics.registry import higher_is_better
from .repro import machine_provenance
from .runtime import Runtime, resolve_runtime
from .tables import provenance, read_metadata, write_parquet
from .tables.keys import CELL_KEYS_BY_DATASET, RECON3D_SUMMARY_KEYS
from .wiring import EXTRACTOR, feature_key, parse_feature_key

# torch, matplotlib and the model code are imported inside the stages that need them: the light stages (grids,
# scoring, aggregation) then start in well under a second, which matters for a DAG of thousands of small jobs.

log = logging.getLogger("genbench")


def setup_logging(log_file: str | Path | None, threads: int | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if threads:
        # the rule's threads bound torch's intra-op pool; via the environment so that stages which never import
        # torch (grids, scoring, aggregation, figures) do not pay for importing it
        os.environ["OMP_NUM_THREADS"] = str(int(threads))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
    # where the job ran and which accelerators the scheduler granted (SLURM sets CUDA_VISIBLE_DEVICES for --gpus)
    log.info("host %s, threads %s, CUDA_VISIBLE_DEVICES=%s, SLURM_JOB_ID=%s", platform.node(), threads,
             os.environ.get("CUDA_VISIBLE_DEVICES", ""), os.environ.get("SLURM_JOB_ID", ""))
    report_at_exit(log)  # start-up, stage time, torch imported or not, peak RSS: the job's last log line


def _fix_threads(n: int) -> None:
    """Training uses exactly the configured thread count, whatever the scheduler granted: the float reduction order
    (and so the trained weights, bit for bit) depends on it. Called before torch is imported, so that OpenMP's pool
    is created with that size too (set_num_threads alone left the weights different with OMP_NUM_THREADS=1)."""
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
    import torch

    if torch.get_num_threads() != n:
        log.info("training with %d torch threads as configured (train.threads), not %d", n, torch.get_num_threads())
    torch.set_num_threads(n)


def _load_split(manifest_path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    manifest = read_manifest(manifest_path)
    return manifest, load_images(manifest, Path(manifest_path).parent)


def decode_policy(config: dict[str, Any], dataset: str) -> str:
    """What an undecodable image of ``dataset`` does: 'fail' (default) or 'skip' (genbench.data.stream)."""
    return config.get("datasets", {}).get(dataset, {}).get("decode_errors", "fail")


def preparation(config: dict[str, Any], kind: str, name: str | None):
    """The named preparation of a data set's (kind 'datasets') or a model's generated (kind 'models') images."""
    from .data.stream import Preparation

    spec = config.get(kind, {}).get(name, {}).get("prepare") if name else None
    return Preparation.from_spec(spec, f"{kind}.{name}")


def read_runtime_records(paths: dict[str, str | Path]) -> dict[str, Any]:
    """The runtime records of a scoring stage's inputs (role -> record, genbench.runtime), for those that have one:
    the record is a member of each stage's .npz (``save_npz(..., runtime=)``)."""
    out = {}
    for role, path in paths.items():
        record = read_npz_runtime(path)
        if record is not None:
            out[role] = record
    return out


def stage_prepare_dataset(dataset: str, config: dict[str, Any], manifest_path: str | Path) -> None:
    out_dir = Path(manifest_path).parent
    df = prepare_dataset(dataset, config, out_dir)
    write_manifest(df, manifest_path, dataset, metadata=provenance(config_hash(config)))
    log.info("%s: %d items, %d classes", dataset, len(df), df["label_id"].nunique())


def stage_prepare_3d(dataset: str, config: dict[str, Any], manifest_path: str | Path) -> None:
    """A 3D-track data set -> single-slice / render inputs, ground truth and a manifest (skipped items included,
    with their reasons)."""
    from .catalog import OBJECT_ADAPTERS
    from .recon3d.medical import prepare_medical
    from .recon3d.objects import prepare_objects

    spec = {"seed": config.get("seed", 0), "runtime": config.get("runtime"), **config["datasets3d"][dataset]}
    prepare = prepare_objects if spec["adapter"] in OBJECT_ADAPTERS else prepare_medical
    df = prepare(dataset, spec, Path(manifest_path).parent)
    write_parquet(df, manifest_path, provenance(config_hash(config)))
    ok = int((df["status"] == "ok").sum())
    log.info("%s: %d items ready, %d skipped", dataset, ok, len(df) - ok)


def stage_train_generator(model: str, config: dict[str, Any], manifest_path: str | Path, ckpt: str | Path,
                          meta: str | Path) -> None:
    spec = config["models"][model]
    _fix_threads(spec["train"]["threads"])
    from safetensors.torch import save_file

    from .gen2d.train import train_generator

    manifest, images = _load_split(manifest_path)
    net, losses = train_generator(spec["family"], images, manifest["label_id"].to_numpy(), spec["arch"],
                                  spec["train"])
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    with atomic_path(ckpt) as tmp:
        save_file(state, str(tmp), metadata={"model": model, "family": spec["family"]})
    k = max(1, len(losses) // 20)
    write_json(meta, {"model": model, "arch": spec["arch"], "train": spec["train"], "n_train": len(manifest),
                      "loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
                      "parameters": int(sum(p.numel() for p in net.parameters())), "machine": machine_provenance()})
    log.info("%s trained: loss %.4f -> %.4f", model, np.mean(losses[:k]), np.mean(losses[-k:]))


def stage_convert_weights(model: str, config: dict[str, Any], out: str | Path) -> None:
    """Official weights in a foreign format (``convert:`` in the model's config) -> safetensors + provenance json."""
    from .gen2d.convert import convert_model

    meta = convert_model(model, config["models"][model], out)
    log.info("%s: converted %s (%s, step %s, sha256 %s) -> %s", model, meta["source"], meta["entry"], meta["step"],
             meta["source_sha256"][:12], out)


def stage_generate(model: str, dataset: str, steps: int, cfg: float, seed: int, shard: int, config: dict[str, Any],
                   manifest_path: str | Path, checkpoint: str | Path | None, out: str | Path,
                   n_shards: int, batch_size: int) -> None:
    from .gen2d.generate import generate_shard
    from .gen2d.registry import load_generator

    manifest = read_manifest(manifest_path, dataset)
    spec = config["models"][model]
    rt = resolve_runtime(config, f"rule generate ({model}/{dataset} shard {shard})", spec.get("runtime"))
    gen = load_generator(model, spec, checkpoint, rt)
    gen.place(rt)
    arrays = generate_shard(gen, manifest, model=model, dataset=dataset, global_seed=config["seed"], seed=seed,
                            steps=steps, cfg=cfg, shard=shard, n_shards=n_shards, batch_size=batch_size, runtime=rt)
    save_npz(out, runtime={"generate": rt.metadata()}, **arrays)
    log.info("%s/%s steps %d cfg %g seed %d shard %d/%d: %d images, NFE %s", model, dataset, steps, cfg, seed,
             shard, n_shards, len(arrays["images"]), sorted(set(arrays["nfe"].tolist())))


def stage_sample_grid(shards: list[str | Path], out: str | Path, n: int) -> None:
    from .data.stream import ShardImages
    from .plots.grids import sample_grid

    cell = ShardImages(shards, "sample grid")
    if not len(cell):
        raise ValueError("no images to put in a sample grid: " + ", ".join(map(str, shards)))
    images = np.stack([cell.load(i) for i in range(min(n, len(cell)))])  # only the first n are read
    img = sample_grid(images, n=n, scale=max(1, 64 // max(1, images.shape[1])))
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG")


def stage_train_extractor(name: str, config: dict[str, Any], manifest_path: str | Path, ckpt: str | Path,
                          meta: str | Path) -> None:
    spec = config["extractors"][name]
    _fix_threads(spec["train"]["threads"])
    from safetensors.torch import save_file

    from .features.classifier import train_classifier

    manifest, images = _load_split(manifest_path)
    n_classes = len(class_names(config, spec["train"]["dataset"]))
    net, stats = train_classifier(images, manifest["label_id"].to_numpy(), n_classes, spec["train"])
    with atomic_path(ckpt) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    write_json(meta, {"extractor": name, "kind": spec["kind"], "train": spec["train"], **stats,
                      "machine": machine_provenance()})
    log.info("%s trained: %s", name, stats)


def stage_init_extractor(name: str, config: dict[str, Any], ckpt: str | Path) -> None:
    """A DINOv2 architecture with seeded random weights, saved as transformers saves it (config.json +
    model.safetensors): the mini-world's stand-in for dinov2-large."""
    import shutil
    import tempfile

    import torch
    from transformers import Dinov2Config, Dinov2Model

    spec = dict(config["extractors"][name]["random_init"])
    seed = spec.pop("seed", 0)
    torch.manual_seed(seed)
    model = Dinov2Model(Dinov2Config(image_size=config["extractors"][name].get("image_size", 224), **spec))
    out = Path(ckpt).parent
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        model.save_pretrained(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for f in ("config.json", "model.safetensors"):  # config first: the checkpoint marks completion
            shutil.move(str(Path(tmp) / f), str(out / f))
    log.info("%s: random-weight DINOv2 (%s), seed %d", name, spec, seed)


def extractor_runtime(config: dict[str, Any], name: str, stage: str) -> Runtime:
    return resolve_runtime(config, stage, config["extractors"][name].get("runtime"), metric=True)


def embedder_runtime(config: dict[str, Any], name: str, stage: str) -> Runtime:
    return resolve_runtime(config, stage, config["embedders"][name].get("runtime"), metric=True)


def stage_features_real(name: str, config: dict[str, Any], checkpoint: str | Path | None,
                        manifest_path: str | Path, dataset: str, out: str | Path, threads: int | None = None,
                        spatial: bool = False) -> None:
    """Features of a real set, streamed (genbench.data.stream): decoded by ``threads - 1`` worker processes,
    undecodable images per the data set's ``decode_errors`` (skipped ones listed in the .npz). ``spatial``: also
    the sFID features (genbench.wiring.Wiring.spatial_extractors says which extractors)."""
    from .data.stream import ManifestImages, workers_for
    from .features.registry import load_extractor

    images = ManifestImages.from_path(manifest_path, dataset)
    images.prepare = preparation(config, "datasets", dataset)
    rt = extractor_runtime(config, name, f"rule features_real ({name}/{dataset})")
    ex = load_extractor(name, config["extractors"][name], checkpoint, rt, spatial=spatial)
    res = ex.extract_set(images, f"real {dataset}", workers_for(threads), decode_policy(config, dataset))
    record = {"features_real": rt.metadata(), "prepare": images.prepare.describe(),
              "preprocessing": ex.describe(config["extractors"][name]), **_spatial_record(ex)}
    save_npz(out, runtime=record, item_id=images.item_id[res.index], label_id=images.label_id[res.index], **res.outputs,
             **res.skipped_arrays())


def stage_cell_features(config: dict[str, Any], checkpoints: dict[str, str | Path | None],
                        shards: list[str | Path], set_name: str, outputs: dict[str, str | Path],
                        threads: int | None = None, model: str | None = None, spatial: list[str] | tuple = ()
                        ) -> None:
    """Features of one generated cell for every extractor and image embeddings for every text-image embedder named
    in ``outputs`` (keyed as genbench.wiring.feature_key writes: ``ex_{name}``, ``em_{name}``). The shards are
    memory-mapped and streamed in each model's batches (genbench.data.stream), so memory does not grow with the
    cell; each model is loaded once. The extractors named in ``spatial`` also write the sFID features."""
    from .data.stream import ShardImages, workers_for
    from .features.registry import load_extractor

    cell = ShardImages(shards, set_name)
    cell.prepare = preparation(config, "models", model)  # e.g. a text-to-image model's named downsample
    shard_runtime = read_runtime_records({f"shard {i}": p for i, p in enumerate(shards)})
    generate = list({json_key(r["generate"]): r["generate"] for r in shard_runtime.values()}.values())
    for key, out in outputs.items():
        kind, name = parse_feature_key(key)
        stage = f"rule cell_features ({name} on {set_name})"
        if kind == EXTRACTOR:
            rt = extractor_runtime(config, name, stage)
            ex = load_extractor(name, config["extractors"][name], checkpoints.get(key), rt, spatial=name in spatial)
            res = ex.extract_set(cell, set_name, workers_for(threads))
        else:
            rt = embedder_runtime(config, name, stage)
            emb = _embedder(name, config, checkpoints.get(key), rt)
            res = emb.embed_set(cell, set_name, workers_for(threads))
        cols = {k: v[res.index] for k, v in cell.columns.items() if kind == EXTRACTOR or k in ("item_id", "label_id")}
        record = {"cell_features": rt.metadata(), "prepare": cell.prepare.describe(),
                  **({"preprocessing": ex.describe(config["extractors"][name]), **_spatial_record(ex)}
                     if kind == EXTRACTOR else {}),
                  **({"generate": generate} if generate else {})}
        save_npz(out, runtime=record, **cols, **res.outputs)
        log.info("%s: %s -> %s", set_name, name, out)


def _spatial_record(ex: Any) -> dict[str, str]:
    """The feature file's record of its sFID features (none when it has none)."""
    return {"spatial": ex.spatial_layer} if ex.spatial else {}


def json_key(obj: Any) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def stage_train_embedder(name: str, config: dict[str, Any], manifest_path: str | Path, ckpt: str | Path,
                         meta: str | Path, extra: list[str | Path] = ()) -> None:
    spec = config["embedders"][name]
    _fix_threads(spec["train"]["threads"])
    from safetensors.torch import save_file

    from .features.clip_train import train_clip

    manifest, images = _load_split(manifest_path)
    labels = manifest["label_id"].to_numpy()
    for path in extra:  # more data of the same classes (the mini-world's web-style split)
        m, im = _load_split(path)
        images, labels = np.concatenate([images, im]), np.concatenate([labels, m["label_id"].to_numpy()])
    classes = class_names(config, spec["train"]["dataset"])
    model, stats = train_clip(images, labels, classes, spec["model"], spec["model_config"],
                              spec["train"])
    with atomic_path(ckpt) as tmp:  # open_clip loads a .safetensors state dict given as `pretrained`
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_json(meta, {"embedder": name, "model": spec["model"], **stats, "machine": machine_provenance()})


def _embedder(name: str, config: dict[str, Any], checkpoint: str | Path | None, runtime: Runtime | None = None):
    from .features.text_image import load_embedder

    runtime = runtime or embedder_runtime(config, name, f"embedder '{name}'")
    return load_embedder(name, config["embedders"][name], checkpoint, runtime)


def stage_embed_real(name: str, config: dict[str, Any], checkpoint: str | Path | None, manifest_path: str | Path,
                     dataset: str, out: str | Path, threads: int | None = None) -> None:
    """Image embeddings of the real set (streamed, as stage_features_real) and text embeddings of each kept item's
    prompt (the manifest's)."""
    from .data.stream import ManifestImages, workers_for

    manifest = read_manifest(manifest_path, dataset)
    prompts = manifest["prompt"].astype(str).tolist()
    if any(not p for p in prompts):
        bad = manifest.loc[manifest["prompt"].astype(str) == "", "item_id"].head(3).tolist()
        raise ValueError(f"data set '{dataset}': items without a prompt (e.g. {bad}); text-image metrics need one")
    images = ManifestImages(manifest, Path(manifest_path).parent, dataset)
    images.prepare = preparation(config, "datasets", dataset)
    rt = embedder_runtime(config, name, f"rule embed_real ({name}/{dataset})")
    emb = _embedder(name, config, checkpoint, rt)
    res = emb.embed_set(images, f"real {dataset}", workers_for(threads), decode_policy(config, dataset))
    skipped = res.skipped_arrays()
    if skipped:  # their prompts still serve the generated items of the same ids (text-image scores)
        pos = {item: k for k, item in enumerate(images.item_id.tolist())}
        skipped["skipped_text_emb"] = emb.embed_texts([prompts[pos[i]] for i in skipped["skipped_item_id"]],
                                                      dataset)
    record = {"embed_real": rt.metadata(), "prepare": images.prepare.describe()}
    save_npz(out, runtime=record, item_id=images.item_id[res.index], label_id=images.label_id[res.index],
             image_emb=res.outputs["image_emb"], text_emb=emb.embed_texts([prompts[i] for i in res.index], dataset),
             logit_scale=np.float64(emb.logit_scale), **skipped)


def stage_score(cell: dict[str, Any], config: dict[str, Any], real: str | Path, gen: str | Path,
                manifest: str | Path, out: str | Path, out_per_class: str | Path,
                text_image: dict[str, tuple[str, str]] | None = None,
                dinov2: tuple[str, str] | None = None) -> None:
    from .metrics.score2d import KEY_COLUMNS, PER_CLASS_KEYS, score_cell, score_per_class

    g = load_npz(gen)
    spec = config["models"][cell["model"]]
    sc = config["scoring"]
    facts = dict(cell, family=spec["family"], sampler=spec["sampler"]["method"], nfe=int(np.max(g["nfe"])),
                 forward_passes=int(np.max(g["forward_passes"])), extractor=sc["extractor"])
    r = load_npz(real)
    real_stats = precomputed_statistics(config, cell["dataset"])
    ti = {role: (load_npz(pr), load_npz(pg)) for role, (pr, pg) in (text_image or {}).items()}
    df = score_cell(r, g, cell=facts, metrics=[m for m in sc["metrics"] if m != "mmhm"], is_splits=sc["is_splits"],
                    bootstrap=sc["bootstrap"], kid=sc.get("kid"), text_image=ti,
                    text_image_names=sc.get("text_image", {}),
                    dinov2=(load_npz(dinov2[0]), load_npz(dinov2[1]), sc["dinov2"]) if dinov2 else None,
                    prdc_k=sc["prdc"]["k"], fd_inf=sc["fd_inf"], real_statistics=real_stats)
    inputs = {"real features": real, "generated features": gen}
    for role, (pr, pg) in (text_image or {}).items():
        inputs.update({f"real {role} embeddings": pr, f"generated {role} embeddings": pg})
    if dinov2:
        inputs.update({"real dinov2 features": dinov2[0], "generated dinov2 features": dinov2[1]})
    runtime = read_runtime_records(inputs)  # where and how the features were computed (genbench.runtime)
    meta = {**provenance(config_hash(config)), "key_columns": KEY_COLUMNS, "runtime": runtime}
    if real_stats is not None:  # which real statistics FID was computed against
        meta["real_statistics"] = {"fid": real_stats.source}
    write_parquet(df, out, metadata=meta)
    pc = sc["per_class"]
    if pc["enabled"]:
        names = read_manifest(manifest).drop_duplicates("label_id").set_index("label_id")["label_name"]
        class_names = [names.get(i, str(i)) for i in range(int(names.index.max()) + 1)]
        per = score_per_class(r, g, cell=facts, metrics=sc["metrics"], class_names=class_names,
                              bootstrap={**sc["bootstrap"], "n": pc["bootstrap"]}, min_samples=pc["min_samples"],
                              text_image=ti, text_image_names=sc.get("text_image", {}))
    else:  # an empty table with the same columns, so the aggregate and its readers need no special case
        floats = ("value", "ci_low", "ci_high", "ci_bias")
        per = pd.DataFrame({c: pd.Series(dtype="float64" if c in floats else "object")
                            for c in [*PER_CLASS_KEYS, "class_name", *floats, "ci_method", "note"]})
    write_parquet(per, out_per_class, metadata={**provenance(config_hash(config)), "key_columns": PER_CLASS_KEYS,
                                                "runtime": runtime})


def precomputed_statistics(config: dict[str, Any], dataset: str):
    """The precomputed real statistics a data set is scored against (``statistics: precomputed``: an ADM reference
    batch's mu/sigma), or None (FID against the real features)."""
    spec = config.get("datasets", {}).get(dataset, {})
    if spec.get("statistics", "images") != "precomputed":
        return None
    from .data.adm import adm_statistics

    return adm_statistics(spec["root"])


def add_mmhm_rows(df: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One 'mmhm' row per cell, computed per data set over every cell of the sweep (or with reused bounds)."""
    from .metrics.composite import MMHM_METRICS, load_bounds, mmhm

    cell_keys = list(CELL_KEYS_BY_DATASET)
    given = load_bounds(spec["bounds"]) if spec.get("bounds") else None
    rows, all_bounds = [], {}
    for ds, sub in df.groupby("dataset", sort=False):
        wide = sub[sub["metric"].isin(MMHM_METRICS)].pivot_table(index=cell_keys, columns="metric", values="value",
                                                                  sort=False)
        missing = [m for m in MMHM_METRICS if m not in wide.columns]
        if missing or wide.isna().any().any():
            raise ValueError(f"MMHM on '{ds}': every cell needs {', '.join(MMHM_METRICS)}; "
                             f"missing {missing or 'values'}")
        scores, used, warnings = mmhm({m: wide[m].to_numpy() for m in MMHM_METRICS}, given, spec.get("eps", 1e-3))
        for w in warnings:
            log.warning("%s: %s", ds, w)
        all_bounds[ds] = used
        source = f"bounds from {spec['bounds']}" if given else f"bounds: this sweep on {ds} ({len(wide)} cells)"
        facts = sub[sub["metric"] == "fid"].set_index(cell_keys)
        for key, score in zip(wide.index, scores, strict=True):
            base = facts.loc[key].to_dict() if key in facts.index else {}
            base["extractor"] = "composite (fid, is, clip_score, pick_score rows)"
            rows.append({**base, **dict(zip(cell_keys, key, strict=True)), "metric": "mmhm", "value": float(score),
                         "ci_low": np.nan, "ci_high": np.nan, "ci_bias": np.nan,
                         "ci_method": "none (min-max over the sweep)",
                         "note": source + ("; " + " ".join(warnings) if warnings else "")})
    out = pd.concat([df, pd.DataFrame(rows)[df.columns]], ignore_index=True)
    return out, {"bounds_per_dataset": all_bounds, "reused_from": spec.get("bounds")}


def recorded_preprocessing(tables: list[str | Path]) -> str:
    """The scoring extractor's preprocessing, as the feature stage recorded it (the runtime record of its .npz,
    which the score tables carry): read back here so that aggregation never imports the extractor's code (and
    torch)."""
    for t in tables:
        record = read_metadata(t).get("runtime", {}).get("generated features", {})
        if "preprocessing" in record:
            return record["preprocessing"]
    return "not recorded (features from a genbench version before the record held it: rerun cell_features)"


def stage_aggregate(tables: list[str | Path], config: dict[str, Any], full_config_hash: str,
                    out: str | Path, per_class: bool = False, bounds_out: str | Path | None = None) -> None:
    keys = [*CELL_KEYS_BY_DATASET, *(["label_id"] if per_class else []), "metric"]
    frames = [pd.read_parquet(t) for t in tables]
    frames = [f for f in frames if len(f)]
    if not frames and not per_class:
        raise ValueError("no rows in any of the tables to aggregate: " + ", ".join(map(str, tables[:5])))
    df = pd.concat(frames, ignore_index=True) if frames else pd.read_parquet(tables[0])
    # rows in the config's order of data sets and models (figures and exported tables keep the table's order)
    order = {col: list(dict.fromkeys(v for block in config["sweep"] for v in block[f"{col}s"]))
             for col in ("dataset", "model")}
    ranks = {col: df[col].map({v: i for i, v in enumerate(order[col])}).fillna(len(order[col]))
             for col in order}
    df = (df.assign(_d=ranks["dataset"], _m=ranks["model"])
          .sort_values(["_d", "dataset", "_m", "model", *keys[2:]])
          .drop(columns=["_d", "_m"]).reset_index(drop=True))
    if not per_class and "mmhm" in config["scoring"]["metrics"]:
        df, bounds = add_mmhm_rows(df, config["scoring"]["mmhm"])
    else:
        bounds = {"_note": "MMHM is not in scoring.metrics" if not per_class else "per-class table: no MMHM"}
    if bounds_out is not None:
        write_json(bounds_out, bounds)
    ex = config["scoring"]["extractor"]
    kind = config["extractors"][ex]["kind"]
    meta = provenance(full_config_hash)
    meta["extractors"] = {ex: {"kind": kind, "preprocessing": recorded_preprocessing(tables)}}
    for role, name in config["scoring"].get("text_image", {}).items():
        spec = config["embedders"][name]
        meta["extractors"][name] = {"kind": spec["kind"], "role": role, "model": spec.get("model", ""),
                                    "preprocessing": "the library's own evaluation transform (open_clip / "
                                                     "transformers processor); prompts from the manifest"}
    # the class-name table behind each data set's prompts and labels (genbench.data.classes)
    datasets = config.get("datasets", {})
    meta["class_names"] = {d: datasets[d].get("class_names", "wordnet") for d in df["dataset"].unique()
                           if datasets.get(d, {}).get("adapter") in ("imagenet_val", "imagenetv2", "relaionet",
                                                                       "adm_ref")}
    real_statistics = {d: datasets[d].get("statistics", "images") for d in df["dataset"].unique()
                       if datasets.get(d, {}).get("adapter") == "adm_ref"}
    if real_statistics:  # what FID was computed against on each reference batch (images or precomputed mu/sigma)
        meta["real_statistics"] = real_statistics
    meta["key_columns"] = keys
    write_parquet(df, out, metadata=meta)


def stage_export_tables(table: str | Path, outputs: dict[str, str | Path], pairwise: str | Path | None = None) -> None:
    from .tables.export import export_tables

    export_tables(pd.read_parquet(table), outputs, pd.read_parquet(pairwise) if pairwise else None)


def stage_figure(name: str, table: str | Path, pdf: str | Path, png: str | Path, data: str | Path,
                 grids: dict[str, str | Path] | None = None, *, confidence: float,
                 pairwise: str | Path | None = None, tables: dict[str, str | Path] | None = None,
                 shards: dict[str, list[str | Path]] | None = None, manifests: dict[str, str | Path] | None = None,
                 options: dict[str, Any] | None = None) -> None:
    from .plots.figures import draw_figure

    draw_figure(name, pd.read_parquet(table), pdf, png, data, grids=grids, confidence=confidence,
                pairwise=pd.read_parquet(pairwise) if pairwise else None,
                tables={n: pd.read_parquet(p) for n, p in (tables or {}).items()}, shards=shards,
                manifests=manifests, options=options)


# ---------------------------------------------------------------------------------------------------------------
# 3D track: reconstruction, scoring, aggregation


def stage_train_reconstructor(recon: str, config: dict[str, Any], weights: str | Path) -> None:
    """A reconstructor the pipeline trains (its entry's ``train:``): the kind's trainer
    (catalog.RECONSTRUCTOR_TRAINERS) writes the folder of ``weights`` (model.safetensors + config.json)."""
    from .catalog import RECONSTRUCTOR_TRAINERS

    spec = config["reconstructors"][recon]
    train = RECONSTRUCTOR_TRAINERS.plugin(spec["kind"]).load()
    report = train(recon, spec["train"], int(config.get("seed", 0)), Path(weights).parent)
    log.info("%s trained: %s", recon, {k: v for k, v in report.items() if not isinstance(v, list)})


def stage_reconstruct_3d(dataset: str, model: str, config: dict[str, Any], manifest_path: str | Path,
                         table: str | Path, weights: str | Path | None = None) -> None:
    """``weights``: a reconstructor the pipeline trained (rule train_reconstructor's model.safetensors): its folder
    replaces the entry's ``weights``."""
    from .recon3d.evaluate import reconstruct_dataset

    spec = dict(config["reconstructors"][model])
    if weights is not None:
        spec["weights"] = {"path": str(Path(weights).parent)}
    df = reconstruct_dataset(dataset, model, spec, manifest_path, Path(table).parent, int(config.get("seed", 0)))
    write_parquet(df, table, provenance(config_hash(config)))
    counts = df["status"].value_counts().to_dict()
    log.info("%s / %s: %s", dataset, model, counts)


def stage_score_3d(dataset: str, model: str, config: dict[str, Any], manifest_path: str | Path,
                   recon_table: str | Path, out: str | Path) -> None:
    from .recon3d.evaluate import score_dataset

    df = score_dataset(dataset, model, config["recon3d"]["protocols"], manifest_path, recon_table,
                       int(config.get("seed", 0)))
    write_parquet(df, out, provenance(config_hash(config)))


def stage_aggregate_3d(tables: list[str | Path], config: dict[str, Any], full_config_hash: str,
                       per_item_out: str | Path, summary_out: str | Path,
                       appearance: list[str | Path] | None = None) -> None:
    """Geometry scores (+ appearance, protocol 'appearance') -> the per-item table and the summary with bootstrap
    CIs; set-level appearance metrics (FD/KD on renders) join the summary without CIs."""
    from .recon3d.evaluate import summarise

    spec = config["recon3d"]
    frames = [pd.read_parquet(t) for t in tables]
    sets = []
    for t in appearance or []:
        df = pd.read_parquet(t)
        if str(t).endswith(".sets.parquet"):
            sets.append(df)
        else:
            frames.append(df.assign(protocol="appearance"))
    per_item = pd.concat(frames, ignore_index=True)
    ceilings = [m for m in spec["models"] if config["reconstructors"][m]["kind"] == "gt_resample"]
    per_item["ceiling"] = per_item["model"].isin(ceilings)
    boot = spec.get("bootstrap", {})
    summary = summarise(per_item, ceilings, int(boot.get("n", 1000)), float(boot.get("confidence", 0.95)),
                        int(config.get("seed", 0)))
    if "note" not in summary:
        summary["note"] = None
    sets = [s for s in sets if len(s)]
    if sets:
        counts = summary[summary["protocol"] == "appearance"].drop_duplicates(["dataset", "model"]).set_index(
            ["dataset", "model"])[["n_scored", "n_skipped", "n_failed"]]
        extra = pd.concat(sets, ignore_index=True).assign(protocol="appearance", ci_low=np.nan, ci_high=np.nan,
                                                          ci_method="none (a set-level value, no items to resample)")
        extra = extra.join(counts, on=["dataset", "model"])
        extra["ceiling"] = extra["model"].isin(ceilings)
        extra["higher_is_better"] = [higher_is_better(m, "3d") for m in extra["metric"]]  # fd_*, kd_*: False
        summary = pd.concat([summary, extra[summary.columns]], ignore_index=True)
    meta = provenance(full_config_hash)
    meta["protocols"] = spec["protocols"]
    meta["appearance"] = spec.get("appearance")
    meta["reconstructors"] = {m: config["reconstructors"][m] for m in spec["models"]}
    write_parquet(per_item, per_item_out, meta)
    write_parquet(summary, summary_out, {**meta, "key_columns": list(RECON3D_SUMMARY_KEYS)})


def stage_export_recon3d_table(summary: str | Path, outputs: dict[str, str | Path], confidence: float) -> None:
    from .tables.export import export_recon3d_table

    export_recon3d_table(pd.read_parquet(summary), outputs, confidence)


def stage_figure_3d(name: str, table: str | Path, pdf: str | Path, png: str | Path, data: str | Path,
                    manifests: list[str | Path] | None = None, n_items: int = 4, *, confidence: float) -> None:
    from .plots.figures3d import draw_figure_3d

    draw_figure_3d(name, pd.read_parquet(table), pdf, png, data, manifests=manifests, n_items=n_items,
                   confidence=confidence)


def stage_appearance_3d(dataset: str, model: str, config: dict[str, Any], inputs: dict[str, str],
                        out: str | Path, out_sets: str | Path) -> None:
    from .features.registry import load_extractor
    from .recon3d.appearance import appearance_dataset

    spec = config["recon3d"]["appearance"]
    stage = f"rule appearance_3d ({dataset}/{model})"
    runtimes = {}
    extractors = {}
    for name in spec.get("extractors", []):
        runtimes[f"extractor {name}"] = rt = extractor_runtime(config, name, stage)
        checkpoint = inputs.get(feature_key(EXTRACTOR, name))  # appearance_inputs' key of a stand-in's checkpoint
        extractors[name] = load_extractor(name, config["extractors"][name], checkpoint, rt)
    emb = None
    if spec.get("embedder"):
        runtimes[f"embedder {spec['embedder']}"] = rt = embedder_runtime(config, spec["embedder"], stage)
        emb = _embedder(spec["embedder"], config, inputs.get("embedder"), rt)
    lp = lp_rt = None
    if spec.get("lpips"):
        from .recon3d.appearance import load_lpips

        runtimes["lpips"] = lp_rt = resolve_runtime(config, stage, metric=True)
        lp = lp_rt.place(load_lpips(spec["lpips"], int(config.get("seed", 0))))
    rows, sets = appearance_dataset(dataset, model, inputs["manifest"], inputs["scores"],
                                    Path(inputs["recon"]).parent, spec, extractors, emb, lp, lp_rt)
    meta = provenance(config_hash(config))
    meta["extractors"] = {n: {"kind": config["extractors"][n]["kind"]} for n in extractors}
    meta["runtime"] = {k: rt.metadata() for k, rt in runtimes.items()}
    write_parquet(rows, out, meta)
    write_parquet(sets if len(sets) else pd.DataFrame({"dataset": [], "model": [], "metric": [], "value": []}),
                  out_sets, meta)


def _not_applicable_2d(knobs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The 2D knobs' rows for the data sets they are not evaluated on, each with its reason (genbench.protocol2d)."""
    from .metrics.protocol_delta import not_applicable

    rows = []
    for name, k in knobs.items():
        for dataset, reason in k["not_applicable"].items():
            row = not_applicable("2d", name, k["from_setting"], k["to_by_dataset"].get(dataset, k["to_setting"]),
                                 reason)
            rows.append({**row, "dataset": dataset})
    return rows


def _entry(cell: Cell) -> str:
    return f"{cell.model} {cell.setting} seed{cell.seed}"


class _CellFeatures(Mapping):
    """entry -> what ``pick`` takes from that cell's feature file, read on each look-up (nothing is kept)."""

    def __init__(self, paths: dict[str, str | Path], keys: tuple[str, ...], pick):
        self.paths, self.keys, self.pick = paths, keys, pick

    def __getitem__(self, entry: str):
        return self.pick(load_npz(self.paths[entry], self.keys))

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def stage_protocol_delta_2d(config: dict[str, Any], files: dict[str, Any], knobs: dict[str, dict[str, Any]],
                            out: str | Path) -> None:
    """The 2D knobs' ``delta`` rows (genbench.wiring.Wiring.protocol_delta_2d_files names every input by role:
    ``real`` data set -> scoring features, ``gen`` cell path -> scoring features, and per evaluated knob its extra
    features or embeddings), then a ``not_applicable`` row per knob and data set it is not evaluated on."""
    from .metrics.protocol_delta import feature_deltas_2d, precision_deltas_2d, prompt_deltas_2d
    from .seeding import numpy_rng

    boot = config["scoring"]["bootstrap"]
    seed = int(boot.get("seed", config.get("seed", 0)))
    n_boot = int((config.get("protocol_delta") or {}).get("bootstrap", boot["n"]))
    conf = float(boot["confidence"])
    keys = ("item_id", "features")  # not the logits or sFID's spatial features: only FID is re-scored here
    real = {d: load_npz(p, keys) for d, p in files["real"].items()}

    def by_dataset(paths: dict[str, str | Path], pick) -> dict[str, _CellFeatures]:
        """data set -> {entry: features}, each cell's file read when the entry is looked up and not kept: a
        paper-scale sweep's cells (432 x 50k x 2048 float64) do not fit in memory together."""
        out: dict[str, dict[str, str | Path]] = {}
        for path, p in paths.items():
            cell = Cell.parse(path)
            out.setdefault(cell.dataset, {})[_entry(cell)] = p
        return {d: _CellFeatures(cells, keys, pick) for d, cells in out.items()}

    def fset(npz: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return npz["item_id"], npz["features"]

    parts = []
    if wanted := set(knobs["statistics_precision"]["datasets"]):
        parts.append(precision_deltas_2d(
            {d: real[d]["features"] for d in wanted},
            {d: cells for d, cells in by_dataset(files["gen"], lambda z: z["features"]).items() if d in wanted},
            n_boot, conf, lambda d, e: numpy_rng(seed, "protocol_delta", "2d", d, e)))

    for knob in ("resize_mode", "real_preparation"):
        if knob not in files:
            continue
        k, extra = knobs[knob], files[knob]
        real_from = {d: fset(load_npz(p, keys)) for d, p in extra["real"].items()}
        gen_to = {d: cells for d, cells in by_dataset(files["gen"], fset).items() if d in real_from}
        gen_from = gen_to
        if "gen" in extra:  # resize_mode: the generated features under the anchor's resize too
            gen_from = by_dataset(extra["gen"], fset)
        parts.append(feature_deltas_2d(knob, k["from_setting"], k["to_by_dataset"] or
                                       {d: k["to_setting"] for d in real_from}, real_from,
                                       {d: fset(real[d]) for d in real_from}, gen_from, gen_to, n_boot, conf,
                                       lambda d, e, knob=knob: numpy_rng(seed, "protocol_delta", "2d", knob, d, e)))
    for role, spec in files.get("prompt_names", {}).items():
        k = knobs["prompt_names"]
        emb_gen: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        for path, p in spec["gen"].items():
            cell = Cell.parse(path)
            emb_gen.setdefault(cell.dataset, {})[_entry(cell)] = load_npz(p)
        parts.append(prompt_deltas_2d(
            role, spec["embedder"], k["from_setting"], k["to_by_dataset"],
            {d: load_npz(p) for d, p in spec["real"].items()}, {d: load_npz(p) for d, p in spec["anchor"].items()},
            emb_gen, n_boot, conf, lambda d, e, role=role: numpy_rng(seed, "protocol_delta", "2d", "prompt_names",
                                                                     role, d, e)))
    parts.append(pd.DataFrame(_not_applicable_2d(knobs)))
    df = pd.concat([p for p in parts if len(p)], ignore_index=True)
    write_parquet(df, out, provenance(config_hash(config)))


def stage_protocol_features_gen(knob: str, extractor: str, config: dict[str, Any], checkpoint: str | Path | None,
                                shards: list[str | Path], set_name: str, out: str | Path,
                                threads: int | None = None, model: str | None = None) -> None:
    """A generated cell's scoring features under the anchor's setting of ``knob`` (``config`` is the variant
    subset genbench.wiring.Wiring.protocol_features_config builds): rule cell_features' extraction, one extractor."""
    key = feature_key(EXTRACTOR, extractor)
    log.info("protocol knob %s: %s features of %s under %s", knob, extractor, set_name,
             config["extractors"][extractor].get("resize"))
    stage_cell_features(config, {key: checkpoint}, shards, set_name, {key: out}, threads=threads, model=model)


def stage_protocol_embed_prompts(name: str, config: dict[str, Any], checkpoint: str | Path | None,
                                 manifest_path: str | Path, dataset: str, out: str | Path) -> None:
    """Knob prompt_names: every item's prompt rebuilt with the anchor's class-name table (the data set's template,
    genbench.data.classes.prompts_under_table) and embedded by the text tower of ``name`` (each distinct prompt
    once); the image embeddings are the run's own."""
    from .data.classes import prompts_under_table

    manifest = read_manifest(manifest_path, dataset)
    table = config["protocol_delta"]["anchor"]["class_names"]
    prompts = prompts_under_table(manifest, config["datasets"][dataset], table, dataset)
    rt = embedder_runtime(config, name, f"rule protocol_embed_prompts ({name}/{dataset})")
    emb = _embedder(name, config, checkpoint, rt)
    unique = list(dict.fromkeys(prompts))
    row = {p: i for i, p in enumerate(unique)}
    text = np.asarray(emb.embed_texts(unique, dataset))[[row[p] for p in prompts]]
    save_npz(out, runtime={"protocol_embed_prompts": rt.metadata(), "class_names": table},
             item_id=np.asarray(manifest["item_id"].astype(str).tolist(), dtype=str),
             label_id=manifest["label_id"].to_numpy(np.int64), text_emb=text, prompt=np.asarray(prompts, dtype=str))


def stage_protocol_delta_3d(dataset: str, config: dict[str, Any], manifest: str | Path,
                            recon_tables: list[str | Path], score_tables: list[str | Path], out: str | Path) -> None:
    from .recon3d.knobs import knob_deltas_3d

    spec = config["recon3d"]
    boot = spec.get("bootstrap", {})
    df = knob_deltas_3d(dataset, list(spec["models"]), spec["protocols"], manifest, recon_tables, score_tables,
                        int(config.get("seed", 0)), int(boot.get("n", 1000)), float(boot.get("confidence", 0.95)))
    write_parquet(df, out, provenance(config_hash(config)))


def stage_protocol_delta(parts: list[str | Path], full_config_hash: str, out: str | Path,
                         html_out: str | Path) -> None:
    """Every part's ``delta`` rows and their ``ranking`` rows -> results/tables/protocol_delta.parquet, and its
    HTML view for the report."""
    from .metrics.protocol_delta import KEY_COLUMNS, assemble, report_view
    from .tables.export import to_html

    df = assemble([pd.read_parquet(p) for p in parts])
    write_parquet(df, out, {**provenance(full_config_hash), "key_columns": KEY_COLUMNS})
    with atomic_path(html_out) as tmp:
        Path(tmp).write_text(to_html(report_view(df), "What each protocol knob moves (docs/protocol.md)"),
                             encoding="utf-8")


def stage_figure_protocol_delta(table: str | Path, pdf: str | Path, png: str | Path, data: str | Path,
                                confidence: float) -> None:
    from .plots.protocol_delta import protocol_delta_figure

    protocol_delta_figure(pd.read_parquet(table), pdf, png, data, confidence=confidence)


# ---------------------------------------------------------------------------------------------------------------
# Statistics across the sweep: pairwise significance, selection stability (docs/metrics.md)


def _stats_html(df: pd.DataFrame, caption: str, out: str | Path | None) -> None:
    """The table as an escaped HTML page for the report (numbers to 4 significant digits)."""
    if out is None:
        return
    from .tables.export import to_html

    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: f"{v:.4g}")
    with atomic_path(out) as tmp:
        Path(tmp).write_text(to_html(shown, caption))


def _stats_resamples(config: dict[str, Any]) -> int:
    """Resamples of the pairwise comparisons and selection stability: statistics.bootstrap, else the metrics'."""
    return int((config.get("statistics") or {}).get("bootstrap") or config["scoring"]["bootstrap"]["n"])


def stage_pairwise_gen2d(cells: list[dict[str, Any]], gen: list[str | Path], real: dict[str, str | Path],
                         config: dict[str, Any], full_config_hash: str, out: str | Path,
                         html: str | Path | None = None) -> None:
    """Paired comparisons (FID, IS) of the cells a figure or the best table compares, Holm-corrected per metric;
    ``gen`` holds each cell's scoring-extractor features in the order of ``cells``."""
    from .metrics.pairwise import cell_name, gen2d_pairwise

    sc = config["scoring"]
    path_of = {cell_name(c): p for c, p in zip(cells, gen, strict=True)}
    df = gen2d_pairwise(pd.DataFrame(cells), lambda c: load_npz(path_of[cell_name(c)]),
                        lambda d: load_npz(real[d]), n_boot=_stats_resamples(config),
                        confidence=sc["bootstrap"]["confidence"], seed=sc["bootstrap"].get("seed", 0),
                        is_splits=sc["is_splits"], correction="holm")
    keys = ["comparison", "metric", "dataset", "model_a", "steps_a", "cfg_a", "model_b", "steps_b", "cfg_b", "seed"]
    write_parquet(df, out, metadata={**provenance(full_config_hash), "key_columns": keys})
    _stats_html(df, "Paired differences A - B on the same items, bootstrap CI and p-value, Holm-adjusted per metric",
                html)


def stage_pairwise_3d(per_item: str | Path, config: dict[str, Any], full_config_hash: str, out: str | Path,
                      html: str | Path | None = None) -> None:
    from .metrics.pairwise import recon3d_pairwise
    from .recon3d.evaluate import metric_columns

    items = pd.read_parquet(per_item)
    boot = config["recon3d"].get("bootstrap", {})
    df = recon3d_pairwise(items, metric_columns(items), n_boot=int(boot.get("n", 1000)),
                          confidence=float(boot.get("confidence", 0.95)), seed=int(config.get("seed", 0)))
    write_parquet(df, out, metadata={**provenance(full_config_hash),
                                     "key_columns": ["dataset", "protocol", "metric", "model_a", "model_b"]})
    _stats_html(df, "3D: paired per-item differences A - B (mean), bootstrap CI and p-value, Holm-adjusted per "
                "metric", html)


def stage_selection_stability(cells: list[dict[str, Any]], gen: list[str | Path], real: dict[str, str | Path],
                              text_image: dict[str, tuple[dict[str, str], list[str]]], config: dict[str, Any],
                              full_config_hash: str, out: str | Path, html: str | Path | None = None) -> None:
    """Selection frequencies per (data set, seed); ``text_image[role]`` = (real embeddings per data set, the
    cells' generated embeddings in the order of ``cells``)."""
    from .metrics.score2d import text_image_scores
    from .metrics.stability import selection_stability

    sc = config["scoring"]
    groups: dict[tuple[str, int], list[int]] = {}
    for k, c in enumerate(cells):
        groups.setdefault((c["dataset"], int(c["seed"])), []).append(k)
    frames = []
    for (dataset, _seed), ks in groups.items():
        r = load_npz(real[dataset])
        loaded, ti = [], {}
        for k in ks:
            c = cells[k]
            name = str(Cell.from_mapping(c))
            loaded.append({**c, **load_npz(gen[k])})
            for role, (real_emb, gen_emb) in text_image.items():
                kind = "clip" if role == "clip" else "pick"
                _, per = text_image_scores(load_npz(real_emb[dataset]), load_npz(gen_emb[k]), kind,
                                           (f"real {dataset}", name))
                ti.setdefault(name, {})[role] = per
        frames.append(selection_stability(r, loaded, ti, n_boot=_stats_resamples(config),
                                          seed=sc["bootstrap"].get("seed", 0), is_splits=sc["is_splits"]))
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_parquet(df, out, metadata={**provenance(full_config_hash),
                                     "key_columns": ["dataset", "seed", "model", "criterion", "steps", "cfg"]})
    _stats_html(df, "Selection stability: fraction of item resamples in which each setting is selected", html)


def stage_figure_stability(table: str | Path, pdf: str | Path, png: str | Path, data: str | Path) -> None:
    from .plots.statistics import selection_stability_figure

    selection_stability_figure(pd.read_parquet(table), pdf, png, data)


def stage_figure_correlation(table: str | Path, pdf: str | Path, png: str | Path, data: str | Path) -> None:
    from .plots.statistics import metric_correlation

    metric_correlation(pd.read_parquet(table), pdf, png, data)


def _validation_text_inputs(dataset: str, manifest: pd.DataFrame, ref_images: np.ndarray, config: dict[str, Any],
                            embedders: dict[str, str | Path | None]) -> dict[str, dict[str, Any]]:
    """The text-image inputs of validate_metrics, by role (scoring.text_image): each class's prompt (the manifest's
    prompt of its first item; the mini-world's val prompts are one per class) embedded once, the reference half's
    image embeddings, and an ``embed`` function for the degraded images (one embedding per image set when two
    roles share an embedder, as in the mini-world)."""
    from .features.text_image import load_embedder

    prompt_of = manifest.drop_duplicates("label_id").set_index("label_id")["prompt"]
    text_labels = np.array(sorted(prompt_of.index), dtype=np.int64)
    loaded: dict[str, dict[str, Any]] = {}
    for name, checkpoint in embedders.items():
        em = load_embedder(name, config["embedders"][name], checkpoint)
        last: dict[str, Any] = {}

        def embed(ims: np.ndarray, em=em, last=last) -> np.ndarray:
            if last.get("images") is not ims:  # the same array again (a prompt-only level, or the other role)
                last.update(images=ims, emb=em.embed_images(ims, f"degraded {dataset}"))
            return last["emb"]

        loaded[name] = {"embed": embed, "real_image_emb": em.embed_images(ref_images, f"real {dataset} (reference)"),
                        "text_labels": text_labels, "logit_scale": em.logit_scale,
                        "text_emb": em.embed_texts([str(prompt_of[c]) for c in text_labels], f"{dataset} prompts")}
    return {role: loaded[name] for role, name in config["scoring"].get("text_image", {}).items() if name in loaded}


def stage_metric_validation(dataset: str, manifest_path: str | Path, config: dict[str, Any],
                            checkpoint: str | Path | None, full_config_hash: str, out: str | Path,
                            html: str | Path | None = None, noise_floor_out: str | Path | None = None,
                            noise_floor_html: str | Path | None = None,
                            embedders: dict[str, str | Path | None] | None = None) -> None:
    """Known-answer validation of the metrics on the real images of ``dataset`` (metrics/validation.py).
    ``embedders``: {name: trained checkpoint or None} of the ``scoring.text_image`` embedders; given, the table
    also validates the text-image metrics (and the caption/image mismatch degradation needs them)."""
    from .features.registry import load_extractor
    from .metrics.validation import noise_floor, split_halves, validate_metrics

    sc = config["scoring"]
    name = sc["extractor"]
    manifest, images = _load_split(manifest_path)
    labels = manifest["label_id"].to_numpy(np.int64)
    ref, deg = split_halves(labels)
    ex = load_extractor(name, config["extractors"][name], checkpoint)
    real = ex.extract(images[ref], f"real {dataset} (reference half)")
    text = _validation_text_inputs(dataset, manifest, images[ref], config, embedders) if embedders else None
    df = validate_metrics(real, lambda ims: ex.extract(ims, f"degraded {dataset}"), images[deg], labels[deg],
                          n_boot=sc["bootstrap"]["n"], confidence=sc["bootstrap"]["confidence"],
                          seed=sc["bootstrap"].get("seed", 0), k=sc["prdc"]["k"], is_splits=1, text=text,
                          real_labels=labels[ref])
    df.insert(0, "dataset", dataset)
    write_parquet(df, out, metadata={**provenance(full_config_hash), "key_columns": ["dataset", "degradation",
                                                                                     "metric"]})
    _stats_html(df, f"Metric validation on {dataset}: Kendall tau between degradation level and metric "
                "(1 = every level ranked correctly)", html)
    if noise_floor_out is not None:
        from .seeding import derive_seed

        other = ex.extract(images[deg], f"real {dataset} (other half)")
        floor = noise_floor(real["features"], other["features"], points=sc["fd_inf"]["points"],
                            confidence=sc["bootstrap"]["confidence"],
                            rng=np.random.default_rng(derive_seed("noise_floor", sc["bootstrap"].get("seed", 0),
                                                                  dataset)))
        floor.insert(0, "dataset", dataset)
        write_parquet(floor, noise_floor_out, metadata={**provenance(full_config_hash),
                                                        "key_columns": ["dataset", "kind", "n"]})
        _stats_html(floor, f"Noise floor on {dataset}: FID of one real half against the other, per N, and FD-infinity",
                    noise_floor_html)


# ---------------------------------------------------------------------------------------------------------------
# the toy Diff2to3's paper tables (docs/diff2to3.md)

def stage_diff2to3_vae_run(config: dict[str, Any], source: str, seed: int, table: str | Path,
                           record: str | Path, threads: int = 1) -> None:
    """One Table 1 run: train the VAE with ``source`` features under training ``seed``, score the held-out assets."""
    from .recon3d.diff2to3.tables import vae_run

    spec = {k: v for k, v in config["diff2to3"]["vae"].items() if k in ("vae", "train")}
    df, rec = vae_run(spec, source, int(seed), threads)
    log.info("diff2to3 vae %s seed %s: %s", source, seed, rec)
    write_parquet(df, table, provenance(config_hash(config)))
    write_json(record, rec)


def _diff2to3_table(kind: str, build, tables: list[str | Path], config: dict[str, Any], full_config_hash: str,
                    out: str | Path, csv: str | Path) -> None:
    """Pool every run's per-asset rows into one Diff2to3 table (``build``: tables.vae_table or ablation_table, with
    the two-stage bootstrap over training seeds and held-out assets) as Parquet and CSV."""
    if not tables:
        raise ValueError(f"diff2to3 {kind} table: no runs to pool; add a diff2to3.{kind} section to the config "
                         f"(config/diff2to3.yaml)")
    per_asset = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True)
    boot = config.get("diff2to3", {}).get("bootstrap", {})
    df = build(per_asset, int(boot.get("n", 1000)), float(boot.get("confidence", 0.95)), int(config.get("seed", 0)))
    write_parquet(df, out, provenance(full_config_hash))
    write_bytes(csv, df.to_csv(index=False).encode())


def stage_diff2to3_vae_table(tables: list[str | Path], config: dict[str, Any], full_config_hash: str,
                             out: str | Path, csv: str | Path) -> None:
    """Table 1 (``diff2to3_vae``): the held-out scores per feature source, and the paired difference."""
    from .recon3d.diff2to3.tables import vae_table

    _diff2to3_table("vae", vae_table, tables, config, full_config_hash, out, csv)


def stage_diff2to3_ablation_run(config: dict[str, Any], exp: str, seed: int, table: str | Path,
                                record: str | Path, threads: int = 1) -> None:
    """One Table 3 run: train experiment ``exp``'s pipeline under training ``seed``, score its generations of the
    held-out solids."""
    from .recon3d.diff2to3.tables import ablation_run

    spec = {k: v for k, v in config["diff2to3"]["ablation"].items() if k != "experiments"}
    df, rec = ablation_run(spec, exp, int(seed), threads)
    log.info("diff2to3 ablation %s seed %s: %s", exp, seed, {k: v for k, v in rec.items() if not isinstance(v, list)})
    write_parquet(df, table, provenance(config_hash(config)))
    write_json(record, rec)


def stage_diff2to3_ablation_table(tables: list[str | Path], config: dict[str, Any], full_config_hash: str,
                                  out: str | Path, csv: str | Path) -> None:
    """Table 3 (``diff2to3_ablation``): the held-out generation scores per experiment, and the paired differences
    between experiments."""
    from .recon3d.diff2to3.tables import ablation_table

    _diff2to3_table("ablation", ablation_table, tables, config, full_config_hash, out, csv)
