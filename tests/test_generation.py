import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from genbench.gen2d.families import SiTGenerator, sit_from_arch
from genbench.gen2d.generate import generate_shard, shard_blocks
from genbench.gen2d.registry import WeightsMissingError, load_generator
from genbench.gen2d.samplers import euler, heun, sample_flow
from genbench.gen2d.sit import SIT_CONFIGS, SiT
from genbench.plots.grids import sample_grid
from genbench.seeding import derive_seed, item_seed


@pytest.fixture
def tiny_generator(tmp_path, tiny_sit_spec):
    torch.manual_seed(0)
    net = sit_from_arch(tiny_sit_spec["arch"])
    # the zero-initialised output layer would make every sample equal to its noise: randomise it
    for p in net.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    ckpt = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt))
    return load_generator("tiny", tiny_sit_spec, ckpt)


def _manifest(n, classes=4):
    return pd.DataFrame({"item_id": [f"val-{i:06d}" for i in range(n)], "label_id": np.arange(n) % classes})


def _run(gen, manifest, n_shards, batch_size=4, steps=3, cfg=2.0):
    parts = [generate_shard(gen, manifest, model="tiny", dataset="d", global_seed=0, seed=0, steps=steps, cfg=cfg,
                            shard=s, n_shards=n_shards, batch_size=batch_size) for s in range(n_shards)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_one_vs_three_shards_identical_bytes(tiny_generator):
    m = _manifest(22)
    one, three = _run(tiny_generator, m, 1), _run(tiny_generator, m, 3)
    assert one["images"].tobytes() == three["images"].tobytes()
    assert list(one["item_id"]) == list(m["item_id"]) == list(three["item_id"])
    assert one["images"].std() > 5, "images must not be constant"


def test_item_seed_depends_on_item_not_position():
    assert item_seed(0, "m", "d", "a") == item_seed(0, "m", "d", "a")
    assert len({item_seed(0, "m", "d", x) for x in "abcdef"}) == 6
    assert item_seed(0, "m", "d", "a") != item_seed(1, "m", "d", "a")
    assert derive_seed("x", 1) == derive_seed("x", 1) < 2**63


def test_shard_blocks_cover_items_once():
    for n, bs, k in [(22, 4, 3), (5, 10, 2), (100, 7, 9)]:
        covered = [i for s in range(k) for a, b in shard_blocks(n, bs, s, k) for i in range(a, b)]
        assert covered == list(range(n))


def test_cfg_one_is_unguided(tiny_generator):
    net = tiny_generator.net
    noise = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2])
    guided = sample_flow(net, noise, y, steps=4, cfg=1.0, null_label=4)
    with torch.no_grad():
        x = noise.clone()
        for i in range(4):
            x = x + 0.25 * net(x, torch.full((3,), i / 4), y)
    torch.testing.assert_close(guided.x, x, rtol=0, atol=1e-6)
    assert guided.nfe == 4 and guided.forward_passes == 4
    assert sample_flow(net, noise, y, steps=4, cfg=2.0, null_label=4).forward_passes == 8


