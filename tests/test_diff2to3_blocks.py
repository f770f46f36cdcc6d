"""MARoPE and the Diff2to3 generator transformers (genbench.recon3d.diff2to3) at toy sizes."""

from __future__ import annotations

import pytest
import torch

from genbench.recon3d.diff2to3 import (
    PRESETS,
    Diff2to3Config,
    DoubleStreamBlock,
    apply_rope,
    build,
    flow_matching_loss,
    image_positions,
    rope_angles,
    sinusoidal_3d,
    split_head_dim,
)

F64 = torch.float64
TOY = dict(latent_channels=4, cond_channels=3, hidden=48, heads=4, double_blocks=1, single_blocks=1, depth=2,
           image_patch=2, grid_size=6, zero_init=False)
VARIANTS = {"smdit_marope": dict(arch="smdit", pos_embed="marope"),
            "smdit_absolute": dict(arch="smdit", pos_embed="absolute"),
            "trellis_dit": dict(arch="dit")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_batch(seed: int = 0, b: int = 2, n: int = 12, grid: int = 6, hw: tuple[int, int] = (4, 6),
              channels: int = 4, cond_channels: int = 3):
    g = torch.Generator().manual_seed(seed)
    coords = torch.stack([torch.randperm(grid**3, generator=g)[:n] for _ in range(b)])
    coords = torch.stack([coords // grid**2, coords // grid % grid, coords % grid], -1)  # distinct voxels
    return (torch.randn(b, n, channels, generator=g), coords, torch.randn(b, *hw, cond_channels, generator=g),
            torch.rand(b, generator=g))


def model(variant: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build({**TOY, **VARIANTS[variant], **kw}).eval()


# MARoPE ----------------------------------------------------------------------------------------------------------

def test_head_dim_split_into_three_even_parts():
    assert split_head_dim(64) == (22, 22, 20)
    assert split_head_dim(12) == (4, 4, 4)
    assert split_head_dim(128) == (44, 42, 42)
    with pytest.raises(ValueError):
        split_head_dim(10 + 1)


def test_rope_scores_depend_only_on_the_position_difference():
    g = torch.Generator().manual_seed(1)
    d = 24
    axes = split_head_dim(d)
    q, k = torch.randn(1, 2, 30, d, generator=g, dtype=F64), torch.randn(1, 2, 30, d, generator=g, dtype=F64)
    pos_q = torch.randint(0, 17, (30, 3), generator=g).to(F64)
    pos_k = torch.randint(0, 17, (30, 3), generator=g).to(F64)

    def scores(pq, pk):
        return apply_rope(q, rope_angles(pq, axes)) @ apply_rope(k, rope_angles(pk, axes)).transpose(-1, -2)

    base = scores(pos_q, pos_k)
    for offset in ([3, -5, 11], [40, 0, 0], [0, 0, -7]):
        off = torch.tensor(offset, dtype=F64)
        assert torch.allclose(scores(pos_q + off, pos_k + off), base, atol=1e-5, rtol=0)
    # and not invariant to moving one side only (the embedding really encodes positions), along each axis
    for a in range(3):
        off = torch.zeros(3, dtype=F64)
        off[a] = 1.0
        assert (scores(pos_q + off, pos_k) - base).abs().max() > 1e-2
    # the rotation is norm preserving and the identity at position 0
    x = apply_rope(q, rope_angles(pos_q, axes))
    assert torch.allclose(x.norm(dim=-1), q.norm(dim=-1))
    assert torch.allclose(apply_rope(q, rope_angles(torch.zeros(30, 3, dtype=F64), axes)), q)


def test_each_axis_rotates_its_own_part_of_the_head_dim():
    d = 18
    axes = split_head_dim(d)  # (6, 6, 6)
    x = torch.randn(1, 1, 1, d, dtype=F64)
    bounds = [0, axes[0], axes[0] + axes[1], d]
    for a in range(3):
        pos = torch.zeros(1, 3, dtype=F64)
        pos[0, a] = 5.0
        changed = (apply_rope(x, rope_angles(pos, axes)) - x).abs()[0, 0, 0] > 1e-9
        inside = torch.zeros(d, dtype=torch.bool)
        inside[bounds[a]:bounds[a + 1]] = True
        assert changed[inside].all() and not changed[~inside].any()


def test_image_tokens_sit_on_the_virtual_plane_behind_the_volume():
    pos = image_positions(3, 4, grid_size=6)
    assert pos.shape == (12, 3)
    assert pos[:, 2].eq(6).all()  # z_max + 1, z_max = grid_size - 1 = 5
    assert pos[5].tolist() == [1.0, 1.0, 6.0]  # row-major: token 5 is row 1, column 1
    assert sorted({tuple(p) for p in pos[:, :2].tolist()}) == [(i, j) for i in range(3) for j in range(4)]
    m = model("smdit_marope")
    x, coords, cond, _ = toy_batch()  # cond 4 x 6 features -> 2 x 3 patches
    p = m.positions(coords, cond)
    assert p.shape == (2, 6 + 12, 3)
    assert torch.equal(p[0, :6], image_positions(2, 3, 6))
    assert torch.equal(p[:, 6:], coords.float())
    assert coords.max() < 6  # the voxels are inside the volume, the image plane outside it


def test_sinusoidal_3d_embedding():
    pos = torch.tensor([[0.0, 0, 0], [1, 2, 3], [1, 2, 4]])
    emb = sinusoidal_3d(pos, 50)  # 16 channels per axis, 2 of zero padding
    assert emb.shape == (3, 50) and emb[:, 48:].eq(0).all()
    assert torch.allclose(emb[0, :8], torch.zeros(8)) and torch.allclose(emb[0, 8:16], torch.ones(8))
    assert torch.equal(emb[1, :32], emb[2, :32]) and not torch.equal(emb[1, 32:48], emb[2, 32:48])


# SMDiT blocks ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", list(VARIANTS))
def test_output_shapes_and_padding(variant):
    m = model(variant)
    x, coords, cond, t = toy_batch()
    assert m(x, coords, cond, t).shape == x.shape
    # padding: extra tokens masked out leave the real tokens' outputs unchanged
    pad_x = torch.cat([x, 100 * torch.randn(2, 3, 4)], 1)
    pad_c = torch.cat([coords, torch.randint(0, 6, (2, 3, 3))], 1)
    mask = torch.arange(15)[None].expand(2, -1) < 12
    with torch.no_grad():
        assert torch.allclose(m(pad_x, pad_c, cond, t, mask)[:, :12], m(x, coords, cond, t), atol=1e-5)


def test_double_stream_weights_are_separate_per_modality():
    cfg = Diff2to3Config.from_dict({**TOY})
    blk = DoubleStreamBlock(cfg)
    img = dict(blk.img.named_parameters())
    vox = dict(blk.vox.named_parameters())
    assert set(img) == set(vox) and {"modulation.1.weight", "qkv.weight", "proj.weight", "mlp.0.weight",
                                      "q_norm.weight"} <= set(img)
    for name in img:
        assert img[name] is not vox[name] and img[name].data_ptr() != vox[name].data_ptr()
    n_stream = sum(p.numel() for p in blk.img.parameters())
    assert sum(p.numel() for p in blk.parameters()) == 2 * n_stream
    # a gradient through the voxel output alone reaches only the voxel stream's MLP (the image stream's MLP
    # shapes image tokens, which this block does not feed back to the voxel outputs)
    c = torch.randn(2, 48)
    x_img, x_vox = torch.randn(2, 5, 48), torch.randn(2, 7, 48)
    blk(x_img, x_vox, c, None, None)[1].sum().backward()
    assert blk.vox.mlp[0].weight.grad.abs().sum() > 0
    assert blk.img.mlp[0].weight.grad is None or blk.img.mlp[0].weight.grad.abs().sum() == 0
    assert blk.img.qkv.weight.grad.abs().sum() > 0  # image keys/values do reach voxel tokens


@pytest.mark.parametrize("variant", ["smdit_marope", "smdit_absolute"])
def test_joint_attention_masks_nothing_across_modalities(variant):
    m = model(variant)
    x, coords, cond, t = toy_batch()
    with torch.no_grad():
        base, weights = m(x, coords, cond, t, return_weights=True)
        # perturbing one image patch (the top-left 2 x 2 features) changes every voxel token's output
        cond2 = cond.clone()
        cond2[:, :2, :2] += 1.0
        assert ((m(x, coords, cond2, t) - base).abs().amax(-1) > 1e-6).all()
        # perturbing one voxel token changes every other voxel token's output
        x2 = x.clone()
        x2[:, 3] += 1.0
        assert ((m(x2, coords, cond, t) - base).abs().amax(-1) > 1e-6).all()
        # and, inside a double-stream block, every image token's output
        blk, c = m.double_stream[0], m.t_embed(t)
        ang = None if m.cfg.pos_embed == "absolute" else \
            rope_angles(m.positions(coords, cond), m.axes_dim)
        xi, xv = m.img_in(cond), m.vox_in(x)
        img0 = blk(xi, xv, c, ang, None)[0]
        img1 = blk(xi, m.vox_in(x2), c, ang, None)[0]
        assert ((img1 - img0).abs().amax(-1) > 1e-6).all()
        # the attention weights across modalities are all > 0, rows sum to 1, and match the fused kernel
        n_img = 6
        for w in weights:
            assert w.shape == (2, 4, n_img + 12, n_img + 12)
            assert (w[..., :n_img, n_img:] > 0).all() and (w[..., n_img:, :n_img] > 0).all()
            assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)
        assert torch.allclose(m(x, coords, cond, t), base, atol=1e-5)
        # padding is the only mask: a padded key gets weight exactly 0
        mask = torch.ones(2, 12, dtype=torch.bool)
        mask[:, -2:] = False
        _, wm = m(x, coords, cond, t, mask, return_weights=True)
        assert all(w[..., -2:].eq(0).all() and (w[..., :-2] > 0).all() for w in wm)


def test_marope_sees_only_relative_positions_absolute_embedding_does_not():
    """Translating every token (voxels and the image plane) by one 3D offset leaves the MARoPE model's output
    unchanged; moving the voxels relative to the image plane changes it. The absolute-embedding SMDiT sees both."""
    x, coords, cond, t = toy_batch()
    off = torch.tensor([2.0, -3.0, 5.0])
    for variant, invariant in (("smdit_marope", True), ("smdit_absolute", False)):
        m = model(variant)
        with torch.no_grad():
            base = m(x, coords, cond, t)
            positions = m.positions
            m.positions = lambda c, im, f=positions: f(c, im) + off  # every token, the image plane too
            moved = m(x, coords, cond, t)
            del m.positions
            shifted = coords.clone()
            shifted[..., 2] -= 1  # voxels one step further from the image plane
            assert (m(x, shifted, cond, t) - base).abs().max() > 1e-4
        assert torch.allclose(moved, base, atol=1e-5) == invariant, variant


def test_trellis_baseline_cross_attends_to_every_image_token():
    m = model("trellis_dit")
    x, coords, cond, t = toy_batch()
    with torch.no_grad():
        base, weights = m(x, coords, cond, t, return_weights=True)
        cond2 = cond.clone()
        cond2[:, 2:, 4:] -= 1.0  # the bottom-right patch
        assert ((m(x, coords, cond2, t) - base).abs().amax(-1) > 1e-6).all()
        w_self, w_cross = weights[0]
        assert w_self.shape == (2, 4, 12, 12) and w_cross.shape == (2, 4, 12, 6)
        assert (w_cross > 0).all()
        # absolute positions: the voxel embedding depends on where the voxel is
        shifted = coords.clone()
        shifted[..., 2] = (shifted[..., 2] + 1) % 6
        assert (m(x, shifted, cond, t) - base).abs().max() > 1e-4


def test_config_validation_and_presets():
    with pytest.raises(ValueError, match="unknown Diff2to3 config keys: hiden"):
        Diff2to3Config.from_dict({"hiden": 3})
    with pytest.raises(ValueError, match="pos_embed"):
        Diff2to3Config.from_dict({"pos_embed": "rope"})
    with pytest.raises(ValueError, match="multiple of heads"):
        Diff2to3Config.from_dict({"hidden": 50, "heads": 4})
    for name, d in PRESETS.items():
        cfg = Diff2to3Config.from_dict(d)
        assert Diff2to3Config.from_dict(cfg.to_dict()) == cfg, name
    with torch.device("meta"):  # paper-sized models are built without allocating their weights
        big = build(PRESETS["smdit_l"])
    assert len(big.double_stream) == 8 and len(big.single_stream) == 16
    assert sum(p.numel() for p in big.parameters()) > 5e8


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_few_flow_matching_steps_reduce_the_loss(variant):
    """Toy CFM problem: the clean latents are a function of the image features (each voxel's latent is the mean
    image feature tiled, plus its coordinate), so a model that attends to the image and positions can fit it."""
    torch.manual_seed(0)
    m = build({**TOY, **VARIANTS[variant], "zero_init": True})
    x, coords, cond, _ = toy_batch(seed=2, b=8)
    z0 = torch.cat([cond.mean((1, 2)), torch.zeros(8, 1)], -1)[:, None] + coords.float() / 6 @ torch.ones(3, 4)
    g = torch.Generator().manual_seed(5)
    t_eval, eps_eval = torch.rand(64, generator=g), torch.randn(64, *z0.shape[1:], generator=g)

    def eval_loss() -> float:
        with torch.no_grad():
            rep = lambda a: a.repeat(8, *([1] * (a.dim() - 1)))  # noqa: E731
            return flow_matching_loss(m, rep(z0), rep(coords), rep(cond), t=t_eval, eps=eps_eval).item()

    before = eval_loss()
    opt = torch.optim.AdamW(m.parameters(), lr=5e-3)
    for _ in range(30):
        loss = flow_matching_loss(m, z0, coords, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.4 * before, (before, after)
