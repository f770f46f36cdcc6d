"""Training the mini-world's tiny CLIP with open_clip (its model, tokenizer and contrastive loss).

The captions vary the wording around the class name ("vector icon of a star", "a photo of a star", ...) so that
the model aligns shapes with class words rather than memorising one sentence. Images go through the same
normalisation as open_clip's evaluation transform (the model's image size equals the data's, so no resize).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..repro import perturb_parameters

log = logging.getLogger(__name__)

TEMPLATES = ("a photo of a {}", "vector icon of a {}", "{} sticker, flat design", "a {} shape",
             "cute {} logo for kids", "a drawing of a {}")


def register_model_config(name: str, model_config: dict[str, Any]) -> None:
    import open_clip

    with tempfile.TemporaryDirectory() as d:
        Path(d, f"{name}.json").write_text(json.dumps(model_config))
        open_clip.add_model_config(d)


def train_clip(images: np.ndarray, labels: np.ndarray, class_names: list[str], model_name: str,
               model_config: dict[str, Any], train: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, float]]:
    import open_clip
    from open_clip.loss import ClipLoss

    register_model_config(model_name, model_config)
    torch.manual_seed(train["seed"])
    gen = torch.Generator().manual_seed(train["seed"])
    model = open_clip.create_model(model_name)
    perturb_parameters(model, train.get("init_perturbation", 0.0), seed=train["seed"] + 1)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else size
    if images.shape[1] != size:
        raise ValueError(f"tiny CLIP '{model_name}': images are {images.shape[1]} px, the model takes {size} px")
    mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
    x_all = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
    tokenizer = open_clip.get_tokenizer(model_name)
    prompts = tokenizer([t.format(c) for c in class_names for t in TEMPLATES]).view(len(class_names),
                                                                                   len(TEMPLATES), -1)
    y_all = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.AdamW(model.parameters(), lr=train["lr"], weight_decay=0.1)
    bs, n = train["batch_size"], len(x_all)
    steps = train["epochs"] * ((n + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=train["lr"], total_steps=steps)
    loss_fn = ClipLoss()
    model.train()
    losses = []
    for _ in range(train["epochs"]):
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, bs):
            idx = perm[s:s + bs]
            if len(idx) < 2:
                continue
            which = torch.randint(0, len(TEMPLATES), (len(idx),), generator=gen)
            text = prompts[y_all[idx], which]
            img_f, txt_f, scale = model(x_all[idx], text)[:3]
            loss = loss_fn(img_f, txt_f, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, np.log(100))  # as open_clip's training script
            losses.append(float(loss.detach()))
    model.eval()
    with torch.no_grad():  # zero-shot accuracy on the training images with the evaluation prompt
        img = torch.nn.functional.normalize(model.encode_image(x_all), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokenizer([f"a photo of a {c}" for c in class_names])),
                                            dim=-1)
        acc = float(((img @ txt.T).argmax(1) == y_all).float().mean())
    k = max(1, len(losses) // 20)
    stats = {"loss_first": float(np.mean(losses[:k])), "loss_last": float(np.mean(losses[-k:])),
             "zero_shot_train_accuracy": acc, "steps": len(losses)}
    log.info("tiny CLIP %s: %s", model_name, stats)
    return model, stats
