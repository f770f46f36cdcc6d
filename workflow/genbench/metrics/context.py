"""What a 2D metric's compute function is given: one cell's inputs and scoring settings, in one object.

``score_cell`` builds one :class:`CellContext` per cell and calls, for the requested metrics, the compute function
each one's registry entry names (``genbench.metrics.registry``, ``compute="module:function"``). A compute function
has the signature ``rows(ctx: CellContext, metrics: tuple[str, ...]) -> list[dict]``: ``metrics`` are the
requested metrics whose entry names that function (several metrics may share one, e.g. precision/recall/density/
coverage), and each returned dict is one row (``metric``, ``value``, ``ci_low``, ``ci_high``, ``ci_method``, ``n``,
``n_real`` and optionally ``ci_bias``, ``note``, ``extractor``); ``score_cell`` adds the cell's columns.

Pieces that several metrics use (FID with its bootstrap replicates, which csFID/psFID rescale; IS with its
replicates, which csIS/psIS rescale) are computed once per cell through :meth:`CellContext.shared`, by the module
that owns them (``fid.fid_bootstrap``, ``inception_score.is_bootstrap``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from ..seeding import derive_seed
from .bootstrap import debiased_row
from .fid import MetricInputError

T = TypeVar("T")
Embeddings = dict[str, np.ndarray]


@dataclass(frozen=True)
class RealStatistics:
    """A real set's precomputed Fréchet statistics (an ADM reference batch's ``mu`` / ``sigma``): FID is computed
    against them instead of the real features, with the real side fixed in the bootstrap."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int  # images behind them (the batch's arr_0), for the rows' n_real
    source: str  # what they are, for the rows' note and the provenance
    mu_s: np.ndarray | None = None  # the batch's spatial statistics (sFID's mu_s / sigma_s), when it has them
    sigma_s: np.ndarray | None = None


@dataclass
class CellContext:
    """One cell's scoring inputs. ``real`` / ``gen``: the feature files' arrays (``features``; ``logits`` when the
    extractor gives them); ``text_image``: role ('clip', 'pick') -> (real, generated) embeddings (``image_emb``,
    ``text_emb``, ``item_id``, ``logit_scale``), with the embedder names in ``text_image_names``; ``dinov2``:
    (real, generated, extractor name) or None; ``kid``, ``fd_inf``: those settings of the config's ``scoring``
    block ({} for the defaults); ``real_statistics``: precomputed real statistics FID is computed against (a data
    set's ``statistics: precomputed``), or None."""

    real: Embeddings
    gen: Embeddings
    cell: dict[str, Any]
    real_name: str
    gen_name: str
    n_boot: int
    confidence: float
    bootstrap_seed: int
    is_splits: int
    kid: dict[str, Any] = field(default_factory=dict)
    text_image: dict[str, tuple[Embeddings, Embeddings]] = field(default_factory=dict)
    text_image_names: dict[str, str] = field(default_factory=dict)
    dinov2: tuple[Embeddings, Embeddings, str] | None = None
    prdc_k: int = 3
    fd_inf: dict[str, Any] = field(default_factory=dict)
    real_statistics: RealStatistics | None = None
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> tuple[str, str]:
        """(real set name, generated set name), as error messages name the sets."""
        return self.real_name, self.gen_name

    @property
    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """(real, generated) features of the scoring extractor."""
        return self.real["features"], self.gen["features"]

    def spatial_features(self) -> tuple[np.ndarray, np.ndarray]:
        """(real, generated) sFID spatial features of the scoring extractor (``spatial`` in the feature files)."""
        for name, arrays, rule in ((self.real_name, self.real, "features_real"),
                                   (self.gen_name, self.gen, "cell_features")):
            if "spatial" not in arrays:
                raise MetricInputError(
                    "sfid needs spatial features; this feature file was written without them (sfid was not "
                    "requested when it was made, or the extractor has no sFID layer)", item=f"feature set '{name}'",
                    fix=f"rerun its {rule} job with sfid in scoring.metrics (snakemake --forcerun {rule})")
        return self.real["spatial"], self.gen["spatial"]

    def rng_for(self, metric: str) -> np.random.Generator:
        """A fresh generator for ``metric``'s resamples, seeded by the bootstrap seed, the cell and the name: the
        same on every call, whichever metrics are computed and in which order."""
        return np.random.default_rng(derive_seed("bootstrap", self.bootstrap_seed, self.gen_name, metric))

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()``'s result, computed on the first call for ``key`` in this cell and reused after."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def debiased(self, value: float, reps: np.ndarray, detail: str = "") -> dict[str, Any]:
        """A row's value, debiased-percentile interval, bias estimate and method label."""
        return debiased_row(value, reps, self.confidence, self.n_boot, detail)

    def embedder(self, role: str) -> str:
        """The configured name of the ``role`` embedder (the role itself when none is named)."""
        return self.text_image_names.get(role, role)

    def dinov2_features(self) -> tuple[np.ndarray, np.ndarray, str, tuple[str, str]]:
        """(real, generated) DINOv2 features, the extractor's name and the two sets' names."""
        if self.dinov2 is None:
            raise MetricInputError(f"{self.gen_name}: fd_dinov2/kd_dinov2 need DINOv2 features (scoring.dinov2)")
        dr, dg, name = self.dinov2
        return (dr["features"], dg["features"], name,
                (f"{self.real_name} (DINOv2)", f"{self.gen_name} (DINOv2)"))
