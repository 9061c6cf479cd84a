"""HDF5 embedding store: one file = one embedding set, written resumably, read by Matryoshka prefix.

Layout (format "mrl-dna-embeddings", format_version 1; n records, D = full dim, m saved windows):
    /embeddings          (n, D) float32|float16  rows L2-normalised at full D; zero rows where status != ok
    /ids                 (n,)   utf-8 str        FASTA ids
    /lengths             (n,)   int64            record length, bp
    /n_windows           (n,)   int32            windows embedded (kept) per record
    /n_skipped           (n,)   int32            mostly-N windows skipped per record
    /status              (n,)   int8             0 ok, 1 empty, 2 all-N  (STATUS_CODES)
    /order               (n,)   int64            index of the record in the full (unsharded) input; -1 unknown
    /windows/record      (m,)   int64            row in /embeddings of the record the window belongs to
    /windows/start, end  (m,)   int64            [start, end) in bp, 0-based          (only with save_windows)
    /windows/embeddings  (m, D) float32|float16  per-window vectors, L2-normalised
Attributes: format, format_version, dim, dtype, matryoshka_dims, model_name, model_hash, model_kind, window,
stride, pooling, shard ("I/N" or ""), save_windows, mrl_dna_version, command, created, complete,
rows_committed, windows_committed (plus whatever else the caller passes in `attrs`).

Chunking (why the prefix read is cheap): /embeddings is chunked (ROWS_PER_CHUNK, c) with c = the gcd of
the Matryoshka dims (8 for 8,16,...,D), so every Matryoshka boundary is a chunk boundary and `[:, :k]`
touches only the first k/c column chunks of each row block. Measured (h5py 3.16 / HDF5 2.0, bytes read
through a counting file object, fresh open) on 20,000 x 128 float32 rows, an 11.9 MB file: `[:, :8]` reads
0.69 MB, `[:, :16]` 1.34 MB, `[:, :32]` 2.66 MB, `[:, :128]` 10.5 MB; tests/test_store.py
(test_prefix_read_touches_only_prefix_chunks) keeps this true. Considered and rejected: one dataset per column
group (same I/O, but every reader would have to reassemble a full row and /embeddings would stop being one
(n, D) array); chunks of 1 column (prefix reads just as cheap, but 8x more chunks and B-tree entries).
512 rows per chunk keeps a chunk at 16 KiB (float32, c=8): small files stay small (D=128: 256 KiB
minimum), and a 1M-record file has ~31k chunks.

Crash safety: a writer writes PATH.partial (attr complete=False); each append writes the rows, flushes,
then records `rows_committed` and flushes again, so a file killed at any moment holds at least the rows
it claims. Resume trusts only `rows_committed` and truncates whatever lies beyond. finish() sets
complete=True, flushes, closes and renames atomically (os.replace) to PATH, so PATH is never half-written.
Checked by a stress loop (13 runs of 3,000 records with windows, float32 and float16, each SIGKILLed at
random moments 18-173 times and resumed): every final file was bitwise identical to an uninterrupted one.
The loop found one trap, now avoided: rewriting a string attribute after creation (global heap) and being
killed mid-flush left that attribute unreadable; after creation only fixed-size attributes are rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import gzip
import math
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, reduce
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrl_dna import __version__
from mrl_dna.errors import ConfigError, DiskFullError, StoreError, disk_full_reason
from mrl_dna.shards import format_shard, parse_shard

FORMAT = "mrl-dna-embeddings"
FORMAT_VERSION = 1
STATUS_CODES = {"ok": 0, "empty": 1, "all_n": 2}
STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}
ROWS_PER_CHUNK = 512  # 16 KiB chunks at float32 x 8 columns; see module docstring
DTYPES = ("float32", "float16")
# Options that must agree between a partial file and the run that resumes it (and between merged shards).
# (max_n_fraction changes which windows are kept, hence the vectors; absent on both sides compares equal.)
RESUME_KEYS = ("model_hash", "window", "stride", "dim", "dtype", "matryoshka_dims", "pooling", "max_n_fraction",
               "shard", "save_windows")
MERGE_KEYS = ("model_hash", "window", "stride", "dim", "dtype", "matryoshka_dims", "pooling", "max_n_fraction",
              "save_windows")
# Attributes the writer owns; a merge does not copy them from its inputs.
_HOUSEKEEPING = ("format", "format_version", "created", "complete", "rows_committed", "windows_committed",
                 "mrl_dna_version", "command", "shard", "merged_from")
# A writer refuses to start (or resume) with less free space than this beside its output: on a full disk the
# first flush would fail anyway, and a resume that fails half-way through its own housekeeping could damage
# the rows that the interrupted run saved.
MIN_FREE_BYTES = 2**20


@dataclass(frozen=True, eq=False)
class EmbeddedRecord:
    """One record's embedding as produced by the embed pipeline and stored as one row."""

    id: str
    length: int  # bp
    n_windows: int  # windows embedded (kept)
    n_skipped: int  # mostly-N windows skipped
    status: str  # 'ok' | 'empty' | 'all_n'; non-ok records get a zero row
    vector: np.ndarray  # (D,) float32, L2-normalised when status == 'ok'
    window_spans: np.ndarray | None = None  # (k, 2) int64 [start, end) of kept windows
    window_vectors: np.ndarray | None = None  # (k, D) float32, L2-normalised (only with save_windows)
    order: int = -1  # index of the record in the full input (shard-independent); -1 = unknown


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise each row in float32; zero rows stay zero (no NaN). (r, k) -> (r, k) float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)  # (r, 1)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def chunk_columns(matryoshka_dims: Sequence[int], dim: int) -> int:
    """Column width of a chunk: the gcd of the Matryoshka dims and D, so each prefix ends on a chunk edge.
    Dims with a tiny gcd (e.g. 8, 100, 129) fall back to the smallest dim: a prefix then over-reads at most
    one column chunk per row block."""
    g = reduce(math.gcd, [*matryoshka_dims, dim])
    return g if g >= 4 else max(1, min([*matryoshka_dims, dim]))


