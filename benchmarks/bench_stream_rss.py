"""Peak memory of ``features_real`` on a small vs a large real set (genbench.data.stream): the streamed reader keeps
peak RSS a function of the batch size, not of the number of images (goal: ratio <= 1.3 between 20k and 2k).

    .venv/bin/python benchmarks/bench_stream_rss.py [--sizes 2000 20000] [--threads 2] [--workdir DIR]

Builds fixture JPEGs of about 500 x 375 (procedural, 256 distinct pictures written under every item's own name,
each file decoded on its own), a manifest per size, and a random-weight DINOv2-tiny (ViT with 2 layers, 64 wide,
patch 14, 56 x 56 input: the preprocessing path of dinov2-large at a size that runs on 2 cores). Each size runs
``stage_features_real`` in a fresh process and reports ru_maxrss of that process and of its largest decoding
worker. Never a timed test: run it on demand, and write the numbers with the machine state into docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

EXTRACTOR = {"kind": "dinov2", "image_size": 56, "batch_size": 64,
             "random_init": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "intermediate_size": 128, "patch_size": 14, "seed": 0}}


def build_fixtures(work: Path, n: int) -> Path:
    import numpy as np
    import pandas as pd
    from PIL import Image, ImageDraw

    from genbench.data.manifest import write_manifest
    from genbench.io import sha256_bytes

    pool = work / "pool"
    if not pool.exists():
        pool.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for k in range(256):
            w, h = (500, 375) if k % 3 else (375, 500)  # both orientations, as ImageNet
            yy, xx = np.mgrid[0:h, 0:w]
            base = np.stack([(xx * (k + 1) // 7) % 256, (yy * (k + 3) // 5) % 256,
                             ((xx + yy) * (k + 7) // 11) % 256], -1).astype(np.uint8)
            im = Image.fromarray(base)
            d = ImageDraw.Draw(im)
            for _ in range(12):
                x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
                d.ellipse([x0, y0, x0 + int(rng.integers(20, 160)), y0 + int(rng.integers(20, 160))],
                          fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
            im.save(pool / f"{k:03d}.jpg", quality=90)
    out = work / f"set{n}"
    if (out / "manifest.parquet").exists():
        return out / "manifest.parquet"
    (out / "img").mkdir(parents=True, exist_ok=True)
    pool_bytes = [(pool / f"{k:03d}.jpg").read_bytes() for k in range(256)]
    rows = []
    for i in range(n):
        data = pool_bytes[i % 256]
        rel = f"img/{i:06d}.jpg"
        (out / rel).write_bytes(data)
        rows.append((f"item{i:06d}", i % 1000, rel, sha256_bytes(data)))
    df = pd.DataFrame(rows, columns=["item_id", "label_id", "path", "sha256"])
    df["label_name"], df["prompt"], df["split"], df["source"] = "x", "a photo", "val", "bench"
    write_manifest(df, out / "manifest.parquet", f"bench{n}")
    return out / "manifest.parquet"


def child(manifest: str, ckpt: str, out: str, threads: int) -> None:
    """One features_real run; prints peak RSS (MiB) of this process and of its largest worker as JSON."""
    from genbench.stages import setup_logging, stage_features_real

    setup_logging(None, threads)
    t = time.perf_counter()
    stage_features_real("dino_tiny", {"extractors": {"dino_tiny": EXTRACTOR}, "runtime": {"device": "cpu"}},
                        ckpt, manifest, "bench", out, threads=threads)
    print(json.dumps({"seconds": time.perf_counter() - t,
                      "rss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    ap.add_argument("--threads", type=int, default=2, help="the rule's threads: torch threads, threads - 1 workers")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the fixtures here (default: a temp dir)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child, threads=args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="genbench-rss-"))
    work.mkdir(parents=True, exist_ok=True)
    from genbench.stages import stage_init_extractor

    ckpt = work / "dino" / "model.safetensors"
    if not ckpt.exists():
        stage_init_extractor("dino_tiny", {"extractors": {"dino_tiny": EXTRACTOR}}, ckpt)
    results = {}
    try:
        for n in args.sizes:
            t = time.perf_counter()
            manifest = build_fixtures(work, n)
            print(f"fixtures for {n}: {time.perf_counter() - t:.0f} s", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--child",
                                   str(manifest), str(ckpt), str(work / f"features{n}.npz")],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
            results[n] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[n]
            print(f"n={n}: {r['seconds']:.0f} s ({n / r['seconds']:.0f} images/s), peak RSS main "
                  f"{r['rss_main_mib']:.0f} MiB, largest worker {r['rss_worker_mib']:.0f} MiB", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        for key in ("rss_main_mib", "rss_worker_mib"):
            print(f"{key}: {hi} / {lo} = {results[hi][key] / results[lo][key]:.3f} (goal <= 1.3)")
    print(json.dumps({"threads": args.threads, "cpus": os.cpu_count(), "load": os.getloadavg(), **results}))


if __name__ == "__main__":
    main()
