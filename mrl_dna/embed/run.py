"""`embed_fasta`: the resumable run of `mrl-dna embed`, from input files to a complete HDF5 file.

It reads top to bottom as five steps, each a function below:
    _check_run     the options and inputs, before any work (streams read once, --shard, --per-file, --regions,
                   an output that is an input, a very short window)
    FirstPass      what the input holds, measured without embedding it (a .fai, or one fast pass over each file;
                   nothing for a stream): the progress total, this shard's part, the input's identity
    run_attrs      the file's attributes (model, windows, numerics, shard, inputs), computed once; embed_distributed
                   compares a finished shard file's with them
    _open_writer   OUTPUT.partial: new, or resumed when the rows it holds are this very input's
    _write_rows    the loop: rows from embed_sequences / embed_files (records.py) into the writer, with warnings
                   and flushes (every 256 rows or 10 s: what a kill can lose)
The summary counts what this run embedded (`_Tally`) and what it kept from an interrupted one.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from mrl_dna import console, dna
from mrl_dna.device import check_device, resolve_device
from mrl_dna.embed.options import EmbedOptions
from mrl_dna.embed.pooled import NUMERICS as POOLED_NUMERICS
from mrl_dna.embed.pooled import pooled_model
from mrl_dna.embed.stages import StageTimes
from mrl_dna.embed.records import ShortRecords, embed_files, embed_sequences, file_checksum
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.fasta import Record, is_stream, read_fasta, record_lengths, stream_name
from mrl_dna.inputs.genomes import genome_name
from mrl_dna.inputs.regions import RegionSource
from mrl_dna.store import INPUT_KEYS, EmbeddedRecord, EmbeddingWriter, check_output_not_input
from mrl_dna.store.format import same_attr
from mrl_dna.store.shards import format_shard, shard_records
from mrl_dna.windows import WindowConfig

_FLUSH_RECORDS, _FLUSH_SECONDS = 256, 10.0  # write to disk at least this often (what a kill can lose)
# MRL_DNA_FLUSH_RECORDS=N overrides _FLUSH_RECORDS (tests kill runs of many small records between flushes)
# Below this window a vector carries little signal and a warning says so: 4 tokens of the default model's
# 16 bp stem, a 1/32 of the 2,048 bp windows it was trained on.
SHORT_WINDOW_BP = 64


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


def embed_fasta(inputs: Sequence[str | Path], *, model, output: Path,
                options: EmbedOptions = EmbedOptions()) -> EmbedSummary:
    """Embed FASTA files into an HDF5 embedding file. Resumable: rerunning the same command on an
    interrupted run continues from the last flushed record (PATH.partial); the file appears at PATH only
    when complete.

    options.per_file: one row per input FASTA instead of one per record (`embed --per-file`, see embed_files):
    named after the file (inputs.genomes.genome_name), record ids may repeat across files; shards, resume and
    merge then count files. options.regions: a BED file; each interval of the one input FASTA (plain or bgzip,
    read through its index) is a record, named by the BED name column, else chrom:start-end (inputs/regions.py).
    The summary's `stages` holds the seconds of each pipeline stage."""
    t0 = time.perf_counter()
    times = StageTimes()
    dev = _device(model, options)
    cfg = options.window_config(model.info)  # checked before any work
    flush_records = _flush_records()
    streams = _check_run(inputs, output, options, cfg, model.info.window)
    with times("scan"):
        first = FirstPass.of(inputs, options, streams)
    attrs = {**run_attrs(model, options, cfg, dev, inputs), "command": " ".join(sys.argv), **first.identity()}
    writer = _open_writer(output, attrs, model.info.dim, options, first)
    with writer, console.progress("embedding", first.total_bp) as bar:
        kept = _Kept.of(writer)
        try:
            bar.advance(first.bases_of(kept.n))
            if options.per_file:
                rows = embed_files(_files(first, kept, writer), model=model, options=options, progress=bar,
                                   times=times, first_order=first.start + kept.n)
            else:
                rows = embed_sequences(_records(first, kept, writer), model=model, options=options, progress=bar,
                                       times=times, first_order=first.start + kept.n)
            tally = _write_rows(rows, writer, first, kept.n, flush_records, times, stream=bool(streams))
        except InputError:
            if not writer.n_done:  # a user error before anything was kept: leave no .partial behind
                writer.discard()
            raise
        with times("write"):
            writer.finish()
    return EmbedSummary(records=tally.rows + kept.n, resumed=kept.n, bp=tally.bp, empty=tally.empty,
                        all_n=tally.all_n, windows=tally.windows, skipped_windows=tally.skipped,
                        seconds=time.perf_counter() - t0, device=str(dev), output=Path(output),
                        contigs=tally.contigs if options.per_file else 0, stages=times)


