"""Search Matryoshka embeddings: exact blocked top-k and funnel (adaptive) retrieval.

Funnel retrieval follows Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022), section 4.3
"Adaptive Retrieval": shortlist with a small prefix over the whole database, then rerank the shortlist at
growing prefixes. The cosine at prefix width k is `normalize(q[:k]) . normalize(v[:k])` (DESIGN.md).
Deviation: the paper shortlists with an HNSW index; here the first stage is an exact blocked scan over the
prefix columns (or a FAISS index on that prefix when `mrl-dna index` wrote one), so a funnel whose first
stage keeps every row and whose last stage is the full width is exactly the exact search.

Axis letters used in shape comments:
    q  queries            n  DB rows (all files)       b  rows in one block
    k  prefix width       m  candidates kept per query  t  hits per query (-k)
    u  distinct candidate rows of a query chunk        w  windows of one target record

Multiply-adds ("macs") count the dot products of scoring only, as the paper does: a scan of n rows at
width k costs n*k per query, a rerank of m candidates at width k costs m*k.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrl_dna.device import resolve_device
from mrl_dna.errors import ConfigError, MrlDnaError, StoreError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
STATUS_OK = 0

# Working-set budget of one scoring step (scores + block on the device). 256 MiB keeps a 2-core CI box
# and a laptop comfortable and is large enough that BLAS, not Python, dominates.
SCORE_BUDGET_BYTES = 256 * 2**20
GATHER_BYTES = 32 * 2**20
# Below this many multiply-adds per query (32k rows at D=128) a full-width scan takes about a millisecond
# per query on one core and is exact, so the default funnel is that scan.
SMALL_DB_MACS = 2**22


# --------------------------------------------------------------------------------------------- math
def normalize(x: np.ndarray) -> np.ndarray:
    """Rows divided by their L2 norm, as float32; all-zero rows (records without an embedding) stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


_normalize = normalize  # for methods whose `normalize` keyword (EmbeddingStore.read's) shadows it


def truncate_normalize(x: np.ndarray, dim: int) -> np.ndarray:
    """The Matryoshka prefix of width `dim`, renormalised: (q, D) -> (q, dim)."""
    return normalize(np.asarray(x)[..., :dim])


# ------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Stage:
    """One funnel stage: score the current candidates at prefix `dim`, keep the best `keep`."""

    dim: int
    keep: int

    def __str__(self) -> str:
        return f"{self.dim}:{self.keep}"


@dataclass(frozen=True)
class Hits:
    """Top hits of every query. Row -1 marks a missing hit (small DB, --min-score)."""

    rows: np.ndarray  # (q, t) int64 global DB row, best first
    scores: np.ndarray  # (q, t) float32 cosine at dims[-1]; -inf where rows == -1
    dims: tuple[int, ...]  # prefix widths used, in order; the cosine is at the last one
    macs_per_query: int  # multiply-adds of scoring per query


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
    macs, first = 0, True
    for start, block in blocks:
        B = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32)).to(device)  # (b, d)
        if B.shape[1] != d:
            raise ConfigError(f"DB block has width {B.shape[1]} but queries have width {d}")
        nb = B.shape[0]
        if nb == 0:
            continue
        macs += nb * d
        S = Q @ B.T  # (q, b)
        if valid is not None:
            ok = torch.from_numpy(np.asarray(valid[start : start + nb], dtype=bool)).to(device)
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


# ------------------------------------------------------------------------------------------- funnel
def parse_funnel(text: str) -> tuple[Stage, ...]:
    """'16:2000,64:200,128:10' -> stages; the last stage may omit its keep ('...,128'), it then keeps -k."""
    stages = []
    for part in text.split(","):
        part = part.strip()
        dim_s, _, keep_s = part.partition(":")
        try:
            dim = int(dim_s)
            keep = int(keep_s) if keep_s else 0
        except ValueError:
            raise ConfigError(
                f"--funnel stage {part!r} is not DIM:KEEP; write e.g. --funnel 16:2000,64:200,128:10"
            ) from None
        stages.append(Stage(dim, keep))
    for s in stages[:-1]:
        if s.keep < 1:
            raise ConfigError(f"--funnel stage {s.dim}:{s.keep or '?'} needs a keep >= 1, e.g. {s.dim}:2000")
    return tuple(stages)


def check_funnel(stages: Sequence[Stage], *, dim: int, matryoshka_dims: Sequence[int], k: int, source: str) -> tuple[Stage, ...]:
    """Validate a funnel against the DB width; the last stage's keep becomes k (0 = not given)."""
    if not stages:
        raise ConfigError("--funnel is empty; write e.g. --funnel 16:2000,64:200,128:10")
    for s in stages:
        check_dim(s.dim, dim=dim, matryoshka_dims=matryoshka_dims, source=source, option="--funnel dim")
    dims = [s.dim for s in stages]
    if dims != sorted(set(dims)):
        raise ConfigError(f"--funnel dims {dims} must strictly increase, e.g. 16:2000,64:200,{dim}:{k}")
    last = stages[-1]
    if last.keep and last.keep < k:
        raise ConfigError(f"--funnel last stage keeps {last.keep} < -k {k}; write {last.dim}:{k} or lower -k")
    stages = [*stages[:-1], Stage(last.dim, k)]
    for a, b in zip(stages, stages[1:]):
        if a.keep < b.keep:
            raise ConfigError(
                f"--funnel stage {a} keeps fewer than the next stage {b}; keeps must not grow along the funnel"
            )
    return tuple(stages)


