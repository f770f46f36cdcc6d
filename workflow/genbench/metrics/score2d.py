"""Scoring one generated cell against its data set's real features: the rows of the tidy metrics table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..layout import Cell
from ..seeding import derive_seed
from ..tables.keys import GEN2D_KEYS, GEN2D_PER_CLASS_KEYS
from .bootstrap import (
    bca_mean_interval,
    bootstrap_ci,
    debiased_row,
    interval_note,
    method_label,
)
from .context import CellContext, RealStatistics
from .fid import MetricInputError, frechet_distance
from .inception_score import inception_score
from .registry import cell_compute_plan
from .text_image import text_image_scores

KEY_COLUMNS = list(GEN2D_KEYS)  # the per-cell table's key columns (genbench.tables.keys)


def score_cell(real: dict[str, np.ndarray], gen: dict[str, np.ndarray], *, cell: dict[str, Any],
               metrics: list[str], is_splits: int, bootstrap: dict[str, Any],
               kid: dict[str, Any] | None = None,
               text_image: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] | None = None,
               text_image_names: dict[str, str] | None = None,
               dinov2: tuple[dict[str, np.ndarray], dict[str, np.ndarray], str] | None = None,
               prdc_k: int = 3, fd_inf: dict[str, Any] | None = None,
               real_statistics: RealStatistics | None = None) -> pd.DataFrame:
    """Rows (one per metric) with value, an interval and its method (``ci_method``); ``cell`` holds the key
    columns and cell facts. Each requested metric's rows come from the compute function its registry entry names
    (``genbench.metrics.registry``), called with one :class:`CellContext` for the cell, in the registry's order.
    ``text_image`` maps 'clip' / 'pick' to the (real, generated) embeddings of that embedder, whose name
    (``text_image_names``) goes into the rows' ``extractor`` column. Any row whose interval excludes its estimate
    gets a note saying so."""
    real_name = f"real {cell['dataset']}"
    gen_name = str(Cell.from_mapping(cell))  # the cell's text form: its name and its bootstrap seed key
    plan = cell_compute_plan(metrics)  # unknown or uncomputable names fail here, before any work
    ctx = CellContext(real, gen, cell=cell, real_name=real_name, gen_name=gen_name, n_boot=bootstrap["n"],
                      confidence=bootstrap["confidence"], bootstrap_seed=bootstrap["seed"], is_splits=is_splits,
                      kid=kid or {}, text_image=text_image or {}, text_image_names=text_image_names or {},
                      dinov2=dinov2, prdc_k=prdc_k, fd_inf=fd_inf or {},
                      real_statistics=real_statistics)
    rows = []
    for compute, wanted in plan:
        rows += compute(ctx, wanted)
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
    gen_name = str(Cell.from_mapping(cell))  # the cell's text form: its name and its bootstrap seed key
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
            row = debiased_row(value, reps, conf, n_boot)
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
