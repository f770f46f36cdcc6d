"""The bad-input corpus (issue 22): every class of bad input ends in a one-line error naming the item and the fix,
or in a recorded skip with the reason; nothing crashes a job without a name and no NaN reaches a table.

Classes: truncated / geometry-less / NaN NIfTI volumes (3D data sets), torn decision files, hostile img2dataset
keys and curated paths, a hostile review client (cross-origin, DNS rebinding, bad Content-Length, NUL, concurrent
posts), crafted tar archives, broken generated shards and sample-grid input, corrupt reconstructions, undecodable
files met by ``genbench diff``, and a hanging workflow run."""

import http.client
import io
import json
import socket
import tarfile
import threading
import time
import zlib

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.io import ArchiveError, safe_extract, save_npz
from genbench.recon3d.medical import prepare_medical
from genbench.recon3d.phantoms import mini_world_case, save_nifti
from genbench.tables import write_parquet

# ---------------------------------------------------------------------------------------------------------------
# item 1 / 7: NIfTI volumes of a 3D data set


@pytest.fixture
def nifti_root(tmp_path):
    """A nifti_folder data set with one good case; tests add bad ones."""
    root = tmp_path / "data"
    ph = mini_world_case(0, 0)
    save_nifti(ph.image, root / "images" / "good.nii.gz")
    save_nifti(ph.labels, root / "labels" / "good.nii.gz")
    return root, ph


def _prepare(root, tmp_path):
    spec = {"adapter": "nifti_folder", "root": str(root), "labels": {"1": "ellipsoid", "2": "torus", "3": "blob"},
            "gt": {"samples": 300, "occupancy_res": 16}}
    return prepare_medical("bad", spec, tmp_path / "out").set_index("item_id")


@pytest.mark.parametrize("which", ["images", "labels"])
def test_truncated_nii_gz_is_a_skipped_case_naming_the_file(nifti_root, tmp_path, which):
    """Item 1: a .nii.gz cut off mid-stream (header intact, voxels not) was an EOFError naming no file that stopped
    the whole data set; now it is that case's skip, with its path and the fix."""
    root, ph = nifti_root
    save_nifti(ph.image, root / "images" / "cut.nii.gz")
    save_nifti(ph.labels, root / "labels" / "cut.nii.gz")
    victim = root / which / "cut.nii.gz"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    df = _prepare(root, tmp_path)
    assert (df.loc[["good__1", "good__2", "good__3"], "status"] == "ok").all()
    reason = df.loc["cut__case", "reason"]
    assert df.loc["cut__case", "status"] == "skipped"
    assert str(victim) in reason and "cannot be decoded" in reason and "download or convert it again" in reason
    assert "\n" not in reason


def test_nifti_without_geometry_is_skipped_not_read_as_1mm(nifti_root, tmp_path):
    """Item 7: qform_code = sform_code = 0 leaves spacing and orientation unknown; it was accepted silently."""
    root, ph = nifti_root
    img = nib.Nifti1Image(np.asarray(ph.image.dataobj), ph.image.affine)
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    nib.save(img, root / "images" / "nogeom.nii.gz")
    save_nifti(ph.labels, root / "labels" / "nogeom.nii.gz")
    df = _prepare(root, tmp_path)
    assert df.loc["nogeom__case", "status"] == "skipped"
    reason = df.loc["nogeom__case", "reason"]
    assert "no geometry" in reason and "nogeom.nii.gz" in reason and "set_sform" in reason
    assert (df.loc[["good__1", "good__2", "good__3"], "status"] == "ok").all()


