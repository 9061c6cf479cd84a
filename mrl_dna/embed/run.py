"""The embed pipeline: FASTA records -> windows -> batches -> window embeddings -> record vectors -> HDF5.

Data flows one way (DESIGN.md). Windows of consecutive records are packed into batches, so a record may
span batches and a batch may hold many records; a record's vector is computed from its own windows only
(pooling per record). The batching engine is pipeline.py: fixed-shape batches, so that a window's embedding
is the same bit for bit whatever its neighbours (a shard, a torchrun rank or a resumed run gets exactly the
vectors of one run; tests/test_embed_bitwise.py), the head inside the batch, the GPU's batches in flight,
the prefetch thread and the stage times of `embed --profile`.

Glossary: n windows in a batch, L bases per window (padded), r records, d window width, D output width.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrl_dna import console, dna
from mrl_dna.device import resolve_device
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.fasta import Record, is_stream, read_fasta, record_lengths, stream_name
from mrl_dna.inputs.regions import RegionSource
from mrl_dna.inputs.genomes import genome_name
from mrl_dna.embed.pipeline import (DEFAULT_BATCH_TOKENS, Pending, StageTimes, bucket_length, default_batch_tokens,
                              embedded_windows, numerics)
from mrl_dna.store.shards import shard_records
from mrl_dna.store import INPUT_KEYS, EmbeddedRecord, EmbeddingWriter, check_output_not_input
from mrl_dna.store.format import same_attr
from mrl_dna.windows import WindowConfig

__all__ = ["DEFAULT_BATCH_TOKENS", "EmbedSummary", "ShortRecords", "bucket_length", "embed_fasta", "embed_files",
           "embed_sequences"]

_FLUSH_RECORDS, _FLUSH_SECONDS = 256, 10.0  # write to disk at least this often (what a kill can lose)
# MRL_DNA_FLUSH_RECORDS=N overrides _FLUSH_RECORDS (tests kill runs of many small records between flushes)
# Below these lengths a vector carries almost no signal and a warning says so. 16 bp is one token of the
# default model's stem (it sees one patch per 16 bp); a window of 64 bp is 4 such tokens, a 1/32 of the
# 2,048 bp windows the default model was trained on.
SHORT_RECORD_BP = 16
SHORT_WINDOW_BP = 64
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


@dataclass(frozen=True)
class EmbedSummary:
    records: int  # all records in the output, including those kept from an interrupted run
    bp: int
    empty: int
    all_n: int
    windows: int
    skipped_windows: int
    seconds: float
    device: str
    output: Path | None
    resumed: int = 0  # records kept from an interrupted run (not embedded again: not in bp, windows, seconds)
    contigs: int = 0  # --per-file: records read from the files embedded in this run (records then counts files)
    stages: StageTimes | None = None  # seconds per pipeline stage (embed --profile)

    @property
    def bp_per_s(self) -> float:
        return self.bp / self.seconds if self.seconds > 0 else float("inf")


def _window_config(model, window: int | None, stride: int | None, max_n_fraction: float) -> WindowConfig:
    info = model.info
    return WindowConfig(size=window or info.window, stride=stride or window or info.window_stride,
                        max_n_fraction=max_n_fraction)


def _device(device: str | torch.device) -> torch.device:
    return device if isinstance(device, torch.device) else resolve_device(device)


@torch.inference_mode()
def embed_sequences(
    records: Iterable[Record],
    *,
    model,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int | None = None,
    device: str | torch.device = "cpu",
    save_windows: bool = False,
    max_n_fraction: float = WindowConfig.max_n_fraction,
    progress=None,
    prefetch: bool | None = None,
    times: StageTimes | None = None,
    first_order: int = 0,
    compile: bool = False,
) -> Iterator[EmbeddedRecord]:
    """Embed records in input order; yields one EmbeddedRecord per record (empty and all-N ones included),
    whose `order` counts from first_order.

    Batches have fixed shapes (pipeline.py), so every vector is the same bit for bit whatever the other
    records are, for a given batch_tokens (None: 65,536 on a CPU, 2^20 on a GPU). `progress` (optional) gets
    `advance(bp)` as windows finish (a record's bases add up to its length when it is yielded). prefetch:
    read records in a worker thread (None: on a GPU only); times: adds each stage's seconds to it; compile:
    torch.compile each batch's computation (pipeline.compiled_forward; the last bits of vectors move).
    """
    dev = _device(device)
    times = times if times is not None else StageTimes()
    for p in embedded_windows(((rec, None) for rec in records), model=model,
                              cfg=_window_config(model, window, stride, max_n_fraction),
                              batch_tokens=batch_tokens or default_batch_tokens(dev), dev=dev, progress=progress,
                              times=times, prefetch=prefetch, compile=compile):
        with times("pool"):
            row = _row(model, p.id, [p], save_windows, first_order + p.order)
        yield row


@torch.inference_mode()
def embed_files(
    files: Sequence[tuple[str, Iterable[Record]]],
    *,
    model,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int | None = None,
    device: str | torch.device = "cpu",
    save_windows: bool = False,
    max_n_fraction: float = WindowConfig.max_n_fraction,
    progress=None,
    prefetch: bool | None = None,
    times: StageTimes | None = None,
    first_order: int = 0,
    compile: bool = False,
) -> Iterator[EmbeddedRecord]:
    """`embed --per-file`: one EmbeddedRecord per (name, records) item of `files`, in order (`order` counts
    from first_order). Its vector is the
    weighted centroid of the embeddings of ALL the file's windows (head then pool over them, exactly what a
    record's vector is over its own windows: a file of one record gets that record's vector bit for bit);
    length, windows and skipped windows are the file's totals; `contigs` lists its records and, with
    save_windows, each window says which of them it lies on. A file without records or bases is a row with
    status empty (all-N: all_n). Batching is the same as embed_sequences', so the same bits whatever the
    other files are. Memory: the window embeddings (D floats each) of one file at a time.
    """
    dev = _device(device)
    times = times if times is not None else StageTimes()
    items = ((rec, fi) for fi, (_, recs) in enumerate(files) for rec in recs)
    group: list[Pending] = []  # the records of file `current`
    current = 0
    for p in embedded_windows(items, model=model, cfg=_window_config(model, window, stride, max_n_fraction),
                              batch_tokens=batch_tokens or default_batch_tokens(dev), dev=dev, progress=progress,
                              times=times, prefetch=prefetch, compile=compile):
        while p.key > current:  # records come in file order: the files before p's are complete
            with times("pool"):
                row = _row(model, files[current][0], group, save_windows, first_order + current, per_file=True)
            yield row
            group, current = [], current + 1
        group.append(p)
    for fi in range(current, len(files)):
        with times("pool"):
            row = _row(model, files[fi][0], group, save_windows, first_order + fi, per_file=True)
        yield row
        group = []


def _row(model, name: str, group: Sequence[Pending], save_windows: bool, order: int,
         per_file: bool = False) -> EmbeddedRecord:
    """One stored row from the embedded windows of one record (group of one) or of one file's records: the
    weighted centroid of all their window embeddings (model.pool_embeddings, on the CPU)."""
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
    wvec = (np.concatenate([F.normalize(torch.from_numpy(p.values), dim=-1).numpy() for _, p in kept])
            if save_windows else None)
    wcontig = np.concatenate([np.full(len(p.spans), ci, np.int64) for ci, p in kept]) if per_file else None
    for _, p in kept:
        p.values = p.logits = None  # the row's vector is all that is kept
    return EmbeddedRecord(
        name, length, len(spans), skipped, "ok", vec, window_spans=spans, window_vectors=wvec, order=order,
        contigs=contigs, window_contigs=wcontig, checksum=checksum,
    )


def file_checksum(records: Iterable[tuple[str, int]]) -> int:
    """The checksum of an --per-file row: over its records' (id, dna.checksum) in file order, never 0."""
    h = hashlib.blake2b(digest_size=8)
    for rid, c in records:
        h.update(f"{rid}\t{c}\n".encode())
    return int.from_bytes(h.digest(), "little") or 1


