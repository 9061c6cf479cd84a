"""Exact blocked top-k over normalised prefixes, and the rerank of candidate rows (a funnel's later stages).

Axis letters: q queries, n DB rows, b rows in one block, k prefix width, m candidates kept per query,
t hits per query (-k), u distinct candidate rows of a query chunk. Multiply-adds ("macs") count the dot
products of scoring only, as the Matryoshka paper does: a scan of n rows at width k costs n*k per query.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from mrl_dna.errors import ConfigError
from mrl_dna.runtime import fast_bf16
from mrl_dna.vectors import truncate_normalize


# Working-set budget of one scoring step (scores + block on the device). 256 MiB keeps a 2-core CI box
# and a laptop comfortable and is large enough that BLAS, not Python, dominates.
SCORE_BUDGET_BYTES = 256 * 2**20


GATHER_BYTES = 32 * 2**20

# The two-pass scan (CPU with native bf16): a block is scored in bf16 first; every row whose bf16 score lies
# within BF16_BOUND of the best lower bound on the query's true k-th score is rescored in fp32. For unit
# vectors the bf16 score is within BF16_BOUND of the fp32 one: inputs rounded to 8 significant bits (relative
# error u = 2^-8 each, so |error| <= (2u + u^2) |q||b| = 0.0079 by Cauchy-Schwarz), fp32 accumulation (~3e-5
# at 512 dims) and the bf16 output (u |s| <= 0.0040), 0.0119 in all. No row of the true top-k can be left out,
# so the result is exact. Used only where it pays: enough queries for a matmul to dominate, big blocks.
BF16_BOUND = 0.0125
BF16_MIN_QUERIES, BF16_MIN_ROWS, BF16_CANDIDATES = 16, 4096, 64


@dataclass(frozen=True)
class Hits:
    """Top hits of every query. Row -1 marks a missing hit (small DB, --min-score)."""

    rows: np.ndarray  # (q, t) int64 global DB row, best first
    scores: np.ndarray  # (q, t) float32 cosine at dims[-1]; -inf where rows == -1
    dims: tuple[int, ...]  # prefix widths used, in order; the cosine is at the last one
    macs_per_query: int  # multiply-adds of scoring per query


# (q, dim) normalised prefixes, m -> rows (q, m) (-1: none), their cosines at dim (q, m), multiply-adds spent
Shortlister = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray, int]]


def exact_share(hits: Hits, ref: Hits, tol: float = 1e-5) -> float:
    """Share of queries whose hits are the exact top-k `ref` (same shape): the same rows, or the same cosines
    within `tol` (rows tied at the k-th cosine, e.g. identical vectors, may be either)."""
    if not len(ref.rows):
        return 1.0
    same_rows = np.sort(hits.rows, 1) == np.sort(ref.rows, 1)
    a, b = np.where(hits.rows >= 0, hits.scores, -2.0), np.where(ref.rows >= 0, ref.scores, -2.0)
    same_scores = np.abs(np.sort(a, 1) - np.sort(b, 1)) <= tol
    return float(np.mean(same_rows.all(1) | same_scores.all(1)))


def _empty_hits(q: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((q, t), -math.inf), torch.full((q, t), -1, dtype=torch.int64)


def exact_search(
    queries: np.ndarray,
    blocks: Iterable[tuple[int, np.ndarray]],
    *,
    k: int,
    min_score: float | None = None,
    valid: np.ndarray | None = None,
    device: str = "cpu",
) -> Hits:
    """Exact top-k by inner product, one DB block at a time.

    queries: (q, d) L2-normalised prefixes. blocks: (start_row, (b, d) normalised rows) in any order, e.g.
    `Database.blocks(d, block_rows)`; memory is one block plus (q, b) scores plus the running (q, k) top-k,
    so a DB larger than RAM works. valid: optional (n,) bool, rows with False never appear (status != ok).
    """
    q_np = np.ascontiguousarray(queries, dtype=np.float32)
    nq, d = q_np.shape
    Q = torch.from_numpy(q_np).to(device)  # (q, d)
    best_s, best_r = (x.to(device) for x in _empty_hits(nq, k))  # (q, k) running top-k
    bf16 = Q.device.type == "cpu" and nq >= BF16_MIN_QUERIES and fast_bf16()
    gave_up = 0
    macs, first = 0, True
    for start, block in blocks:
        B = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)  # (b, d)
        if B.shape[1] != d:
            raise ConfigError(f"DB block has width {B.shape[1]} but queries have width {d}")
        nb = B.shape[0]
        if nb == 0:
            continue
        macs += nb * d
        ok = None if valid is None else torch.from_numpy(np.asarray(valid[start : start + nb], dtype=bool)).to(device)
        try_two = bf16 and nb >= BF16_MIN_ROWS
        two = _two_pass(Q, B, ok, best_s if not first else None, k) if try_two else None
        if two is not None:
            s, i = two
            gave_up = 0
        else:
            if try_two:
                gave_up += 1
                bf16 = gave_up < 3  # 3 blocks in a row too dense for it: this DB does not suit the two-pass scan
            S = Q @ B.T  # (q, b)
            if ok is not None:
                S.masked_fill_(~ok, -math.inf)
            s, i = torch.topk(S, min(k, nb), dim=1)  # (q, <=k)
        if first and nb >= k:  # nothing to merge with yet (a DB read in one block: one top-k only)
            best_s, best_r, first = s, i + start, False
            continue
        first = False
        all_s = torch.cat([best_s, s], dim=1)  # (q, k + <=k)
        all_r = torch.cat([best_r, i + start], dim=1)
        best_s, j = torch.topk(all_s, k, dim=1)
        best_r = torch.gather(all_r, 1, j)
    return _finish(best_s, best_r, (d,), macs, min_score)


def _two_pass(Q: torch.Tensor, B: torch.Tensor, ok: torch.Tensor | None, best_s: torch.Tensor | None,
              k: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The block's exact top-k of every query by the bf16-then-fp32 scan (see BF16_BOUND), or None when the
    BF16_CANDIDATES best bf16 scores of some query do not reach below the bound (many near-equal rows), where
    the plain fp32 scan is the cheaper exact one."""
    nb = B.shape[0]
    kk, m = min(k, nb), min(nb, max(k, BF16_CANDIDATES))
    Sb = Q.bfloat16() @ B.bfloat16().T  # (q, b), within BF16_BOUND of the fp32 scores
    if ok is not None:
        Sb.masked_fill_(~ok, -math.inf)
    vals, cand = torch.topk(Sb, m, dim=1)  # (q, m) best bf16 scores
    vals = vals.float()
    lower = vals[:, kk - 1] - BF16_BOUND if kk == k else torch.full((len(Q),), -math.inf)  # k rows score >= this
    if best_s is not None:  # k rows of earlier blocks score at least their k-th exact score
        lower = torch.maximum(lower, best_s[:, -1])
    # every row outside the m candidates has a bf16 score <= vals[:, -1]; below lower - BOUND it cannot be in a
    # top-k (a whole block smaller than m is taken entirely)
    if m < nb and not bool((vals[:, -1] < lower - BF16_BOUND).all()):
        return None
    cand = cand.numpy()
    if ok is not None:
        cand = np.where(ok.numpy()[cand], cand, -1)  # rerank skips -1
    block = B.numpy()
    rows, scores, _ = rerank(Q.numpy(), cand, lambda _dim, r: block[r], dim=B.shape[1], keep=kk)  # fp32 rescoring
    return torch.from_numpy(scores), torch.from_numpy(rows)


