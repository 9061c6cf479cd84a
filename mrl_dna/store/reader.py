"""Reading an embedding file: per-record columns, vectors by Matryoshka prefix (only the prefix's column
chunks are read), saved windows, and the summary `mrl-dna info` prints.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mrl_dna.version import __version__
from mrl_dna.console import count
from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.store.format import (FORMAT, FORMAT_VERSION, OPTIONAL_COLUMNS, ROWS_PER_CHUNK, STATUS_CODES, STATUS_NAMES,
                                  attr_to_py)
from mrl_dna.store.writer import partial_path
from mrl_dna.vectors import normalize_rows

# What every "is damaged" message ends with.
REPAIR = "re-embed it (or restore it from a copy)"

# A stored value beyond this is damage (rows are unit vectors); check_finite names the row.
BAD_VALUE = 1e6


@dataclass(frozen=True, eq=False)
class ContigTable:
    """The records (contigs) of each row of a per-file embedding file (c contigs, in file order)."""

    name: list[str]  # (c,) record ids
    record: np.ndarray  # (c,) int64 row in /embeddings (the file the contig belongs to)
    length: np.ndarray  # (c,) int64 bp

    def __len__(self) -> int:
        return len(self.record)


@dataclass(frozen=True, eq=False)
class WindowTable:
    """Saved per-window coordinates (m windows); vectors are read on demand with read()."""

    record: np.ndarray  # (m,) int64 row in /embeddings
    start: np.ndarray  # (m,) int64 bp, 0-based (on the window's contig in a per-file file)
    end: np.ndarray  # (m,) int64 bp, exclusive
    _dataset: Any  # h5py dataset /windows/embeddings (m, D)
    contig: np.ndarray | None = None  # (m,) int64 index into /contigs; per-file files only

    def __len__(self) -> int:
        return len(self.record)

    def read(self, dim: int | None = None, rows: slice | np.ndarray | None = None, normalize: bool = True) -> np.ndarray:
        """(m', k) float32 window vectors, prefix-normalised as EmbeddingStore.read."""
        return _read_prefix(self._dataset, len(self.record), dim, rows, normalize)


class EmbeddingStore:
    """Read-only view of an embedding file. Use EmbeddingStore.open(path); closes with close() or `with`."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self._f, self.path = f, path
        self.attrs: dict[str, Any] = {k: attr_to_py(f.attrs[k]) for k in f.attrs.keys()}
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
        fmt = attr_to_py(f.attrs.get("format"))
        if fmt != FORMAT or "embeddings" not in f:
            f.close()
            raise StoreError(f"{path} was not written by mrl-dna (no format attribute {FORMAT!r}); give an .h5 "
                             "file written by `mrl-dna embed`")
        version = int(attr_to_py(f.attrs.get("format_version", 0)))
        if version > FORMAT_VERSION:
            f.close()
            raise StoreError(f"{path} has format_version {version} > {FORMAT_VERSION} (this mrl-dna {__version__}); "
                             "upgrade mrl-dna to read it")
        try:
            store = cls(f, path)
            store._check_structure()
        except StoreError:
            f.close()
            raise
        except (OSError, KeyError, ValueError, TypeError) as e:
            f.close()
            raise StoreError(f"{path} is damaged ({e}); {REPAIR}") from None
        if not store.complete and not allow_incomplete:
            store.close()
            raise StoreError(f"{path} is incomplete ({count(store.n, 'record')} written by an interrupted run); rerun "
                             "the same `mrl-dna embed` command to resume it")
        return store

    def _check_structure(self) -> None:
        """StoreError (one line) unless the datasets are there with the shapes the attributes promise: cheap
        (shapes and the status column only), so every open does it. A complete file has exactly rows_committed
        rows in every per-record dataset; a .partial at least that many (a kill may leave uncommitted rows).
        Values (NaN rows, unit norms) are checked as they are read (read, take_rows) and by check()."""
        f, complete = self._f, self.complete

        def fail(what: str) -> None:
            raise StoreError(f"{self.path} is damaged: {what}; {REPAIR}")

        def rows(name: str, want: int, label: str) -> None:
            if name not in f:
                fail(f"/{name} is missing")
            ds = f[name]
            if not isinstance(ds, h5py.Dataset) or ds.ndim != (2 if name.endswith("embeddings") else 1):
                fail(f"/{name} is not a {2 if name.endswith('embeddings') else 1}-D dataset")
            if ds.shape[0] < want or (complete and ds.shape[0] != want):
                fail(f"/{name} has {ds.shape[0]:,} rows where {label} is {want:,}")
            if ds.ndim == 2 and ds.shape[1] != self.dim:
                fail(f"/{name} is {ds.shape[1]} wide where the file's dim is {self.dim}")

        committed = int(self.attrs.get("rows_committed", f["embeddings"].shape[0]))
        rows("embeddings", committed, "rows_committed")
        for name in ("ids", "lengths", "n_windows", "status", *(n for n in OPTIONAL_COLUMNS if n in f)):
            rows(name, self.n, "the number of records")
        bad = np.flatnonzero(~np.isin(self.status, list(STATUS_NAMES)))
        if len(bad):
            fail(f"row {bad[0]} has status {self.status[bad[0]]}, not one of {sorted(STATUS_NAMES)}")
        if "windows" in f:
            m = int(self.attrs.get("windows_committed", 0))
            for name in ("record", "start", "end", "embeddings", *(("contig",) if self.per_file else ())):
                rows(f"windows/{name}", m, "windows_committed")
        if self.per_file:
            c = int(self.attrs.get("contigs_committed", 0))
            for name in ("name", "record", "length"):
                rows(f"contigs/{name}", c, "contigs_committed")

    def check(self, block_rows: int = 65536) -> dict[str, int]:
        """The full check (`mrl-dna info --check`): every stored vector read once and found finite, rows with
        status ok unit-length at full width and the others zero, every saved window pointing at a row in order.
        StoreError (one line) at the first fault; else what was scanned: {'rows': n, 'windows': m}.
        Reads the whole file (a 2 GB file takes as long as reading 2 GB), which is why plain `info` does not."""
        ok = self.status == STATUS_CODES["ok"]
        tol = 1e-2 if self.dtype == "float16" else 1e-4
        for start, block in _blocks(self._f["embeddings"], self.n, block_rows):  # (b, D)
            norms = np.linalg.norm(block.astype(np.float64), axis=1)
            want = ok[start : start + len(block)]
            bad = np.flatnonzero(np.where(want, np.abs(norms - 1) > tol, norms != 0))
            if len(bad):
                r = start + int(bad[0])
                what = f"norm {norms[bad[0]]:.6g}, not 1" if want[bad[0]] else "a vector, but its status is not ok"
                raise StoreError(f"{self.path} is damaged: row {r} ({self.ids[r]!r}) of /embeddings has {what}; "
                                 f"{REPAIR}")
        table = self.windows()
        if table is not None:
            if len(table.record) and (table.record.min() < 0 or table.record.max() >= self.n
                                      or np.any(np.diff(table.record) < 0)):
                raise StoreError(f"{self.path} is damaged: /windows/record does not list rows 0..{self.n - 1} in "
                                 f"order; {REPAIR}")
            for _ in _blocks(table._dataset, len(table), block_rows):
                pass
        return {"rows": self.n, "windows": 0 if table is None else len(table)}

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

    @cached_property
    def checksum(self) -> np.ndarray:  # (n,) uint64 dna.checksum of each row's sequence; 0 where unknown
        return self._f["checksum"][: self.n] if "checksum" in self._f else np.zeros(self.n, np.uint64)

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
        check_dim(dim, self.dim, self.matryoshka_dims)
        for start in range(0, self.n, block_rows):
            yield start, self.read(dim, slice(start, min(start + block_rows, self.n)))

    @property
    def per_file(self) -> bool:
        """Whether a row is a whole input file (embed --per-file) rather than one record."""
        return bool(self.attrs.get("per_file", False))

    def windows(self) -> WindowTable | None:
        """The saved per-window table, or None when the file was written without --save-windows."""
        if "windows" not in self._f:
            return None
        g = self._f["windows"]
        m = min(int(self.attrs.get("windows_committed", g["record"].shape[0])), g["record"].shape[0])
        contig = g["contig"][:m] if "contig" in g else None
        return WindowTable(g["record"][:m], g["start"][:m], g["end"][:m], g["embeddings"], contig)

    def contigs(self) -> ContigTable | None:
        """The records of each row of a per-file file (embed --per-file), or None for rows of records."""
        return self._contigs

    @cached_property
    def _contigs(self) -> ContigTable | None:
        if "contigs" not in self._f:
            return None
        g = self._f["contigs"]
        c = min(int(self.attrs.get("contigs_committed", g["record"].shape[0])), g["record"].shape[0])
        return ContigTable(list(g["name"].asstr()[:c]), g["record"][:c], g["length"][:c])

    def window_contigs(self, table: WindowTable, rows: np.ndarray) -> list[str]:
        """The contig (record id) that windows `rows` of `table` lie on: the row's own id for rows of records,
        the contig's name in a per-file file."""
        rows = np.asarray(rows, dtype=np.int64)
        if table.contig is None:
            return [self.ids[int(r)] for r in table.record[rows]]
        names = self.contigs().name
        return [names[int(c)] for c in table.contig[rows]]

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
            # files written before --windows-stride saved their windows at the record stride
            "windows_stride": (a.get("windows_stride") or a.get("stride")) if w is not None else None,
            "per_file": self.per_file, **({"n_contigs": len(self.contigs())} if self.per_file else {}),
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


def check_dim(dim: int | None, D: int, dims: Sequence[int], width: str = "this file's width") -> int:
    """The prefix width to read (None: all D); ConfigError outside 1..D, naming whose width D is."""
    k = D if dim is None else int(dim)
    if k < 1 or k > D:
        raise ConfigError(f"dim {k} is outside 1..{D} ({width}); pick one of the Matryoshka dims "
                          f"{', '.join(map(str, dims))}")
    return k


def _read_prefix(ds, n: int, dim: int | None, rows, normalize: bool) -> np.ndarray:
    D = ds.shape[1]
    k = check_dim(dim, D, _dims_of(ds))
    if rows is None:
        rows = slice(0, n)
    if isinstance(rows, slice):
        start, stop, step = rows.indices(n)
        if step != 1:
            rows = np.arange(start, stop, step)
            out = take_rows(ds, rows, k)
        else:
            rows = slice(start, max(start, stop))
            out = ds[start:stop, :k] if stop > start else np.zeros((0, k), ds.dtype)
    else:
        idx = np.asarray(rows, dtype=np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise ConfigError(f"row index out of range 0..{n - 1}")
        rows = idx % n if n else idx
        out = take_rows(ds, rows, k)
    out = np.asarray(out)
    check_finite(out, ds, rows)
    if normalize and not (k == D and out.dtype == np.float32):  # stored float32 rows are unit at full D
        return normalize_rows(out)
    return out.astype(np.float32, copy=False)


def check_finite(block: np.ndarray, ds, rows: slice | np.ndarray) -> None:
    """StoreError naming the file and the first bad row unless every value of `block` (read from dataset `ds`:
    rows `rows`, a slice with step 1 or an index array) is finite and within a unit vector's range.

    Why on every read: a NaN row of a damaged file made search return fewer hits than -k and dist print
    similarity 0, silently. Cost: one float32 sum over values just read (a NaN or inf anywhere makes it
    non-finite; stored rows are unit vectors, so it cannot overflow), small beside the read and the products
    that follow. Only a block that fails is searched for its row."""
    if block.size == 0 or np.isfinite(block.sum(dtype=np.float32)):
        return
    flat = block.reshape(len(block), -1)
    bad = np.flatnonzero(~(np.abs(flat.astype(np.float32)) <= BAD_VALUE).all(1))  # NaN compares False
    i = int(bad[0]) if len(bad) else 0
    row = rows.start + i if isinstance(rows, slice) else int(np.asarray(rows)[i])
    raise StoreError(f"{ds.file.filename} is damaged: row {row} of {ds.name} holds NaN, inf or values far outside "
                     f"a unit vector; {REPAIR}")


def _blocks(ds, n: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """(start, (b, D) raw block) over the first n rows of a 2-D dataset, each checked finite."""
    for start in range(0, n, block_rows):
        block = np.asarray(ds[start : min(n, start + block_rows)])
        check_finite(block.astype(np.float32, copy=False), ds, slice(start, start + len(block)))
        yield start, block


def _dims_of(ds) -> tuple[int, ...]:
    return tuple(int(d) for d in ds.file.attrs.get("matryoshka_dims", [ds.shape[1]]))


def take_rows(ds, idx: np.ndarray, k: int | None = None, *, max_span: int = 65536) -> np.ndarray:
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
