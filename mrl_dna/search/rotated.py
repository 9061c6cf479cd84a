"""An exact index over the full width that scans far fewer multiply-adds than the exact scan (`mrl-dna index
--kind pca`, the default): the DB's rows rotated onto their principal axes, stored as a head (the first p axes)
and a tail (the rest, with each row's tail norm).

Why: the shipped model's full-width neighbours of a gene are not near neighbours of its Matryoshka prefixes
(a prefix is trained on "which genome"), and approximate indexes (IVF, HNSW) over the full width do not give
the exact top-10 of 99% of queries without scanning most of the DB (bench/RESULTS.md, issue 25: the 10th and
11th cosines of a marker gene differ by ~0.001). A rotation is free of loss: q.x = (qR).(xR) for the
orthogonal R, and on the principal axes most of a row's energy lies in the head, so the head's score plus the
Cauchy-Schwarz bound |q_tail| |x_tail| bounds the cosine tightly. Search scans the head of every row, keeps a
running exact top-k, and scores a row on its tail only when its bound can still reach the current k-th cosine:
every other row provably scores below it. The result is the exact top-k (cosines within float rounding,
~1e-6, of the exact scan's). p is measured at build time: the head width with the least cost n * p +
GATHER_COST * (rows whose bound survives) * (D - p) on DB rows used as queries.

File (HDF5, contiguous datasets, memory-mapped by search): rotation (D, D) float32 (columns = axes, by
decreasing variance), head (r, p + 1) (the first p axes, then the tail norm), tail (r, D - p), tail_norm (r,),
rows (r,) int64 DB rows (status ok).
Axis letters: q queries, r indexed rows, b rows in one block, p head width, D full width, u surviving pairs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from mrl_dna.search.exact import SCORE_BUDGET_BYTES

# The rotation is estimated from at most this many rows (evenly spaced): only the pruning's efficiency depends on it.
ROTATION_SAMPLE = 200_000

# Scoring a surviving row (a random gather of its tail, the pair's own dot products) costs about this many
# multiply-adds of the head's scan per float (measured on the shipped model's 1M marker genes, 2 cores); the head width minimises n * p + GATHER_COST * survivors * (D - p).
GATHER_COST = 64

HEAD_WIDTHS = (32, 64, 96, 128, 160, 192, 256)

# survivors() counts on every SURVIVOR_STEP-th row (times SURVIVOR_STEP): a count, not a search.
SURVIVOR_STEP = 4

# Rows of the head scanned per step (the (queries, rows) bounds of one step stay in cache).
BLOCK_ROWS = 16384

# Slack on the bound: float32 rounding of a head score and of the norms (unit vectors: ~1e-6).
BOUND_SLACK = 1e-5

ROTATED_FORMAT = "mrl-dna-rotated-index"


def rotation(blocks) -> np.ndarray:
    """(D, D) float32 orthogonal matrix whose columns are the principal axes (uncentred: the axes of x x^T, so
    inner products are kept) by decreasing variance, from (start, (b, D) normalised rows) blocks."""
    G = None
    for _, block in blocks:
        b = np.asarray(block, np.float32)
        g = (b.T @ b).astype(np.float64)
        G = g if G is None else G + g
    w, V = np.linalg.eigh(G)
    return np.ascontiguousarray(V[:, ::-1], dtype=np.float32)


def survivors(queries: np.ndarray, kth: np.ndarray, blocks, R: np.ndarray, widths: Sequence[int]) -> dict[int, float]:
    """For each head width p: the mean number of rows per query (counted on every SURVIVOR_STEP-th row) whose bound (head score + |q_tail| |x_tail|)
    reaches the query's exact k-th cosine `kth` (q,), over the DB `blocks` (start, (b, D) normalised rows)."""
    Q = torch.from_numpy(np.ascontiguousarray(queries @ R, dtype=np.float32))  # (q, D) rotated
    th = torch.from_numpy(np.asarray(kth, np.float32))[:, None] - BOUND_SLACK
    counts = {p: 0 for p in widths}
    for _, block in blocks:
        X = torch.from_numpy(np.ascontiguousarray(np.asarray(block, np.float32)[::SURVIVOR_STEP] @ R))  # (b, D)
        sq = X.square()
        for p in widths:
            head = Q[:, :p] @ X[:, :p].T  # (q, b)
            tq = Q[:, p:].norm(dim=1, keepdim=True)
            tx = sq[:, p:].sum(1).sqrt()[None]
            counts[p] += int((head + tq * tx >= th).sum())
    return {p: SURVIVOR_STEP * c / max(1, len(queries)) for p, c in counts.items()}


