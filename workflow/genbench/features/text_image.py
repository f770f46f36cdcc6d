"""Text-image embedders for CLIP Score and PickScore, loaded from local files through the libraries' own code.

- ``open_clip`` (CLIP Score; the seed paper uses ViT-B/16): ``open_clip.create_model_and_transforms(model,
  pretrained=<local checkpoint file>)``, open_clip's evaluation transform and tokenizer. A model that is not in
  open_clip's registry (the mini-world's tiny CLIP) brings its architecture as ``model_config``.
- ``hf_clip`` (PickScore_v1): ``transformers.CLIPModel.from_pretrained(<local folder>)`` with the processor from
  another local folder (PickScore uses the ViT-H-14 processor), text padded and truncated to 77 tokens.

Both return float64 embeddings (not normalised; the metrics normalise) and the model's ``logit_scale`` (a log).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image

from ..registry import Registry
from ..weights import WeightSpec, resolve
from .registry import check_images

EMBEDDERS: Registry[type[TextImageEmbedder]] = Registry("text-image embedder kind")


class TextImageEmbedder(ABC):
    preprocessing: ClassVar[str] = ""

    def __init__(self, name: str, batch_size: int = 64):
        self.name = name
        self.batch_size = batch_size

    @property
    @abstractmethod
    def logit_scale(self) -> float: ...

    @abstractmethod
    def _images(self, pil: list[Image.Image]) -> torch.Tensor: ...

    @abstractmethod
    def _texts(self, texts: list[str]) -> torch.Tensor: ...

    def embed_images(self, images: np.ndarray, set_name: str) -> np.ndarray:
        check_images(images, set_name)
        out = []
        with torch.no_grad():
            for s in range(0, len(images), self.batch_size):
                out.append(self._images([Image.fromarray(im) for im in images[s:s + self.batch_size]]).double())
        return torch.cat(out).numpy()

    def embed_texts(self, texts: list[str], set_name: str) -> np.ndarray:
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"prompts of '{set_name}': expected a non-empty list of strings")
        out = []
        with torch.no_grad():
            for s in range(0, len(texts), self.batch_size):
                out.append(self._texts(list(texts[s:s + self.batch_size])).double())
        return torch.cat(out).numpy()


@EMBEDDERS.register("open_clip")
class OpenCLIPEmbedder(TextImageEmbedder):
    preprocessing = "open_clip eval transform of {model}: resize shortest side to {size}, center crop, normalise"

    def __init__(self, name: str, model, preprocess, tokenizer, batch_size: int = 64):
        super().__init__(name, batch_size)
        self.model, self.preprocess, self.tokenizer = model.eval(), preprocess, tokenizer

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path) -> OpenCLIPEmbedder:
        import open_clip

        from .clip_train import register_model_config

        model_name = spec["model"]
        if spec.get("model_config"):  # an architecture open_clip does not ship (e.g. the mini-world's tiny CLIP)
            register_model_config(model_name, spec["model_config"])
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
        return cls(name, model, preprocess, open_clip.get_tokenizer(model_name), spec.get("batch_size", 64))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach())

    def _images(self, pil: list[Image.Image]) -> torch.Tensor:
        return self.model.encode_image(torch.stack([self.preprocess(p) for p in pil]))

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts))


@EMBEDDERS.register("hf_clip")
class HFCLIPEmbedder(TextImageEmbedder):
    preprocessing = "transformers CLIPProcessor: image processor of the processor folder; text padded/truncated to 77"

    def __init__(self, name: str, model, processor, batch_size: int = 64):
        super().__init__(name, batch_size)
        self.model, self.processor = model.eval(), processor

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path) -> HFCLIPEmbedder:
        from transformers import AutoProcessor, CLIPModel

        processor_dir = checkpoint
        if spec.get("processor"):
            processor_dir = resolve(WeightSpec.from_config(f"embedders.{name}.processor", spec["processor"]))
        model = CLIPModel.from_pretrained(str(checkpoint), local_files_only=True)
        processor = AutoProcessor.from_pretrained(str(processor_dir), local_files_only=True)
        return cls(name, model, processor, spec.get("batch_size", 64))

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach())

    def _images(self, pil: list[Image.Image]) -> torch.Tensor:
        inputs = self.processor(images=pil, return_tensors="pt")
        return _features(self.model.get_image_features(pixel_values=inputs["pixel_values"]))

    def _texts(self, texts: list[str]) -> torch.Tensor:
        inputs = self.processor(text=texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        return _features(self.model.get_text_features(input_ids=inputs["input_ids"],
                                                      attention_mask=inputs["attention_mask"]))


def _features(out) -> torch.Tensor:
    """transformers 5 returns a model output object from get_*_features; 4.x returned the tensor."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0]


def load_embedder(name: str, spec: dict[str, Any], checkpoint: str | Path | None = None) -> TextImageEmbedder:
    """``checkpoint``: a trained stand-in's file; otherwise ``spec['weights']`` resolved from local files."""
    if checkpoint is None:
        checkpoint = resolve(WeightSpec.from_config(f"embedders.{name}", spec["weights"]))
    return EMBEDDERS.lookup(spec["kind"]).load(name, spec, checkpoint)
