"""The generators' base class and loading. The families are the entries of genbench.catalog.GENERATORS (name ->
class, imported on look-up): adding a model family is one module plus one catalog entry.

Every generator turns (labels, per-item noise, steps, guidance) into images in [-1, 1] (N, 3, H, W); the one
generation rule and the one evaluation path serve them all.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch

from ..catalog import GENERATORS
from ..weights import WeightsMissingError, WeightSpec, resolve
from .samplers import NoiseSource, SampleResult

__all__ = ["GENERATORS", "Generator", "NoiseSource", "WeightsMissingError", "load_generator"]


class Generator(ABC):
    def __init__(self, name: str, spec: dict[str, Any]):
        self.name = name
        self.spec = spec

    @classmethod
    @abstractmethod
    def load(cls, name: str, spec: dict[str, Any], checkpoint: str | Path | None, runtime=None) -> Generator:
        """Build the network and load its weights from local files only. ``runtime`` (genbench.runtime, the one
        :meth:`place` will get; None outside a stage) is for models whose weights must be loaded straight into
        the device's dtype or onto the device (a 12B text-to-image pipeline is not loaded in float32 first)."""

    def place(self, runtime) -> None:
        """Move the networks to ``runtime``'s device (genbench.runtime); every family overrides it for the modules
        it holds (Scale-RAE loads onto the device in :meth:`load` and records it here)."""
        self.runtime = runtime

    @abstractmethod
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of one sample's initial noise (C, H, W)."""

    @abstractmethod
    def sample(self, labels: torch.Tensor, noise: torch.Tensor, steps: int, cfg: float,
               noise_source: NoiseSource | None = None, prompts: list[str] | None = None) -> SampleResult:
        """Images in [-1, 1] as (N, 3, H, W) float, with NFE per sample. ``noise`` is each item's initial noise;
        ``noise_source(k)`` gives the k-th further draw of per-item noise (stochastic samplers), both derived from
        the items' own seeds so that batching and sharding never change an image; ``prompts`` are the items'
        manifest prompts (text-to-image systems; class-conditional models use the labels)."""


def get_generator_class(family: str) -> type[Generator]:
    return GENERATORS.lookup(family)


def load_generator(name: str, spec: dict[str, Any], checkpoint: str | Path | None, runtime=None) -> Generator:
    """``checkpoint``: a trained model's file; official weights are resolved from ``spec['weights']`` (local files
    only, genbench.weights), failing with the file and the fetch command named. ``runtime``: where the generator
    will run (then call ``place(runtime)``)."""
    if checkpoint is None and spec.get("weights"):
        checkpoint = resolve(WeightSpec.from_config(f"models.{name}", spec["weights"]))
    return get_generator_class(spec["family"]).load(name, spec, checkpoint, runtime=runtime)