def check_dim(d: int, *, dim: int, matryoshka_dims: Sequence[int], source: str, option: str = "--dim") -> None:
    dims_s = ",".join(str(x) for x in matryoshka_dims)
    if not 1 <= d <= dim:
        raise ConfigError(
            f"{option} {d} is outside the DB's width 1..{dim} ({source}: matryoshka dims {dims_s}); "
            f"pick one of {dims_s}"
        )


def default_funnel(
    n: int, matryoshka_dims: Sequence[int], k: int, first_dim: int | None = None, small_db_macs: int = SMALL_DB_MACS
) -> tuple[Stage, ...]:
    """A funnel from the DB size and the model's dims, costing ~1/10 of the multiply-adds of exact search.

    First stage: scan all n rows at d1 = the largest Matryoshka dim <= D/16 (the paper's 16 of 2048 is the
    same spirit), unless `first_dim` (a FAISS index's dim) is given. Then every larger Matryoshka dim d_i is
    a rerank stage, and the keeps are set so that each rerank costs half the one before, the first a quarter
    of the scan: keep_i * d_(i+1) = n * d1 / 2^(i+1). Total ~ 1.5 * n * d1 = 1.5/16 of exact (10.7x fewer);
    for dims 8..128 the keeps are n/8, n/32, n/128, n/512, then k at D. Keeps never drop below 20*k.
    A DB whose full scan costs <= small_db_macs per query is scanned exactly at D (one stage (D, k)).
    """
    dims = sorted(int(x) for x in matryoshka_dims)
    D = dims[-1]
    if first_dim is None:
        small = [x for x in dims if x <= D // 16]
        first_dim = small[-1] if small else dims[0]
    if n * D <= small_db_macs or first_dim >= D:
        return (Stage(D, k),)
    later = [x for x in dims if x > first_dim]
    stages, prev = [], n
    for i, (d, nxt) in enumerate(zip([first_dim, *later], later), start=1):
        keep = min(prev, max(20 * k, math.ceil(n * first_dim / (2 ** (i + 1) * nxt))))
        stages.append(Stage(d, keep))
        prev = keep
    return (*stages, Stage(D, k))


def funnel_search(
    queries: np.ndarray,
    db: "Database",
    stages: Sequence[Stage],
    *,
    min_score: float | None = None,
    device: str = "cpu",
    shortlist: "Shortlister | None" = None,
    trace: list[np.ndarray] | None = None,
) -> Hits:
    """Funnel retrieval: stages[0] scans the whole DB at a small prefix (or asks a FAISS index), later
    stages rerank only their candidates at growing prefixes. queries: (q, D) full vectors (any norm).
    The last stage's keep is the number of hits; its cosine is at the last stage's dim.

    Queries go through in chunks whose (c, keep_1) shortlist fits SCORE_BUDGET_BYTES (each chunk scans the
    DB once). trace: when a list is given, it receives each stage's (q, keep) candidate rows (diagnostics).
    """
    nq = len(queries)
    stages = [Stage(s.dim, min(s.keep, max(1, db.n))) for s in stages]  # a keep beyond the DB keeps it all
    chunk = max(1, SCORE_BUDGET_BYTES // (48 * stages[0].keep))  # running top-k: float32+int64, cat'ed
    parts = [_funnel_chunk(queries[lo : lo + chunk], db, stages, device, shortlist) for lo in range(0, max(nq, 1), chunk)]
    rows = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts])
    macs = sum(p[2] for p in parts)
    if trace is not None:
        trace.extend(np.concatenate([p[3][i] for p in parts]) for i in range(len(stages)))
    return _finish(torch.from_numpy(scores), torch.from_numpy(rows), tuple(st.dim for st in stages), macs // max(1, nq), min_score)


def _funnel_chunk(queries, db, stages, device, shortlist) -> tuple[np.ndarray, np.ndarray, int, list[np.ndarray]]:
    first = stages[0]
    if shortlist is not None:
        rows, macs = shortlist(truncate_normalize(queries, first.dim), first.keep)
        scores = None  # the next stage scores the shortlist; a one-stage funnel scores it here
        if len(stages) == 1:
            rows, scores, m = rerank(queries, rows, db.rows, dim=first.dim, keep=first.keep, device=device)
            macs += m
    else:
        h = exact_search(
            truncate_normalize(queries, first.dim),
            db.blocks(first.dim, block_rows_for(len(queries), first.dim)),
            k=first.keep,
            valid=db.valid,
            device=device,
        )
        rows, scores, macs = h.rows, h.scores, h.macs_per_query * len(queries)
    seen = [rows]
    for stage in stages[1:]:
        rows, scores, m = rerank(queries, rows, db.rows, dim=stage.dim, keep=stage.keep, device=device)
        macs += m
        seen.append(rows)
    return rows, scores, macs, seen


@dataclass(frozen=True)
class Calibration:
    """What calibrate_funnel measured on pseudo-queries drawn from the DB itself."""

    stages: tuple[Stage, ...]  # the cheapest funnel that kept the exact top-k for `quantile` of them
    macs_per_query: int  # its multiply-adds per query
    needed: dict[int, int]  # prefix dim -> shortlist size needed at that dim (quantile), before the margin
    n_queries: int
    seconds: float


def calibrate_funnel(
    db: "Database",
    *,
    k: int,
    n_queries: int = 200,
    quantile: float = 0.995,
    margin: float = 1.25,
    seed: int = 0,
    device: str = "cpu",
) -> Calibration:
    """The cheapest funnel over the Matryoshka dims that keeps the exact full-width top-k of `quantile` of
    `n_queries` DB rows used as queries (their own row excluded).

    For each prefix dim d: a query's needed shortlist at d is the number of rows scoring at least as high at
    d as the worst of its exact top-k (an upper bound for a stage that ranks only the previous candidates).
    Keeps are the `quantile` of that times `margin`; every subset of the dims (ending at D) is costed as
    n*d1 + sum keep_i * d_(i+1) and the cheapest wins. Costs one full-width scan plus one scan per dim for
    the pseudo-queries (n_queries * n * sum(dims) multiply-adds).
    """
    import itertools
    import time

    t0 = time.perf_counter()
    D, n = db.dim, db.n
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(seed).choice(ok, size=min(n_queries, len(ok)), replace=False))
    queries = db.rows(D, pick)  # (c, D)
    ref = exact_search(queries, db.blocks(D, block_rows_for(len(pick), D)), k=k + 1, valid=db.valid, device=device)
    top = np.where(ref.rows == pick[:, None], -1, ref.rows)  # drop the query's own row
    top = np.stack([r[r >= 0][:k] for r in top])  # (c, k)
    dims = [d for d in db.matryoshka_dims if d < D]
    hit_rows = np.unique(top.ravel())
    needed: dict[int, int] = {}
    for d in dims:
        qd = truncate_normalize(queries, d)  # (c, d)
        hits = db.rows(d, hit_rows)[np.searchsorted(hit_rows, top)]  # (c, k, d)
        thr = torch.from_numpy(np.einsum("cd,ckd->ck", qd, hits).min(1))  # (c,) score at d of the worst exact hit
        count = torch.zeros(len(pick), dtype=torch.int64)
        Q = torch.from_numpy(qd)
        for start, block in db.blocks(d, block_rows_for(len(pick), d)):
            S = Q @ torch.from_numpy(block).T  # (c, b)
            S.masked_fill_(~torch.from_numpy(db.valid[start : start + len(block)]), -math.inf)
            count += (S >= thr[:, None] - 1e-6).sum(1)
        count -= 1  # the query's own row scores 1 at every dim
        needed[d] = int(np.quantile(count.numpy(), quantile))
    best: tuple[int, tuple[Stage, ...]] = (n * D, (Stage(D, k),))
    for r in range(1, len(dims) + 1):
        for chain in itertools.combinations(dims, r):
            keeps = [min(n, max(k, math.ceil(needed[d] * margin))) for d in chain]
            for i in range(len(keeps) - 2, -1, -1):  # keeps may not grow along the funnel
                keeps[i] = max(keeps[i], keeps[i + 1])
            nxt = [*chain[1:], D]
            cost = n * chain[0] + sum(m * d for m, d in zip(keeps, nxt))
            if cost < best[0]:
                best = (cost, (*(Stage(d, m) for d, m in zip(chain, keeps)), Stage(D, k)))
    return Calibration(best[1], int(best[0]), needed, len(pick), time.perf_counter() - t0)


