"""Converting official Flax checkpoints to the PyTorch families here.

MeanFlow's official weights (Gsunshine/meanflow) are Flax ``TrainState`` checkpoints written by
``flax.training.checkpoints`` (orbax directory or legacy msgpack file). Their tree is
``{params, ema_params, opt_state, step, ...}`` with the DiT under ``net``; module names follow the JAX DiT:
``TorchLinear`` wraps ``_flax_linear`` (a Dense: ``kernel`` is (in, out)), ``TorchEmbedding`` wraps
``_flax_embedding``, ``nn.Sequential`` children are ``layers_{i}`` (activations take indices but have no
parameters), the patch embedding is an NHWC ``nn.Conv`` (kernel (p, p, C_in, D)), and the position embedding is
computed, not stored. :func:`meanflow_flax_to_torch` maps that tree onto :class:`~genbench.gen2d.sit.SiT` with
``extra_inputs=("h",)`` (what the ``meanflow`` family builds): Dense kernels are transposed, the conv kernel goes
(p, p, C_in, D) -> (D, C_in, p, p), and ``pos_embed`` is filled with the same fixed sin-cos table. Every Flax leaf
must be consumed and every PyTorch key produced, so a checkpoint of another architecture fails with the names.

Reading the checkpoint needs flax (and orbax for the directory format): ``workflow/envs/flax.yaml``; the test suite
has it.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GenbenchError
from ..io import write_bytes, write_json
from .registry import WeightsMissingError
from .sit import SiT, sincos_pos_embed_2d


class ConversionError(GenbenchError, ValueError):
    pass


def read_flax_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw state tree of a Flax checkpoint (directory of ``checkpoint_<step>`` entries, one such entry, or a
    legacy msgpack file), as nested dicts of numpy arrays."""
    path = Path(path)
    if not path.exists():
        raise WeightsMissingError(f"Flax checkpoint {path} is missing: download the official checkpoint (e.g. the "
                                  f"MeanFlow README's MF-B/4 archive), unzip it there, or fix convert.checkpoint")
    try:
        from flax.training import checkpoints
    except ImportError as exc:  # pragma: no cover - the test environment has flax
        raise ImportError("converting a Flax checkpoint needs flax and orbax-checkpoint: run the rule with "
                          "--use-conda (workflow/envs/flax.yaml) or `pip install flax`") from exc
    if path.is_dir() and not any(p.name.startswith("checkpoint") for p in path.iterdir()) and \
            not (path / "_CHECKPOINT_METADATA").exists() and not (path / "checkpoint").exists():
        raise ConversionError(f"{path} holds no Flax checkpoint (expected checkpoint_<step> entries or an orbax "
                              f"checkpoint directory)")
    with warnings.catch_warnings():  # orbax: "sharding info not provided" (irrelevant: arrays go to numpy)
        warnings.filterwarnings("ignore", message="Sharding info not provided")
        if path.is_dir() and re.fullmatch(r"checkpoint_\d+", path.name):
            # one step's entry: restore it by its parent directory and step, as flax expects
            tree = checkpoints.restore_checkpoint(str(path.parent.resolve()), target=None,
                                                  step=int(path.name.split("_")[1]))
        else:
            tree = checkpoints.restore_checkpoint(str(path.resolve()), target=None)
    if not isinstance(tree, dict) or not tree:
        raise ConversionError(f"{path}: restored an empty or non-dict state ({type(tree).__name__})")
    return tree


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flatten(value, name))
        elif value is not None:
            out[name] = np.asarray(value)
    return out


def _entry(tree: dict[str, Any], entry: str) -> dict[str, np.ndarray]:
    if entry not in tree:
        raise ConversionError(f"checkpoint has no '{entry}' entry (top-level keys: {sorted(tree)}); use "
                              f"convert.entry: params or ema_params")
    sub = tree[entry]
    if isinstance(sub, dict) and "net" in sub:
        sub = sub["net"]
    return flatten(sub)


