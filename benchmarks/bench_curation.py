"""The curation's two loops that grow with LAION-scale input, against a straightforward reference, in one run.

    .venv/bin/python benchmarks/bench_curation.py [--items 100000] [--captions 100000] [--distance 4]

1. Near-duplicate search over 64-bit perceptual hashes (genbench.curate.screen.near_duplicates, multi-index
   hashing: each item compared only with items sharing one of d + 1 exact bit blocks, group by group in numpy)
   vs the exact full scan a user would write with numpy (XOR + popcount of each hash against all earlier ones).
   Synthetic hashes: ``items`` random ones, of which 5 % are copies of an earlier hash with up to ``distance``
   bits flipped. Both must report the same earliest duplicate for every item.
2. LAIONet lemma matching over the 1816 unique ImageNet lemmas (genbench.curate.lemmas) on synthetic captions:
   captions per second (LAIONet's own loop is the same padded-substring test).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from genbench.curate.lemmas import LemmaIndex  # noqa: E402
from genbench.curate.screen import near_duplicates  # noqa: E402
from genbench.data.classes import imagenet_classes  # noqa: E402


def synthetic_hashes(n: int, d: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    hashes = [int(x) for x in rng.integers(0, 2**63, n, dtype=np.int64)]
    for i in rng.choice(np.arange(1, n), size=n // 20, replace=False):
        h = hashes[int(rng.integers(0, i))]
        for b in rng.choice(64, size=int(rng.integers(0, d + 1)), replace=False):
            h ^= 1 << int(b)
        hashes[int(i)] = h
    return hashes


def ours(hashes: list[int], d: int) -> list[int]:
    return near_duplicates(np.array(hashes, dtype=np.uint64), d).tolist()


def full_scan(hashes: list[int], d: int) -> list[int]:
    h = np.array(hashes, dtype=np.uint64)
    out = []
    for j in range(len(h)):
        hits = np.flatnonzero(np.bitwise_count(h[:j] ^ h[j]) <= d)
        out.append(int(hits[0]) if len(hits) else -1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--captions", type=int, default=100_000)
    ap.add_argument("--distance", type=int, default=4)
    args = ap.parse_args()

    hashes = synthetic_hashes(args.items, args.distance)
    t = time.perf_counter()
    a = ours(hashes, args.distance)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    b = full_scan(hashes, args.distance)
    t_ref = time.perf_counter() - t
    assert a == b, "the two searches disagree"
    print(f"near duplicates, {args.items} hashes, d={args.distance}: {sum(x >= 0 for x in a)} found by both; "
          f"multi-index {t_ours:.2f} s, numpy full scan {t_ref:.2f} s, ratio {t_ours / t_ref:.3f}")

    index = LemmaIndex.from_classes(imagenet_classes())
    lemmas = [k.strip() for k in index.lemma_to_label]
    rng = np.random.default_rng(1)
    words = ["photo", "of", "a", "cute", "on", "the", "beach", "vintage", "poster", "for", "sale", "with", "red"]
    caps = [" ".join([*rng.choice(words, 6), lemmas[int(rng.integers(len(lemmas)))], *rng.choice(words, 4)])
            for _ in range(args.captions)]
    t = time.perf_counter()
    n = sum(len(index.match(c)[1]) == 1 for c in caps)
    dt = time.perf_counter() - t
    print(f"lemma matching: {args.captions} captions in {dt:.2f} s ({args.captions / dt:,.0f} captions/s), "
          f"{n} single-synset matches")


if __name__ == "__main__":
    main()