def block_rows_for(nq: int, dim: int) -> int:
    """Rows per DB block so that the (q, b) scores and the (b, dim) block fit SCORE_BUDGET_BYTES."""
    b = SCORE_BUDGET_BYTES // (4 * (max(1, nq) + dim))
    return int(min(max(b, 1024), 1 << 20))


# ------------------------------------------------------------------------------------------ database
class ArrayPart:
    """An in-memory (n, D) matrix with the reader interface of EmbeddingStore (read / iter_blocks)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.asarray(vectors)
        self.n, self.dim = self.vectors.shape

    def read(self, dim: int | None = None, rows=None, normalize: bool = False) -> np.ndarray:
        x = self.vectors[rows if rows is not None else slice(None), : dim or self.dim]
        return _normalize(x) if normalize else np.asarray(x, dtype=np.float32)

    def iter_blocks(self, dim: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, block_rows):
            yield start, _normalize(self.vectors[start : start + block_rows, :dim])


@dataclass
class Database:
    """Rows of one or more embedding files of one model, seen as one (n, D) matrix.

    parts: EmbeddingStore readers (or ArrayPart); rows are numbered across parts in file order.
    """

    parts: list
    names: list[str]  # one per part (file path, or 'array')
    ids: list[str]  # (n,)
    valid: np.ndarray  # (n,) bool: status == ok
    dim: int
    matryoshka_dims: tuple[int, ...]
    model_hash: str
    attrs: dict  # attributes of the first part (window, stride, model_name, ...)
    offsets: np.ndarray = dataclasses.field(init=False)  # (parts + 1,) first global row of each part

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [p.n for p in self.parts])

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        *,
        ids: Sequence[str] | None = None,
        valid: np.ndarray | None = None,
        matryoshka_dims: Sequence[int] | None = None,
        model_hash: str = "",
    ) -> "Database":
        part = ArrayPart(vectors)
        return cls(
            parts=[part],
            names=["array"],
            ids=list(ids) if ids is not None else [f"r{i}" for i in range(part.n)],
            valid=np.ones(part.n, bool) if valid is None else np.asarray(valid, bool),
            dim=part.dim,
            matryoshka_dims=tuple(matryoshka_dims or (part.dim,)),
            model_hash=model_hash,
            attrs={},
        )

    @classmethod
    def open(cls, paths: Sequence[str | Path]) -> "Database":
        """Open embedding files of one model (same model_hash and dims, else StoreError naming both)."""
        from mrl_dna.store import EmbeddingStore

        parts, names, ids, valid = [], [], [], []
        for path in paths:
            st = EmbeddingStore.open(path)
            if parts:
                ref = parts[0]
                if st.model_hash != ref.model_hash:
                    raise StoreError(
                        f"{path} was embedded with model {st.model_hash[:12]} but {names[0]} with "
                        f"{ref.model_hash[:12]}; search files of one model at a time"
                    )
                if tuple(st.matryoshka_dims) != tuple(ref.matryoshka_dims):
                    raise StoreError(
                        f"{path} has matryoshka dims {list(st.matryoshka_dims)} but {names[0]} has "
                        f"{list(ref.matryoshka_dims)}; search files of one model at a time"
                    )
            parts.append(st)
            names.append(str(path))
            ids.extend(str(x) for x in st.ids)
            valid.append(np.asarray(st.status) == STATUS_OK)
        db = cls(
            parts=parts,
            names=names,
            ids=ids,
            valid=np.concatenate(valid) if valid else np.zeros(0, bool),
            dim=int(parts[0].dim),
            matryoshka_dims=tuple(int(x) for x in parts[0].matryoshka_dims),
            model_hash=str(parts[0].model_hash),
            attrs=dict(parts[0].attrs),
        )
        if not db.valid.any():
            what = "no rows" if db.n == 0 else f"{db.n} rows but none with status ok"
            raise StoreError(
                f"DB {', '.join(names)} has {what}; nothing to search (embed sequences into it first)"
            )
        return db

    def locate(self, row: int) -> tuple[int, int]:
        """Global row -> (part index, row inside that part)."""
        p = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return p, int(row - self.offsets[p])

    def blocks(self, dim: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(global start row, (b, dim) normalised prefix rows), reading column prefixes only (the parts'
        iter_blocks return normalize(v[:dim]), EmbeddingStore's contract)."""
        for off, part in zip(self.offsets, self.parts):
            for start, block in part.iter_blocks(dim, block_rows):
                yield int(off) + int(start), block

    def rows(self, dim: int, rows: np.ndarray) -> np.ndarray:
        """(m, dim) normalised prefixes of the given sorted unique global rows."""
        if len(self.parts) == 1 and isinstance(self.parts[0], ArrayPart):  # in memory: one fancy index
            return normalize(self.parts[0].vectors[rows, :dim])
        out = np.empty((len(rows), dim), dtype=np.float32)
        for p, part in enumerate(self.parts):
            lo, hi = np.searchsorted(rows, self.offsets[p : p + 2])
            if hi > lo:
                out[lo:hi] = _read_rows(part, dim, rows[lo:hi] - self.offsets[p])
        return normalize(out)


