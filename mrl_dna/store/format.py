"""The embedding file's layout: names, status codes, chunking, the record a row holds, attribute values.

See `mrl_dna/store/__init__.py` for the layout and why it is chunked as it is.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from typing import Any

import h5py
import numpy as np


FORMAT = "mrl-dna-embeddings"


FORMAT_VERSION = 1


STATUS_CODES = {"ok": 0, "empty": 1, "all_n": 2}


STATUS_NAMES = {v: k for k, v in STATUS_CODES.items()}


ROWS_PER_CHUNK = 512  # 16 KiB chunks at float32 x 8 columns; see module docstring


DTYPES = ("float32", "float16")


# Options that must agree between a partial file and the run that resumes it (and between merged shards).
# (max_n_fraction changes which windows are kept, hence the vectors; absent on both sides compares equal.)
# per_file is written only when true (embed --per-file), so files written before it compare equal to rows of records.
# numerics (the device and the batch shape: embed.pipeline.numerics) decides the last bits of every vector, so a
# resume or a merge never mixes two (a file of an older mrl-dna has none: it resumes or merges only with its own).
RESUME_KEYS = ("model_hash", "window", "stride", "dim", "dtype", "matryoshka_dims", "pooling", "max_n_fraction",
               "shard", "save_windows", "per_file", "numerics", "windows_stride")


MERGE_KEYS = ("model_hash", "window", "stride", "dim", "dtype", "matryoshka_dims", "pooling", "max_n_fraction",
              "save_windows", "per_file", "numerics", "windows_stride")


# What makes the vectors of two files comparable (search, dist, merge --concat, query files): one model and the
# options that shape a vector; dtype, save_windows, shard and per_file may differ (store/compat.py says why).
COMPARABLE_KEYS = ("model_hash", "window", "stride", "max_n_fraction", "pooling", "dim", "matryoshka_dims")


# What embed records of its whole (unsharded) input: units (records, or files with per_file), their bases and a
# sha256 of their (id, bp) listing (embed.run.input_identity). Shards of one run agree on all three (merge checks it);
# files written before issue 22 and runs reading stdin have none.
INPUT_KEYS = ("input_records", "input_bp", "input_digest")


# Per-record datasets that files written by older versions may lack (readers then assume defaults).
OPTIONAL_COLUMNS = ("n_skipped", "order", "checksum")


# Attributes the writer owns; a merge does not copy them from its inputs.
HOUSEKEEPING = ("format", "format_version", "created", "complete", "rows_committed", "windows_committed",
                "contigs_committed", "mrl_dna_version", "command", "shard", "merged_from")


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
    # embed --per-file: a row is a file; `contigs` lists its records (id, bp) in file order, and window_contigs
    # (k,) int64 says which of them each window lies in (window_spans are then coordinates on that contig)
    contigs: tuple[tuple[str, int], ...] = ()
    window_contigs: np.ndarray | None = None
    checksum: int = 0  # dna.checksum of the record's tokens (a file's: embed.records.file_checksum); 0 = unknown


@dataclass(frozen=True, eq=False)
class WindowRows:
    """Saved windows to append (w of them): the row of the record each belongs to (a row of the file being
    written), [start, end) in bp, their (w, D) vectors, and in a per-file file the contig each lies on (an
    index into that file's /contigs)."""

    record: np.ndarray  # (w,) int64
    start: np.ndarray  # (w,) int64
    end: np.ndarray  # (w,) int64
    vectors: np.ndarray  # (w, D) any float dtype
    contig: np.ndarray | None = None  # (w,) int64, per-file files only


@dataclass(frozen=True, eq=False)
class ContigRows:
    """Contigs to append to a per-file file's /contigs (c of them): the row of the file each belongs to, its
    record id and its length in bp."""

    record: np.ndarray  # (c,) int64
    name: list[str]
    length: np.ndarray  # (c,) int64


def chunk_columns(matryoshka_dims: Sequence[int], dim: int) -> int:
    """Column width of a chunk: the gcd of the Matryoshka dims and D, so each prefix ends on a chunk edge.
    Dims with a tiny gcd (e.g. 8, 100, 129) fall back to the smallest dim: a prefix then over-reads at most
    one column chunk per row block."""
    g = reduce(math.gcd, [*matryoshka_dims, dim])
    return g if g >= 4 else max(1, min([*matryoshka_dims, dim]))


def attr_value(v: Any) -> Any:
    """A Python value as an HDF5 attribute: None -> '', enums -> value, paths -> str, sequences -> arrays."""
    if v is None:
        return ""
    if isinstance(v, enum.Enum):
        return attr_value(v.value)
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (list, tuple)):
        items = [attr_value(x) for x in v]
        if items and all(isinstance(x, str) for x in items):
            return np.asarray(items, dtype=h5py.string_dtype("utf-8"))  # h5py cannot store numpy '<U' arrays
        return np.asarray(items)
    return v


def attr_to_py(v: Any) -> Any:
    """An HDF5 attribute as plain Python (for comparison and JSON)."""
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray):
        return [attr_to_py(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def same_attr(a: Any, b: Any) -> bool:
    return attr_to_py(attr_value(a)) == attr_to_py(attr_value(b))


def show_attr(v: Any) -> str:
    v = attr_to_py(attr_value(v))
    return "(none)" if v in ("", None) else str(v)
