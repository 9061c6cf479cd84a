"""Rows of one or more embedding files of one model seen as one (n, D) matrix, read by prefix and by row:
the records (one row per record, or per file with `embed --per-file`), or every saved window (`--level windows`).

Axis letters: n DB rows (all files), b rows in one block, k prefix width, m rows asked for.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.search.exact import SCORE_BUDGET_BYTES
from mrl_dna.store import STATUS_CODES, EmbeddingStore, WindowTable, check_comparable, check_distinct
from mrl_dna.vectors import normalize_rows

STATUS_OK = STATUS_CODES["ok"]


def check_dim(d: int, *, dim: int, matryoshka_dims: Sequence[int], source: str, option: str = "--dim") -> None:
    dims_s = ",".join(str(x) for x in matryoshka_dims)
    if not 1 <= d <= dim:
        raise ConfigError(
            f"{option} {d} is outside the DB's width 1..{dim} ({source}: matryoshka dims {dims_s}); "
            f"pick one of {dims_s}"
        )


class Level(str, enum.Enum):
    """What a DB row is (`search --level`, `index --level`)."""

    records = "records"  # one vector per record (or per file, embed --per-file): its windows' centroid
    windows = "windows"  # every window saved by embed --save-windows: hits carry [start, end) on a contig


class WindowPart:
    """The saved windows of one embedding file as rows, with the reader interface of EmbeddingStore."""

    def __init__(self, store: EmbeddingStore, table: WindowTable) -> None:
        self.store, self.table = store, table
        self.n, self.dim = len(table), store.dim
        self.attrs, self.model_hash, self.matryoshka_dims = store.attrs, store.model_hash, store.matryoshka_dims

    def read(self, dim: int | None = None, rows=None, normalize: bool = True) -> np.ndarray:
        return self.table.read(dim, rows, normalize)

    def iter_blocks(self, dim: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, block_rows):
            yield start, self.read(dim, slice(start, min(start + block_rows, self.n)))

    def windows(self) -> None:
        return None  # a window has no windows of its own

    def coordinates(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """[start, end) and the contig of windows `rows` (contig = the record id, or in a per-file file the
        name of the record inside the file)."""
        return self.table.start[rows], self.table.end[rows], self.store.window_contigs(self.table, rows)


class ArrayPart:
    """An in-memory (n, D) matrix with the reader interface of EmbeddingStore (read / iter_blocks)."""

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.asarray(vectors)
        self.n, self.dim = self.vectors.shape

    def read(self, dim: int | None = None, rows=None, normalize: bool = False) -> np.ndarray:
        x = self.vectors[rows if rows is not None else slice(None), : dim or self.dim]
        return normalize_rows(x) if normalize else np.asarray(x, dtype=np.float32)

    def iter_blocks(self, dim: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.n, block_rows):
            yield start, normalize_rows(self.vectors[start : start + block_rows, :dim])


@dataclass
class Database:
    """Rows of one or more embedding files of one model, seen as one (n, D) matrix.

    parts: EmbeddingStore readers (or ArrayPart); rows are numbered across parts in file order.
    """

    parts: list
    names: list[str]  # one per part (file path, or 'array')
    ids: list[str]  # (n,)
    valid: np.ndarray  # (n,) bool: status == ok
    dim: int
    matryoshka_dims: tuple[int, ...]
    model_hash: str
    attrs: dict  # attributes of the first part (window, stride, model_name, ...)
    level: Level = Level.records
    offsets: np.ndarray = dataclasses.field(init=False)  # (parts + 1,) first global row of each part

    def __post_init__(self) -> None:
        self.offsets = np.cumsum([0] + [p.n for p in self.parts])

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def from_arrays(
        cls,
        vectors: np.ndarray,
        *,
        ids: Sequence[str] | None = None,
        valid: np.ndarray | None = None,
        matryoshka_dims: Sequence[int] | None = None,
        model_hash: str = "",
    ) -> "Database":
        part = ArrayPart(vectors)
        return cls(
            parts=[part],
            names=["array"],
            ids=list(ids) if ids is not None else [f"r{i}" for i in range(part.n)],
            valid=np.ones(part.n, bool) if valid is None else np.asarray(valid, bool),
            dim=part.dim,
            matryoshka_dims=tuple(matryoshka_dims or (part.dim,)),
            model_hash=model_hash,
            attrs={},
        )

    @classmethod
    def open(cls, paths: Sequence[str | Path], level: Level = Level.records) -> "Database":
        """Open embedding files of comparable vectors (store.check_comparable: one model, window, stride, ...; else
        a StoreError naming two files and what differs), each file once (store.check_distinct); rows are their
        records, or with level=windows their saved windows (ids: the record each window belongs to)."""
        level = Level(level)
        check_distinct(paths, what="DB file")
        parts, names, ids, valid = [], [], [], []
        for path in paths:
            st = EmbeddingStore.open(path)
            if parts:
                try:
                    check_comparable([(names[0], parts[0].attrs), (str(path), st.attrs)],
                                     windows=level is Level.windows)
                except StoreError:
                    st.close()
                    raise
            names.append(str(path))
            ok = np.asarray(st.status) == STATUS_OK
            if level is Level.windows:
                table = st.windows()
                if table is None:
                    st.close()
                    raise StoreError(f"{path} has no saved windows for --level windows; re-embed it with "
                                     "mrl-dna embed --save-windows")
                rec_ids = st.ids
                parts.append(WindowPart(st, table))
                ids.extend(rec_ids[int(r)] for r in table.record)
                valid.append(ok[table.record])
                continue
            parts.append(st)
            ids.extend(str(x) for x in st.ids)
            valid.append(ok)
        db = cls(
            parts=parts,
            names=names,
            ids=ids,
            valid=np.concatenate(valid) if valid else np.zeros(0, bool),
            dim=int(parts[0].dim),
            matryoshka_dims=tuple(int(x) for x in parts[0].matryoshka_dims),
            model_hash=str(parts[0].model_hash),
            attrs=dict(parts[0].attrs),
            level=level,
        )
        if not db.valid.any():
            what = "no rows" if db.n == 0 else f"{db.n} rows but none with status ok"
            if level is Level.windows:
                what = "no saved windows" if db.n == 0 else what
            raise StoreError(
                f"DB {', '.join(names)} has {what}; nothing to search (embed sequences into it first)"
            )
        return db

    def locate(self, row: int) -> tuple[int, int]:
        """Global row -> (part index, row inside that part)."""
        p = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return p, int(row - self.offsets[p])

    def blocks(self, dim: int, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """(global start row, (b, dim) normalised prefix rows), reading column prefixes only (the parts'
        iter_blocks return normalize_rows(v[:dim]), EmbeddingStore's contract)."""
        for off, part in zip(self.offsets, self.parts):
            for start, block in part.iter_blocks(dim, block_rows):
                yield int(off) + int(start), block

    def rows(self, dim: int, rows: np.ndarray) -> np.ndarray:
        """(m, dim) normalised prefixes of the given sorted unique global rows."""
        if len(self.parts) == 1 and isinstance(self.parts[0], ArrayPart):  # in memory: one fancy index
            return normalize_rows(self.parts[0].vectors[rows, :dim])
        out = np.empty((len(rows), dim), dtype=np.float32)
        for p, part in enumerate(self.parts):
            lo, hi = np.searchsorted(rows, self.offsets[p : p + 2])
            if hi > lo:
                out[lo:hi] = _read_rows(part, dim, rows[lo:hi] - self.offsets[p])
        return normalize_rows(out)


def _read_rows(part, dim: int, local: np.ndarray) -> np.ndarray:
    """Rows of one part. Dense selections are read as contiguous slabs and picked in memory: h5py point
    selections cost per index and lose to a slab read once more than ~1/16 of the span is wanted."""
    lo, hi = int(local[0]), int(local[-1]) + 1
    if len(local) * 16 < hi - lo:
        return np.asarray(part.read(dim, rows=local, normalize=False), dtype=np.float32)
    out = np.empty((len(local), dim), dtype=np.float32)
    step = max(1024, SCORE_BUDGET_BYTES // (4 * dim * 4))
    for s in range(lo, hi, step):
        i, j = np.searchsorted(local, [s, min(s + step, hi)])
        if j > i:
            slab = np.asarray(part.read(dim, rows=slice(s, min(s + step, hi)), normalize=False))
            out[i:j] = slab[local[i:j] - s]
    return out
