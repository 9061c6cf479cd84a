"""Whole sequences searched by their windows (`search --level windows`, issue 20): a query of several windows is
matched window by window against the DB's saved windows, and the hits are summarised per DB record (a target)
the way a mapper reports targets.

Two passes:
1. first pass (the search machinery: exact, funnel or a FAISS windows index, as `plan_stages` chooses for -k 1):
   the best DB window of every query window; the records owning those best hits are the query's candidate
   targets (the MAX_CANDIDATES owning most of them). Exact when the plan is the exact full-width scan; with a
   funnel or an index a target whose windows the shortlist missed is not a candidate.
2. exact per-target scoring (homology.contig_targets): every query window against every window of every
   candidate at the plan's last width: which candidate owns each window's best hit (n_best, frac_best), the mean
   best cosine of ALL the query's windows within each candidate (the rank: on 1,950 real contigs it named the
   right genome 91.5% of the time against a stride-250 DB, the best-hit votes 88.6%; research memo of issue 20,
   section 4), and the model's calibrated identity over the query's homologous windows (contig_targets:
   colinear best hits, as dist --level windows counts them; NA under 5 of them, so a contig of under ~5 kb at the
   default query stride has none: its rank and shares still hold).

A query of one window is searched by its vector exactly as before (search.api), so its lines do not change.

Axis letters: n query windows, m windows of the candidate targets, c candidates, w scoring width.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mrl_dna.homology import HomologyConfig, StrideCalibration, best_hits, contig_targets, saved_windows_stride
from mrl_dna.homology.model import calibration_for
from mrl_dna.search.database import Database, WindowPart
from mrl_dna.search.exact import Shortlister, block_rows_for, exact_search
from mrl_dna.search.funnel import Mode, Plan, funnel_search
from mrl_dna.vectors import truncate_normalize

# Candidate targets scored exactly per query: the records owning most of its windows' first-pass best hits, at
# most MAX_CANDIDATES of them and CANDIDATE_BYTES of their windows (64 bacterial genomes saved every 250 bp at
# 512 dims would be 2.6 GB in float32). The rest own few best hits (chance hits of unrelated windows scatter over
# the DB) and cannot rank high by the mean best cosine.
MAX_CANDIDATES = 64
CANDIDATE_BYTES = 1 << 30
# Query windows scored against the DB in one first-pass scan (each scan reads the DB once).
FIRST_PASS_WINDOWS = 8192
# Window vectors of candidate targets kept in memory between queries (contigs of one genome share targets).
CACHE_BYTES = 512 << 20
# A strand is reported when at least this share of consecutive query windows' best hits run one way.
STRAND_AGREEMENT = 2 / 3


def default_query_stride(db_windows_stride: int, window: int) -> int:
    """bp between a query's windows when none is given: every HomologyConfig.query_step-th window of the DB's
    saved-window density (a stride-250 DB: 1,000 bp; the query side sets only the sample size, the DB's density
    the offset error), at most one window."""
    return max(1, min(window, HomologyConfig.query_step * db_windows_stride))


@dataclass(frozen=True, eq=False)
class QueryWindows:
    """The windows of one query (a FASTA record, or a row of an HDF5 query saved with --save-windows)."""

    vectors: np.ndarray  # (n, D) float32 unit rows at full width
    start: np.ndarray  # (n,) int64 bp, 0-based on its contig
    end: np.ndarray  # (n,) int64 bp, exclusive
    contig: list[str]  # (n,) the record the window lies on (the query itself, or a record of a per-file row)

    def __len__(self) -> int:
        return len(self.start)


@dataclass(frozen=True)
class TargetHit:
    """One (query, target) of a query searched by its windows."""

    row: int  # global DB row (a window) of the best window pair; db.ids[row] is the target
    cosine: float  # mean over ALL the query's windows of their best cosine within the target (the rank)
    query_windows: int  # the query's windows scored
    n_best: int  # query windows whose best hit (among the candidates) lies in this target
    frac_best: float  # n_best / query windows
    # percent, the model's calibration of the normalised scores of the query's homologous (colinear) windows
    # (homology.contig_targets); nan = NA: no calibration, below its range, or < 5 homologous windows
    identity: float
    best_cosine: float  # the best window pair's cosine
    target_start: int
    target_end: int
    target_contig: str
    query_start: int
    query_end: int
    query_contig: str
    strand: str  # '+' / '-' when the query windows' best hits run forward / backward along the target, else '.'


class _RecordWindows:
    """Each DB record's saved windows: global rows, coordinates; vectors read at one width and cached."""

    def __init__(self, db: Database, width: int) -> None:
        self.db, self.width = db, width
        self.first_key = np.cumsum([0] + [p.store.n for p in db.parts])  # (parts + 1,) key of each part's record 0
        self.order, self.bounds = [], []
        for part in db.parts:
            order = np.argsort(part.table.record, kind="stable")
            self.order.append(order)
            self.bounds.append(np.searchsorted(part.table.record[order], np.arange(part.store.n + 1)))
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.cached_bytes = 0

    def keys(self, rows: np.ndarray) -> np.ndarray:
        """(n,) record key (parts numbered in order, records inside each) of global window rows (-1 stays -1)."""
        out = np.full(len(rows), -1, np.int64)
        ok = rows >= 0
        part = np.searchsorted(self.db.offsets, rows[ok], side="right") - 1
        key = np.empty(len(part), np.int64)
        for p in np.unique(part):
            m = part == p
            local = rows[ok][m] - self.db.offsets[p]
            key[m] = self.first_key[p] + self.db.parts[p].table.record[local]
        out[ok] = key
        return out

    def rows(self, key: int) -> np.ndarray:
        """Global rows (sorted) of the windows of record `key`."""
        p = int(np.searchsorted(self.first_key, key, side="right") - 1)
        r = key - self.first_key[p]
        local = np.sort(self.order[p][self.bounds[p][r]: self.bounds[p][r + 1]])
        return local + self.db.offsets[p]

    def vectors(self, key: int, rows: np.ndarray) -> np.ndarray:
        """(m, width) normalised prefixes of the record's windows, through the cache."""
        v = self.cache.get(key)
        if v is None:
            v = self.db.rows(self.width, rows)
            self.cache[key] = v
            self.cached_bytes += v.nbytes
            while self.cached_bytes > CACHE_BYTES and len(self.cache) > 1:
                self.cached_bytes -= self.cache.popitem(last=False)[1].nbytes
        else:
            self.cache.move_to_end(key)
        return v

    def coordinates(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """[start, end) and contig names of global window rows."""
        start, end, contig = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64), [""] * len(rows)
        part = np.searchsorted(self.db.offsets, rows, side="right") - 1
        for p in np.unique(part):
            m = np.flatnonzero(part == p)
            s, e, c = self.db.parts[p].coordinates(rows[m] - self.db.offsets[p])
            start[m], end[m] = s, e
            for i, name in zip(m, c):
                contig[i] = name
        return start, end, contig


