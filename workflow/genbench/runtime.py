"""Device and precision policy of every torch stage: the config's ``runtime: {device, precision}``, overridden per
model (``models.X.runtime``), extractor (``extractors.X.runtime``) and embedder (``embedders.X.runtime``).

- ``device``: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu`` or ``cuda``. ``cuda`` on a machine without
  one fails at once with a one-line error naming the stage.
- ``precision``: ``fp32`` (float32 with TF32 off), ``tf32`` (TF32 matmuls/convolutions on CUDA; plain float32 on
  CPU), ``bf16`` or ``fp16`` (autocast; fp16 only on CUDA). Modules keep float32 weights; autocast chooses the op
  dtypes, outputs are returned as float32.
- Metric feature extraction (extractors, embedders, LPIPS, 3D appearance) uses fp32 unless the extractor's or
  embedder's own ``runtime.precision`` says otherwise: the global precision applies to generation only, so numbers
  stay comparable with the published references whatever the generators run in.

The resolved device, dtype, GPU name and torch/CUDA versions go into the Parquet key-value metadata of the tables a
stage writes (``Runtime.metadata``), never into columns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import GenbenchError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
DEFAULT = {"device": "auto", "precision": "fp32"}


class DeviceUnavailableError(GenbenchError, RuntimeError):
    pass


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision one stage runs its torch modules."""

    stage: str
    device_name: str  # 'cpu' or 'cuda'
    precision: str

    @property
    def device(self):
        import torch

        return torch.device(self.device_name)

    @property
    def autocast_dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def place(self, module):
        """Move a module (or a wrapper with ``.to``) to the device; returns it."""
        moved = module.to(self.device)
        return module if moved is None else moved

    def inputs(self, x):
        """A tensor input moved to the device (dtype unchanged: autocast casts inside the ops)."""
        return x.to(self.device)

    @contextlib.contextmanager
    def compute(self) -> Iterator[None]:
        """The precision context of the stage's forward passes: TF32 on or off, autocast for bf16/fp16."""
        import torch

        with _tf32(self.precision == "tf32"):
            if self.autocast_dtype is None:
                yield
            else:
                with torch.autocast(self.device_name, dtype=self.autocast_dtype):
                    yield

    def metadata(self) -> dict[str, Any]:
        """What goes into the Parquet metadata of the stage's tables (``runtime``)."""
        import torch

        dtype = {"fp32": "float32", "tf32": "float32 (tf32 matmul)" if self.device_name == "cuda" else "float32",
                 "bf16": "bfloat16 (autocast)", "fp16": "float16 (autocast)"}[self.precision]
        gpu = torch.cuda.get_device_name(self.device) if self.device_name == "cuda" else None
        return {"stage": self.stage, "device": self.device_name, "precision": self.precision, "dtype": dtype,
                "gpu_name": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version() if self.device_name == "cuda" else None}


@contextlib.contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    import torch

    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    if hasattr(matmul, "fp32_precision"):  # torch >= 2.9: the legacy allow_tf32 flags must not be mixed with it
        conv_ns = getattr(conv, "conv", conv)
        old = (matmul.fp32_precision, conv_ns.fp32_precision)
        value = "tf32" if enabled else "ieee"
        matmul.fp32_precision = conv_ns.fp32_precision = value
        try:
            yield
        finally:
            matmul.fp32_precision, conv_ns.fp32_precision = old
    else:
        old = (matmul.allow_tf32, conv.allow_tf32)
        matmul.allow_tf32 = conv.allow_tf32 = enabled
        try:
            yield
        finally:
            matmul.allow_tf32, conv.allow_tf32 = old


def resolve_runtime(config: dict[str, Any], stage: str, override: dict[str, Any] | None = None,
                    metric: bool = False) -> Runtime:
    """The runtime of ``stage`` (named in errors: the rule and its wildcards) from ``config['runtime']`` and the
    model's / extractor's / embedder's own ``runtime`` (``override``). ``metric``: feature extraction, which stays
    fp32 unless ``override`` sets a precision."""
    glob = {**DEFAULT, **(config.get("runtime") or {})}
    own = override or {}
    device = own.get("device", glob["device"])
    precision = own.get("precision", DEFAULT["precision"] if metric else glob["precision"])
    if device not in DEVICES:
        raise ValueError(f"{stage}: runtime.device '{device}' is not one of {', '.join(DEVICES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"{stage}: runtime.precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if device == "auto":
        device = "cuda" if cuda_available() else "cpu"
    elif device == "cuda" and not cuda_available():
        raise DeviceUnavailableError(
            f"{stage}: runtime.device is 'cuda' but torch sees no CUDA device here (torch.cuda.is_available() is "
            f"False); run it on a GPU node or set runtime.device to auto or cpu")
    if precision == "fp16" and device != "cuda":
        raise ValueError(f"{stage}: runtime.precision fp16 needs a CUDA device (running on {device}); use fp32 or bf16")
    return Runtime(stage, device, precision)
