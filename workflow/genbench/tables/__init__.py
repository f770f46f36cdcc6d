"""Tidy Parquet tables with provenance in the file's key-value metadata (never in columns)."""

from __future__ import annotations

import json
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..io import atomic_path

META_KEY = b"genbench"
TRACKED_PACKAGES = ("genbench", "torch", "numpy", "scipy", "pandas", "pyarrow", "pillow", "snakemake")
REPO_ROOT = Path(__file__).resolve().parents[3]


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def git_commit(root: Path = REPO_ROOT) -> str:
    """HEAD of the repository holding the workflow, with '+dirty' for uncommitted changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(config_hash: str | None = None) -> dict[str, Any]:
    """What made a table: the config, the commit, package versions and the machine (CPU, SIMD level, math
    libraries: genbench.repro), so that a difference between two runs can be traced."""
    from ..repro import machine_provenance

    return {"config_hash": config_hash, "git_commit": git_commit(), "versions": package_versions(),
            "machine": machine_provenance()}


def write_parquet(df: pd.DataFrame, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
    """Write ``df`` atomically, with ``metadata`` as JSON under the 'genbench' key of the schema metadata."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[META_KEY] = json.dumps(metadata or {}, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_metadata(path: str | Path) -> dict[str, Any]:
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta.get(META_KEY, b"{}"))
