"""Scoring one generated cell against its data set's real features: the rows of the tidy metrics table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..seeding import derive_seed
from ..tables.keys import GEN2D_KEYS, GEN2D_PER_CLASS_KEYS
from .bootstrap import (
    bca_mean_interval,
    bootstrap_ci,
    debiased_percentile_interval,
    interval_note,
    method_label,
    resamples,
)
from .fid import MetricInputError, feature_statistics, frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .registry import display_name

KEY_COLUMNS = list(GEN2D_KEYS)  # the per-cell table's key columns (genbench.tables.keys)
NEW_METRICS = ("precision", "recall", "density", "coverage", "vendi", "cmmd", "fid_inf")


def _debiased(value: float, reps: np.ndarray, conf: float, n_boot: int, detail: str = "") -> dict[str, Any]:
    """value, debiased-percentile interval, the bias estimate and the method label of a row."""
    lo, hi, bias = debiased_percentile_interval(reps, value, conf)
    return dict(value=value, ci_low=lo, ci_high=hi, ci_bias=bias,
                ci_method=method_label("debiased-percentile", n_boot, conf, detail))


def _fd_row(fr: np.ndarray, fg: np.ndarray, metric: str, names: tuple[str, str], rng: np.random.Generator,
            n_boot: int, conf: float) -> tuple[dict[str, Any], np.ndarray, list]:
    """A Fréchet-distance row with its debiased bootstrap CI, plus the replicates and their index sets (reused by
    the scaled metrics)."""
    mu_r, s_r = feature_statistics(fr, names[0])
    mu_g, s_g = feature_statistics(fg, names[1])
    idx = resamples(rng, (len(fr), len(fg)), n_boot)
    reps = np.array([frechet_distance(fr[ir].mean(0), np.cov(fr[ir], rowvar=False), fg[ig].mean(0),
                                      np.cov(fg[ig], rowvar=False)) for ir, ig in idx])
    row = dict(metric=metric, n=len(fg), n_real=len(fr),
               **_debiased(frechet_distance(mu_r, s_r, mu_g, s_g), reps, conf, n_boot))
    return row, reps, idx


def _kid_rows(fr: np.ndarray, fg: np.ndarray, metric: str, names: tuple[str, str], kid: dict[str, Any] | None,
              **extra: Any) -> list[dict[str, Any]]:
    """The KID protocol's mean and std rows (``metric`` and ``metric_std``), with the subset size in the note."""
    kid = kid or {}
    subsets, requested = kid.get("subsets", 100), kid.get("subset_size", 1000)
    mean, std, m = kernel_inception_distance(fr, fg, subsets=subsets, subset_size=requested,
                                             small_sample=kid.get("small_sample", "error"), real_name=names[0],
                                             gen_name=names[1])
    note = f"{subsets} subsets of {m}" + (f" (shrunk from {requested})" if m < requested else "")
    sizes = dict(n=len(fg), n_real=len(fr), ci_low=np.nan, ci_high=np.nan, ci_method="none", **extra)
    whole = m == len(fr) == len(fg)  # every subset is a permutation of both whole sets: all rounds are equal
    if whole:
        std_row = dict(metric=f"{metric}_std", value=np.nan, note=(
            f"{note}: every subset is the whole set, so the std over subsets is 0 by construction and says nothing "
            f"about sampling; not shown"), **sizes)
    else:
        std_row = dict(metric=f"{metric}_std", value=std, note=(
            f"{note}: population std of the {subsets} subset values (subset-to-subset spread, not a CI of "
            f"{metric})"), **sizes)
    return [dict(metric=metric, value=mean, note=note, **sizes),
            std_row]


