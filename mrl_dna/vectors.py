"""Matryoshka prefixes of numpy vectors: the one normalisation helper of the project (torch code uses
`train.losses.truncate_normalize`, the same map on tensors).

A prefix of width k is used as normalize(v[:k]) (DESIGN.md). Rows that are all zero (records without an
embedding: empty or all N) stay zero, never NaN. Also the two checks of a prefix's use that every command
shares: a cosine cut-off (`check_cosine`) and a width that is not a trained Matryoshka dim (`warn_untrained_dim`).
"""

from __future__ import annotations

import numpy as np

from mrl_dna.errors import OptionError


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise the last axis in float32; zero rows stay zero. (..., k) -> (..., k) float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)  # (..., 1)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def truncate_normalize(x: np.ndarray, k: int) -> np.ndarray:
    """The Matryoshka prefix of width k, renormalised: (..., D) -> (..., k) float32."""
    return normalize_rows(np.asarray(x)[..., :k])


def check_cosine(value: float | None, option: str) -> float | None:
    """A cosine cut-off (search --min-score, dist and cluster --min-sim) lies in -1..1; anything else (2, nan,
    inf) kept nothing or everything without a word. OptionError (exit 2) naming the option otherwise."""
    if value is not None and not -1.0 <= value <= 1.0:
        raise OptionError(f"{option} {value:g} is not a cosine; give a value in -1..1 (e.g. 0.95)")
    return value


def warn_untrained_dim(k: int, matryoshka_dims, warn, option: str = "--dim") -> None:
    """The one warning for a prefix width that is not a trained Matryoshka dim (search, dist, cluster, export):
    such a prefix is usable but was never trained to stand alone."""
    dims = [int(d) for d in matryoshka_dims]
    if int(k) not in dims:
        warn(f"{option} {k} is not one of the model's trained Matryoshka dims {dims}")