def _read_rows(part, dim: int, local: np.ndarray) -> np.ndarray:
    """Rows of one part. Dense selections are read as contiguous slabs and picked in memory: h5py point
    selections cost per index and lose to a slab read once more than ~1/16 of the span is wanted."""
    lo, hi = int(local[0]), int(local[-1]) + 1
    if len(local) * 16 < hi - lo:
        return np.asarray(part.read(dim, rows=local, normalize=False), dtype=np.float32)
    out = np.empty((len(local), dim), dtype=np.float32)
    step = max(1024, SCORE_BUDGET_BYTES // (4 * dim * 4))
    for s in range(lo, hi, step):
        i, j = np.searchsorted(local, [s, min(s + step, hi)])
        if j > i:
            slab = np.asarray(part.read(dim, rows=slice(s, min(s + step, hi)), normalize=False))
            out[i:j] = slab[local[i:j] - s]
    return out


# ------------------------------------------------------------------------------------------- queries
@dataclass(frozen=True)
class Queries:
    ids: list[str]
    vectors: np.ndarray  # (q, D) float32, full width
    n_skipped: int  # query records without an embedding (empty, all N)
    source: str  # 'fasta' | 'hdf5'


def is_hdf5(path: str | Path) -> bool:
    if str(path) == "-":
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_MAGIC
    except OSError:
        return False


def load_queries(path: str | Path, db: Database, *, model_dir: str | Path | None, device: str) -> Queries:
    """Query vectors from an HDF5 of the DB's model, or from FASTA embedded with the DB's model."""
    if is_hdf5(path):
        return _queries_from_store(path, db)
    return _queries_from_fasta(str(path), db, model_dir=model_dir, device=device)


def _queries_from_store(path, db: Database) -> Queries:
    from mrl_dna.store import EmbeddingStore

    st = EmbeddingStore.open(path)
    if st.model_hash != db.model_hash:
        raise StoreError(
            f"query file {path} was embedded with model {st.model_hash[:12]} but the DB with "
            f"{db.model_hash[:12]}; embed the queries with the DB's model (mrl-dna embed --model DIR)"
        )
    ok = np.asarray(st.status) == STATUS_OK
    vecs = st.read(None, normalize=False) if st.n else np.zeros((0, db.dim), np.float32)
    ids = [str(x) for x, good in zip(st.ids, ok) if good]
    return Queries(ids=ids, vectors=np.asarray(vecs, np.float32)[ok], n_skipped=int((~ok).sum()), source="hdf5")


def _queries_from_fasta(path, db: Database, *, model_dir, device: str) -> Queries:
    from mrl_dna.embed import embed_sequences
    from mrl_dna.fasta import read_fasta
    from mrl_dna.model import load_model

    model = load_model(model_dir)
    if model.info.weights_hash != db.model_hash:
        raise StoreError(
            f"query model {model.info.weights_hash[:12]} differs from DB model {db.model_hash[:12]}; "
            f"pass --model DIR of the DB's model ({db.attrs.get('model_name', '?')})"
        )
    ids, vecs, skipped = [], [], 0
    recs = embed_sequences(
        read_fasta([path]),
        model=model,
        window=_attr_int(db.attrs, "window"),
        stride=_attr_int(db.attrs, "stride"),
        device=device,
    )
    for r in recs:
        if r.status != "ok":
            skipped += 1
            continue
        ids.append(r.id)
        vecs.append(np.asarray(r.vector, np.float32))
    arr = np.stack(vecs) if vecs else np.zeros((0, db.dim), np.float32)
    return Queries(ids=ids, vectors=arr, n_skipped=skipped, source="fasta")


def _attr_int(attrs: dict, key: str) -> int | None:
    v = attrs.get(key)
    return int(v) if v is not None else None


# ------------------------------------------------------------------------------------------- windows
def best_windows(queries: np.ndarray, hits: Hits, db: Database) -> np.ndarray:
    """For each hit, the target window [start, end) whose vector is closest to the query (cosine at the
    hit's final dim). Returns (q, t, 2) int64, -1 where there is no hit or no window."""
    d = hits.dims[-1]
    out = np.full(hits.rows.shape + (2,), -1, dtype=np.int64)
    tables = []
    for name, part in zip(db.names, db.parts):
        tab = part.windows() if hasattr(part, "windows") else None
        if tab is None:
            raise StoreError(f"{name} has no per-window vectors; re-embed it with mrl-dna embed --save-windows")
        rec = np.asarray(tab.record)
        order = None if np.all(rec[1:] >= rec[:-1]) else np.argsort(rec, kind="stable")
        tables.append((tab, rec if order is None else rec[order], order))
    qn = truncate_normalize(queries, d)  # (q, d)
    for qi, ri in zip(*np.nonzero(hits.rows >= 0)):
        p, local = db.locate(int(hits.rows[qi, ri]))
        tab, rec, order = tables[p]
        lo, hi = np.searchsorted(rec, [local, local + 1])
        if hi <= lo:
            continue
        widx = np.arange(lo, hi) if order is None else np.sort(order[lo:hi])
        W = tab.read(d, rows=widx, normalize=True)  # (w, d)
        best = int(np.argmax(W @ qn[qi]))
        out[qi, ri] = (int(np.asarray(tab.start)[widx[best]]), int(np.asarray(tab.end)[widx[best]]))
    return out


# --------------------------------------------------------------------------------------------- FAISS
class IndexKind(str, enum.Enum):
    """FAISS index type for the shortlist stage."""

    flat = "flat"  # exact inner product over the prefix: same shortlist as the blocked scan, FAISS speed
    ivf = "ivf"  # inverted lists: scans ~nprobe/nlist of the DB; approximate, for DBs far beyond 1M rows
    hnsw = "hnsw"  # graph (HNSW, the paper's shortlist): ~1-5k distance computations per query; approximate


# HNSW graph: M 32 links per node, efConstruction 80 (FAISS's usual good-recall settings). The shortlist of a
# default funnel over an HNSW index is HNSW_KEEP_PER_HIT * k rows (efSearch = that), reranked at full width.
# Why 200: on the bundled model's real 512-bp window embeddings (bench/RESULTS.md, 1000 held-out queries),
# an HNSW over dim 64 returning 2000 rows kept the exact full-width top-10 for 99.9% of queries at 100k rows
# (13.6x fewer multiply-adds than exact) and 99.7% at 1M (122x); 1000 rows gave 99.5% / 99.0%, too close.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_KEEP_PER_HIT = 200


FAISS_SUFFIX = ".faiss"
INDEX_FORMAT = "mrl-dna-faiss-index"


def import_faiss():
    try:
        import faiss  # noqa: PLC0415 (optional extra, imported only here)
    except ImportError:
        raise MrlDnaError(
            "FAISS is not installed; install the extra with: pip install 'mrl-dna[faiss]' (or pip install faiss-cpu)"
        ) from None
    return faiss


def index_paths(db_path: str | Path) -> tuple[Path, Path]:
    p = Path(db_path)
    return p.with_name(p.name + FAISS_SUFFIX), p.with_name(p.name + FAISS_SUFFIX + ".json")


@dataclass(frozen=True)
class IndexInfo:
    path: str
    kind: str
    dim: int
    n_rows: int  # rows of the DB when indexed
    n_indexed: int  # rows with status ok, the ones in the index
    nlist: int
    nprobe: int
    model_hash: str
    db_created: str
    build_seconds: float = 0.0
    ef_search: int = 0  # hnsw: efSearch floor (the shortlist size is used when larger); 0 for flat/ivf


def build_index(
    db_path: str | Path,
    *,
    dim: int,
    kind: IndexKind = IndexKind.flat,
    nlist: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    force: bool = False,
) -> IndexInfo:
    """Write DB.h5.faiss (inner product over normalize(v[:dim]) of the ok rows, ids = DB rows) and
    DB.h5.faiss.json (what it was built from, so search can tell a stale index). An existing index is
    replaced only with force=True."""
    import time

    for p in index_paths(db_path):
        if p.exists() and not force:
            raise StoreError(f"{p} already exists (an index of {db_path}); pass --force to rebuild it")
    faiss = import_faiss()
    t0 = time.perf_counter()
    db = Database.open([db_path])
    check_dim(dim, dim=db.dim, matryoshka_dims=db.matryoshka_dims, source=str(db_path))
    n_ok = int(db.valid.sum())
    kind = IndexKind(kind)
    if kind == IndexKind.ivf:
        nlist = nlist or max(1, min(n_ok // 39, int(4 * math.sqrt(n_ok))))  # FAISS wants >= 39 points per list
        nprobe = nprobe or max(1, nlist // 8)
        quant = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        train = _sample_rows(db, dim, min(n_ok, 64 * nlist))  # FAISS wants 30-256 points per list
        index.train(train)
    elif kind == IndexKind.hnsw:
        nlist, nprobe = 0, 0
        graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index = faiss.IndexIDMap(graph)
    else:
        nlist, nprobe = 0, 0
        index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
    for start, block in db.blocks(dim, 1 << 16):
        ok = db.valid[start : start + len(block)]
        ids = np.arange(start, start + len(block), dtype=np.int64)[ok]
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(block[ok]), ids)
    fpath, jpath = index_paths(db_path)
    tmp = fpath.with_name(fpath.name + ".partial")
    faiss.write_index(index, str(tmp))
    os.replace(tmp, fpath)
    info = IndexInfo(
        path=str(fpath),
        kind=kind.value,
        dim=dim,
        n_rows=db.n,
        n_indexed=n_ok,
        nlist=int(nlist),
        nprobe=int(nprobe),
        model_hash=db.model_hash,
        db_created=str(db.attrs.get("created", "")),
        build_seconds=time.perf_counter() - t0,
        ef_search=int(ef_search or 0) if kind == IndexKind.hnsw else 0,
    )
    jtmp = jpath.with_name(jpath.name + ".partial")
    jtmp.write_text(json.dumps({"format": INDEX_FORMAT, **dataclasses.asdict(info)}, indent=1) + "\n")
    os.replace(jtmp, jpath)
    return info


def _sample_rows(db: Database, dim: int, m: int) -> np.ndarray:
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(0).choice(ok, size=min(m, len(ok)), replace=False))
    return np.ascontiguousarray(db.rows(dim, pick))


Shortlister = Callable[[np.ndarray, int], tuple[np.ndarray, int]]  # (q, dim) normalised, m -> rows (q, m), macs


def find_index(db: Database, warn: Callable[[str], None]) -> tuple[Shortlister, IndexInfo] | None:
    """A FAISS shortlist over every DB file when each has a valid index of one dim; None otherwise.
    A stale index (other model, other row count, rebuilt DB) is reported through `warn` and ignored."""
    infos = []
    for p, name in enumerate(db.names):
        fpath, jpath = index_paths(name)
        if not fpath.exists() or not jpath.exists():
            return None
        try:
            meta = json.loads(jpath.read_text())
            meta.pop("format", None)
            info = IndexInfo(**meta)
        except (ValueError, TypeError) as e:
            warn(f"ignoring FAISS index {fpath}: unreadable {jpath.name} ({e}); rebuild with mrl-dna index {name}")
            return None
        n_part = int(db.offsets[p + 1] - db.offsets[p])
        created = str(db.parts[p].attrs.get("created", "")) if hasattr(db.parts[p], "attrs") else ""
        why = (
            f"it was built for model {info.model_hash[:12]}, the DB is model {db.model_hash[:12]}"
            if info.model_hash != db.model_hash
            else f"it holds {info.n_rows} rows, the DB has {n_part}"
            if info.n_rows != n_part
            else "the DB was rewritten after it was built"
            if info.db_created != created
            else None
        )
        if why:
            warn(f"ignoring stale FAISS index {fpath}: {why}; rebuild with mrl-dna index {name} --dim {info.dim}")
            return None
        infos.append(info)
    if len({i.dim for i in infos}) != 1:
        warn("the DB files' FAISS indexes use different dims; ignoring them (rebuild with one --dim)")
        return None
    try:
        faiss = import_faiss()
    except MrlDnaError:
        warn(f"a FAISS index exists beside {db.names[0]} but faiss is not installed; scanning instead "
             "(pip install 'mrl-dna[faiss]')")
        return None
    indexes = []
    for info in infos:
        ix = faiss.read_index(info.path)
        if info.kind == IndexKind.ivf.value:
            ix.nprobe = info.nprobe
        indexes.append(ix)
    graphs = [faiss.downcast_index(ix.index) if i.kind == IndexKind.hnsw.value else None for ix, i in zip(indexes, infos)]

    def shortlist(qd: np.ndarray, m: int) -> tuple[np.ndarray, int]:
        allr, alls, macs = [], [], 0
        for p, (ix, info, graph) in enumerate(zip(indexes, infos, graphs)):
            if graph is not None:
                graph.hnsw.efSearch = max(info.ef_search, m)
                faiss.cvar.hnsw_stats.reset()
            s, r = ix.search(np.ascontiguousarray(qd, dtype=np.float32), min(m, max(1, info.n_indexed)))
            r = np.where(r >= 0, r + db.offsets[p], -1)  # ids are rows within the part
            allr.append(r)
            alls.append(np.where(r >= 0, s, -np.inf))
            if graph is not None:  # distance computations FAISS counted while walking the graph
                macs += faiss.cvar.hnsw_stats.ndis * info.dim
            elif info.kind == IndexKind.ivf.value:
                macs += (info.nlist + info.nprobe * info.n_indexed / max(1, info.nlist)) * info.dim * len(qd)
            else:
                macs += info.n_indexed * info.dim * len(qd)
        S, R = np.concatenate(alls, 1), np.concatenate(allr, 1)
        j = np.argsort(-S, axis=1, kind="stable")[:, :m]
        return np.take_along_axis(R, j, 1), int(macs)

    return shortlist, infos[0]


# ------------------------------------------------------------------------------------------ top level
class Mode(str, enum.Enum):
    exact = "exact"
    funnel = "funnel"


@dataclass(frozen=True)
class SearchResult:
    query_ids: list[str]
    target_ids: list[str]  # (n,) all DB ids, indexed by hits.rows
    hits: Hits
    windows: np.ndarray | None  # (q, t, 2) [start, end) of the best window, -1 where none
    mode: Mode
    stages: tuple[Stage, ...]  # the funnel used (one stage (dim, k) for exact)
    n_db: int
    n_db_files: int
    n_skipped_queries: int
    exact_macs_per_query: int  # what exact search at the full width would cost, for the summary
    index: IndexInfo | None


def search(
    query: str | Path,
    db_paths: Sequence[str | Path],
    *,
    k: int = 10,
    dim: int | None = None,
    funnel: str | None = None,
    min_score: float | None = None,
    model_dir: str | Path | None = None,
    windows: bool = False,
    device: str = "auto",
    use_index: bool = True,
    warn: Callable[[str], None] = lambda m: None,
) -> SearchResult:
    """Everything `mrl-dna search` does, without the rendering: open the DBs, embed or read the queries,
    run exact (--dim) or funnel search, and find the best windows on request.

    Mode: `dim` -> exact at that prefix; `funnel` "16:2000,64:200,128:10" -> those stages, "auto" -> the
    default funnel for the DB size (default_funnel). Neither: the default funnel over the FAISS index when
    every DB file has a valid one (`mrl-dna index`; for an HNSW index that is DIM:200*k, then full width),
    else exact at full width. Why not a scan funnel by default: on the bundled model's real window
    embeddings no funnel that scans a prefix keeps the exact top-10 for 99% of queries at 10x fewer
    multiply-adds (the dim-8 scan alone is 1/16 of exact), and on a CPU the full-width scan is one BLAS
    product, faster in wall time; an HNSW index over dim 64 does keep it (99.9% of queries at 13.6x
    fewer multiply-adds at 100k rows); see bench/RESULTS.md.
    """
    if dim is not None and funnel is not None:
        raise ConfigError("--dim and --funnel are two modes; give one of them")
    if k < 1:
        raise ConfigError(f"-k {k} must be >= 1")
    device = str(resolve_device(device))  # "cpu" / "cuda[:N]", checked like embed's --device
    db = Database.open(db_paths)
    src = ", ".join(db.names)
    k = max(1, min(k, db.n))  # no more hits than rows: -k 1000000000 must not allocate (queries, 1e9) arrays
    if dim is not None:
        check_dim(dim, dim=db.dim, matryoshka_dims=db.matryoshka_dims, source=src)
        if dim not in db.matryoshka_dims:
            warn(f"--dim {dim} is not one of the model's trained Matryoshka dims {list(db.matryoshka_dims)}")
    if windows:
        for name, part in zip(db.names, db.parts):
            if part.windows() is None:
                raise StoreError(
                    f"{name} has no per-window vectors for --windows; re-embed it with mrl-dna embed --save-windows"
                )
    queries = load_queries(query, db, model_dir=model_dir, device=device)
    if queries.n_skipped:
        warn(f"{queries.n_skipped} query record(s) have no embedding (empty or all N) and are skipped")
    index = None
    found = find_index(db, warn) if use_index and dim is None else None
    if dim is None and funnel is None and found is None:
        dim = db.dim  # no index: an exact blocked scan at full width (DESIGN.md), see `search` docstring
    if dim is not None:
        mode, stages = Mode.exact, (Stage(dim, k),)
        hits = exact_search(
            truncate_normalize(queries.vectors, dim),
            db.blocks(dim, block_rows_for(len(queries.ids), dim)),
            k=k,
            min_score=min_score,
            valid=db.valid,
            device=device,
        )
    else:
        mode = Mode.funnel
        if funnel == "calibrate":
            cal = calibrate_funnel(db, k=k, device=device)
            stages = cal.stages
            if found and found[1].dim != stages[0].dim:
                found = None
        elif funnel is not None and funnel != "auto":
            stages = check_funnel(parse_funnel(funnel), dim=db.dim, matryoshka_dims=db.matryoshka_dims, k=k, source=src)
            if found and found[1].dim != stages[0].dim:
                warn(f"FAISS index is over dim {found[1].dim} but --funnel starts at {stages[0].dim}; scanning instead")
                found = None
        else:
            stages = default_funnel(db.n, db.matryoshka_dims, k, first_dim=found[1].dim if found else None)
            if found and found[1].kind == IndexKind.hnsw.value and len(stages) > 1:
                # a graph shortlist is not a scan: keep a fixed HNSW_KEEP_PER_HIT * k rows, rerank at full width
                stages = (Stage(found[1].dim, HNSW_KEEP_PER_HIT * k), Stage(db.dim, k))
        if len(stages) == 1 and found and stages[0].dim != found[1].dim:
            found = None  # a small DB: the default funnel is a full-width scan, the index is not needed
        stages = tuple(Stage(s.dim, min(s.keep, db.n)) for s in stages)
        shortlister, index = found if found else (None, None)
        hits = funnel_search(queries.vectors, db, stages, min_score=min_score, device=device, shortlist=shortlister)
    win = best_windows(queries.vectors, hits, db) if windows else None
    return SearchResult(
        query_ids=queries.ids,
        target_ids=db.ids,
        hits=hits,
        windows=win,
        mode=mode,
        stages=stages,
        n_db=db.n,
        n_db_files=len(db.names),
        n_skipped_queries=queries.n_skipped,
        exact_macs_per_query=db.n * db.dim,
        index=index,
    )


TSV_HEADER = ("query", "target", "rank", "cosine", "dims")
TSV_WINDOW_HEADER = ("target_start", "target_end")


def tsv_lines(result: SearchResult, *, header: bool = True) -> Iterator[str]:
    """The hit table, one line per hit, grouped by query in input order, rank 1.. ascending.

    Columns: query id, target id, rank (1 = best), cosine at the last prefix width (6 decimals), dims =
    the prefix widths used, comma-separated (last = the width of the cosine), and with --windows the best
    target window [target_start, target_end) (0-based, end exclusive). The header starts with '#'.
    """
    cols = TSV_HEADER + (TSV_WINDOW_HEADER if result.windows is not None else ())
    if header:
        yield "#" + "\t".join(cols)
    dims = ",".join(str(d) for d in result.hits.dims)
    for qi, qid in enumerate(result.query_ids):
        rank = 0
        for ti in range(result.hits.rows.shape[1]):
            row = int(result.hits.rows[qi, ti])
            if row < 0:
                continue
            rank += 1
            line = f"{qid}\t{result.target_ids[row]}\t{rank}\t{result.hits.scores[qi, ti]:.6f}\t{dims}"
            if result.windows is not None:
                s, e = result.windows[qi, ti]
                line += f"\t{s}\t{e}" if s >= 0 else "\t.\t."
            yield line
