"""The weights registry: local resolution (path, pipeline copy, Hugging Face cache), and real downloads from an
HTTP server on 127.0.0.1 with the checksum passing and failing."""

import hashlib
import http.server
import threading

import pytest
import yaml

from genbench.cli import main
from genbench.weights import (
    ChecksumError,
    FetchError,
    WeightsMissingError,
    WeightSpec,
    config_weights,
    fetch,
    resolve,
)

PAYLOAD = b"\x00genbench-weights\x01" * 200_000  # 3.8 MB: streamed in several 1 MiB chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www on 127.0.0.1 (an ephemeral port); yields the base URL and records the requests."""
    www = tmp_path / "www"
    (www / "org/repo/resolve/main").mkdir(parents=True)
    (www / "w.pth").write_bytes(PAYLOAD)
    (www / "org/repo/resolve/main/model.pt").write_bytes(PAYLOAD)
    seen = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *a):
            seen.append((self.path, self.headers.get("Authorization")))

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_fetch_url_verifies_full_and_prefix_hash(server, tmp_path):
    base, seen = server
    for kind, sha in (("full", SHA), ("prefix", SHA[:8])):
        target = tmp_path / kind / "w.pth"
        spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/w.pth", sha256=sha)
        with pytest.raises(WeightsMissingError, match=r"extractors.inception: weights .*w.pth not found.*fetch <con"):
            resolve(spec)
        assert fetch(spec) == target
        assert target.read_bytes() == PAYLOAD
        assert resolve(spec) == target
        assert (target.parent / "w.pth.sha256").read_text().split()[0] == SHA
    assert len(seen) == 2


def test_checksum_mismatch_discards_the_download(server, tmp_path):
    base, _ = server
    target = tmp_path / "w.pth"
    spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/w.pth", sha256="0" * 64)
    with pytest.raises(ChecksumError, match=f"expected 0{{64}}, got {SHA}; the download was discarded"):
        fetch(spec)
    assert not target.exists() and list(tmp_path.iterdir()) == [tmp_path / "www"]  # no temporary file left


def test_fetch_hf_file_through_endpoint_with_token(server, tmp_path, monkeypatch):
    base, seen = server
    monkeypatch.setenv("HF_ENDPOINT", base)
    monkeypatch.setenv("HF_TOKEN", "secret")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = WeightSpec("models.soflow", repo_id="org/repo", filename="model.pt", sha256=SHA)
    root = tmp_path / "weights"
    path = fetch(spec, root)
    assert path == root / "hf/org/repo/main/model.pt" and path.read_bytes() == PAYLOAD
    assert seen[-1] == ("/org/repo/resolve/main/model.pt", "Bearer secret")
    assert resolve(spec, root) == path


def test_http_error_is_named(server, tmp_path):
    base, _ = server
    spec = WeightSpec("models.x", path=str(tmp_path / "x.pt"), url=f"{base}/missing.pt")
    with pytest.raises(FetchError, match=r"models.x: downloading .*/missing.pt failed: HTTP 404"):
        fetch(spec)
    spec = WeightSpec("models.x", path=str(tmp_path / "x.pt"), url="http://127.0.0.1:9/none")
    with pytest.raises(FetchError, match="models.x: downloading"):
        fetch(spec, timeout=5)


def test_hf_cache_is_a_local_source(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snap = cache / "models--org--repo/snapshots/abc123"
    snap.mkdir(parents=True)
    (snap / "model.pt").write_bytes(b"x")
    (cache / "models--org--repo/refs").mkdir()
    (cache / "models--org--repo/refs/main").write_text("abc123\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert resolve(WeightSpec("m", repo_id="org/repo", filename="model.pt"), tmp_path / "w") == snap / "model.pt"
    assert resolve(WeightSpec("m", repo_id="org/repo"), tmp_path / "w") == snap  # a whole repository
    missing = WeightSpec("m", repo_id="org/other")
    with pytest.raises(WeightsMissingError, match="huggingface-cli download org/other"):
        resolve(missing)
    with pytest.raises(FetchError, match="whole repository"):
        fetch(missing)


def test_cli_fetch_dry_run_and_download(server, root, tmp_path, capsys):
    base, _ = server
    target = tmp_path / "w/pt_inception.pth"
    config = yaml.safe_load((root / "config/paper.yaml").read_text())
    config["extractors"]["inception"]["weights"] = {"path": str(target), "url": f"{base}/w.pth", "sha256": SHA[:8]}
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config))
    only = ["--only", "extractors.inception"]  # the paper's other weights are not served here
    assert main(["fetch", str(cfg), "--dry-run"]) == 1
    assert "missing  extractors.inception" in capsys.readouterr().out
    assert main(["fetch", str(cfg), *only]) == 0
    assert "fetched  extractors.inception" in capsys.readouterr().out
    assert main(["fetch", str(cfg), "--dry-run", *only]) == 0
    assert "present  extractors.inception" in capsys.readouterr().out
    assert main(["fetch", str(cfg), "--only", "models.nope"]) == 2


def test_paper_config_weights_are_registered(root):
    from genbench.config import load_config

    specs = {s.owner: s for s in config_weights(load_config(root / "config/paper.yaml"))}
    assert specs["extractors.inception"].sha256 == "6726825d"
    assert specs["models.soflow"].source_url("https://huggingface.co") == \
        "https://huggingface.co/zlab-princeton/SoFlow/resolve/main/SoFlow-XL-2.pt"
    assert "huggingface-cli download stabilityai/stable-diffusion-3.5-large" in specs["models.sd35"].fetch_hint()
    # the latent models' VAE is listed once (shared by several models), without the latent scale
    vaes = [s for s in specs.values() if s.repo_id == "stabilityai/sd-vae-ft-mse"]
    assert len(vaes) == 1 and vaes[0].owner.endswith(".arch.vae")
    assert "models.sit" in specs and "models.sit_sde" not in specs  # same file as models.sit: fetched once
