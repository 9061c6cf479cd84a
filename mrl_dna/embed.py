"""The embed pipeline: FASTA records -> windows -> batches -> window vectors -> record vectors -> HDF5.

Data flows one way (DESIGN.md). Windows of consecutive records are packed into batches by a token budget,
so a record may span batches and a batch may hold many records; a record's vector is computed from its own
windows only (pooling per record), and every window's vector is independent of its batch neighbours
(right-padding is masked out inside the encoder), so results do not depend on batch composition.

Glossary: n windows in a batch, L bases per window (padded), r records, d window width, D output width.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrl_dna import console
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.fasta import Record, read_fasta, record_lengths
from mrl_dna.store import EmbeddedRecord, EmbeddingWriter
from mrl_dna.windows import WindowConfig, pad_windows, split_windows

_FLUSH_RECORDS, _FLUSH_SECONDS = 256, 10.0  # write to disk at least this often (what a kill can lose)
# MRL_DNA_FLUSH_RECORDS=N overrides _FLUSH_RECORDS (tests kill runs of many small records between flushes)
DEFAULT_BATCH_TOKENS = 65536  # bases per batch: ~32 windows of 2 kb; big enough to fill 2 cores, small in memory


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

    @property
    def bp_per_s(self) -> float:
        return self.bp / self.seconds if self.seconds > 0 else float("inf")


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu'; 'cuda' / 'cuda:N' (ConfigError when not available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but this torch sees no CUDA GPU; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """'I/N' (1-based, 1 <= I <= N) -> (I, N)."""
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {spec!r} is not I/N (e.g. 3/10 for the 3rd of 10 shards)") from None
    if not (1 <= i <= n):
        raise ConfigError(f"--shard {spec}: shard index {i} must be between 1 and {n}; e.g. --shard 1/{max(n, 1)}")
    return i, n


def shard_records(lengths: Sequence[int], shard: tuple[int, int]) -> range:
    """Record indices of shard I of N: contiguous slices balanced by bases (a record belongs to the shard
    in which its first base falls), so merging shards in order gives the input order back."""
    i, n = shard
    starts = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))[:-1]]) if len(lengths) else np.zeros(0)
    total = int(np.sum(lengths)) if len(lengths) else 0
    bounds = [(total * k) // n for k in range(n + 1)]
    first = int(np.searchsorted(starts, bounds[i - 1], side="left"))
    last = int(np.searchsorted(starts, bounds[i], side="left")) if i < n else len(lengths)
    return range(first, last)


@torch.inference_mode()
def embed_sequences(
    records: Iterable[Record],
    *,
    model,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    device: str | torch.device = "cpu",
    save_windows: bool = False,
    max_n_fraction: float = 0.5,
    progress=None,
) -> Iterator[EmbeddedRecord]:
    """Embed records in input order; yields one EmbeddedRecord per record (empty and all-N ones included).

    `progress` (optional) gets `advance(bp)` as records finish.
    """
    info = model.info
    cfg = WindowConfig(size=window or info.window, stride=stride or window or info.window_stride, max_n_fraction=max_n_fraction)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev)
    if batch_tokens < cfg.size:
        batch_tokens = cfg.size  # at least one window per batch
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()

    pending: list[_Pending] = []  # records whose windows are not all embedded yet, in input order
    queue: list[tuple[_Pending, int, np.ndarray]] = []  # (record, window index, tokens) waiting for a batch
    longest = 0  # longest window in the queue: a batch costs len(queue) * longest

    def run_batch() -> None:
        nonlocal queue, longest
        if not queue:
            return
        tokens, lengths = (torch.from_numpy(a).to(dev) for a in pad_windows([t for _, _, t in queue]))  # (n, L), (n,)
        with autocast:
            win = model.window_vectors(tokens, lengths).float().cpu()  # (n, d)
        for row, (p, j, _) in enumerate(queue):
            p.win[j] = win[row]
        queue, longest = [], 0

    def flush_done() -> Iterator[EmbeddedRecord]:
        while pending and pending[0].ready:
            p = pending.pop(0)
            yield p.finish(model, dev, save_windows)
            if progress is not None:
                progress.advance(p.length)

    for order, rec in enumerate(records):
        p = _Pending(rec, cfg, order)
        pending.append(p)
        for j, (s, e) in enumerate(p.spans):
            # pack by the padded size: a batch costs n_windows * longest window
            if queue and max(longest, e - s) * (len(queue) + 1) > batch_tokens:
                run_batch()
            queue.append((p, j, rec.tokens[s:e]))
            longest = max(longest, e - s)
        yield from flush_done()
    run_batch()
    yield from flush_done()


class _Pending:
    """A record whose windows are being embedded."""

    def __init__(self, rec: Record, cfg: WindowConfig, order: int) -> None:
        self.id, self.length, self.order = rec.id, len(rec.tokens), order
        w = split_windows(rec.tokens, cfg)
        self.spans, self.n_skipped = w.spans, w.n_skipped
        self.win: list[torch.Tensor | None] = [None] * len(self.spans)

    @property
    def ready(self) -> bool:
        return all(v is not None for v in self.win)

    def finish(self, model, dev: torch.device, save_windows: bool) -> EmbeddedRecord:
        D = model.info.dim
        if not len(self.spans):
            status = "empty" if self.length == 0 else "all_n"
            return EmbeddedRecord(self.id, self.length, 0, self.n_skipped, status, np.zeros(D, np.float32), order=self.order)
        win = torch.stack(self.win).to(dev)  # (k, d)
        lengths = torch.from_numpy(self.spans[:, 1] - self.spans[:, 0]).to(dev)
        segment = torch.zeros(len(win), dtype=torch.long, device=dev)
        vec = model.record_vectors(win, lengths, segment, 1)[0].float().cpu().numpy()  # (D,)
        wvec = model.window_outputs(win).float().cpu().numpy() if save_windows else None  # (k, D)
        return EmbeddedRecord(
            self.id, self.length, len(self.spans), self.n_skipped, "ok", vec,
            window_spans=self.spans.astype(np.int64), window_vectors=wvec, order=self.order,
        )


def embed_fasta(
    inputs: Sequence[str | Path],
    *,
    model,
    output: Path,
    window: int | None = None,
    stride: int | None = None,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
    device: str = "auto",
    dtype: str = "float32",
    save_windows: bool = False,
    shard: tuple[int, int] | None = None,
    resume: bool = True,
    overwrite: bool = False,
    max_n_fraction: float = 0.5,
) -> EmbedSummary:
    """Embed FASTA files into an HDF5 embedding file. Resumable: rerunning the same command on an
    interrupted run continues from the last flushed record (PATH.partial); the file appears at PATH only
    when complete."""
    t0 = time.perf_counter()
    dev = resolve_device(device)
    info = model.info
    win = window or info.window
    st = stride or (window if window else info.window_stride)
    WindowConfig(size=win, stride=st, max_n_fraction=max_n_fraction)  # validate before any work
    flush_records = _flush_records()
    from_stdin = any(str(p) == "-" for p in inputs)
    if shard and from_stdin:
        raise ConfigError("--shard needs files (it reads the input twice to balance shards); stdin '-' cannot be sharded")

    # total bases for the progress bar (and the shard partition): one fast pass over files, none over stdin
    lengths = None if from_stdin else [n for _, n in record_lengths(inputs)]
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
        "matryoshka_dims": list(info.matryoshka_dims),
        "window": win,
        "stride": st,
        "pooling": info.pooling,
        "max_n_fraction": max_n_fraction,
        "shard": f"{shard[0]}/{shard[1]}" if shard else "",
        "inputs": " ".join(str(p) for p in inputs),
        "command": " ".join(sys.argv),
    }
    writer = EmbeddingWriter(output, attrs=attrs, dim=info.dim, dtype=dtype, save_windows=save_windows,
                             resume=resume, overwrite=overwrite)
    n_done = writer.n_done
    if n_done:
        console.info(f"resuming {writer.partial}: {n_done:,} records already embedded")

    def records() -> Iterator[Record]:
        lo = selected.start if selected is not None else 0
        hi = selected.stop if selected is not None else None
        done_ids = writer.done_ids
        for idx, rec in enumerate(read_fasta(inputs)):
            if idx < lo:
                continue
            if hi is not None and idx >= hi:
                break
            k = idx - lo
            if k < n_done:
                if rec.id != done_ids[k]:
                    raise ConfigError(
                        f"{writer.partial} holds record {done_ids[k]!r} where the input has {rec.id!r}: it was made "
                        f"from other input; delete it or write to another output"
                    )
                continue
            yield rec

    first = (selected.start if selected is not None else 0) + n_done
    n = bp = empty = all_n = n_win = skipped = 0
    done_bp = sum(lengths[selected.start + k] for k in range(n_done)) if (lengths is not None and n_done) else 0
    batch: list[EmbeddedRecord] = []
    last_flush = time.perf_counter()
    try:
        with writer, console.progress("embedding", total_bp) as bar:
            bar.advance(done_bp)
            for er in embed_sequences(records(), model=model, window=win, stride=st, batch_tokens=batch_tokens,
                                      device=dev, save_windows=save_windows, max_n_fraction=max_n_fraction, progress=bar):
                er = dataclasses.replace(er, order=first + er.order)  # global input index, shard-independent (merge)
                n += 1
                bp += er.length
                n_win += er.n_windows
                skipped += er.n_skipped
                if er.status != "ok":
                    empty += er.status == "empty"
                    all_n += er.status == "all_n"
                    what = "is empty" if er.status == "empty" else f"is all N ({er.length:,} bp)"
                    console.warn(f"record {er.id!r} {what}: stored with status {er.status} and a zero vector")
                batch.append(er)
                if len(batch) >= flush_records or time.perf_counter() - last_flush > _FLUSH_SECONDS:
                    writer.append(batch)
                    batch, last_flush = [], time.perf_counter()
            if from_stdin and not n_done and not bp:  # stdin held no bases (files were checked before any work)
                raise InputError(f"no sequence in {_names(inputs)}: every record is empty (header only); nothing to embed")
            writer.append(batch)
            writer.finish()
    except InputError:
        if not writer.n_done:  # a user error before anything was kept: leave no .partial behind
            writer.partial.unlink(missing_ok=True)
        raise
    return EmbedSummary(records=n + n_done, resumed=n_done, bp=bp, empty=empty, all_n=all_n, windows=n_win, skipped_windows=skipped,
                        seconds=time.perf_counter() - t0, device=str(dev), output=Path(output))


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
