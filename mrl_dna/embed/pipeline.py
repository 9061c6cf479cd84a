"""The engine under `embed`: records -> windows -> fixed-shape batches -> model -> each record's window
embeddings, in input order. records.py turns a record's (or a file's) window embeddings into its stored row.

Bit for bit, not only up to rounding: a window's embedding must not depend on which other windows share its
batch, or a sharded, a torchrun or a resumed run (whose batches hold other neighbours) would differ from one
run in the last bits (the encoder masks padding, so the difference is only float summation order, but that
order follows the GEMM and conv shapes: measured, a 100 bp window alone in a (1, 100) batch and in a
(32, 2048) one differ by 2e-7). So every batch has a FIXED SHAPE (rows, L) that depends only on the length of
the windows it holds: full windows (every window of a record longer than the window) run in
(batch_tokens // size, size) batches; a record shorter than the window is one short window, padded up to a
length bucket (64, ..., 128, 144, 160, ..., 256, 288, ...: 8 per octave, see `bucket_length`) and run with
others of its bucket in (batch_tokens // bucket, bucket) batches. A batch that is not full (the end of the input, or one that a
waiting record needs) is filled with copies of its first window whose outputs are dropped.

The model's head runs here too, inside the batch (`window_embeddings`): a window's embedding and attention
logit come from a GEMM of the batch's fixed shape, never of its record's window count.

Nor on the thread count: every op runs on ONE thread, and `--threads N` runs N batches at once in worker
threads (runtime.batch_threads; torch's ops release the GIL). An op split over threads sums in an order that
follows their count: with MKL the head's GEMM over 5 to 11 rows gave other last bits at 2 threads than at 1
(issue 16 met it over a record's windows, issue 22 in a batch of 9 windows), and no shape is safe by
construction on every CPU. So `--threads` can follow the machine's load, and a resume, a shard or a torchrun
rank at another count writes the same bits. What still moves them (`numerics`: the device, the batch shape,
--compile) is an attribute of the file embed writes, and resume and merge refuse a mix.

Throughput (issue 16, bench/HISTORY.md):
- a record's windows enter a batch as one gather (a fancy index into a sliding-window view of its tokens),
  not one Python call per window, and come back as one slice copy per record and batch;
- on a CPU the main thread cuts, gathers and pools while the workers run the model (`depth` batches in flight);
- on a GPU nothing waits for the device per batch: tokens go up as uint8 from pinned memory, embeddings
  come back into pinned memory asynchronously, and a batch's results are taken `depth` batches later
  (a CUDA event), so the host prepares batch i+1.. while the device runs batch i;
- `prefetch`: a worker thread reads, parses and tokenises records and cuts their windows ahead of the
  model (default on a GPU; on a CPU the model's threads use the cores, and reading costs ~1% there);
- `StageTimes`: the seconds each stage took (`embed --profile`).

Glossary: n windows in a batch, L bases per window (padded), k windows of a record, D output width.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch

from mrl_dna import dna, runtime
from mrl_dna.embed.stages import StageTimes, _timed_iter
from mrl_dna.inputs.fasta import Record
from mrl_dna.windows import WindowConfig, split_windows

# Bases per batch on a CPU: ~32 windows of 2 kb; big enough to fill the cores, small in memory.
DEFAULT_BATCH_TOKENS = 65536
# On a GPU: 1 Mbp (512 windows of 2 kb): a CPU-sized batch leaves an H100 mostly idle between kernel
# launches; scripts/gpu/bench.py sweeps 2^19..2^22 (bench/HISTORY.md).
GPU_BATCH_TOKENS = 1 << 20
# Batches in flight on a GPU before the host waits for the oldest one's results.
GPU_DEPTH = 3
# Smallest padded length of a short window: padding a 1 bp record to 64 costs nothing next to the batch, and
# fewer buckets mean fuller batches.
_MIN_BUCKET = 64
# Records wait behind an earlier one whose part-filled batch has not run (output keeps input order); once
# they hold this many batches' worth of bases (8 Mbp at the CPU default: tokens and embeddings of a few tens
# of MB), or it has waited this long, that batch runs filled up instead of waiting for more windows of its
# length. Each such run costs up to one batch of padding: on 100,000 marker genes (8 buckets per octave) a
# hold of 32 batches ran 1.48x the bases of the windows, 128 batches 1.14x (the 1.5x buckets before issue 16:
# 1.30x at 32); the time bound keeps output, hence flushes, within ~25 s of the input.
_HOLD_BATCHES, _HOLD_SECONDS = 128, 15.0
# Records read ahead by the prefetch thread.
_PREFETCH_RECORDS = 64


def default_batch_tokens(device: torch.device) -> int:
    """Bases per batch when --batch-tokens is not given: DEFAULT_BATCH_TOKENS on a CPU, GPU_BATCH_TOKENS on CUDA."""
    return GPU_BATCH_TOKENS if device.type == "cuda" else DEFAULT_BATCH_TOKENS


def numerics(dev: torch.device, batch_tokens: int | None, window: int, compile: bool = False) -> str:
    """What decides a vector's last bits besides the model and the window options: the kind of device (a GPU
    by name: its kernels and bf16 autocast), the bases per batch (the batch shapes) and --compile; never the
    thread count, the batch neighbours, a shard or a resume (module docstring). embed stores it as the file's
    `numerics` attribute, and resume and merge refuse to mix two (store.format RESUME_KEYS, MERGE_KEYS).
    A CPU is "cpu" whatever its model: CPUs of other instruction sets (AVX2, AVX-512) may round differently."""
    tokens = max(batch_tokens or default_batch_tokens(dev), window)  # what embedded_windows runs
    where = f"cuda ({torch.cuda.get_device_name(dev)}, bf16 autocast)" if dev.type == "cuda" else dev.type
    return f"{where}; {tokens:,} bases per batch" + ("; torch.compile" if compile else "")


def bucket_length(n: int, size: int) -> int:
    """The padded length of a window of n bp in a batch: `size` for a full window, 64 up to 64 bp, else the
    smallest multiple of an eighth of n's octave (at least 16 bp, the default model's token) that holds it:
    ..., 112, 128, 144, 160, ..., 256, 288, ..., 512, 576, ..., 1024, 1152, ..., at most `size`. Padding is then
    below 1/8 of a window (4% on the marker genes and on 100-250 bp reads; the 1.5x steps used before issue 16
    padded 17-18%), for 8 bucket shapes per octave."""
    if n >= size:
        return size
    if n <= _MIN_BUCKET:
        return min(_MIN_BUCKET, size)
    step = max(16, 1 << ((n - 1).bit_length() - 4))  # n in (2^k, 2^(k+1)] -> 2^(k-3)
    return min(-(-n // step) * step, size)


# --------------------------------------------------------------------------------------------- prefetch


class _Raised:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def prefetched(items: Iterable, depth: int = _PREFETCH_RECORDS) -> Iterator:
    """The items of `items`, produced by a worker thread up to `depth` ahead. An exception in the worker is
    raised here, in the caller's thread, at the point it occurred in the sequence; closing this generator
    stops the worker (and closes `items` in it)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 (re-raised in the consumer's thread)
            put(_Raised(e))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="mrl-dna-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join(timeout=10)


# ----------------------------------------------------------------------------------------------- engine


class Pending:
    """A record whose windows are being embedded: `values` (k, D) and `logits` (k,) (attention pooling) fill
    as its batches finish; `ready` once all k are in."""

    def __init__(self, rec: Record, cfg: WindowConfig, order: int, key: object = None) -> None:
        self.id, self.length, self.order, self.key = rec.id, len(rec.tokens), order, key
        self.checksum = dna.checksum(rec.tokens)  # stored per row: resume tells an edited record from this one
        self.since = time.perf_counter()  # when it started to wait
        self.tokens: np.ndarray | None = rec.tokens  # dropped once every window is in a batch
        w = split_windows(rec.tokens, cfg)
        self.spans, self.n_skipped = w.spans, w.n_skipped  # (k, 2)
        # all kept windows of a record have one length (full windows, or the one window of a short record)
        self.bucket = bucket_length(int(self.spans[0, 1] - self.spans[0, 0]), cfg.size) if len(self.spans) else 0
        self.values: np.ndarray | None = None  # (k, D) float32, allocated by the first batch that returns
        self.logits: np.ndarray | None = None  # (k,) float32 attention logits, or None (mean pooling)
        self.n_queued = 0  # windows put into a batch queue (the first n_queued)
        self.n_launched = 0  # windows in batches that ran (or are running on the device)
        self.n_done = 0  # windows whose embeddings are in `values`: always the first n_done
        self.reported = 0  # bases passed to the progress bar

    @property
    def ready(self) -> bool:
        return self.n_done == len(self.spans)

    def advance_to(self, bp: int) -> int:
        """Bases to add to the progress bar so that this record counts `bp` of its bases as done."""
        step, self.reported = max(0, bp - self.reported), max(bp, self.reported)
        return step


def window_embeddings(model, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What a batch computes: (n, L) ids, (n,) lengths -> (n, D) window embeddings, (n,) pooling logits or None."""
    return model.window_embeddings(model.window_vectors(tokens, lengths))


def compiled_forward(model, cuda: bool):
    """window_embeddings through torch.compile (`embed --compile`): every batch shape is fixed, so each bucket
    compiles once; on a GPU with CUDA graphs (mode reduce-overhead: one launch per batch instead of ~150).
    Compiled kernels round differently from eager ones: vectors move in their last bits (deterministic)."""
    fn = torch.compile(partial(window_embeddings, model), mode="reduce-overhead" if cuda else None, dynamic=False)
    if not cuda:
        return fn

    def forward(tokens: torch.Tensor, lengths: torch.Tensor):
        torch.compiler.cudagraph_mark_step_begin()  # the previous batch's outputs were copied out already
        return fn(tokens, lengths)

    return forward


class _Engine:
    """Queues of windows per bucket length, their fixed-shape batches, the model calls (on a CPU in `workers`
    threads when there are several) and the batches in flight."""

    def __init__(self, model, cfg: WindowConfig, batch_tokens: int, dev: torch.device, progress,
                 times: StageTimes | None, depth: int, compile: bool = False, workers: int = 1) -> None:
        self.model, self.cfg, self.batch_tokens, self.dev = model, cfg, batch_tokens, dev
        self.progress, self.times = progress, times or StageTimes()
        self.cuda = dev.type == "cuda"
        self.depth = depth  # batches in flight before the main thread takes the oldest one's results
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if self.cuda else contextlib.nullcontext()
        self.forward = compiled_forward(model, self.cuda) if compile else partial(window_embeddings, model)
        self.queues: dict[int, list[tuple[Pending, int, int]]] = {}  # bucket L -> (record, j0, j1) window runs
        self.rows_queued: dict[int, int] = {}  # bucket L -> windows in its queue
        # (results, entries) of the batches run or running; results() -> (n, D) values, (n,) logits or None, and
        # the seconds a worker thread spent on the batch
        self.inflight: deque[tuple[Callable[[], tuple[np.ndarray, np.ndarray | None, float]], list]] = deque()
        # a CPU's batches in worker threads, each op on one thread (runtime.batch_threads); None: in this thread
        self.pool = (ThreadPoolExecutor(workers, thread_name_prefix="mrl-dna-batch", initializer=runtime.one_op_thread)
                     if workers > 1 and not self.cuda else None)

    def rows(self, L: int) -> int:
        return max(1, self.batch_tokens // L)

    def add(self, p: Pending) -> None:
        """Queue all windows of p; every batch that fills up runs."""
        L, k = p.bucket, len(p.spans)
        while p.n_queued < k:
            entries = self.queues.setdefault(L, [])
            take = min(self.rows(L) - self.rows_queued.get(L, 0), k - p.n_queued)
            entries.append((p, p.n_queued, p.n_queued + take))
            p.n_queued += take
            self.rows_queued[L] = self.rows_queued.get(L, 0) + take
            if self.rows_queued[L] == self.rows(L):
                self.run(L)

    def advance(self, p: Pending) -> None:
        """Make progress on p, the record at the head of the output: run its part-filled batch, or wait for
        the batches in flight."""
        if p.n_launched < p.n_queued:
            self.run(p.bucket)
        else:
            self.drain(0)

    def finish(self) -> None:
        for L in list(self.queues):
            self.run(L)
        self.drain(0)

    def close(self) -> None:
        """Stop the worker threads (batches not started are dropped; a running one is waited for)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def run(self, L: int) -> None:
        """Run the queued windows of bucket L as one (rows(L), L) batch."""
        entries = self.queues.pop(L)
        self.rows_queued.pop(L)
        t = time.perf_counter()
        tokens, lengths = self._batch(entries, L)
        t2 = time.perf_counter()
        self.times.seconds["batch"] += t2 - t
        if self.pool is not None:
            self.inflight.append((self.pool.submit(self._compute, tokens, lengths).result, entries))
        elif self.cuda:
            self.inflight.append((self._launch(tokens, lengths), entries))
        else:
            done = self._compute(tokens, lengths)
            self.inflight.append((lambda: done, entries))
        self.times.seconds["model"] += time.perf_counter() - t2
        self.drain(self.depth)

    def _compute(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None, float]:
        """A batch on the CPU (in a worker thread or this one): (n, D) values, (n,) logits or None, and the
        seconds it took when run by a worker (0 in this thread: the caller's `model` stage counts it)."""
        t = time.perf_counter()
        with torch.inference_mode():  # thread-local, as the autograd state: set in the thread that runs the batch
            values, logits = self.forward(tokens.long(), lengths)  # (n, D), (n,) or None
        values = values.float().numpy()
        logits = logits.float().numpy() if logits is not None else None
        return values, logits, (time.perf_counter() - t if self.pool is not None else 0.0)

    def _launch(self, tokens: torch.Tensor, lengths: torch.Tensor):
        """A batch on the GPU: launched now, its results copied back asynchronously into pinned memory;
        returns the call that waits for them (a CUDA event), made `depth` batches later."""
        with torch.inference_mode(), self.autocast:
            tok = tokens.to(self.dev, non_blocking=True).long()
            lens = lengths.to(self.dev, non_blocking=True)
            values, logits = self.forward(tok, lens)  # (n, D), (n,) or None
        values = values.float()
        logits = logits.float() if logits is not None else None
        host_v = torch.empty(values.shape, dtype=torch.float32, pin_memory=True).copy_(values, non_blocking=True)
        host_l = (torch.empty(logits.shape, dtype=torch.float32, pin_memory=True).copy_(logits, non_blocking=True)
                  if logits is not None else None)
        event = torch.cuda.Event()
        event.record()

        def results() -> tuple[np.ndarray, np.ndarray | None, float]:
            event.synchronize()
            return host_v.numpy(), None if host_l is None else host_l.numpy(), 0.0

        return results

    def drain(self, keep: int) -> None:
        """Take the results of the oldest batches in flight until at most `keep` remain."""
        while len(self.inflight) > keep:
            results, entries = self.inflight.popleft()
            t = time.perf_counter()
            values, logits, worker_seconds = results()
            self.times.seconds["wait"] += time.perf_counter() - t
            if worker_seconds:
                self.times.worker["model"] = self.times.worker.get("model", 0.0) + worker_seconds
            self._collect(values, logits, entries)

    def _batch(self, entries: list[tuple[Pending, int, int]], L: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids (n, L) uint8 (PAD-padded; rows past the queued windows copy the first one) and lengths (n,)."""
        n = self.rows(L)
        tokens = torch.empty((n, L), dtype=torch.uint8, pin_memory=self.cuda)
        lengths = torch.empty(n, dtype=torch.int64, pin_memory=self.cuda)
        tok, lens = tokens.numpy(), lengths.numpy()
        r = 0
        for p, j0, j1 in entries:
            m = j1 - j0
            width = int(p.spans[j0, 1] - p.spans[j0, 0])
            if width == L:  # full windows: one gather of m rows
                tok[r : r + m] = np.lib.stride_tricks.sliding_window_view(p.tokens, L)[p.spans[j0:j1, 0]]
            else:  # the one window of a short record, padded to its bucket
                tok[r, :width] = p.tokens[:width]
                tok[r, width:] = dna.PAD
            lens[r : r + m] = width
            p.n_launched = j1
            if j1 == len(p.spans):
                p.tokens = None  # every window is in a batch: the record's sequence is no longer needed
            r += m
        tok[r:] = tok[0]  # fill a part-filled batch: the shape stays (rows(L), L)
        lens[r:] = lens[0]
        return tokens, lengths

    def _collect(self, values: np.ndarray, logits: np.ndarray | None, entries) -> None:
        """Copy a finished batch's rows (n, D) into their records; rows past the entries (fill) are dropped."""
        r = 0
        for p, j0, j1 in entries:
            m = j1 - j0
            if p.values is None:
                p.values = np.empty((len(p.spans), values.shape[1]), dtype=np.float32)
                p.logits = np.empty(len(p.spans), dtype=np.float32) if logits is not None else None
            p.values[j0:j1] = values[r : r + m]
            if logits is not None:
                p.logits[j0:j1] = logits[r : r + m]
            p.n_done = j1
            r += m
            if self.progress is not None:
                self.progress.advance(p.advance_to(int(p.spans[j1 - 1, 1])))


def embedded_windows(items: Iterable[tuple[Record, object]], *, model, cfg: WindowConfig, batch_tokens: int,
                     dev: torch.device, progress=None, times: StageTimes | None = None,
                     prefetch: bool | None = None, depth: int | None = None,
                     compile: bool = False) -> Iterator[Pending]:
    """(record, key) pairs -> their Pending, in input order, once all their windows are embedded (`values`).

    Threads: torch's thread count on entry is the number of batches run at once (on a CPU, in worker
    threads), every op on one thread meanwhile (runtime.batch_threads; restored when this generator ends), so
    the vectors do not depend on it. prefetch: read and window the records in a worker thread (None: on CUDA
    only). depth: batches in flight before the main thread takes the oldest one's results (None: GPU_DEPTH on
    CUDA, on a CPU as many as worker threads, 0 without them). compile: torch.compile the batch's
    computation (compiled_forward)."""
    runtime.tune_allocator()  # freed batch activations stay in the process (runtime.py: ~1/4 of the CPU time)
    model.to(dev)
    batch_tokens = max(batch_tokens, cfg.size)  # at least one full window per batch
    times = times if times is not None else StageTimes()
    if prefetch is None:
        prefetch = dev.type == "cuda"
    with runtime.batch_threads() as workers:
        if depth is None:
            depth = GPU_DEPTH if dev.type == "cuda" else (workers if workers > 1 else 0)
        engine = _Engine(model, cfg, batch_tokens, dev, progress, times, depth, compile, workers)
        try:
            yield from _in_order(items, engine, cfg, batch_tokens, progress, times, prefetch)
        finally:
            engine.close()


def _in_order(items: Iterable[tuple[Record, object]], engine: _Engine, cfg: WindowConfig, batch_tokens: int,
              progress, times: StageTimes, prefetch: bool) -> Iterator[Pending]:
    """embedded_windows' loop: records in, their windows through the engine, records out in input order."""

    def pendings(into: dict | None) -> Iterator[Pending]:
        for order, (rec, key) in enumerate(_timed_iter(items, times, "read", into)):
            t = time.perf_counter()
            p = Pending(rec, cfg, order, key)
            if into is not None:
                into["windows"] = into.get("windows", 0.0) + time.perf_counter() - t
            else:
                times.seconds["windows"] += time.perf_counter() - t
            yield p

    source = _timed_iter(prefetched(pendings(times.worker)), times, "read") if prefetch else pendings(None)
    pending: deque[Pending] = deque()  # records not yet yielded, in input order
    held = 0  # bases of the records in `pending`

    def flush_done() -> Iterator[Pending]:
        nonlocal held
        while pending and pending[0].ready:
            p = pending.popleft()
            held -= p.length
            yield p
            if progress is not None:
                progress.advance(p.advance_to(p.length))

    try:
        for p in source:
            pending.append(p)
            held += p.length
            if p.bucket:
                engine.add(p)
            yield from flush_done()
            while pending and (held - pending[0].length > _HOLD_BATCHES * batch_tokens
                               or time.perf_counter() - pending[0].since > _HOLD_SECONDS):
                engine.advance(pending[0])  # the records behind pending[0] wait for its part-filled batch
                yield from flush_done()
        engine.finish()
        yield from flush_done()
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
