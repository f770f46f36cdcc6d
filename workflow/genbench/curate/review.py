"""``genbench review``: the human proofreading page, served on 127.0.0.1 only.

    genbench review results/curate/mw_relaionet --decisions decisions/alice.jsonl --reviewer alice

The page shows the review queue (results/curate/{dataset}/review_queue.parquet: the candidates that passed lemma
matching and the text filter, with their automatic flags) in batches; keys: A accept, R reject, S skip,
J / right arrow next, K / left arrow previous. Every decision is appended to the decisions file at once; reopening
the page (or restarting the server) resumes at the first item without a decision. All text from the data
(captions, class names, flags) is inserted as text, never as HTML; images are served only from the queue's image
folder (anything resolving outside it is refused with 403). On a cluster, reach it through an SSH tunnel
(``ssh -L 8765:127.0.0.1:8765 node``; the same port on both sides, see below).

The server trusts no other page: every request must name it in its Host header (``127.0.0.1:PORT`` or
``localhost:PORT``; a DNS-rebinding page sends its own name and gets 421), an ``Origin`` header, when sent, must be
its own origin (a cross-site POST is refused with 403), and a decision is a POST with Content-Type
``application/json`` (415 otherwise; a cross-site form cannot send it without a CORS preflight, which is never
granted). A missing, malformed or oversized Content-Length is refused before reading, and a stalled connection
times out after ``SOCKET_TIMEOUT`` seconds. The Content-Security-Policy allows only the server's own script and
style files (``static/review.js``, ``static/review.css``), no inline script or style.
"""

from __future__ import annotations

import html
import json
import logging
import mimetypes
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd

from ..tables import read_metadata
from .decisions import DECISIONS, DecisionLog

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
QUEUE_COLUMNS = ["item_id", "caption", "label_id", "label_name", "path", "flags", "flag_reasons", "zero_shot_top1"]


class ReviewData:
    def __init__(self, curation_dir: str | Path, decisions: str | Path, reviewer: str):
        self.dir = Path(curation_dir)
        qpath = self.dir / "review_queue.parquet"
        if not qpath.is_file():
            raise FileNotFoundError(f"{qpath} is missing; build it first: snakemake {qpath}")
        self.queue = pd.read_parquet(qpath)
        root = read_metadata(qpath).get("image_root", "source")
        self.image_root = (self.dir / root).resolve()
        self.ids = self.queue["item_id"].astype(str).tolist()
        self.index = {k: i for i, k in enumerate(self.ids)}
        self.log = DecisionLog(decisions, reviewer)
        self.title = self.dir.name

    def state(self) -> dict:
        d = self.log.decisions
        first = next((i for i, k in enumerate(self.ids) if k not in d), len(self.ids))
        counts = {k: sum(1 for i in self.ids if d.get(i) == k) for k in DECISIONS}
        return {"total": len(self.ids), "first_undecided": first, "counts": counts, "reviewer": self.log.reviewer,
                "dataset": self.title}

    def batch(self, start: int, n: int) -> list[dict]:
        rows = self.queue.iloc[max(start, 0):max(start, 0) + n]
        out = []
        for pos, r in zip(range(max(start, 0), max(start, 0) + len(rows)), rows.itertuples(), strict=True):
            item = {c: getattr(r, c, "") for c in QUEUE_COLUMNS}
            item["label_id"] = int(item["label_id"])
            item["position"] = pos
            item["image"] = "/image/" + urllib.parse.quote(str(r.path))
            item["decision"] = self.log.decisions.get(str(r.item_id), "")
            out.append({k: (None if isinstance(v, float) and v != v else v) for k, v in item.items()})
        return out

    def image_file(self, rel: str) -> Path | None:
        """The file for an /image/ path, or None when it resolves outside the image folder or is missing."""
        rel = urllib.parse.unquote(rel)
        if "\x00" in rel:  # Path.resolve raises on an embedded NUL
            return None
        p = (self.image_root / rel).resolve()
        if self.image_root not in p.parents or not p.is_file():
            return None
        return p


