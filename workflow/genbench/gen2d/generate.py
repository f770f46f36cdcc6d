"""Generation of one cell's shard: per-item seeds, fixed global blocks, uint8 NHWC npz.

Items are cut into global blocks of ``batch_size`` consecutive manifest rows and a shard is a contiguous run of
whole blocks. A block's batch is therefore the same whatever the number of shards, and each item's noise comes
from its own seed, so 1 shard and N shards give byte-identical images.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import pandas as pd
import torch

from ..progress import Progress
from ..runtime import Runtime
from ..seeding import item_noise, item_noise_stream, item_seed
from .registry import Generator
from .train import tensor_to_images

log = logging.getLogger(__name__)


def _on_device(draw, runtime: Runtime):
    def moved(k: int) -> torch.Tensor:
        return runtime.inputs(draw(k))

    return moved


def shard_blocks(n_items: int, batch_size: int, shard: int, n_shards: int) -> list[tuple[int, int]]:
    """Item ranges [start, stop) of the global blocks that belong to ``shard`` of ``n_shards``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    n_blocks = math.ceil(n_items / batch_size)
    lo, hi = (shard * n_blocks) // n_shards, ((shard + 1) * n_blocks) // n_shards
    return [(b * batch_size, min(n_items, (b + 1) * batch_size)) for b in range(lo, hi)]


def generate_shard(generator: Generator, manifest: pd.DataFrame, *, model: str, dataset: str, global_seed: int,
                   seed: int, steps: int, cfg: float, shard: int, n_shards: int,
                   batch_size: int, runtime: Runtime | None = None) -> dict[str, np.ndarray]:
    """``runtime``: the device and precision of the generator's passes (genbench.runtime); the generator must
    already be placed there (``Generator.place``). Noise is drawn on the CPU from the items' seeds either way, so an
    image does not depend on the device's random number generator."""
    images, ids, labels, nfe, passes = [], [], [], [], []
    shape = generator.noise_shape()
    blocks = shard_blocks(len(manifest), batch_size, shard, n_shards)
    progress = Progress(f"{model}/{dataset} steps {steps} cfg {cfg:g} seed {seed} shard {shard}",
                        sum(stop - start for start, stop in blocks), logger=log)
    for start, stop in blocks:
        rows = manifest.iloc[start:stop]
        seeds = [item_seed(global_seed, model, dataset, f"{seed}:{i}") for i in rows["item_id"]]
        noise = item_noise(seeds, shape)
        y = torch.from_numpy(rows["label_id"].to_numpy(np.int64, copy=True))
        if (y < 0).any():
            bad = rows["item_id"][rows["label_id"].to_numpy() < 0].tolist()[:5]
            raise ValueError(f"{dataset}: items without a class label cannot be generated: {bad}")
        draw = item_noise_stream(seeds, shape)
        if runtime is not None:
            noise, y = runtime.inputs(noise), runtime.inputs(y)
            draw = _on_device(draw, runtime)
        with runtime.compute() if runtime is not None else contextlib.nullcontext():
            res = generator.sample(y, noise, steps, cfg, noise_source=draw,
                                   prompts=rows["prompt"].tolist() if "prompt" in rows else None)
        out = res.x.float().cpu()
        if not torch.isfinite(out).all():
            raise FloatingPointError(f"{model} on {dataset} (steps {steps}, cfg {cfg}): non-finite samples in "
                                     f"items {rows['item_id'].iloc[0]}..{rows['item_id'].iloc[-1]}")
        images.append(tensor_to_images(out))
        ids.extend(rows["item_id"].tolist())
        labels.extend(rows["label_id"].tolist())
        nfe.extend([res.nfe] * len(rows))
        passes.extend([res.forward_passes] * len(rows))
        progress.update(len(rows))
    return {
        "images": np.concatenate(images) if images else np.zeros((0, 0, 0, 3), np.uint8),
        "item_id": np.array(ids, dtype=str),
        "label_id": np.array(labels, dtype=np.int64),
        "nfe": np.array(nfe, dtype=np.int64),
        "forward_passes": np.array(passes, dtype=np.int64),
    }
