"""Writing an embedding file: resumable appends to PATH.partial, one writer per output (PATH.lock), a full
disk as one DiskFullError, and the checks that an output never overwrites an input or a finished file.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import errno
import functools
import os
import shutil
import socket
import sys
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrl_dna.version import __version__
from mrl_dna.console import count, warn
from mrl_dna.errors import ConfigError, DiskFullError, OptionError, StoreError, disk_full_reason, disk_where, human_size
from mrl_dna.store.shards import format_shard
from mrl_dna.store.compat import same_file
from mrl_dna.store.format import (DTYPES, FORMAT, FORMAT_VERSION, RESUME_KEYS, ROWS_PER_CHUNK, STATUS_CODES,
                                  ContigRows, EmbeddedRecord, WindowRows, attr_to_py, attr_value, chunk_columns,
                                  same_attr, show_attr)


# A writer refuses to start (or resume) with less free space than this beside its output: on a full disk the
# first flush would fail anyway, and a resume that fails half-way through its own housekeeping could damage
# the rows that the interrupted run saved.
MIN_FREE_BYTES = 2**20


# Bytes reserved beyond an estimate of what an append adds (B-tree nodes of the chunk indexes, object header
# continuations, a global heap collection, the metadata aggregator's 2 KiB blocks): tests/test_store.py
# (test_space_reserved_for_an_append_bounds_what_it_adds) measures the growth against the estimate.
RESERVE_MARGIN = 256 * 2**10


def file_attributes(attrs: dict[str, Any], *, dim: int, dtype: str, save_windows: bool,
                    per_file: bool) -> dict[str, Any]:
    """The attributes EmbeddingWriter gives the file it writes: the caller's `attrs` (model and run: model_hash,
    window, stride, shard, command, ...) as HDF5 values, plus what the writer owns (format, dim, dtype, dims,
    save_windows, per_file). embed_distributed compares a finished shard file's with them (RESUME_KEYS)."""
    dims = [int(d) for d in attrs.get("matryoshka_dims", (dim,))]
    return {
        **{k: attr_value(v) for k, v in attrs.items() if k != "per_file"},
        **({"per_file": True} if per_file else {}),  # absent = rows of records (files before embed --per-file)
        "format": FORMAT, "format_version": FORMAT_VERSION, "dim": int(dim), "dtype": dtype,
        "matryoshka_dims": np.asarray(dims, dtype=np.int64), "save_windows": bool(save_windows),
        "shard": format_shard(attrs.get("shard")),
        "command": attr_value(attrs.get("command", " ".join(sys.argv))),
        "mrl_dna_version": __version__,
    }


