"""The weights registry: where each model's and extractor's files live, and how they are fetched.

Every ``weights:`` entry of the config names its files in one of three ways::

    weights: {path: resources/weights/pt_inception-2015-12-05-6726825d.pth, url: https://..., sha256: 6726825d}
    weights: {repo_id: zlab-princeton/SoFlow, filename: SoFlow-XL-2.pt, revision: main, sha256: <64 hex>}
    weights: {repo_id: stabilityai/stable-diffusion-3.5-large}        # a whole repository (diffusers pipeline)

(a ``path`` with a ``repo_id`` says where the Hugging Face file or repository must be put, e.g. inside an upstream
checkout).

Loading (:func:`resolve`) reads local files only: the ``path``; for Hugging Face entries the pipeline's own copy
under ``resources/weights/hf/{repo_id}/{revision}/{filename}`` or the local Hugging Face cache
(``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``). A missing file raises
:class:`WeightsMissingError` naming the file, where it was looked for and the command that fetches it.

Fetching (:func:`fetch`, ``genbench fetch CONFIG``) runs on a connected machine, through ``huggingface_hub``:
``hf_hub_download`` for a Hugging Face file, ``snapshot_download`` for a whole repository (into the Hugging Face
cache, or into ``path``), and its ``http_get`` for a plain ``url``. All three resume an interrupted download, retry
transient network errors and show a progress bar; ``$HF_ENDPOINT``, ``$HF_TOKEN`` (gated repositories) and
``$HF_HUB_DOWNLOAD_TIMEOUT`` are honoured. A file is downloaded to a staging name, its SHA-256 checked against
``sha256`` (a full hash, or a prefix such as the 8 hex digits torch-hub file names carry) and only then moved into
place. A mismatch deletes the download and says which hash was expected and which arrived.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GenbenchError
from .io import atomic_path, sha256_file

DEFAULT_ROOT = Path("resources/weights")
STAGING = ".incoming"  # under the weights root: Hugging Face files until verified (resumed from there)


class WeightsMissingError(GenbenchError, FileNotFoundError):
    """A checkpoint that is not on this machine; the message names the file and the command that fetches it."""


class ChecksumError(GenbenchError, ValueError):
    """A downloaded file whose SHA-256 is not the registered one."""


class FetchError(GenbenchError, RuntimeError):
    """A download that failed (HTTP error, unreachable host, no source to fetch from)."""


def _hf_cli_download(repo_id: str, revision: str, local_dir: str | None = None) -> str:
    """The Hugging Face client's own command for a repository (the ``hf`` CLI of huggingface_hub)."""
    return f"hf download {repo_id} --revision {revision}" + (f" --local-dir {local_dir}" if local_dir else "")


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

    @property
    def is_repository(self) -> bool:
        """A whole Hugging Face repository (no ``filename``, no ``url``)."""
        return bool(self.repo_id and not self.filename and not self.url)

    def fetch_hint(self) -> str:
        if not self.url and not self.repo_id:
            return f"no download source is registered: copy the file to {self.path} (or add 'url' to the weights)"
        if self.is_repository:
            where = f"into {self.path}" if self.path else "into the HF cache"
            return (f"genbench fetch <config> --only {self.owner} (on a machine with internet access), or "
                    f"{_hf_cli_download(self.repo_id, self.revision, self.path)} ({where})")
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
        """Where a fetched file goes (a repository: the ``path``, or the HF cache's snapshot folder)."""
        if self.path:
            return Path(self.path)
        if not self.filename:
            return hf_cache_dir() / ("models--" + self.repo_id.replace("/", "--"))
        return Path(root) / "hf" / self.repo_id / self.revision / self.filename

    def staging_path(self, root: str | Path = DEFAULT_ROOT) -> Path:
        """Where a download stays until it is complete and verified (a later fetch resumes it): a URL's partial
        file next to its target, or the folder under ``root`` hf_hub_download downloads a Hugging Face file into."""
        if self.url:
            target = self.fetch_target(root)
            return target.with_name(target.name + ".part")
        return Path(root) / STAGING / self.repo_id / self.revision


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


def _endpoint(endpoint: str | None) -> str | None:
    # huggingface_hub reads $HF_ENDPOINT once, at import; read it per call so that a changed value counts
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def _fetch_error(spec: WeightSpec, what: str, exc: Exception) -> FetchError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    reason = f"HTTP {status}" if status else type(exc).__name__
    detail = " ".join(str(exc).split())[:300]
    gated = " (gated repository? accept its licence on the Hub and set HF_TOKEN)" if status in (401, 403) else ""
    return FetchError(f"{spec.owner}: downloading {what} failed: {reason}: {detail}{gated}")


def _download_url(spec: WeightSpec, staged: Path) -> None:
    """``spec.url`` into ``staged``, resuming a partial file left there by an interrupted run."""
    from huggingface_hub.file_download import http_get

    staged.parent.mkdir(parents=True, exist_ok=True)
    with open(staged, "ab") as f:
        http_get(spec.url, f, resume_size=f.tell(), headers={"User-Agent": "genbench-fetch"},
                 displayed_filename=staged.name)