def test_nan_voxels_message_names_a_real_fix(nifti_root, tmp_path):
    """Item 7: the NaN message recommended `nan_policy: zero`, an option that does not exist."""
    root, ph = nifti_root
    arr = np.asarray(ph.image.dataobj).astype(np.float32)
    arr[2, 2, 2] = np.inf
    save_nifti(nib.Nifti1Image(arr, ph.image.affine), root / "images" / "inf.nii.gz")
    save_nifti(ph.labels, root / "labels" / "inf.nii.gz")
    reason = _prepare(root, tmp_path).loc["inf__case", "reason"]
    assert "NaN/inf" in reason and "inf.nii.gz" in reason and "nan_policy" not in reason


# ---------------------------------------------------------------------------------------------------------------
# item 2: torn decision files


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]  # raises on any line that is not JSON


def test_torn_last_line_is_isolated_before_appending(tmp_path):
    """Item 2: a decisions file cut mid-line got the next decision appended onto the torn line (decision lost, and
    after one more the file was rejected). Now the torn bytes move to <file>.torn and every line stays JSON."""
    from genbench.curate.decisions import DecisionLog, read_decisions

    path = tmp_path / "alice.jsonl"
    good = [json.dumps({"item_id": f"{i:09d}", "decision": "accept", "reviewer": "alice", "time": "t"}) for i in (0, 1)]
    torn = '{"item_id": "000000002", "decis'
    path.write_text("\n".join(good) + "\n" + torn)
    log = DecisionLog(path, "alice")
    log.record("000000003", "reject")
    log.record("000000004", "skip")
    assert [x["item_id"] for x in _lines(path)] == ["000000000", "000000001", "000000003", "000000004"]
    assert read_decisions(path) == {"000000000": "accept", "000000001": "accept", "000000003": "reject",
                                    "000000004": "skip"}
    assert (tmp_path / "alice.jsonl.torn").read_text() == torn + "\n"


def test_complete_last_line_without_newline_is_kept(tmp_path):
    from genbench.curate.decisions import DecisionLog, read_decisions

    path = tmp_path / "bob.jsonl"
    path.write_text(json.dumps({"item_id": "a", "decision": "accept"}))  # e.g. edited by hand, no final newline
    DecisionLog(path, "bob").record("b", "reject")
    assert read_decisions(path) == {"a": "accept", "b": "reject"}
    assert len(_lines(path)) == 2 and not (tmp_path / "bob.jsonl.torn").exists()


# ---------------------------------------------------------------------------------------------------------------
# item 3: img2dataset keys and curated paths


def _img2dataset_folder(tmp_path, keys):
    folder = tmp_path / "dl" / "laion"
    (folder / "00000").mkdir(parents=True)
    for k in keys:
        target = folder / "00000" / f"{k}.png"
        if "\x00" not in k and target.resolve().is_relative_to(folder):
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(target)
    # a file outside the download folder that a key like '../../x' would name
    Image.fromarray(np.full((8, 8, 3), 255, np.uint8)).save(tmp_path / "x.png")
    write_parquet(pd.DataFrame({"key": keys, "caption": ["a circle"] * len(keys), "status": ["success"] * len(keys),
                                "url": ["u"] * len(keys)}), folder / "00000.parquet")
    return folder


def test_img2dataset_keys_are_validated_before_any_file_is_read(tmp_path):
    """Item 3: a key such as '../../x' made ingest read outside the download folder."""
    from genbench.curate.finalize import final_status
    from genbench.curate.source import read_img2dataset

    keys = ["000000000", "../../x", "00000/../../../x", "a/b", ".hidden", "bad\x00key"]
    folder = _img2dataset_folder(tmp_path, keys)
    df = read_img2dataset(folder).set_index("item_id")
    assert df.loc["000000000", "status"] == "success" and df.loc["000000000", "path"] == "00000/000000000.png"
    for k in keys[1:]:
        assert df.loc[k, "status"] == "invalid_key" and df.loc[k, "path"] == "", k
        assert "not a plain file name" in df.loc[k, "error_message"]
    text = df.reset_index().assign(label_id=0, match="single", matched_lemmas="circle", text_similarity=0.1)
    text["text_pass"] = text["item_id"] != "000000000"  # the good item stops at the text filter (no checks table)
    status = final_status(text, pd.DataFrame({"item_id": []}), {}, {"policy": "exclude"}).set_index("item_id")
    assert (status.loc[keys[1:], "reason"] == "invalid_key").all() and not status["accepted"].any()


