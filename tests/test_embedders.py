"""Text-image embedders through the real libraries: a tiny open_clip model saved as a checkpoint file and a tiny
transformers CLIPModel saved with save_pretrained (tokenizer built locally from open_clip's bundled BPE vocabulary),
loaded by genbench from local files; CLIP Score checked against torchmetrics on the same saved model."""

import json

import numpy as np
import pytest
import torch

from genbench.features.text_image import load_embedder
from genbench.metrics.text_image import clip_score, pick_score
from genbench.weights import WeightsMissingError

TINY_OPEN_CLIP = {"embed_dim": 16,
                  "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def images(n=4, size=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


PROMPTS = ["a photo of a circle", "a photo of a square", "a photo of a star", "a photo of a ring"]


@pytest.fixture(scope="module")
def open_clip_file(tmp_path_factory):
    import open_clip
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("oc")
    (d / "genbench-tiny-test.json").write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(str(d))
    torch.manual_seed(0)
    model = open_clip.create_model("genbench-tiny-test")
    path = d / "open_clip_model.safetensors"  # the file name open_clip's hub checkpoints use
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def hf_clip_dir(tmp_path_factory):
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    d = tmp_path_factory.mktemp("hf")
    st = SimpleTokenizer()  # open_clip ships CLIP's BPE vocabulary: build the HF tokenizer from it, offline
    names = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}  # HF's names, same ids
    (d / "vocab.json").write_text(json.dumps({names.get(k, k): v for k, v in st.encoder.items()}))
    ranks = sorted(st.bpe_ranks.items(), key=lambda kv: kv[1])
    (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(f"{a} {b}" for (a, b), _ in ranks) + "\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}), tokenizer=tok)
    torch.manual_seed(0)
    cfg = CLIPConfig(text_config=dict(vocab_size=49408, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=2, max_position_embeddings=77),
                     vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=37,
                                        num_hidden_layers=2, num_attention_heads=2), projection_dim=16)
    out = d / "model"
    CLIPModel(cfg).save_pretrained(out)
    proc.save_pretrained(out)
    return out


def test_open_clip_checkpoint_loads_and_embeds(open_clip_file):
    import open_clip

    spec = {"kind": "open_clip", "model": "genbench-tiny-test", "model_config": TINY_OPEN_CLIP, "batch_size": 3}
    emb = load_embedder("clip", spec, open_clip_file)
    img, txt = emb.embed_images(images(), "gen"), emb.embed_texts(PROMPTS, "prompts")
    assert img.shape == (4, 16) and txt.shape == (4, 16) and img.dtype == np.float64
    # the same file through open_clip directly, one batch: equal (batching does not change the result)
    model, _, pre = open_clip.create_model_and_transforms("genbench-tiny-test", pretrained=str(open_clip_file))
    from PIL import Image
    with torch.no_grad():
        ref_i = model.encode_image(torch.stack([pre(Image.fromarray(x)) for x in images()]))
        ref_t = model.encode_text(open_clip.get_tokenizer("genbench-tiny-test")(PROMPTS))
    np.testing.assert_allclose(img, ref_i.double().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(txt, ref_t.double().numpy(), rtol=1e-5, atol=1e-6)
    assert emb.logit_scale == pytest.approx(np.log(1 / 0.07), rel=1e-6)  # open_clip's initial value


def test_hf_clip_score_equals_torchmetrics_on_the_saved_model(hf_clip_dir):
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score

    emb = load_embedder("pick", {"kind": "hf_clip", "batch_size": 2}, hf_clip_dir)
    imgs = images(seed=1)
    ours = clip_score(emb.embed_images(imgs, "gen"), emb.embed_texts(PROMPTS, "prompts"))
    from transformers import CLIPModel, CLIPProcessor

    class Tensors(torch.nn.Module):
        """torchmetrics 1.9.0 expects get_*_features to return tensors; transformers 5 returns output objects
        (the projected embeddings are their pooler_output). Only that unwrapping is added."""

        def __init__(self, m):
            super().__init__()
            self.m, self.config = m, m.config

        def get_image_features(self, *a, **k):
            return self.m.get_image_features(*a, **k).pooler_output

        def get_text_features(self, *a, **k):
            return self.m.get_text_features(*a, **k).pooler_output

    def saved():  # torchmetrics takes a loader callable for models outside its list of hub names
        return Tensors(CLIPModel.from_pretrained(hf_clip_dir)), CLIPProcessor.from_pretrained(hf_clip_dir)

    ref = tm_clip_score(list(torch.from_numpy(imgs).permute(0, 3, 1, 2)), PROMPTS, model_name_or_path=saved)
    assert ours == pytest.approx(float(ref), rel=1e-5, abs=1e-5)


def test_pick_score_uses_the_models_logit_scale(hf_clip_dir):
    from transformers import CLIPModel

    emb = load_embedder("pick", {"kind": "hf_clip"}, hf_clip_dir)
    i, t = emb.embed_images(images(seed=2), "gen"), emb.embed_texts(PROMPTS, "prompts")
    scale = float(CLIPModel.from_pretrained(hf_clip_dir).logit_scale)
    cos = (i / np.linalg.norm(i, axis=1, keepdims=True) * t / np.linalg.norm(t, axis=1, keepdims=True)).sum(1)
    assert pick_score(i, t, emb.logit_scale) == pytest.approx(np.exp(scale) * cos.mean(), rel=1e-9)


def test_separate_processor_folder_and_missing_weights(hf_clip_dir, tmp_path):
    spec = {"kind": "hf_clip", "processor": {"path": str(hf_clip_dir)}, "weights": {"path": str(hf_clip_dir)}}
    assert load_embedder("pick", spec).embed_texts(["a photo of a star"], "p").shape == (1, 16)
    missing = {"kind": "hf_clip", "weights": {"repo_id": "yuvalkirstain/PickScore_v1"}}
    with pytest.raises(WeightsMissingError, match="embedders.pick: weights yuvalkirstain/PickScore_v1"):
        load_embedder("pick", missing)


@pytest.fixture(scope="module")
def dinov2_dir(tmp_path_factory):
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       patch_size=14, image_size=56)
    d = tmp_path_factory.mktemp("dino") / "dinov2-tiny"
    Dinov2Model(cfg).save_pretrained(d)  # the layout of facebook/dinov2-large on the hub
    return d


