"""The toy 2to3-VAE (genbench.recon3d.diff2to3.vae): projection and aggregation of multi-view features onto voxels,
the Gaussian decoder's bounds, the eq. 1 terms, the paper-sized config, and a round trip on one mini-world solid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genbench.recon3d import gaussians as gs
from genbench.recon3d.appearance import ssim as skimage_ssim
from genbench.recon3d.diff2to3 import vae as V
from genbench.recon3d.objects import normalise_unit_cube, procedural_solid
from genbench.recon3d.render import View, camera_rays, camera_set

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def solid():
    torch.set_num_threads(1)
    _, mesh = procedural_solid(0, 0)  # a coloured box, rotated
    return normalise_unit_cube(mesh)[0]


@pytest.fixture(scope="module")
def asset(solid):
    torch.set_num_threads(1)
    return V.prepare_asset(solid, V.VAEConfig(), held_out=2, seed=0, ae_steps=100)


def test_voxel_centre_projects_to_its_pixel():
    view = View(yaw=0.7, pitch=0.4, radius=2.0, fov=math.radians(40))
    size = 24
    cam = gs.Camera.from_view(view, size, dtype=torch.float64)
    origins, dirs = camera_rays(view, size)
    for r, c in [(0, 0), (5, 17), (12, 12), (23, 3)]:
        p = origins[r * size + c] + 1.7 * dirs[r * size + c]  # a point on pixel (r, c)'s ray
        uv, depth = V.project_points(torch.tensor(p[None]), cam)
        assert uv[0].tolist() == pytest.approx([c + 0.5, r + 0.5], abs=1e-9)
        assert float(depth[0]) > 0
    # a voxel centre of the grid lands where the splat renderer puts a tiny Gaussian at the same point
    centre = V.voxel_centres(torch.tensor([[11, 3, 9]]), 16).to(torch.float64)
    uv, _ = V.project_points(centre, cam)
    img = gs.rasterize(centre, torch.full((1, 3), 1e-4, dtype=torch.float64), torch.tensor([[1.0, 0, 0, 0]],
                       dtype=torch.float64), torch.ones(1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64),
                       cam).alpha
    r, c = np.unravel_index(int(img.argmax()), img.shape)
    assert (int(uv[0, 1]), int(uv[0, 0])) == (r, c)


def test_bilinear_sampling_of_a_linear_map_is_exact():
    size, h = 32, 16  # a 2:1 feature map, as the reconstructive extractor's
    centres = (torch.arange(h, dtype=torch.float64) + 0.5) * size / h  # image position of feature cell centres
    fmap = torch.stack([centres[None].expand(h, h), centres[:, None].expand(h, h)])  # channel 0 = u, 1 = v
    uv = torch.rand(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 28 + 2
    out, inside = V.sample_features(fmap, uv, size, size)
    assert inside.all()
    assert torch.allclose(out, uv, atol=1e-9)
    _, inside = V.sample_features(fmap, torch.tensor([[-0.5, 4.0], [4.0, 33.0]], dtype=torch.float64), size, size)
    assert not inside.any()


def test_aggregating_constant_maps_gives_the_constant_and_weights_by_visibility():
    views = camera_set("trellis", n=3, seed=1)
    cams = [gs.Camera.from_view(v, 16) for v in views]
    pts = (torch.rand(40, 3, generator=torch.Generator().manual_seed(0)) - 0.5) * 0.8
    c = torch.tensor([0.3, -2.0, 7.5])
    fmaps = c[None, :, None, None].expand(3, 3, 8, 8).contiguous()
    vis = torch.rand(3, 40, generator=torch.Generator().manual_seed(1)) > 0.5
    for visible in (None, vis):
        assert torch.allclose(V.aggregate(fmaps, pts, cams, visible), c.expand(40, 3), atol=1e-6)
    # different constants per view: the average is over the visible views only (all views where none is)
    per_view = torch.tensor([1.0, 10.0, 100.0])
    fmaps = per_view[:, None, None, None].expand(3, 1, 8, 8).contiguous()
    got = V.aggregate(fmaps, pts, cams, vis)[:, 0]
    w = vis.float()
    want = torch.where(w.sum(0) > 0, (w * per_view[:, None]).sum(0) / w.sum(0).clamp(min=1), per_view.mean())
    assert torch.allclose(got, want, rtol=1e-6)
    assert torch.allclose(V.aggregate(fmaps, pts, cams)[:, 0], per_view.mean().expand(40), rtol=1e-6)


def test_surface_voxels_and_occlusion():
    occ = np.zeros((8, 8, 8), dtype=bool)
    occ[1:7, 1:7, 1:7] = True
    shell = V.surface_voxels(occ)
    assert len(shell) == 6**3 - 4**3
    assert not any((1 < s).all() and (s < 6).all() for s in shell)
    front, back = np.array([[6, 3, 3]]), np.array([[1, 3, 3]])  # the +x and -x faces
    cam = np.array([3.0, 0.0, 0.0])  # on the +x axis
    assert V.occlusion_visibility(occ, front, cam)[0]
    assert not V.occlusion_visibility(occ, back, cam)[0]
    assert V.occlusion_visibility(occ, back, -cam)[0]


def test_kl_is_zero_for_a_standard_normal_posterior():
    z = torch.zeros(10, 8)
    assert float(V.kl_divergence(z, z)) == 0.0
    mean, logvar = torch.full((10, 8), 0.5), torch.full((10, 8), math.log(2.0))
    assert float(V.kl_divergence(mean, logvar)) == pytest.approx(8 * 0.5 * (0.25 + 2 - 1 - math.log(2)), rel=1e-6)


def test_decoded_gaussians_stay_in_their_voxel_neighbourhood():
    cfg = V.VAEConfig(grid_size=8, gaussians_per_voxel=5, hidden=32, heads=2)
    torch.manual_seed(0)
    vae = V.SparseVAE(cfg)
    coords = torch.randint(0, 8, (30, 3))
    raw = torch.randn(30, 5, V.GAUSSIAN_PARAMS) * 50  # far beyond anything training would produce
    g = vae.gaussians(raw, coords)
    centre = V.voxel_centres(coords, 8).repeat_interleave(5, 0)
    bound = cfg.offset_range / 2 * cfg.voxel_size
    assert ((g.means - centre).abs() <= bound + 1e-7).all()
    assert ((g.means - centre).abs() > 0.9 * bound).any()  # the bound is reached, not a much tighter one
    assert (g.scales > 0).all() and ((g.opacities >= 0) & (g.opacities <= 1)).all()
    assert ((g.colours >= 0) & (g.colours <= 1)).all()
    # zero raw output: the configured starting std and opacity, the slots apart inside the voxel
    g0 = vae.gaussians(torch.zeros(30, 5, V.GAUSSIAN_PARAMS), coords)
    start_std = (cfg.scale_bias + V.MIN_SCALE) * cfg.voxel_size
    assert torch.allclose(g0.scales, torch.full_like(g0.scales, start_std), rtol=1e-5)
    assert torch.allclose(g0.opacities, torch.full_like(g0.opacities, cfg.opacity_bias), rtol=1e-5)
    assert ((g0.means - centre).abs() <= 0.5 * cfg.voxel_size).all()
    assert g0.means.reshape(30, 5, 3).std(1).min() > 0.05 * cfg.voxel_size
    # end to end through the decoder, with latents far from the prior
    g = vae.decode(torch.randn(30, cfg.latent_channels) * 100, coords)
    assert ((g.means - centre).abs() <= bound + 1e-7).all()


def test_differentiable_ssim_matches_the_appearance_helper():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(24, 20, 3, generator=gen, dtype=torch.float64)
    b = (a + 0.2 * torch.randn(24, 20, 3, generator=gen, dtype=torch.float64)).clamp(0, 1)
    assert float(V.ssim(a, b)) == pytest.approx(skimage_ssim(a.numpy(), b.numpy()), abs=1e-9)
    assert float(V.ssim(a, a)) == pytest.approx(1.0, abs=1e-12)
    b.requires_grad_(True)
    V.ssim(a, b).backward()
    assert b.grad.abs().sum() > 0


def test_feature_extractors():
    imgs = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    vit = V.SemanticViT(48, 4, 1, seed=3)
    out = vit(imgs)
    assert out.shape == (3, 48, 4, 4)
    assert not any(p.requires_grad for p in vit.parameters())
    assert torch.equal(out, V.SemanticViT(48, 4, 1, seed=3)(imgs))  # the frozen random weights are seeded
    torch.manual_seed(0)
    ae = V.ReconstructiveAE(16, 16)
    assert ae.encode(imgs).shape == (3, 16, 8, 8)  # 2:1 per side, 16 channels
    losses = V.train_autoencoder(ae, imgs, 60)
    assert losses[-1] < 0.6 * losses[0]


def test_config_and_paper_sizes_build():
    with pytest.raises(ValueError, match="unknown"):
        V.VAEConfig.from_dict({"grid": 64})
    with pytest.raises(ValueError, match="feature_source"):
        V.VAEConfig.from_dict({"feature_source": "dino"})
    cfg = V.VAEConfig.from_dict(V.PAPER)
    assert (cfg.grid_size, cfg.latent_channels, cfg.in_channels) == (64, 8, 16)
    with torch.device("meta"):  # built, not run
        vae = V.SparseVAE(cfg)
    n = V.count_parameters(vae)
    assert vae.enc_in.in_features == 16 and vae.enc_out.out_features == 16 and vae.dec_in.in_features == 8
    assert vae.dec_out.out_features == 32 * V.GAUSSIAN_PARAMS
    assert 150e6 < n < 200e6  # two 12-block 768-wide transformers: 2 x 12 x ~7.1 M
    semantic = V.VAEConfig.from_dict(V.PAPER | {"feature_source": "semantic", "semantic_channels": 1024})
    with torch.device("meta"):
        assert V.SparseVAE(semantic).enc_in.in_features == 1024


def test_asset_features(asset, solid):
    cfg = V.VAEConfig()
    assert asset.coords.shape[1] == 3 and len(asset.coords) > 50
    assert asset.features.shape == (len(asset.coords), cfg.feature_channels)
    assert torch.isfinite(asset.features).all() and asset.features.std(0).mean() > 0
    assert asset.images.shape == (cfg.views + 2, cfg.image_size, cfg.image_size, 3)
    # every active voxel centre is inside the solid's bounding box (to half a voxel)
    lo, hi = solid.bounds
    c = V.voxel_centres(asset.coords, cfg.grid_size).numpy()
    assert (c >= lo - 0.5 / cfg.grid_size).all() and (c <= hi + 0.5 / cfg.grid_size).all()
    sem = V.prepare_asset(solid, V.VAEConfig(feature_source="semantic", grid_size=8, views=3, image_size=16),
                          held_out=0)
    assert sem.features.shape == (len(sem.coords), 64)


def mean_total(vae: V.SparseVAE, asset: V.Asset) -> float:
    with torch.no_grad():
        return float(np.mean([float(V.vae_loss(vae, asset, v, sample=False)["total"]) for v in range(asset.n_views)]))


def test_round_trip_reduces_loss_and_improves_held_out_psnr(asset):
    torch.manual_seed(0)
    vae = V.SparseVAE(V.VAEConfig())
    held_out = list(range(asset.n_views, len(asset.views)))
    loss0, psnr0 = mean_total(vae, asset), V.evaluate(vae, asset, held_out)
    hist = V.fit(vae, asset, steps=30, lr=3e-3, seed=0)
    loss1, psnr1 = mean_total(vae, asset), V.evaluate(vae, asset, held_out)
    print(f"total loss {loss0:.4f} -> {loss1:.4f}; held-out PSNR {psnr0:.2f} -> {psnr1:.2f} dB; "
          f"{np.mean([h['seconds'] for h in hist]):.3f} s/step; {len(asset.coords)} voxels")
    assert loss1 < 0.9 * loss0
    assert psnr1 > psnr0 + 1.0
    assert all(math.isfinite(h["total"]) for h in hist)