def embed_fasta(
    inputs: Sequence[str | Path],
    *,
    model,
    output: Path,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int | None = None,
    device: str = "auto",
    dtype: str = "float32",
    save_windows: bool = False,
    shard: tuple[int, int] | None = None,
    resume: bool = True,
    overwrite: bool = False,
    max_n_fraction: float = WindowConfig.max_n_fraction,
    per_file: bool = False,
    regions: str | Path | None = None,
    prefetch: bool | None = None,
    compile: bool = False,
) -> EmbedSummary:
    """Embed FASTA files into an HDF5 embedding file. Resumable: rerunning the same command on an
    interrupted run continues from the last flushed record (PATH.partial); the file appears at PATH only
    when complete.

    per_file: one row per input FASTA instead of one per record (`embed --per-file`, see embed_files): named
    after the file (genomes.genome_name), record ids may repeat across files; shards, resume and merge then
    count files.

    regions: a BED file; each interval of the one input FASTA (plain or bgzip, read through its index) is a
    record, named by the BED name column, else chrom:start-end (regions.py).

    batch_tokens: bases per batch (None: by device, pipeline.default_batch_tokens); prefetch: read records in
    a worker thread (None: on a GPU only); compile: torch.compile the model's batches (pipeline.compiled_forward).
    The summary's `stages` holds the seconds of each pipeline stage."""
    t0 = time.perf_counter()
    times = StageTimes()
    dev = resolve_device(device)
    info = model.info
    win = window or info.window
    st = stride or (window if window else info.window_stride)
    WindowConfig(size=win, stride=st, max_n_fraction=max_n_fraction)  # validate before any work
    flush_records = _flush_records()
    # stdin and named pipes (a shell's <(...) too) can be read only once: no first pass over them (fasta.is_stream)
    streams = [p for p in inputs if is_stream(p)]
    _check_streams_once(streams)
    if streams and shard:
        raise ConfigError(f"--shard reads its input twice (to balance shards by bases), and {stream_name(streams[0])} "
                          "can be read only once; save it to a file and pass that")
    if streams and per_file:
        raise ConfigError(f"--per-file reads each input twice and names each row after its file, and "
                          f"{stream_name(streams[0])} can be read only once; save it to a file (e.g. genome.fa) and "
                          "pass that")
    if regions is not None and (len(inputs) != 1 or streams or per_file):
        raise ConfigError("--regions cuts intervals from ONE indexed FASTA file (not stdin or a pipe, not --per-file); "
                          "give one FASTA and the BED file")
    check_output_not_input(output, [*inputs, *([regions] if regions is not None else [])], what="input FASTA")
    if win < SHORT_WINDOW_BP:
        console.warn(f"--window {win} bp is very short: a window of fewer than {SHORT_WINDOW_BP} bp holds too few bases "
                     f"for a meaningful vector (this model was trained on {info.window:,} bp windows); "
                     f"drop --window to use {info.window:,}")

    # total bases for the progress bar (and the shard partition): one fast pass over files, none over a stream
    with times("scan"):
        source = RegionSource(inputs[0], regions) if regions is not None else None
        if source is not None:  # the units are BED intervals, checked against the FASTA's index
            listed = source.listed
        elif per_file:  # the units are files: (name, bp) per file, and each file's (id, bp) per record
            per_record = [record_lengths([p]) for p in inputs]  # ids may repeat across files, never inside one
            listed = [(genome_name(p), sum(n for _, n in recs)) for p, recs in zip(inputs, per_record)]
            _check_file_names(inputs, [name for name, _ in listed])
        else:
            listed = None if streams else record_lengths(inputs)  # (id, bp) per record
    lengths = None if listed is None else [n for _, n in listed]
    selected = range(len(lengths)) if lengths is not None else None
    if shard:
        selected = shard_records(lengths, shard)
    total_bp = sum(lengths[i] for i in selected) if lengths is not None else None
    if lengths is not None and lengths and not sum(lengths):
        raise InputError(f"no sequence in {_names(inputs)}: every record is empty (header only); nothing to embed")

    attrs = {
        "model_name": info.name,
        "model_hash": info.weights_hash,
        "model_kind": info.kind,
        "model_dir": str(getattr(model, "directory", "") or ""),  # where search finds the model for FASTA queries
        "matryoshka_dims": list(info.matryoshka_dims),
        "window": win,
        "stride": st,
        "pooling": info.pooling,
        "max_n_fraction": max_n_fraction,
        "numerics": numerics(dev, batch_tokens, win, compile),  # device, batch shape: resume and merge never mix two
        "shard": f"{shard[0]}/{shard[1]}" if shard else "",
        "inputs": " ".join(str(p) for p in inputs),
        "command": " ".join(sys.argv),
        # what the whole (unsharded) input is: merge checks that shards are parts of one run, resume that the
        # input is the one the interrupted run read (absent for stdin, which is read once)
        **(input_identity(listed, per_record if per_file else None) if listed is not None else {}),
    }
    writer = EmbeddingWriter(output, attrs=attrs, dim=info.dim, dtype=dtype, save_windows=save_windows,
                             per_file=per_file, resume=resume, overwrite=overwrite)
    n_done = writer.n_done
    unit = "files" if per_file else "records"
    if n_done:
        try:
            _check_resumed_input(writer, attrs, listed, selected, unit)
        except BaseException:
            writer.close()  # the .partial stays as it was: rerunning on the original input resumes it
            raise
        console.info(f"resuming {writer.partial}: {console.count(n_done, unit[:-1])} already embedded")
    done_lengths, done_sums = writer.done_column("lengths"), writer.done_column("checksum")

    def records() -> Iterator[Record]:
        lo = selected.start if selected is not None else 0
        hi = selected.stop if selected is not None else None
        done_ids = writer.done_ids
        idx = -1
        for idx, rec in enumerate(source.records() if source is not None else read_fasta(inputs)):
            if listed is not None and (idx >= len(listed) or listed[idx] != (rec.id, len(rec))):
                what = f"{listed[idx][0]!r} ({listed[idx][1]:,} bp)" if idx < len(listed) else "no such record"
                _changed(inputs, f"record {idx + 1} is {rec.id!r} ({len(rec):,} bp) where the first pass saw {what}")
            if idx < lo:
                continue
            if hi is not None and idx >= hi:
                break
            k = idx - lo
            if k < n_done:  # embedded by the interrupted run: the same record, or refuse (never a stale vector)
                if (rec.id, len(rec)) != (done_ids[k], int(done_lengths[k])):
                    _input_changed(writer, f"record {k + 1} is {rec.id!r} ({len(rec):,} bp) where it holds "
                                           f"{done_ids[k]!r} ({int(done_lengths[k]):,} bp)")
                if done_sums is not None and done_sums[k] and dna.checksum(rec.tokens) != done_sums[k]:
                    _input_changed(writer, f"record {k + 1} {rec.id!r} ({len(rec):,} bp) has other bases than the "
                                           "one it holds")
                continue
            yield rec
        if listed is not None and not shard and len(listed) > idx + 1:
            _changed(inputs, f"it ends after record {idx + 1}, where the first pass saw {len(listed):,} records")

    def files() -> list[tuple[str, Iterator[Record]]]:
        """--per-file: (name, records) of the selected files not yet in the output, records checked against
        the first pass."""
        todo = list(selected)[n_done:]
        for k, fi in enumerate(list(selected)[:n_done] if done_sums is not None else ()):  # names, bp: checked
            if done_sums[k] and file_checksum((r.id, dna.checksum(r.tokens)) for r in _checked(inputs[fi], per_record[fi])) != done_sums[k]:
                _input_changed(writer, f"file {k + 1} {listed[fi][0]!r} has other records or bases than the one it "
                                       "holds")
        return [(listed[fi][0], _checked(inputs[fi], per_record[fi])) for fi in todo]

    first = (selected.start if selected is not None else 0) + n_done
    n = bp = empty = all_n = n_win = skipped = contigs = 0
    short = ShortRecords(unit[:-1], unit, "stored with status ok")
    done_bp = sum(lengths[selected.start + k] for k in range(n_done)) if (lengths is not None and n_done) else 0
    batch: list[EmbeddedRecord] = []
    warnings: list[str] = []
    last_flush = time.perf_counter()
    with writer, console.progress("embedding", total_bp) as bar:
        common = dict(model=model, window=win, stride=st, batch_tokens=batch_tokens, device=dev,
                      save_windows=save_windows, max_n_fraction=max_n_fraction, progress=bar, prefetch=prefetch,
                      times=times, first_order=first, compile=compile)
        try:
            bar.advance(done_bp)
            embedded = (embed_files(files(), **common) if per_file else embed_sequences(records(), **common))
            for er in embedded:  # er.order: the global input index, shard-independent (merge)
                n += 1
                bp += er.length
                n_win += er.n_windows
                skipped += er.n_skipped
                contigs += len(er.contigs)
                if er.status != "ok":
                    empty += er.status == "empty"
                    all_n += er.status == "all_n"
                    what = "is empty" if er.status == "empty" else f"is all N ({er.length:,} bp)"
                    warnings.append(f"{unit[:-1]} {er.id!r} {what}: stored with status {er.status} and a zero vector")
                if bp or n_done:  # held back while no base was seen: input with none is one error, not a list
                    for w in warnings:
                        console.warn(w)
                    warnings.clear()
                if er.status == "ok":
                    short.see(er.id, er.length)
                batch.append(er)
                if len(batch) >= flush_records or time.perf_counter() - last_flush > _FLUSH_SECONDS:
                    with times("write"):
                        writer.append(batch)
                    batch, last_flush = [], time.perf_counter()
            if streams and not n_done and not bp:  # a stream held no bases (files were checked before any work)
                raise InputError(f"no sequence in {_names(inputs)}: every record is empty (header only); nothing to embed")
        except InputError:
            if not writer.n_done:  # a user error before anything was kept: leave no .partial behind
                writer.discard()
            raise
        short.finish()
        with times("write"):
            writer.append(batch)
            writer.finish()
    return EmbedSummary(records=n + n_done, resumed=n_done, bp=bp, empty=empty, all_n=all_n, windows=n_win, skipped_windows=skipped,
                        seconds=time.perf_counter() - t0, device=str(dev), output=Path(output),
                        contigs=contigs if per_file else 0, stages=times)


