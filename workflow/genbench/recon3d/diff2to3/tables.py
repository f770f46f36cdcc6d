"""The toy Diff2to3's paper tables. ``diff2to3_vae`` (Table 1): the 2to3-VAE's reconstruction of held-out assets
with reconstructive (the paper's FLUX features) vs semantic (TRELLIS's DINOv2) voxel features, per training seed;
the table pools the seeds with bootstrap intervals and the paired difference (docs/diff2to3.md, "Table 1 target").
``diff2to3_ablation`` (Table 3, Exp 1-4): the whole pipeline per (experiment, training seed), its generations from
held-out solids' conditioning images rendered at their held-out views (docs/diff2to3.md, "Table 3 target").
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import torch

from ...seeding import derive_seed, numpy_rng
from . import data as D
from . import vae as V

VAE_TRAIN_DEFAULTS: dict[str, Any] = {"assets": 20, "held_out": 6, "held_out_views": 2, "ae_steps": 200,
                                      "vae_steps": 90, "vae_batch": 2, "vae_lr": 3e-3}
VAE_METRICS = ("psnr", "ssim")
SOURCES = ("reconstructive", "semantic")  # Table 1's rows: "Ours" (2to3-VAE) and "TRELLIS"
ROW_LABEL = {"reconstructive": "2to3-VAE (reconstructive features)", "semantic": "TRELLIS-style (semantic features)"}


def vae_run(spec: dict[str, Any], source: str, seed: int, threads: int = 1) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train one VAE (feature ``source``, training ``seed``: the solids, the split, the camera offsets and the
    initialisation all follow it) and score it on the held-out assets: one row per held-out asset (psnr, ssim,
    recon, n_voxels) and a record of the run (losses, seconds)."""
    unknown = set(spec) - {"vae", "train"}
    if unknown:
        raise ValueError(f"diff2to3.vae: unknown keys {sorted(unknown)} (vae, train)")
    tr = {**VAE_TRAIN_DEFAULTS, **spec.get("train", {})}
    unknown = set(tr) - set(VAE_TRAIN_DEFAULTS)
    if unknown:
        raise ValueError(f"diff2to3.vae.train: unknown keys {sorted(unknown)} (known: {sorted(VAE_TRAIN_DEFAULTS)})")
    if source not in SOURCES:
        raise ValueError(f"diff2to3.vae: unknown feature source '{source}' ({', '.join(SOURCES)})")
    torch.set_num_threads(threads)
    cfg = V.VAEConfig.from_dict({**spec.get("vae", {}), "feature_source": source})
    ds = D.prepare_dataset(cfg, int(tr["assets"]), int(tr["held_out"]), seed, int(tr["held_out_views"]),
                           int(tr["ae_steps"]))
    torch.manual_seed(derive_seed(seed, "diff2to3", "vae_init") % 2**63)
    vae = V.SparseVAE(cfg)
    before = D.evaluate_vae(vae, ds.test, ds.test_ids)
    t0 = time.perf_counter()
    hist = D.train_vae(vae, ds.train, int(tr["vae_steps"]), int(tr["vae_batch"]), float(tr["vae_lr"]), seed)
    seconds = time.perf_counter() - t0
    rows = D.evaluate_vae(vae, ds.test, ds.test_ids)
    df = pd.DataFrame(rows).assign(source=source, seed=seed)
    df["psnr_init"] = [r["psnr"] for r in before]
    k = max(1, len(hist) // 10)
    record = {"source": source, "seed": seed, "prepare_s": ds.seconds, "train_s": seconds,
              "loss_first": float(np.mean([h["total"] for h in hist[:k]])),
              "loss_last": float(np.mean([h["total"] for h in hist[-k:]])),
              "train_assets": ds.train_ids, "test_assets": ds.test_ids}
    return df[["source", "seed", "asset", "psnr", "ssim", "recon", "psnr_init", "n_voxels"]], record


def vae_table(per_asset: pd.DataFrame, n_boot: int, confidence: float, seed: int) -> pd.DataFrame:
    """Table 1 from the per-asset rows of every (source, seed): per source and metric the mean over the
    (seed, held-out asset) items, its BCa interval (items resampled), the seeds' own means (their spread is the
    training-seed variation), and per metric the paired difference reconstructive - semantic over the same items
    (each seed's held-out assets are the same for both sources)."""
    rows = []
    for source, grp in per_asset.groupby("source", sort=False):
        for metric in VAE_METRICS:
            rows.append({"row": ROW_LABEL.get(source, source), "source": source, "metric": metric,
                         **_summary(grp[metric].to_numpy(np.float64), grp["seed"].to_numpy(), n_boot, confidence,
                                    numpy_rng(seed, "diff2to3_vae", source, metric), "held-out asset items")})
    if set(SOURCES) <= set(per_asset["source"]):
        wide = per_asset.pivot_table(index=["seed", "asset"], columns="source", values=list(VAE_METRICS))
        for metric in VAE_METRICS:
            pair = wide[metric].dropna()
            diff = pair["reconstructive"] - pair["semantic"]
            rows.append({"row": "difference (reconstructive - semantic), paired", "source": "difference",
                         "metric": metric,
                         **_summary(diff.to_numpy(np.float64), diff.index.get_level_values("seed").to_numpy(),
                                    n_boot, confidence, numpy_rng(seed, "diff2to3_vae", "diff", metric),
                                    "paired held-out asset items")})
    return pd.DataFrame(rows)


# ---- Table 3 (diff2to3_ablation): the paper's Exp 1-4, each a (VAE feature source, flow architecture) pair
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "exp1": {"source": "semantic", "flow": {"arch": "dit"}, "label": "Exp 1: semantic VAE, DiT, absolute"},
    "exp2": {"source": "reconstructive", "flow": {"arch": "dit"}, "label": "Exp 2: 2to3-VAE, DiT, absolute"},
    "exp3": {"source": "reconstructive", "flow": {"arch": "smdit", "pos_embed": "absolute"},
             "label": "Exp 3: 2to3-VAE, SMDiT, absolute"},
    "exp4": {"source": "reconstructive", "flow": {"arch": "smdit", "pos_embed": "marope"},
             "label": "Exp 4: 2to3-VAE, SMDiT, MARoPE"},
}
ABLATION_METRICS = ("psnr", "ssim", "voxel_iou")
# the paired differences the paper's text argues from: Exp 2 vs 1 (VAE alone), 3 vs 2 (SMDiT), 4 vs 3 (MARoPE)
ABLATION_PAIRS = (("exp2", "exp1"), ("exp3", "exp2"), ("exp4", "exp3"), ("exp4", "exp1"))
SAMPLE_DEFAULTS = {"steps": 12, "cfg": 3.0}


