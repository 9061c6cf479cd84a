"""Records (or files) -> stored rows: the record and file embedding under `embed`, and the API's `encode`.

Windows of consecutive records are packed into batches, so a record may span batches and a batch may hold
many records; a record's vector is computed from its own windows only (pooling per record). The batching
engine is `pipeline`: fixed-shape batches, so that a window's embedding is the same bit for bit whatever its
neighbours (a shard, a torchrun rank or a resumed run gets exactly the vectors of one run;
tests/test_embed_bitwise.py), the head inside the batch, the GPU's batches in flight, the prefetch thread and
the stage times of `embed --profile`. This module turns each record's (or file's) window embeddings into its row.

Glossary: n windows in a batch, L bases per window (padded), r records, k windows of a row, D output width.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from mrl_dna import console, runtime
from mrl_dna.device import resolve_device
from mrl_dna.embed.options import EmbedOptions
from mrl_dna.embed.pooled import PooledRecord, headed, pooled_model, pooled_profile, pooled_records
from mrl_dna.embed.stages import StageTimes
from mrl_dna.inputs.fasta import Record
from mrl_dna.model.kmer_linear import KmerLinearModel
from mrl_dna.store import EmbeddedRecord

if TYPE_CHECKING:  # pipeline.py (torch) is imported by the batched path only: the pooled one starts without torch
    from mrl_dna.embed.pipeline import Pending

# Below this length a vector carries almost no signal and a warning says so: 16 bp is one token of the
# default model's stem (it sees one patch per 16 bp).
SHORT_RECORD_BP = 16
_SHORT_WARNINGS = 5  # short records named one by one; the rest are counted in one line at the end


class ShortRecords:
    """The warning for vectors of records shorter than SHORT_RECORD_BP, said the same way by embed (records,
    files) and search (FASTA queries): the first _SHORT_WARNINGS named, then one line counting the rest
    (finish). what/plural name the unit ('query', 'queries'); `kept` says what happens to such a record,
    e.g. 'stored with status ok'."""

    def __init__(self, what: str, plural: str, kept: str, warn=console.warn) -> None:
        self.what, self.plural, self.kept, self.warn, self.n = what, plural, kept, warn, 0

    def see(self, record_id: str, length: int) -> None:
        if length >= SHORT_RECORD_BP:
            return
        self.n += 1
        if self.n <= _SHORT_WARNINGS:
            self.warn(f"{self.what} {record_id!r} is only {length} bp: a vector of fewer than {SHORT_RECORD_BP} bp "
                      f"carries almost no signal ({self.kept})")

    def finish(self) -> None:
        if self.n > _SHORT_WARNINGS:
            more = self.n - _SHORT_WARNINGS
            self.warn(f"{more:,} more {self.what if more == 1 else self.plural} {'is' if more == 1 else 'are'} "
                      f"shorter than {SHORT_RECORD_BP} bp ({self.n:,} in all)")


def embed_sequences(records: Iterable[Record], *, model, options: EmbedOptions = EmbedOptions(), progress=None,
                    times: StageTimes | None = None, first_order: int = 0) -> Iterator[EmbeddedRecord]:
    """Embed records in input order; yields one EmbeddedRecord per record (empty and all-N ones included),
    whose `order` counts from first_order.

    Batches have fixed shapes (pipeline.py), so every vector is the same bit for bit whatever the other
    records are, for a given options.batch_tokens. `progress` (optional) gets `advance(bp)` as windows finish
    (a record's bases add up to its length when it is yielded); times: adds each stage's seconds to it.
    Reads options' window, stride, max_n_fraction, batch_tokens, device, save_windows, prefetch and compile.
    A k-mer-only model with a linear head and mean pooling takes the pooled path instead (pooled.py: one head
    call per record; window, stride and max_n_fraction only; the same bits whatever the records, threads or
    batch size).
    """
    times = times if times is not None else StageTimes()
    kmer = pooled_model(model)
    if kmer is not None:
        items = ((rec, None) for rec in records)
        if options.save_windows:  # the windows through the batched path beside the pooled one
            items, windows = _split(items)
            saved = _saved_windows(windows, kmer, options, times)
        rows = ((p, pooled_profile([p])) for p in _pooled(items, kmer, options, progress, times))
        for p, vec in headed(rows, kmer, times):
            row = _pooled_row(kmer, p.id, [p], vec, first_order + p.order)
            yield _with_saved(row, [next(saved)], times) if options.save_windows else row
        return
    import torch

    yield from torch.inference_mode()(_batched_sequences)(records, _torch_model(model), options, progress, times,
                                                         first_order)


def _batched_sequences(records: Iterable[Record], model, options: EmbedOptions, progress, times: StageTimes,
                       first_order: int) -> Iterator[EmbeddedRecord]:
    for p, saved in _embedded(((rec, None) for rec in records), model, options, progress, times):
        with times("pool"):
            row = _row(model, p.id, [p], options.save_windows, first_order + p.order, saved=[saved])
        yield row


def embed_files(files: Sequence[tuple[str, Iterable[Record]]], *, model, options: EmbedOptions = EmbedOptions(),
                progress=None, times: StageTimes | None = None, first_order: int = 0) -> Iterator[EmbeddedRecord]:
    """`embed --per-file`: one EmbeddedRecord per (name, records) item of `files`, in order (`order` counts
    from first_order). Its vector is the weighted centroid of the embeddings of ALL the file's windows (head
    then pool over them, exactly what a record's vector is over its own windows: a file of one record gets that
    record's vector bit for bit); length, windows and skipped windows are the file's totals; `contigs` lists
    its records and, with save_windows, each window says which of them it lies on. A file without records or
    bases is a row with status empty (all-N: all_n). Batching is the same as embed_sequences', so the same bits
    whatever the other files are (on the pooled path: one head call per file, on the pooled profile of all
    its windows). Memory: the window embeddings (D floats each) of one file at a time.
    """
    times = times if times is not None else StageTimes()
    kmer = pooled_model(model)
    if kmer is not None:
        items = ((rec, fi) for fi, (_, recs) in enumerate(files) for rec in recs)
        if options.save_windows:  # the windows through the batched path beside the pooled one
            items, windows = _split(items)
            saved = _saved_windows(windows, kmer, options, times)
        groups = _file_groups(_pooled(items, kmer, options, progress, times), len(files))
        for (fi, group), vec in headed(((g, pooled_profile(g[1])) for g in groups), kmer, times):
            row = _pooled_row(kmer, files[fi][0], group, vec, first_order + fi, per_file=True)
            yield _with_saved(row, [next(saved) for _ in group], times, per_file=True) if options.save_windows else row
        return
    import torch

    yield from torch.inference_mode()(_batched_files)(files, _torch_model(model), options, progress, times,
                                                     first_order)


def _saved_windows(items: Iterable[tuple[Record, object]], model: KmerLinearModel, options: EmbedOptions,
                   times: StageTimes) -> Iterator[Pending]:
    """The saved windows of a pooled-path run (--save-windows): the records at the saved-window stride through
    the batched path (the model's torch form, fixed-shape batches), one Pending per record, in order."""
    import torch

    from mrl_dna.embed.pipeline import embedded_windows

    engine = embedded_windows(items, cfg=options.saved_windows_config(model.info), progress=None,
                              **_engine_options(model.torch_model(), options, times))

    def run() -> Iterator[Pending]:
        yield from engine

    yield from torch.inference_mode()(run)()  # inference mode around each step of the engine, not the caller's


def _with_saved(row: EmbeddedRecord, saved: Sequence[Pending], times: StageTimes,
                per_file: bool = False) -> EmbeddedRecord:
    """A pooled-path row with the saved windows of its record(s) (`saved`, in file order) added, as _row
    stores them: unit vectors record by record, their spans and, per file, the record each lies on."""
    with times("pool"):
        wvec, wspans, wcontig = _window_arrays(saved, per_file, vectors=True)
    if row.status != "ok":
        return row
    return dataclasses.replace(row, window_spans=wspans, window_vectors=wvec, window_contigs=wcontig)


def _file_groups(records: Iterable, n_files: int, key=lambda p: p.key) -> Iterator[tuple[int, list]]:
    """Records (Pending or PooledRecord, or (Pending, saved Pending) pairs; key(record) = their file's index, in
    file order) -> (file index, its records) for every file, those without records included."""
    group: list = []
    current = 0
    for p in records:
        while key(p) > current:  # records come in file order: the files before p's are complete
            yield current, group
            group, current = [], current + 1
        group.append(p)
    for fi in range(current, n_files):
        yield fi, group
        group = []


def _batched_files(files: Sequence[tuple[str, Iterable[Record]]], model, options: EmbedOptions, progress,
                   times: StageTimes, first_order: int) -> Iterator[EmbeddedRecord]:
    items = ((rec, fi) for fi, (_, recs) in enumerate(files) for rec in recs)
    pairs = _embedded(items, model, options, progress, times)  # (a record's windows, its saved windows)
    for fi, both in _file_groups(pairs, len(files), key=lambda pw: pw[0].key):
        group, saved = [p for p, _ in both], [w for _, w in both]
        with times("pool"):
            row = _row(model, files[fi][0], group, options.save_windows, first_order + fi, per_file=True, saved=saved)
        yield row


def _torch_model(model):
    """The model the batched path runs: a KmerLinearModel's torch form (--save-windows), else the model."""
    return model.torch_model() if isinstance(model, KmerLinearModel) else model


def _pooled(items: Iterable[tuple[Record, object]], model: KmerLinearModel, options: EmbedOptions, progress,
            times: StageTimes) -> Iterator[PooledRecord]:
    """pooled.pooled_records with the options' windows, on the threads --threads chose (runtime.chosen_threads)."""
    return pooled_records(items, model=model, cfg=options.window_config(model.info), workers=runtime.chosen_threads(),
                          progress=progress, times=times)


def _pooled_row(model: KmerLinearModel, name: str, group: Sequence[PooledRecord], vec: np.ndarray | None,
                order: int, per_file: bool = False) -> EmbeddedRecord:
    """One stored row on the pooled path: a record (group of one) or a file's records, `vec` their vector."""
    length, skipped = sum(p.length for p in group), sum(p.n_skipped for p in group)
    contigs = tuple((p.id, p.length) for p in group) if per_file else ()
    checksum = file_checksum((p.id, p.checksum) for p in group) if per_file else group[0].checksum
    kept = [(ci, p) for ci, p in enumerate(group) if len(p.spans)]
    if vec is None:
        status = "empty" if length == 0 else "all_n"
        return EmbeddedRecord(name, length, 0, skipped, status, np.zeros(model.info.dim, np.float32), order=order,
                              contigs=contigs, checksum=checksum)
    spans = np.concatenate([p.spans for _, p in kept]).astype(np.int64) if len(kept) > 1 else kept[0][1].spans
    wcontig = np.concatenate([np.full(len(p.spans), ci, np.int64) for ci, p in kept]) if per_file else None
    return EmbeddedRecord(name, length, len(spans), skipped, "ok", vec, window_spans=spans, order=order,
                          contigs=contigs, window_contigs=wcontig, checksum=checksum)


def _embedded(items: Iterable[tuple[Record, object]], model, options: EmbedOptions, progress,
              times: StageTimes) -> Iterator[tuple[Pending, Pending]]:
    """pipeline.embedded_windows with the options' windows, device and batch size: (the record's windows, the
    windows it saves). With save_windows at a saved-window stride other than the record stride, a second
    engine cuts the same records at that stride (its own fixed-shape batches, so its vectors do not depend on
    the first's) and the record vectors still come from the first, bit for bit."""
    from mrl_dna.embed.pipeline import embedded_windows

    cfg = options.window_config(model.info)
    kw = _engine_options(model, options, times)
    saved_cfg = options.saved_windows_config(model.info) if options.save_windows else cfg
    if saved_cfg == cfg:
        return ((p, p) for p in embedded_windows(items, cfg=cfg, progress=progress, **kw))
    return _two_strides(items, cfg, saved_cfg, progress, kw)


def _engine_options(model, options: EmbedOptions, times: StageTimes) -> dict:
    """pipeline.embedded_windows' keywords besides the items, windows and progress: the model, the options'
    device, batch size (or the device's default), prefetch and compile."""
    from mrl_dna.embed.pipeline import default_batch_tokens

    dev = resolve_device(options.device)
    return dict(model=model, batch_tokens=options.batch_tokens or default_batch_tokens(dev), dev=dev, times=times,
                prefetch=options.prefetch, compile=options.compile)


def _two_strides(items: Iterable[tuple[Record, object]], cfg, saved_cfg, progress, kw: dict
                 ) -> Iterator[tuple[Pending, Pending]]:
    """The records through two engines at once (records.py's _embedded). Each engine takes torch's thread count
    on entry as its number of batch workers and sets it to one meanwhile (runtime.batch_threads), so the
    second is started with the caller's count too, and the count is restored when both are done."""
    import torch
    from mrl_dna.embed.pipeline import embedded_windows

    threads = torch.get_num_threads()
    first, second = _split(items)
    records = embedded_windows(first, cfg=cfg, progress=progress, **kw)
    saved = embedded_windows(second, cfg=saved_cfg, progress=None, **kw)
    try:
        started = False
        for p in records:
            if not started:
                torch.set_num_threads(threads)  # `records` set one while it runs: `saved` gets the caller's count
                started = True
            yield p, next(saved)
    finally:
        records.close()
        saved.close()
        torch.set_num_threads(threads)


def _split(items: Iterable) -> tuple[Iterator, Iterator]:
    """Two iterators over the same items (itertools.tee with a lock: each engine may read in its own prefetch
    thread, and tee itself is not thread-safe)."""
    lock = threading.Lock()
    first, second = itertools.tee(items)

    def locked(it: Iterator) -> Iterator:
        while True:
            with lock:
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    return locked(first), locked(second)


def _row(model, name: str, group: Sequence[Pending], save_windows: bool, order: int,
         per_file: bool = False, saved: Sequence[Pending] | None = None) -> EmbeddedRecord:
    """One stored row from the embedded windows of one record (group of one) or of one file's records: the
    weighted centroid of all their window embeddings (model.pool_embeddings, on the CPU). saved: the same
    records' windows at the saved-window stride (default: group's own), stored with save_windows."""
    import torch

    D = model.info.dim
    length, skipped = sum(p.length for p in group), sum(p.n_skipped for p in group)
    contigs = tuple((p.id, p.length) for p in group) if per_file else ()
    checksum = file_checksum((p.id, p.checksum) for p in group) if per_file else group[0].checksum
    kept = [(ci, p) for ci, p in enumerate(group) if len(p.spans)]
    if not kept:
        status = "empty" if length == 0 else "all_n"
        return EmbeddedRecord(name, length, 0, skipped, status, np.zeros(D, np.float32), order=order, contigs=contigs,
                              checksum=checksum)
    values = np.concatenate([p.values for _, p in kept]) if len(kept) > 1 else kept[0][1].values  # (k, D)
    logits = None if kept[0][1].logits is None else (
        np.concatenate([p.logits for _, p in kept]) if len(kept) > 1 else kept[0][1].logits)  # (k,)
    spans = np.concatenate([p.spans for _, p in kept]).astype(np.int64) if len(kept) > 1 else kept[0][1].spans  # (k, 2)
    vec = model.pool_embeddings(torch.from_numpy(values), torch.from_numpy(spans[:, 1] - spans[:, 0]),
                                None if logits is None else torch.from_numpy(logits)).numpy()  # (D,)
    wvec, wspans, wcontig = _window_arrays(group if saved is None else saved, per_file, vectors=save_windows)
    for _, p in kept:
        p.values = p.logits = None  # the row's vector is all that is kept
    return EmbeddedRecord(
        name, length, len(spans), skipped, "ok", vec, window_spans=wspans if save_windows else spans,
        window_vectors=wvec, order=order, contigs=contigs, window_contigs=wcontig, checksum=checksum,
    )


def _window_arrays(saved: Sequence[Pending], per_file: bool, vectors: bool
                   ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """The stored window columns of a row from its records' saved windows (in file order), as a run of records
    stores them: unit vectors record by record (only with `vectors`, else None), their spans and, per file, the
    record each lies on (else None). Their vectors are released."""
    import torch
    import torch.nn.functional as F

    kept = [(ci, w) for ci, w in enumerate(saved) if len(w.spans)]
    wvec = (np.concatenate([F.normalize(torch.from_numpy(w.values), dim=-1).numpy() for _, w in kept])
            if vectors and kept else None)
    wspans = np.concatenate([w.spans for _, w in kept]).astype(np.int64) if kept else np.zeros((0, 2), np.int64)
    wcontig = (np.concatenate([np.full(len(w.spans), ci, np.int64) for ci, w in kept]) if kept
               else np.zeros(0, np.int64)) if per_file else None
    for _, w in kept:
        w.values = w.logits = None
    return wvec, wspans, wcontig


def file_checksum(records: Iterable[tuple[str, int]]) -> int:
    """The checksum of an --per-file row: over its records' (id, dna.checksum) in file order, never 0."""
    h = hashlib.blake2b(digest_size=8)
    for rid, c in records:
        h.update(f"{rid}\t{c}\n".encode())
    return int.from_bytes(h.digest(), "little") or 1
