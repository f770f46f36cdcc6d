"""``genbench review`` driven in headless Chromium (Debian's, through playwright): load, decide by keyboard,
reload and resume, decisions on disk; data renders as text; the server refuses paths outside its image folder."""

import http.client
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from genbench.curate.decisions import read_decisions
from genbench.curate.review import serve
from genbench.tables import write_parquet

EVIL = '<script>window.pwned=1</script><b>bold</b> & <img src=x onerror="window.pwned=2">'


@pytest.fixture
def review_dir(tmp_path):
    cur = tmp_path / "curate" / "mw"
    src = tmp_path / "curate" / "mw" / "source"
    rows = []
    for i in range(15):
        rel = f"00000/{i:09d}.png"
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), i * 10, np.uint8)).save(src / rel)
        rows.append({"item_id": f"{i:09d}", "caption": EVIL if i == 1 else f"a star number {i}", "label_id": 3,
                     "label_name": "star", "path": rel, "flags": "zero_shot" if i == 2 else "",
                     "flag_reasons": "zero_shot: 'star' is rank 2 (top-1 'circle')" if i == 2 else "",
                     "zero_shot_top1": "star"})
    write_parquet(pd.DataFrame(rows), cur / "review_queue.parquet", {"image_root": "source"})
    (tmp_path / "secret.txt").write_text("do not serve")
    return cur


def _raw_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read()


def test_review_page_by_keyboard(review_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    decisions = tmp_path / "alice.jsonl"
    server = serve(review_dir, decisions, "alice", port=0)
    port = server.server_address[1]
    assert server.server_address[0] == "127.0.0.1"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the review test needs Debian's chromium (make test installs it as root: TEST_DEB_PACKAGES)"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            # CSP bypassed for the test harness (playwright evaluates strings): the escaping is tested without it
            page = browser.new_page(bypass_csp=True)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("window.reviewReady === true")
            assert page.locator(".card").count() == 12  # the first batch
            assert page.locator(".card.current").get_attribute("data-item-id") == "000000000"
            # the caption with markup is shown as text: no script ran, no element was created from it
            evil = page.locator("#item-1 .caption")
            assert evil.inner_text() == EVIL
            assert evil.locator("b, img, script").count() == 0
            assert page.evaluate("window.pwned") is None
            assert "rank 2" in page.locator("#item-2 .flags").first.inner_text()
            assert page.locator("#item-0 img").evaluate("e => e.complete && e.naturalWidth === 16")
            for key in ["a", "r", "s", "a"]:
                page.keyboard.press(key)
                page.wait_for_function("n => document.querySelectorAll('.card[data-decision]:not("
                                       "[data-decision=\"\"])').length >= n", arg=1)
            page.wait_for_function("document.querySelector('.card.current').dataset.itemId === '000000004'")
            assert read_decisions(decisions) == {"000000000": "accept", "000000001": "reject",
                                                 "000000002": "skip", "000000003": "accept"}
            # reload: resumes at the first item without a decision, earlier decisions shown
            page.reload()
            page.wait_for_function("window.reviewReady === true")
            assert page.locator(".card.current").get_attribute("data-item-id") == "000000004"
            assert page.locator("#item-1").get_attribute("data-decision") == "reject"
            assert "4 / 15 decided" in page.locator("#progress").inner_text()
            # go back and change a decision; move on to the next batch by keyboard
            page.keyboard.press("ArrowLeft")
            page.keyboard.press("a")
            page.wait_for_function("document.querySelector('#item-3').dataset.decision === 'accept'")
            page.wait_for_timeout(200)
            assert read_decisions(decisions)["000000003"] == "accept"
            for _ in range(8):  # items 4..11 accepted; the page loads the next batch
                cur = page.locator(".card.current").get_attribute("data-item-id")
                page.keyboard.press("a")
                page.wait_for_function(f"!document.querySelector('.card.current') || document.querySelector("
                                       f"'.card.current').dataset.itemId !== '{cur}'")
            page.wait_for_function("document.querySelector('.card.current').dataset.itemId === '000000012'")
            assert page.locator(".card").count() == 3
            browser.close()
        assert not errors, errors
        # restart the server (a new session): the same file, resumed
        server.shutdown()
        server = serve(review_dir, decisions, "alice", port=0)
        status, body = _raw_get(server.server_address[1], "/api/state")
        state = json.loads(body)
        assert state["first_undecided"] == 12 and state["counts"] == {"accept": 10, "reject": 1, "skip": 1}
        lines = [json.loads(x) for x in decisions.read_text().splitlines()]
        assert len(lines) == 13 and {x["reviewer"] for x in lines} == {"alice"}
    finally:
        server.shutdown()


def test_review_server_refuses_outside_paths(review_dir, tmp_path):
    server = serve(review_dir, tmp_path / "d.jsonl", "bob", port=0)
    port = server.server_address[1]
    try:
        assert _raw_get(port, "/image/00000/000000000.png")[0] == 200
        for bad in ["/image/../../../secret.txt", "/image/..%2F..%2F..%2Fsecret.txt", "/image/%2Fetc%2Fpasswd",
                    "/image/../review_queue.parquet", "/image/00000/missing.png"]:
            status, body = _raw_get(port, bad)
            assert status == 403 and b"do not serve" not in body, bad
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/api/decide", body=json.dumps({"item_id": "nope", "decision": "accept"}),
                  headers={"Content-Type": "application/json"})
        assert c.getresponse().status == 400
        assert not (tmp_path / "d.jsonl").exists() or read_decisions(tmp_path / "d.jsonl") == {}
    finally:
        server.shutdown()


def test_review_page_runs_under_its_csp(review_dir, tmp_path):
    """The page works with its Content-Security-Policy enforced (no inline script or style: the script and the
    style sheet are served files), and an inline script injected into it is blocked by that policy."""
    from playwright.sync_api import sync_playwright

    decisions = tmp_path / "carol.jsonl"
    server = serve(review_dir, decisions, "carol", port=0)
    port = server.server_address[1]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the review test needs Debian's chromium (make test installs it as root: DEB_PACKAGES)"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()  # CSP enforced
            console = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator(".card.current").wait_for(timeout=10_000)
            assert page.locator(".card").count() == 12
            assert page.locator("link[rel=stylesheet]").count() == 1
            assert page.locator("header").evaluate("e => getComputedStyle(e).position") == "sticky"  # style applied
            page.keyboard.press("a")
            page.locator("#item-0[data-decision=accept]").wait_for(timeout=10_000)
            assert read_decisions(decisions) == {"000000000": "accept"}
            # an inline script (as an injection would add) does not run under the page's policy
            page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.inl = 1';"
                          " document.body.appendChild(s); }")
            page.wait_for_timeout(200)
            assert page.evaluate("() => window.inl") is None
            assert any("Content Security Policy" in m for m in console), console
            assert not [m for m in console if "Content Security Policy" in m and "review" in m]
            browser.close()
    finally:
        server.shutdown()
