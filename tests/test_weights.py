"""The weights registry: local resolution (path, pipeline copy, Hugging Face cache) and fetching through
huggingface_hub: plain URLs through its http_get against an HTTP server on 127.0.0.1 (checksum passing and failing,
an interrupted transfer resumed), Hugging Face files and repositories through a fake hf_hub_download /
snapshot_download whose call arguments are checked (no test touches the network)."""

import hashlib
import http.server
import threading
from pathlib import Path

import huggingface_hub
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

PAYLOAD = b"\x00genbench-weights\x01" * 200_000  # 3.8 MB: streamed in several chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    """Serves PAYLOAD at /w.pth on 127.0.0.1 (an ephemeral port), with HTTP Range requests; /drop.pth sends half
    of it and drops the connection once (a network outage mid-transfer). Yields the base URL and the requests
    (path, Range header)."""
    seen = []
    dropped = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers.get("Range")))
            if self.path not in ("/w.pth", "/drop.pth"):
                self.send_error(404)
                return
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            self.send_header("Content-Length", str(len(PAYLOAD) - start))
            self.end_headers()
            if self.path == "/drop.pth" and not dropped:
                dropped.append(True)
                self.wfile.write(PAYLOAD[:len(PAYLOAD) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(PAYLOAD[start:])

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def no_wait(monkeypatch):
    """huggingface_hub waits 1 s between its retries; the tests need not."""
    import huggingface_hub.file_download

    monkeypatch.setattr(huggingface_hub.file_download.time, "sleep", lambda s: None)


@pytest.fixture
def fake_hub(monkeypatch):
    """hf_hub_download / snapshot_download that record their arguments and write what the Hub would."""
    calls = []
    content = {"payload": PAYLOAD}

    def hf_hub_download(**kwargs):
        calls.append(("hf_hub_download", kwargs))
        out = Path(kwargs["local_dir"]) / kwargs["filename"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(content["payload"])
        return str(out)

    def snapshot_download(**kwargs):
        calls.append(("snapshot_download", kwargs))
        if "local_dir" in kwargs:
            out = Path(kwargs["local_dir"])
        else:
            repo = Path(kwargs["cache_dir"]) / ("models--" + kwargs["repo_id"].replace("/", "--"))
            (repo / "refs").mkdir(parents=True, exist_ok=True)
            (repo / "refs" / kwargs["revision"]).write_text("c0ffee\n")
            out = repo / "snapshots" / "c0ffee"
        out.mkdir(parents=True, exist_ok=True)
        (out / "model_index.json").write_text("{}")
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return calls, content


def test_fetch_url_verifies_full_and_prefix_hash(server, tmp_path):
    base, seen = server
    for kind, sha in (("full", SHA), ("prefix", SHA[:8])):
        target = tmp_path / kind / "w.pth"
        spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/w.pth", sha256=sha)
        with pytest.raises(WeightsMissingError, match=r"extractors.inception: weights .*w.pth not found.*fetch <con"):
            resolve(spec)
        assert fetch(spec, tmp_path / "root") == target
        assert target.read_bytes() == PAYLOAD
        assert resolve(spec) == target
        assert (target.parent / "w.pth.sha256").read_text().split()[0] == SHA
    assert seen == [("/w.pth", None)] * 2
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["w.pth", "w.pth.sha256"]  # no partial left


def test_interrupted_download_is_retried_and_resumed(server, tmp_path, no_wait, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 1 << 20)  # 10 MiB: more than PAYLOAD
    base, seen = server
    target = tmp_path / "w.pth"
    spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/drop.pth", sha256=SHA)
    assert fetch(spec, tmp_path / "root") == target and target.read_bytes() == PAYLOAD
    assert seen == [("/drop.pth", None), ("/drop.pth", "bytes=1048576-")]  # the retry asked for the rest only


def test_partial_file_of_a_killed_run_is_resumed(server, tmp_path):
    base, seen = server
    target, root = tmp_path / "w.pth", tmp_path / "root"
    spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/w.pth", sha256=SHA)
    part = spec.staging_path(root)
    part.write_bytes(PAYLOAD[:1000])  # what a run killed mid-download left
    assert fetch(spec, root) == target and target.read_bytes() == PAYLOAD
    assert seen == [("/w.pth", "bytes=1000-")] and not part.exists()


def test_checksum_mismatch_discards_the_download(server, tmp_path):
    base, _ = server
    target = tmp_path / "w.pth"
    spec = WeightSpec("extractors.inception", path=str(target), url=f"{base}/w.pth", sha256="0" * 64)
    with pytest.raises(ChecksumError, match=f"expected 0{{64}}, got {SHA}; the download was discarded"):
        fetch(spec, tmp_path / "root")
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial or temporary file left


def test_fetch_hf_file_through_hf_hub_download(fake_hub, tmp_path, monkeypatch):
    calls, _ = fake_hub
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.invalid")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = WeightSpec("models.soflow", repo_id="org/repo", filename="sub/model.pt", revision="v1", sha256=SHA)
    root = tmp_path / "weights"
    path = fetch(spec, root)
    assert path == root / "hf/org/repo/v1/sub/model.pt" and path.read_bytes() == PAYLOAD
    assert calls == [("hf_hub_download", {"repo_id": "org/repo", "filename": "sub/model.pt", "revision": "v1",
                                          "local_dir": root / ".incoming/org/repo/v1",
                                          "endpoint": "http://mirror.invalid"})]
    assert not (root / ".incoming/org/repo/v1/sub/model.pt").exists()  # moved into place once verified
    assert resolve(spec, root) == path
    assert fetch(spec, root) == path and len(calls) == 1  # present and verified: not downloaded again


def test_hf_file_with_wrong_hash_is_discarded(fake_hub, tmp_path):
    _, content = fake_hub
    content["payload"] = b"tampered"
    spec = WeightSpec("models.soflow", repo_id="org/repo", filename="model.pt", sha256=SHA)
    with pytest.raises(ChecksumError, match="models.soflow: .*org/repo/resolve/main/model.pt: SHA-256 mismatch"):
        fetch(spec, tmp_path)
    assert not any(p.is_file() and p.name == "model.pt" for p in tmp_path.rglob("*"))


def test_fetch_whole_repository_with_snapshot_download(fake_hub, tmp_path, monkeypatch):
    calls, _ = fake_hub
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    spec = WeightSpec("models.sd35", repo_id="stabilityai/stable-diffusion-3.5-large")
    with pytest.raises(WeightsMissingError, match="hf download stabilityai/stable-diffusion-3.5-large --revision main"):
        resolve(spec)
    snap = fetch(spec, tmp_path / "w")
    assert calls[-1] == ("snapshot_download", {"repo_id": "stabilityai/stable-diffusion-3.5-large",
                                               "revision": "main", "endpoint": None, "cache_dir": tmp_path / "hub"})
    assert resolve(spec) == snap  # the HF cache is where resolve looks
    into = tmp_path / "code/checkpoints/hf"  # a repository that must sit inside an upstream checkout
    spec = WeightSpec("reconstructors.sam3d", path=str(into), repo_id="facebook/sam-3d-objects")
    assert fetch(spec, tmp_path / "w") == into and resolve(spec) == into
    assert calls[-1][1]["local_dir"] == str(into)


def test_http_errors_are_named(server, tmp_path, no_wait, fake_hub, monkeypatch):
    base, _ = server
    spec = WeightSpec("models.x", path=str(tmp_path / "x.pt"), url=f"{base}/missing.pt")
    with pytest.raises(FetchError, match=r"models.x: downloading .*/missing.pt failed: HTTP 404"):
        fetch(spec, tmp_path)
    spec = WeightSpec("models.x", path=str(tmp_path / "x.pt"), url="http://127.0.0.1:9/none")
    with pytest.raises(FetchError, match="models.x: downloading http://127.0.0.1:9/none failed: ConnectError"):
        fetch(spec, tmp_path)
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    def gated(**kwargs):
        request = httpx2.Request("GET", "https://huggingface.co/org/gated/resolve/main/f.safetensors")
        raise HfHubHTTPError("401 Client Error", response=httpx2.Response(401, request=request))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    with pytest.raises(FetchError, match=r"models.flux: downloading .* failed: HTTP 401.*gated repository"):
        fetch(WeightSpec("models.flux", repo_id="org/gated", filename="f.safetensors"), tmp_path)


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
    with pytest.raises(WeightsMissingError, match="hf download org/other --revision main") as exc:
        resolve(WeightSpec("m", repo_id="org/other"))
    assert "huggingface-cli" not in str(exc.value)
    with pytest.raises(FetchError, match="no download source is registered: copy the file to x.pt"):
        fetch(WeightSpec("m", path="x.pt"), tmp_path)


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
    assert "hf download stabilityai/stable-diffusion-3.5-large --revision main" in specs["models.sd35"].fetch_hint()
    assert specs["embedders.pickscore.processor"].repo_id == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    # the 3D track: each external model's weights (the adapter's default repository unless the config names one)
    from genbench.recon3d.external import TrellisReconstructor

    assert specs["reconstructors.trellis"].repo_id == TrellisReconstructor.default_weights["repo_id"]
    assert {o for o in specs if o.startswith("reconstructors.")} == {
        "reconstructors.sam3d", "reconstructors.hunyuan3d21", "reconstructors.direct3d", "reconstructors.hi3dgen",
        "reconstructors.triposg", "reconstructors.trellis", "reconstructors.shap_e", "reconstructors.lgm",
        "reconstructors.instantmesh", "reconstructors.gaussiananything", "reconstructors.3dtopia_xl",
        # the multi-view diffusion models LGM and InstantMesh run first
        "reconstructors.lgm.multiview_model", "reconstructors.instantmesh.multiview_model"}  # the baselines: none
    assert specs["reconstructors.shap_e"].repo_id == "openai/shap-e-img2img"
    assert specs["reconstructors.lgm.multiview_model"].repo_id == "ashawkey/imagedream-ipmv-diffusers"
    assert specs["reconstructors.instantmesh.multiview_model"].repo_id == "sudo-ai/zero123plus-v1.2"
    sam3d = specs["reconstructors.sam3d"]
    assert sam3d.is_repository and sam3d.path == "resources/code/sam-3d-objects/checkpoints/hf"
    assert "hf download facebook/sam-3d-objects --revision main --local-dir resources/code/sam-3d-objects" \
        in sam3d.fetch_hint()
    assert specs["recon3d.appearance.lpips.backbone"].url.endswith("/alexnet-owt-7be5be79.pth")
    # the latent models' VAE is listed once (shared by several models), without the latent scale
    vaes = [s for s in specs.values() if s.repo_id == "stabilityai/sd-vae-ft-mse"]
    assert len(vaes) == 1 and vaes[0].owner.endswith(".arch.vae")
    assert "models.sit" in specs and "models.sit_sde" not in specs  # same file as models.sit: fetched once