# ---- 1. checks before any work ------------------------------------------------------------------------
def _check_run(inputs: Sequence[str | Path], output: Path, options: EmbedOptions, cfg: WindowConfig,
               model_window: int) -> list[str | Path]:
    """Refuse what cannot work before anything is read; returns the inputs that are streams (stdin and named
    pipes, a shell's <(...) too: read once, so never measured first, fasta.is_stream)."""
    streams = [p for p in inputs if is_stream(p)]
    _check_streams_once(streams)
    if streams and options.shard:
        raise ConfigError(f"--shard reads its input twice (to balance shards by bases), and {stream_name(streams[0])} "
                          "can be read only once; save it to a file and pass that")
    if streams and options.per_file:
        raise ConfigError(f"--per-file reads each input twice and names each row after its file, and "
                          f"{stream_name(streams[0])} can be read only once; save it to a file (e.g. genome.fa) and "
                          "pass that")
    if options.regions is not None and (len(inputs) != 1 or streams or options.per_file):
        raise ConfigError("--regions cuts intervals from ONE indexed FASTA file (not stdin or a pipe, not --per-file); "
                          "give one FASTA and the BED file")
    check_output_not_input(output, [*inputs, *([options.regions] if options.regions is not None else [])],
                           what="input FASTA")
    if cfg.size < SHORT_WINDOW_BP:
        console.warn(f"--window {cfg.size} bp is very short: a window of fewer than {SHORT_WINDOW_BP} bp holds too few "
                     f"bases for a meaningful vector (this model was trained on {model_window:,} bp windows); "
                     f"drop --window to use {model_window:,}")
    return streams


# ---- 2. the first pass ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FirstPass:
    """What the input holds, measured before anything is embedded. A unit is what a row stands for: a
    record, a BED interval (--regions), or a file (--per-file)."""

    inputs: Sequence[str | Path]
    unit: str  # "record" or "file"
    source: RegionSource | None = None  # --regions: the intervals of the one FASTA, checked against its index
    listed: list[tuple[str, int]] | None = None  # (name, bp) per unit; None for a stream (read once, not measured)
    per_record: list[list[tuple[str, int]]] | None = None  # --per-file: each file's (id, bp) per record
    selected: range | None = None  # the units of this shard (all of them unsharded); None for a stream
    sharded: bool = False

    @classmethod
    def of(cls, inputs: Sequence[str | Path], options: EmbedOptions, streams: Sequence) -> "FirstPass":
        """One fast pass over the files (a checked .fai instead where there is one), none over a stream;
        InputError when every record is empty."""
        unit = "file" if options.per_file else "record"
        if options.regions is not None:  # the units are BED intervals, checked against the FASTA's index
            source = RegionSource(inputs[0], options.regions)
            first = cls(inputs, unit, source=source, listed=source.listed)
        elif options.per_file:  # the units are files: (name, bp) per file, and each file's (id, bp) per record
            per_record = [record_lengths([p]) for p in inputs]  # ids may repeat across files, never inside one
            listed = [(genome_name(p), sum(n for _, n in recs)) for p, recs in zip(inputs, per_record)]
            _check_file_names(inputs, [name for name, _ in listed])
            first = cls(inputs, unit, listed=listed, per_record=per_record)
        elif not streams:
            first = cls(inputs, unit, listed=record_lengths(inputs))  # (id, bp) per record
        else:
            return cls(inputs, unit)
        lengths = [n for _, n in first.listed]
        if lengths and not sum(lengths):
            raise _no_sequence(inputs)
        selected = shard_records(lengths, options.shard) if options.shard else range(len(lengths))
        return replace(first, selected=selected, sharded=bool(options.shard))

    @property
    def start(self) -> int:
        """The input index of this shard's first unit (0 unsharded): rows' `order` counts from it."""
        return self.selected.start if self.selected is not None else 0

    @property
    def total_bp(self) -> int | None:
        """The bases of this shard's units (the progress bar's total); None for a stream."""
        return sum(self.listed[i][1] for i in self.selected) if self.listed is not None else None

    def bases_of(self, n: int) -> int:
        """The bases of this shard's first n units (those kept from an interrupted run)."""
        return sum(self.listed[self.start + k][1] for k in range(n)) if (self.listed is not None and n) else 0

    def identity(self) -> dict[str, int | str]:
        """INPUT_KEYS of the whole (unsharded) input (input_identity); none for a stream."""
        return input_identity(self.listed, self.per_record) if self.listed is not None else {}