def test_dinov2_features_are_the_cls_after_layernorm_with_dgm_eval_preprocessing(dinov2_dir):
    from PIL import Image
    from transformers import Dinov2Model

    from genbench.features.registry import load_extractor

    ex = load_extractor("dino", {"kind": "dinov2", "image_size": 56, "batch_size": 2}, dinov2_dir)
    imgs = images(n=3, size=40, seed=3)
    feats = ex.extract(imgs, "gen")
    assert set(feats) == {"features"} and feats["features"].shape == (3, 32)
    # by hand: PIL bicubic to 56 x 56, [0, 1], ImageNet mean/std; CLS token of the LayerNormed last hidden state
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = np.stack([(np.asarray(Image.fromarray(im).resize((56, 56), Image.Resampling.BICUBIC), np.float32) / 255.0
                   - mean) / std for im in imgs]).transpose(0, 3, 1, 2)
    model = Dinov2Model.from_pretrained(dinov2_dir).eval()
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(x).float())
    cls = out.last_hidden_state[:, 0]
    # transformers applies the final LayerNorm to last_hidden_state (weights at init: 1, 0): unit-normalised tokens
    np.testing.assert_allclose(cls.mean(-1).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(cls.var(-1, unbiased=False).numpy(), 1, rtol=1e-3)
    np.testing.assert_allclose(feats["features"], cls.double().numpy(), rtol=1e-4, atol=1e-5)
    assert "dgm-eval" in ex.describe({"image_size": 56}) and "56 x 56" in ex.describe({"image_size": 56})


def test_pipeline_made_random_dinov2_is_seeded_and_loads(tmp_path):
    from genbench.features.registry import load_extractor
    from genbench.stages import stage_init_extractor

    spec = {"kind": "dinov2", "image_size": 16,
            "random_init": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 32, "patch_size": 4, "seed": 3}}
    paths = []
    for run in ("a", "b"):
        ckpt = tmp_path / run / "random" / "model.safetensors"
        ckpt.parent.mkdir(parents=True)
        stage_init_extractor("mw_dinov2", {"extractors": {"mw_dinov2": spec}}, ckpt)
        paths.append(ckpt)
    assert paths[0].read_bytes() == paths[1].read_bytes()  # seeded: the same weights, byte for byte
    ex = load_extractor("mw_dinov2", spec, paths[0])  # the weights file names its folder
    assert ex.extract(images(n=2, size=16), "x")["features"].shape == (2, 16)


def test_metric_validation_text_inputs_embed_each_class_prompt_once_through_open_clip(open_clip_file):
    """The metric_validation stage's text-image inputs from a real (tiny) open_clip checkpoint: one prompt per class
    in label order, both roles on one loaded embedder, a degraded set embedded once for both roles; validate_metrics
    then writes the text-image rows, with FID and CMMD flat under a caption mismatch."""
    import pandas as pd

    from genbench.metrics.validation import validate_metrics
    from genbench.stages import _validation_text_inputs

    spec = {"kind": "open_clip", "model": "genbench-tiny-test", "model_config": TINY_OPEN_CLIP}
    labels = np.arange(8) % 4
    manifest = pd.DataFrame({"label_id": labels, "prompt": [PROMPTS[c] for c in labels]})
    config = {"embedders": {"tiny": spec}, "scoring": {"text_image": {"clip": "tiny", "pick": "tiny"}}}
    ims = images(n=8, size=32)
    text = _validation_text_inputs("d", manifest, ims[:4], config, {"tiny": open_clip_file})
    assert text["clip"] is text["pick"] and list(text["clip"]["text_labels"]) == [0, 1, 2, 3]
    em = load_embedder("tiny", spec, open_clip_file)
    np.testing.assert_allclose(text["clip"]["text_emb"], em.embed_texts(PROMPTS, "p"), rtol=1e-6, atol=1e-6)
    degraded = ims[4:]
    first = text["clip"]["embed"](degraded)
    assert text["pick"]["embed"](degraded) is first and first.shape == (4, TINY_OPEN_CLIP["embed_dim"])
    np.testing.assert_allclose(first, em.embed_images(degraded, "d"), rtol=1e-6, atol=1e-6)

    def extract(x):
        f = x.reshape(len(x), -1)[:, :6].astype(np.float64)
        return {"features": f, "logits": f[:, :4]}

    df = validate_metrics(extract(ims[:4]), extract, ims[4:], labels[4:], n_boot=3, confidence=0.9, seed=0,
                          degradations={"caption_mismatch": [0.0, 0.5, 1.0]}, text=text, real_labels=labels[:4])
    t = df.set_index("metric")
    assert {"clip_score", "pick_score", "csfid", "psfid", "cmmd"} <= set(t.index)
    assert t.loc["fid", "expected"] == "flat" and t.loc["fid", "frac_correct"] == 1.0
    assert t.loc["cmmd", "expected"] == "flat" and t.loc["cmmd", "frac_correct"] == 1.0
    assert t.loc["clip_score", "expected"] == "worse"
