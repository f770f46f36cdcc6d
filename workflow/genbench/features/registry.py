"""Feature extractors (the kinds are genbench.catalog.EXTRACTORS's entries: kind -> class). Every extractor maps
uint8 NHWC images to float64 features and (if it has a classifier head) logits, and states its
preprocessing, which is recorded in the tables' metadata. Those with an sFID layer (catalog trait ``spatial``) also
give ``spatial`` features from the same forward pass when asked (``spatial=True``: only the scoring extractor of a
config that requests sfid is, as these are the largest arrays of a feature file)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file

from ..catalog import EXTRACTORS
from ..data.stream import ImageSet, StreamResult, map_batches
from ..errors import GenbenchError
from ..runtime import Runtime, resolve_runtime
from ..weights import WeightSpec, resolve
from .classifier import MiniClassifier


class FeatureInputError(GenbenchError, ValueError):
    pass


class Extractor(ABC):
    preprocessing: ClassVar[str] = ""
    # what ``spatial`` holds when asked for (None: the extractor has no sFID layer)
    spatial_layer: ClassVar[str | None] = None

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        """The exact preprocessing for this config entry (recorded in the tables' metadata)."""
        return cls.preprocessing

    def __init__(self, name: str, batch_size: int = 128, runtime: Runtime | None = None):
        self.name = name
        self.batch_size = batch_size
        self.runtime = runtime or resolve_runtime({}, f"extractor '{name}'", metric=True)
        self.spatial = False

    def with_spatial(self, on: bool = True) -> Extractor:
        """Also output the ``spatial`` (sFID) features; a one-line error for an extractor without that layer."""
        if on and self.spatial_layer is None:
            raise FeatureInputError(f"extractor '{self.name}' ({type(self).__name__}) has no sFID layer",
                                    fix="score sfid with an inception_tf or miniworld_classifier extractor")
        self.spatial = on
        return self

    @abstractmethod
    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 NHWC images of one size -> per-item arrays (inputs moved to ``self.runtime``'s device)."""

    def _forward_mixed(self, images: list[np.ndarray], ids: np.ndarray, set_name: str) -> dict[str, np.ndarray]:
        """A batch of images of different sizes; by default one forward per image, in order."""
        parts: dict[str, list[np.ndarray]] = {}
        for im in images:
            for k, v in self._forward(im[None]).items():
                parts.setdefault(k, []).append(v)
        return {k: np.concatenate(v) for k, v in parts.items()}

    def forward_batch(self, images: list[np.ndarray] | np.ndarray, ids: np.ndarray, set_name: str
                      ) -> dict[str, np.ndarray]:
        """One batch, in the runtime's precision, without gradients."""
        if isinstance(images, list):
            same = len({im.shape for im in images}) == 1
            images = np.stack(images) if same else images
        with torch.no_grad(), self.runtime.compute():
            if isinstance(images, np.ndarray):
                return self._forward(images)
            return self._forward_mixed(images, ids, set_name)

    def _finish(self, out: dict[str, np.ndarray], set_name: str) -> dict[str, np.ndarray]:
        out = {k: v.astype(np.float64) for k, v in out.items()}
        for k, v in out.items():
            if not np.isfinite(v).all():
                raise FeatureInputError(f"extractor '{self.name}' produced non-finite {k} for image set '{set_name}'")
        return out

    def extract(self, images: np.ndarray, set_name: str) -> dict[str, np.ndarray]:
        """Features of an image set in memory, batch by batch, with the input checked first (the set is named on
        error)."""
        check_images(images, set_name)
        parts: dict[str, list[np.ndarray]] = {}
        ids = np.arange(len(images)).astype(str)
        for start in range(0, len(images), self.batch_size):
            stop = start + self.batch_size
            for k, v in self.forward_batch(images[start:stop], ids[start:stop], set_name).items():
                parts.setdefault(k, []).append(v)
        return self._finish({k: np.concatenate(v) for k, v in parts.items()}, set_name)

    def extract_set(self, images: ImageSet, set_name: str, workers: int = 0, policy: str = "fail") -> StreamResult:
        """Features of a streamed image set (genbench.data.stream): bounded memory, any image sizes, undecodable
        images per ``policy``; ``result.outputs`` holds the kept items' features in set order."""
        res = map_batches(images, lambda ims, idx: self.forward_batch(ims, images.item_id[idx], set_name),
                          batch_size=self.batch_size, workers=workers, policy=policy,
                          what=f"{self.name} features of {set_name}")
        res.outputs = self._finish(res.outputs, set_name)
        return res


def _np(t: torch.Tensor) -> np.ndarray:
    """A model output as float32 numpy on the CPU (bf16/fp16 autocast outputs included)."""
    return t.detach().float().cpu().numpy()


def check_images(images: np.ndarray, set_name: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise FeatureInputError(f"image set '{set_name}': expected a uint8 array, got "
                                f"{getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise FeatureInputError(f"image set '{set_name}': expected NHWC with 3 channels, got shape {images.shape}")
    if len(images) == 0:
        raise FeatureInputError(f"image set '{set_name}' is empty")


class MiniworldClassifierExtractor(Extractor):
    preprocessing = "native resolution (no resize), (x - 127.5) / 127.5; features: 64-d pooled CNN activations"
    spatial_layer = (f"body.{MiniClassifier.SPATIAL_LAYER} (conv-BN-ReLU at H/2 x W/2), first "
                     f"{MiniClassifier.SPATIAL_CHANNELS} channels, NHWC-flattened")

    def __init__(self, name: str, net: MiniClassifier, batch_size: int = 128, runtime: Runtime | None = None,
                 native_size: int | None = None):
        super().__init__(name, batch_size, runtime)
        self.net = self.runtime.place(net.eval())
        self.native_size: tuple[int, int] | int | None = native_size  # None: the first image's size

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path,
             runtime: Runtime | None = None) -> MiniworldClassifierExtractor:
        state = load_file(str(checkpoint))
        num_classes, feature_dim = state["head.weight"].shape
        net = MiniClassifier(num_classes, feature_dim=feature_dim).to(state["head.weight"].dtype)
        net.load_state_dict(state, strict=True)
        return cls(name, net, spec.get("batch_size", 128), runtime, spec.get("image_size"))

    def _check_size(self, images: list[np.ndarray] | np.ndarray, ids: np.ndarray, set_name: str) -> None:
        if self.native_size is None and len(images):
            self.native_size = tuple(images[0].shape[:2])
        elif isinstance(self.native_size, int):
            self.native_size = (self.native_size, self.native_size)
        h, w = self.native_size
        for im, item in zip(images, ids, strict=True):
            if im.shape[:2] != (h, w):
                raise FeatureInputError(
                    f"extractor '{self.name}' (mini-world classifier) takes its native {w} x {h} images only; item "
                    f"'{item}' of image set '{set_name}' is {im.shape[1]} x {im.shape[0]}: use an extractor that "
                    f"resizes (inception_tf, dinov2) for this set")

    def forward_batch(self, images, ids, set_name):
        self._check_size(images, ids, set_name)
        return super().forward_batch(images, ids, set_name)

    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        # in the precision it was trained in (float64 by default: its features are then the same on any machine)
        x = self.runtime.inputs(MiniClassifier.preprocess(images).to(self.net.head.weight.dtype))
        if self.spatial:
            f, logits, spatial = self.net.forward_all(x)
            return {"features": _np(f), "logits": _np(logits), "spatial": _np(spatial)}
        f, logits = self.net(x)
        return {"features": _np(f), "logits": _np(logits)}


class InceptionTFExtractor(Extractor):
    """TF-FID Inception (pt_inception-2015-12-05): 2048-d pool3 features and 1008 unbiased logits."""

    preprocessing = "resize to 299 x 299 ({resize}), (x - 128) / 128; features: 2048-d pool3; logits: 1008, no bias"
    spatial_layer = "Mixed_6d.branch1x1 (TF mixed_6/conv:0), first 7 channels, NHWC-flattened: 17 x 17 x 7 = 2023"

    def __init__(self, name: str, net, resize: str, batch_size: int = 128, runtime: Runtime | None = None):
        super().__init__(name, batch_size, runtime)
        self.net = self.runtime.place(net.eval())
        self.resize = resize

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        from .inception import RESIZE_REFERENCE

        resize = spec.get("resize", "clean")
        return cls.preprocessing.format(resize=f"{resize}: {RESIZE_REFERENCE.get(resize, 'unknown mode')}")

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path,
             runtime: Runtime | None = None) -> InceptionTFExtractor:
        from .inception import FIDInception

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        net = FIDInception()
        net.load_fid_state_dict(state, f"extractor '{name}': {checkpoint}")
        return cls(name, net, spec.get("resize", "clean"), spec.get("batch_size", 128), runtime)

    def _forward(self, images: np.ndarray) -> dict[str, np.ndarray]:
        from .inception import resize_to_299

        return self._net(resize_to_299(images, self.resize))

    def _net(self, x: np.ndarray) -> dict[str, np.ndarray]:
        from .inception import normalise

        x = self.runtime.inputs(normalise(x))
        if self.spatial:
            f, logits, spatial = self.net.forward_all(x)
            return {"features": _np(f), "logits": _np(logits), "spatial": _np(spatial)}
        f, logits = self.net(x)
        return {"features": _np(f), "logits": _np(logits)}

    def _forward_mixed(self, images: list[np.ndarray], ids: np.ndarray, set_name: str) -> dict[str, np.ndarray]:
        """Each image resized to 299 x 299 on its own, then one forward for the batch."""
        from .inception import resize_to_299

        return self._net(np.concatenate([resize_to_299(im[None], self.resize) for im in images]))


class DinoV2Extractor(Extractor):
    """DINOv2 (transformers Dinov2Model) CLS features after the final LayerNorm, preprocessed as dgm-eval: PIL
    bicubic resize to 224 x 224 (no crop), ImageNet mean/std. For FD/KD-DINOv2; no logits."""

    preprocessing = ("resize to {size} x {size} (PIL bicubic via torchvision, no crop), ImageNet mean/std (dgm-eval); "
                     "features: CLS token after the final LayerNorm")
    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, name: str, model, size: int, batch_size: int = 64, runtime: Runtime | None = None):
        super().__init__(name, batch_size, runtime)
        from torchvision import transforms

        self.model = self.runtime.place(model.eval())
        self.transform = transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(), transforms.Normalize(self.MEAN, self.STD)])

    @classmethod
    def describe(cls, spec: dict[str, Any]) -> str:
        return cls.preprocessing.format(size=spec.get("image_size", 224))

    @classmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path,
             runtime: Runtime | None = None) -> DinoV2Extractor:
        from transformers import Dinov2Model

        folder = Path(checkpoint)
        folder = folder.parent if folder.is_file() else folder  # a pipeline-made model names its weights file
        model = Dinov2Model.from_pretrained(str(folder), local_files_only=True)
        return cls(name, model, spec.get("image_size", 224), spec.get("batch_size", 64), runtime)

    def _forward(self, images: np.ndarray | list[np.ndarray]) -> dict[str, np.ndarray]:
        from PIL import Image

        x = torch.stack([self.transform(Image.fromarray(im)) for im in images])
        return {"features": _np(self.model(pixel_values=self.runtime.inputs(x)).pooler_output)}

    def _forward_mixed(self, images: list[np.ndarray], ids: np.ndarray, set_name: str) -> dict[str, np.ndarray]:
        return self._forward(images)  # each image is resized on its own anyway


def load_extractor(name: str, spec: dict[str, Any], checkpoint: str | Path | None,
                   runtime: Runtime | None = None, spatial: bool = False) -> Extractor:
    """``checkpoint``: a trained stand-in's file; official weights are resolved from ``spec['weights']`` (local
    files only), failing with the file and the fetch command named. ``runtime``: device and precision
    (genbench.runtime); None: the extractor's own ``runtime`` entry over the defaults (auto, fp32). ``spatial``:
    also output the sFID features (``spatial``)."""
    if runtime is None:
        runtime = resolve_runtime({}, f"extractor '{name}'", spec.get("runtime"), metric=True)
    if checkpoint is None and spec.get("weights"):
        checkpoint = resolve(WeightSpec.from_config(f"extractors.{name}", spec["weights"]))
    return EXTRACTORS.lookup(spec["kind"]).load(name, spec, checkpoint, runtime).with_spatial(spatial)