def input_identity(listed: Sequence[tuple[str, int]],
                   per_record: Sequence[Sequence[tuple[str, int]]] | None = None) -> dict[str, int | str]:
    """The store's INPUT_KEYS for an input whose first pass listed `listed` (id, bp) per unit (a record, a BED
    interval, or with per_record a file, whose records are listed there): the count of units, their bases and
    a sha256 over the listing, so that two runs over the same records in the same order (from any path, plain
    or gzip) agree and any other input differs in ids, lengths or order. Sequences are not read for this (a
    .fai gives the listing without reading them): a same-length edit is caught by resume's per-record
    checksums, not here."""
    h = hashlib.sha256()
    for i, (name, bp) in enumerate(listed):
        h.update(f"{name}\t{bp}\n".encode())
        for rid, rbp in (per_record[i] if per_record is not None else ()):
            h.update(f"\t{rid}\t{rbp}\n".encode())
    return {"input_records": len(listed), "input_bp": int(sum(bp for _, bp in listed)), "input_digest": h.hexdigest()}


def _checked(path: str | Path, listed: Sequence[tuple[str, int]]) -> Iterator[Record]:
    """The records of one file (--per-file), each checked against the first pass's (id, bp)."""
    idx = -1
    for idx, rec in enumerate(read_fasta([path])):
        if idx >= len(listed) or listed[idx] != (rec.id, len(rec)):
            what = f"{listed[idx][0]!r} ({listed[idx][1]:,} bp)" if idx < len(listed) else "no such record"
            _changed([path], f"record {idx + 1} is {rec.id!r} ({len(rec):,} bp) where the first pass saw {what}")
        yield rec
    if len(listed) > idx + 1:
        _changed([path], f"it ends after record {idx + 1}, where the first pass saw {len(listed):,} records")