def test_cfg_combines_cond_and_uncond():
    def net(x, t, y):
        return torch.where((y == 4).view(-1, 1, 1, 1), torch.zeros_like(x), torch.ones_like(x))

    res = sample_flow(net, torch.zeros(2, 3, 2, 2), torch.tensor([0, 1]), steps=2, cfg=3.0, null_label=4)
    torch.testing.assert_close(res.x, torch.full((2, 3, 2, 2), 3.0))  # v = 0 + 3 * (1 - 0), integrated over [0,1]
    part = sample_flow(net, torch.zeros(1, 3, 2, 2), torch.tensor([0]), steps=2, cfg=3.0, null_label=4,
                       cfg_channels=1)
    assert part.x[0, 0].eq(3.0).all() and part.x[0, 1:].eq(1.0).all()


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
def test_sampler_convergence_order(method, order):
    """dx/dt = -x + t, x(0) = x0 has x(t) = (x0 + 1) e^-t + t - 1; halving the step divides the error by 2^order."""

    def exact(x0):
        return (x0 + 1) * np.exp(-1.0)

    x0 = torch.tensor([0.7], dtype=torch.float64)
    f = {"euler": euler, "heun": heun}[method]
    errs = [abs(float(f(lambda x, t: -x + t, x0.clone(), n)) - float(exact(x0))) for n in (16, 32, 64)]
    rates = [np.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(abs(r - order) < 0.15 for r in rates), rates


def test_official_sit_xl2_layout():
    """SiT-XL/2 built from the preset has the official parameter count and names (DiT/SiT checkpoints)."""
    with torch.device("meta"):
        net = SiT(**SIT_CONFIGS["SiT-XL/2"])
    assert sum(p.numel() for p in net.parameters()) == 675_129_632
    keys = set(net.state_dict())
    for k in ["pos_embed", "x_embedder.proj.weight", "t_embedder.mlp.2.bias", "y_embedder.embedding_table.weight",
              "blocks.27.attn.qkv.weight", "blocks.0.mlp.fc2.bias", "blocks.3.adaLN_modulation.1.weight",
              "final_layer.linear.weight", "final_layer.adaLN_modulation.1.bias"]:
        assert k in keys
    assert net.state_dict()["y_embedder.embedding_table.weight"].shape == (1001, 1152)
    assert net.state_dict()["final_layer.linear.weight"].shape == (2 * 2 * 8, 1152)


def test_official_style_checkpoint_loads(tmp_path, tiny_sit_spec):
    """A torch checkpoint with an 'ema' entry (the official format) loads with weights_only."""
    net = sit_from_arch(tiny_sit_spec["arch"])
    torch.save({"model": net.state_dict(), "ema": net.state_dict(), "args": {"lr": 1e-4}}, tmp_path / "c.pt")
    spec = dict(tiny_sit_spec)
    gen = SiTGenerator.load("tiny", spec, tmp_path / "c.pt")
    assert gen.noise_shape() == (3, 16, 16)


def test_missing_weights_named(tmp_path, tiny_sit_spec):
    with pytest.raises(WeightsMissingError, match="nope.pt is missing"):
        load_generator("tiny", tiny_sit_spec, tmp_path / "nope.pt")


def test_unknown_family():
    # every family the schema lists is registered; a name outside it (a config that skipped validation) is named
    with pytest.raises(NotImplementedError, match="generator family 'nosuch' is not available"):
        load_generator("f", {"family": "nosuch", "sampler": {"method": "euler"}}, None)


def test_sample_grid():
    imgs = np.random.default_rng(0).integers(0, 255, (7, 8, 8, 3), dtype=np.uint8)
    g = np.asarray(sample_grid(imgs, n=5, ncols=3, scale=2, pad=1))
    assert g.shape == (2 * 17 + 1, 3 * 17 + 1, 3)
    np.testing.assert_array_equal(g[1:17:2, 1:17:2], imgs[0])


def test_read_shards_skips_empty_shards(tmp_path):
    """A data set smaller than shards x batch leaves a shard without items: its placeholder arrays are skipped."""
    import numpy as np

    from genbench.data.stream import ShardImages
    from genbench.io import save_npz

    def read_shards(paths):
        cell = ShardImages(paths, "cell")
        images = np.stack([cell.load(i) for i in range(len(cell))]) if len(cell) else np.zeros((0, 0, 0, 3))
        return {**cell.columns, "images": images}

    save_npz(tmp_path / "s0.npz", images=np.zeros((0, 0, 0, 3), np.uint8), item_id=np.zeros(0, "<U9"),
             label_id=np.zeros(0, np.int64))
    save_npz(tmp_path / "s1.npz", images=np.ones((2, 16, 16, 3), np.uint8), item_id=np.array(["a", "b"]),
             label_id=np.array([3, 1]))
    got = read_shards([tmp_path / "s0.npz", tmp_path / "s1.npz"])
    assert got["images"].shape == (2, 16, 16, 3) and got["item_id"].tolist() == ["a", "b"]
    assert read_shards([tmp_path / "s0.npz"])["images"].shape == (0, 0, 0, 3)