# ---- 3. the file's attributes ---------------------------------------------------------------------------
def run_attrs(model, options: EmbedOptions, cfg: WindowConfig, dev, inputs: Sequence[str | Path]) -> dict:
    """The attributes of the file this run writes that its model and options decide (the writer adds dim,
    dtype, save_windows, per_file, format and housekeeping: store.file_attributes; embed_fasta adds the
    command and the input's identity). Computed once per run; embed_distributed compares a finished shard
    file's with them."""
    info = model.info
    return {
        "model_name": info.name,
        "model_hash": info.weights_hash,
        "model_kind": info.kind,
        "model_dir": str(getattr(model, "directory", "") or ""),  # where search finds the model for FASTA queries
        "matryoshka_dims": list(info.matryoshka_dims),
        "window": cfg.size,
        "stride": cfg.stride,
        "pooling": info.pooling,
        "max_n_fraction": options.max_n_fraction,
        # device, batch shape: resume and merge never mix two
        "numerics": _numerics(model, options, cfg, dev),
        "shard": format_shard(options.shard),
        "inputs": " ".join(str(p) for p in inputs),
        # the stride of the saved windows (homology.saved_windows_stride; files without it saved at `stride`)
        **({"windows_stride": options.saved_windows_config(info).stride} if options.save_windows else {}),
    }


def _device(model, options: EmbedOptions):
    """Where this run embeds: "cpu" on the pooled k-mer path (numpy; --device is checked, not used), else the
    torch device of --device."""
    if pooled_model(model) is not None and not options.save_windows:
        check_device(options.device)
        return "cpu"
    return resolve_device(options.device)


def _numerics(model, options: EmbedOptions, cfg: WindowConfig, dev) -> str:
    """The file's `numerics`: the pooled path's (its bits depend on neither the device nor the batch size), or
    pipeline.numerics for the batched one."""
    if pooled_model(model) is not None and not options.save_windows:
        return POOLED_NUMERICS
    from mrl_dna.embed.pipeline import numerics  # torch: the batched path only

    batched = numerics(dev, options.batch_tokens, cfg.size, options.compile)
    if pooled_model(model) is not None:  # records pooled, the saved windows from the batched path
        return f"{POOLED_NUMERICS}; saved windows: {batched}"
    return batched


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


# ---- 4. the writer: new, or resumed ---------------------------------------------------------------------
def _open_writer(output: Path, attrs: dict, dim: int, options: EmbedOptions, first: FirstPass) -> EmbeddingWriter:
    """OUTPUT.partial for this run: resumed when it holds rows of this input with these options (the writer
    checks the options, _check_resumed_input the input), else new."""
    writer = EmbeddingWriter(output, attrs=attrs, dim=dim, dtype=options.dtype, save_windows=options.save_windows,
                             per_file=options.per_file, resume=options.resume, overwrite=options.overwrite)
    if writer.n_done:
        try:
            _check_resumed_input(writer, attrs, first)
        except BaseException:
            writer.close()  # the .partial stays as it was: rerunning on the original input resumes it
            raise
        console.info(f"resuming {writer.partial}: {console.count(writer.n_done, first.unit)} already embedded")
    return writer