# ----------------------------------------------------------------------------------------------- writer


class EmbeddingWriter:
    """Append records to PATH.partial; finish() marks it complete and renames it to PATH.

    attrs: model and run attributes (model_name, model_hash, model_kind, matryoshka_dims, window, stride,
    pooling, shard, command, ...). resume=True continues an existing PATH.partial written with the same
    RESUME_KEYS (n_done tells how many records it already holds); overwrite=True replaces an existing
    complete PATH (the CLI's --force). Use as a context manager: leaving the block without finish() (an
    exception, a kill) leaves a resumable PATH.partial, never a PATH.

    One writer per output at a time: the writer holds an exclusive lock (PATH.lock, see OutputLock) from
    before it looks at PATH or PATH.partial until it finishes or closes, so a second run on the same output
    stops with a StoreError instead of truncating the first run's PATH.partial. A full disk is a DiskFullError
    that names the disk and says that rerunning resumes; the rows flushed before it stay resumable.
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any], dim: int, dtype: str = "float32",
                 save_windows: bool = False, resume: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not supported; pick one of {', '.join(DTYPES)}")
        if dim < 1:
            raise ConfigError(f"embedding dim {dim} must be >= 1")
        dims = [int(d) for d in attrs.get("matryoshka_dims", (dim,))]
        if not dims or any(d < 1 or d > dim for d in dims):
            raise ConfigError(f"matryoshka_dims {dims} must lie in 1..{dim} (the embedding dim)")
        self.dim, self.dtype, self.save_windows = int(dim), dtype, bool(save_windows)
        self.attrs = {
            **{k: _attr_value(v) for k, v in attrs.items()},
            "format": FORMAT, "format_version": FORMAT_VERSION, "dim": self.dim, "dtype": dtype,
            "matryoshka_dims": np.asarray(dims, dtype=np.int64), "save_windows": self.save_windows,
            "shard": format_shard(attrs.get("shard")),
            "command": _attr_value(attrs.get("command", " ".join(sys.argv))),
            "mrl_dna_version": __version__,
        }
        self._finished = False
        self._disk_full = False  # a write failed for want of space (see _close)
        self.resume = resume
        self.n_done = self.windows_done = 0
        self._f: h5py.File | None = None
        _check_output_dir(self.path)
        self._lock = OutputLock(self.path)  # before anything reads or writes PATH or PATH.partial
        try:
            check_existing_output(self.path, overwrite=overwrite)
            self._check_free_space()
            if resume and self.partial.exists():
                self._f = self._open_resume()
            if self._f is None:
                with self._disk_errors():
                    self._f = self._create()
            self.n_done = int(self._f.attrs["rows_committed"])
            self.windows_done = int(self._f.attrs["windows_committed"])
        except BaseException:
            self._close(quietly=True)
            raise

    # --- opening

    def _create(self) -> h5py.File:
        try:
            f = h5py.File(self.partial, "w", rdcc_nbytes=16 * 2**20, rdcc_nslots=10007)
        except OSError as e:
            if disk_full_reason(e):
                raise
            raise StoreError(f"cannot create {self.partial}: {e}; check that its directory is writable") from None
        self._f = f  # held from here, so that a failure below (a full disk) finds it in _close
        for k, v in self.attrs.items():
            f.attrs[k] = v
        f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        f.attrs["complete"] = False
        f.attrs["rows_committed"] = 0
        f.attrs["windows_committed"] = 0
        np_dtype = np.dtype(self.dtype)
        cols = chunk_columns(self.attrs["matryoshka_dims"], self.dim)
        rows = (ROWS_PER_CHUNK,)
        f.create_dataset("embeddings", (0, self.dim), np_dtype, maxshape=(None, self.dim), chunks=(ROWS_PER_CHUNK, cols))
        f.create_dataset("ids", (0,), h5py.string_dtype("utf-8"), maxshape=(None,), chunks=rows)
        f.create_dataset("lengths", (0,), np.int64, maxshape=(None,), chunks=rows)
        f.create_dataset("n_windows", (0,), np.int32, maxshape=(None,), chunks=rows)
        f.create_dataset("n_skipped", (0,), np.int32, maxshape=(None,), chunks=rows)
        f.create_dataset("status", (0,), np.int8, maxshape=(None,), chunks=rows)
        f.create_dataset("order", (0,), np.int64, maxshape=(None,), chunks=rows)
        if self.save_windows:
            g = f.create_group("windows")
            for name in ("record", "start", "end"):
                g.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=rows)
            g.create_dataset("embeddings", (0, self.dim), np_dtype, maxshape=(None, self.dim), chunks=(ROWS_PER_CHUNK, cols))
        f.flush()
        return f

    def _open_resume(self) -> h5py.File | None:
        """Open PATH.partial for appending; None (after a warning) when it is unreadable and must be redone."""
        from mrl_dna.console import warn

        f = None
        try:
            f = h5py.File(self.partial, "r+", rdcc_nbytes=16 * 2**20, rdcc_nslots=10007)
            old = {k: f.attrs[k] for k in f.attrs.keys()}
            if old.get("format") != FORMAT or "rows_committed" not in old or "embeddings" not in f:
                raise OSError("not a partial mrl-dna embedding file")
            for key in RESUME_KEYS:
                if not _same(old.get(key), self.attrs.get(key)):
                    f.close()
                    raise StoreError(
                        f"{self.partial} was written with {key}={_show(old.get(key))} but this run has "
                        f"{key}={_show(self.attrs.get(key))}; delete {self.partial} or rerun with the same options (embed --restart starts over)"
                    )
            n, m = int(old["rows_committed"]), int(old["windows_committed"])
            if "ids" not in f and "ids_rebuilt" in f:  # a resume stopped inside _rebuild_ids: finish its move
                f.move("ids_rebuilt", "ids")
            for name in ("embeddings", "ids", "lengths", "n_windows", "n_skipped", "status", "order"):
                f[name].resize(n, axis=0)  # drop rows written after the last committed flush
            _rebuild_ids(f, n)
            if self.save_windows:
                for name in ("record", "start", "end", "embeddings"):
                    f["windows"][name].resize(m, axis=0)
            # A kill between finish()'s flush and its rename leaves complete=True. Only fixed-size attributes
            # are rewritten after creation: rewriting a string attribute (global heap) and being killed
            # mid-flush was seen to leave an unreadable attribute.
            f.attrs["complete"] = False
            f.flush()
            return f
        except StoreError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            if disk_full_reason(e):  # never start over (truncate) for want of space: the rows are still there
                self._f, self._disk_full = f, True  # left open, see _close
                raise DiskFullError(self._disk_full_message(disk_full_reason(e))) from None
            warn(f"cannot resume from {self.partial} ({e}); starting over")
            if f is not None:
                try:
                    f.close()
                except Exception:
                    pass
            return None

    # --- writing

    @cached_property
    def done_ids(self) -> list[str]:
        """Ids of the n_done records already in the file (so the caller can check it resumes the same input)."""
        return list(self._f["ids"].asstr()[: self.n_done]) if self.n_done else []

    def append(self, recs: Sequence[EmbeddedRecord]) -> None:
        """Write a batch of records (rows n_done..n_done+len-1) and flush. Non-ok records get zero rows."""
        if not recs:
            return
        D = self.dim
        vectors = np.zeros((len(recs), D), dtype=np.float32)  # (r, D)
        status = np.empty(len(recs), dtype=np.int8)
        spans, wvecs, wrec = [], [], []
        for i, r in enumerate(recs):
            if r.status not in STATUS_CODES:
                raise ValueError(f"record {r.id!r}: status {r.status!r} is not one of {list(STATUS_CODES)}")
            status[i] = STATUS_CODES[r.status]
            if r.status == "ok":
                v = np.asarray(r.vector, dtype=np.float32)
                if v.shape != (D,) or not np.all(np.isfinite(v)):
                    raise ValueError(f"record {r.id!r}: vector of shape {v.shape} must be ({D},) and finite")
                vectors[i] = v
            if self.save_windows and r.status == "ok" and r.window_spans is not None and len(r.window_spans):
                s = np.asarray(r.window_spans, dtype=np.int64).reshape(-1, 2)  # (k, 2)
                if r.window_vectors is None or np.shape(r.window_vectors) != (len(s), D):
                    raise ValueError(f"record {r.id!r}: save_windows needs window_vectors of shape ({len(s)}, {D})")
                spans.append(s)
                wvecs.append(np.asarray(r.window_vectors, dtype=np.float32))
                wrec.append(np.full(len(s), self.n_done + i, dtype=np.int64))
        windows = None
        if self.save_windows:
            spans_a = np.concatenate(spans) if spans else np.zeros((0, 2), np.int64)  # (w, 2)
            windows = (
                np.concatenate(wrec) if wrec else np.zeros(0, np.int64),
                spans_a[:, 0], spans_a[:, 1],
                np.concatenate(wvecs) if wvecs else np.zeros((0, D), np.float32),
            )
        self._append_arrays(
            ids=[r.id for r in recs],
            lengths=np.array([r.length for r in recs], dtype=np.int64),
            n_windows=np.array([r.n_windows for r in recs], dtype=np.int32),
            n_skipped=np.array([r.n_skipped for r in recs], dtype=np.int32),
            status=status,
            order=np.array([r.order for r in recs], dtype=np.int64),
            vectors=vectors,
            windows=windows,
        )

    def _append_arrays(self, *, ids, lengths, n_windows, n_skipped, status, order, vectors, windows) -> None:
        """Append rows given as arrays (vectors (r, D) in any float dtype; windows = (record, start, end,
        vectors (w, D)) with record already as rows of this file, or None), then commit them."""
        if self._finished:
            raise ValueError("append() after finish()")
        with self._disk_errors():
            self._write_rows(ids=ids, lengths=lengths, n_windows=n_windows, n_skipped=n_skipped, status=status,
                             order=order, vectors=vectors, windows=windows)

    def _write_rows(self, *, ids, lengths, n_windows, n_skipped, status, order, vectors, windows) -> None:
        f, n, r = self._f, self.n_done, len(ids)
        for name, data in (("embeddings", vectors), ("ids", ids), ("lengths", lengths), ("n_windows", n_windows),
                           ("n_skipped", n_skipped), ("status", status), ("order", order)):
            f[name].resize(n + r, axis=0)
            f[name][n : n + r] = np.asarray(data).astype(f[name].dtype, copy=False) if name != "ids" else list(data)
        m = self.windows_done
        if self.save_windows and windows is not None:
            w = len(windows[0])
            for name, data in zip(("record", "start", "end", "embeddings"), windows):
                ds = f["windows"][name]
                ds.resize(m + w, axis=0)
                if w:
                    ds[m : m + w] = np.asarray(data).astype(ds.dtype, copy=False)
            m += w
        f.flush()  # rows first ...
        f.attrs["rows_committed"] = n + r  # ... then the claim that they are there
        f.attrs["windows_committed"] = m
        f.flush()
        self.n_done, self.windows_done = n + r, m

    def finish(self) -> Path:
        """Mark complete, flush, close and atomically rename PATH.partial -> PATH. Returns PATH."""
        if self._finished:
            return self.path
        with self._disk_errors():
            self._f.attrs["complete"] = True
            self._f.flush()
            self._f.close()
        os.replace(self.partial, self.path)
        self._finished = True
        self._lock.release()
        return self.path

    def discard(self) -> None:
        """Close and delete PATH.partial (a run that failed before it kept anything), still under the lock."""
        if self._f is not None and self._f.id.valid:
            with contextlib.suppress(Exception):
                self._f.close()
        self.partial.unlink(missing_ok=True)

    def close(self) -> None:
        """Close without finishing: PATH.partial stays, resumable."""
        self._close(quietly=False)

    def _close(self, *, quietly: bool) -> None:
        """Close the file and release the lock; quietly: after an error (a full disk makes the close's own
        flush fail too, and that must not hide the error that says why)."""
        try:
            if self._disk_full:
                # HDF5 after a failed write: closing flushes again and fails again, and after such a close
                # freeing the File object was seen to crash the process (SIGSEGV). Leave the file open: the
                # CLI ends the process without tearing h5py down (cli.main), like a kill, which loses
                # nothing that was committed.
                pass
            elif self._f is not None and self._f.id.valid:
                if quietly:
                    with contextlib.suppress(Exception):
                        self._f.close()
                else:
                    with self._disk_errors():
                        self._f.close()
        finally:
            self._lock.release()

    def __enter__(self) -> EmbeddingWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self._close(quietly=exc_type is not None)

    # --- a full disk

    @contextlib.contextmanager
    def _disk_errors(self) -> Iterator[None]:
        """Turn a write that fails for want of space (h5py: OSError or RuntimeError) into one DiskFullError."""
        try:
            yield
        except (OSError, RuntimeError) as e:
            why = disk_full_reason(e)
            if why is None:
                raise
            self._disk_full = True
            raise DiskFullError(self._disk_full_message(why)) from None

    def _check_free_space(self) -> None:
        try:
            free = shutil.disk_usage(self.path.parent if str(self.path.parent) else ".").free
        except OSError:
            return
        if free < MIN_FREE_BYTES:
            raise DiskFullError(self._disk_full_message("no space left on device"))

    def _disk_full_message(self, why: str) -> str:
        d = self.path.parent if str(self.path.parent) else Path(".")
        try:
            free = f", {_size(shutil.disk_usage(d).free)} free"
        except OSError:
            free = ""
        kept = ""
        if self.resume and self.partial.exists():
            kept = f", which resumes from the last records saved in {self.partial.name}"
        return (f"{why} on the disk that holds {self.partial} ({_mount_point(d)}{free}); free some space or "
                f"choose -o on another disk, then rerun the same command{kept}")


def _rebuild_ids(f: h5py.File, n: int) -> None:
    """Rewrite /ids as a fresh dataset holding its first n strings.

    Why: a kill after the ids of uncommitted rows reached the chunk on disk, but before their strings reached
    the global heap, leaves references to missing heap objects in the chunk past row n. Shrinking the
    dataset does not clear them, and HDF5 frees the old string of every element it overwrites, so the
    resumed run's first append of ids failed with "bad heap index" (found by tests/test_hpc.py's kill -9
    loop, about 1 run in 3 with a flush every 4 records). A new dataset starts from empty elements."""
    ids = f["ids"].asstr()[:n] if n else []
    if "ids_rebuilt" in f:  # left by a resume that failed half-way (the old /ids is still complete)
        del f["ids_rebuilt"]
    # the new dataset is written in full before the old one goes, so a failure here loses no id
    ds = f.create_dataset("ids_rebuilt", (n,), h5py.string_dtype("utf-8"), maxshape=(None,), chunks=(ROWS_PER_CHUNK,))
    if n:
        ds[:] = list(ids)
    f.flush()
    del f["ids"]
    f.move("ids_rebuilt", "ids")


def partial_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".partial")


class OutputLock:
    """An exclusive lock on PATH.lock, held while one process writes PATH (through PATH.partial).

    Why a lock file: two runs writing the same output (a job submitted twice, a rerun while the first is
    still going) would otherwise both open PATH.partial, and the second's "start over" truncates the first's
    file, which then publishes a corrupt PATH. HDF5's own file lock does not help: it is taken after
    h5py.File(mode="w") has already truncated the file. flock() is released by the kernel when the holder
    dies (kill -9, a node crash on NFS through lockd), so a stale PATH.lock never blocks a rerun; the holder
    removes the file when it is done. Where flock() is not supported (non-POSIX, some network mounts) the
    writer goes on unlocked: there is nothing better to do than what it did before.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                return  # cannot create it (the directory checks before this name the real problem)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
                os.close(fd)
                who = f" (pid {holder[0]} on {holder[1]})" if len(holder) >= 2 else ""
                raise StoreError(f"another mrl-dna run{who} is writing {path} right now ({self.path} is locked); "
                                 "wait for it to finish or choose another -o") from None
            except OSError:
                os.close(fd)
                return
            # The previous holder removes the file when it is done: if it did so between our open and our
            # flock, we hold a lock on a file nobody else will see; take the lock on the current file instead.
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd = fd
        with contextlib.suppress(OSError):  # who holds it, for the message above (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding the lock (see the inode check above)
        os.close(self._fd)
        self._fd = None


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (the same inode: also through symlinks and hard links)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_output_not_input(output: str | Path, inputs: Sequence[str | Path], *, what: str = "input") -> None:
    """StoreError when the output file (or its .partial) is one of the inputs: writing it would destroy them."""
    for out in (Path(output), partial_path(output)):
        for p in inputs:
            if str(p) != "-" and same_file(p, out):
                same = "" if Path(p) == out else " (the same file)"
                raise StoreError(f"output {out} is the {what} {p}{same}: writing it would destroy the {what}; "
                                 "choose another -o")


