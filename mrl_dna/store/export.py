"""`mrl-dna export`: one Matryoshka prefix per record as TSV (stdout, or a gzip file), .npy + ids, or Parquet
(pyarrow, an optional extra), for tools that do not read HDF5. Written under NAME.partial and renamed when
complete.
"""

from __future__ import annotations

import enum
import gzip
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna.errors import ConfigError, OptionError, disk_full_reason
from mrl_dna.store.format import STATUS_CODES
from mrl_dna.store.reader import EmbeddingStore, check_dim
from mrl_dna.store.textout import check_text_output, replace_when_done
from mrl_dna.vectors import warn_untrained_dim


class ExportFormat(str, enum.Enum):
    tsv = "tsv"  # id, then k floats, tab-separated; one record per line
    npy = "npy"  # (n, k) float32 .npy plus the ids, one per line, in NAME.ids.txt beside it
    parquet = "parquet"  # columns id (string) and embedding (fixed-size list of k float32): pandas, polars, duckdb


@dataclass(frozen=True)
class ExportSummary:
    n_records: int
    dim: int
    n_zero: int  # records without a vector (empty/all-N), exported as zero rows
    outputs: tuple[str, ...]


def export_store(path: str | Path, *, dim: int | None, fmt: str | ExportFormat, output: str | Path = "-",
                 force: bool = False, block_rows: int = 65536,
                 warn: Callable[[str], None] = lambda m: None) -> ExportSummary:
    """Write the first `dim` columns (re-normalised) of every row as TSV (to stdout when output is '-';
    gzip-compressed when the output name ends in .gz) or as .npy + ids .txt. Rows keep the file's order;
    records without a vector are zero rows. Files are written under a temporary name and renamed when
    complete; an existing file is replaced only with force=True, the input never. A `dim` that is not a
    trained Matryoshka dim is exported with search's and dist's warning, through `warn`."""
    fmt = ExportFormat(fmt)
    to_stdout = str(output) == "-"
    if fmt is ExportFormat.npy:
        if to_stdout:
            raise ConfigError("--format npy cannot go to stdout; give -o FILE.npy")
        out = Path(output)
        if out.name.endswith(".gz"):
            raise OptionError(f"-o {out}: --format npy writes an uncompressed .npy (numpy can memory-map it); "
                              "drop the .gz, or use --format tsv for a gzip-compressed table")
        if out.suffix != ".npy":
            out = out.with_name(out.name + ".npy")
        targets = (out, out.with_suffix(".ids.txt"))
    elif fmt is ExportFormat.parquet:
        if to_stdout:
            raise ConfigError("--format parquet cannot go to stdout; give -o FILE.parquet")
        if str(output).endswith(".gz"):
            raise OptionError(f"-o {output}: Parquet compresses its columns itself; drop the .gz")
        _pyarrow()  # a missing extra is named before anything is written
        targets = (Path(output),)
    else:
        targets = () if to_stdout else (Path(output),)
    for t in targets:  # the checks of every file a command writes whole (a device such as /dev/null: in place)
        check_text_output(t, inputs=[path], force=force, example=f"embeddings.{fmt.value}")
    with EmbeddingStore.open(path) as store:
        k = check_dim(dim, store.dim, store.matryoshka_dims)
        warn_untrained_dim(k, store.matryoshka_dims, warn)
        n_zero = int(np.count_nonzero(store.status != STATUS_CODES["ok"]))
        ids = store.ids
        if to_stdout:
            _write_tsv(store, k, ids, sys.stdout, block_rows)
            return ExportSummary(n_records=len(ids), dim=k, n_zero=n_zero, outputs=("-",))
        with replace_when_done(targets) as tmps:  # a full disk is one line, once the partial files are gone
            if fmt is ExportFormat.tsv:
                opener = gzip.open if targets[0].name.endswith(".gz") else open
                with opener(tmps[0], "wt", encoding="utf-8", newline="\n") as fh:
                    _write_tsv(store, k, ids, fh, block_rows)
            elif fmt is ExportFormat.parquet:
                _write_parquet(store, k, ids, tmps[0], block_rows)
            else:
                _write_npy(store, k, tmps[0], block_rows)
                with open(tmps[1], "w", encoding="utf-8", newline="\n") as fh:
                    fh.writelines(f"{i}\n" for i in ids)
    return ExportSummary(n_records=len(ids), dim=k, n_zero=n_zero, outputs=tuple(map(str, targets)))


def _write_tsv(store: EmbeddingStore, k: int, ids: list[str], fh, block_rows: int) -> None:
    for start, block in store.iter_blocks(k, block_rows):
        # %.9g round-trips float32 exactly
        fh.writelines(ids[start + j] + "\t" + "\t".join(f"{x:.9g}" for x in row.tolist()) + "\n"
                      for j, row in enumerate(block))
    fh.flush()


def _write_npy(store: EmbeddingStore, k: int, path: Path, block_rows: int) -> None:
    """An (n, k) little-endian float32 .npy written front to back. Not np.lib.format.open_memmap: its file is
    sparse, so a full disk surfaces as SIGBUS on a page store (the process dies, "Bus error", the partial
    stays) instead of an OSError; the space is reserved first where the filesystem can (posix_fallocate)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (store.n, k)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        _reserve(fh, fh.tell() + 4 * store.n * k)
        for _, block in store.iter_blocks(k, block_rows):  # (b, k)
            fh.write(np.ascontiguousarray(block, dtype="<f4").data)


def _reserve(fh, size: int) -> None:
    """Allocate `size` bytes of fh's file now, so a disk without room fails before any row is written;
    a filesystem that cannot (or a platform without posix_fallocate) is left to fail on the write."""
    fh.flush()
    try:
        os.posix_fallocate(fh.fileno(), 0, size)
    except AttributeError:
        pass
    except OSError as e:
        if disk_full_reason(e):
            raise


def _pyarrow():
    """pyarrow and pyarrow.parquet, or a ConfigError naming the install (Parquet is an optional extra)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ConfigError("--format parquet needs pyarrow, which is not installed; pip install 'mrl-dna[parquet]' "
                          "(or pip install pyarrow), or use --format tsv or npy") from None
    return pyarrow, pyarrow.parquet


def _write_parquet(store: EmbeddingStore, k: int, ids: list[str], path: Path, block_rows: int) -> None:
    pa, pq = _pyarrow()
    schema = pa.schema([("id", pa.string()), ("embedding", pa.list_(pa.float32(), k))])
    with pq.ParquetWriter(str(path), schema) as writer:
        for start, block in store.iter_blocks(k, block_rows):  # (b, k)
            flat = pa.array(np.ascontiguousarray(block, np.float32).reshape(-1), pa.float32())
            emb = pa.FixedSizeListArray.from_arrays(flat, k)
            writer.write_table(pa.table({"id": pa.array(ids[start : start + len(block)], pa.string()), "embedding": emb},
                                        schema=schema))
