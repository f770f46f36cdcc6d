"""Throughput of every torch stage at paper sizes with random weights, through genbench's own code paths (the
extractor / embedder classes, generate_shard, the LPIPS loader), on the device and precision given.

    .venv/bin/python benchmarks/bench_torch_stages.py [--device cpu|cuda] [--precision fp32|tf32|bf16|fp16]
        [--n 64] [--batch 32] [--reduced] [--only inception dinov2 ...] [--json out.json]

Stages: inception (TF-FID Inception, 256 px images resized 'clean' to 299), dinov2 (ViT-L/14 at 224), clip
(open_clip ViT-B-16-quickgelu), pickscore (transformers CLIP ViT-H/14), lpips (AlexNet trunk, 256 px), vae (the
sd-vae-ft-mse AutoencoderKL decoder, 32 x 32 x 4 -> 256 px) and the native generators sit (SiT-XL/2, euler, 1
step), meanflow (MeanFlow-B/4), imeanflow (iMF-XL/2), soflow (SoFlow-XL/2), all on 32 x 32 x 4 latents without the
VAE. For each generator the bare network passes (the same batches, as many passes) are timed too: generation
should reach >= 0.9x of them. On CUDA the peak GPU memory of each stage is reported.

``--reduced`` swaps the architectures for small ones of the same family (ViT-S/14, SiT-S/2, ViT-B/16 for
PickScore, ...) so the script finishes on a laptop-class CPU; the numbers are then only the code path's cost,
not the paper-size throughput. Never a timed test: run it on demand and write the results into docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from genbench.runtime import resolve_runtime  # noqa: E402

STAGES = ("inception", "dinov2", "clip", "pickscore", "lpips", "vae", "sit", "meanflow", "imeanflow", "soflow")


def images(n: int, size: int = 256) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def timed(fn, n: int, batch: int, rt) -> tuple[float, float | None]:
    """Seconds for ``n`` items after one warm-up batch; peak CUDA memory (GiB) when on a GPU."""
    fn(min(batch, n))
    if rt.device_name == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    fn(n)
    if rt.device_name == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter() - t, torch.cuda.max_memory_allocated() / 2**30
    return time.perf_counter() - t, None


def extractor_stage(name: str, reduced: bool, batch: int, rt, tmp: Path):
    from genbench.features.registry import DinoV2Extractor, InceptionTFExtractor

    if name == "inception":
        from genbench.features.inception import FIDInception

        ex = InceptionTFExtractor("inception", FIDInception(), "clean", batch, rt)
    else:
        from transformers import Dinov2Config, Dinov2Model

        size = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536) if reduced \
            else dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
        ex = DinoV2Extractor("dinov2", Dinov2Model(Dinov2Config(image_size=224, patch_size=14, **size)), 224,
                             batch, rt)
    data = images(max(batch, 1))
    return lambda n: [ex.extract(data[: min(batch, n - s)], "bench") for s in range(0, n, batch)]


def embedder_stage(name: str, reduced: bool, batch: int, rt, tmp: Path):
    from genbench.features.text_image import HFCLIPEmbedder, OpenCLIPEmbedder

    if name == "clip":
        import open_clip

        model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-16-quickgelu", pretrained=None)
        emb = OpenCLIPEmbedder("clip", model, preprocess, open_clip.get_tokenizer("ViT-B-16-quickgelu"), batch, rt)
    else:
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        vision = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                      patch_size=16) if reduced else dict(hidden_size=1280, num_hidden_layers=32,
                                                          num_attention_heads=16, intermediate_size=5120,
                                                          patch_size=14)
        model = CLIPModel(CLIPConfig(vision_config={**vision, "image_size": 224}, projection_dim=1024))

        class Processor:  # the image half of the ViT-H-14 processor (resize 224, center crop, CLIP mean/std)
            image = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})

            def __call__(self, images, return_tensors):
                return self.image(images=images, return_tensors=return_tensors)

        emb = HFCLIPEmbedder("pickscore", model, Processor(), batch, rt)
    data = images(max(batch, 1))
    return lambda n: [emb.embed_images(data[: min(batch, n - s)], "bench") for s in range(0, n, batch)]


def lpips_stage(reduced: bool, batch: int, rt, tmp: Path):
    from genbench.recon3d.appearance import load_lpips, lpips_distance

    model = rt.place(load_lpips({"backbone": "random"}))
    rgba = np.random.default_rng(0).integers(0, 256, (batch, 256, 256, 4), dtype=np.uint8)

    def run(n):
        with rt.compute():
            for s in range(0, n, batch):
                k = min(batch, n - s)
                lpips_distance(model, rgba[:k], rgba[:k][::-1])
    return run


def vae_stage(reduced: bool, batch: int, rt, tmp: Path):
    from diffusers import AutoencoderKL

    vae = rt.place(AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                                 down_block_types=("DownEncoderBlock2D",) * 4,
                                 up_block_types=("UpDecoderBlock2D",) * 4,
                                 block_out_channels=(32, 64, 64, 64) if reduced else (128, 256, 512, 512),
                                 layers_per_block=2, norm_num_groups=32).eval())
    z = torch.randn(batch, 4, 32, 32)

    def run(n):
        with torch.no_grad(), rt.compute():
            for s in range(0, n, batch):
                vae.decode(rt.inputs(z[: min(batch, n - s)]) / 0.18215).sample.float().cpu()
    return run


GEN = {"sit": ("sit", "SiT-XL/2", "SiT-S/2", {"method": "euler"}),
       "meanflow": ("meanflow", "MeanFlow-B/4", "MeanFlow-S/4", {"method": "meanflow"}),
       "imeanflow": ("imeanflow", "iMF-XL/2", "iMF-B/2", {"method": "meanflow"}),
       "soflow": ("soflow", "SoFlow-XL/2", "SoFlow-S/2", {"method": "soflow"})}


def generator_stage(name: str, reduced: bool, batch: int, rt, tmp: Path):
    import pandas as pd

    from genbench.gen2d.families import get_family_net
    from genbench.gen2d.generate import generate_shard
    from genbench.gen2d.registry import get_generator_class
    from genbench.gen2d.samplers import batch_scalar

    family, paper, small, sampler = GEN[name]
    arch = {"config": small if reduced else paper, "input_size": 32, "in_channels": 4}
    if family in ("sit", "meanflow", "soflow"):
        arch["learn_sigma"] = False
    spec = {"family": family, "arch": arch, "sampler": sampler}
    net = get_family_net(family, arch)
    gen = get_generator_class(family)(name, spec, net)
    gen.place(rt)

    def run(n):
        manifest = pd.DataFrame({"item_id": [f"i{k}" for k in range(n)], "label_id": np.arange(n) % 1000})
        generate_shard(gen, manifest, model=name, dataset="bench", global_seed=0, seed=0, steps=1, cfg=1.0,
                       shard=0, n_shards=1, batch_size=batch, runtime=rt)

    def bare(n):  # the network's passes alone on the same batches (1 step, no guidance: one pass per item)
        backbone = gen.backbone
        with torch.no_grad(), rt.compute():
            for s in range(0, n, batch):
                k = min(batch, n - s)
                x = rt.inputs(torch.randn(k, 4, 32, 32))
                y = rt.inputs(torch.arange(k) % 1000)
                if family == "imeanflow":
                    backbone(x, *(batch_scalar(x, v) for v in (1.0, 1.0, 0.0, 1.0)), y)
                elif family == "soflow":
                    gen.net.solution(x, batch_scalar(x, 1.0), batch_scalar(x, 0.0), y)
                elif family == "meanflow":
                    extra = {"h": batch_scalar(x, 1.0)}
                    if "omega" in backbone.extra_inputs:
                        extra["omega"] = batch_scalar(x, 1.0)
                    backbone(x, batch_scalar(x, 1.0), y, **extra)
                else:
                    backbone(x, batch_scalar(x, 0.0), y)
    return run, bare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16", "fp16"])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reduced", action="store_true", help="small architectures of each family (see the doc)")
    ap.add_argument("--only", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rt = resolve_runtime({"runtime": {"device": args.device, "precision": args.precision}}, "bench")
    torch.manual_seed(0)
    meta = rt.metadata()
    print(f"device {meta['device']} ({meta['gpu_name'] or 'CPU'}), precision {rt.precision}, torch {meta['torch']}, "
          f"threads {torch.get_num_threads()}, n {args.n}, batch {args.batch}, "
          f"{'REDUCED architectures' if args.reduced else 'paper architectures'}", flush=True)
    results = {}
    tmp = Path("/tmp")
    for name in args.only:
        bare = None
        if name in ("inception", "dinov2"):
            fn = extractor_stage(name, args.reduced, args.batch, rt, tmp)
        elif name in ("clip", "pickscore"):
            fn = embedder_stage(name, args.reduced, args.batch, rt, tmp)
        elif name == "lpips":
            fn = lpips_stage(args.reduced, args.batch, rt, tmp)
        elif name == "vae":
            fn = vae_stage(args.reduced, args.batch, rt, tmp)
        else:
            fn, bare = generator_stage(name, args.reduced, args.batch, rt, tmp)
        secs, mem = timed(fn, args.n, args.batch, rt)
        row = {"images_per_s": args.n / secs, "peak_gpu_gib": mem}
        if bare is not None:
            bsecs, _ = timed(bare, args.n, args.batch, rt)
            row["bare_images_per_s"] = args.n / bsecs
            row["vs_bare"] = bsecs / secs
        results[name] = row
        extra = f", {row['vs_bare']:.2f}x the bare passes" if bare else ""
        print(f"{name:10s} {row['images_per_s']:9.2f} images/s" + (f", peak {mem:.2f} GiB" if mem else "") + extra,
              flush=True)
    if args.json:
        args.json.write_text(json.dumps({"runtime": meta, "n": args.n, "batch": args.batch,
                                         "reduced": args.reduced, "results": results}, indent=2))


if __name__ == "__main__":
    main()