def choose_head(n: int, D: int, surv: dict[int, float]) -> int:
    """The head width of least cost n * p + GATHER_COST * survivors(p) * (D - p)."""
    return min(surv, key=lambda p: n * p + GATHER_COST * surv[p] * (D - p))


def write_rotated(path: Path, R: np.ndarray, p: int, blocks, valid: np.ndarray, n_ok: int) -> None:
    """The index file at `path` (see the module doc) from the DB's (start, (b, D) normalised rows) blocks."""
    D = R.shape[0]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = ROTATED_FORMAT
        f.attrs["head"] = p
        f.create_dataset("rotation", data=R)
        # contiguous (memory-mapped by search); the head's last column is the row's tail norm, so one product of
        # [q_head, |q_tail|] with it gives every row's bound
        head = f.create_dataset("head", (n_ok, p + 1), np.float32)
        tail = f.create_dataset("tail", (n_ok, D - p), np.float32)
        norm = f.create_dataset("tail_norm", (n_ok,), np.float32)
        rows = f.create_dataset("rows", (n_ok,), np.int64)
        at = 0
        for start, block in blocks:
            ok = valid[start : start + len(block)]
            X = np.asarray(block, np.float32)[ok] @ R
            m = len(X)
            tn = np.linalg.norm(X[:, p:], axis=1)
            head[at : at + m] = np.concatenate([X[:, :p], tn[:, None]], axis=1)
            tail[at : at + m] = X[:, p:]
            norm[at : at + m] = tn
            rows[at : at + m] = np.arange(start, start + len(block))[ok]
            at += m


