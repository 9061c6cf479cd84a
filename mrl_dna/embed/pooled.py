"""The pooled k-mer path of `embed` (issue 24): records -> each record's pooled k-mer profile -> one head call
per record, for models where that is the model's own maths (model.kmer_linear: a k-mer-only encoder, a linear
head, mean pooling). pipeline.py's batches stay the path for every other model, and for the window vectors of
--save-windows, which records.py runs beside this path (the record vectors stay this path's).

Work is cut into chunks of whole pieces, a piece being up to GROUP_WINDOWS consecutive windows of one record
(counted from its first window), many short records sharing a chunk: one vectorised k-mer count per chunk, no
Python per window. A chunk returns one float64 sum per piece; a record's sum adds its pieces in order, so its
vector never depends on the chunks, threads or records around it (kmer_linear's module docstring). With
`workers` > 1, chunks are counted in that many threads (numpy's array operations release the GIL) while the
main thread reads, windows and runs the head.

Glossary: w windows, K canonical k-mers, D output width.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from mrl_dna import dna, runtime
from mrl_dna.embed.stages import StageTimes, _timed_iter
from mrl_dna.inputs.fasta import Record
from mrl_dna.model.kmer_linear import GROUP_WINDOWS, HEAD_ROWS, KmerLinearModel
from mrl_dna.windows import WindowConfig, split_windows

# Bases per chunk (a few hundred windows: ~10 MB of counts and profiles), and at most this many windows in one.
CHUNK_BASES, CHUNK_WINDOWS = 1 << 18, 384
# What `numerics` says for this path: its bits depend on neither the device nor the batch size, only on how the
# windows' sums are grouped and on the head's product shape (kmer_linear), named here so that a change of either
# is a change of numerics (resume and merge then refuse to mix the two).
NUMERICS = (f"cpu (numpy); pooled k-mer profile (sums of {GROUP_WINDOWS} windows), one head per record "
            f"({HEAD_ROWS}-row products)")


def pooled_model(model) -> KmerLinearModel | None:
    """The KmerLinearModel whose record vectors this run computes on the pooled path, or None for the batched
    path (another kind of model). With --save-windows the window vectors (the head per window) come from the
    batched path beside it (records.py), so a record's vector is the same bits with or without them."""
    if isinstance(model, KmerLinearModel):
        return model
    if getattr(model, "model_type", None) == KmerLinearModel.model_type and KmerLinearModel.applies(
            getattr(model, "config", None)):
        return KmerLinearModel.of(model)
    return None