@pytest.mark.parametrize("item_id,path", [("../../evil", "00000/000000000.png"), ("ok", "../../x.png"),
                                          ("ok", "/etc/hostname"), ("ok", "00000/missing.png")])
def test_build_manifest_refuses_paths_outside_before_any_file_operation(tmp_path, item_id, path):
    """Item 3: build_manifest hard-linked outside the data set before validation refused the key."""
    from genbench.curate.finalize import CuratedPathError, build_manifest

    folder = _img2dataset_folder(tmp_path, ["000000000"])
    out = tmp_path / "curated"
    (out / "images").mkdir(parents=True)
    (out / "images" / "previous.png").write_bytes(b"from the last run")
    text = pd.DataFrame({"item_id": ["000000000", item_id], "label_id": [0, 0], "path": ["00000/000000000.png", path],
                         "caption": ["c", "c"], "url": ["u", "u"]})
    status = pd.DataFrame({"item_id": ["000000000", item_id], "label_id": [0, 0], "accepted": [True, True],
                           "reason": ["accepted", "accepted"]})
    classes = pd.DataFrame({"label_id": [0], "name": ["circle"], "synset": ["n0"]})
    with pytest.raises(CuratedPathError, match="accepted item") as exc:
        build_manifest(text, status, classes, folder, out, "a photo of a {class}", "img2dataset")
    assert "\n" not in str(exc.value)
    # nothing was touched: the old images are still there, nothing was linked anywhere
    assert sorted(p.name for p in (out / "images").iterdir()) == ["previous.png"]
    assert not (tmp_path / "evil.png").exists() and not list(tmp_path.glob("*evil*"))


# ---------------------------------------------------------------------------------------------------------------
# item 4: the review server against a hostile client


@pytest.fixture
def review(tmp_path, monkeypatch):
    from genbench.curate import review as rv

    monkeypatch.setattr(rv, "SOCKET_TIMEOUT", 1.0, raising=False)
    cur = tmp_path / "curate" / "mw"
    rows = []
    for i in range(40):
        rel = f"00000/{i:09d}.png"
        (cur / "source" / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(cur / "source" / rel)
        rows.append({"item_id": f"{i:09d}", "caption": f"c{i}", "label_id": 0, "label_name": "circle", "path": rel,
                     "flags": "", "flag_reasons": "", "zero_shot_top1": "circle"})
    write_parquet(pd.DataFrame(rows), cur / "review_queue.parquet", {"image_root": "source"})
    decisions = tmp_path / "d.jsonl"
    servers = []

    def start():
        servers.append(rv.serve(cur, decisions, "eve", port=0))
        return servers[-1].server_address[1]

    yield start, decisions
    for server in servers:
        server.shutdown()


def _request(port, method, path, body=None, headers=None, host=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    c.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
    for k, v in (headers or {}).items():
        c.putheader(k, v)
    if body is not None:
        c.putheader("Content-Length", str(len(body)))
    c.endheaders(body)
    r = c.getresponse()
    out = r.status, r.read(), dict(r.getheaders())
    c.close()
    return out


def _decide(item="000000000", decision="accept"):
    return json.dumps({"item_id": item, "decision": decision}).encode()


def test_review_accepts_its_own_page(review):
    start, decisions = review
    port = start()
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        status, _, _ = _request(port, "POST", "/api/decide", _decide(),
                                {"Content-Type": "application/json", "Origin": f"http://{host}"}, host=host)
        assert status == 200
    assert len(_lines(decisions)) == 2


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain", "Origin": "https://evil.example"},          # a cross-site form / fetch
    {"Content-Type": "application/json", "Origin": "https://evil.example"},    # would need a CORS preflight
    {"Content-Type": "application/json", "Origin": "null"},                    # a sandboxed frame
    {"Content-Type": "text/plain"},                                             # no-cors text/plain POST
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
])
def test_review_refuses_cross_origin_posts(review, headers):
    """Item 4: a cross-site text/plain POST recorded decisions."""
    start, decisions = review
    port = start()
    status, body, _ = _request(port, "POST", "/api/decide", _decide(), headers)
    assert status in (403, 415) and body.startswith(b"refused")
    assert not decisions.exists() or decisions.read_text() == ""


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_review_refuses_a_foreign_host_dns_rebinding(review, method):
    """Item 4: a rebinding page (evil.example resolving to 127.0.0.1) sends its own name as Host."""
    start, decisions = review
    port = start()
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1:{port + 1}", ""):
        body = _decide() if method == "POST" else None
        headers = {"Content-Type": "application/json"} if method == "POST" else {}
        status, _, _ = _request(port, method, "/api/decide" if method == "POST" else "/api/state", body, headers,
                                host=host)
        assert status in (400, 421), host
    assert not decisions.exists()


