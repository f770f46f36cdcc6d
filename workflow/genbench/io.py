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
import posixpath
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenbenchError

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


# the member of a stage's .npz that records where and how it was computed (genbench.runtime: device, dtype, GPU,
# versions, the image preparation): inside the file, so it travels with the data through any storage (a sidecar
# file that is not a declared output is lost by Snakemake's storage plugins)
RUNTIME_KEY = "genbench_runtime"


def save_npz(path: str | os.PathLike, runtime: dict[str, Any] | None = None, **arrays: np.ndarray) -> None:
    """Write an uncompressed .npz atomically (byte-identical for identical arrays and record). ``runtime``, when
    given, is stored as one JSON string member (:data:`RUNTIME_KEY`, read back by :func:`read_npz_runtime`)."""
    if RUNTIME_KEY in arrays:
        raise ValueError(f"{path}: '{RUNTIME_KEY}' is reserved for the runtime record (pass runtime=...)")
    if runtime is not None:
        arrays[RUNTIME_KEY] = np.array(json.dumps(runtime, sort_keys=True, default=str))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def load_npz(path: str | os.PathLike, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of an .npz, without its runtime record (:func:`read_npz_runtime`); with ``keys``, only those
    members are read (a feature file's ``features`` without its logits and spatial features)."""
    with np.load(path, allow_pickle=False) as z:
        want = [k for k in z.files if k != RUNTIME_KEY] if keys is None else list(keys)
        missing = [k for k in want if k not in z.files]
        if missing:
            raise KeyError(f"{path}: no member(s) {missing} (has {sorted(z.files)}); rerun the rule that wrote it")
        return {k: z[k] for k in want}


def read_npz_runtime(path: str | os.PathLike) -> dict[str, Any] | None:
    """The runtime record :func:`save_npz` stored in an .npz, or None when it has none (only that member is
    read)."""
    with np.load(path, allow_pickle=False) as z:
        if RUNTIME_KEY not in z.files:
            return None
        return json.loads(str(z[RUNTIME_KEY]))


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


class ArchiveError(GenbenchError, ValueError):
    pass


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _inside(rel: str) -> str | None:
    """``rel`` normalised as a path inside the extraction root, or None when it is absolute or climbs out."""
    if not rel or rel.startswith("/") or "\x00" in rel:
        return None
    norm = posixpath.normpath(rel)
    if norm == ".." or norm.startswith("../"):
        return None
    return "" if norm == "." else norm


def _check_members(members: list, archive: Path, what: str) -> None:
    """Every member checked before anything is written: regular files, directories and links only; names and link
    targets inside the root (a symlink resolves against its own folder, a hard link against the archive root,
    as tar does); nothing written through a symlink of the archive."""
    where = f"{what}: {archive}"
    links: set[str] = set()
    seen: set[str] = set()
    for m in members:
        name = _inside(m.name)
        if name is None:
            raise ArchiveError(f"{where}: member '{m.name}' would be written outside the target folder; the archive "
                               f"is not the published one: download it again")
        if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
            kind = ("character device" if m.ischr() else "block device" if m.isblk() else "FIFO" if m.isfifo()
                    else f"type {m.type!r}")
            raise ArchiveError(f"{where}: member '{m.name}' is a {kind}, not a file, folder or link; the archive is "
                               f"not the published one: download it again")
        parts = name.split("/")
        through = next(("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in links), None)
        if through is not None:
            raise ArchiveError(f"{where}: member '{m.name}' would be written through the link '{through}' (outside "
                               f"the target folder); download the archive again")
        if m.issym():
            target = _inside(posixpath.join(posixpath.dirname(name), m.linkname)) if m.linkname else None
            if target is None or m.linkname.startswith("/"):
                raise ArchiveError(f"{where}: symlink '{m.name}' -> '{m.linkname}' links outside the target folder; "
                                   f"download the archive again")
            links.add(name)
        elif m.islnk():
            target = _inside(m.linkname)  # tar resolves hard links against the archive root
            if target is None:
                raise ArchiveError(f"{where}: hard link '{m.name}' -> '{m.linkname}' links outside the target "
                                   f"folder; download the archive again")
            if target not in seen:
                raise ArchiveError(f"{where}: hard link '{m.name}' -> '{m.linkname}' names no earlier member of the "
                                   f"archive; download the archive again")
        seen.add(name)


def _merge_into(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst`` (replacing files, merging folders)."""
    for child in src.iterdir():
        to = dst / child.name
        if child.is_dir() and not child.is_symlink() and to.is_dir() and not to.is_symlink():
            _merge_into(child, to)
        else:
            if to.is_dir() and not to.is_symlink():
                shutil.rmtree(to)
            os.replace(child, to)


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, what: str, md5: str | None = None) -> None:
    """Check a tar archive's MD5 (when published) and extract it into ``target``. Every member is checked before
    anything is written (no absolute paths or '..', no special files, no links pointing out, nothing written
    through a link); the archive is extracted into a temporary folder inside ``target`` and moved into place only
    when all of it was read, so a truncated or refused archive leaves nothing behind. Every failure is an
    :class:`ArchiveError` naming the archive."""
    import tarfile

    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise ArchiveError(f"{what}: {archive} is missing; download it there")
    if md5:
        got = md5_file(archive)
        if got != md5:
            raise ArchiveError(f"{what}: {archive} has MD5 {got}, the published one is {md5}; download it again")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            _check_members(members, archive, what)
            target.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
            try:
                tar.extractall(tmp, members=members, filter="data")
                _merge_into(tmp, target.resolve())
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except ArchiveError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{what}: {archive} cannot be extracted ({type(exc).__name__}: {exc}); it is truncated or "
                           f"corrupt: download it again") from exc
