"""Inception Score from classifier logits, with torch-fidelity's protocol.

IS = exp(E_x KL(p(y|x) || p(y))), computed in float64 on ``splits`` chunks of the samples after a permutation
by ``numpy.random.RandomState(rng_seed)`` (2020 in torch-fidelity); chunk i is rows [i*N//splits,
(i+1)*N//splits). Reported: the mean over chunks and the population standard deviation (ddof=0, as
torch-fidelity; torchmetrics reports the sample std, ddof=1, over an unseeded split).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from .fid import MetricInputError, check_features


def inception_score(logits: np.ndarray, splits: int = 10, shuffle: bool = True, rng_seed: int = 2020,
                    set_name: str = "generated") -> tuple[float, float]:
    x = check_features(logits, set_name, min_samples=splits)
    if splits < 1:
        raise MetricInputError(f"inception score: splits must be >= 1, got {splits}")
    if shuffle:
        x = x[np.random.RandomState(rng_seed).permutation(len(x))]
    log_p = log_softmax(x, axis=1)
    p = np.exp(log_p)
    n = len(x)
    scores = []
    for i in range(splits):
        lo, hi = (i * n) // splits, ((i + 1) * n) // splits
        p_c, log_p_c = p[lo:hi], log_p[lo:hi]
        log_q = np.log(p_c.mean(axis=0, keepdims=True))
        kl = (p_c * (log_p_c - log_q)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))