def test_review_bad_content_length_is_answered_promptly(review):
    """Item 4: a bad Content-Length held a thread; now it is refused before reading, and a body that never arrives
    times out (SOCKET_TIMEOUT, 1 s here) instead of holding the thread."""
    start, decisions = review
    port = start()
    for value, code in (("abc", 400), ("-5", 400), ("99999999999", 413), (None, 411)):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = f"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        if value is not None:
            head += f"Content-Length: {value}\r\n"
        t0 = time.monotonic()
        s.sendall((head + "\r\n").encode())
        reply = s.recv(1000)
        assert reply.startswith(f"HTTP/1.0 {code}".encode()) and time.monotonic() - t0 < 2, (value, reply)
        s.close()
    # announces 100 bytes, sends 10, then stalls: answered (or closed) within the socket timeout
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST /api/decide HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
              f"Content-Length: 100\r\n\r\n{{\"item_id\"".encode())
    t0 = time.monotonic()
    reply = s.recv(1000)
    assert time.monotonic() - t0 < 5 and (reply == b"" or b" 408 " in reply.split(b"\r\n")[0])
    s.close()
    assert not decisions.exists()
    assert _request(port, "GET", "/api/state")[0] == 200  # still serving


def test_review_listen_backlog_holds_a_burst(tmp_path):
    """Item 4: the listen backlog was 5, so a burst of connections (a page's parallel image requests) while the
    accept loop is busy had SYNs dropped. With the server not accepting at all, 64 connections still complete."""
    from genbench.curate import review as rv

    server = rv.ReviewServer((rv.HOST, 0), rv.BaseHTTPRequestHandler)  # never serve_forever: nothing is accepted
    port = server.server_address[1]
    socks = []
    try:
        for _ in range(64):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
    finally:
        for s in socks:
            s.close()
        server.server_close()
    assert len(socks) == 64


def test_review_nul_in_urls(review):
    """Item 4: a NUL in an image URL raised an unhandled error."""
    start, _ = review
    port = start()
    for path in ("/image/%00", "/image/00000/000000000.png%00.png", "/api/batch?start=%00", "/%00"):
        status, body, _ = _request(port, "GET", path)
        assert status in (400, 403), path
    assert _request(port, "GET", "/image/00000/000000000.png")[0] == 200


