"""Feature-extraction throughput: genbench's TF-FID Inception extractor against torch-fidelity's on the same
(randomly initialised) weights and the same images, in one run; plus the cost of the 'clean' resize.

    .venv/bin/python benchmarks/bench_features.py [--n 64] [--batch 32] [--size 64] [--repeats 3]

Prints images/s of each and the ratio genbench / torch-fidelity, and the largest feature difference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3  # noqa: E402

from genbench.features.inception import FIDInception, normalise, resize_to_299  # noqa: E402
from genbench.features.registry import load_extractor  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64, help="input image size (resized to 299)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (args.n, args.size, args.size, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pt_inception-random.pth"
        torch.save({k: v for k, v in FIDInception().state_dict().items() if "num_batches" not in k}, path)
        ours = load_extractor("inception", {"kind": "inception_tf", "resize": "bilinear", "batch_size": args.batch},
                              path)
        ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    ref.eval()

    def run_ref() -> np.ndarray:
        out = []
        with torch.no_grad():
            for s in range(0, args.n, args.batch):
                x = torch.from_numpy(images[s:s + args.batch]).permute(0, 3, 1, 2).contiguous()
                out.append(ref(x)[0].double().numpy())
        return np.concatenate(out)

    t_ours, f_ours = timed(lambda: ours.extract(images, "bench")["features"], args.repeats)
    t_ref, f_ref = timed(run_ref, args.repeats)
    t_clean, _ = timed(lambda: resize_to_299(images, "clean"), args.repeats)
    t_bil, _ = timed(lambda: normalise(resize_to_299(images, "bilinear")), args.repeats)
    print(f"{args.n} images {args.size}x{args.size} -> 299, batch {args.batch}, torch threads "
          f"{torch.get_num_threads()}, median of {args.repeats}")
    print(f"genbench inception_tf (bilinear resize): {args.n / t_ours:8.1f} images/s")
    print(f"torch-fidelity InceptionV3 (TF1 resize):  {args.n / t_ref:8.1f} images/s")
    print(f"ratio genbench / torch-fidelity: {t_ref / t_ours:.2f}x")
    print(f"clean resize (PIL bicubic, float): {args.n / t_clean:8.1f} images/s; bilinear: {args.n / t_bil:8.1f}")
    print(f"max |feature difference| (different resize kernels): {np.abs(f_ours - f_ref).max():.3g}")


if __name__ == "__main__":
    main()
