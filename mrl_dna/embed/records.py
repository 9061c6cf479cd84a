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

import hashlib
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mrl_dna import console
from mrl_dna.device import resolve_device
from mrl_dna.embed.options import EmbedOptions
from mrl_dna.embed.pipeline import Pending, StageTimes, default_batch_tokens, embedded_windows
from mrl_dna.inputs.fasta import Record
from mrl_dna.store import EmbeddedRecord

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


@torch.inference_mode()
def embed_sequences(records: Iterable[Record], *, model, options: EmbedOptions = EmbedOptions(), progress=None,
                    times: StageTimes | None = None, first_order: int = 0) -> Iterator[EmbeddedRecord]:
    """Embed records in input order; yields one EmbeddedRecord per record (empty and all-N ones included),
    whose `order` counts from first_order.

    Batches have fixed shapes (pipeline.py), so every vector is the same bit for bit whatever the other
    records are, for a given options.batch_tokens. `progress` (optional) gets `advance(bp)` as windows finish
    (a record's bases add up to its length when it is yielded); times: adds each stage's seconds to it.
    Reads options' window, stride, max_n_fraction, batch_tokens, device, save_windows, prefetch and compile.
    """
    times = times if times is not None else StageTimes()
    for p, saved in _embedded(((rec, None) for rec in records), model, options, progress, times):
        with times("pool"):
            row = _row(model, p.id, [p], options.save_windows, first_order + p.order, saved=[saved])
        yield row


@torch.inference_mode()
def embed_files(files: Sequence[tuple[str, Iterable[Record]]], *, model, options: EmbedOptions = EmbedOptions(),
                progress=None, times: StageTimes | None = None, first_order: int = 0) -> Iterator[EmbeddedRecord]:
    """`embed --per-file`: one EmbeddedRecord per (name, records) item of `files`, in order (`order` counts
    from first_order). Its vector is the weighted centroid of the embeddings of ALL the file's windows (head
    then pool over them, exactly what a record's vector is over its own windows: a file of one record gets that
    record's vector bit for bit); length, windows and skipped windows are the file's totals; `contigs` lists
    its records and, with save_windows, each window says which of them it lies on. A file without records or
    bases is a row with status empty (all-N: all_n). Batching is the same as embed_sequences', so the same bits
    whatever the other files are. Memory: the window embeddings (D floats each) of one file at a time.
    """
    times = times if times is not None else StageTimes()
    items = ((rec, fi) for fi, (_, recs) in enumerate(files) for rec in recs)
    group: list[Pending] = []  # the records of file `current`
    saved: list[Pending] = []  # their saved windows (the same Pendings when the strides agree)
    current = 0
    for p, w in _embedded(items, model, options, progress, times):
        while p.key > current:  # records come in file order: the files before p's are complete
            with times("pool"):
                row = _row(model, files[current][0], group, options.save_windows, first_order + current, per_file=True,
                           saved=saved)
            yield row
            group, saved, current = [], [], current + 1
        group.append(p)
        saved.append(w)
    for fi in range(current, len(files)):
        with times("pool"):
            row = _row(model, files[fi][0], group, options.save_windows, first_order + fi, per_file=True, saved=saved)
        yield row
        group, saved = [], []


def _embedded(items: Iterable[tuple[Record, object]], model, options: EmbedOptions, progress,
              times: StageTimes) -> Iterator[tuple[Pending, Pending]]:
    """pipeline.embedded_windows with the options' windows, device and batch size: (the record's windows, the
    windows it saves). With save_windows at a saved-window stride other than the record stride, a second
    engine cuts the same records at that stride (its own fixed-shape batches, so its vectors do not depend on
    the first's) and the record vectors still come from the first, bit for bit."""
    dev = resolve_device(options.device)
    cfg = options.window_config(model.info)
    kw = dict(model=model, batch_tokens=options.batch_tokens or default_batch_tokens(dev), dev=dev, times=times,
              prefetch=options.prefetch, compile=options.compile)
    saved_cfg = options.saved_windows_config(model.info) if options.save_windows else cfg
    if saved_cfg == cfg:
        return ((p, p) for p in embedded_windows(items, cfg=cfg, progress=progress, **kw))
    return _two_strides(items, cfg, saved_cfg, progress, kw)


def _two_strides(items: Iterable[tuple[Record, object]], cfg, saved_cfg, progress, kw: dict
                 ) -> Iterator[tuple[Pending, Pending]]:
    """The records through two engines at once (records.py's _embedded). Each engine takes torch's thread count
    on entry as its number of batch workers and sets it to one meanwhile (runtime.batch_threads), so the
    second is started with the caller's count too, and the count is restored when both are done."""
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
    # window vectors record by record, as a run of records stores them
    saved_kept = kept if saved is None else [(ci, w) for ci, w in enumerate(saved) if len(w.spans)]
    wvec = (np.concatenate([F.normalize(torch.from_numpy(w.values), dim=-1).numpy() for _, w in saved_kept])
            if save_windows and saved_kept else None)
    wspans = spans if saved is None or saved_kept is kept else (
        np.concatenate([w.spans for _, w in saved_kept]).astype(np.int64) if saved_kept else np.zeros((0, 2), np.int64))
    wcontig = np.concatenate([np.full(len(w.spans), ci, np.int64) for ci, w in saved_kept]) if per_file and saved_kept else (
        np.zeros(0, np.int64) if per_file else None)
    for _, p in kept + saved_kept:
        p.values = p.logits = None  # the row's vector is all that is kept
    return EmbeddedRecord(
        name, length, len(spans), skipped, "ok", vec, window_spans=wspans if save_windows else spans,
        window_vectors=wvec, order=order, contigs=contigs, window_contigs=wcontig, checksum=checksum,
    )


def file_checksum(records: Iterable[tuple[str, int]]) -> int:
    """The checksum of an --per-file row: over its records' (id, dna.checksum) in file order, never 0."""
    h = hashlib.blake2b(digest_size=8)
    for rid, c in records:
        h.update(f"{rid}\t{c}\n".encode())
    return int.from_bytes(h.digest(), "little") or 1
