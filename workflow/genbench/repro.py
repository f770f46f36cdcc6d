"""Reproducibility across machines: what the trained stand-ins need, and what the tables record.

Two runs on one kind of machine are bit-identical (fixed seeds and thread counts). Across machines, float kernels
differ in the last bits (another SIMD level, another BLAS, another reduction order). Training is a long chain of
such operations: a model whose training amplifies last-bit differences (the mini-world classifier in float32
was one, see docs/tables.md) gives metrics that move with the machine. The tools here are:

* ``training_dtype``: the precision a stand-in trains in (``train.precision``); float64 pushes rounding noise
  ~1e9 times lower than float32, which is what keeps the classifier's features, and so FID, IS and KID, fixed;
* ``perturb_parameters``: a relative perturbation of the initial weights (``train.init_perturbation``), used by
  the cross-machine test to emulate another machine's rounding on this one;
* ``machine_provenance``: the CPU, its SIMD level and the math libraries, written into every table's metadata,
  so that a difference between two runs can be traced to the machines that made them.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from typing import Any

PRECISIONS = ("float32", "float64")
# environment variables that select kernels or thread pools; recorded when set
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
              "OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")


def training_dtype(train: dict[str, Any], default: str = "float32"):
    """The torch dtype of ``train['precision']`` (``default`` unless set)."""
    import torch

    name = train.get("precision", default)
    if name not in PRECISIONS:
        raise ValueError(f"train.precision '{name}': expected one of {', '.join(PRECISIONS)}")
    return getattr(torch, name)


def perturb_parameters(module, eps: float, seed: int = 0) -> None:
    """Multiply every parameter by (1 + eps * N(0, 1)) in its own dtype, from a seeded generator: a stand-in for
    the rounding differences of another machine (eps of a few ulps or more). No-op for eps = 0."""
    if not eps:
        return
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.copy_((p.double() * (1 + eps * noise)).to(p.dtype))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model name", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def simd_level(flags: set[str] | None = None) -> str:
    """The best x86 SIMD level of this CPU as torch's dispatcher names it (AVX512 needs avx512f/bw/vl/dq, as
    ATen's check), or the architecture name elsewhere."""
    flags = _cpu_flags() if flags is None else flags
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        return "AVX512"
    if {"avx2", "fma"} <= flags:
        return "AVX2"
    return "DEFAULT" if platform.machine() in ("x86_64", "AMD64") else platform.machine()


def _numpy_blas() -> str:
    try:
        import numpy as np

        deps = np.show_config(mode="dicts").get("Build Dependencies", {})
        blas = deps.get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '?')}".strip()
    except Exception:  # noqa: BLE001 - provenance must never fail a stage
        return "unknown"


@lru_cache(maxsize=1)
def _static_machine() -> dict[str, Any]:
    return {"machine": platform.machine(), "cpu": _cpu_model(), "cpu_simd": simd_level(),
            "python": platform.python_version(), "numpy_blas": _numpy_blas()}


def _torch_libraries(build: str) -> dict[str, str]:
    """MKL and oneDNN versions from torch's build summary (torch.__config__.show())."""
    out = {}
    for line in build.splitlines():
        line = line.strip(" -")
        if "Math Kernel Library Version" in line:
            out["mkl"] = line.split("Version", 1)[1].split("-")[0].strip()
        elif "MKL-DNN" in line or "oneDNN" in line:
            out["onednn"] = line.split(" v", 1)[1].split()[0] if " v" in line else line
    return out


def machine_provenance() -> dict[str, Any]:
    """The CPU, its SIMD level, the kernel-selecting environment and the math libraries. torch's own view (the
    capability its dispatcher uses, oneDNN/MKL versions, threads) is added only when torch is already imported:
    stages that never need torch do not pay for importing it."""
    out = dict(_static_machine())
    env = {k: os.environ[k] for k in KERNEL_ENV if k in os.environ}
    if env:
        out["env"] = env
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            out["torch"] = {"version": torch.__version__,
                            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "threads": torch.get_num_threads(), **_torch_libraries(torch.__config__.show())}
        except Exception as exc:  # noqa: BLE001 - provenance must never fail a stage
            out["torch"] = {"version": getattr(torch, "__version__", "?"), "error": str(exc)}
    return out


# ------------------------------------------------------------------------------ emulating another machine

# a stand-in's initial weights are perturbed by this much (relative) per training precision: ~8000 ulps of
# float32 and ~4500 of float64, far more than the last-bit differences another machine's kernels make in a step
EMULATION_EPS = {"float32": 1e-6, "float64": 1e-12}


def other_machine_env(simd: str | None = None) -> dict[str, str]:
    """Environment that makes torch (ATen), oneDNN and MKL run other kernels than this CPU's best: one SIMD level
    lower (AVX512 -> AVX2, AVX2 -> the scalar default)."""
    simd = simd or simd_level()
    if simd == "AVX512":
        return {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
    return {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}


def other_machine_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every trained stand-in (generators, extractors, embedders with ``train``) trained as on
    another machine: another thread count and initial weights perturbed by EMULATION_EPS of its precision."""
    import copy

    out = copy.deepcopy(config)
    for section in ("models", "extractors", "embedders"):
        for spec in (out.get(section) or {}).values():
            train = spec.get("train")
            if not isinstance(train, dict):
                continue
            precision = train.get("precision", "float64" if section == "extractors" else "float32")
            train["init_perturbation"] = EMULATION_EPS[precision]
            train["threads"] = 1 if train.get("threads", 2) != 1 else 2
    return out


def metric_deviations(a, b, keys: list[str]):
    """Per metric kind, the largest relative difference of 'value' between two long metric tables (rows matched on
    ``keys``) and the number of rows compared: what another machine moved."""
    import numpy as np
    import pandas as pd

    m = a.merge(b, on=keys, suffixes=("_a", "_b"))
    va, vb = m["value_a"].to_numpy(np.float64), m["value_b"].to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(va == vb, 0.0, np.abs(vb - va) / np.abs(va))
    m = m.assign(rel=rel, abs=np.abs(vb - va))
    return (m.groupby("metric").agg(max_rel=("rel", "max"), max_abs=("abs", "max"), rows=("rel", "size"))
            .reset_index().pipe(pd.DataFrame))