def identity_table(db: Database, model_dir, warn: Callable[[str], None]) -> StrideCalibration | None:
    """The calibration table of the DB's model for the DB's saved-window stride (homology.model.calibration_for:
    --model, the directory embed recorded, the bundled model), or None with a warning saying why identity is NA."""
    cal, where = calibration_for(db.attrs, model_dir)
    strides = {saved_windows_stride(p.store) for p in db.parts if isinstance(p, WindowPart)}
    if cal is None:
        warn(f"no identity calibration for the DB's model ({where} has no calibration.json built for it): the "
             "identity column is NA")
        return None
    if len(strides) != 1:
        warn(f"the DB files saved their windows at different strides ({', '.join(map(str, sorted(strides)))} bp) "
             "and the calibration is per stride: the identity column is NA")
        return None
    stride = strides.pop()
    table = cal.table(stride)
    if table is None:
        warn(f"the model's calibration has no table for windows saved every {stride} bp: the identity column is NA "
             "(embed the DB with --save-windows at a calibrated --windows-stride)")
    return table


def search_targets(queries: Sequence[QueryWindows], db: Database, plan: Plan, *, k: int, device: str,
                   shortlist: Shortlister | None = None, min_score: float | None = None,
                   cal: StrideCalibration | None = None) -> tuple[list[list[TargetHit]], int]:
    """Up to k targets of every query (best first) and the first pass's multiply-adds per query window.

    plan: the first pass (plan_stages for -k 1); the exact per-target scoring runs at its last width, where
    identity (cal, the DB's saved-window stride table; None: NA) is given only at the full width. min_score drops
    targets whose mean best cosine is below it."""
    width = plan.stages[-1].dim
    cal = cal if width == db.dim else None
    recs = _RecordWindows(db, width)
    chunks: list[list[QueryWindows]] = []  # queries whose windows are scanned together (FIRST_PASS_WINDOWS)
    size = 0
    for q in queries:
        if not chunks or (size + len(q) > FIRST_PASS_WINDOWS and chunks[-1]):
            chunks.append([])
            size = 0
        chunks[-1].append(q)
        size += len(q)
    out: list[list[TargetHit]] = []
    macs, n_windows = 0, 0
    for chunk in chunks:
        first, m = _first_pass(np.concatenate([c.vectors for c in chunk]), db, plan, device, shortlist)
        macs += m
        n_windows += len(first)
        lo = 0
        for c in chunk:
            out.append(_one_query(c, recs.keys(first[lo: lo + len(c)]), recs, k=k, width=width, device=device,
                                  min_score=min_score, cal=cal))
            lo += len(c)
    return out, macs // max(1, n_windows)


