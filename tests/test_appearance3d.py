"""Appearance metrics of reconstructions: PSNR and SSIM against torchmetrics on the same images, and the stage on a
small prepared object data set (the GT ceiling re-rendered matches its GT renders; a baseline does not)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from genbench.features.classifier import MiniClassifier
from genbench.features.registry import MiniworldClassifierExtractor
from genbench.recon3d.appearance import appearance_dataset, image_metrics, on_white, psnr, ssim
from genbench.recon3d.evaluate import reconstruct_dataset, score_dataset
from genbench.recon3d.objects import prepare_objects


def _pair(seed=0, size=40):
    rng = np.random.default_rng(seed)
    a = np.zeros((size, size, 4), np.uint8)
    a[8:30, 10:34] = rng.integers(0, 256, (22, 24, 4))
    a[8:30, 10:34, 3] = 255
    b = a.copy()
    b[..., :3] = np.clip(b[..., :3].astype(int) + rng.integers(-30, 30, b[..., :3].shape), 0, 255)
    b[8:12, :, 3] = 0
    return a, b


def test_psnr_and_ssim_match_torchmetrics():
    """Same RGB images composited on white, data range 1: PSNR to 1e-7 (torchmetrics accumulates in float32). SSIM
    (Gaussian window 11, sigma 1.5, K = 0.01 / 0.03): genbench averages the SSIM map over the valid region, as
    Wang et al.'s reference code and scikit-image (5-pixel border excluded); torchmetrics averages the
    reflect-padded full map, so its map is compared cropped to the same region (1e-6)."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    a, b = _pair()
    wa, wb = on_white(a), on_white(b)
    ta = torch.from_numpy(wa).permute(2, 0, 1)[None]
    tb = torch.from_numpy(wb).permute(2, 0, 1)[None]
    assert psnr(wa, wb) == pytest.approx(float(tm.peak_signal_noise_ratio(ta, tb, data_range=1.0)), rel=1e-7)
    _, full = tm.structural_similarity_index_measure(ta, tb, data_range=1.0, gaussian_kernel=True, sigma=1.5,
                                                     kernel_size=11, return_full_image=True)
    assert ssim(wa, wb) == pytest.approx(float(full[..., 5:-5, 5:-5].mean()), abs=1e-6)
    m = image_metrics(a[None], b[None])
    assert m["silhouette_iou"] == pytest.approx(((a[..., 3] > 127) & (b[..., 3] > 127)).sum()
                                                / ((a[..., 3] > 127) | (b[..., 3] > 127)).sum())
    assert image_metrics(a[None], a[None])["psnr"] == float("inf")


def test_appearance_stage_on_prepared_objects(tmp_path):
    spec = {"adapter": "procedural", "objects": 3, "seed": 0, "render": {"size": 48, "cameras": "one2345"},
            "gt": {"samples": 3000, "occupancy_res": 32}}
    df = prepare_objects("objs", spec, tmp_path / "data")
    df.to_parquet(tmp_path / "data/manifest.parquet")
    manifest = tmp_path / "data/manifest.parquet"
    torch.manual_seed(0)
    extractor = MiniworldClassifierExtractor("rand_cnn", MiniClassifier(4))
    from genbench.recon3d.appearance import load_lpips

    lp = load_lpips({"backbone": "random"})
    out = {}
    for model, kind in (("ceiling", "gt_resample"), ("extrude", "extrude")):
        rdir = tmp_path / "recon" / model
        reconstruct_dataset("objs", model, {"kind": kind}, manifest, rdir, seed=0).to_parquet(
            rdir / "reconstructions.parquet")
        scores = score_dataset("objs", model, {"corrected": {"samples": 3000, "emd_points": 64,
                                                             "icp_subsample": 300}},
                               manifest, rdir / "reconstructions.parquet", seed=0)
        scores.to_parquet(tmp_path / f"{model}.parquet")
        rows, sets = appearance_dataset("objs", model, manifest, tmp_path / f"{model}.parquet", rdir,
                                        {"views": 6, "feature_size": 16, "kid_subsets": 5},
                                        {"rand_cnn": extractor}, None, lpips_model=lp)
        assert (rows["status"] == "ok").all() and (rows["n_views"] == 6).all()
        out[model] = (rows, sets.set_index("metric")["value"])
    ceil, base = out["ceiling"][0], out["extrude"][0]
    assert (ceil["silhouette_iou"] > 0.95).all() and (ceil["psnr"] > base["psnr"]).all()
    assert ceil["ssim"].mean() > base["ssim"].mean() and (ceil["lpips"] < base["lpips"]).all()
    assert out["ceiling"][1]["fd_rand_cnn"] < out["extrude"][1]["fd_rand_cnn"]
    assert set(out["extrude"][1].index) == {"fd_rand_cnn", "kd_rand_cnn"}


def test_appearance_skips_what_cannot_be_rendered(tmp_path):
    spec = {"adapter": "procedural", "objects": 1, "seed": 0, "render": {"size": 32, "cameras": "one2345"},
            "gt": {"samples": 2000, "occupancy_res": 16}}
    prepare_objects("o", spec, tmp_path / "data").to_parquet(tmp_path / "data/manifest.parquet")
    scores = pd.DataFrame([{"dataset": "o", "model": "g", "protocol": "corrected", "item_id": "solid000",
                            "status": "ok", "kind": "gaussians", "reason": None}])
    scores.to_parquet(tmp_path / "s.parquet")
    rows, sets = appearance_dataset("o", "g", tmp_path / "data/manifest.parquet", tmp_path / "s.parquet",
                                    tmp_path, {}, {}, None)
    assert rows.iloc[0]["status"] == "skipped" and "gaussians is off" in rows.iloc[0]["reason"]
    assert sets.empty
    rows, _ = appearance_dataset("o", "g", tmp_path / "data/manifest.parquet", tmp_path / "s.parquet",
                                 tmp_path, {"gaussians": True}, {}, None)
    assert rows.iloc[0]["status"] == "skipped" and "no pred_gaussians.ply" in rows.iloc[0]["reason"]
    scores.assign(kind="points").to_parquet(tmp_path / "p.parquet")
    rows, _ = appearance_dataset("o", "g", tmp_path / "data/manifest.parquet", tmp_path / "p.parquet",
                                 tmp_path, {"gaussians": True}, {}, None)
    assert "no surface to render" in rows.iloc[0]["reason"]