def text_image_scores(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], kind: str,
                      set_names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample CLIP Score (100 cos) or PickScore (exp(logit_scale) cos) of the real images with their prompts
    and of the generated images with the prompts of the items they were generated for."""
    from .text_image import clip_score_per_sample, pick_score_per_sample

    ids = np.asarray(real["item_id"]).astype(str).tolist()
    texts = real["text_emb"]
    if "skipped_text_emb" in real:  # real images that could not be decoded still have their prompts
        ids += np.asarray(real["skipped_item_id"]).astype(str).tolist()
        texts = np.concatenate([texts, real["skipped_text_emb"]])
    row_of = {i: k for k, i in enumerate(ids)}
    try:
        rows = np.array([row_of[i] for i in np.asarray(gen["item_id"]).astype(str).tolist()])
    except KeyError as exc:
        raise MetricInputError(f"{set_names[1]}: item {exc} is not an item of {set_names[0]}; text-image scores "
                               "need the prompts of the data set the cell was generated for") from None
    text_r, text_g = real["text_emb"], texts[rows]
    if kind == "clip":
        return (clip_score_per_sample(real["image_emb"], text_r, set_names[0]),
                clip_score_per_sample(gen["image_emb"], text_g, set_names[1]))
    scale = float(np.asarray(real["logit_scale"]))
    return (pick_score_per_sample(real["image_emb"], text_r, scale, set_names[0]),
            pick_score_per_sample(gen["image_emb"], text_g, scale, set_names[1]))


def score_cell(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], *, cell: dict[str, Any],
               metrics: list[str], is_splits: int, bootstrap: dict[str, Any],
               kid: dict[str, Any] | None = None,
               text_image: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None,
               text_image_names: dict[str, str] | None = None,
               dinov2: tuple[dict[str, np.ndarray], dict[str, np.ndarray], str] | None = None,
               prdc_k: int = 3, fd_inf: dict[str, Any] | None = None) -> pd.DataFrame:
    """Rows (one per metric) with value, an interval and its method (``ci_method``); ``cell`` holds the key
    columns and cell facts. ``text_image`` maps 'clip' / 'pick' to the (real, generated) embeddings of that
    embedder, whose name (``text_image_names``) goes into the rows' ``extractor`` column. Any row whose interval
    excludes its estimate gets a note saying so."""
    real_name = f"real {cell['dataset']}"
    gen_name = f"{cell['model']}/{cell['dataset']}/steps{cell['steps']}_cfg{cell['cfg']}/seed{cell['seed']}"
    n_boot, conf = bootstrap["n"], bootstrap["confidence"]
    rows = []
    text_image = text_image or {}

    def rng_for(metric: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed("bootstrap", bootstrap["seed"], gen_name, metric))

    wants = set(metrics)
    fid_value, fid_reps, fid_idx = None, np.empty(0), []
    if wants & {"fid", "csfid", "psfid"}:
        row, fid_reps, fid_idx = _fd_row(real["features"], gen["features"], "fid", (real_name, gen_name),
                                         rng_for("fid"), n_boot, conf)
        fid_value = row["value"]
        if "fid" in wants:
            rows.append(row)
    is_value, is_reps, is_idx = None, np.empty(0), []
    if wants & {"is", "csis", "psis"}:
        logits = gen.get("logits")
        if logits is None:
            raise MetricInputError(f"{gen_name}: the extractor gives no logits, so IS cannot be computed")
        is_value, std = inception_score(logits, splits=is_splits, set_name=gen_name)
        is_idx = resamples(rng_for("is"), (len(logits),), n_boot)
        is_reps = np.array([inception_score(logits[i], splits=is_splits, set_name=gen_name)[0] for (i,) in is_idx])
        if "is" in wants:
            rows.append(dict(metric="is", n=len(logits), n_real=0, **_debiased(is_value, is_reps, conf, n_boot)))
            rows.append(dict(metric="is_std", value=std, ci_low=np.nan, ci_high=np.nan, n=len(logits), n_real=0,
                             ci_method="none", note=f"population std over {is_splits} splits (not a CI of is)"))
    if "kid" in wants:
        rows += _kid_rows(real["features"], gen["features"], "kid", (real_name, gen_name), kid)
    if wants & {"fd_dinov2", "kd_dinov2"}:
        if dinov2 is None:
            raise MetricInputError(f"{gen_name}: fd_dinov2/kd_dinov2 need DINOv2 features (scoring.dinov2)")
        dr, dg, dname = dinov2[0]["features"], dinov2[1]["features"], dinov2[2]
        names = (f"{real_name} (DINOv2)", f"{gen_name} (DINOv2)")
        if "fd_dinov2" in wants:
            row = _fd_row(dr, dg, "fd_dinov2", names, rng_for("fd_dinov2"), n_boot, conf)[0]
            rows.append(dict(row, extractor=dname))
        if "kd_dinov2" in wants:
            rows += _kid_rows(dr, dg, "kd_dinov2", names, kid, extractor=dname)
    for role, score_name, prefix in (("clip", "clip_score", "cs"), ("pick", "pick_score", "ps")):
        scaled = [m for m in (f"{prefix}fid", f"{prefix}is") if m in wants]
        if score_name not in wants and not scaled:
            continue
        if role not in text_image:
            raise MetricInputError(f"{gen_name}: '{score_name}' needs the {role} embeddings (scoring.text_image)")
        per_real, per_gen = text_image_scores(*text_image[role], role, (real_name, gen_name))
        embedder = (text_image_names or {}).get(role, role)
        clamp = (lambda v: max(v, 0.0)) if role == "clip" else (lambda v: v)  # torchmetrics clamps CLIP's mean
        gen_score, real_score = clamp(float(per_gen.mean())), clamp(float(per_real.mean()))
        label = display_name(score_name)
        real_note = f"real images of {cell['dataset']}, same prompts: {label} {real_score:.4g}"
        if score_name in wants:  # BCa of the mean; clamping at 0 is monotone, so it maps the bounds
            lo, hi, how = bca_mean_interval(per_gen, n_boot, conf, rng_for(score_name))
            rows.append(dict(metric=score_name, value=gen_score, ci_low=clamp(lo), ci_high=clamp(hi), n=len(per_gen),
                             n_real=len(per_real), ci_method=method_label(how, n_boot, conf, "generated samples"),
                             note=real_note, extractor=embedder))
        if not real_score > 0 or not gen_score > 0:
            raise MetricInputError(f"{gen_name}: {label} of the generated ({gen_score:g}) or real ({real_score:g}) "
                                   f"images is not positive, so r = generated / real cannot scale FID or IS")
        ratio = gen_score / real_score
        # replicates: the FID (or IS) resamples of the generated items, applied to the per-sample scores too
        for m in scaled:
            if m.endswith("fid"):
                value = fid_value / ratio
                reps = np.array([fid_rep / (clamp(float(per_gen[ig].mean())) / clamp(float(per_real[ir].mean())))
                                 for fid_rep, (ir, ig) in zip(fid_reps, fid_idx, strict=True)])
                n_real = len(real["features"])
            else:
                value = is_value * ratio
                real_idx = resamples(rng_for(f"{m}-real"), (len(per_real),), n_boot)
                reps = np.array([is_rep * clamp(float(per_gen[i].mean())) / clamp(float(per_real[j].mean()))
                                 for is_rep, (i,), (j,) in zip(is_reps, is_idx, real_idx, strict=True)])
                n_real = len(per_real)
            rows.append(dict(metric=m, n=len(per_gen), n_real=n_real, **_debiased(value, reps, conf, n_boot),
                             note=f"r_{role} = {ratio:.4g} ({real_note})",
                             extractor=f"{cell.get('extractor', '?')} + {embedder}"))
    rows += _new_metric_rows(real, gen, wants, (real_name, gen_name), n_boot, conf, rng_for, text_image,
                             text_image_names or {}, prdc_k, fd_inf or {})
    df = pd.DataFrame(rows)
    df["note"] = df["note"].fillna("") if "note" in df.columns else ""
    if "ci_bias" not in df.columns:
        df["ci_bias"] = np.nan
    for i, r in df.iterrows():  # an interval that excludes its own estimate is never left unexplained
        extra = interval_note(r["value"], r["ci_low"], r["ci_high"], r["ci_bias"])
        if extra:
            df.at[i, "note"] = f"{r['note']}; {extra}" if r["note"] else extra
    for k, v in cell.items():
        df[k] = df[k].fillna(v) if k in df.columns else v  # a row's own value (e.g. its extractor) wins
    front = [c for c in KEY_COLUMNS if c in df.columns]
    return df[front + [c for c in df.columns if c not in front]]


def _new_metric_rows(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], wants: set[str],
                     names: tuple[str, str], n_boot: int, conf: float, rng_for: Any,
                     text_image: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
                     text_image_names: dict[str, str], prdc_k: int,
                     fd_inf: dict[str, Any]) -> list[dict[str, Any]]:
    """Precision/recall/density/coverage, Vendi, CMMD and FD∞ rows (docs/metrics.md has their formulas)."""
    from .cmmd import cmmd_bootstrap
    from .fd_infinity import fd_infinity
    from .fid import unit_rows
    from .prdc import per_sample_prdc
    from .vendi import vendi_score, vendi_weighted

    rows: list[dict[str, Any]] = []
    fr, fg = real["features"], gen["features"]
    sizes = dict(n=len(fg), n_real=len(fr))
    wanted_prdc = [m for m in ("precision", "recall", "density", "coverage") if m in wants]
    if wanted_prdc:
        per = per_sample_prdc(fr, fg, prdc_k, *names)
        for m in wanted_prdc:
            over = "generated" if m in ("precision", "density") else "real"
            other = "real" if over == "generated" else "generated"
            lo, hi, how = bca_mean_interval(per[m], n_boot, conf, rng_for(m))
            rows.append(dict(metric=m, value=float(per[m].mean()), ci_low=lo, ci_high=hi, **sizes,
                             ci_method=method_label(how, n_boot, conf, f"{over} samples, {other} k-NN balls fixed"),
                             note=f"k = {prdc_k}"))
    if "vendi" in wants:
        unit = unit_rows(fg, names[1])
        reps = np.array([vendi_weighted(unit, np.bincount(i, minlength=len(unit)))
                         for (i,) in resamples(rng_for("vendi"), (len(unit),), n_boot)])
        value = vendi_score(fg, names[1])
        rows.append(dict(metric="vendi", n=len(fg), n_real=0, **_debiased(value, reps, conf, n_boot),
                         note=f"cosine kernel on the features; real set: {vendi_score(fr, names[0]):.4g}"))
    if "cmmd" in wants:
        if "clip" not in text_image:
            raise MetricInputError(f"{names[1]}: 'cmmd' needs the clip embeddings (scoring.text_image.clip)")
        er, eg = text_image["clip"][0]["image_emb"], text_image["clip"][1]["image_emb"]
        idx = resamples(rng_for("cmmd"), (len(er), len(eg)), n_boot)
        value, reps = cmmd_bootstrap(er, eg, idx, real_name=names[0], gen_name=names[1])
        rows.append(dict(metric="cmmd", n=len(eg), n_real=len(er), **_debiased(value, reps, conf, n_boot),
                         extractor=text_image_names.get("clip", "clip"),
                         note="RBF kernel, sigma 10, scale 1000, unit-length image embeddings"))
    if "fid_inf" in wants:
        points, min_n = fd_inf.get("points", 15), fd_inf.get("min_n", 5000)
        note = ""
        if min_n >= len(fg):
            shrunk = max(2, len(fg) // 5)
            note, min_n = f"min_n shrunk from {min_n} to {shrunk} ({len(fg)} generated samples); ", shrunk
        r = fd_infinity(fr, fg, points=points, min_n=min_n, confidence=conf, rng=rng_for("fid_inf"),
                        real_name=names[0], gen_name=names[1])
        rows.append(dict(metric="fid_inf", value=r["value"], ci_low=r["ci_low"], ci_high=r["ci_high"], **sizes,
                         ci_method=f"ols-t, {len(r['ns'])} points, {conf:g}",
                         note=f"{note}FD_N = FD_inf + {r['slope']:.4g}/N, N = {r['ns'][0]}..{r['ns'][-1]}"))
    return rows


PER_CLASS_KEYS = list(GEN2D_PER_CLASS_KEYS)


def score_per_class(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], *, cell: dict[str, Any],
                    metrics: list[str], class_names: list[str] | None = None, bootstrap: dict[str, Any],
                    min_samples: int = 2,
                    text_image: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None,
                    text_image_names: dict[str, str] | None = None) -> pd.DataFrame:
    """Per class (the label the images were generated for): FID against the real images of that class, IS over
    that class's generated images (one split: a class has few images), and CLIP Score / PickScore of that class's
    generated images with their prompts. Classes with fewer than ``min_samples`` images on either side are skipped
    with a row per metric whose ``note`` says why (never a silent gap). Bootstrap CIs as for the cell, with
    ``bootstrap['n']`` resamples (0 disables them)."""
    gen_name = f"{cell['model']}/{cell['dataset']}/steps{cell['steps']}_cfg{cell['cfg']}/seed{cell['seed']}"
    n_boot, conf = bootstrap["n"], bootstrap["confidence"]
    lr, lg = np.asarray(real["label_id"]), np.asarray(gen["label_id"])
    per_sample = {}  # clip_score / pick_score of every generated image (in the cell's order)
    for role, m in (("clip", "clip_score"), ("pick", "pick_score")):
        if m in metrics and text_image and role in text_image:
            per_sample[m] = (text_image_scores(*text_image[role], role, (f"real {cell['dataset']}", gen_name))[1],
                             (text_image_names or {}).get(role, role))
    rows = []
    for c in sorted(set(lr.tolist()) | set(lg.tolist())):
        fr, fg = real["features"][lr == c], gen["features"][lg == c]
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        base = dict(label_id=int(c), class_name=name, n=len(fg), n_real=len(fr))

        def rng_for(metric: str, c=c) -> np.random.Generator:
            return np.random.default_rng(derive_seed("bootstrap-class", bootstrap["seed"], gen_name, metric, c))

        for metric in [m for m in metrics if m in ("fid", "is")]:
            need_real = metric == "fid"
            if len(fg) < min_samples or (need_real and len(fr) < min_samples):
                rows.append(dict(base, metric=metric, value=np.nan, ci_low=np.nan, ci_high=np.nan,
                                 ci_method="none", note=f"skipped: {len(fg)} generated / {len(fr)} real images of "
                                                        f"this class, at least {min_samples} needed"))
                continue
            if metric == "fid":
                value = frechet_distance(fr.mean(0), np.cov(fr, rowvar=False), fg.mean(0), np.cov(fg, rowvar=False))

                def stat(ir, ig, fr=fr, fg=fg):
                    a, b = fr[ir], fg[ig]
                    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))

                reps = bootstrap_ci(stat, (len(fr), len(fg)), n_boot, conf, rng_for("fid"))[2]
            else:
                logits = gen["logits"][lg == c]
                value = inception_score(logits, splits=1, set_name=f"{gen_name} class {c}")[0]
                reps = bootstrap_ci(lambda i, lgt=logits: inception_score(lgt[i], splits=1)[0], (len(logits),),
                                    n_boot, conf, rng_for("is"))[2]
            sizes = {} if need_real else {"n_real": 0}  # IS uses no real images (as in the cell table)
            row = _debiased(value, reps, conf, n_boot)
            rows.append(dict(base, metric=metric, **row, **sizes,
                             note=interval_note(value, row["ci_low"], row["ci_high"], row["ci_bias"])))
        for metric, (scores, embedder) in per_sample.items():
            sc = scores[lg == c]
            if len(sc) < min_samples:
                rows.append(dict(base, metric=metric, value=np.nan, ci_low=np.nan, ci_high=np.nan, ci_method="none",
                                 note=f"skipped: {len(sc)} generated images of this class, at least {min_samples} "
                                      "needed", extractor=embedder))
                continue
            clamp = max if metric == "clip_score" else (lambda v, _z: v)  # torchmetrics clamps CLIP's mean at 0
            lo, hi, how = bca_mean_interval(sc, n_boot, conf, rng_for(metric))
            lo, hi, value = clamp(lo, 0.0), clamp(hi, 0.0), clamp(float(sc.mean()), 0.0)
            rows.append(dict(base, metric=metric, value=value, ci_low=lo, ci_high=hi,
                             ci_method=method_label(how, n_boot, conf, "generated samples"),
                             note=interval_note(value, lo, hi), n_real=0, extractor=embedder))
    if not rows:
        raise MetricInputError(f"{gen_name}: no classes to score per class")
    df = pd.DataFrame(rows)
    for k, v in cell.items():
        df[k] = df[k].fillna(v) if k in df.columns else v
    front = [c for c in PER_CLASS_KEYS if c in df.columns]
    return df[front + [c for c in df.columns if c not in front]]
