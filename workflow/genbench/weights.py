"""The weights registry: where each model's and extractor's files live, and how they are fetched.

Every ``weights:`` entry of the config names its files in one of three ways::

    weights: {path: resources/weights/pt_inception-2015-12-05-6726825d.pth, url: https://..., sha256: 6726825d}
    weights: {repo_id: zlab-princeton/SoFlow, filename: SoFlow-XL-2.pt, revision: main, sha256: <64 hex>}
    weights: {repo_id: stabilityai/stable-diffusion-3.5-large}        # a whole repository (diffusers pipeline)

Loading (:func:`resolve`) reads local files only: the ``path``; for Hugging Face entries the pipeline's own copy
under ``resources/weights/hf/{repo_id}/{revision}/{filename}`` or the local Hugging Face cache
(``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``). A missing file raises
:class:`WeightsMissingError` naming the file, where it was looked for and the command that fetches it.

Fetching (:func:`fetch`, ``genbench fetch CONFIG``) runs on a connected machine: it downloads ``url`` (or the Hugging
Face ``resolve`` URL; ``$HF_ENDPOINT`` and ``$HF_TOKEN`` are honoured), streams it through SHA-256, checks the
hash against ``sha256`` (a full hash, or a prefix such as the 8 hex digits torch-hub file names carry) and only then
moves it into place. A mismatch deletes the download and says which hash was expected and which arrived. Whole
repositories (no ``filename``) are fetched with ``huggingface-cli download`` (the message says so).
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .io import atomic_path, sha256_file

DEFAULT_ROOT = Path("resources/weights")
CHUNK = 1 << 20


class WeightsMissingError(FileNotFoundError):
    """A checkpoint that is not on this machine; the message names the file and the command that fetches it."""


class ChecksumError(ValueError):
    """A downloaded file whose SHA-256 is not the registered one."""


class FetchError(RuntimeError):
    """A download that failed (HTTP error, unreachable host, no source to fetch from)."""


@dataclass(frozen=True)
class WeightSpec:
    owner: str  # who needs it, as a config path: "extractors.inception", "models.soflow"
    path: str | None = None
    url: str | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str = "main"
    sha256: str | None = None

    @classmethod
    def from_config(cls, owner: str, spec: dict[str, Any]) -> WeightSpec:
        known = {"path", "url", "repo_id", "filename", "revision", "sha256"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"{owner}.weights: unknown key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        if not spec.get("path") and not spec.get("repo_id"):
            raise ValueError(f"{owner}.weights: give 'path' (a local file) or 'repo_id' (+ 'filename')")
        return cls(owner=owner, **{k: v for k, v in spec.items() if v is not None})

    @property
    def label(self) -> str:
        if self.path:
            return self.path
        return f"{self.repo_id}/{self.filename}" if self.filename else f"{self.repo_id} (repository)"

    def fetch_hint(self) -> str:
        if self.repo_id and not self.filename and not self.path:
            return f"huggingface-cli download {self.repo_id} --revision {self.revision} (then it is in the HF cache)"
        if not self.url and not self.repo_id:
            return f"no download source is registered: copy the file to {self.path} (or add 'url' to the weights)"
        return "genbench fetch <config> (on a machine with internet access)"

    def local_candidates(self, root: str | Path = DEFAULT_ROOT) -> list[Path]:
        if self.path:
            return [Path(self.path)]
        out = []
        if self.filename:
            out.append(Path(root) / "hf" / self.repo_id / self.revision / self.filename)
        snap = hf_cache_snapshot(self.repo_id, self.revision)
        if snap is not None:
            out.append(snap / self.filename if self.filename else snap)
        return out

    def source_url(self, endpoint: str | None = None) -> str | None:
        if self.url:
            return self.url
        if self.repo_id and self.filename:
            endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
            return f"{endpoint}/{self.repo_id}/resolve/{self.revision}/{self.filename}"
        return None

    def fetch_target(self, root: str | Path = DEFAULT_ROOT) -> Path:
        if self.path:
            return Path(self.path)
        if not self.filename:
            raise FetchError(f"{self.owner}: {self.label} is a whole repository; fetch it with {self.fetch_hint()}")
        return Path(root) / "hf" / self.repo_id / self.revision / self.filename


def hf_cache_dir() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hf_cache_snapshot(repo_id: str | None, revision: str = "main") -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` (a branch, tag or commit) in the local HF cache."""
    if not repo_id:
        return None
    repo = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / revision
    commit = ref.read_text().strip() if ref.is_file() else revision
    snap = repo / "snapshots" / commit
    return snap if snap.is_dir() else None


