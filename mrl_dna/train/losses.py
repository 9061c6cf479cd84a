"""Matryoshka losses as small pure functions.

Glossary of axes: b batch (pairs), d full embedding width D, k a Matryoshka prefix width (k <= D).

Follows sentence-transformers (UKPLab) in behaviour, not in code:
- `truncate_normalize` is MatryoshkaLoss' `shrink`: slice the first k dims, then L2-normalise.
- `cosent_loss` is CoSENTLoss: log(1 + sum over pairs (i, j) with score_i < score_j of
  exp(scale * (cos_i - cos_j))), a ranking loss on pair cosines that only uses the order of the scores.
- `infonce_loss` is MultipleNegativesRankingLoss (symmetric=False) or
  MultipleNegativesSymmetricRankingLoss (symmetric=True: mean of the a->b and b->a cross-entropies).
  Difference: optional `labels` mask off-diagonal pairs of the same group out of the negatives
  (supervised-contrastive style), because a batch of genome windows often holds two windows of one genome.
- `matryoshka_loss` is MatryoshkaLoss with n_dims_per_step = -1 (every dim, every step): the encoder
  returns the full vector once and each dim slices it; no forward patching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mrl_dna.errors import ConfigError


def truncate_normalize(x: torch.Tensor, k: int) -> torch.Tensor:
    """First k dims of x, L2-normalised: (..., d) -> (..., k)."""
    if k < 1 or k > x.shape[-1]:
        raise ConfigError(f"matryoshka dim {k} exceeds the embedding width {x.shape[-1]}; pick dims <= {x.shape[-1]}")
    return F.normalize(x[..., :k], p=2, dim=-1)


def _pair_cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine of row i of a with row i of b: (b, k), (b, k) -> (b,)."""
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)