def ablation_run(spec: dict[str, Any], exp: str, seed: int, threads: int = 1) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train the pipeline of experiment ``exp`` under training ``seed`` (the solids, split, views and
    initialisations follow the seed, so the four experiments see the same solids for one seed) and generate from
    each held-out solid's conditioning image: one row per held-out asset with PSNR/SSIM of the generated Gaussians
    rendered at the asset's held-out views against its GT renders, and the structure's voxel IoU."""
    from .generate import voxel_iou
    from .pipeline import train_pipeline_data

    unknown = set(spec) - {"vae", "flow", "condition", "train", "sample"}
    if unknown:
        raise ValueError(f"diff2to3.ablation: unknown keys {sorted(unknown)} (vae, flow, condition, train, sample)")
    if exp not in EXPERIMENTS:
        raise ValueError(f"diff2to3.ablation: unknown experiment '{exp}' ({', '.join(EXPERIMENTS)})")
    sample = {**SAMPLE_DEFAULTS, **spec.get("sample", {})}
    if set(sample) - set(SAMPLE_DEFAULTS):
        raise ValueError(f"diff2to3.ablation.sample: unknown keys {sorted(set(sample) - set(SAMPLE_DEFAULTS))}")
    e = EXPERIMENTS[exp]
    torch.set_num_threads(threads)
    full = {"vae": {**spec.get("vae", {}), "feature_source": e["source"]},
            "flow": {**spec.get("flow", {}), **e["flow"]}, "condition": spec.get("condition", {}),
            "train": spec.get("train", {})}
    pipe, report, ds = train_pipeline_data(full, seed)
    rows = []
    t0 = time.perf_counter()
    for k, a in enumerate(ds.test):
        asset = ds.test_ids[k]
        g, coords = pipe.generate(ds.cond_test[k], derive_seed(seed, "diff2to3", "ablation", asset),
                                  int(sample["steps"]), float(sample["cfg"]))
        psnrs, ssims = [], []
        with torch.no_grad():
            for v in range(a.n_views, len(a.cameras)):
                pred = V.render_gaussians(g, a.cameras[v])
                psnrs.append(V.psnr(pred, a.images[v]))
                ssims.append(float(V.ssim(pred, a.images[v])))
        rows.append({"exp": exp, "seed": seed, "asset": asset, "psnr": float(np.mean(psnrs)),
                     "ssim": float(np.mean(ssims)), "voxel_iou": float(voxel_iou(coords, a.coords)),
                     "n_gaussians": len(g)})
    record = {**report, "exp": exp, "seed": seed, "generate_s": time.perf_counter() - t0}
    return pd.DataFrame(rows), record


def two_stage_interval(vals: np.ndarray, seeds: np.ndarray, n_boot: int, confidence: float,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of the mean under a two-stage (cluster) bootstrap: training seeds resampled with
    replacement, then each drawn seed's held-out items resampled within it. Items of one training run share its
    weights, so resampling items alone (as if independent) leaves the seed-to-seed variation out and is too narrow;
    with 3 seeds there are only 10 distinct seed draws, so this interval is wide, which is what 3 runs can say."""
    vals, seeds = np.asarray(vals, np.float64), np.asarray(seeds)
    if n_boot <= 0 or len(vals) == 0:
        return float("nan"), float("nan")
    groups = [vals[seeds == s] for s in np.unique(seeds)]
    reps = np.empty(n_boot)
    for b in range(n_boot):
        picked = rng.integers(0, len(groups), len(groups))
        reps[b] = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in (groups[i] for i in picked)]).mean()
    alpha = (1 - confidence) / 2
    return float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha))


