"""Atomic file writes and small file utilities shared by every stage.

Every artifact is written to a temporary file in the destination directory and renamed into place, so a killed
job never leaves a half-written output that a rerun would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are shared like any other file
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz atomically (byte-identical for identical arrays)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of the .npy stream ``f``, left at the start of the data; only the header is
    read, nothing is unpickled. Refuses other .npy format versions than 1.0/2.0 and object dtypes (ValueError)."""
    version = np.lib.format.read_magic(f)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"uses .npy format {version}; re-save it with NumPy (format 1.0/2.0)")
    shape, fortran, dtype = readers[version](f)
    if dtype.hasobject:
        raise ValueError("holds Python objects; refusing to unpickle")
    return shape, fortran, dtype


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArchiveError(ValueError):
    pass


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, what: str, md5: str | None = None) -> None:
    """Check a tar archive's MD5 (when published) and extract it into ``target``, refusing members that would land
    outside it (absolute paths, '..', links pointing out) before anything is written."""
    import tarfile

    archive, target = Path(archive), Path(target)
    if md5:
        got = md5_file(archive)
        if got != md5:
            raise ArchiveError(f"{what}: {archive} has MD5 {got}, the published one is {md5}; download it again")
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            dest = (target / m.name).resolve()
            if target != dest and target not in dest.parents:
                raise ArchiveError(f"{what}: archive member '{m.name}' would be written outside {target}")
            if (m.issym() or m.islnk()) and target not in (dest.parent / m.linkname).resolve().parents:
                raise ArchiveError(f"{what}: archive member '{m.name}' links outside {target}")
        tar.extractall(target, filter="data")