def _check_resumed_input(writer: EmbeddingWriter, attrs: dict, first: FirstPass) -> None:
    """Before a resume: the rows the interrupted run wrote must be this input's (names and lengths from the
    first pass), and the input must be the one it read (INPUT_KEYS); InputError naming the first difference
    otherwise. Their bases are compared as the records stream past (_records, _files), against /checksum."""
    old, unit = writer.file_attrs, first.unit
    if writer.done_column("checksum") is None:
        console.warn(f"{writer.partial} was written by an older mrl-dna without per-record checksums: resuming it "
                     f"checks only the names and lengths of the {console.count(writer.n_done, unit)} it holds, not their bases")
    if first.listed is None:  # stdin: _records compares each one as it arrives
        return
    done_bp = writer.done_column("lengths")
    for k, rid in enumerate(writer.done_ids):
        now = first.listed[first.start + k] if first.start + k < len(first.listed) else None
        if now != (rid, int(done_bp[k])):
            have = f"{now[0]!r} ({now[1]:,} bp)" if now is not None else "no such record"
            _input_changed(writer, f"{unit} {k + 1} is {have} where it holds {rid!r} ({int(done_bp[k]):,} bp)")
    if all(k in old for k in INPUT_KEYS) and any(not same_attr(old[k], attrs.get(k)) for k in INPUT_KEYS):
        _input_changed(writer, f"it was {console.count(int(old['input_records']), unit)}, {int(old['input_bp']):,} bp, "
                               f"and is {console.count(int(attrs['input_records']), unit)}, {int(attrs['input_bp']):,} bp "
                               f"now; the {console.count(writer.n_done, unit)} already embedded are unchanged, others are not")


@dataclass(frozen=True)
class _Kept:
    """The rows an interrupted run left in OUTPUT.partial (n = 0 for a new file): each unit read again must be
    the one it holds, by name, length and /checksum (None: a file without checksums)."""

    n: int
    ids: list[str] = field(default_factory=list)
    lengths: Sequence[int] | None = None
    checksums: Sequence[int] | None = None

    @classmethod
    def of(cls, writer: EmbeddingWriter) -> "_Kept":
        return cls(writer.n_done, writer.done_ids, writer.done_column("lengths"), writer.done_column("checksum"))


def _records(first: FirstPass, kept: _Kept, writer: EmbeddingWriter) -> Iterator[Record]:
    """The records of this shard not yet in the output, each checked against the first pass (the file must not
    change during the run) and, where kept, against the row the interrupted run wrote (never a stale vector)."""
    listed, inputs = first.listed, first.inputs
    lo = first.start
    hi = first.selected.stop if first.selected is not None else None
    idx = -1
    for idx, rec in enumerate(first.source.records() if first.source is not None else read_fasta(inputs)):
        if listed is not None and (idx >= len(listed) or listed[idx] != (rec.id, len(rec))):
            what = f"{listed[idx][0]!r} ({listed[idx][1]:,} bp)" if idx < len(listed) else "no such record"
            _changed(inputs, f"record {idx + 1} is {rec.id!r} ({len(rec):,} bp) where the first pass saw {what}")
        if idx < lo:
            continue
        if hi is not None and idx >= hi:
            break
        k = idx - lo
        if k < kept.n:  # embedded by the interrupted run: the same record, or refuse
            if (rec.id, len(rec)) != (kept.ids[k], int(kept.lengths[k])):
                _input_changed(writer, f"record {k + 1} is {rec.id!r} ({len(rec):,} bp) where it holds "
                                       f"{kept.ids[k]!r} ({int(kept.lengths[k]):,} bp)")
            if kept.checksums is not None and kept.checksums[k] and dna.checksum(rec.tokens) != kept.checksums[k]:
                _input_changed(writer, f"record {k + 1} {rec.id!r} ({len(rec):,} bp) has other bases than the "
                                       "one it holds")
            continue
        yield rec
    if listed is not None and not first.sharded and len(listed) > idx + 1:
        _changed(inputs, f"it ends after record {idx + 1}, where the first pass saw {len(listed):,} records")


