"""Tiny random SD3 and FLUX.1 pipelines built fully offline and saved with ``save_pretrained``, as the real
repositories are laid out (model_index.json + one folder per component), for the loading tests of the
text-to-image families. Sizes as in diffusers' own pipeline tests; tokenizers are built from hand-written
vocabularies (byte-level CLIP BPE without merges, a Unigram T5 vocabulary)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def _clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    # GPT-2's byte-to-unicode table: printable bytes map to themselves, the others to chars from U+0100 on
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    extra = [b for b in range(256) if b not in keep]
    table = {b: chr(b) for b in keep} | {b: chr(256 + i) for i, b in enumerate(extra)}
    chars = [table[b] for b in range(256)]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab.update({"<|startoftext|>": len(vocab), "<|endoftext|>": len(vocab) + 1})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77), len(vocab)


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces += [(c, -3.0) for c in letters] + [("\u2581" + c, -2.5) for c in letters]
    return T5TokenizerFast(vocab=pieces, model_max_length=77), len(pieces)


def _clip_text(cls, vocab_size: int, seed: int):
    from transformers import CLIPTextConfig

    torch.manual_seed(seed)
    cfg = CLIPTextConfig(bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
                         hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                         vocab_size=vocab_size, projection_dim=32, max_position_embeddings=77)
    return cls(cfg).eval()


def _t5(vocab_size: int, seed: int):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)).eval()


def _vae(latent_channels: int, seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(4,), layers_per_block=1,
                         latent_channels=latent_channels, norm_num_groups=1, use_quant_conv=False,
                         use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035).eval()


def save_tiny_sd3(folder: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tok, nv = _clip_tokenizer(folder / "_vocab")
    t5_tok, nt5 = _t5_tokenizer()
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=32, patch_size=1, in_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=4, caption_projection_dim=32,
                                        joint_attention_dim=32, pooled_projection_dim=64, out_channels=4)
    pipe = StableDiffusion3Pipeline(
        transformer=transformer.eval(), scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=_vae(4, 1),
        text_encoder=_clip_text(CLIPTextModelWithProjection, nv, 2), tokenizer=tok,
        text_encoder_2=_clip_text(CLIPTextModelWithProjection, nv, 3), tokenizer_2=tok,
        text_encoder_3=_t5(nt5, 4), tokenizer_3=t5_tok)
    pipe.save_pretrained(str(folder))
    return folder


def save_tiny_flux(folder: Path) -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tok, nv = _clip_tokenizer(folder / "_vocab")
    t5_tok, nt5 = _t5_tokenizer()
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True)
    pipe = FluxPipeline(transformer=transformer.eval(), scheduler=FlowMatchEulerDiscreteScheduler(),
                        vae=_vae(1, 1), text_encoder=_clip_text(CLIPTextModel, nv, 2), tokenizer=tok,
                        text_encoder_2=_t5(nt5, 3), tokenizer_2=t5_tok)
    pipe.save_pretrained(str(folder))
    return folder