def resolve(spec: WeightSpec, root: str | Path = DEFAULT_ROOT) -> Path:
    """The local file (or folder) of ``spec``; never downloads."""
    tried = spec.local_candidates(root)
    for p in tried:
        if p.exists() and (p.is_dir() or p.stat().st_size > 0):
            return p
    where = ", ".join(str(p) for p in tried) or "nowhere (no local path and no HF cache entry)"
    raise WeightsMissingError(f"{spec.owner}: weights {spec.label} not found (looked in: {where}). "
                              f"Fetch them with: {spec.fetch_hint()}")


def check_hash(digest: str, expected: str | None, what: str) -> None:
    if expected and not digest.startswith(expected.lower()):
        raise ChecksumError(f"{what}: SHA-256 mismatch: expected {expected}{'...' if len(expected) < 64 else ''}, "
                            f"got {digest}; the download was discarded")


def fetch(spec: WeightSpec, root: str | Path = DEFAULT_ROOT, endpoint: str | None = None, timeout: float = 60.0,
          force: bool = False) -> Path:
    """Download ``spec``'s file to where :func:`resolve` finds it, verifying its SHA-256; returns the path.
    An existing file is kept (and verified when a hash is registered) unless ``force``."""
    target = spec.fetch_target(root)
    if target.exists() and not force:
        if spec.sha256:
            check_hash(sha256_file(target), spec.sha256, f"{spec.owner}: existing {target}")
        return target
    url = spec.source_url(endpoint)
    if url is None:
        raise FetchError(f"{spec.owner}: no download source for {spec.label}: {spec.fetch_hint()}")
    headers = {"User-Agent": "genbench-fetch"}
    token = os.environ.get("HF_TOKEN")
    if token and spec.repo_id and not spec.url:
        headers["Authorization"] = f"Bearer {token}"  # gated repositories (e.g. FLUX.1-dev)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as resp, \
                atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    h.update(chunk)
                    f.write(chunk)
            check_hash(h.hexdigest(), spec.sha256, f"{spec.owner}: {url}")  # raising here discards tmp
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{spec.owner}: downloading {url} failed: HTTP {exc.code} {exc.reason}"
                         + (" (gated repository? set HF_TOKEN)" if exc.code in (401, 403) else "")) from exc
    except urllib.error.URLError as exc:
        raise FetchError(f"{spec.owner}: downloading {url} failed: {exc.reason}") from exc
    (target.parent / (target.name + ".sha256")).write_text(f"{h.hexdigest()}  {target.name}\n")
    return target


def config_weights(config: dict[str, Any]) -> list[WeightSpec]:
    """Every weights entry of a (validated) config: models (with their VAE / RAE decoders), then extractors and
    embedders.
    A file shared by several entries (a VAE, one checkpoint under two samplers) is listed once, under its first
    owner."""
    out: list[WeightSpec] = []
    seen = set()
    for section in ("models", "extractors", "embedders"):
        for name, spec in config.get(section, {}).items():
            entries = [(f"{section}.{name}", spec.get("weights"))]
            arch = spec.get("arch") if isinstance(spec.get("arch"), dict) else {}
            vae = arch.get("vae")
            if isinstance(vae, dict):
                entries.append((f"{section}.{name}.arch.vae", {k: v for k, v in vae.items()
                                                                  if k not in ("scale", "latent_mean", "latent_std")}))
            if isinstance(arch.get("decoder"), dict):  # Scale-RAE's RAE decoder repository
                entries.append((f"{section}.{name}.arch.decoder", arch["decoder"]))
            for owner, weights in entries:
                if not weights:
                    continue
                key = weights.get("path") or (weights.get("repo_id"), weights.get("filename"),
                                              weights.get("revision", "main"))
                if key not in seen:
                    seen.add(key)
                    out.append(WeightSpec.from_config(owner, weights))
    return out