def _check_streams_once(streams: Sequence[str | Path]) -> None:
    """The same stdin or pipe given twice: the second would read nothing (stdin: "is empty") or wait forever
    for a writer (a named pipe)."""
    seen = set()
    for p in streams:
        try:
            key = "-" if str(p) == "-" else (os.stat(p).st_dev, os.stat(p).st_ino)
        except OSError:
            continue
        if key in seen:
            what = "stdin '-'" if key == "-" else f"{p} (a pipe)"
            raise ConfigError(f"{what} is given more than once, and it can be read only once; give it once")
        seen.add(key)
def _check_resumed_input(writer: EmbeddingWriter, attrs: dict, listed, selected, unit: str) -> None:
    """Before a resume: the rows the interrupted run wrote must be this input's (names and lengths from the
    first pass), and the input must be the one it read (INPUT_KEYS); InputError naming the first difference
    otherwise. Their bases are compared as the records stream past (records(), files()), against /checksum."""
    old = writer.file_attrs
    if writer.done_column("checksum") is None:
        console.warn(f"{writer.partial} was written by an older mrl-dna without per-record checksums: resuming it "
                     f"checks only the names and lengths of the {writer.n_done:,} {unit} it holds, not their bases")
    if listed is None:  # stdin: records() compares each one as it arrives
        return
    first = selected.start
    done_bp = writer.done_column("lengths")
    for k, rid in enumerate(writer.done_ids):
        now = listed[first + k] if first + k < len(listed) else None
        if now != (rid, int(done_bp[k])):
            have = f"{now[0]!r} ({now[1]:,} bp)" if now is not None else "no such record"
            _input_changed(writer, f"{unit[:-1]} {k + 1} is {have} where it holds {rid!r} ({int(done_bp[k]):,} bp)")
    if all(k in old for k in INPUT_KEYS) and any(not same_attr(old[k], attrs.get(k)) for k in INPUT_KEYS):
        _input_changed(writer, f"it was {int(old['input_records']):,} {unit}, {int(old['input_bp']):,} bp, and is "
                               f"{int(attrs['input_records']):,} {unit}, {int(attrs['input_bp']):,} bp now; the "
                               f"{writer.n_done:,} {unit} already embedded are unchanged, others are not")


