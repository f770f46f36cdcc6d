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
