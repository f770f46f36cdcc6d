"""Is the default config's OOD-FID inversion (one-step models' FID lower on mw_v2 / mw_relaionet than on mw_val) a
property of the image sets or of the stand-in extractor? docs/metrics.md, "OOD-FID inversion", quotes its output
(the default variants: 152 s on 2 cores shared at load 6-7).

    .venv/bin/python benchmarks/ood_fid.py --results results [--config config/config.yaml]
        [--variants standin,block1,block2,block3,block4,pixels,params,seed1] [--validate] [--csv ood_fid.csv]

It needs a default-config run's real sets (``results/data/{mw_val,mw_v2,mw_relaionet,mw_train}``, and
``mw_web`` for the ``web`` variant), generated cells (``results/gen2d``) and the stand-in's checkpoint
(``results/extractors/mw_classifier``); it trains nothing but the classifier variants it is asked for (each as long
as the pipeline's own classifier training: 1.5-5 min on one core). Feature maps (``--variants``):

- ``standin``: the run's own stand-in classifier (64-d pooled features: what the tables used);
- ``seed1``: the same recipe trained again with another seed (an independent stand-in);
- ``augment``, ``invert``, ``noise``: the recipe plus ``train.augment`` (genbench.features.classifier.augment_batch;
  ``VARIANTS`` gives the specs): candidate fixes;
- ``web``, ``web+noise``: the recipe trained on mw_train + mw_web (the LAION-style images with true labels the tiny
  CLIP also sees; with pixel-noise jitter): a stand-in that has seen more than one style, as a real Inception has;
- ``block1`` .. ``block5``: the run's stand-in, its activations after that convolution block, averaged over
  positions (block5 is the 64-d feature the tables use; block1 the 32-d first block: low-level, colour and edge
  statistics): where in the network the inversion appears;
- ``pixels``: the images box-downsampled to 8 x 8 x 3, in [0, 1] (192-d): no learning at all;
- ``params``: the generating parameters the v2 shift changes, estimated from each image (background brightness and
  saturation from the border pixels, shape brightness, saturation, area and centroid offset from the pixels that
  differ from the background): a feature map that knows what the shift is.

Per feature map: the spread tr(Σ) of every set and, for the classifiers, their accuracy on it; the real-vs-real
Fréchet distances (the two class-balanced halves of mw_val: the noise floor; mw_val vs mw_v2 and vs mw_relaionet:
the true shifts); per generated cell, FD against each real set; and the same for "generators" whose truth is known
by construction: 400 mw_train images (mw_val's distribution: a perfect generator) as they are, blurred (sigma 2 px)
and with Gaussian pixel noise (sigma 20): every one of their parameters is mw_val's, so any map that puts them
closer to mw_v2 or mw_relaionet than to mw_val is wrong. The N effect: mw_relaionet has fewer images than mw_val
and FD's bias grows as N falls, so ``fd_val@N_rel`` is the mean FD against ``reps`` random mw_val subsets of
mw_relaionet's size. ``inverted`` flags a set that measures closer to an OOD set than to mw_val. With
``--validate`` each classifier also runs the known-answer metric validation (20 resamples).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from genbench.data.manifest import load_images, read_manifest  # noqa: E402
from genbench.metrics.fid import frechet_distance  # noqa: E402
from genbench.metrics.validation import DEGRADATIONS  # noqa: E402

REAL = ("mw_val", "mw_v2", "mw_relaionet")
# classifier variants: train-spec overrides, and extra training sets
VARIANTS: dict[str, tuple[dict, list[str]]] = {
    "seed1": ({"seed": 1}, []),
    "augment": ({"augment": {"brightness": 0.3, "contrast": 0.4, "saturation": 0.5, "scale": [0.7, 1.1],
                             "shift": 0.1}}, []),
    "invert": ({"augment": {"invert": 0.5}}, []),
    "noise": ({"augment": {"noise": 0.25}}, []),
    "web": ({}, ["mw_web"]),
    "web+noise": ({"augment": {"noise": 0.25}}, ["mw_web"]),
}
KNOWN = ("train", "train+blur2", "train+noise20")


def load_set(results: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    path = results / "data" / dataset / "manifest.parquet"
    manifest = read_manifest(path)
    return load_images(manifest, path.parent), manifest["label_id"].to_numpy(np.int64)


def load_cells(results: Path) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    """(model, data set, setting) -> (images, the labels they were generated for), seed 0."""
    cells = {}
    for shard_dir in sorted((results / "gen2d").glob("*/*/*/seed0")):
        model, dataset, setting = shard_dir.parts[-4:-1]
        shards = [np.load(p) for p in sorted(shard_dir.glob("shard-*.npz"))]
        cells[(model, dataset, setting)] = (np.concatenate([z["images"] for z in shards]),
                                            np.concatenate([z["label_id"] for z in shards]))
    return cells


def pixel_features(images: np.ndarray) -> np.ndarray:
    n, h, w, c = images.shape
    return images.reshape(n, 8, h // 8, 8, w // 8, c).mean((2, 4)).reshape(n, -1).astype(np.float64) / 255.0


def param_features(images: np.ndarray) -> np.ndarray:
    """Estimated generating parameters per image: background V and S (border pixels), shape V and S, shape area
    fraction and |centroid - centre| in x and y (shape = pixels > 60 away, in RGB L2, from the border's mean)."""
    x = images.astype(np.float64)
    n, h, w, _ = x.shape
    border = np.concatenate([x[:, 0], x[:, -1], x[:, 1:-1, 0], x[:, 1:-1, -1]], axis=1)
    bg = border.mean(1)
    fg = np.linalg.norm(x - bg[:, None, None, :], axis=-1) > 60.0
    area = fg.mean((1, 2))
    weight = np.maximum(fg.sum((1, 2)), 1)[:, None]
    fg_colour = (x * fg[..., None]).sum((1, 2)) / weight
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    cy, cx = (fg * yy).sum((1, 2)) / weight[:, 0], (fg * xx).sum((1, 2)) / weight[:, 0]

    def v_s(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hi, lo = rgb.max(1), rgb.min(1)
        return hi / 255.0, np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-9), 0.0)

    (bv, bs), (fv, fs) = v_s(bg), v_s(fg_colour)
    return np.column_stack([bv, bs, fv, fs, area, np.abs(cx - 0.5), np.abs(cy - 0.5)])