def _mount_point(d: Path) -> str:
    """The mount point of the filesystem that holds directory d (what `df` names), e.g. /scratch."""
    try:
        p = d.resolve()
        dev = p.stat().st_dev
        while p.parent != p and p.parent.stat().st_dev == dev:
            p = p.parent
        return str(p)
    except OSError:
        return str(d)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _check_output_dir(path: Path) -> None:
    d = path.parent if str(path.parent) else Path(".")
    if not d.exists():
        raise StoreError(f"output directory {d} does not exist; create it (mkdir -p {d}) or choose another -o")
    if not d.is_dir():
        raise StoreError(f"output directory {d} is not a directory; choose another -o")
    if not os.access(d, os.W_OK | os.X_OK):
        raise StoreError(f"output directory {d} is not writable; choose a writable directory for -o")
    if path.is_dir():
        raise StoreError(f"output {path} is a directory; give a file name such as {path / 'embeddings.h5'}")


def check_existing_output(path: Path, *, overwrite: bool) -> None:
    if not path.exists() or overwrite:
        return
    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
    except OSError:
        a = {}
    if a.get("format") == FORMAT:
        raise StoreError(
            f"{path} already exists (complete, {a.get('rows_committed', '?')} records, model "
            f"{_show(a.get('model_name'))} {str(_show(a.get('model_hash')))[:12]}, window {_show(a.get('window'))}); "
            "pass --force to overwrite it or choose another -o"
        )
    raise StoreError(f"{path} already exists and is not an mrl-dna embedding file; choose another -o or pass --force to overwrite it")


