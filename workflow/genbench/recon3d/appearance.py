"""Appearance metrics of reconstructions (the Diff2to3 protocol): render the prediction and the ground truth from
the same cameras and compare the images.

The prediction is placed in the GT's normalised frame by the corrected protocol's alignment (the matrix stored per
item in the score table), so geometry and appearance are judged in the same pose; the GT's renders are the ones
made at preparation (``views/*.png``, cameras in ``transforms.json``), and the prediction is rendered with the same
renderer (genbench.recon3d.render) from those cameras. Both are composited on white.

Per item (mean over views): PSNR (RGB in [0, 1]), SSIM (scikit-image: Gaussian window sigma 1.5, K = 0.01 / 0.03,
averaged over the valid region as Wang et al. 2004's reference code, channel-averaged), silhouette IoU
(alpha >= 0.5), LPIPS, and the CLIP score of the renders against the input view, 100 * cos(CLIP(render),
CLIP(input)), through the shared text-image embedder registry. Per (data set, model): FD
and KD between the features of all prediction renders and all GT renders, through the shared feature-extractor
registry (Inception, DINOv2; the mini-world's stand-ins). LPIPS (v0.1, AlexNet trunk) through the ``lpips``
package: its bundled linear calibration weights on a trunk loaded from a local torchvision AlexNet state dict
(``lpips.backbone``: a weights spec), or, in the mini-world where no trunk weights can be fetched, a seeded random
trunk (``backbone: random``; a stand-in, like the mini-world's random DINOv2: the number is not LPIPS as published).

Predictions with no mesh (points) have no surface to render: recorded as skipped with the reason. Gaussian
predictions whose model wrote its Gaussians (``pred_gaussians.ply``) are rendered by the 3DGS renderer
(genbench.recon3d.gaussians) after the same alignment, when ``gaussians: true`` (off by default: the dense CPU
renderer costs ~20 s per mini-world item at 8 views); otherwise recorded as skipped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import trimesh

from .render import View, render

log = logging.getLogger(__name__)


def views_from(transforms: dict[str, Any]) -> list[View]:
    return [View(float(f["yaw"]), float(f["pitch"]), float(f["radius"]), float(f["fov"]))
            for f in transforms["frames"]]


def on_white(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 -> RGB float in [0, 1] composited over white."""
    x = rgba.astype(np.float64) / 255.0
    return x[..., :3] * x[..., 3:4] + (1.0 - x[..., 3:4])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def image_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean over views of PSNR, SSIM and silhouette IoU; ``pred``/``gt``: (V, H, W, 4) uint8."""
    p, s, iou = [], [], []
    for a, b in zip(pred, gt, strict=True):
        wa, wb = on_white(a), on_white(b)
        p.append(psnr(wa, wb))
        s.append(ssim(wa, wb))
        ma, mb = a[..., 3] >= 128, b[..., 3] >= 128
        union = (ma | mb).sum()
        iou.append(float((ma & mb).sum() / union) if union else float("nan"))
    return {"psnr": float(np.mean(p)), "ssim": float(np.mean(s)), "silhouette_iou": float(np.nanmean(iou))}


# torchvision AlexNet `features` indices held by each of lpips' five trunk slices
ALEX_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))


def load_lpips(spec: dict[str, Any], seed: int = 0):
    """lpips.LPIPS (AlexNet, v0.1 linear weights shipped with the package) with its trunk from ``spec['backbone']``:
    'random' (seeded) or a weights spec of a torchvision AlexNet state dict (local files only)."""
    import lpips
    import torch

    from ..weights import WeightSpec, resolve

    if spec.get("net", "alex") != "alex":
        raise ValueError(f"recon3d.appearance.lpips.net: only 'alex' is supported, got {spec.get('net')!r}")
    backbone = spec.get("backbone", "random")
    path = None if backbone == "random" else resolve(WeightSpec.from_config("recon3d.appearance.lpips.backbone",
                                                                            backbone))
    import warnings

    torch.manual_seed(seed)
    with warnings.catch_warnings():  # lpips 0.1.4 calls torchvision's deprecated `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    if path is not None:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        mapped = {}
        for key, value in state.items():
            if not key.startswith("features."):
                continue
            idx, rest = key.split(".", 2)[1:]
            slot = next(k for k, (a, b) in enumerate(ALEX_SLICES) if a <= int(idx) < b)
            mapped[f"net.slice{slot + 1}.{idx}.{rest}"] = value
        expected = {k for k in model.state_dict() if k.startswith("net.")}
        if set(mapped) != expected:
            raise ValueError(f"recon3d.appearance.lpips.backbone: {path} is not a torchvision AlexNet state dict "
                             f"(missing {sorted(expected - set(mapped))[:4]}, unexpected "
                             f"{sorted(set(mapped) - expected)[:4]})")
        model.load_state_dict(mapped, strict=False)
    return model.eval()


def lpips_distance(model, pred: np.ndarray, gt: np.ndarray, runtime: Any | None = None) -> float:
    """Mean over views of LPIPS between RGBA renders composited on white, scaled to [-1, 1] as lpips expects;
    ``runtime`` (genbench.runtime.Runtime): the precision context of the forward pass (fp32 = TF32 off)."""
    import contextlib

    import torch

    device = next(model.parameters()).device  # the inputs follow the model (genbench.runtime placed it)

    def t(x: np.ndarray) -> torch.Tensor:
        return (torch.from_numpy(np.stack([on_white(v) for v in x])).permute(0, 3, 1, 2).float() * 2 - 1).to(device)

    with torch.no_grad(), (runtime.compute() if runtime is not None else contextlib.nullcontext()):
        return float(model(t(pred), t(gt)).mean())


def _read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGBA"))


def resize_rgb(images: np.ndarray, size: int | None) -> np.ndarray:
    """(N, H, W, 4|3) uint8 -> (N, size, size, 3) uint8 on white (PIL box filter), or native size when None."""
    from PIL import Image

    out = []
    for im in images:
        rgb = np.clip(np.round(on_white(im) * 255), 0, 255).astype(np.uint8) if im.shape[-1] == 4 else im
        if size and rgb.shape[0] != size:
            rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BOX))
        out.append(rgb)
    return np.stack(out)


def appearance_dataset(dataset: str, model: str, manifest_path: str | Path, scores_path: str | Path,
                       recon_dir: str | Path, spec: dict[str, Any],
                       extractors: dict[str, Any], embedder: Any | None,
                       lpips_model: Any | None = None,
                       lpips_runtime: Any | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-item rows (status, psnr, ssim, silhouette_iou, clip_input) and per-set rows (fd_{extractor},
    kd_{extractor}) for one (data set, model). ``extractors``: name -> loaded Extractor; ``embedder``: a loaded
    TextImageEmbedder or None."""
    from ..metrics.fid import frechet_distance_features
    from ..metrics.kid import kernel_inception_distance

    manifest = pd.read_parquet(manifest_path)
    root = Path(manifest_path).parent
    recon_dir = Path(recon_dir)
    scores = pd.read_parquet(scores_path)
    scores = scores[scores["protocol"] == "corrected"].set_index("item_id")
    n_views = spec.get("views")
    feat_size = spec.get("feature_size")
    rows, pred_imgs, gt_imgs = [], [], []
    for item in manifest.to_dict("records"):
        base = {"dataset": dataset, "model": model, "item_id": item["item_id"]}
        if item["status"] != "ok" or not isinstance(item.get("views_path"), str):
            rows.append({**base, "status": "skipped", "reason": "no evaluation views (not an object item)"
                         if item["status"] == "ok" else f"input not prepared: {item['reason']}"})
            continue
        if item["item_id"] not in scores.index or scores.loc[item["item_id"], "status"] != "ok":
            why = scores.loc[item["item_id"], "reason"] if item["item_id"] in scores.index else "not scored"
            rows.append({**base, "status": "skipped", "reason": f"no aligned reconstruction: {why}"})
            continue
        sc = scores.loc[item["item_id"]]
        splats = (recon_dir / sc["prediction"] / "pred_gaussians.ply"
                  if sc["kind"] == "gaussians" and isinstance(sc.get("prediction"), str) else None)
        if sc["kind"] != "mesh" and not (splats is not None and spec.get("gaussians") and splats.is_file()):
            why = "no surface to render" if sc["kind"] != "gaussians" else (
                "not rendered (recon3d.appearance.gaussians is off)" if not spec.get("gaussians")
                else "no pred_gaussians.ply beside the prediction")
            rows.append({**base, "status": "skipped", "reason": f"{sc['kind']}: {why}"})
            continue
        transforms = json.loads((root / item["views_path"]).read_text())
        frames = transforms["frames"][:n_views] if n_views else transforms["frames"]
        views = views_from({"frames": frames})
        align = np.asarray(json.loads(sc["alignment"]))
        gt = np.stack([_read(Path(root / item["views_path"]).parent / f["file_path"]) for f in frames])
        if sc["kind"] == "mesh":
            mesh = trimesh.load(str(recon_dir / sc["prediction"] / "pred.ply"), force="mesh", process=False)
            mesh.apply_transform(align)
            pred = np.stack([render(mesh, v, gt.shape[1]) for v in views])
        else:  # the model's Gaussians, moved by the same alignment as their scored centres
            from . import gaussians as gs

            g = gs.transform(gs.load_ply(splats), align)
            pred = np.stack([gs.render_rgba(g, v, gt.shape[1]) for v in views])
        row = {**base, "status": "ok", "reason": None, "n_views": len(views), **image_metrics(pred, gt)}
        if lpips_model is not None:
            row["lpips"] = lpips_distance(lpips_model, pred, gt, lpips_runtime)
        if embedder is not None:
            inp = resize_rgb(_read(root / item["input_path"])[None], None)
            e_in = embedder.embed_images(inp, f"{dataset}/{item['item_id']} input")
            e_pr = embedder.embed_images(resize_rgb(pred, None), f"{dataset}/{model}/{item['item_id']} renders")
            e_in = e_in / np.linalg.norm(e_in, axis=1, keepdims=True)
            e_pr = e_pr / np.linalg.norm(e_pr, axis=1, keepdims=True)
            row["clip_input"] = float(100.0 * (e_pr @ e_in[0]).mean())
        rows.append(row)
        pred_imgs.append(resize_rgb(pred, feat_size))
        gt_imgs.append(resize_rgb(gt, feat_size))
    sets = []
    if pred_imgs and extractors:
        p_all, g_all = np.concatenate(pred_imgs), np.concatenate(gt_imgs)
        for name, ex in extractors.items():
            fp = ex.extract(p_all, f"{dataset}/{model} renders")["features"]
            fg = ex.extract(g_all, f"{dataset} GT renders")["features"]
            kd, kd_std, m = kernel_inception_distance(fg, fp, subsets=int(spec.get("kid_subsets", 100)),
                                                      subset_size=int(spec.get("kid_subset_size", 1000)),
                                                      small_sample="shrink", real_name="GT renders",
                                                      gen_name="prediction renders")
            sets += [{"dataset": dataset, "model": model, "metric": f"fd_{name}",
                      "value": frechet_distance_features(fg, fp, "GT renders", "prediction renders"),
                      "n": len(fp), "note": f"{len(fp)} renders per side"},
                     {"dataset": dataset, "model": model, "metric": f"kd_{name}", "value": kd, "n": len(fp),
                      "note": f"{spec.get('kid_subsets', 100)} subsets of {m}; std {kd_std:.3g}"}]
    return pd.DataFrame(rows), pd.DataFrame(sets)
