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

from ..catalog import EMBEDDERS
from ..data.stream import ImageSet, StreamResult, map_batches
from ..runtime import Runtime, resolve_runtime
from ..weights import WeightSpec, resolve
from .registry import check_images


class TextImageEmbedder(ABC):
    preprocessing: ClassVar[str] = ""

    def __init__(self, name: str, batch_size: int = 64, runtime: Runtime | None = None):
        self.name = name
        self.batch_size = batch_size
        self.runtime = runtime or resolve_runtime({}, f"embedder '{name}'", metric=True)

    @property
    @abstractmethod
    def logit_scale(self) -> float: ...

    @abstractmethod
    def _images(self, pil: list[Image.Image]) -> torch.Tensor: ...

    @abstractmethod
    def _texts(self, texts: list[str]) -> torch.Tensor: ...

    def _embed_batch(self, images: list[np.ndarray] | np.ndarray) -> torch.Tensor:
        with torch.no_grad(), self.runtime.compute():
            return self._images([Image.fromarray(im) for im in images]).detach().float().cpu().double()

    def embed_images(self, images: np.ndarray, set_name: str) -> np.ndarray:
        check_images(images, set_name)
        out = [self._embed_batch(images[s:s + self.batch_size]) for s in range(0, len(images), self.batch_size)]
        return torch.cat(out).numpy()

    def embed_set(self, images: ImageSet, set_name: str, workers: int = 0, policy: str = "fail") -> StreamResult:
        """Image embeddings of a streamed set (genbench.data.stream) in ``outputs['image_emb']``: bounded memory,
        images of any size (the library's own transform resizes each), undecodable images per ``policy``."""
        return map_batches(images, lambda ims, idx: {"image_emb": self._embed_batch(ims).numpy()},
                           batch_size=self.batch_size, workers=workers, policy=policy,
                           what=f"{self.name} image embeddings of {set_name}")

    def embed_texts(self, texts: list[str], set_name: str) -> np.ndarray:
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"prompts of '{set_name}': expected a non-empty list of strings")
        out = []
        with torch.no_grad(), self.runtime.compute():
            for s in range(0, len(texts), self.batch_size):
                out.append(self._texts(list(texts[s:s + self.batch_size])).detach().float().cpu().double())
        return torch.cat(out).numpy()


class OpenCLIPEmbedder(TextImageEmbedder):
    preprocessing = "open_clip eval transform of {model}: resize shortest side to {size}, center crop, normalise"

    def __init__(self, name: str, model, preprocess, tokenizer, batch_size: int = 64, runtime: Runtime | None = None):
        super().__init__(name, batch_size, runtime)
        self.model, self.preprocess, self.tokenizer = self.runtime.place(model.eval()), preprocess, tokenizer

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path,
             runtime: Runtime | None = None) -> OpenCLIPEmbedder:
        import open_clip

        from .clip_train import register_model_config

        model_name = spec["model"]
        if spec.get("model_config"):  # an architecture open_clip does not ship (e.g. the mini-world's tiny CLIP)
            register_model_config(model_name, spec["model_config"])
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=str(checkpoint))
        return cls(name, model, preprocess, open_clip.get_tokenizer(model_name), spec.get("batch_size", 64), runtime)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach())

    def _images(self, pil: list[Image.Image]) -> torch.Tensor:
        return self.model.encode_image(self.runtime.inputs(torch.stack([self.preprocess(p) for p in pil])))

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.runtime.inputs(self.tokenizer(texts)))


class HFCLIPEmbedder(TextImageEmbedder):
    preprocessing = "transformers CLIPProcessor: image processor of the processor folder; text padded/truncated to 77"

    def __init__(self, name: str, model, processor, batch_size: int = 64, runtime: Runtime | None = None):
        super().__init__(name, batch_size, runtime)
        self.model, self.processor = self.runtime.place(model.eval()), processor

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path,
             runtime: Runtime | None = None) -> HFCLIPEmbedder:
        from transformers import AutoProcessor, CLIPModel

        processor_dir = checkpoint
        if spec.get("processor"):
            processor_dir = resolve(WeightSpec.from_config(f"embedders.{name}.processor", spec["processor"]))
        model = CLIPModel.from_pretrained(str(checkpoint), local_files_only=True)
        processor = AutoProcessor.from_pretrained(str(processor_dir), local_files_only=True)
        return cls(name, model, processor, spec.get("batch_size", 64), runtime)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach())

    def _images(self, pil: list[Image.Image]) -> torch.Tensor:
        inputs = self.processor(images=pil, return_tensors="pt")
        return _features(self.model.get_image_features(pixel_values=self.runtime.inputs(inputs["pixel_values"])))

    def _texts(self, texts: list[str]) -> torch.Tensor:
        inputs = self.processor(text=texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        return _features(self.model.get_text_features(input_ids=self.runtime.inputs(inputs["input_ids"]),
                                                      attention_mask=self.runtime.inputs(inputs["attention_mask"])))


def _features(out) -> torch.Tensor:
    """transformers 5 returns a model output object from get_*_features; 4.x returned the tensor."""
    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0]


def load_embedder(name: str, spec: dict[str, Any], checkpoint: str | Path | None = None,
                  runtime: Runtime | None = None) -> TextImageEmbedder:
    """``checkpoint``: a trained stand-in's file; otherwise ``spec['weights']`` resolved from local files.
    ``runtime``: device and precision (genbench.runtime); None: the embedder's own ``runtime`` over auto / fp32."""
    if runtime is None:
        runtime = resolve_runtime({}, f"embedder '{name}'", spec.get("runtime"), metric=True)
    if checkpoint is None:
        checkpoint = resolve(WeightSpec.from_config(f"embedders.{name}", spec["weights"]))
    return EMBEDDERS.lookup(spec["kind"]).load(name, spec, checkpoint, runtime)
