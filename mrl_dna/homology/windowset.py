"""The saved windows of one genome (a record, or a file embedded with --per-file) as one `WindowSet`, read from
an embedding file written with `embed --save-windows`.

Vectors are kept as stored (float16 files stay float16: half the memory); every product is computed in float32
(hits.py). Glossary: n windows, c contigs, D full width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrl_dna.errors import StoreError
from mrl_dna.store import EmbeddingStore


@dataclass(frozen=True, eq=False)
class WindowSet:
    """The windows of one genome, sorted by (contig, start): what `dist --level windows` compares."""

    name: str  # the row's id (a record id, or the file name of an --per-file row)
    vecs: np.ndarray  # (n, D) unit rows at full width, float32 or float16 as stored
    contig: np.ndarray  # (n,) int64 contig index (0.. c-1)
    start: np.ndarray  # (n,) int64 bp, 0-based, on the contig
    end: np.ndarray  # (n,) int64 bp, exclusive
    contig_length: np.ndarray  # (c,) int64 bp of every contig (windowless ones too: they count in the AF)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def length(self) -> int:
        """Bases of the genome (all its contigs)."""
        return int(self.contig_length.sum())

    def take(self, rows: np.ndarray) -> WindowSet:
        """The windows `rows` (sorted) of this set, same contigs (a query side scored at a coarser stride)."""
        return WindowSet(self.name, self.vecs[rows], self.contig[rows], self.start[rows], self.end[rows],
                         self.contig_length)

    def owned_bp(self) -> np.ndarray:
        """(n,) bp each window stands for: the bases nearer its midpoint than any other window's on its contig
        (the first window of a contig owns from base 0, the last to the contig's end), a partition of the
        windowed bases, so AF = the sum over homologous windows / length."""
        n = len(self)
        if n == 0:
            return np.zeros(0, np.int64)
        mid2 = self.start + self.end  # twice the midpoints, integers
        same_prev = np.r_[False, self.contig[1:] == self.contig[:-1]]
        same_next = np.r_[self.contig[:-1] == self.contig[1:], False]
        cut = (mid2[:-1] + mid2[1:]) // 4  # integer cut between consecutive midpoints
        lo = np.where(same_prev, np.r_[0, cut], 0)
        hi = np.where(same_next, np.r_[cut, 0], self.contig_length[self.contig])
        return np.maximum(hi - lo, 0).astype(np.int64)


def from_arrays(name: str, vecs: np.ndarray, start: np.ndarray, end: np.ndarray, contig_length,
                contig: np.ndarray | None = None) -> WindowSet:
    """A WindowSet from in-memory windows (e.g. embed_sequences' window_spans / window_vectors), sorted by
    (contig, start). contig None: one contig."""
    start, end = np.asarray(start, np.int64), np.asarray(end, np.int64)
    contig = np.zeros(len(start), np.int64) if contig is None else np.asarray(contig, np.int64)
    order = np.lexsort((start, contig))
    return WindowSet(name, np.asarray(vecs)[order], contig[order], start[order], end[order],
                     np.atleast_1d(np.asarray(contig_length, np.int64)))


def saved_windows_stride(store: EmbeddingStore) -> int:
    """The stride the file's saved windows were cut at (attribute windows_stride; files written before it
    existed saved their windows at the record stride)."""
    return int(store.attrs.get("windows_stride") or store.attrs.get("stride"))


class WindowReader:
    """The saved windows of a file, one row at a time: the window table (coordinates) is read and indexed once,
    each row's vectors when asked. StoreError (one line) when the file was written without --save-windows."""

    def __init__(self, store: EmbeddingStore) -> None:
        table = store.windows()
        if table is None:
            raise StoreError(f"{store.path} has no saved windows; embed it again with `mrl-dna embed --save-windows` "
                             "(window-level comparison needs them)")
        self.store, self.table = store, table
        self._order = np.argsort(table.record, kind="stable")
        self._bounds = np.searchsorted(table.record[self._order], np.arange(store.n + 1))
        self._contigs = store.contigs()

    def __call__(self, row: int) -> WindowSet | None:
        """The row's windows, or None for a row without any (empty or all-N)."""
        sel = np.sort(self._order[self._bounds[row]: self._bounds[row + 1]])
        if len(sel) == 0:
            return None
        t, st = self.table, self.store
        vecs = t._dataset[sel[0]: sel[-1] + 1][sel - sel[0]]
        if self._contigs is None:
            return from_arrays(st.ids[row], vecs, t.start[sel], t.end[sel], [st.lengths[row]])
        mine = np.flatnonzero(self._contigs.record == row)  # this file's contigs, in file order
        local = np.searchsorted(mine, t.contig[sel])
        return from_arrays(st.ids[row], vecs, t.start[sel], t.end[sel], self._contigs.length[mine], local)


def read_window_sets(store: EmbeddingStore, rows=None) -> list[WindowSet | None]:
    """One WindowSet per row of the file (`rows`: only these, in this order), None for rows without windows
    (empty or all-N). StoreError (one line) when the file was written without --save-windows."""
    reader = WindowReader(store)
    return [reader(int(r)) for r in (np.arange(store.n) if rows is None else rows)]