class PooledRecord:
    """A record on the pooled path: its windows and, once `left` is 0, for a record of one window `x`, that
    window's profile (K,) float32, else `sum` (K,) float64, the sum of l_w x_w over its windows (pieces added in
    order)."""

    __slots__ = ("id", "length", "order", "key", "checksum", "spans", "n_skipped", "sum", "x", "weight", "left")

    def __init__(self, rec: Record, cfg: WindowConfig, order: int, key: object) -> None:
        self.id, self.length, self.order, self.key = rec.id, len(rec.tokens), order, key
        self.checksum = dna.checksum(rec.tokens)
        w = split_windows(rec.tokens, cfg)
        self.spans, self.n_skipped = w.spans, w.n_skipped  # (k, 2)
        self.sum: np.ndarray | None = None  # (K,) float64: sum of l_w x_w over the pieces in so far
        self.x: np.ndarray | None = None  # (K,) float32: the profile of the one window of a one-window record
        self.weight = int((self.spans[:, 1] - self.spans[:, 0]).sum()) if len(self.spans) else 0
        self.left = -(-len(self.spans) // GROUP_WINDOWS)  # pieces not yet summed


def pooled_profile(group: list[PooledRecord]) -> np.ndarray | None:
    """(K,): the length-weighted mean (float64) of the window profiles of a record (group of one) or of a file's
    records (their sums added in file order); one window is its own (float32) profile; None without windows."""
    kept = [p for p in group if len(p.spans)]
    if not kept:
        return None
    if len(kept) == 1 and len(kept[0].spans) == 1:
        return kept[0].x
    total = None
    for p in kept:  # in file order
        s = p.sum if p.x is None else p.x.astype(np.float64) * p.weight
        total = s if total is None else total + s
    return total / sum(p.weight for p in kept)


def _count(model: KmerLinearModel, pieces: list[tuple[PooledRecord, int, int, np.ndarray]]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One chunk: (record, j0, j1, its tokens) window runs -> the float64 sums of l_w x_w of the pieces that are
    not a one-window record, the profiles of those that are, which pieces those are, and the seconds it took."""
    t = time.perf_counter()
    parts, spans, starts, single = [], [], [], []  # parts: [tokens, start, end] slices of records, in order
    base = rows = 0  # where the last part begins in the chunk's sequence; windows so far
    for p, j0, j1, tokens in pieces:
        s0, e1 = int(p.spans[j0, 0]), int(p.spans[j1 - 1, 1])
        if parts and parts[-1][0] is tokens and parts[-1][1] <= s0 <= parts[-1][2]:  # the record's next piece
            parts[-1][2] = max(parts[-1][2], e1)
        else:
            if parts:
                base += parts[-1][2] - parts[-1][1]
            parts.append([tokens, s0, e1])
        spans.append(p.spans[j0:j1] + (base - parts[-1][1]))
        starts.append(rows)
        single.append(len(p.spans) == 1)
        rows += j1 - j0
    spans_all = np.concatenate(spans)  # (w, 2)
    seq = np.concatenate([t[a:b] for t, a, b in parts]) if len(parts) > 1 else parts[0][0][parts[0][1] : parts[0][2]]
    single = np.asarray(single, dtype=bool)
    sums, x = model.piece_sums(seq, spans_all, np.asarray(starts), single)
    return sums, x, single, time.perf_counter() - t


def pooled_records(items: Iterable[tuple[Record, object]], *, model: KmerLinearModel, cfg: WindowConfig,
                   workers: int = 1, progress=None, times: StageTimes | None = None) -> Iterator[PooledRecord]:
    """(record, key) pairs -> their PooledRecord with its sums complete, in input order (`headed` turns them
    into vectors). workers: threads that count chunks (1: this thread); the sums are the same bits for any."""
    times = times if times is not None else StageTimes()
    runtime.tune_allocator()  # large temporaries stay in the heap instead of being mapped and faulted in again
    pool = ThreadPoolExecutor(workers, thread_name_prefix="mrl-dna-kmer") if workers > 1 else None
    depth = 2 * workers  # chunks in flight
    inflight: deque = deque()  # (result(), pieces)
    waiting: deque[PooledRecord] = deque()  # records not yet yielded, in input order
    chunk: list[tuple[PooledRecord, int, int, np.ndarray]] = []
    chunk_bp = chunk_w = 0

    def submit() -> None:
        nonlocal chunk, chunk_bp, chunk_w
        if not chunk:
            return
        t = time.perf_counter()
        if pool is not None:
            inflight.append((pool.submit(_count, model, chunk).result, chunk))
        else:
            done = _count(model, chunk)
            inflight.append((lambda: done, chunk))
        times.seconds["model"] += time.perf_counter() - t
        chunk, chunk_bp, chunk_w = [], 0, 0

    def collect(keep: int) -> None:
        while len(inflight) > keep:
            result, pieces = inflight.popleft()
            t = time.perf_counter()
            sums, xs, single, seconds = result()
            times.seconds["wait"] += time.perf_counter() - t
            if pool is not None:
                times.worker["model"] = times.worker.get("model", 0.0) + seconds
            it_sum, it_x = iter(sums), iter(xs)
            for (p, _, _, _), one in zip(pieces, single):
                if one:
                    p.x = next(it_x)
                else:
                    s = next(it_sum)
                    p.sum = s if p.sum is None else p.sum + s  # pieces in order: the record's groups in order
                p.left -= 1

    def ready() -> Iterator[PooledRecord]:
        while waiting and not waiting[0].left:
            p = waiting.popleft()
            if progress is not None:
                progress.advance(p.length)
            yield p

    try:
        for order, (rec, key) in enumerate(_timed_iter(items, times, "read")):
            t = time.perf_counter()
            p = PooledRecord(rec, cfg, order, key)
            times.seconds["windows"] += time.perf_counter() - t
            waiting.append(p)
            k = len(p.spans)
            if not k:  # empty or all-N: nothing to count
                yield from ready()
            for j0 in range(0, k, GROUP_WINDOWS):
                j1 = min(j0 + GROUP_WINDOWS, k)
                chunk.append((p, j0, j1, rec.tokens))
                chunk_bp += int(p.spans[j1 - 1, 1] - p.spans[j0, 0])
                chunk_w += j1 - j0
                if chunk_bp >= CHUNK_BASES or chunk_w >= CHUNK_WINDOWS:
                    submit()
                    collect(depth)
                    yield from ready()
        submit()
        collect(0)
        yield from ready()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def headed(items: Iterable[tuple[object, np.ndarray | None]], model: KmerLinearModel,
           times: StageTimes | None = None) -> Iterator[tuple[object, np.ndarray | None]]:
    """(item, pooled profile (K,) or None) in order -> (item, its (D,) vector or None), in order: the head runs on
    HEAD_ROWS profiles at a time (its fixed shape), so items wait until that many are in or the input ends."""
    times = times if times is not None else StageTimes()
    block: list[tuple[object, np.ndarray | None]] = []
    n = 0

    def flush() -> Iterator[tuple[object, np.ndarray | None]]:
        t = time.perf_counter()
        have = [x for _, x in block if x is not None]
        vectors = iter(model.head(np.stack(have)) if have else ())
        out = [(item, next(vectors) if x is not None else None) for item, x in block]
        times.seconds["pool"] += time.perf_counter() - t
        return iter(out)

    for item, x in items:
        block.append((item, x))
        n += x is not None
        if n == HEAD_ROWS:
            yield from flush()
            block, n = [], 0
    if block:
        yield from flush()
