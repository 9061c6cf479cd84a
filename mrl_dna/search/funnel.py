"""Funnel (adaptive) retrieval, Kusupati et al., "Matryoshka Representation Learning" (NeurIPS 2022), section
4.3: shortlist with a small prefix over the whole database, then rerank the shortlist at growing prefixes.

Deviation: the paper shortlists with an HNSW index; here the first stage is an exact blocked scan over the
prefix columns (or a FAISS index on that prefix when `mrl-dna index` wrote one, `search/index.py`), so a
funnel whose first stage keeps every row and whose last stage is the full width is exactly exact search.

Axis letters: q queries, n DB rows, k prefix width, m candidates kept per query, c pseudo-queries.
"""

from __future__ import annotations

import enum
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mrl_dna.errors import ConfigError
from mrl_dna.search.database import Database, check_dim
from mrl_dna.search.exact import (SCORE_BUDGET_BYTES, Hits, Shortlister, _finish, block_rows_for, exact_search, exact_share,
                                  rerank)
from mrl_dna.search.index import HNSW_KEEP_PER_HIT, IndexInfo, IndexKind
from mrl_dna.vectors import truncate_normalize


class Match(str, enum.Enum):
    """Which neighbours a search looks for (`search --match`): what decides whether a prefix may shortlist.

    locus: the full-width neighbours (a gene or a window: the same locus in other genomes). The shipped
    model's small prefixes are trained on "which genome" and do not rank these (bench/HISTORY.md: at 1M marker
    genes the exact top-10 at dim 32 shares 6% with the full width's), so only an index over the full width
    shortlists. genome: neighbours a small prefix ranks (per-file genome vectors, "which genome"): an index
    over a prefix and the prefix funnel apply. Both are answered with the full-width cosine."""

    locus = "locus"
    genome = "genome"


# Below this many multiply-adds per query (32k rows at D=128) a full-width scan takes about a millisecond
# per query on one core and is exact, so the default funnel is that scan.
SMALL_DB_MACS = 2**22


def is_small_db(n: int, dim: int, small_db_macs: int = SMALL_DB_MACS) -> bool:
    """A DB of n rows at full width `dim` that every funnel plan (auto, calibrate, an index) scans exactly."""
    return n * dim <= small_db_macs


@dataclass(frozen=True)
class Stage:
    """One funnel stage: score the current candidates at prefix `dim`, keep the best `keep`."""

    dim: int
    keep: int

    def __str__(self) -> str:
        return f"{self.dim}:{self.keep}"


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
    if is_small_db(n, D, small_db_macs) or first_dim >= D:
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
        # the index's cosines are those at first.dim (it holds normalize(v[:dim])): a one-stage funnel is done,
        # without reading a row of the DB; later stages score their candidates again at their own dims
        rows, scores, macs = shortlist(truncate_normalize(queries, first.dim), first.keep)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
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
    small_db_macs: int = SMALL_DB_MACS,
) -> Calibration:
    """The cheapest funnel over the Matryoshka dims that keeps the exact full-width top-k of `quantile` of
    `n_queries` DB rows used as queries (their own row excluded from the top-k).

    For each prefix dim d: a query's needed shortlist at d is the number of rows scoring at least as high at
    d as the worst of its exact top-k (an upper bound for a stage that ranks only the previous candidates),
    the query's own row included (a query that is itself a DB row, a DB searched against itself, needs that
    slot too). Keeps are the `quantile` of that times `margin`; every subset of the dims (ending at D) is
    costed as n*d1 + sum keep_i * d_(i+1) and the cheapest wins. Costs one full-width scan plus one scan per
    dim for the pseudo-queries (n_queries * n * sum(dims) multiply-adds).

    A DB that default_funnel scans exactly (full scan <= small_db_macs per query), or one with fewer valid
    rows than `n_queries` (a quantile of a handful of pseudo-queries promises nothing: on 8 rows a calibrated
    funnel got rank 2 wrong), gets the exact full-width scan, measured on nothing.
    """
    t0 = time.perf_counter()
    D, n = db.dim, db.n
    ok = np.flatnonzero(db.valid)
    if is_small_db(n, D, small_db_macs) or len(ok) < n_queries:
        return Calibration((Stage(D, k),), n * D, {}, 0, time.perf_counter() - t0)
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
            count += (S >= thr[:, None] - 1e-6).sum(1)  # the query's own row (score 1) included
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


# auto and calibrate measure a plan on the DB before they trust it (measure_plans): MEASURE_QUERIES valid DB
# rows (seeded) searched by the plan and by the exact full-width scan. The plan is kept only when at least
# MEASURE_EXACT_SHARE of them get the exact top-k and it takes at most MEASURE_PAYS of the exact scan's time,
# else the search is the exact scan. Why measured: on the shipped model's 1M marker genes the default funnel
# (an assumption about where the neighbours lie) was 22x slower than the exact scan and kept 59% (issue 25).
MEASURE_QUERIES = 100


MEASURE_EXACT_SHARE = 0.99