def fd(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def classifier_map(results: Path, config: dict, variant: str):
    """The extractor of a classifier variant: the run's own, or one trained here."""
    from genbench.features.classifier import train_classifier
    from genbench.features.registry import MiniworldClassifierExtractor, load_extractor

    spec = config["extractors"]["mw_classifier"]
    if variant == "standin":
        return load_extractor("mw_classifier", spec, results / "extractors" / "mw_classifier" / "model.safetensors")
    overrides, extra = VARIANTS[variant]
    train = {"seed": config.get("seed", 0), **spec["train"], **overrides}
    images, labels = load_set(results, train["dataset"])
    for d in extra:
        more, more_labels = load_set(results, d)
        images, labels = np.concatenate([images, more]), np.concatenate([labels, more_labels])
    t0 = time.time()
    net, stats = train_classifier(images, labels, int(labels.max()) + 1, train, progress=False)
    print(f"  trained {variant} in {time.time() - t0:.0f} s: {stats}", flush=True)
    return MiniworldClassifierExtractor("mw_classifier", net.eval())


def block_map(results: Path, config: dict, block: int):
    """Position-averaged activations of the run's stand-in after convolution block ``block`` (1-based)."""
    import torch

    from genbench.features.classifier import MiniClassifier

    ex = classifier_map(results, config, "standin")
    net = ex.net

    def fmap(images: np.ndarray) -> np.ndarray:
        x = ex.runtime.inputs(MiniClassifier.preprocess(images).to(net.head.weight.dtype))
        with torch.no_grad():
            return net.body[:block](x).mean(dim=(2, 3)).double().cpu().numpy()
    return fmap


def known_generators(results: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """400 mw_train images as they are, blurred and noisy: generators with mw_val's parameters by construction."""
    from genbench.metrics.validation import degrade

    images, labels = load_set(results, "mw_train")
    rng = np.random.default_rng(0)
    pick = rng.choice(len(images), 400, replace=False)
    images, labels = images[pick], labels[pick]
    noisy = np.clip(np.rint(images + rng.normal(0.0, 20.0, images.shape)), 0, 255).astype(np.uint8)
    return dict(zip(KNOWN, (images, degrade(images, labels, "blur", 2.0, rng), noisy), strict=True)), labels


def run(results: Path, config: dict, variants: list[str], reps: int, validate: bool) -> tuple[pd.DataFrame, ...]:
    import torch

    from genbench.metrics.validation import split_halves, validate_metrics

    torch.set_num_threads(1)
    real = {d: load_set(results, d) for d in REAL}
    sets = {("real", d, ""): v for d, v in real.items()}
    for (model, dataset, setting), (ims, labels) in load_cells(results).items():
        sets[(model, dataset, setting)] = (ims, labels)
    known, known_labels = known_generators(results)
    sets.update({("known", name, ""): (ims, known_labels) for name, ims in known.items()})
    rng = np.random.default_rng(0)
    n_rel = len(real["mw_relaionet"][0])
    subsets = [rng.choice(len(real["mw_val"][0]), n_rel, replace=False) for _ in range(reps)]
    ref, other = split_halves(real["mw_val"][1])
    real_rows, set_rows, val_rows = [], [], []
    for variant in variants:
        t0 = time.time()
        ex = None
        if variant == "pixels":
            fmap = pixel_features
        elif variant.startswith("block"):
            fmap = block_map(results, config, int(variant.removeprefix("block")))
        elif variant == "params":
            fmap = param_features
        else:
            ex = classifier_map(results, config, variant)

            def fmap(ims, ex=ex, name=variant):
                return ex.extract(ims, name)["features"]
        feats = {d: fmap(ims) for d, (ims, _) in real.items()}
        val = feats["mw_val"]
        real_rows.append({"features": variant, "val_half_vs_half": fd(val[ref], val[other]),
                          "val_vs_v2": fd(val, feats["mw_v2"]), "val_vs_relaionet": fd(val, feats["mw_relaionet"]),
                          "val@N_rel_vs_relaionet": float(np.mean([fd(val[s], feats["mw_relaionet"])
                                                                   for s in subsets]))})
        for (model, dataset, setting), (ims, labels) in sets.items():
            g = feats[dataset] if model == "real" else fmap(ims)
            row = {"features": variant, "set": model, "for": dataset, "setting": setting, "n": len(ims),
                   "trace": float(np.trace(np.cov(g.T))),
                   "accuracy": (float(np.mean(np.argmax(ex.extract(ims, variant)["logits"], 1) == labels))
                                if ex is not None and labels is not None else np.nan)}
            if model != "real":
                row.update({f"fd_{d.removeprefix('mw_')}": fd(g, f) for d, f in feats.items()})
                row["fd_val@N_rel"] = float(np.mean([fd(g, val[s]) for s in subsets]))
                row["inverted"] = bool(row["fd_v2"] < row["fd_val"] or row["fd_relaionet"] < row["fd_val@N_rel"])
            set_rows.append(row)
        if validate and ex is not None:
            images, labels = real["mw_val"]
            df = validate_metrics(ex.extract(images[ref], "ref"), lambda ims, ex=ex: ex.extract(ims, "deg"),
                                  images[other], labels[other], n_boot=20, confidence=0.95, seed=0,
                                  k=config["scoring"]["prdc"]["k"],
                                  degradations={k: v for k, v in DEGRADATIONS.items() if k != "caption_mismatch"})
            val_rows.append(df[df["metric"].isin(["fid", "kid", "label_accuracy"])].assign(features=variant))
        print(f"  {variant}: {time.time() - t0:.0f} s", flush=True)
    return (pd.DataFrame(real_rows), pd.DataFrame(set_rows),
            pd.concat(val_rows, ignore_index=True) if val_rows else pd.DataFrame())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=ROOT / "results")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--variants", default="standin,pixels,params,seed1",
                    help=f"comma-separated; classifiers: standin, {', '.join(VARIANTS)}; maps: pixels, params, "
                    "block1..block5")
    ap.add_argument("--reps", type=int, default=10, help="random mw_val subsets of mw_relaionet's size")
    ap.add_argument("--validate", action="store_true", help="also run the metric validation per classifier")
    ap.add_argument("--csv", type=Path, default=None, help="write the per-set table here")
    args = ap.parse_args()
    config = yaml.safe_load(args.config.read_text())
    t0 = time.time()
    real, sets, val = run(args.results, config, args.variants.split(","), args.reps, args.validate)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print("\nreal vs real FD\n", real.round(4).to_string(index=False))
    spread = sets[sets["set"] == "real"]
    print("\nspread tr(cov) and classifier accuracy per real set\n",
          spread.pivot(index="features", columns="for", values=["trace", "accuracy"]).round(3).to_string())
    keep = sets[(sets["set"] == "known") | sets["setting"].isin(["steps1_cfg2", "steps8_cfg4", "steps1_cfg4"])]
    print("\ngenerated and known sets\n", keep.drop(columns="n").round(3).to_string(index=False))
    gen = sets[~sets["set"].isin(["real", "known"])]
    print("\ngenerated cells inverted per feature map:", gen.groupby("features")["inverted"].agg(["sum", "count"])
          .to_dict("index"))
    if len(val):
        print("\nmetric validation (tau)\n", val.pivot_table(index=["degradation", "metric"], columns="features",
                                                             values="tau").round(2).to_string())
    if args.csv:
        sets.to_csv(args.csv, index=False)
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
