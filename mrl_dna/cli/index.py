"""mrl-dna index: a FAISS index over a small Matryoshka prefix, used by `mrl-dna search` as its shortlist.

Example:

    $ mrl-dna index db.h5 --dim 16
    mrl-dna: wrote db.h5.faiss (flat, dim 16, 1,000,000 rows) and db.h5.faiss.json

The index lies beside the DB (DB.h5.faiss + DB.h5.faiss.json with the DB's model hash and row count;
--level windows: DB.h5.windows.faiss over every saved window, used by search --level windows); search picks it
up automatically as the first funnel stage and reranks exactly. An index that no longer
matches its DB (re-embedded, merged, other model) or cannot be read (damaged, truncated) is ignored with a warning. Needs the faiss extra:
pip install 'mrl-dna[faiss]'.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import dim_option, existing, force_option, quiet_option, set_threads, threads_option
from mrl_dna.search import IndexKind, Level, build_index


def command(
    db: Path = typer.Argument(..., callback=existing(what="DB"), help="Embedding file (HDF5) to index; the index is written beside it, as DB.h5.faiss (+ .json), where search finds it."),
    dim: int = dim_option("Prefix width indexed (a small Matryoshka dim).", default=16),
    kind: IndexKind = typer.Option(IndexKind.flat, "--kind", help="flat: exact inner product; ivf: inverted lists (approximate, faster beyond ~1M rows); hnsw: graph index, the shortlist that meets 99% same-top-10 at >10x fewer multiply-adds (bench/HISTORY.md)."),
    nlist: int | None = typer.Option(None, "--nlist", min=1, help="ivf: number of lists, at most the rows indexed (default ~4*sqrt(rows), at most rows/39)."),
    nprobe: int | None = typer.Option(None, "--nprobe", min=1, help="ivf: lists searched per query (default nlist/8)."),
    level: Level = typer.Option(Level.records, "--level", help="Index the records (DB.h5.faiss) or every saved window (DB.h5.windows.faiss; a DB embedded with --save-windows), for search --level windows."),
    force: bool = force_option("an existing DB.h5.faiss index"),
    threads: int = threads_option(),
    quiet: bool = quiet_option("No summary on stderr."),
) -> None:
    """Build a FAISS index over the first DIM dims of an embedding file, for `mrl-dna search`.

    Example: mrl-dna index db.h5 --dim 16

    Example: mrl-dna index genomes.h5 --level windows --kind hnsw --dim 64
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_threads(threads)
    info = build_index(db, dim=dim, kind=kind, nlist=nlist, nprobe=nprobe, force=force, level=level,
                       warn=console.warn)
    extra = f", nlist {info.nlist}, nprobe {info.nprobe}" if info.kind == IndexKind.ivf.value else ""
    console.footer(
        f"wrote {info.path} ({info.kind}, dim {info.dim}, {info.n_indexed:,} of "
        f"{console.count(info.n_rows, info.level.rstrip('s'))}{extra}) "
        f"and {info.path}.json",
        timer,
    )
