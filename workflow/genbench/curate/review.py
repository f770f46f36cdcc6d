"""``genbench review``: the human proofreading page, served on 127.0.0.1 only.

    genbench review results/curate/mw_relaionet --decisions decisions/alice.jsonl --reviewer alice

The page shows the review queue (results/curate/{dataset}/review_queue.parquet: the candidates that passed lemma
matching and the text filter, with their automatic flags) in batches; keys: A accept, R reject, S skip,
J / right arrow next, K / left arrow previous. Every decision is appended to the decisions file at once; reopening
the page (or restarting the server) resumes at the first item without a decision. All text from the data
(captions, class names, flags) is inserted as text, never as HTML; images are served only from the queue's image
folder (anything resolving outside it is refused with 403). On a cluster, reach it through an SSH tunnel
(``ssh -L 8765:127.0.0.1:8765 node``).
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
        p = (self.image_root / urllib.parse.unquote(rel)).resolve()
        if self.image_root not in p.parents or not p.is_file():
            return None
        return p


def make_handler(data: ReviewData):
    class Handler(BaseHTTPRequestHandler):
        server_version = "genbench-review"

        def log_message(self, fmt, *args):  # route through logging, not stderr
            log.debug("review: " + fmt, *args)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                                        "style-src 'unsafe-inline'; img-src 'self'")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, obj, code: int = 200) -> None:
            self._send(code, json.dumps(obj).encode(), "application/json")

        def do_GET(self):  # noqa: N802
            url = urllib.parse.urlsplit(self.path)
            if url.path == "/":
                return self._send(200, page(data.title).encode(), "text/html; charset=utf-8")
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
            if urllib.parse.urlsplit(self.path).path != "/api/decide":
                return self._send(404, b"not found", "text/plain")
            try:
                body = json.loads(self.rfile.read(min(int(self.headers.get("Content-Length", 0)), 10_000)))
                item, decision = str(body["item_id"]), str(body["decision"])
            except (ValueError, KeyError, TypeError):
                return self._json({"error": "expected JSON {item_id, decision}"}, 400)
            if item not in data.index or decision not in DECISIONS:
                return self._json({"error": f"unknown item or decision (one of {DECISIONS})"}, 400)
            data.log.record(item, decision)
            return self._json({"ok": True, **data.state()})

    return Handler


def serve(curation_dir: str | Path, decisions: str | Path, reviewer: str, port: int = 8765,
          ready: threading.Event | None = None) -> ThreadingHTTPServer:
    """Start the server (bound to 127.0.0.1); returns it running in a daemon thread."""
    data = ReviewData(curation_dir, decisions, reviewer)
    server = ThreadingHTTPServer((HOST, port), make_handler(data))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if ready is not None:
        ready.set()
    return server


def page(title: str) -> str:
    return PAGE.replace("__TITLE__", html.escape(title))


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>genbench review: __TITLE__</title>
<style>
 body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f6;color:#222}
 header{position:sticky;top:0;background:#263238;color:#fff;padding:8px 16px;display:flex;gap:24px;align-items:center}
 header .keys{opacity:.8;font-size:13px} #bar{height:6px;background:#90a4ae} #bar>div{height:6px;background:#66bb6a}
 main{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:12px;padding:12px}
 .card{background:#fff;border:3px solid transparent;border-radius:8px;padding:8px;box-shadow:0 1px 3px #0002}
 .card.current{border-color:#1e88e5} .card.accept{background:#e8f5e9} .card.reject{background:#ffebee}
 .card.skip{background:#fffde7}
 .card img{width:100%;image-rendering:pixelated;aspect-ratio:1;object-fit:contain;background:#ddd}
 .label{font-weight:600;margin:6px 0 2px} .caption{font-size:14px;word-break:break-word}
 .flags{font-size:12px;color:#b71c1c;margin-top:4px} .decision{font-size:12px;font-weight:600;text-transform:uppercase}
 #done{padding:24px;font-size:18px}
</style></head>
<body>
<header><b>genbench review: __TITLE__</b><span id="progress"></span>
<span class="keys">A accept · R reject · S skip · J/→ next · K/← previous</span></header>
<div id="bar"><div id="fill" style="width:0"></div></div>
<main id="grid"></main><div id="done" hidden>Every item has a decision. You can close this page.</div>
<script>
const BATCH = 12;
let items = [], cur = 0, start = 0, total = 0;
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls;
  if(text!==undefined) e.textContent=text; return e;}
async function state(){const r=await fetch('/api/state'); return r.json();}
function showProgress(s){total=s.total; const d=s.counts.accept+s.counts.reject+s.counts.skip;
  document.getElementById('progress').textContent=`${s.reviewer}: ${d} / ${s.total} decided `+
   `(${s.counts.accept} accepted, ${s.counts.reject} rejected, ${s.counts.skip} skipped)`;
  document.getElementById('fill').style.width=(s.total? 100*d/s.total:100)+'%';}
async function load(s){start=Math.max(0,s); const r=await fetch(`/api/batch?start=${start}&n=${BATCH}`);
  items=(await r.json()).items; render();}
function render(){const g=document.getElementById('grid'); g.replaceChildren();
  items.forEach((it,i)=>{const c=el('div','card'+(i===cur?' current':'')+(it.decision?' '+it.decision:''));
    c.id='item-'+it.position; c.dataset.itemId=it.item_id; c.dataset.decision=it.decision||'';
    const img=el('img'); img.src=it.image; img.alt=it.item_id; c.appendChild(img);
    c.appendChild(el('div','label',`#${it.position+1} · ${it.label_name} (${it.label_id})`));
    c.appendChild(el('div','caption',it.caption));
    if(it.flags) c.appendChild(el('div','flags','flags: '+(it.flag_reasons||it.flags)));
    if(it.zero_shot_top1) c.appendChild(el('div','flags zs','zero-shot top-1: '+it.zero_shot_top1));
    c.appendChild(el('div','decision',it.decision||''));
    c.addEventListener('click',()=>{cur=i; render();}); g.appendChild(c);});
  const c=document.querySelector('.card.current'); if(c) c.scrollIntoView({block:'nearest'});}
async function move(delta){let i=cur+delta;
  if(i>=items.length){ if(start+items.length>=total){return;} cur=0; await load(start+BATCH); return;}
  if(i<0){ if(start===0){return;} await load(start-BATCH); cur=items.length-1; render(); return;}
  cur=i; render();}
async function decide(d){const it=items[cur]; if(!it) return;
  const r=await fetch('/api/decide',{method:'POST',headers:{'Content-Type':'application/json'},
    body:JSON.stringify({item_id:it.item_id,decision:d})});
  if(!r.ok){alert('not saved: '+(await r.text())); return;}
  it.decision=d; const s=await r.json(); showProgress(s);
  document.getElementById('done').hidden = s.first_undecided < s.total;
  if(cur+1<items.length){cur++; render();} else if(start+items.length<total){cur=0; await load(start+BATCH);}
  else render();}
// key actions run strictly one after another (a fast typist never decides for the wrong card)
let chain = Promise.resolve();
function enqueue(f){chain = chain.then(f).catch(err=>alert('error: '+err)); }
document.addEventListener('keydown',e=>{if(e.ctrlKey||e.metaKey||e.altKey) return; const k=e.key.toLowerCase();
  if(k==='a') enqueue(()=>decide('accept')); else if(k==='r') enqueue(()=>decide('reject'));
  else if(k==='s') enqueue(()=>decide('skip'));
  else if(k==='j'||k==='arrowright') enqueue(()=>move(1)); else if(k==='k'||k==='arrowleft') enqueue(()=>move(-1));
  else return;
  e.preventDefault();});
(async()=>{const s=await state(); showProgress(s);
  const f=Math.min(s.first_undecided, Math.max(s.total-1,0)); await load(f-(f%BATCH)); cur=f%BATCH; render();
  document.getElementById('done').hidden = s.first_undecided < s.total; window.reviewReady=true;})();
</script></body></html>
"""