def _files(first: FirstPass, kept: _Kept, writer: EmbeddingWriter) -> list[tuple[str, Iterator[Record]]]:
    """--per-file: (name, records) of this shard's files not yet in the output, records checked against the
    first pass; the kept files' bases are checked against their rows first (names and bp were, on resuming)."""
    selected = list(first.selected)
    for k, fi in enumerate(selected[:kept.n] if kept.checksums is not None else ()):
        records = _checked(first.inputs[fi], first.per_record[fi])
        if kept.checksums[k] and file_checksum((r.id, dna.checksum(r.tokens)) for r in records) != kept.checksums[k]:
            _input_changed(writer, f"file {k + 1} {first.listed[fi][0]!r} has other records or bases than the one "
                                   "it holds")
    return [(first.listed[fi][0], _checked(first.inputs[fi], first.per_record[fi])) for fi in selected[kept.n:]]


# ---- 5. the loop ----------------------------------------------------------------------------------------
@dataclass
class _Tally:
    """What the rows embedded in this run add up to (the summary's figures)."""

    rows: int = 0
    bp: int = 0
    empty: int = 0
    all_n: int = 0
    windows: int = 0
    skipped: int = 0
    contigs: int = 0

    def add(self, er: EmbeddedRecord) -> None:
        self.rows += 1
        self.bp += er.length
        self.windows += er.n_windows
        self.skipped += er.n_skipped
        self.contigs += len(er.contigs)
        self.empty += er.status == "empty"
        self.all_n += er.status == "all_n"


def _write_rows(rows: Iterator[EmbeddedRecord], writer: EmbeddingWriter, first: FirstPass, resumed: int,
                flush_records: int, times: StageTimes, *, stream: bool) -> _Tally:
    """Append the rows to the writer (er.order: the global input index, shard-independent, for merge),
    flushing every flush_records rows or _FLUSH_SECONDS; warn about empty, all-N and short ones. A stream
    without a single base is an InputError before its last rows are written (files were checked before)."""
    unit = first.unit
    tally = _Tally()
    short = ShortRecords(unit, unit + "s", "stored with status ok")
    held: list[str] = []  # held back while no base was seen: input with none is one error, not a list
    batch: list[EmbeddedRecord] = []
    last_flush = time.perf_counter()
    for er in rows:
        tally.add(er)
        if er.status != "ok":
            what = "is empty" if er.status == "empty" else f"is all N ({er.length:,} bp)"
            held.append(f"{unit} {er.id!r} {what}: stored with status {er.status} and a zero vector")
        if tally.bp or resumed:
            for w in held:
                console.warn(w)
            held.clear()
        if er.status == "ok":
            short.see(er.id, er.length)
        batch.append(er)
        if len(batch) >= flush_records or time.perf_counter() - last_flush > _FLUSH_SECONDS:
            with times("write"):
                writer.append(batch)
            batch, last_flush = [], time.perf_counter()
    if stream and not resumed and not tally.bp:
        raise _no_sequence(first.inputs)
    short.finish()
    with times("write"):
        writer.append(batch)
    return tally


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


# ---- the refusals ---------------------------------------------------------------------------------------
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


def _no_sequence(inputs: Sequence[str | Path]) -> InputError:
    return InputError(f"no sequence in {_names(inputs)}: every record is empty (header only); nothing to embed")


def _names(inputs: Sequence[str | Path]) -> str:
    return ", ".join("stdin" if str(p) == "-" else str(p) for p in inputs)