# ----------------------------------------------------------------------------------------------- reader


@dataclass(frozen=True, eq=False)
class WindowTable:
    """Saved per-window coordinates (m windows); vectors are read on demand with read()."""

    record: np.ndarray  # (m,) int64 row in /embeddings
    start: np.ndarray  # (m,) int64 bp, 0-based
    end: np.ndarray  # (m,) int64 bp, exclusive
    _dataset: Any  # h5py dataset /windows/embeddings (m, D)

    def __len__(self) -> int:
        return len(self.record)

    def read(self, dim: int | None = None, rows: slice | np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        """(m', k) float32 window vectors, prefix-normalised as EmbeddingStore.read."""
        return _read_prefix(self._dataset, len(self.record), dim, rows, normalize)


class EmbeddingStore:
    """Read-only view of an embedding file. Use EmbeddingStore.open(path); closes with close() or `with`."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self._f, self.path = f, path
        self.attrs: dict[str, Any] = {k: _py(f.attrs[k]) for k in f.attrs.keys()}
        self.dim = int(self.attrs["dim"])
        self.matryoshka_dims: tuple[int, ...] = tuple(int(d) for d in self.attrs.get("matryoshka_dims", [self.dim]))
        self.model_hash: str = str(self.attrs.get("model_hash", ""))
        self.complete = bool(self.attrs.get("complete", False))
        self.n = min(int(self.attrs.get("rows_committed", f["embeddings"].shape[0])), f["embeddings"].shape[0])

    @classmethod
    def open(cls, path: str | Path, *, allow_incomplete: bool = False) -> EmbeddingStore:
        path = Path(path)
        if not path.exists():
            p = partial_path(path)
            hint = (f" ({p} exists: an interrupted run; rerun the same `mrl-dna embed` command to resume it)"
                    if p.exists() else "")
            raise StoreError(f"{path} does not exist{hint}; give an .h5 file written by `mrl-dna embed`")
        if path.is_dir():
            raise StoreError(f"{path} is a directory; give an .h5 file written by `mrl-dna embed`")
        if not h5py.is_hdf5(path):
            if path.name.endswith(".partial"):  # a run killed before h5py wrote the file's header
                raise StoreError(f"{path} is incomplete (an interrupted run stopped before any record was written); "
                                 "rerun the same `mrl-dna embed` command, which starts it over")
            raise StoreError(f"{path} is not an HDF5 file; give an .h5 file written by `mrl-dna embed`")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise StoreError(f"{path} is an HDF5 file that cannot be opened ({e}); is it truncated, or being "
                             "written right now?") from None
        fmt = _py(f.attrs.get("format"))
        if fmt != FORMAT or "embeddings" not in f:
            f.close()
            raise StoreError(f"{path} was not written by mrl-dna (no format attribute {FORMAT!r}); give an .h5 "
                             "file written by `mrl-dna embed`")
        version = int(_py(f.attrs.get("format_version", 0)))
        if version > FORMAT_VERSION:
            f.close()
            raise StoreError(f"{path} has format_version {version} > {FORMAT_VERSION} (this mrl-dna {__version__}); "
                             "upgrade mrl-dna to read it")
        try:
            store = cls(f, path)
        except (OSError, KeyError, ValueError) as e:
            f.close()
            raise StoreError(f"{path} is damaged ({e}); rewrite it with `mrl-dna embed`") from None
        if not store.complete and not allow_incomplete:
            store.close()
            raise StoreError(f"{path} is incomplete ({store.n} records written by an interrupted run); rerun the "
                             "same `mrl-dna embed` command to resume it")
        return store

    # --- per-record columns

    @cached_property
    def ids(self) -> list[str]:
        return list(self._f["ids"].asstr()[: self.n])

    @cached_property
    def lengths(self) -> np.ndarray:  # (n,) int64
        return self._f["lengths"][: self.n]

    @cached_property
    def n_windows(self) -> np.ndarray:  # (n,) int32
        return self._f["n_windows"][: self.n]

    @cached_property
    def n_skipped(self) -> np.ndarray:  # (n,) int32
        return self._f["n_skipped"][: self.n] if "n_skipped" in self._f else np.zeros(self.n, np.int32)

    @cached_property
    def status(self) -> np.ndarray:  # (n,) int8, STATUS_CODES
        return self._f["status"][: self.n]

    @cached_property
    def order(self) -> np.ndarray:  # (n,) int64, -1 where unknown
        return self._f["order"][: self.n] if "order" in self._f else np.full(self.n, -1, np.int64)

    @property
    def dtype(self) -> str:
        return str(self._f["embeddings"].dtype)

    # --- vectors

    def read(self, dim: int | None = None, rows: slice | np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        """(r, k) float32 vectors: the first k = dim (default D) columns of the selected rows, re-normalised
        (normalize(v[:, :k]); zero rows stay zero). Reads only the column chunks of the prefix. At k = D in
        float32 the stored rows are already unit-norm and are returned bit for bit."""
        return _read_prefix(self._f["embeddings"], self.n, dim, rows, normalize)

    def iter_blocks(self, dim: int | None = None, block_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first row, (b, k) float32 block) over all rows, so memory stays at one block."""
        if block_rows < 1:
            raise ConfigError(f"block_rows {block_rows} must be >= 1")
        _check_dim(dim, self.dim, self.matryoshka_dims)
        for start in range(0, self.n, block_rows):
            yield start, self.read(dim, slice(start, min(start + block_rows, self.n)))

    def windows(self) -> WindowTable | None:
        """The saved per-window table, or None when the file was written without --save-windows."""
        if "windows" not in self._f:
            return None
        g = self._f["windows"]
        m = min(int(self.attrs.get("windows_committed", g["record"].shape[0])), g["record"].shape[0])
        return WindowTable(g["record"][:m], g["start"][:m], g["end"][:m], g["embeddings"])

    def status_counts(self) -> dict[str, int]:
        counts = np.bincount(self.status.astype(np.int64), minlength=len(STATUS_CODES))
        return {name: int(counts[code]) for code, name in STATUS_NAMES.items()}

    def summary(self) -> dict[str, Any]:
        """What `mrl-dna info` prints: a JSON-able description of the file."""
        w = self.windows()
        a = self.attrs
        return {
            "path": str(self.path), "n_records": self.n, "dim": self.dim, "matryoshka_dims": list(self.matryoshka_dims),
            "dtype": self.dtype, "model_name": a.get("model_name", ""), "model_hash": self.model_hash,
            "model_kind": a.get("model_kind", ""), "window": a.get("window"), "stride": a.get("stride"),
            "pooling": a.get("pooling", ""), "shard": a.get("shard", ""), "complete": self.complete,
            "status": self.status_counts(), "total_bp": int(self.lengths.sum()),
            "windows_saved": w is not None, "n_saved_windows": len(w) if w is not None else 0,
            "created": a.get("created", ""), "command": a.get("command", ""),
            "mrl_dna_version": a.get("mrl_dna_version", ""), "format_version": a.get("format_version"),
            "chunks": list(self._f["embeddings"].chunks or ()),
            **({"merged_from": a["merged_from"]} if "merged_from" in a else {}),
        }

    def close(self) -> None:
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_dim(dim: int | None, D: int, dims: Sequence[int]) -> int:
    k = D if dim is None else int(dim)
    if k < 1 or k > D:
        raise ConfigError(f"dim {k} is outside 1..{D} (this file's width); pick one of the Matryoshka dims "
                          f"{', '.join(map(str, dims))}")
    return k


def _read_prefix(ds, n: int, dim: int | None, rows, normalize: bool) -> np.ndarray:
    D = ds.shape[1]
    k = _check_dim(dim, D, _dims_of(ds))
    if rows is None:
        rows = slice(0, n)
    if isinstance(rows, slice):
        start, stop, step = rows.indices(n)
        if step != 1:
            out = _take_rows(ds, np.arange(start, stop, step), k)
        else:
            out = ds[start:stop, :k] if stop > start else np.zeros((0, k), ds.dtype)
    else:
        idx = np.asarray(rows, dtype=np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ConfigError(f"row index out of range 0..{n - 1}")
        out = _take_rows(ds, idx % n if n else idx, k)
    out = np.asarray(out)
    if normalize and not (k == D and out.dtype == np.float32):  # stored float32 rows are unit at full D
        return normalize_rows(out)
    return out.astype(np.float32, copy=False)


def _dims_of(ds) -> tuple[int, ...]:
    return tuple(int(d) for d in ds.file.attrs.get("matryoshka_dims", [ds.shape[1]]))


def _take_rows(ds, idx: np.ndarray, k: int | None = None, *, max_span: int = 65536) -> np.ndarray:
    """ds[idx] (first k columns for 2-D) for any row order, duplicates allowed.

    h5py's fancy indexing wants increasing indices and is slow for long lists (5,000 rows of 20,000: 0.5 s,
    against 0.03 s for one slice), so sorted rows are read as slices over runs whose gaps are at most one
    chunk of rows (HDF5 reads whole chunks anyway, so the slice costs no extra disk I/O), each run at most
    max_span rows (bounded memory)."""
    idx = np.asarray(idx, dtype=np.int64)
    cols = (slice(0, k),) if ds.ndim == 2 else ()
    if idx.size == 0:
        return np.zeros((0,) if ds.ndim == 1 else (0, ds.shape[1] if k is None else k), dtype=ds.dtype)
    uniq, inverse = np.unique(idx, return_inverse=True)  # (u,), (len(idx),)
    cuts = np.flatnonzero(np.diff(uniq) > ROWS_PER_CHUNK) + 1
    parts = []
    for run in np.split(uniq, cuts):
        while len(run):
            lo = int(run[0])
            j = int(np.searchsorted(run, lo + max_span, side="left"))  # rows of this run within max_span
            hi = int(run[j - 1]) + 1
            block = np.asarray(ds[(slice(lo, hi), *cols)])  # (hi - lo, k)
            parts.append(block[run[:j] - lo])
            run = run[j:]
    return np.concatenate(parts)[inverse]


# ----------------------------------------------------------------------------------------------- merge


@dataclass(frozen=True)
class MergeSummary:
    output: Path
    n_records: int
    n_inputs: int
    ordered_by: str  # 'order' (per-row /order), 'shard' (shard index) or 'arguments'


def merge_stores(inputs: Sequence[str | Path], output: str | Path, *, force: bool = False,
                 block_rows: int = 65536) -> MergeSummary:
    """Combine embedding files (typically the shards of one `embed --shard I/N` run) into one file.

    All inputs must be complete and agree on MERGE_KEYS. Rows are ordered by /order (each record's index in
    the full input) when every input has it, else by shard index when all inputs are shards, else by
    argument order; a complete set of shards merges into the file an unsharded run writes (same rows, same
    order, bitwise-equal vectors). Memory: one block of rows at a time."""
    paths = [Path(p) for p in inputs]
    output = Path(output)
    if len(paths) < 1:
        raise ConfigError("merge needs at least one input file")
    for i, p in enumerate(paths):
        if any(same_file(p, q) or p.resolve() == q.resolve() for q in paths[:i]):
            raise StoreError(f"{p} is given twice; give each shard file once")
    check_output_not_input(output, paths)
    stores = [EmbeddingStore.open(p) for p in paths]
    try:
        return _merge(stores, output, force=force, block_rows=block_rows)
    finally:
        for s in stores:
            s.close()


def _merge(stores: list[EmbeddingStore], output: Path, *, force: bool, block_rows: int) -> MergeSummary:
    first = stores[0]
    for s in stores[1:]:
        for key in MERGE_KEYS:
            if not _same(first.attrs.get(key), s.attrs.get(key)):
                raise StoreError(f"{first.path} and {s.path} differ in {key} ({_show(first.attrs.get(key))} vs "
                                 f"{_show(s.attrs.get(key))}); merge only files from the same model and options")
    shards = [str(s.attrs.get("shard", "")) for s in stores]
    ordered_by = "arguments"
    if any(shards):
        stores = _sort_shards(stores, shards)
        ordered_by = "shard"
    # global row order: (store index, source row) for every output row
    src_file = np.concatenate([np.full(s.n, i, np.int64) for i, s in enumerate(stores)])  # (n,)
    src_row = np.concatenate([np.arange(s.n, dtype=np.int64) for s in stores])  # (n,)
    orders = np.concatenate([s.order for s in stores])
    if len(orders) and np.all(orders >= 0):
        uniq, counts = np.unique(orders, return_counts=True)
        if np.any(counts > 1):
            dup = int(uniq[counts > 1][0])
            holders = sorted({str(stores[i].path) for i in src_file[orders == dup]})
            raise StoreError(f"record index {dup} appears more than once (in {', '.join(holders)}); the inputs "
                             "overlap: merge each shard once")
        perm = np.argsort(orders, kind="stable")
        src_file, src_row = src_file[perm], src_row[perm]
        ordered_by = "order"
    _check_unique_ids(stores)

    attrs = {k: v for k, v in first.attrs.items() if k not in _HOUSEKEEPING and k not in ("dim", "dtype", "save_windows")}
    attrs.update(shard="", command=" ".join(sys.argv), merged_from=[str(s.path) for s in stores])
    save_windows = bool(first.attrs.get("save_windows", False))
    with EmbeddingWriter(output, attrs=attrs, dim=first.dim, dtype=first.dtype, save_windows=save_windows,
                         overwrite=force) as w:
        tables = [s.windows() for s in stores] if save_windows else [None] * len(stores)
        woffs = [None if t is None else np.concatenate([[0], np.cumsum(np.bincount(t.record, minlength=s.n))])
                 for s, t in zip(stores, tables)]
        n = len(src_file)
        for a in range(0, n, block_rows):
            fi, ri = src_file[a : a + block_rows], src_row[a : a + block_rows]  # (b,)
            b = len(fi)
            cols: dict[str, Any] = {}
            for name in ("lengths", "n_windows", "n_skipped", "status", "order"):
                col = np.empty(b, dtype=getattr(first, name).dtype)
                for i, s in enumerate(stores):
                    m = fi == i
                    if m.any():
                        col[m] = getattr(s, name)[ri[m]]
                cols[name] = col
            ids = np.empty(b, dtype=object)
            vectors = np.empty((b, first.dim), dtype=first.dtype)  # (b, D) stored dtype: a bitwise copy
            for i, s in enumerate(stores):
                m = fi == i
                if m.any():
                    ids[m] = [s.ids[r] for r in ri[m]]
                    vectors[m] = _take_rows(s._f["embeddings"], ri[m])
            windows = None
            if save_windows:
                windows = _gather_windows(tables, woffs, fi, ri, out_start=w.n_done, dim=first.dim, dtype=first.dtype)
            w._append_arrays(ids=list(ids), vectors=vectors, windows=windows, **cols)
        w.finish()
    return MergeSummary(output=output, n_records=len(src_file), n_inputs=len(stores), ordered_by=ordered_by)


def _gather_windows(tables, woffs, fi, ri, *, out_start, dim, dtype):
    """The windows of output rows out_start.. (sources fi, ri), in row order, with record re-pointed."""
    starts = np.array([woffs[f][r] for f, r in zip(fi, ri)], dtype=np.int64)  # (b,)
    counts = np.array([woffs[f][r + 1] - woffs[f][r] for f, r in zip(fi, ri)], dtype=np.int64)  # (b,)
    total = int(counts.sum())
    first_out = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (b,) first output window of each row
    src = np.repeat(starts - first_out, counts) + np.arange(total)  # (w,) source window index
    wfile = np.repeat(fi, counts)  # (w,)
    record = np.repeat(out_start + np.arange(len(fi)), counts).astype(np.int64)  # (w,)
    start, end = np.empty(total, np.int64), np.empty(total, np.int64)
    vec = np.empty((total, dim), dtype=dtype)
    for i, t in enumerate(tables):
        m = wfile == i
        if m.any():
            start[m], end[m] = t.start[src[m]], t.end[src[m]]
            vec[m] = _take_rows(t._dataset, src[m])
    return record, start, end, vec


def _sort_shards(stores: list[EmbeddingStore], shards: list[str]) -> list[EmbeddingStore]:
    parsed = []
    for s, spec in zip(stores, shards):
        if not spec:
            raise StoreError(f"{s.path} is not a shard but other inputs are; merge either shards of one run or "
                             "whole files")
        try:
            i, n = parse_shard(spec)
        except ConfigError:
            raise StoreError(f"{s.path} has a malformed shard attribute {spec!r}; expected 'I/N'") from None
        parsed.append((i, n))
    ns = {n for _, n in parsed}
    if len(ns) > 1:
        raise StoreError(f"the inputs are shards of different splits ({', '.join(sorted(set(shards)))}); merge the "
                         "shards of one run")
    (n,) = ns
    have = sorted(i for i, _ in parsed)
    if len(set(have)) != len(have):
        dup = next(i for i in have if have.count(i) > 1)
        raise StoreError(f"shard {dup}/{n} is given more than once; give each shard file once")
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in have]  # 1-based, as shards.parse_shard
    if missing or len(have) != n:
        raise StoreError(f"incomplete set of shards: missing {', '.join(missing) or '?'} (have "
                         f"{', '.join(f'{i}/{n}' for i in have)}); merge all {n} shards")
    return [s for _, s in sorted(zip([i for i, _ in parsed], stores), key=lambda t: t[0])]


def _check_unique_ids(stores: list[EmbeddingStore]) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(stores):
        for rid in s.ids:
            if rid in seen:
                other = stores[seen[rid]].path
                where = f"{s.path}" if seen[rid] == i else f"{other} and {s.path}"
                raise StoreError(f"record id {rid!r} occurs twice ({where}); merge files with distinct ids")
            seen[rid] = i


# ----------------------------------------------------------------------------------------------- export


class ExportFormat(str, enum.Enum):
    tsv = "tsv"  # id, then k floats, tab-separated; one record per line
    npy = "npy"  # (n, k) float32 .npy plus the ids, one per line, in NAME.ids.txt beside it


@dataclass(frozen=True)
class ExportSummary:
    n_records: int
    dim: int
    n_zero: int  # records without a vector (empty/all-N), exported as zero rows
    outputs: tuple[str, ...]


def export_store(path: str | Path, *, dim: int | None, fmt: str | ExportFormat, output: str | Path = "-",
                 force: bool = False, block_rows: int = 65536) -> ExportSummary:
    """Write the first `dim` columns (re-normalised) of every row as TSV (to stdout when output is '-';
    gzip-compressed when the output name ends in .gz) or as .npy + ids .txt. Rows keep the file's order;
    records without a vector are zero rows. Files are written under a temporary name and renamed when
    complete; an existing file is replaced only with force=True, the input never."""
    fmt = ExportFormat(fmt)
    to_stdout = str(output) == "-"
    if fmt is ExportFormat.npy:
        if to_stdout:
            raise ConfigError("--format npy cannot go to stdout; give -o FILE.npy")
        out = Path(output)
        if out.name.endswith(".gz"):
            raise ConfigError(f"-o {out}: --format npy writes an uncompressed .npy (numpy can memory-map it); "
                              "drop the .gz, or use --format tsv for a gzip-compressed table")
        if out.suffix != ".npy":
            out = out.with_name(out.name + ".npy")
        targets = (out, out.with_suffix(".ids.txt"))
    else:
        targets = () if to_stdout else (Path(output),)
    for t in targets:
        _check_export_dir(t)
        if t.is_dir():
            raise StoreError(f"{t} is a directory; give a file name for -o")
        check_output_not_input(t, [path])
        if t.exists() and not force:
            raise StoreError(f"{t} already exists; pass --force to overwrite it or choose another -o")
    with EmbeddingStore.open(path) as store:
        k = _check_dim(dim, store.dim, store.matryoshka_dims)
        n_zero = int(np.count_nonzero(store.status != STATUS_CODES["ok"]))
        ids = store.ids
        if to_stdout:
            _write_tsv(store, k, ids, sys.stdout, block_rows)
            return ExportSummary(n_records=len(ids), dim=k, n_zero=n_zero, outputs=("-",))
        with _replace_when_done(targets) as tmps:
            if fmt is ExportFormat.tsv:
                opener = gzip.open if targets[0].name.endswith(".gz") else open
                with opener(tmps[0], "wt", encoding="utf-8", newline="\n") as fh:
                    _write_tsv(store, k, ids, fh, block_rows)
            else:
                arr = np.lib.format.open_memmap(tmps[0], mode="w+", dtype=np.float32, shape=(store.n, k))
                for start, block in store.iter_blocks(k, block_rows):
                    arr[start : start + len(block)] = block
                arr.flush()
                del arr
                with open(tmps[1], "w", encoding="utf-8", newline="\n") as fh:
                    fh.writelines(f"{i}\n" for i in ids)
    return ExportSummary(n_records=len(ids), dim=k, n_zero=n_zero, outputs=tuple(map(str, targets)))


@contextlib.contextmanager
def _replace_when_done(targets: Sequence[Path]) -> Iterator[list[Path]]:
    """Temporary names NAME.partial for the targets, renamed onto them when the block ends without error and
    removed when it fails, so that a reader never sees a half-written export under its final name."""
    tmps = [t.with_name(t.name + ".partial") for t in targets]
    try:
        yield tmps
        for tmp, t in zip(tmps, targets):
            os.replace(tmp, t)
    finally:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _write_tsv(store: EmbeddingStore, k: int, ids: list[str], fh, block_rows: int) -> None:
    for start, block in store.iter_blocks(k, block_rows):
        # %.9g round-trips float32 exactly
        fh.writelines(ids[start + j] + "\t" + "\t".join(f"{x:.9g}" for x in row.tolist()) + "\n"
                      for j, row in enumerate(block))
    fh.flush()


def _check_export_dir(out: Path) -> None:
    d = out.parent if str(out.parent) else Path(".")
    if not d.is_dir():
        raise StoreError(f"output directory {d} does not exist; create it (mkdir -p {d}) or choose another -o")
    if not os.access(d, os.W_OK | os.X_OK):
        raise StoreError(f"output directory {d} is not writable; choose a writable directory for -o")


# ----------------------------------------------------------------------------------------------- attrs


def _attr_value(v: Any) -> Any:
    """A Python value as an HDF5 attribute: None -> '', enums -> value, paths -> str, sequences -> arrays."""
    if v is None:
        return ""
    if isinstance(v, enum.Enum):
        return _attr_value(v.value)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        items = [_attr_value(x) for x in v]
        if items and all(isinstance(x, str) for x in items):
            return np.asarray(items, dtype=h5py.string_dtype("utf-8"))  # h5py cannot store numpy '<U' arrays
        return np.asarray(items)
    return v


def _py(v: Any) -> Any:
    """An HDF5 attribute as plain Python (for comparison and JSON)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [_py(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _same(a: Any, b: Any) -> bool:
    return _py(_attr_value(a)) == _py(_attr_value(b))


def _show(v: Any) -> str:
    v = _py(_attr_value(v))
    return "(none)" if v in ("", None) else str(v)