class EmbeddingWriter:
    """Append records to PATH.partial; finish() marks it complete and renames it to PATH.

    attrs: model and run attributes (model_name, model_hash, model_kind, matryoshka_dims, window, stride,
    pooling, shard, command, ...). resume=True continues an existing PATH.partial written with the same
    RESUME_KEYS (n_done tells how many records it already holds; one that holds none is started over);
    overwrite=True replaces an existing complete PATH (the CLI's --force). Use as a context manager: leaving the block without finish() (an
    exception, a kill) leaves a resumable PATH.partial, never a PATH.

    One writer per output at a time: the writer holds an exclusive lock (PATH.lock, see OutputLock) from
    before it looks at PATH or PATH.partial until it finishes or closes, so a second run on the same output
    stops with a StoreError instead of truncating the first run's PATH.partial. A full disk is a DiskFullError
    that names the disk and says what rerunning does; each append reserves its space first (_reserve), so the
    rows flushed before it stay resumable.
    """

    def __init__(self, path: str | Path, *, attrs: dict[str, Any], dim: int, dtype: str = "float32",
                 save_windows: bool = False, per_file: bool = False, resume: bool = False,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        if dtype not in DTYPES:
            raise ConfigError(f"dtype {dtype!r} is not supported; pick one of {', '.join(DTYPES)}")
        if dim < 1:
            raise ConfigError(f"embedding dim {dim} must be >= 1")
        dims = [int(d) for d in attrs.get("matryoshka_dims", (dim,))]
        if not dims or any(d < 1 or d > dim for d in dims):
            raise ConfigError(f"matryoshka_dims {dims} must lie in 1..{dim} (the embedding dim)")
        self.dim, self.dtype, self.save_windows, self.per_file = int(dim), dtype, bool(save_windows), bool(per_file)
        self.attrs = file_attributes(attrs, dim=dim, dtype=dtype, save_windows=save_windows, per_file=per_file)
        self._finished = False
        self._disk_full = False  # a write failed for want of space (see _close)
        self._reserved = 0  # bytes reserved past the file's end (see _reserve, _release_reserve)
        self.resume = resume
        self.n_done = self.windows_done = self.contigs_done = 0
        self._f: h5py.File | None = None
        self._datasets: dict[str, h5py.Dataset] = {}  # see _dataset
        check_hdf5_name(self.path)
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
            self.contigs_done = int(self._f.attrs.get("contigs_committed", 0))
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
        if self.per_file:
            f.attrs["contigs_committed"] = 0
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
        f.create_dataset("checksum", (0,), np.uint64, maxshape=(None,), chunks=rows)
        if self.save_windows:
            g = f.create_group("windows")
            for name in ("record", "start", "end"):
                g.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=rows)
            g.create_dataset("embeddings", (0, self.dim), np_dtype, maxshape=(None, self.dim), chunks=(ROWS_PER_CHUNK, cols))
            if self.per_file:
                g.create_dataset("contig", (0,), np.int64, maxshape=(None,), chunks=rows)
        if self.per_file:
            g = f.create_group("contigs")
            g.create_dataset("name", (0,), h5py.string_dtype("utf-8"), maxshape=(None,), chunks=rows)
            for name in ("record", "length"):
                g.create_dataset(name, (0,), np.int64, maxshape=(None,), chunks=rows)
        f.flush()
        return f

    def _open_resume(self) -> h5py.File | None:
        """Open PATH.partial for appending; None (after a warning) when it is unreadable and must be redone."""
        f = None
        try:
            f = h5py.File(self.partial, "r+", rdcc_nbytes=16 * 2**20, rdcc_nslots=10007)
            old = {k: f.attrs[k] for k in f.attrs.keys()}
            if old.get("format") != FORMAT or "rows_committed" not in old or "embeddings" not in f:
                raise OSError("not a partial mrl-dna embedding file")
            if int(old["rows_committed"]) == 0:  # nothing to keep: start over, with this run's attributes (input)
                f.close()
                return None
            for key in RESUME_KEYS:
                if not same_attr(old.get(key), self.attrs.get(key)):
                    f.close()
                    raise StoreError(
                        f"{self.partial} was written with {key}={show_attr(old.get(key))} but this run has "
                        f"{key}={show_attr(self.attrs.get(key))}; delete {self.partial} or rerun with the same options (embed --restart starts over)"
                    )
            n, m = int(old["rows_committed"]), int(old["windows_committed"])
            for name in ("ids", "contigs/name"):  # a resume stopped inside _rebuild_strings: finish its move
                if name not in f and name + "_rebuilt" in f:
                    f.move(name + "_rebuilt", name)
            for name in ("embeddings", "ids", "lengths", "n_windows", "n_skipped", "status", "order",
                         *(("checksum",) if "checksum" in f else ())):  # (older files have no /checksum)
                f[name].resize(n, axis=0)  # drop rows written after the last committed flush
            # the rebuilds below write new datasets: their space is reserved first (see _reserve)
            self._reserve(_strings_bytes(f, "ids", n) + (_strings_bytes(f, "contigs/name", int(old["contigs_committed"]))
                                                        if self.per_file else 0), f)
            _rebuild_strings(f, "ids", n)
            if self.save_windows:
                for name in ("record", "start", "end", "embeddings", *(("contig",) if self.per_file else ())):
                    f["windows"][name].resize(m, axis=0)
            if self.per_file:
                c = int(old["contigs_committed"])
                for name in ("record", "length"):
                    f["contigs"][name].resize(c, axis=0)
                _rebuild_strings(f, "contigs/name", c)
            # A kill between finish()'s flush and its rename leaves complete=True. Only fixed-size attributes
            # are rewritten after creation: rewriting a string attribute (global heap) and being killed
            # mid-flush was seen to leave an unreadable attribute.
            f.attrs["complete"] = False
            f.flush()
            return f
        except DiskFullError:  # _reserve: nothing was written, the file is as the interrupted run left it
            with contextlib.suppress(Exception):
                f.close()
            raise
        except StoreError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError) as e:
            if disk_full_reason(e):  # never start over (truncate) for want of space: the rows are still there
                self._f, self._disk_full = f, True  # left open, see _close
                raise DiskFullError(self._disk_full_message(disk_full_reason(e), clean=False)) from None
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

    def done_column(self, name: str) -> np.ndarray | None:
        """The first n_done values of a per-record dataset (lengths, checksum, ...) of the file being resumed,
        or None when the file has no such dataset (written by an older mrl-dna)."""
        return self._f[name][: self.n_done] if name in self._f else None

    @property
    def file_attrs(self) -> dict[str, Any]:
        """The attributes of the file being written: on resume, those the interrupted run wrote."""
        return {k: attr_to_py(v) for k, v in self._f.attrs.items()}

    def append(self, recs: Sequence[EmbeddedRecord]) -> None:
        """Write a batch of records (rows n_done..n_done+len-1) and flush. Non-ok records get zero rows."""
        if not recs:
            return
        D = self.dim
        vectors = np.zeros((len(recs), D), dtype=np.float32)  # (r, D)
        status = np.empty(len(recs), dtype=np.int8)
        spans, wvecs, wrec, wcontig = [], [], [], []
        contigs = ContigRows(np.zeros(0, np.int64), [], np.zeros(0, np.int64)) if self.per_file else None
        first_contig = self.contigs_done  # /contigs index of the next contig appended
        for i, r in enumerate(recs):
            if r.status not in STATUS_CODES:
                raise ValueError(f"record {r.id!r}: status {r.status!r} is not one of {list(STATUS_CODES)}")
            status[i] = STATUS_CODES[r.status]
            if r.status == "ok":
                v = np.asarray(r.vector, dtype=np.float32)
                if v.shape != (D,):
                    raise ValueError(f"record {r.id!r}: vector of shape {v.shape} must be ({D},) and finite")
                vectors[i] = v
            if self.save_windows and r.status == "ok" and r.window_spans is not None and len(r.window_spans):
                s = np.asarray(r.window_spans, dtype=np.int64).reshape(-1, 2)  # (k, 2)
                if r.window_vectors is None or np.shape(r.window_vectors) != (len(s), D):
                    raise ValueError(f"record {r.id!r}: save_windows needs window_vectors of shape ({len(s)}, {D})")
                spans.append(s)
                wvecs.append(np.asarray(r.window_vectors, dtype=np.float32))
                wrec.append(np.full(len(s), self.n_done + i, dtype=np.int64))
                if self.per_file:
                    if r.window_contigs is None or len(r.window_contigs) != len(s):
                        raise ValueError(f"file row {r.id!r}: per-file windows need window_contigs of length {len(s)}")
                    wcontig.append(first_contig + np.asarray(r.window_contigs, dtype=np.int64))
            if self.per_file:
                contigs = ContigRows(np.concatenate([contigs.record, np.full(len(r.contigs), self.n_done + i, np.int64)]),
                                     contigs.name + [c for c, _ in r.contigs],
                                     np.concatenate([contigs.length, np.array([n for _, n in r.contigs], np.int64)]))
                first_contig += len(r.contigs)
        bad = np.flatnonzero(~np.isfinite(vectors).all(1))  # one check for the whole batch
        if len(bad):
            raise ValueError(f"record {recs[bad[0]].id!r}: its vector must be finite (it holds NaN or inf)")
        windows = None
        if self.save_windows:
            spans_a = np.concatenate(spans) if spans else np.zeros((0, 2), np.int64)  # (w, 2)
            windows = WindowRows(
                record=np.concatenate(wrec) if wrec else np.zeros(0, np.int64),
                start=spans_a[:, 0], end=spans_a[:, 1],
                vectors=np.concatenate(wvecs) if wvecs else np.zeros((0, D), np.float32),
                contig=(np.concatenate(wcontig) if wcontig else np.zeros(0, np.int64)) if self.per_file else None,
            )
        self._append_arrays(
            ids=[r.id for r in recs],
            lengths=np.array([r.length for r in recs], dtype=np.int64),
            n_windows=np.array([r.n_windows for r in recs], dtype=np.int32),
            n_skipped=np.array([r.n_skipped for r in recs], dtype=np.int32),
            status=status,
            order=np.array([r.order for r in recs], dtype=np.int64),
            checksum=np.array([r.checksum for r in recs], dtype=np.uint64),
            vectors=vectors,
            windows=windows,
            contigs=contigs,
        )

    def _append_arrays(self, *, ids, lengths, n_windows, n_skipped, status, order, vectors,
                       windows: WindowRows | None, contigs: ContigRows | None = None, checksum=None) -> None:
        """Append rows given as arrays (vectors (r, D) in any float dtype; windows and contigs with their
        record already as rows of this file and window contigs as /contigs indices, or None; checksum (r,)
        uint64 or None = unknown, 0), then commit."""
        if self._finished:
            raise ValueError("append() after finish()")
        if self.per_file and contigs is None:
            raise ValueError("a per-file embedding file needs the contigs of its rows")
        with self._disk_errors():
            self._write_rows(ids=ids, lengths=lengths, n_windows=n_windows, n_skipped=n_skipped, status=status,
                             order=order, vectors=vectors, windows=windows, contigs=contigs,
                             checksum=np.zeros(len(ids), np.uint64) if checksum is None else checksum)

    def _dataset(self, name: str):
        """The dataset `name`, opened once and held until the file closes. Why held: a Dataset object that is
        closed while others stay open makes HDF5 write its header, and when that write failed for want of space
        (an `f[name]` temporary freed after a resize) the close failed inside h5py's dealloc and the process died
        with SIGSEGV instead of the one-line DiskFullError (tests/test_cli_data_safety.py)."""
        if name not in self._datasets:
            self._datasets[name] = self._f[name]
        return self._datasets[name]

    def _write_rows(self, *, ids, lengths, n_windows, n_skipped, status, order, vectors, windows, contigs,
                    checksum) -> None:
        f, n, r = self._f, self.n_done, len(ids)
        self._reserve(self._append_bytes(r, 0 if windows is None else len(windows.record),
                                         0 if contigs is None else len(contigs.record),
                                         [*ids, *(contigs.name if contigs is not None else ())]), f)
        for name, data in (("embeddings", vectors), ("ids", ids), ("lengths", lengths), ("n_windows", n_windows),
                           ("n_skipped", n_skipped), ("status", status), ("order", order), ("checksum", checksum)):
            if name == "checksum" and name not in f:  # a resumed file of an older mrl-dna
                continue
            _extend(self._dataset(name), n, data)
        m = self.windows_done
        if self.save_windows and windows is not None:
            cols = [("record", windows.record), ("start", windows.start), ("end", windows.end),
                    ("embeddings", windows.vectors)] + ([("contig", windows.contig)] if self.per_file else [])
            for name, data in cols:
                _extend(self._dataset(f"windows/{name}"), m, data)
            m += len(windows.record)
        c = self.contigs_done
        if self.per_file:
            for name, data in (("record", contigs.record), ("name", contigs.name), ("length", contigs.length)):
                _extend(self._dataset(f"contigs/{name}"), c, data)
            c += len(contigs.record)
        f.flush()  # rows first ...
        f.attrs["rows_committed"] = n + r  # ... then the claim that they are there
        f.attrs["windows_committed"] = m
        if self.per_file:
            f.attrs["contigs_committed"] = c
        f.flush()
        self.n_done, self.windows_done, self.contigs_done = n + r, m, c

    def finish(self) -> Path:
        """Mark complete, flush, close and atomically rename PATH.partial -> PATH. Returns PATH."""
        if self._finished:
            return self.path
        self._reserve(0, self._f)
        with self._disk_errors():
            self._f.attrs["complete"] = True
            self._f.flush()
            self._f.close()
        self._release_reserve()
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
                self._release_reserve()
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
            raise DiskFullError(self._disk_full_message(why, clean=False)) from None

    def _append_bytes(self, r: int, m: int, c: int, strings: Sequence[str]) -> int:
        """An upper bound of the bytes HDF5 adds to the file to append r rows, m windows, c contigs and the
        strings among them: every chunk the new rows start (chunks are allocated whole, ROWS_PER_CHUNK rows of
        each dataset), the strings in the global heap, plus RESERVE_MARGIN for metadata."""
        def chunks(done: int, add: int, row_bytes: int) -> int:
            return (-(-(done + add) // ROWS_PER_CHUNK) - -(-done // ROWS_PER_CHUNK)) * ROWS_PER_CHUNK * row_bytes

        vec = self.dim * np.dtype(self.dtype).itemsize
        # per row: the vector, a 16-byte string reference (ids), lengths 8, n_windows 4, n_skipped 4, status 1,
        # order 8, checksum 8; per window: the vector, record/start/end (and contig) 8 each; per contig: name 16,
        # record 8, length 8
        total = chunks(self.n_done, r, vec + 16 + 8 + 4 + 4 + 1 + 8 + 8)
        if self.save_windows:
            total += chunks(self.windows_done, m, vec + 8 * (4 if self.per_file else 3))
        if self.per_file:
            total += chunks(self.contigs_done, c, 16 + 8 + 8)
        return total + _heap_bytes(strings) + RESERVE_MARGIN

    def _reserve(self, nbytes: int, f: h5py.File) -> None:
        """Give the file disk blocks for its next nbytes (past what HDF5 has already allocated) BEFORE anything
        is written, or raise DiskFullError with the file untouched.

        Why: a write that fails for want of space inside an HDF5 flush leaves the file inconsistent (the flush
        goes on after a failed chunk write and rewrites object headers and B-trees in place, pointing at
        chunks past the end of the file), so the committed rows can no longer be read: 3 of 5 disk sizes tried
        ended in "cannot resume (addr overflow); starting over". Reserved blocks (fallocate with
        FALLOC_FL_KEEP_SIZE: the file's size does not change, HDF5 sees nothing) cannot run out, so when this
        succeeds the flush cannot fail for want of space, and when it fails nothing was written and the rerun
        resumes from every committed row. Blocks left unused are given back at close (_release_reserve).
        Where fallocate is not supported (not Linux, some network file systems)
        the free space is compared with nbytes instead: the same promise unless another process fills the disk
        in between (then the write fails and the message says the file may not resume)."""
        try:
            fd = os.open(self.partial, os.O_WRONLY)
        except OSError:
            return  # HDF5's own open of it worked; its writes will say what is wrong
        try:
            start = os.fstat(fd).st_size
            end = max(start, int(f.id.get_filesize())) + nbytes
            err = _fallocate_keep_size(fd, start, end - start)
        finally:
            os.close(fd)
        if err is None:
            self._reserved = max(self._reserved, end - start)
            return
        if err not in _NO_SPACE_ERRNOS:  # not supported here: compare with the free space instead
            try:
                if shutil.disk_usage(self.partial.parent).free >= end - start:
                    return
            except OSError:
                return
        why = "disk quota exceeded" if err == errno.EDQUOT else "no space left on device"
        raise DiskFullError(self._disk_full_message(why, need=end - start))

    def _release_reserve(self) -> None:
        """Give back the reserved blocks past the end of the closed file (HDF5 truncates it only when its end
        moved): ftruncate to its own size frees them on ext4 and XFS, a punched hole on tmpfs."""
        if not self._reserved:
            return
        with contextlib.suppress(OSError):
            fd = os.open(self.partial, os.O_WRONLY)
            try:
                size = os.fstat(fd).st_size
                os.ftruncate(fd, size)
                fn = _libc_fallocate()
                if fn is not None:
                    fn(fd, 3, size, self._reserved)  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
            finally:
                os.close(fd)
        self._reserved = 0

    def _check_free_space(self) -> None:
        try:
            free = shutil.disk_usage(self.path.parent if str(self.path.parent) else ".").free
        except OSError:
            return
        if free < MIN_FREE_BYTES:
            raise DiskFullError(self._disk_full_message("no space left on device"))

    def _disk_full_message(self, why: str, *, clean: bool = True, need: int | None = None) -> str:
        """clean: nothing was written (a reservation or the free-space check failed), so the promise of a
        resume from the committed rows holds; else a write failed inside HDF5 and the file may not resume."""
        where = disk_where(self.path.parent)
        if need is not None:
            where += f", the next write needs {human_size(need)}"
        saved = (f"the {count(self.n_done, 'record')} saved in {self.partial.name}" if self._f is not None and self.n_done
                 else f"the last records saved in {self.partial.name}")
        if not clean:
            then = (f"; the failed write may have left {self.partial.name} unreadable: the rerun resumes from {saved} "
                    "if it can read them, else says so and starts over")
        elif (self._f is not None and self.n_done) or (self._f is None and self.resume and self.partial.exists()):
            then = f", which resumes from {saved}"
        else:
            then = " (nothing was saved yet: it starts over)" if self._f is not None else ""
        return (f"{why} on the disk that holds {self.partial} ({where}); free some space or "
                f"choose -o on another disk, then rerun the same command{then}")


_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def _fallocate_keep_size(fd: int, offset: int, length: int) -> int | None:
    """Linux fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length): disk blocks for that range without changing
    the file's size. None on success, else the errno (EOPNOTSUPP, ENOSYS ... where it is not supported)."""
    if length <= 0:
        return None
    fn = _libc_fallocate()
    if fn is None:
        return errno.ENOSYS
    if fn(fd, 1, offset, length) == 0:  # 1 = FALLOC_FL_KEEP_SIZE
        return None
    return ctypes.get_errno() or errno.EIO


@functools.cache
def _libc_fallocate():
    """libc's fallocate (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate64
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn


def _heap_bytes(strings: Sequence[str]) -> int:
    """An upper bound of the global heap bytes of these variable-length strings: each object's 16-byte header
    and its UTF-8 bytes rounded up to 8, plus a new 4 KiB collection."""
    return sum(16 + (len(s.encode("utf-8")) + 7) // 8 * 8 for s in strings) + 4096


def _strings_bytes(f: h5py.File, name: str, n: int) -> int:
    """What _rebuild_strings(f, name, n) adds: a new dataset of n references and its strings."""
    chunks = -(-n // ROWS_PER_CHUNK) * ROWS_PER_CHUNK * 16
    return chunks + (_heap_bytes(list(f[name].asstr()[:n])) if n else 0) + RESERVE_MARGIN


def _extend(ds, start: int, data) -> None:
    """Write `data` at rows start.. of a resizable dataset, growing it to start + len(data)."""
    k = len(data)
    ds.resize(start + k, axis=0)
    if k:
        ds[start : start + k] = list(data) if ds.dtype.kind == "O" else np.asarray(data).astype(ds.dtype, copy=False)


def _rebuild_strings(f: h5py.File, name: str, n: int) -> None:
    """Rewrite the string dataset `name` (/ids, /contigs/name) as a fresh dataset holding its first n strings.

    Why: a kill after the ids of uncommitted rows reached the chunk on disk, but before their strings reached
    the global heap, leaves references to missing heap objects in the chunk past row n. Shrinking the
    dataset does not clear them, and HDF5 frees the old string of every element it overwrites, so the
    resumed run's first append of ids failed with "bad heap index" (found by tests/test_hpc.py's kill -9
    loop, about 1 run in 3 with a flush every 4 records). A new dataset starts from empty elements."""
    tmp = name + "_rebuilt"
    ids = f[name].asstr()[:n] if n else []
    if tmp in f:  # left by a resume that failed half-way (the old dataset is still complete)
        del f[tmp]
    # the new dataset is written in full before the old one goes, so a failure here loses no string
    ds = f.create_dataset(tmp, (n,), h5py.string_dtype("utf-8"), maxshape=(None,), chunks=(ROWS_PER_CHUNK,))
    if n:
        ds[:] = list(ids)
    f.flush()
    del f[name]
    f.move(tmp, name)


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


def check_output_not_input(output: str | Path, inputs: Sequence[str | Path], *, what: str = "input") -> None:
    """StoreError when the output file (or its .partial) is one of the inputs: writing it would destroy them."""
    for out in (Path(output), partial_path(output)):
        for p in inputs:
            if str(p) != "-" and same_file(p, out):
                same = "" if Path(p) == out else " (the same file)"
                raise StoreError(f"output {out} is the {what} {p}{same}: writing it would destroy the {what}; "
                                 "choose another -o")


def check_hdf5_name(path: str | Path) -> None:
    """An HDF5 output named NAME.gz is refused (OptionError, exit 2): every other output with a .gz name is
    gzip, and an HDF5 file cannot be (readers seek into it, a prefix's column chunks at a time), so writing
    plain HDF5 under that name would mislead."""
    name = Path(path).name
    if name.endswith(".gz"):
        raise OptionError(f"-o {path}: an HDF5 embedding file cannot be gzip-compressed; drop the .gz "
                          f"(-o {Path(path).with_name(name[:-3])})")


def _records(n) -> str:
    return count(int(n), "record") if n is not None else "? records"


def _check_output_dir(path: Path, example: str = "embeddings.h5") -> None:
    """The output's directory exists and is writable and the output is a plain file name; `example` is the
    file name a directory given as -o is told to add (an embedding file's by default; a table's for text)."""
    d = path.parent if str(path.parent) else Path(".")
    if not d.exists():
        raise StoreError(f"output directory {d} does not exist; create it (mkdir -p {d}) or choose another -o")
    if not d.is_dir():
        raise StoreError(f"output directory {d} is not a directory; choose another -o")
    if not os.access(d, os.W_OK | os.X_OK):
        raise StoreError(f"output directory {d} is not writable; choose a writable directory for -o")
    if path.is_dir():
        raise StoreError(f"output {path} is a directory; give a file name such as {path / example}")
    if is_special_file(path):  # the rename of PATH.partial onto it would replace a device such as /dev/null
        raise StoreError(f"output {path} is not a regular file (a device, pipe or socket); an embedding file is "
                         "written beside it and renamed onto it: choose a file name for -o")


def is_special_file(path: str | Path) -> bool:
    """Whether path exists and is neither a regular file nor a directory (/dev/null, a named pipe, a socket):
    an output that must be written in place, never replaced by a rename."""
    p = Path(path)
    return p.exists() and not p.is_file() and not p.is_dir()


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
            f"{path} already exists (complete, {_records(a.get('rows_committed'))}, model "
            f"{show_attr(a.get('model_name'))} {str(show_attr(a.get('model_hash')))[:12]}, window {show_attr(a.get('window'))}); "
            "pass --force to overwrite it or choose another -o"
        )
    raise StoreError(f"{path} already exists and is not an mrl-dna embedding file; choose another -o or pass --force to overwrite it")
