"""Scoring one generated cell against its data set's real features: the rows of the tidy metrics table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..seeding import derive_seed
from .bootstrap import bootstrap_ci
from .fid import MetricInputError, feature_statistics, frechet_distance
from .inception_score import inception_score
from .kid import kernel_inception_distance

KEY_COLUMNS = ["model", "dataset", "steps", "cfg", "seed", "metric"]


def score_cell(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], *, cell: dict[str, Any],
               metrics: list[str], is_splits: int, bootstrap: dict[str, Any],
               kid: dict[str, Any] | None = None) -> pd.DataFrame:
    """Rows (one per metric) with value and a bootstrap CI; ``cell`` holds the key columns and cell facts."""
    real_name = f"real {cell['dataset']}"
    gen_name = f"{cell['model']}/{cell['dataset']}/steps{cell['steps']}_cfg{cell['cfg']}/seed{cell['seed']}"
    n_boot, conf = bootstrap["n"], bootstrap["confidence"]
    rows = []
    ci_method = f"bootstrap percentile, {n_boot} resamples, {conf:g}" if n_boot else "none (bootstrap disabled)"

    def rng_for(metric: str) -> np.random.Generator:
        return np.random.default_rng(derive_seed("bootstrap", bootstrap["seed"], gen_name, metric))

    if "fid" in metrics:
        fr, fg = real["features"], gen["features"]
        mu_r, s_r = feature_statistics(fr, real_name)
        mu_g, s_g = feature_statistics(fg, gen_name)
        value = frechet_distance(mu_r, s_r, mu_g, s_g)

        def fid_stat(ir: np.ndarray, ig: np.ndarray) -> float:
            a, b = fr[ir], fg[ig]
            return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))

        lo, hi, _ = bootstrap_ci(fid_stat, (len(fr), len(fg)), n_boot, conf, rng_for("fid"))
        rows.append(dict(metric="fid", value=value, ci_low=lo, ci_high=hi, n=len(fg), n_real=len(fr),
                         ci_method=ci_method))
    if "is" in metrics:
        logits = gen.get("logits")
        if logits is None:
            raise MetricInputError(f"{gen_name}: the extractor gives no logits, so IS cannot be computed")
        mean, std = inception_score(logits, splits=is_splits, set_name=gen_name)
        lo, hi, reps = bootstrap_ci(lambda i: inception_score(logits[i], splits=is_splits, set_name=gen_name)[0],
                                    (len(logits),), n_boot, conf, rng_for("is"))
        rows.append(dict(metric="is", value=mean, ci_low=lo, ci_high=hi, n=len(logits), n_real=0,
                         ci_method=ci_method))
        rows.append(dict(metric="is_std", value=std, ci_low=np.nan, ci_high=np.nan, n=len(logits), n_real=0,
                         ci_method=f"none (population std over {is_splits} splits)"))
    if "kid" in metrics:
        kid = kid or {}
        subsets, requested = kid.get("subsets", 100), kid.get("subset_size", 1000)
        mean, std, m = kernel_inception_distance(
            real["features"], gen["features"], subsets=subsets, subset_size=requested,
            small_sample=kid.get("small_sample", "error"), real_name=real_name, gen_name=gen_name)
        note = f"{subsets} subsets of {m}" + (f" (shrunk from {requested})" if m < requested else "")
        sizes = dict(n=len(gen["features"]), n_real=len(real["features"]), ci_low=np.nan, ci_high=np.nan, note=note)
        rows.append(dict(metric="kid", value=mean, ci_method=f"none (population std over {subsets} subsets)", **sizes))
        rows.append(dict(metric="kid_std", value=std, ci_method="none (spread of kid)", **sizes))
    df = pd.DataFrame(rows)
    df["note"] = df["note"].fillna("") if "note" in df.columns else ""
    for k, v in cell.items():
        df[k] = v
    front = [c for c in KEY_COLUMNS if c in df.columns]
    return df[front + [c for c in df.columns if c not in front]]


PER_CLASS_KEYS = ["model", "dataset", "steps", "cfg", "seed", "label_id", "metric"]


def score_per_class(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], *, cell: dict[str, Any],
                    metrics: list[str], class_names: list[str] | None = None, bootstrap: dict[str, Any],
                    min_samples: int = 2) -> pd.DataFrame:
    """Per class (the label the images were generated for): FID against the real images of that class, and IS
    over that class's generated images (one split: a class has few images). Classes with fewer than
    ``min_samples`` images on either side are skipped with a row per metric whose ``note`` says why (never a
    silent gap). Bootstrap CIs as for the cell, with ``bootstrap['n']`` resamples (0 disables them)."""
    gen_name = f"{cell['model']}/{cell['dataset']}/steps{cell['steps']}_cfg{cell['cfg']}/seed{cell['seed']}"
    n_boot, conf = bootstrap["n"], bootstrap["confidence"]
    ci_method = f"bootstrap percentile, {n_boot} resamples, {conf:g}" if n_boot else "none (bootstrap disabled)"
    lr, lg = np.asarray(real["label_id"]), np.asarray(gen["label_id"])
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

                lo, hi, _ = bootstrap_ci(stat, (len(fr), len(fg)), n_boot, conf, rng_for("fid"))
            else:
                logits = gen["logits"][lg == c]
                value = inception_score(logits, splits=1, set_name=f"{gen_name} class {c}")[0]
                lo, hi, _ = bootstrap_ci(lambda i, lgt=logits: inception_score(lgt[i], splits=1)[0], (len(logits),),
                                         n_boot, conf, rng_for("is"))
            sizes = {} if need_real else {"n_real": 0}  # IS uses no real images (as in the cell table)
            rows.append(dict(base, metric=metric, value=value, ci_low=lo, ci_high=hi, ci_method=ci_method, note="",
                             **sizes))
    if not rows:
        raise MetricInputError(f"{gen_name}: no classes to score per class")
    df = pd.DataFrame(rows)
    for k, v in cell.items():
        df[k] = v
    front = [c for c in PER_CLASS_KEYS if c in df.columns]
    return df[front + [c for c in df.columns if c not in front]]
