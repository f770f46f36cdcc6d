"""The toy Diff2to3's paper tables. ``diff2to3_vae`` (Table 1): the 2to3-VAE's reconstruction of held-out assets
with reconstructive (the paper's FLUX features) vs semantic (TRELLIS's DINOv2) voxel features, per training seed;
the table pools the seeds with bootstrap intervals and the paired difference (docs/diff2to3.md, "Table 1 target").
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
    from ...metrics.bootstrap import bca_mean_interval, method_label

    rows = []
    for source, grp in per_asset.groupby("source", sort=False):
        for metric in VAE_METRICS:
            vals = grp[metric].to_numpy(np.float64)
            lo, hi, how = bca_mean_interval(vals, n_boot, confidence, numpy_rng(seed, "diff2to3_vae", source, metric))
            per_seed = grp.groupby("seed")[metric].mean()
            rows.append({"row": ROW_LABEL.get(source, source), "source": source, "metric": metric,
                         "value": float(vals.mean()), "ci_low": lo, "ci_high": hi,
                         "ci_method": method_label(how, n_boot, confidence, "seed x held-out asset items"),
                         "n": len(vals), "n_seeds": int(per_seed.size),
                         "seed_means": ", ".join(f"{v:.4g}" for v in per_seed.to_numpy()),
                         "seed_sd": float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")})
    if set(SOURCES) <= set(per_asset["source"]):
        wide = per_asset.pivot_table(index=["seed", "asset"], columns="source", values=list(VAE_METRICS))
        for metric in VAE_METRICS:
            pair = wide[metric].dropna()
            diff = (pair["reconstructive"] - pair["semantic"]).to_numpy(np.float64)
            lo, hi, how = bca_mean_interval(diff, n_boot, confidence, numpy_rng(seed, "diff2to3_vae", "diff", metric))
            per_seed = (pair["reconstructive"] - pair["semantic"]).groupby(level="seed").mean()
            rows.append({"row": "difference (reconstructive - semantic), paired", "source": "difference",
                         "metric": metric, "value": float(diff.mean()), "ci_low": lo, "ci_high": hi,
                         "ci_method": method_label(how, n_boot, confidence, "paired seed x held-out asset items"),
                         "n": len(diff), "n_seeds": int(per_seed.size),
                         "seed_means": ", ".join(f"{v:.4g}" for v in per_seed.to_numpy()),
                         "seed_sd": float(per_seed.std(ddof=1)) if per_seed.size > 1 else float("nan")})
    return pd.DataFrame(rows)