def _first_pass(qv: np.ndarray, db: Database, plan: Plan, device: str,
                shortlist: Shortlister | None) -> tuple[np.ndarray, int]:
    """(n,) global row of the best DB window of every query window (-1: none) and the multiply-adds."""
    if plan.mode is Mode.exact:
        d = plan.stages[0].dim
        h = exact_search(truncate_normalize(qv, d), db.blocks(d, block_rows_for(len(qv), d)), k=1, valid=db.valid,
                         device=device)
    else:
        h = funnel_search(qv, db, plan.stages, device=device, shortlist=shortlist if plan.index is not None else None)
    return h.rows[:, 0], h.macs_per_query * len(qv)


def _one_query(q: QueryWindows, keys: np.ndarray, recs: _RecordWindows, *, k: int, width: int, device: str,
               min_score: float | None, cal: StrideCalibration | None) -> list[TargetHit]:
    cand, votes = np.unique(keys[keys >= 0], return_counts=True)
    cand = cand[np.argsort(-votes, kind="stable")[:MAX_CANDIDATES]]
    if len(cand) == 0:
        return []
    rows = [recs.rows(int(c)) for c in cand]
    held = np.cumsum([len(r) * recs.width * 4 for r in rows])
    keep = max(1, int(np.searchsorted(held, CANDIDATE_BYTES, side="right")))  # the most voted first, within bytes
    cand, rows = cand[:keep], rows[:keep]
    vecs = [recs.vectors(int(c), r) for c, r in zip(cand, rows)]
    allrows = np.concatenate(rows)  # (m,)
    db_vecs = np.concatenate(vecs)  # (m, w)
    owner = np.repeat(np.arange(len(cand)), [len(r) for r in rows])  # (m,) candidate of each window
    qv = truncate_normalize(q.vectors, width)  # (n, w)
    found = contig_targets(qv, db_vecs, owner, record_sum=np.stack([v.sum(0, dtype=np.float64) for v in vecs]),
                           record_count=np.array([len(r) for r in rows]), cal=cal, top=k,
                           q_coords=(q.start, q.end, q.contig), db_coords=recs.coordinates(allrows),
                           window=int(recs.db.attrs["window"]), device=device)
    hits = []
    for t in found:
        if min_score is not None and t.mean_best < min_score:
            continue
        best_row = int(allrows[t.best_window])
        (ts,), (te,), (tc,) = recs.coordinates(np.array([best_row]))
        strand = _strand(q, qv, vecs[t.record], rows[t.record], recs, tc, device)
        ident = t.identity
        if cal is not None and not ident >= 100.0 * cal.valid_min:
            ident = math.nan  # below the range the calibration holds: NA, never an invented number
        hits.append(TargetHit(
            row=best_row, cosine=t.mean_best, query_windows=len(q), n_best=t.n_best, frac_best=t.frac_best, identity=ident,
            best_cosine=t.best_cosine, target_start=int(ts), target_end=int(te), target_contig=tc,
            query_start=int(q.start[t.best_query_window]), query_end=int(q.end[t.best_query_window]),
            query_contig=q.contig[t.best_query_window],
            strand=strand))
    return hits


def _strand(q: QueryWindows, qv: np.ndarray, tv: np.ndarray, trows: np.ndarray, recs: _RecordWindows,
            contig: str, device: str) -> str:
    """'+' / '-' when the best hits (within the target) of the query's better half of windows, on the best
    window's contig, move forward / backward along it as the query goes on (STRAND_AGREEMENT of consecutive
    pairs on each query contig); '.' when they do not say (fewer than 2 windows, scattered hits). The window
    vectors do not know their strand (the model reads both), so the order of the hits is the evidence."""
    if len(q) < 2:
        return "."
    best, arg = best_hits(qv, tv, device=device)
    tstart, _, tcontig = recs.coordinates(trows[arg])
    keep = (best >= np.median(best)) & (np.asarray(tcontig, object) == contig)
    qc = np.asarray(q.contig, object)
    steps = []
    for name in dict.fromkeys(qc[keep]):
        sel = np.flatnonzero(keep & (qc == name))
        sel = sel[np.argsort(q.start[sel], kind="stable")]
        steps.append(np.sign(np.diff(tstart[sel])))
    d = np.concatenate(steps) if steps else np.zeros(0)
    d = d[d != 0]
    if len(d) == 0:
        return "."
    up = float((d > 0).mean())
    return "+" if up >= STRAND_AGREEMENT else "-" if up <= 1 - STRAND_AGREEMENT else "."