MEASURE_PAYS = 0.8


@dataclass(frozen=True)
class Trial:
    """One plan measured against the exact full-width scan on DB rows used as queries."""

    stages: tuple[Stage, ...]
    seconds: float  # the plan, all pseudo-queries
    exact_seconds: float  # the exact full-width scan, the same pseudo-queries
    exact_share: float  # share of pseudo-queries whose top-k is the exact one
    n_queries: int

    @property
    def pays(self) -> bool:
        return self.exact_share >= MEASURE_EXACT_SHARE and self.seconds <= MEASURE_PAYS * self.exact_seconds

    def __str__(self) -> str:
        per = 1e3 / max(1, self.n_queries)
        return (f"measured on {self.n_queries} DB rows: {self.exact_share:.0%} got the exact top-k, "
                f"{self.seconds * per:.2f} ms per query against {self.exact_seconds * per:.2f} for the exact scan")


def index_pays(index: IndexInfo) -> bool:
    """What `mrl-dna index` measured on the DB when it built `index` (index.tune_queries DB rows) says the index
    pays as auto's plans must (MEASURE_EXACT_SHARE, MEASURE_PAYS); True when nothing was measured."""
    if not index.tune_queries:
        return True
    return index.exact_share >= MEASURE_EXACT_SHARE and index.index_ms <= MEASURE_PAYS * index.exact_ms


def measure_plans(
    db: "Database",
    candidates: Sequence[tuple[Sequence[Stage], "Shortlister | None"]],
    *,
    k: int,
    n_queries: int = MEASURE_QUERIES,
    seed: int = 0,
    device: str = "cpu",
) -> list[Trial]:
    """Each candidate (funnel stages, the FAISS shortlist of its first stage or None for a scan) timed and
    scored against the exact full-width scan on `n_queries` valid DB rows used as queries (their own row is a
    hit of both). The exact scan runs first (it also warms the page cache for the plans)."""
    ok = np.flatnonzero(db.valid)
    pick = np.sort(np.random.default_rng(seed).choice(ok, size=min(n_queries, len(ok)), replace=False))
    queries = db.rows(db.dim, pick)  # (c, D)
    t0 = time.perf_counter()
    ref = exact_search(queries, db.blocks(db.dim, block_rows_for(len(pick), db.dim)), k=k, valid=db.valid,
                       device=device)
    exact_s = time.perf_counter() - t0
    out = []
    for stages, shortlist in candidates:
        t0 = time.perf_counter()
        hits = funnel_search(queries, db, stages, device=device, shortlist=shortlist)
        out.append(Trial(tuple(stages), time.perf_counter() - t0, exact_s, exact_share(hits, ref), len(pick)))
    return out


class Mode(str, enum.Enum):
    exact = "exact"
    funnel = "funnel"


@dataclass(frozen=True)
class Plan:
    """How a search scores the DB: exact at one prefix, or funnel stages whose first may be a FAISS index's
    shortlist."""

    mode: Mode
    stages: tuple[Stage, ...]  # exact: one stage (dim, k); funnel: keeps capped at the DB's rows
    index: IndexInfo | None  # the FAISS index whose shortlist is stages[0]; None: stages[0] scans the DB
    why: str  # what the run's footer says, e.g. "funnel 16:2000,128:10 (first stage: FAISS hnsw index over dim 16)"


def index_stages(db: "Database", index: IndexInfo, k: int, small_db_macs: int = SMALL_DB_MACS) -> tuple[Stage, ...]:
    """The stages of a search over a FAISS index: an index over the full width answers alone (its cosines are
    the full-width ones: one stage (D, k)); over a prefix, the default funnel from the index's dim, and for an
    HNSW graph HNSW_KEEP_PER_HIT * k rows, then the full width."""
    if index.dim >= db.dim:
        return (Stage(db.dim, k),)
    stages = default_funnel(db.n, db.matryoshka_dims, k, first_dim=index.dim, small_db_macs=small_db_macs)
    if index.kind == IndexKind.hnsw.value and len(stages) > 1:
        stages = (Stage(index.dim, HNSW_KEEP_PER_HIT * k), Stage(db.dim, k))
    return stages


