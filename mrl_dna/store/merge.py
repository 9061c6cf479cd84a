"""`mrl-dna merge`: the shard files of one `embed --shard I/N` run (or any files of one model and options)
into the file a single run writes: same rows, same order, bitwise-equal vectors; and `merge --concat`:
separate databases of one model (distinct ids) one after the other.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.store.shards import parse_shard
from mrl_dna.store.compat import check_comparable, check_distinct
from mrl_dna.console import count, warn
from mrl_dna.store.format import HOUSEKEEPING, INPUT_KEYS, MERGE_KEYS, ContigRows, WindowRows, same_attr, show_attr
from mrl_dna.store.reader import EmbeddingStore, check_finite, take_rows
from mrl_dna.store.writer import EmbeddingWriter, check_output_not_input


@dataclass(frozen=True)
class MergeSummary:
    output: Path
    n_records: int
    n_inputs: int
    ordered_by: str  # 'order' (per-row /order), 'shard' (shard index), 'arguments' or 'concat' (--concat)
    windows_dropped: tuple[str, ...] = ()  # --concat: inputs without saved windows, so the output has none


def merge_stores(inputs: Sequence[str | Path], output: str | Path, *, force: bool = False, concat: bool = False,
                 block_rows: int = 65536) -> MergeSummary:
    """Combine embedding files into one.

    Default (shards): typically the shards of one `embed --shard I/N` run. All inputs must be complete, agree
    on MERGE_KEYS and record one input (INPUT_KEYS: the same records, lengths and order; files without them get
    a warning), and their rows must hold each record index of that input once. Rows are ordered by /order (each record's index in the full input) when every input
    has it, else by shard index when all inputs are shards, else by argument order; a complete set of shards
    merges into the file an unsharded run writes (same rows, same order, bitwise-equal vectors).

    concat=True (`merge --concat`): separate databases of comparable vectors (compat.check_comparable) and one
    per_file value, with distinct ids,
    rows in argument order, file after file; vectors are copied (float16 widened to float32 unless every
    input is float16); saved windows (and a per-file file's contigs) are kept when every input has them.
    Memory: one block of rows at a time."""
    paths = [Path(p) for p in inputs]
    output = Path(output)
    if len(paths) < 1:
        raise ConfigError("merge needs at least one input file")
    check_distinct(paths, what="file" if concat else "shard file")
    check_output_not_input(output, paths)
    stores = [EmbeddingStore.open(p) for p in paths]
    try:
        if concat:
            return _concat(stores, output, force=force, block_rows=block_rows)
        return _merge(stores, output, force=force, block_rows=block_rows)
    finally:
        for s in stores:
            s.close()


def _merge(stores: list[EmbeddingStore], output: Path, *, force: bool, block_rows: int) -> MergeSummary:
    first = stores[0]
    for s in stores[1:]:
        for key in MERGE_KEYS:
            if not same_attr(first.attrs.get(key), s.attrs.get(key)):
                raise StoreError(f"{first.path} and {s.path} differ in {key} ({show_attr(first.attrs.get(key))} vs "
                                 f"{show_attr(s.attrs.get(key))}); merge only files from the same model and options")
    total = _check_one_input(stores)  # the input's record count, or None when the files do not record it
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
            raise StoreError(f"record index {dup} appears more than once (in {', '.join(holders)}): these files "
                             "hold the same records (a shard given twice, or whole files of one input); merge each "
                             "shard once, or pass --concat to combine separate databases")
        _check_covered(uniq, total)
        perm = np.argsort(orders, kind="stable")
        src_file, src_row = src_file[perm], src_row[perm]
        ordered_by = "order"
    _check_unique_ids(stores)
    attrs = {k: v for k, v in first.attrs.items() if k not in HOUSEKEEPING and k not in ("dim", "dtype", "save_windows")}
    attrs.update(shard="", command=" ".join(sys.argv), merged_from=[str(s.path) for s in stores])
    _copy_rows(stores, src_file, src_row, output, attrs=attrs, dtype=first.dtype,
               save_windows=bool(first.attrs.get("save_windows", False)), force=force, block_rows=block_rows)
    return MergeSummary(output=output, n_records=len(src_file), n_inputs=len(stores), ordered_by=ordered_by)


def _concat(stores: list[EmbeddingStore], output: Path, *, force: bool, block_rows: int) -> MergeSummary:
    first = stores[0]
    check_comparable([(str(s.path), s.attrs) for s in stores])
    for s in stores[1:]:
        if not same_attr(first.attrs.get("per_file"), s.attrs.get("per_file")):
            kind = {True: "rows of files (embed --per-file)", False: "rows of records"}
            raise StoreError(f"{first.path} holds {kind[first.per_file]} and {s.path} {kind[s.per_file]}; merge "
                             "--concat writes one layout: embed both with or both without --per-file")
    seen: dict[str, EmbeddingStore] = {}
    for s in stores:
        for rid in s.ids:
            other = seen.setdefault(rid, s)
            if other is not s:
                raise StoreError(f"record id {rid!r} is in both {other.path} and {s.path}; merge --concat needs "
                                 "distinct ids: rename the records in one input and re-embed it")
    no_windows = tuple(str(s.path) for s in stores if s.windows() is None)
    src_file = np.concatenate([np.full(s.n, i, np.int64) for i, s in enumerate(stores)])  # (n,)
    src_row = np.concatenate([np.arange(s.n, dtype=np.int64) for s in stores])  # (n,)
    drop = HOUSEKEEPING + ("dim", "dtype", "save_windows", "per_file", "inputs") + INPUT_KEYS  # several inputs
    attrs = {k: v for k, v in first.attrs.items() if k not in drop}
    attrs.update(shard="", command=" ".join(sys.argv), merged_from=[str(s.path) for s in stores],
                 inputs=" ".join(str(s.attrs.get("inputs", "")) for s in stores),
                 numerics=" | ".join(dict.fromkeys(str(s.attrs.get("numerics", "")) for s in stores)))
    dtype = "float16" if all(s.dtype == "float16" for s in stores) else "float32"
    _copy_rows(stores, src_file, src_row, output, attrs=attrs, dtype=dtype, save_windows=not no_windows, force=force,
               block_rows=block_rows, order=np.arange(len(src_file), dtype=np.int64))
    return MergeSummary(output=output, n_records=len(src_file), n_inputs=len(stores), ordered_by="concat",
                        windows_dropped=no_windows if len(no_windows) < len(stores) else ())


def _copy_rows(stores: list[EmbeddingStore], src_file: np.ndarray, src_row: np.ndarray, output: Path, *, attrs: dict,
               dtype: str, save_windows: bool, force: bool, block_rows: int, order: np.ndarray | None = None) -> None:
    """Write output row i from row src_row[i] of stores[src_file[i]], with its windows and contigs; /order from
    the inputs, or `order` (n,) when given."""
    first = stores[0]
    per_file = first.per_file
    tables = [s.windows() for s in stores] if save_windows else [None] * len(stores)
    contigs = [s.contigs() for s in stores] if per_file else [None] * len(stores)
    woffs = [None if t is None else _row_offsets(t.record, s.n) for s, t in zip(stores, tables)]
    coffs = [None if c is None else _row_offsets(c.record, s.n) for s, c in zip(stores, contigs)]
    with EmbeddingWriter(output, attrs=attrs, dim=first.dim, dtype=dtype, save_windows=save_windows,
                         per_file=per_file, overwrite=force) as w:
        n = len(src_file)
        for a in range(0, n, block_rows):
            fi, ri = src_file[a : a + block_rows], src_row[a : a + block_rows]  # (b,)
            b = len(fi)
            cols: dict[str, Any] = {}
            for name in ("lengths", "n_windows", "n_skipped", "status", "order", "checksum"):
                col = np.empty(b, dtype=getattr(first, name).dtype)
                for i, s in enumerate(stores):
                    m = fi == i
                    if m.any():
                        col[m] = getattr(s, name)[ri[m]]
                cols[name] = col
            if order is not None:
                cols["order"] = order[a : a + b]
            ids = np.empty(b, dtype=object)
            vectors = np.empty((b, first.dim), dtype=dtype)  # (b, D): a bitwise copy unless float16 is widened
            for i, s in enumerate(stores):
                m = fi == i
                if m.any():
                    ids[m] = [s.ids[r] for r in ri[m]]
                    vectors[m] = take_rows(s._f["embeddings"], ri[m])
                    check_finite(vectors[m], s._f["embeddings"], ri[m])  # never copy a damaged row
            rows_out = w.n_done + np.arange(b)  # (b,) output rows of this block
            crows, cfirst = None, None
            if per_file:
                csrc, cfile, cpos = _ragged(coffs, fi, ri)  # (c,) source contig, its input, its row in the block
                crows = ContigRows(record=rows_out[cpos], name=[contigs[f].name[c] for f, c in zip(cfile, csrc)],
                                   length=np.array([contigs[f].length[c] for f, c in zip(cfile, csrc)], np.int64))
                counts = np.bincount(cpos, minlength=b)
                cfirst = w.contigs_done + np.concatenate([[0], np.cumsum(counts)[:-1]])  # (b,) first output contig
            windows = None
            if save_windows:
                windows = _gather_windows(tables, woffs, coffs, fi, ri, rows_out, cfirst, dim=first.dim, dtype=dtype)
            w._append_arrays(ids=list(ids), vectors=vectors, windows=windows, contigs=crows, **cols)
        w.finish()


def _row_offsets(record: np.ndarray, n: int) -> np.ndarray:
    """(n + 1,) offsets of each row's items (windows, contigs) in a table sorted by row."""
    return np.concatenate([[0], np.cumsum(np.bincount(record, minlength=n))])


def _ragged(offs, fi: np.ndarray, ri: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The items (windows or contigs) of rows (fi, ri) in row order -> (source item index, input index,
    position of its row in fi), each (w,)."""
    starts = np.array([offs[f][r] for f, r in zip(fi, ri)], dtype=np.int64)  # (b,)
    counts = np.array([offs[f][r + 1] - offs[f][r] for f, r in zip(fi, ri)], dtype=np.int64)  # (b,)
    first_out = np.concatenate([[0], np.cumsum(counts)[:-1]])  # (b,) first output item of each row
    src = np.repeat(starts - first_out, counts) + np.arange(int(counts.sum()))  # (w,)
    return src, np.repeat(fi, counts), np.repeat(np.arange(len(fi)), counts)


def _gather_windows(tables, woffs, coffs, fi, ri, rows_out, cfirst, *, dim, dtype) -> WindowRows:
    """The windows of output rows rows_out (sources fi, ri), in row order, with record (and contig) re-pointed."""
    src, wfile, pos = _ragged(woffs, fi, ri)
    total = len(src)
    start, end = np.empty(total, np.int64), np.empty(total, np.int64)
    contig = np.empty(total, np.int64) if cfirst is not None else None
    vec = np.empty((total, dim), dtype=dtype)
    for i, t in enumerate(tables):
        m = wfile == i
        if m.any():
            start[m], end[m] = t.start[src[m]], t.end[src[m]]
            vec[m] = take_rows(t._dataset, src[m])
            check_finite(vec[m], t._dataset, src[m])
            if contig is not None:  # contig index relative to its row's first contig, then the output's
                first_src = np.asarray(coffs[i])[ri[pos[m]]]
                contig[m] = cfirst[pos[m]] + t.contig[src[m]] - first_src
    return WindowRows(record=rows_out[pos], start=start, end=end, vectors=vec, contig=contig)


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


def _check_covered(uniq: np.ndarray, total: int | None) -> None:
    """The rows' record indexes (unique, sorted) must be 0..total-1 (0..max when the input's size is unknown)."""
    n, top = len(uniq), int(uniq[-1])
    if n == (total if total is not None else top + 1) and top == n - 1:
        return
    if total is not None and top >= total:
        what = f"record index {top} is beyond their input's {count(total, 'record')}"
    else:
        gap = int(np.flatnonzero(uniq != np.arange(n))[0]) if top >= n else n  # the first index not held
        what = (f"the inputs hold {n:,} of their input's {count(total, 'record')} (record index {gap} is in none of them)"
                if total is not None else f"record index {gap} is in none of the inputs (they hold {count(n, 'record')}, "
                                          f"indexes up to {top})")
    raise StoreError(f"{what}: they are not all the parts of one run; merge every shard of one `embed --shard` run")


def _check_one_input(stores: list[EmbeddingStore]) -> int | None:
    """The number of records (files, with --per-file) of the one input all the files were embedded from, after
    checking that they record the same one (INPUT_KEYS: count, bases and the digest of its listing); a
    StoreError naming two files and their inputs when they differ. Files written before embed recorded its
    input (or from stdin) cannot prove it: a warning says so and None is returned (the caller then checks only
    that the rows hold record indexes 0..n-1 once each)."""
    unknown = [str(s.path) for s in stores if not all(k in s.attrs for k in INPUT_KEYS)]
    if unknown:
        warn(f"{', '.join(unknown)} {'does' if len(unknown) == 1 else 'do'} not record the input {'it was' if len(unknown) == 1 else 'they were'} "
             "embedded from (written by an older mrl-dna, or from stdin): merge checks only that the rows hold each "
             "record index once, not that every shard comes from one input")
        return None
    first = stores[0]
    for s in stores[1:]:
        if any(not same_attr(first.attrs[k], s.attrs[k]) for k in INPUT_KEYS):
            a, b = _input_of(first), _input_of(s)
            what = (f"{a} vs {b}" if a != b else
                    f"{a} in both, but other record names or lengths: the input changed between the two runs")
            raise StoreError(f"{first.path} and {s.path} are not parts of one run: they were embedded from two different "
                             f"inputs ({what}); merge the shards of one run, or pass --concat to combine separate "
                             "databases")
    return int(first.attrs["input_records"])


def _input_of(s: EmbeddingStore) -> str:
    unit = "file" if s.per_file else "record"
    return f"{show_attr(s.attrs.get('inputs'))}: {count(int(s.attrs['input_records']), unit)}, {int(s.attrs['input_bp']):,} bp"


def _check_unique_ids(stores: list[EmbeddingStore]) -> None:
    seen: dict[str, int] = {}
    for i, s in enumerate(stores):
        for rid in s.ids:
            if rid in seen:
                other = stores[seen[rid]].path
                where = f"{s.path}" if seen[rid] == i else f"{other} and {s.path}"
                raise StoreError(f"record id {rid!r} occurs twice ({where}); merge files with distinct ids")
            seen[rid] = i
