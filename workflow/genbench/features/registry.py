"""Feature-extractor registry: kind -> loader. Every extractor maps uint8 NHWC images to float64 features and
(if it has a classifier head) logits, and states its preprocessing, which is recorded in the tables' metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file

from ..registry import Registry
from ..weights import WeightSpec, resolve
from .classifier import MiniClassifier

EXTRACTORS: Registry[type[Extractor]] = Registry("feature extractor kind")
register = EXTRACTORS.register


class FeatureInputError(ValueError):
    pass


class Extractor(ABC):
    preprocessing: ClassVar[str] = ""

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        """The exact preprocessing for this config entry (recorded in the tables' metadata)."""
        return cls.preprocessing

    def __init__(self, name: str, batch_size: int = 128):
        self.name = name
        self.batch_size = batch_size

    @abstractmethod
    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]: ...

    def extract(self, images: np.ndarray, set_name: str) -> dict[str, np.ndarray]:
        """Features of an image set, batch by batch, with the input checked first (the set is named on error)."""
        check_images(images, set_name)
        parts: dict[str, list[np.ndarray]] = {}
        with torch.no_grad():
            for start in range(0, len(images), self.batch_size):
                for k, v in self._forward(images[start:start + self.batch_size]).items():
                    parts.setdefault(k, []).append(v)
        out = {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}
        for k, v in out.items():
            if not np.isfinite(v).all():
                raise FeatureInputError(f"extractor '{self.name}' produced non-finite {k} for image set '{set_name}'")
        return out


def check_images(images: np.ndarray, set_name: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise FeatureInputError(f"image set '{set_name}': expected a uint8 array, got "
                                f"{getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise FeatureInputError(f"image set '{set_name}': expected NHWC with 3 channels, got shape {images.shape}")
    if len(images) == 0:
        raise FeatureInputError(f"image set '{set_name}' is empty")


@register("miniworld_classifier")
class MiniworldClassifierExtractor(Extractor):
    preprocessing = "native resolution (no resize), (x - 127.5) / 127.5; features: 64-d pooled CNN activations"

    def __init__(self, name: str, net: MiniClassifier, batch_size: int = 128):
        super().__init__(name, batch_size)
        self.net = net.eval()

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path) -> MiniworldClassifierExtractor:
        state = load_file(str(checkpoint))
        num_classes, feature_dim = state["head.weight"].shape
        net = MiniClassifier(num_classes, feature_dim=feature_dim).to(state["head.weight"].dtype)
        net.load_state_dict(state, strict=True)
        return cls(name, net, spec.get("batch_size", 128))

    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        # in the precision it was trained in (float64 by default: its features are then the same on any machine)
        f, logits = self.net(MiniClassifier.preprocess(images).to(self.net.head.weight.dtype))
        return {"features": f.numpy(), "logits": logits.numpy()}


@register("inception_tf")
class InceptionTFExtractor(Extractor):
    """TF-FID Inception (pt_inception-2015-12-05): 2048-d pool3 features and 1008 unbiased logits."""

    preprocessing = "resize to 299 x 299 ({resize}), (x - 128) / 128; features: 2048-d pool3; logits: 1008, no bias"

    def __init__(self, name: str, net, resize: str, batch_size: int = 128):
        super().__init__(name, batch_size)
        self.net = net.eval()
        self.resize = resize

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        from .inception import RESIZE_REFERENCE

        resize = spec.get("resize", "clean")
        return cls.preprocessing.format(resize=f"{resize}: {RESIZE_REFERENCE.get(resize, 'unknown mode')}")

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path) -> InceptionTFExtractor:
        from .inception import FIDInception

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net = FIDInception()
        net.load_fid_state_dict(state, f"extractor '{name}': {checkpoint}")
        return cls(name, net, spec.get("resize", "clean"), spec.get("batch_size", 128))

    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .inception import normalise, resize_to_299

        f, logits = self.net(normalise(resize_to_299(images, self.resize)))
        return {"features": f.numpy(), "logits": logits.numpy()}


@register("dinov2")
class DinoV2Extractor(Extractor):
    """DINOv2 (transformers Dinov2Model) CLS features after the final LayerNorm, preprocessed as dgm-eval: PIL
    bicubic resize to 224 x 224 (no crop), ImageNet mean/std. For FD/KD-DINOv2; no logits."""

    preprocessing = ("resize to {size} x {size} (PIL bicubic via torchvision, no crop), ImageNet mean/std (dgm-eval); "
                     "features: CLS token after the final LayerNorm")
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, name: str, model, size: int, batch_size: int = 64):
        super().__init__(name, batch_size)
        from torchvision import transforms

        self.model = model.eval()
        self.transform = transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(), transforms.Normalize(self.MEAN, self.STD)])

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        return cls.preprocessing.format(size=spec.get("image_size", 224))

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path) -> DinoV2Extractor:
        from transformers import Dinov2Model

        folder = Path(checkpoint)
        folder = folder.parent if folder.is_file() else folder  # a pipeline-made model names its weights file
        model = Dinov2Model.from_pretrained(str(folder), local_files_only=True)
        return cls(name, model, spec.get("image_size", 224), spec.get("batch_size", 64))

    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from PIL import Image

        x = torch.stack([self.transform(Image.fromarray(im)) for im in images])
        return {"features": self.model(pixel_values=x).pooler_output.numpy()}


def load_extractor(name: str, spec: dict[str, Any], checkpoint: str | Path | None) -> Extractor:
    """``checkpoint``: a trained stand-in's file; official weights are resolved from ``spec['weights']`` (local
    files only), failing with the file and the fetch command named."""
    if checkpoint is None and spec.get("weights"):
        checkpoint = resolve(WeightSpec.from_config(f"extractors.{name}", spec["weights"]))
    return EXTRACTORS.lookup(spec["kind"]).load(name, spec, checkpoint)