MAX_BODY = 10_000  # bytes of a decision request
SOCKET_TIMEOUT = 10.0  # seconds a connection may stall (a client announcing more body than it sends)
BACKLOG = 128
STATIC = Path(__file__).with_name("static")
STATIC_TYPES = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def make_handler(data: ReviewData):
    class Handler(BaseHTTPRequestHandler):
        server_version = "genbench-review"
        timeout = SOCKET_TIMEOUT  # StreamRequestHandler sets it on the socket: a stalled client frees its thread

        def log_message(self, fmt, *args):  # route through logging, not stderr
            log.debug("review: " + fmt, *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy", CSP)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj, code: int = 200) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def _refuse(self, code: int, why: str) -> None:
            self.close_connection = True
            self._send(code, f"refused: {why}".encode(), "text/plain; charset=utf-8")

        def _own_origins(self) -> tuple[set[str], set[str]]:
            port = self.server.server_address[1]
            hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
            return hosts, {f"http://{h}" for h in hosts}

        def _trusted(self) -> bool:
            """Only this server's own page may talk to it: the Host header must name 127.0.0.1:PORT or
            localhost:PORT (a DNS-rebinding page sends its own name), and an Origin, when sent, must be that
            origin (a cross-site page's POST carries its own)."""
            hosts, origins = self._own_origins()
            host = self.headers.get("Host", "")
            if host.lower() not in hosts:
                self._refuse(421 if host else 400, f"Host {host!r} is not this review server ({sorted(hosts)})")
                return False
            origin = self.headers.get("Origin")
            if origin is not None and origin.lower() not in origins:
                self._refuse(403, f"Origin {origin!r} is not this review page")
                return False
            site = self.headers.get("Sec-Fetch-Site")
            if site is not None and site not in ("same-origin", "none"):
                self._refuse(403, f"a {site} request")
                return False
            return True

        def do_GET(self):  # noqa: N802
            if not self._trusted():
                return None
            if "\x00" in self.path or "%00" in self.path:
                return self._refuse(400, "NUL in the URL")
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/":
                return self._send(200, page(data.title).encode(), "text/html; charset=utf-8")
            if url.path.startswith("/static/") and url.path[len("/static/"):] in STATIC_TYPES:
                name = url.path[len("/static/"):]
                return self._send(200, (STATIC / name).read_bytes(), STATIC_TYPES[name])
            if url.path == "/api/state":
                return self._json(data.state())
            if url.path == "/api/batch":
                q = urllib.parse.parse_qs(url.query)
                try:
                    start, n = int(q.get("start", ["0"])[0]), min(int(q.get("n", ["12"])[0]), 200)
                except ValueError:
                    return self._json({"error": "start and n must be integers"}, 400)
                return self._json({"items": data.batch(start, n)})
            if url.path.startswith("/image/"):
                p = data.image_file(url.path[len("/image/"):])
                if p is None:
                    return self._send(403, b"refused: not an image of this review", "text/plain")
                ctype = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
                if not ctype.startswith("image/"):
                    return self._send(403, b"refused: not an image", "text/plain")
                return self._send(200, p.read_bytes(), ctype)
            return self._send(404, b"not found", "text/plain")

        def do_POST(self):  # noqa: N802
            if not self._trusted():
                return None
            if urllib.parse.urlsplit(self.path).path != "/api/decide":
                return self._refuse(404, "not found")
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self._refuse(415, "a decision is posted as Content-Type application/json")
            # a bad Content-Length is answered at once, before reading (never a thread waiting for bytes)
            raw = self.headers.get("Content-Length")
            if raw is None:
                return self._refuse(411, "Content-Length is required")
            if not raw.strip().isdigit():
                return self._refuse(400, f"bad Content-Length {raw[:40]!r}")
            length = int(raw)
            if length > MAX_BODY:
                return self._refuse(413, f"a decision is at most {MAX_BODY} bytes")
            try:
                body = self.rfile.read(length)
            except TimeoutError:
                return self._refuse(408, f"the body did not arrive within {SOCKET_TIMEOUT:g} s")
            if len(body) < length:
                return self._refuse(400, f"the body ended after {len(body)} of {length} bytes")
            try:
                req = json.loads(body)
                item, decision = str(req["item_id"]), str(req["decision"])
            except (ValueError, KeyError, TypeError):
                return self._json({"error": "expected JSON {item_id, decision}"}, 400)
            if item not in data.index or decision not in DECISIONS:
                return self._json({"error": f"unknown item or decision (one of {DECISIONS})"}, 400)
            data.log.record(item, decision)
            return self._json({"ok": True, **data.state()})

    return Handler


class ReviewServer(ThreadingHTTPServer):
    request_queue_size = BACKLOG  # listen backlog (socketserver's default is 5)
    daemon_threads = True


def serve(curation_dir: str | Path, decisions: str | Path, reviewer: str, port: int = 8765,
          ready: threading.Event | None = None) -> ThreadingHTTPServer:
    """Start the server (bound to 127.0.0.1); returns it running in a daemon thread."""
    data = ReviewData(curation_dir, decisions, reviewer)
    server = ReviewServer((HOST, port), make_handler(data))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if ready is not None:
        ready.set()
    return server


def page(title: str) -> str:
    return PAGE.replace("__TITLE__", html.escape(title))


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genbench review: __TITLE__</title>
<link rel="stylesheet" href="/static/review.css">
<script src="/static/review.js" defer></script>
</head>
<body>
<header><b>genbench review: __TITLE__</b><span id="progress"></span>
<span class="keys">A accept · R reject · S skip · J/→ next · K/← previous</span></header>
<div id="bar"><div id="fill"></div></div>
<main id="grid"></main><div id="done" hidden>Every item has a decision. You can close this page.</div>
</body></html>
"""
