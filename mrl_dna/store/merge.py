"""`mrl-dna merge`: the shard files of one `embed --shard I/N` run (or any files of one model and options)
into the file a single run writes: same rows, same order, bitwise-equal vectors.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.shards import parse_shard
from mrl_dna.store.format import HOUSEKEEPING, MERGE_KEYS, same_attr, show_attr
from mrl_dna.store.reader import EmbeddingStore, take_rows
from mrl_dna.store.writer import EmbeddingWriter, check_output_not_input, same_file


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
            if not same_attr(first.attrs.get(key), s.attrs.get(key)):
                raise StoreError(f"{first.path} and {s.path} differ in {key} ({show_attr(first.attrs.get(key))} vs "
                                 f"{show_attr(s.attrs.get(key))}); merge only files from the same model and options")
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

    attrs = {k: v for k, v in first.attrs.items() if k not in HOUSEKEEPING and k not in ("dim", "dtype", "save_windows")}
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
                    vectors[m] = take_rows(s._f["embeddings"], ri[m])
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
            vec[m] = take_rows(t._dataset, src[m])
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
