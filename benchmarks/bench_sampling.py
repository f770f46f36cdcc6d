"""Sampling throughput of the 2D families: images/s per model, step count and guidance, and the sampler's overhead
as the ratio of its time to the time of the same number of bare network forward passes measured in the same run.

    .venv/bin/python benchmarks/bench_sampling.py [--batch 50] [--repeats 3] [--steps 1 2 4] [--real [--no-mini]]

Default: the mini-world architectures of config/config.yaml (trained checkpoints from results/models/ when present,
random weights otherwise; speed does not depend on the weights). ``--real`` adds the paper-size architectures
(SiT-XL/2, SoFlow-XL/2, MeanFlow-XL/2, iMF-XL/2 on 4x32x32 latents, random weights, VAE decoding excluded), on the GPU
when there is one. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from genbench.gen2d.families import get_family_net  # noqa: E402
from genbench.gen2d.registry import load_generator  # noqa: E402
from genbench.seeding import item_noise_stream  # noqa: E402

REAL = {
    "SiT-XL/2": {"family": "sit", "arch": {"config": "SiT-XL/2", "input_size": 32, "in_channels": 4},
                 "sampler": {"method": "euler", "cfg_channels": 3}},
    "MeanFlow-XL/2": {"family": "meanflow", "arch": {"config": "MeanFlow-XL/2", "input_size": 32,
                                                     "in_channels": 4, "learn_sigma": False},
                      "sampler": {"method": "meanflow"}},
    "SoFlow-XL/2": {"family": "soflow", "arch": {"config": "SoFlow-XL/2", "input_size": 32, "in_channels": 4,
                                                 "learn_sigma": False}, "sampler": {"method": "soflow"}},
    "iMF-XL/2": {"family": "imeanflow", "arch": {"config": "iMF-XL/2", "input_size": 32, "in_channels": 4},
                 "sampler": {"method": "meanflow"}},
}


def timed(fn, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times[1:])  # the least disturbed run: these are short CPU timings on a shared machine


def build(name: str, spec: dict, tmp: Path, device: torch.device):
    ckpt = ROOT / "results" / "models" / name / "model.safetensors"
    source = "trained"
    if not ckpt.exists():
        source = "random"
        ckpt = tmp / f"{name.replace('/', '_')}.safetensors"  # "SiT-XL/2" is not a file name
        net = get_family_net(spec["family"], spec["arch"])
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt))
    gen = load_generator(name, {k: v for k, v in spec.items() if k != "train"}, ckpt)
    gen.net.to(device)
    return gen, source


def bare_forward(gen, x: torch.Tensor, y: torch.Tensor):
    """One network forward pass with the family's inputs (what one NFE costs without the sampler), no autograd."""
    net, fam = gen.net, gen.spec["family"]
    t = torch.full((x.shape[0],), 0.5, device=x.device)
    calls = {
        "sit": lambda: net(x, t, y),
        "meanflow": lambda: net(x, t, y, h=t, **({"omega": t + 1} if "omega" in net.extra_inputs else {})),
        "soflow": lambda: net.solution(x, t, t * 0, y),
        "imeanflow": lambda: net.net(x, t, t + 1, t * 0, t * 0 + 1, y),
    }
    call = calls[fam]

    def run():
        with torch.no_grad():
            return call()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.0, 2.0])
    ap.add_argument("--real", action="store_true", help="also the paper-size architectures (random weights)")
    ap.add_argument("--real-batch", type=int, default=16)
    ap.add_argument("--no-mini", action="store_true", help="skip the mini-world models (with --real)")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    models = [] if args.no_mini else [(n, s, args.batch) for n, s in config["models"].items()]
    if args.real:
        models += [(n, s, args.real_batch) for n, s in REAL.items()]
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}\n")
    print("| model | weights | batch | steps | cfg | NFE | passes | images/s | ms per pass per image | "
          "sampler time / bare passes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec, batch in models:
            gen, source = build(name, spec, Path(tmp), device)
            shape = gen.noise_shape()
            noise = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device)
            y = (torch.arange(batch) % 8).to(device)
            fwd = timed(bare_forward(gen, noise, y), 2 * args.repeats, device)
            draws = item_noise_stream(list(range(batch)), shape)

            def run(steps: int, cfg: float, gen=gen, draws=draws, noise=noise, y=y):
                return gen.sample(y, noise, steps, cfg, noise_source=lambda k: draws(k).to(device))

            for steps in args.steps:
                for cfg in args.cfg:
                    res = run(steps, cfg)
                    sec = timed(lambda s=steps, c=cfg: run(s, c), args.repeats, device)
                    passes = res.forward_passes
                    # a guided pass runs the doubled batch: count it as two bare passes
                    print(f"| {name} | {source} | {batch} | {steps} | {cfg:g} | {res.nfe} | {passes} | "
                          f"{batch / sec:.1f} | {1000 * sec / passes / batch:.3f} | {sec / (passes * fwd):.2f} |")
            del gen
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