class RotatedIndex:
    """A rotated index file opened for search (memory-mapped: the head is streamed, tails are gathered)."""

    def __init__(self, path: str | Path) -> None:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != ROTATED_FORMAT:
                raise ValueError(f"{path} is not a {ROTATED_FORMAT} file")
            self.p = int(f.attrs["head"])
            self.R = np.asarray(f["rotation"], np.float32)
            maps = {}
            for name in ("head", "tail", "tail_norm", "rows"):
                ds = f[name]
                off = ds.id.get_offset()
                if off is None:  # an empty dataset has no storage
                    maps[name] = np.zeros(ds.shape, ds.dtype)
                else:
                    maps[name] = np.memmap(path, dtype=ds.dtype, mode="r", offset=off, shape=ds.shape)
        self.head, self.tail, self.tail_norm, self.rows = maps["head"], maps["tail"], maps["tail_norm"], maps["rows"]
        self.d, self.ntotal = self.R.shape[0], len(self.rows)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Exact top-k by cosine of (q, D) normalised queries: (q, k) DB rows (-1: none), cosines, multiply-adds."""
        nq, k = len(queries), max(1, min(k, max(1, self.ntotal)))
        out_s = np.full((nq, k), -np.inf, np.float32)
        out_r = np.full((nq, k), -1, np.int64)
        macs = 0
        chunk = max(1, min(nq, 512))
        for lo in range(0, nq, chunk):
            s, r, m = self._search_chunk(np.asarray(queries[lo : lo + chunk], np.float32), k)
            out_s[lo : lo + chunk], out_r[lo : lo + chunk] = s, r
            macs += m
        return out_r, out_s, macs

    def _search_chunk(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, int]:
        p, c = self.p, len(queries)
        Qr = np.ascontiguousarray(queries @ self.R)  # (c, D)
        Qh, Qt = np.ascontiguousarray(Qr[:, :p]), np.ascontiguousarray(Qr[:, p:])
        Qa = torch.from_numpy(np.concatenate([Qh, np.linalg.norm(Qt, axis=1, keepdims=True)], 1).astype(np.float32))
        best_s = torch.full((c, k), -math.inf)
        best_r = torch.full((c, k), -1, dtype=torch.int64)  # positions in the index (not DB rows yet)
        # blocks small enough that the (c, b) bounds stay in a CPU's cache between the product and the test
        b = max(1024, min(BLOCK_ROWS, SCORE_BUDGET_BYTES // (4 * (c + p))))
        macs = 0
        for start in range(0, self.ntotal, b):
            Ha = self.head[start : start + b]  # (b, p + 1), read from the file (never written to)
            H = Ha[:, :p]
            with warnings.catch_warnings():  # torch warns about a read-only buffer; nothing writes to it
                warnings.simplefilter("ignore", UserWarning)
                U = Qa @ torch.from_numpy(Ha).T  # (c, b) bounds: head score + |q_tail| |x_tail|
            macs += U.numel() * p
            scored = None
            if start == 0:  # the first block's best bounds get exact cosines: a running k-th score to prune with
                kk = min(k, U.shape[1])
                cand = torch.topk(U, kk, dim=1).indices.reshape(-1).numpy()  # (c * kk,)
                qi = np.repeat(np.arange(c), kk)
                s = self._exact(Qh, Qt, H, qi, cand, start)
                macs += len(s) * self.d
                best_s, best_r = _merge(best_s, best_r, qi, s, start + cand, k)
                scored = qi * b + cand
            qi2, col = _reaching(U, best_s[:, -1] - BOUND_SLACK)
            if scored is not None and len(qi2):
                fresh = ~np.isin(qi2 * b + col, scored)
                qi2, col = qi2[fresh], col[fresh]
            if len(qi2):
                s = self._exact(Qh, Qt, H, qi2, col, start)
                macs += len(s) * self.d
                best_s, best_r = _merge(best_s, best_r, qi2, s, start + col, k)
        pos = best_r.numpy()
        rows = np.where(pos >= 0, np.asarray(self.rows)[np.maximum(pos, 0)], -1)
        return best_s.numpy(), rows, macs

    def _exact(self, Qh: np.ndarray, Qt: np.ndarray, H: np.ndarray, qi: np.ndarray, col: np.ndarray,
               start: int) -> np.ndarray:
        """Exact cosines of (query qi, block column col) pairs: head . q_head + tail . q_tail (the block's head
        is in memory; tails are read in sorted order, each row once)."""
        uniq, inv = np.unique(col, return_inverse=True)
        T = np.asarray(self.tail[start + uniq])  # (u, D - p)
        head = np.einsum("ud,ud->u", H[col], Qh[qi])
        tail = np.einsum("ud,ud->u", T[inv], Qt[qi])
        return (head + tail).astype(np.float32)


def _reaching(U: torch.Tensor, th: torch.Tensor, first: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(query, column) pairs with U >= th[query]: from each query's `first` largest U (one cheap top-k), or from
    a full scan of U where some query has more."""
    m = min(first, U.shape[1])
    vals, idx = torch.topk(U, m, dim=1)  # (c, m)
    hit = vals >= th[:, None]
    if m < U.shape[1] and bool(hit[:, -1].any()):  # some query has more than m: all of them, from U itself
        qi, col = torch.nonzero(U >= th[:, None], as_tuple=True)
        return qi.numpy(), col.numpy()
    qi, j = torch.nonzero(hit, as_tuple=True)
    return qi.numpy(), idx[qi, j].numpy()


def _merge(best_s: torch.Tensor, best_r: torch.Tensor, qi: np.ndarray, s: np.ndarray, r: np.ndarray, k: int):
    """Running (c, k) top-k merged with scored pairs (query qi, position r, cosine s)."""
    c = best_s.shape[0]
    if not len(qi):
        return best_s, best_r
    counts = np.bincount(qi, minlength=c)
    width = int(counts.max())
    order = np.argsort(qi, kind="stable")
    qs, ss, rs = qi[order], s[order], r[order]
    slot = np.arange(len(qs)) - (np.cumsum(counts) - counts)[qs]
    NS = np.full((c, width), -np.inf, np.float32)
    NR = np.full((c, width), -1, np.int64)
    NS[qs, slot], NR[qs, slot] = ss, rs
    all_s = torch.cat([best_s, torch.from_numpy(NS)], 1)
    all_r = torch.cat([best_r, torch.from_numpy(NR)], 1)
    top, j = torch.topk(all_s, k, dim=1)
    return top, torch.gather(all_r, 1, j)