def _linear(flat: dict[str, np.ndarray], used: set[str], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    for leaf, name, fn in (("kernel", "weight", lambda a: a.T), ("bias", "bias", lambda a: a)):
        key = f"{src}/_flax_linear/{leaf}"
        if key not in flat:
            raise ConversionError(f"Flax parameter {key} is missing (needed for {dst}.{name})")
        out[f"{dst}.{name}"] = torch.from_numpy(np.array(fn(flat[key]), dtype=np.float32))
        used.add(key)


def meanflow_flax_to_torch(tree: dict[str, Any], entry: str = "ema_params") -> dict[str, torch.Tensor]:
    """PyTorch state dict (names of the ``meanflow`` family's SiT backbone) from a MeanFlow Flax state tree."""
    flat = _entry(tree, entry)
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}
    for leaf in ("kernel", "bias"):
        key = f"x_embedder/proj/{leaf}"
        if key not in flat:
            raise ConversionError(f"Flax parameter {key} is missing: not a MeanFlow DiT checkpoint")
        arr = flat[key]
        out[f"x_embedder.proj.{'weight' if leaf == 'kernel' else 'bias'}"] = torch.from_numpy(
            np.array(arr.transpose(3, 2, 0, 1) if leaf == "kernel" else arr, dtype=np.float32))
        used.add(key)
    for emb in ("t_embedder", "h_embedder"):
        for i in (0, 2):
            _linear(flat, used, f"{emb}/mlp/layers_{i}", f"{emb}.mlp.{i}", out)
    key = "y_embedder/embedding_table/_flax_embedding/embedding"
    if key not in flat:
        raise ConversionError(f"Flax parameter {key} is missing")
    out["y_embedder.embedding_table.weight"] = torch.from_numpy(np.array(flat[key], dtype=np.float32))
    used.add(key)
    depth = 0
    while f"blocks/layers_{depth}/attn/qkv/_flax_linear/kernel" in flat:
        src, dst = f"blocks/layers_{depth}", f"blocks.{depth}"
        for a, b in (("attn/qkv", "attn.qkv"), ("attn/proj", "attn.proj"), ("mlp/fc1", "mlp.fc1"),
                     ("mlp/fc2", "mlp.fc2"), ("adaLN_modulation/layers_1", "adaLN_modulation.1")):
            _linear(flat, used, f"{src}/{a}", f"{dst}.{b}", out)
        depth += 1
    if depth == 0:
        raise ConversionError("no transformer blocks (blocks/layers_0/...) in the checkpoint")
    _linear(flat, used, "final_layer/linear", "final_layer.linear", out)
    _linear(flat, used, "final_layer/adaLN_modulation/layers_1", "final_layer.adaLN_modulation.1", out)
    left = sorted(set(flat) - used)
    if left:
        raise ConversionError(f"{len(left)} Flax parameter(s) not mapped, e.g. {left[:5]}: the checkpoint is not the "
                              f"MeanFlow DiT this converter knows")
    return out


def infer_arch(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Backbone sizes implied by a converted state dict (for error messages and the sidecar)."""
    w = state["x_embedder.proj.weight"]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    return dict(hidden_size=int(w.shape[0]), in_channels=int(w.shape[1]), patch_size=int(w.shape[2]), depth=depth,
                num_classes=int(state["y_embedder.embedding_table.weight"].shape[0]) - 1,
                out_channels=int(state["final_layer.linear.weight"].shape[0]) // int(w.shape[2]) ** 2)


def checkpoint_digest(path: Path) -> str:
    """sha256 over the checkpoint's files (names and bytes, sorted), for the provenance sidecar."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path) if path.is_dir() else p.name).encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def convert_meanflow(source: str | Path, out: str | Path, net: SiT, entry: str = "ema_params") -> dict[str, Any]:
    """Convert a MeanFlow Flax checkpoint into ``out`` (safetensors) for ``net`` (the family's backbone, built from
    the model's arch), checking every name and shape against it; writes ``out`` with a ``.json`` provenance
    sidecar and returns the sidecar's content."""
    from safetensors.torch import save

    source = Path(source)
    tree = read_flax_checkpoint(source)
    state = meanflow_flax_to_torch(tree, entry)
    grid = net.input_size // net.patch_size
    state["pos_embed"] = torch.from_numpy(sincos_pos_embed_2d(net.pos_embed.shape[-1], grid)).float()[None]
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs arch {tuple(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    extra = sorted(set(state) - set(own))
    if missing or shapes or extra:
        raise ConversionError(f"{source}: converted weights do not fit the configured arch (checkpoint looks like "
                              f"{infer_arch(state)}): missing {missing[:5]}, unexpected {extra[:5]}, "
                              f"shape mismatches {shapes[:3]}")
    net.load_state_dict(state, strict=True)
    step = tree.get("step")
    meta = {"source": str(source), "source_sha256": checkpoint_digest(source), "entry": entry,
            "step": int(np.asarray(step)) if step is not None else None, "arch": infer_arch(state),
            "converter": "genbench.gen2d.convert.meanflow_flax_to_torch", "tensors": len(state)}
    out = Path(out)
    write_bytes(out, save({k: v.contiguous() for k, v in state.items()}, metadata={"source": str(source)}))
    write_json(out.with_suffix(".json"), meta)
    return meta


# converters by the config's ``convert.format``: (source, out, network to fill, entry) -> provenance
CONVERTERS = {"meanflow_flax": convert_meanflow}


def convert_model(model: str, spec: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Run the converter a model's ``convert:`` entry names, for the network its family builds from its arch."""
    from .families import get_family_net

    conv = spec["convert"]
    if conv["format"] not in CONVERTERS:
        raise ValueError(f"model '{model}': unknown convert.format '{conv['format']}' (known: {sorted(CONVERTERS)})")
    net = get_family_net(spec["family"], spec.get("arch", {}))
    meta = CONVERTERS[conv["format"]](conv["checkpoint"], out, net, conv.get("entry", "ema_params"))
    return {"model": model, **meta}