def cosent_loss(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """CoSENT: pairs (a_i, b_i) with graded target scores (b,). Only the order of the scores matters.

    loss = log(1 + sum_{i,j: score_i < score_j} exp(scale * (cos_i - cos_j))); 0-d tensor.
    With no ordered pair (all scores equal) the loss is log(1) = 0.
    """
    cos = _pair_cos(a, b) * scale  # (b,)
    diff = cos[:, None] - cos[None, :]  # (b, b): cos_i - cos_j
    ordered = scores[:, None] < scores[None, :]  # (b, b): pair i should be less similar than pair j
    terms = diff.masked_fill(~ordered, float("-inf")).reshape(-1)  # (b*b,): exp(-inf) = 0 drops a pair
    zero = torch.zeros(1, dtype=cos.dtype, device=cos.device)
    return torch.logsumexp(torch.cat([zero, terms]), dim=0)


def infonce_loss(
    a: torch.Tensor,
    b: torch.Tensor,
    labels: torch.Tensor | None = None,
    scale: float = 20.0,
    symmetric: bool = False,
    extra: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-batch InfoNCE (multiple-negatives ranking): a_i should pick b_i among all b_j.

    a, b: (b, k); labels: optional (b,) group ids -- b_j with labels[j] == labels[i], j != i, is removed
    from the negatives of a_i (and a_j from those of b_i when symmetric). extra: optional (m, k) rows that are
    negatives of every a_i (and of every b_i when symmetric) besides the batch's own, e.g. the embeddings of
    earlier batches (train/queue.py, MoCo's queue); a_i then picks b_i among the b_j and the m extra rows, as if
    those rows were more b_j of the batch. Returns a 0-d tensor: the mean cross-entropy over rows (symmetric:
    mean of the a->b and b->a losses).
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    sim = a @ b.T * scale  # (b, b)
    n = sim.shape[0]
    target = torch.arange(n, device=sim.device)
    if labels is not None:
        same = labels[:, None] == labels[None, :]  # (b, b)
        same.fill_diagonal_(False)
        sim = sim.masked_fill(same, float("-inf"))  # the mask is symmetric, so sim.T is masked too
    if extra is None:
        loss = F.cross_entropy(sim, target)
        if symmetric:
            loss = (loss + F.cross_entropy(sim.T, target)) / 2
        return loss
    extra = F.normalize(extra, dim=-1)
    loss = F.cross_entropy(torch.cat([sim, a @ extra.T * scale], dim=1), target)  # (b, b + m)
    if symmetric:
        loss = (loss + F.cross_entropy(torch.cat([sim.T, b @ extra.T * scale], dim=1), target)) / 2
    return loss


def variance_loss(x: torch.Tensor, target: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """VICReg's variance term (Bardes et al. 2022): mean over features of relu(target - std of the feature over
    the rows): (n, e) -> 0-d. 0 when every feature varies by at least `target` across the rows; 1 when all rows
    are the same vector. train --feature-variance puts it on the learned features of a batch's windows, so an
    encoder cannot switch itself off by giving every window the same features (bench/RESULTS.md, issue 21)."""
    std = torch.sqrt(x.float().var(dim=0) + eps)  # (e,)
    return F.relu(target - std).mean()


def matryoshka_loss(
    base_fn: Callable[..., torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    dims: Sequence[int],
    weights: Sequence[float],
    **kw,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """sum_k w_k * base_fn(truncate_normalize(a, k), truncate_normalize(b, k), **kw).

    An `extra` keyword (infonce_loss's extra negatives, full width) is truncated and normalised per dim too.
    Returns (total, {k: unweighted per-dim loss}); total == sum(w_k * per_dim[k]).
    """
    per_dim: dict[int, torch.Tensor] = {}
    total = a.new_zeros(())
    extra = kw.pop("extra", None)
    for k, w in zip(dims, weights):
        if extra is not None:
            kw["extra"] = truncate_normalize(extra, k)
        per_dim[k] = base_fn(truncate_normalize(a, k), truncate_normalize(b, k), **kw)
        total = total + w * per_dim[k]
    return total, per_dim


@dataclass(frozen=True)
class MatryoshkaLoss:
    """Validated dims and weights of the Matryoshka wrapper.

    dims: nested prefix widths, positive and strictly increasing (each one an embedding users can take).
    weights: one per dim, >= 0; None means all 1.0 (sentence-transformers' default: every prefix counts
    as much as the full vector). `model_dim` (the model's width D), when given, bounds the dims.
    """

    dims: tuple[int, ...]
    weights: tuple[float, ...] | None = None
    model_dim: int | None = None

    def __post_init__(self) -> None:
        dims = tuple(int(d) for d in self.dims)
        if not dims:
            raise ConfigError("matryoshka dims are empty; give at least one dim, e.g. 8,16,32,64")
        for d in dims:
            if d < 1:
                raise ConfigError(f"matryoshka dim {d} is not positive; give dims >= 1")
        if any(x >= y for x, y in zip(dims, dims[1:])):
            raise ConfigError(f"matryoshka dims {list(dims)} are not strictly increasing; give e.g. 8,16,32,64")
        if self.model_dim is not None and dims[-1] > self.model_dim:
            raise ConfigError(
                f"matryoshka dim {dims[-1]} exceeds the model's width {self.model_dim}; pick dims <= {self.model_dim}"
            )
        weights = tuple(float(w) for w in self.weights) if self.weights is not None else (1.0,) * len(dims)
        if len(weights) != len(dims):
            raise ConfigError(
                f"matryoshka weights has {len(weights)} values for {len(dims)} dims; give one weight per dim"
            )
        for w in weights:
            if not w >= 0:  # also rejects NaN
                raise ConfigError(f"matryoshka weight {w} is not >= 0; give weights >= 0")
        if not any(w > 0 for w in weights):
            raise ConfigError("matryoshka weights are all zero; give at least one positive weight")
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "weights", weights)

    def __call__(self, base_fn: Callable[..., torch.Tensor], a: torch.Tensor, b: torch.Tensor, **kw):
        """(total, {k: per-dim loss}) of base_fn over every dim; see `matryoshka_loss`."""
        return matryoshka_loss(base_fn, a, b, self.dims, self.weights, **kw)