def test_appearance_renders_gaussians_after_the_alignment(tmp_path):
    """recon3d.appearance.gaussians: a model's pred_gaussians.ply is rendered from the evaluation cameras after the
    corrected protocol's alignment: Gaussians on the GT surface cover its silhouette; the same Gaussians shifted
    score worse, and shifted with the inverse shift as their alignment score as the unshifted ones (float32
    rounding)."""
    from genbench.io import load_npz
    from genbench.recon3d import gaussians as gs

    spec = {"adapter": "procedural", "objects": 1, "seed": 0, "render": {"size": 32, "cameras": "one2345"},
            "gt": {"samples": 2000, "occupancy_res": 16}}
    man = prepare_objects("o", spec, tmp_path / "data")
    man.to_parquet(tmp_path / "data/manifest.parquet")
    pts = torch.as_tensor(load_npz(tmp_path / "data" / man.iloc[0]["gt_samples"])["points"][:600], dtype=torch.float32)
    n = len(pts)

    def case(name, shift, align):
        g = gs.Gaussians(pts + torch.tensor(shift), torch.full((n, 3), 0.03), torch.tensor([[1.0, 0, 0, 0]] * n),
                         torch.full((n,), 0.9), torch.full((n, 3), 0.5))
        (tmp_path / name / "input/solid000").mkdir(parents=True)
        gs.save_ply(g, tmp_path / name / "input/solid000/pred_gaussians.ply")
        m = np.eye(4)
        m[:3, 3] = align
        pd.DataFrame([{"dataset": "o", "model": name, "protocol": "corrected", "item_id": "solid000", "status": "ok",
                       "kind": "gaussians", "reason": None, "prediction": "input/solid000",
                       "alignment": json.dumps(m.tolist())}]).to_parquet(tmp_path / f"{name}.parquet")
        rows, _ = appearance_dataset("o", name, tmp_path / "data/manifest.parquet", tmp_path / f"{name}.parquet",
                                     tmp_path / name, {"views": 3, "gaussians": True}, {}, None)
        assert rows.iloc[0]["status"] == "ok" and rows.iloc[0]["n_views"] == 3
        return rows.iloc[0]

    on = case("on", [0, 0, 0], [0, 0, 0])
    off = case("off", [0.3, 0, 0], [0, 0, 0])
    back = case("back", [0.3, 0, 0], [-0.3, 0, 0])
    assert on["silhouette_iou"] > 0.6 and off["silhouette_iou"] < on["silhouette_iou"] - 0.2
    # equal up to float32 rounding of the shifted means (a few uint8 pixel steps)
    for k, tol in (("psnr", 0.01), ("ssim", 1e-3), ("silhouette_iou", 1e-3)):
        assert back[k] == pytest.approx(on[k], abs=tol) and abs(off[k] - on[k]) > 10 * tol


def test_lpips_trunk_loads_from_a_torchvision_state_dict(tmp_path):
    """LPIPS with the trunk loaded from a saved torchvision AlexNet state dict equals LPIPS computed by hand from
    torchvision's AlexNet features (unit-normalised channels, squared differences, the package's v0.1 linear
    weights, spatial mean, sum over layers), to 1e-5."""
    import lpips
    import torchvision

    from genbench.recon3d.appearance import load_lpips, lpips_distance

    torch.manual_seed(7)
    alex = torchvision.models.alexnet().eval()
    torch.save(alex.state_dict(), tmp_path / "alexnet.pth")
    model = load_lpips({"backbone": {"path": str(tmp_path / "alexnet.pth")}})
    a, b = _pair(1, 64)
    ours = lpips_distance(model, a[None], b[None])

    lin = torch.load(lpips.__path__[0] + "/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    shift = torch.tensor([-.030, -.088, -.188])[None, :, None, None]
    scale = torch.tensor([.458, .448, .450])[None, :, None, None]

    def feats(x):
        x = (torch.from_numpy(on_white(x)).permute(2, 0, 1)[None].float() * 2 - 1 - shift) / scale
        out = []
        for i, layer in enumerate(alex.features):
            x = layer(x)
            if i in (1, 4, 7, 9, 11):  # after each ReLU that ends one of lpips' slices
                out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    with torch.no_grad():
        ref = sum(((fa - fb) ** 2 * lin[f"lin{k}.model.1.weight"]).sum(1).mean()
                  for k, (fa, fb) in enumerate(zip(feats(a), feats(b), strict=True)))
    assert ours == pytest.approx(float(ref), rel=1e-5)
    assert lpips_distance(model, a[None], a[None]) == pytest.approx(0.0, abs=1e-7)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision AlexNet state dict"):
        load_lpips({"backbone": {"path": str(tmp_path / "bad.pth")}})
    from genbench.weights import WeightsMissingError

    with pytest.raises(WeightsMissingError, match="alexnet-owt"):
        load_lpips({"backbone": {"path": str(tmp_path / "alexnet-owt-7be5be79.pth")}})