def test_review_csp_allows_no_inline_script(review):
    """Item 4: the CSP allowed inline scripts; the page's script and style are now served files."""
    start, _ = review
    port = start()
    status, body, headers = _request(port, "GET", "/")
    csp = headers["Content-Security-Policy"]
    assert status == 200 and "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert b"<script>" not in body and b"<style>" not in body and b' style="' not in body
    assert b'<script src="/static/review.js"' in body
    status, js, headers = _request(port, "GET", "/static/review.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"/api/decide" in js
    assert _request(port, "GET", "/static/../review.py")[0] == 404


def test_review_torn_decisions_file_and_concurrent_posts(review):
    """Item 4 + 2: a decisions file torn by a crash, then 40 concurrent POSTs: every decision is recorded and the
    file is valid JSON lines throughout."""
    start, decisions = review
    decisions.write_text(json.dumps({"item_id": "000000000", "decision": "reject", "reviewer": "eve"}) + "\n"
                         + '{"item_id": "000000001", "dec')
    port = start()
    errors, stop = [], threading.Event()

    def watch():  # reads the file while the posts run: every complete line must be JSON at every moment
        while not stop.is_set():
            text = decisions.read_text()
            complete = text[: text.rfind("\n") + 1]
            try:
                [json.loads(x) for x in complete.splitlines()[1:]]
            except json.JSONDecodeError as exc:
                errors.append(f"{exc}: {complete[-200:]!r}")
            time.sleep(0.005)

    def post(i):
        try:
            status, _, _ = _request(port, "POST", "/api/decide", _decide(f"{i:09d}", "accept"),
                                    {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
            if status != 200:
                errors.append(f"item {i}: {status}")
        except OSError as exc:
            errors.append(f"item {i}: {exc}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=post, args=(i,)) for i in range(1, 41 - 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not errors, errors[:3]
    lines = _lines(decisions)
    assert len(lines) == 1 + 39 and {x["item_id"] for x in lines} == {f"{i:09d}" for i in range(40)}
    state = json.loads(_request(port, "GET", "/api/state")[1])
    assert state["counts"] == {"accept": 39, "reject": 1, "skip": 0}


# ---------------------------------------------------------------------------------------------------------------
# item 5: crafted archives


def _tar(path, members):
    """members: (TarInfo, bytes | None)."""
    with tarfile.open(path, "w") as t:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name, kind=tarfile.REGTYPE, linkname=""):
    i = tarfile.TarInfo(name)
    i.type, i.linkname = kind, linkname
    return i


CRAFTED = {
    # tar resolves a hard link against the archive root: '../../x' from a deep member is outside
    "hardlink_from_root": [(_info("a/f"), b"ok"), (_info("a/b/c/h", tarfile.LNKTYPE, "../../x"), None)],
    "hardlink_absolute": [(_info("a/f"), b"ok"), (_info("a/h", tarfile.LNKTYPE, "/etc/passwd"), None)],
    "hardlink_to_nothing": [(_info("a/f"), b"ok"), (_info("a/h", tarfile.LNKTYPE, "a/missing"), None)],
    "symlink_out": [(_info("a/f"), b"ok"), (_info("a/l", tarfile.SYMTYPE, "../../etc"), None)],
    "symlink_absolute": [(_info("a/f"), b"ok"), (_info("a/l", tarfile.SYMTYPE, "/etc"), None)],
    "through_symlink": [(_info("a/l", tarfile.SYMTYPE, "."), None), (_info("a/l/f"), b"x")],
    "fifo": [(_info("a/f"), b"ok"), (_info("a/pipe", tarfile.FIFOTYPE), None)],
    "chardev": [(_info("a/f"), b"ok"), (_info("a/null", tarfile.CHRTYPE), None)],
    "blockdev": [(_info("a/f"), b"ok"), (_info("a/sda", tarfile.BLKTYPE), None)],
    "dotdot": [(_info("a/f"), b"ok"), (_info("a/../../x"), b"x")],
    "absolute": [(_info("a/f"), b"ok"), (_info("/tmp/genbench-x"), b"x")],
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_archive_is_refused_before_anything_is_written(tmp_path, case):
    """Item 5: every member is checked first; the error is an ArchiveError naming the archive, nothing lands."""
    archive = _tar(tmp_path / f"{case}.tar", CRAFTED[case])
    target = tmp_path / "out" / "target"
    with pytest.raises(ArchiveError) as exc:
        safe_extract(archive, target, "crafted")
    msg = str(exc.value)
    assert str(archive) in msg and "download" in msg and "\n" not in msg
    assert not target.exists() or not any(target.rglob("*")), sorted(target.rglob("*"))
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "x").exists()


def test_truncated_archive_leaves_nothing(tmp_path):
    big = _tar(tmp_path / "a.tar", [(_info(f"d/f{i}"), bytes(5000)) for i in range(8)])
    data = big.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="cannot be extracted.*download it again"):
        safe_extract(tmp_path / "cut.tar", tmp_path / "t", "cut")
    assert not any((tmp_path / "t").rglob("*"))


def test_missing_archive_is_named(tmp_path):
    with pytest.raises(ArchiveError, match=r"gone\.tar is missing; download it"):
        safe_extract(tmp_path / "gone.tar", tmp_path / "t", "missing")


def test_good_archive_with_links_still_extracts(tmp_path):
    archive = _tar(tmp_path / "g.tar", [(_info("d", tarfile.DIRTYPE), None), (_info("d/f"), b"data"),
                                        (_info("d/sub/h", tarfile.LNKTYPE, "d/f"), None),
                                        (_info("d/sub/l", tarfile.SYMTYPE, "../f"), None)])
    target = tmp_path / "t"
    (target / "d").mkdir(parents=True)
    (target / "d" / "keep").write_text("an earlier file")
    safe_extract(archive, target, "good")
    assert (target / "d/sub/h").read_bytes() == b"data" and (target / "d/sub/l").read_bytes() == b"data"
    assert (target / "d" / "keep").exists() and not list(target.glob(".extract-*"))


# ---------------------------------------------------------------------------------------------------------------
# item 6: generated shards and sample grids


def _shard(path, n=4, size=8, dtype=np.uint8, label_dtype=np.int64):
    save_npz(path, images=np.zeros((n, size, size, 3), dtype), item_id=np.array([f"{path.stem}{i}" for i in range(n)]),
             label_id=np.zeros(n, label_dtype), nfe=np.ones(n, np.int64), forward_passes=np.ones(n, np.int64))
    return path


def test_truncated_shard_names_its_path(tmp_path):
    from genbench.data.stream import ShardError, ShardImages

    a, b = _shard(tmp_path / "shard-0.npz"), _shard(tmp_path / "shard-1.npz")
    b.write_bytes(b.read_bytes()[:300])
    with pytest.raises(ShardError, match="shard-1.npz: not a readable shard.*rerun snakemake"):
        ShardImages([a, b], "cell")


@pytest.mark.parametrize("kw,what", [({"size": 16}, "images"), ({"dtype": np.float32}, "uint8"),
                                     ({"label_dtype": np.int32}, "label_id")])
def test_mismatched_or_mixed_shards_are_refused(tmp_path, kw, what):
    """Item 6: mismatched shards gave numpy errors naming nothing; mixed dtypes were silently upcast."""
    from genbench.data.stream import ShardError, ShardImages

    a, b = _shard(tmp_path / "shard-0.npz"), _shard(tmp_path / "shard-1.npz", **kw)
    with pytest.raises(ShardError, match=what) as exc:
        ShardImages([a, b], "cell")
    assert "shard-1.npz" in str(exc.value) and "rerun snakemake" in str(exc.value)


def test_sample_grid_refuses_float_and_nan_images(tmp_path):
    from genbench.data.stream import ShardError
    from genbench.plots.grids import sample_grid
    from genbench.stages import stage_sample_grid

    bad = np.full((4, 8, 8, 3), np.nan, np.float32)
    with pytest.raises(ValueError, match="uint8 NHWC"):
        sample_grid(bad)
    with pytest.raises(ValueError, match="uint8 NHWC"):
        sample_grid(np.zeros((4, 8, 8, 3), np.float64))
    with pytest.raises(ShardError, match="uint8 NHWC"):
        stage_sample_grid([_shard(tmp_path / "shard-0.npz", dtype=np.float32)], tmp_path / "grid.png", 4)
    assert not (tmp_path / "grid.png").exists()


# ---------------------------------------------------------------------------------------------------------------
# item 7: corrupt reconstructions, and no NaN in the 3D tables


PLY_BAD_INDEX = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                 b"element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 99\n")


@pytest.mark.parametrize("corrupt", ["truncated", "bad_index", "garbage"])
def test_corrupt_prediction_is_a_failed_item_naming_it(tmp_path, corrupt):
    """Item 7: one corrupt pred.ply crashed score_dataset (IndexError, no item named); now it is that item's
    'failed' row with the file in the reason, and the other items are scored."""
    import trimesh
    from test_reconstruct3d import _dataset

    from genbench.io import write_json
    from genbench.recon3d.evaluate import score_dataset, summarise

    manifest = _dataset(tmp_path / "data")
    sphere = trimesh.creation.icosphere(3, 0.5)
    good = sphere.export(file_type="ply", encoding="binary")
    rows = []
    for name in "ab":
        folder = tmp_path / "recon" / "input" / name
        data = good
        if name == "b":
            data = {"truncated": good[: len(good) // 2], "bad_index": PLY_BAD_INDEX, "garbage": b"\x00" * 64}[corrupt]
        folder.mkdir(parents=True)
        (folder / "pred.ply").write_bytes(data)
        write_json(folder / "meta.json", {"kind": "mesh", "frame": "model", "seed": 0})
        rows.append({"item_id": name, "input": "input", "status": "ok", "reason": None, "kind": "mesh",
                     "frame": "model", "prediction": f"input/{name}"})
    pd.DataFrame(rows).to_parquet(tmp_path / "recon" / "reconstructions.parquet")
    cfg = {"corrected": {"samples": 1000, "emd_points": 64, "icp_subsample": 200}}
    scores = score_dataset("t", "m", cfg, manifest, tmp_path / "recon" / "reconstructions.parquet", seed=0)
    by = scores.set_index("item_id")
    assert by.loc["a", "status"] == "ok"
    assert by.loc["b", "status"] == "failed"
    reason = by.loc["b", "reason"]
    assert ("input/b/pred.ply" in reason or "t/m/b" in reason) and "\n" not in reason
    summary = summarise(scores, [], n_boot=20, confidence=0.95, seed=0)
    assert len(summary) and summary[["value", "ci_low", "ci_high"]].notna().all().all()
    assert (summary["n_failed"] == 1).all() and (summary["n_scored"] == 1).all()


# ---------------------------------------------------------------------------------------------------------------
# item 7: genbench diff on undecodable files


def _png_bomb(width=60_000, height=60_000) -> bytes:
    """A PNG header that claims 3.6 gigapixels (PIL refuses to decode it: a decompression bomb)."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def test_diff_undecodable_image_is_not_a_crash(tmp_path, capsys):
    """Item 7: genbench diff exited 1 (a traceback, read as "differences") on an image it could not decode."""
    from genbench.cli import main

    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "bomb.png").write_bytes(_png_bomb())
        (tmp_path / side / "cut.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "b" / "cut.npz").write_bytes(b"PK\x03\x04 truncated")
    code = main(["diff", str(tmp_path / "a"), str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert code == 1 and "cut.npz" in out and "could not compare: BadZipFile" in out  # an unreadable array file
    assert "bomb.png" not in out  # equal bytes are equal files
    (tmp_path / "b" / "cut.npz").unlink()
    (tmp_path / "a" / "cut.npz").unlink()
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    (tmp_path / "b" / "bomb.png").write_bytes(_png_bomb(60_001))
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "undecodable image, contents differ" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------
# item 7: the workflow tests' timeout


SNAKEFILE = """
rule all:
    input: "done.txt"

rule quick:
    output: "quick.txt"
    shell: "echo ok > {output}"

rule stuck:
    input: "quick.txt"
    output: "done.txt"
    log: "logs/stuck.log"
    shell: "echo 'waiting for a lock that never comes' > {log}; sleep 600; touch {output}"
"""


def test_workflow_timeout_names_the_running_job(tmp_path, monkeypatch):
    """A hang is caught by the idle timeout (not a fixed 900 s that a busy machine exceeds), and the failure names
    the job that was still running, with its log's tail."""
    import wfutil

    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    # 60 s: long enough that a loaded CI machine's snakemake start-up (which printed nothing for 8 s once) is not
    # taken for the hang; the stuck job sleeps 600 s, so only the idle timeout can end this run.
    monkeypatch.setattr(wfutil, "IDLE_TIMEOUT", 60.0)
    t0 = time.monotonic()
    with pytest.raises(wfutil.SnakemakeTimeout) as exc:
        wfutil.smk(tmp_path, "--cores", "1")
    msg = str(exc.value)
    assert time.monotonic() - t0 < 300
    assert "printed nothing for 60 s" in msg and "rule stuck" in msg and "logs/stuck.log" in msg
    assert "waiting for a lock that never comes" in msg and "1 of 3 jobs done" in msg
    assert "rule quick" not in msg.split("still running:")[1].split("last output:")[0]


# ---------------------------------------------------------------------------------------------------------------
# beyond items 1-7: other bad input on the same paths, pinned so it stays handled


@pytest.mark.parametrize("content,match", [
    ('{"item_id": "a", "decision": "accept"}\n{"item_id": "b", "dec\n{"item_id": "c", "decision": "accept"}\n',
     r"x\.jsonl:2: not a JSON line; fix or remove it"),
    ('{"item_id": "a", "decision": "maybe"}\n', r"x\.jsonl:1: expected item_id and decision"),
    ('{"decision": "accept"}\n', r"x\.jsonl:1: expected item_id and decision"),
])
def test_decision_file_damaged_inside_is_refused_with_the_line(tmp_path, content, match):
    """A torn line that is not the last one (two writers, a hand edit) is not guessed at: the line is named."""
    from genbench.curate.decisions import DecisionError, read_decisions

    (tmp_path / "x.jsonl").write_text(content)
    with pytest.raises(DecisionError, match=match):
        read_decisions(tmp_path / "x.jsonl")


@pytest.mark.parametrize("body", [b"{not json", b'{"item_id": "000000000"}', b'["accept"]',
                                  b'{"item_id": "nope", "decision": "accept"}',
                                  b'{"item_id": "000000000", "decision": "delete"}', b"\xff\xfe"])
def test_review_malformed_decisions_are_refused(review, body):
    start, decisions = review
    port = start()
    status, _, _ = _request(port, "POST", "/api/decide", body, {"Content-Type": "application/json"})
    assert status == 400
    assert not decisions.exists() or decisions.read_text() == ""


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "bomb"])
def test_2d_manifest_image_damage_names_the_item(tmp_path, damage):
    """A real-image set with one bad file: the error names the item and its file (never a bare PIL error)."""
    from genbench.data.manifest import ImageDecodeError, load_images

    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    data = (tmp_path / "1.png").read_bytes()
    (tmp_path / "1.png").write_bytes({"truncated": data[: len(data) // 2], "not_an_image": b"<html>",
                                      "bomb": _png_bomb()}[damage])
    manifest = pd.DataFrame({"item_id": ["a", "b", "c"], "path": ["0.png", "1.png", "2.png"]})
    with pytest.raises(ImageDecodeError, match=r"item 'b' \(.*1\.png\)"):
        load_images(manifest, tmp_path)
