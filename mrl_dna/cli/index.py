"""mrl-dna index: an index that `mrl-dna search` uses: by default the exact rotated index over the full width
(search/rotated.py: answers alone with the exact top-k, --match locus), or a FAISS index over a Matryoshka
prefix as a funnel's shortlist (--match genome).

Example (the shipped model's 1,036,027 marker genes; a 2-core machine shared with other jobs):

    $ mrl-dna index markers.h5
    [mrl-dna 0.1.0] wrote markers.h5.faiss (pca, dim 512, 1,036,027 of 1,036,027 records, head 128 of 512 axes;
    measured on 200 DB rows: 100.0% got their exact top-10, 32.82 ms per query against 197.24 for the exact
    scan) and markers.h5.faiss.json; real 201.9 s; ...

The index lies beside the DB (DB.h5.faiss + DB.h5.faiss.json with the DB's model hash and row count;
--level windows: DB.h5.windows.faiss over every saved window, used by search --level windows); search picks it
up automatically (a prefix index only with --match genome, as the funnel's first stage, reranked exactly). An
index that no longer matches its DB (re-embedded, merged, other model) or cannot be read (damaged, truncated)
is ignored with a warning. The FAISS kinds (ivf, hnsw, flat) need the faiss extra: pip install 'mrl-dna[faiss]'.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import dim_option, existing, force_option, quiet_option, set_threads, threads_option
from mrl_dna.search import IndexKind, Level, build_index
from mrl_dna.search.funnel import index_pays
from mrl_dna.search.index import DEFAULT_KIND


def command(
    db: Path = typer.Argument(..., callback=existing(what="DB"), help="Embedding file (HDF5) to index; the index is written beside it, as DB.h5.faiss (+ .json), where search finds it."),
    dim: int | None = dim_option("Width indexed. Default: the full width (the index then answers alone, with the "
                                 "full-width cosines; what search --match locus uses). A small Matryoshka dim makes "
                                 "a shortlist for the funnel (search --match genome).", default=None),
    kind: IndexKind = typer.Option(
        IndexKind(DEFAULT_KIND), "--kind",
        help="pca (default; no FAISS needed): exact: the rows rotated onto their principal axes; a search scans the "
        "first axes (the head, its width measured at build time) and scores the rest only for rows whose bound can "
        "still reach the top-k, so every query gets its exact top-k. On the shipped model's 1,036,027 marker genes: "
        "head 128 of 512, a quarter of the exact scan's multiply-adds, 1.4-2.8x faster than the fp32 exact scan "
        "(a busy 2-core machine; bench/RESULTS.md, issue 25); the file is as large as the DB's vectors. The FAISS kinds: ivf (inverted lists; over the full width --nprobe is measured on 200 DB "
        "rows at build time: the smallest that gives 99.5% of them their exact top-10, or all lists), hnsw (graph; "
        "over a prefix, e.g. --dim 64, the shortlist of search --match genome; approximate), flat (exact inner "
        "product over the prefix).",
    ),
    nlist: int | None = typer.Option(None, "--nlist", min=1, help="ivf: number of lists, at most the rows indexed (default ~4*sqrt(rows), at most rows/39)."),
    nprobe: int | None = typer.Option(None, "--nprobe", min=1, help="ivf: lists searched per query (default: measured as --kind says over the full width; nlist/8 over a prefix)."),
    level: Level = typer.Option(Level.records, "--level", help="Index the records (DB.h5.faiss) or every saved window (DB.h5.windows.faiss; a DB embedded with --save-windows), for search --level windows."),
    force: bool = force_option("an existing DB.h5.faiss index"),
    threads: int = threads_option(),
    quiet: bool = quiet_option("No summary on stderr."),
) -> None:
    """Build an index of an embedding file for `mrl-dna search` (default: exact, over the full width).

    Example: mrl-dna index db.h5

    Example: mrl-dna index genomes.h5 --dim 64 --kind hnsw   (a prefix shortlist, for search --match genome)

    Example: mrl-dna index genomes.h5 --level windows   (every saved window, for search --level windows)
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_threads(threads)
    info = build_index(db, dim=dim, kind=kind, nlist=nlist, nprobe=nprobe, force=force, level=level,
                       warn=console.warn)
    extra = f", nlist {info.nlist}, nprobe {info.nprobe}" if info.kind == IndexKind.ivf.value else ""
    extra += f", efSearch {info.ef_search}" if info.kind == IndexKind.hnsw.value and info.ef_search else ""
    extra += f", head {info.head} of {info.dim} axes" if info.kind == IndexKind.pca.value else ""
    if info.tune_queries:
        extra += (f"; measured on {info.tune_queries} DB rows: {info.exact_share:.1%} got their exact top-10, "
                  f"{info.index_ms:.2f} ms per query against {info.exact_ms:.2f} for the exact scan")
    if info.tune_queries and not index_pays(info):
        console.warn(f"this index does not pay on {db}: {info.exact_share:.1%} of {info.tune_queries} DB rows got their "
                     f"exact top-10, {info.index_ms:.2f} ms per query against {info.exact_ms:.2f} for the exact scan; "
                     "search scans exactly instead (--funnel with the index's dim still uses it)")
    console.footer(
        f"wrote {info.path} ({info.kind}, dim {info.dim}, {info.n_indexed:,} of "
        f"{console.count(info.n_rows, info.level.rstrip('s'))}{extra}) "
        f"and {info.path}.json",
        timer,
    )