def _finish(
    s: torch.Tensor, r: torch.Tensor, dims: tuple[int, ...], macs: int, min_score: float | None
) -> Hits:
    s, r = s.cpu(), r.cpu().clone()
    drop = torch.isinf(s) | torch.isnan(s)
    if min_score is not None:
        drop |= s < min_score
    r[drop] = -1
    s = s.masked_fill(drop, -math.inf)
    return Hits(rows=r.numpy(), scores=s.numpy().astype(np.float32), dims=dims, macs_per_query=macs)


def rerank(
    queries: np.ndarray,
    candidates: np.ndarray,
    read_rows: Callable[[int, np.ndarray], np.ndarray],
    *,
    dim: int,
    keep: int,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray, int]:
    """Score each query's own candidates at prefix `dim` and keep the best `keep`.

    queries: (q, D) full vectors; candidates: (q, m) int64 rows, -1 = none. read_rows(dim, sorted unique
    rows) -> (u, dim) normalised prefixes: only the candidate rows are read (h5py needs sorted unique).
    Returns rows (q, keep), scores (q, keep) and the multiply-adds spent (all queries).
    """
    nq, m = candidates.shape
    keep = min(keep, m)
    Qd = torch.from_numpy(truncate_normalize(queries, dim)).to(device)  # (q, dim)
    out_r = np.full((nq, keep), -1, dtype=np.int64)
    out_s = np.full((nq, keep), -np.inf, dtype=np.float32)
    macs = 0
    # Outer chunks: the candidate rows of `chunk` queries are read once (<= SCORE_BUDGET_BYTES). Inner
    # chunks: gathered candidates (c, m, dim) stay under GATHER_BYTES, small enough to be reused from the
    # allocator's cache instead of page-faulting a fresh buffer each time (~3x faster than 256 MiB).
    chunk = max(1, SCORE_BUDGET_BYTES // (4 * max(1, m) * dim))
    inner = max(1, GATHER_BYTES // (4 * max(1, m) * dim))
    for lo in range(0, nq, chunk):
        cand = candidates[lo : lo + chunk]  # (c, m)
        present = cand >= 0
        union, pos = _union_positions(cand, present)  # (u,) sorted unique (as h5py needs), (c, m) into it
        if union.size == 0:
            continue
        V = read_rows(dim, union)  # (u, dim)
        Vd = torch.from_numpy(V).to(device) if device != "cpu" else None
        for a in range(0, len(cand), inner):
            b = min(a + inner, len(cand))
            if Vd is None:  # np.take gathers rows ~2x faster than torch's index_select on a CPU
                G = torch.from_numpy(np.take(V, pos[a:b], axis=0))  # (c, m, dim)
            else:
                G = Vd.index_select(0, torch.from_numpy(pos[a:b].reshape(-1)).to(device)).view(b - a, m, dim)
            S = torch.bmm(G, Qd[lo + a : lo + b, :, None]).view(b - a, m)  # (c, m)
            S.masked_fill_(~torch.from_numpy(present[a:b]).to(device), -math.inf)
            s, j = torch.topk(S, keep, dim=1)  # (c, keep)
            out_s[lo + a : lo + b] = s.cpu().numpy()
            out_r[lo + a : lo + b] = np.take_along_axis(cand[a:b], j.cpu().numpy(), axis=1)
        macs += int(present.sum()) * dim
    out_r[~np.isfinite(out_s)] = -1
    return out_r, out_s, macs


def _union_positions(cand: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique candidate rows and each candidate's position in them (0 where absent).

    When the candidates are dense in [0, max] a mark array beats np.unique + searchsorted (no sort)."""
    rows = cand[present]
    if rows.size == 0:
        return rows, np.zeros(cand.shape, np.int64)
    top = int(rows.max()) + 1
    if top <= 64 * rows.size:
        mark = np.zeros(top, bool)
        mark[rows] = True
        union = np.flatnonzero(mark)
        where = np.zeros(top, np.int64)
        where[union] = np.arange(len(union))
        return union, np.where(present, where[np.where(present, cand, 0)], 0)
    union = np.unique(rows)
    return union, np.where(present, np.searchsorted(union, np.where(present, cand, union[0])), 0)


def block_rows_for(nq: int, dim: int) -> int:
    """Rows per DB block so that the (q, b) scores and the (b, dim) block fit SCORE_BUDGET_BYTES."""
    b = SCORE_BUDGET_BYTES // (4 * (max(1, nq) + dim))
    return int(min(max(b, 1024), 1 << 20))