def _download_hf_file(spec: WeightSpec, staging: Path, endpoint: str | None) -> Path:
    """One file of a Hugging Face repository into the staging folder (hf_hub_download resumes from its own
    ``.cache`` there); returns the staged file."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=spec.repo_id, filename=spec.filename, revision=spec.revision,
                                local_dir=staging, endpoint=_endpoint(endpoint)))


def _fetch_repository(spec: WeightSpec, endpoint: str | None) -> Path:
    """A whole Hugging Face repository: into ``spec.path`` when given, else into the HF cache (where
    :func:`resolve` looks)."""
    from huggingface_hub import snapshot_download

    kwargs = {"local_dir": spec.path} if spec.path else {"cache_dir": hf_cache_dir()}
    return Path(snapshot_download(repo_id=spec.repo_id, revision=spec.revision, endpoint=_endpoint(endpoint),
                                  **kwargs))


def fetch(spec: WeightSpec, root: str | Path = DEFAULT_ROOT, endpoint: str | None = None,
          force: bool = False) -> Path:
    """Download ``spec``'s file (or repository) to where :func:`resolve` finds it, verifying a file's SHA-256;
    returns the path. An existing file is kept (and verified when a hash is registered) unless ``force``."""
    from huggingface_hub.errors import HfHubHTTPError

    if not spec.url and not spec.repo_id:
        raise FetchError(f"{spec.owner}: no download source for {spec.label}: {spec.fetch_hint()}")
    if spec.is_repository:
        try:
            return _fetch_repository(spec, endpoint)
        except (HfHubHTTPError, OSError, ValueError) as exc:  # ValueError: e.g. an invalid repo_id
            raise _fetch_error(spec, f"repository {spec.repo_id}@{spec.revision}", exc) from exc
    target = spec.fetch_target(root)
    if target.exists() and not force:
        if spec.sha256:
            check_hash(sha256_file(target), spec.sha256, f"{spec.owner}: existing {target}")
        return target
    what = spec.url or spec.source_url(_endpoint(endpoint))
    try:
        if spec.url:
            staged = spec.staging_path(root)
            _download_url(spec, staged)
        else:
            staged = _download_hf_file(spec, spec.staging_path(root), endpoint)
    except (HfHubHTTPError, OSError, ValueError) as exc:  # ValueError: e.g. an invalid repo_id
        raise _fetch_error(spec, what, exc) from exc
    except Exception as exc:  # httpx errors that survived huggingface_hub's retries (refused, timed out)
        if type(exc).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore"):
            raise
        raise _fetch_error(spec, what, exc) from exc
    digest = sha256_file(staged)
    try:
        check_hash(digest, spec.sha256, f"{spec.owner}: {what}")
    except ChecksumError:
        staged.unlink()
        raise
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:  # the target appears complete and verified, or not at all
        shutil.move(staged, tmp)  # a rename, or a copy when the path is on another file system
    (target.parent / (target.name + ".sha256")).write_text(f"{digest}  {target.name}\n")
    return target


def config_weights(config: dict[str, Any]) -> list[WeightSpec]:
    """Every weights entry of a (validated) config: models (with their VAE / RAE decoders), then extractors and
    embedders.
    A file shared by several entries (a VAE, one checkpoint under two samplers) is listed once, under its first
    owner."""
    out: list[WeightSpec] = []
    seen = set()
    entries: list[tuple[str, dict[str, Any] | None]] = []
    for section in ("models", "extractors", "embedders"):
        for name, spec in config.get(section, {}).items():
            entries.append((f"{section}.{name}", spec.get("weights")))
            arch = spec.get("arch") if isinstance(spec.get("arch"), dict) else {}
            vae = arch.get("vae")
            if isinstance(vae, dict):
                entries.append((f"{section}.{name}.arch.vae", {k: v for k, v in vae.items()
                                                                  if k not in ("scale", "latent_mean", "latent_std")}))
            if isinstance(arch.get("decoder"), dict):  # Scale-RAE's RAE decoder repository
                entries.append((f"{section}.{name}.arch.decoder", arch["decoder"]))
            if isinstance(spec.get("processor"), dict):  # PickScore's CLIP processor repository
                entries.append((f"{section}.{name}.processor", spec["processor"]))
    entries += reconstructor_weights(config)
    for name, spec in config.get("datasets3d", {}).items():  # the seed's automatic masks of photo inputs (SAM 2)
        mask = (spec.get("legacy_input") or {}).get("mask") or {}
        if spec.get("legacy_input") and spec["adapter"] == "gso" and mask.get("source", "sam2_auto") == "sam2_auto":
            from .recon3d.photos import DEFAULTS

            entries.append((f"datasets3d.{name}.legacy_input.mask.model",
                            mask.get("model", DEFAULTS["gso"]["mask"]["model"])))
    for owner, weights in entries:
        if not weights:
            continue
        key = weights.get("path") or (weights.get("repo_id"), weights.get("filename"), weights.get("revision", "main"))
        if key not in seen:
            seen.add(key)
            out.append(WeightSpec.from_config(owner, weights))
    return out


def reconstructor_weights(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The 3D track's weights: each external image-to-3D model's (its config entry, else the adapter's
    Hugging Face default), the further models an adapter loads (``aux_weights``: LGM's ImageDream, InstantMesh's
    Zero123++) and the LPIPS trunk of the appearance metrics."""
    entries = []
    recons = config.get("reconstructors", {})
    if recons:
        from .catalog import RECONSTRUCTORS

        for name, spec in recons.items():
            cls = RECONSTRUCTORS.lookup(spec["kind"])
            weights = spec.get("weights", getattr(cls, "default_weights", None))
            if weights:
                entries.append((f"reconstructors.{name}", weights))
            for key, default in getattr(cls, "aux_weights", {}).items():  # e.g. LGM's multi-view diffusion model
                entries.append((f"reconstructors.{name}.{key}", spec.get(key, default)))
    backbone = config.get("recon3d", {}).get("appearance", {}).get("lpips", {}).get("backbone")
    if isinstance(backbone, dict):
        entries.append(("recon3d.appearance.lpips.backbone", backbone))
    return entries