def plan_stages(
    db: "Database",
    *,
    k: int,
    dim: int | None = None,
    funnel: str | None = None,
    index: IndexInfo | None = None,
    shortlist: "Shortlister | None" = None,
    match: Match | str = Match.locus,
    device: str = "cpu",
    warn: Callable[[str], None] = lambda m: None,
    small_db_macs: int = SMALL_DB_MACS,
) -> Plan:
    """The stages of a search (`search.api.search`, whose docstring says why the default is what it is).

    dim: exact at that prefix. funnel "DIM:KEEP,..." -> those stages (checked against the DB; a FAISS index
    shortlists them when its dim is the first stage's, else a scan with a warning). Neither: the index's plan
    (index_stages) when `index` (a valid FAISS index over every DB file, search.index.find_index) suits
    `match`, else the exact full-width scan. An index over a prefix suits --match genome only: for --match
    locus it is ignored with a warning (a prefix does not hold locus neighbours).

    funnel "auto": the match's plan, measured (measure_plans, with `shortlist` the index's): --match locus the
    full-width index's plan when there is one, --match genome the index's plan or the default scan funnel;
    kept only when it pays (Trial.pays), else the exact full-width scan, and `why` says what was measured.
    "calibrate": calibrate_funnel's cheapest prefix funnel (a flat index of its first dim shortlists it),
    measured the same way. On a small DB (is_small_db) auto, calibrate and the default are the exact scan.
    """
    match = Match(match)
    if dim is not None:
        return Plan(Mode.exact, (Stage(dim, k),), None, f"exact at dim {dim}")
    D = db.dim
    exact = (Stage(D, k),)
    small = funnel in (None, "auto", "calibrate") and is_small_db(db.n, D, small_db_macs)
    if small:
        note = "" if funnel is None and index is None else " (a small DB: the funnel is a full scan)"
        return Plan(Mode.exact, exact, None, f"exact at dim {D}{note}")
    if index is not None and match is Match.locus and index.dim < D and funnel in (None, "auto"):
        warn(f"ignoring the FAISS index over dim {index.dim}: a prefix does not hold the full-width (--match locus) "
             f"neighbours; `mrl-dna index {db.names[0]} --force` builds one over the full width, --match genome "
             "uses this one")
        index = shortlist = None
    if funnel is None:
        if index is None:
            return Plan(Mode.exact, exact, None, f"exact at dim {D}")
        if index.tune_queries and not index_pays(index):  # measured at build time: it does not pay
            return Plan(Mode.exact, exact, None, f"exact at dim {D} (the {index.kind} index does not pay on this DB: "
                        f"{index.exact_share:.0%} of {index.tune_queries} DB rows got the exact top-10, {index.index_ms:.2f} "
                        f"ms per query against {index.exact_ms:.2f} for the exact scan when it was built)")
        return _plan(db, index_stages(db, index, k, small_db_macs), index)
    if funnel == "auto":
        if index is not None:
            stages = index_stages(db, index, k, small_db_macs)
        elif match is Match.genome:
            stages = default_funnel(db.n, db.matryoshka_dims, k, small_db_macs=small_db_macs)
        else:
            return Plan(Mode.exact, exact, None, f"exact at dim {D} (auto, --match locus: no FAISS index over the "
                        "full width, and a prefix does not hold the neighbours)")
        return _measured(db, stages, index, shortlist, k=k, device=device, what="auto")
    if funnel == "calibrate":
        stages = calibrate_funnel(db, k=k, device=device, small_db_macs=small_db_macs).stages
        if index is not None and (index.dim != stages[0].dim or index.kind != IndexKind.flat.value):
            index = shortlist = None  # the keeps were measured for a scan; only a flat index shortlists the same rows
        if len(stages) == 1:
            return Plan(Mode.exact, exact, None, f"exact at dim {D} (calibrate: no prefix funnel is cheaper)")
        return _measured(db, stages, index, shortlist, k=k, device=device, what="calibrate")
    stages = check_funnel(parse_funnel(funnel), dim=D, matryoshka_dims=db.matryoshka_dims, k=k,
                          source=", ".join(db.names))
    if index is not None and index.dim != stages[0].dim:
        warn(f"FAISS index is over dim {index.dim} but --funnel starts at {stages[0].dim}; scanning instead")
        index = None
    return _plan(db, stages, index)


def _plan(db: "Database", stages: Sequence[Stage], index: IndexInfo | None, note: str = "") -> Plan:
    stages = tuple(Stage(s.dim, min(s.keep, db.n)) for s in stages)
    if len(stages) == 1 and index is None:
        return Plan(Mode.exact, stages, None, f"exact at dim {stages[0].dim}{note}")
    why = "funnel " + ",".join(str(s) for s in stages)
    if index is not None:
        faiss = "" if index.kind == IndexKind.pca.value else "FAISS "  # pca: search/rotated.py, exact
        why += f" (first stage: {faiss}{index.kind} index over dim {index.dim})"
    return Plan(Mode.funnel, stages, index, why + note)


def _measured(db: "Database", stages: Sequence[Stage], index: IndexInfo | None, shortlist: "Shortlister | None", *,
              k: int, device: str, what: str) -> Plan:
    """The plan when it pays on the DB (measure_plans), else the exact full-width scan; `why` says which and
    what was measured."""
    stages = tuple(Stage(s.dim, min(s.keep, db.n)) for s in stages)
    trial = measure_plans(db, [(stages, shortlist if index is not None else None)], k=k, device=device)[0]
    if trial.pays:
        return _plan(db, stages, index, f"; {what}: {trial}")
    plan = _plan(db, stages, index)
    return Plan(Mode.exact, (Stage(db.dim, k),), None, f"exact at dim {db.dim} ({what}: the exact scan, since "
                f"{plan.why.removeprefix('funnel ')} does not pay, {trial})")