def _input_changed(writer: EmbeddingWriter, what: str) -> None:
    """The input is not the one the interrupted run read: refuse to resume (its vectors would be stale)."""
    raise InputError(f"the input changed since {writer.partial} was written ({what}): resuming would keep vectors "
                     "of the old input; rerun with --restart to start over, or restore the input to resume")


def _check_file_names(inputs: Sequence[str | Path], names: Sequence[str]) -> None:
    """--per-file rows are named after their files: two inputs with one name would be two rows with one id."""
    seen: dict[str, str | Path] = {}
    for path, name in zip(inputs, names):
        if name in seen:
            raise InputError(f"--per-file names each row after its file, and {seen[name]} and {path} are both "
                             f"{name!r}; rename one of the files (or link it under another name)")
        seen[name] = path


def _changed(inputs: Sequence[str | Path], what: str) -> None:
    """The records read differ from those the first pass measured (a .fai index or a streaming pass): never
    embed a subset or a mix of two versions of a file."""
    raise InputError(f"{_names(inputs)} changed during the run ({what}): wait until the file is complete (and delete "
                     "a stale .fai beside it), then rerun the same command")


def _names(inputs: Sequence[str | Path]) -> str:
    return ", ".join("stdin" if str(p) == "-" else str(p) for p in inputs)


def _flush_records() -> int:
    """Records per flush: $MRL_DNA_FLUSH_RECORDS when set, else _FLUSH_RECORDS."""
    env = os.environ.get("MRL_DNA_FLUSH_RECORDS", "")
    if not env:
        return _FLUSH_RECORDS
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(f"MRL_DNA_FLUSH_RECORDS={env!r} must be a whole number >= 1 (records per flush); unset it "
                          f"for the default {_FLUSH_RECORDS}")
    return n
