"""CLIP Score against torchmetrics' own update code on the same embeddings, PickScore against its published
formula, and the scaled metrics on a hand-computed case."""

import numpy as np
import pytest
import torch

from genbench.metrics.fid import MetricInputError
from genbench.metrics.text_image import clip_score, clip_score_per_sample, pick_score, scaled_metrics


class _Embeddings(torch.nn.Module):
    """Stands in for a CLIP model inside torchmetrics: returns fixed embeddings for item indices."""

    def __init__(self, img, txt):
        super().__init__()
        self.img, self.txt = torch.from_numpy(img), torch.from_numpy(txt)
        self.config = None

    def get_image_features(self, pixel_values):
        return self.img[pixel_values[:, 0, 0, 0].long()]

    def get_text_features(self, input_ids, attention_mask):
        return self.txt[input_ids[:, 0].long()]


def _processor(images=None, text=None, **_):
    if images is not None:  # each image is a constant tensor holding its index
        return {"pixel_values": torch.stack(images)}
    ids = torch.tensor([[int(t.split()[-1])] for t in text])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def test_clip_score_equals_torchmetrics_on_the_same_embeddings():
    from torchmetrics.functional.multimodal.clip_score import _clip_score_update

    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(6, 16)), rng.normal(size=(6, 16))
    txt[:3] += 2 * img[:3]  # some agreement, so the mean is positive
    images = [torch.full((3, 4, 4), float(i)) for i in range(6)]
    texts = [f"a photo of {i}" for i in range(6)]
    ref, n = _clip_score_update(images, texts, _Embeddings(img, txt), _processor)
    np.testing.assert_allclose(clip_score_per_sample(img, txt), ref.numpy(), rtol=1e-12)
    assert clip_score(img, txt) == pytest.approx(max(float(ref.mean()), 0.0), rel=1e-12)
    # the class clamps the mean (not the samples) at zero
    assert clip_score(img, -img) == 0.0
    assert clip_score_per_sample(img, -img).min() == pytest.approx(-100.0)


def test_pick_score_is_logit_scale_exp_times_cosine():
    img = np.array([[1.0, 0.0], [1.0, 1.0]])
    txt = np.array([[1.0, 0.0], [0.0, 2.0]])
    logit_scale = np.log(100.0)  # PickScore_v1 stores log(100) like CLIP
    assert pick_score(img, txt, logit_scale) == pytest.approx(100.0 * (1.0 + 2 ** -0.5) / 2, rel=1e-12)


def test_scaled_metrics_hand_computed():
    s = scaled_metrics(fid=20.0, inception_score=10.0, clip_gen=30.0, clip_real=25.0, pick_gen=20.0, pick_real=21.0)
    assert s["r_clip"] == pytest.approx(1.2) and s["r_pick"] == pytest.approx(20 / 21)
    assert s["csfid"] == pytest.approx(20 / 1.2) and s["psfid"] == pytest.approx(21.0)
    assert s["csis"] == pytest.approx(12.0) and s["psis"] == pytest.approx(200 / 21)
    with pytest.raises(MetricInputError, match="real images' CLIP Score is 0"):
        scaled_metrics(20.0, 10.0, 30.0, 0.0, 20.0, 21.0, "mw_val")
    with pytest.raises(MetricInputError, match="r_CLIP = 0"):
        scaled_metrics(20.0, 10.0, 0.0, 25.0, 20.0, 21.0, "mw_val")


def test_bad_embeddings_named():
    with pytest.raises(MetricInputError, match="gen x: 3 image embeddings of dim 4 vs 2 text"):
        clip_score(np.ones((3, 4)), np.ones((2, 4)), "gen x")
    with pytest.raises(MetricInputError, match=r"gen y \(image embeddings\): embeddings contain NaN"):
        clip_score(np.full((2, 4), np.nan), np.ones((2, 4)), "gen y")
    with pytest.raises(MetricInputError, match="zero norm"):
        clip_score(np.zeros((2, 4)), np.ones((2, 4)), "gen z")
    with pytest.raises(MetricInputError, match="non-empty"):
        clip_score(np.ones((0, 4)), np.ones((0, 4)), "empty")