def _summary(vals: np.ndarray, seeds: np.ndarray, n_boot: int, confidence: float, rng, what: str) -> dict[str, Any]:
    """A table row's numbers: the mean over (seed, held-out asset) items; ``ci_low``/``ci_high`` the two-stage
    interval (seeds, then assets within seed), ``items_ci_low``/``items_ci_high`` the BCa interval of the items
    alone (narrower: it ignores which run an item came from), and the per-seed means."""
    from ...metrics.bootstrap import bca_mean_interval, method_label

    vals, seeds = np.asarray(vals, np.float64), np.asarray(seeds)
    per_seed = pd.Series(vals).groupby(seeds).mean()
    lo, hi = two_stage_interval(vals, seeds, n_boot, confidence, rng)
    ilo, ihi, how = bca_mean_interval(vals, n_boot, confidence, rng)
    return {"value": float(vals.mean()), "ci_low": lo, "ci_high": hi,
            "ci_method": method_label("percentile, two-stage bootstrap", n_boot, confidence,
                                      f"training seeds, then {what} within each seed"),
            "items_ci_low": ilo, "items_ci_high": ihi, "items_ci_method": method_label(how, n_boot, confidence, what),
            "n": len(vals), "n_seeds": int(per_seed.size),
            "seed_means": ", ".join(f"{v:.4g}" for v in per_seed.to_numpy()),
            "seed_sd": float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")}


def ablation_table(per_asset: pd.DataFrame, n_boot: int, confidence: float, seed: int) -> pd.DataFrame:
    """Table 3 from the per-asset rows of every (experiment, seed): per experiment and metric the mean over the
    (seed, held-out asset) items with its BCa interval and the per-seed means; then the paired differences of
    :data:`ABLATION_PAIRS` over the same items (one seed's held-out solids are the same in every experiment)."""
    rows = []
    for exp, grp in per_asset.groupby("exp", sort=True):
        for metric in ABLATION_METRICS:
            vals = grp[metric].to_numpy(np.float64)
            rows.append({"row": EXPERIMENTS.get(exp, {}).get("label", exp), "exp": exp, "metric": metric,
                         **_summary(vals, grp["seed"].to_numpy(), n_boot, confidence,
                                    numpy_rng(seed, "diff2to3_ablation", exp, metric), "held-out asset items")})
    wide = per_asset.pivot_table(index=["seed", "asset"], columns="exp", values=list(ABLATION_METRICS))
    for a, b in ABLATION_PAIRS:
        if a not in set(per_asset["exp"]) or b not in set(per_asset["exp"]):
            continue
        for metric in ABLATION_METRICS:
            pair = wide[metric][[a, b]].dropna()
            diff = pair[a] - pair[b]
            rows.append({"row": f"difference {a} - {b}, paired", "exp": f"{a}-{b}", "metric": metric,
                         **_summary(diff.to_numpy(np.float64), diff.index.get_level_values("seed").to_numpy(),
                                    n_boot, confidence, numpy_rng(seed, "diff2to3_ablation", a, b, metric),
                                    "paired held-out asset items")})
    return pd.DataFrame(rows)
