"""mrl-dna search: nearest sequences of each query in one or more embedding files, as TSV on stdout.

Example (output abridged):

    $ mrl-dna search queries.fa db.h5 -k 2 | head -3
    #query	target	rank	cosine	dims
    contig1	NC_000913.3	1	0.982311	128
    contig1	NC_007779.1	2	0.979054	128

Every window (`--level windows`, a DB embedded with --save-windows), output abridged:

    $ mrl-dna search fragment.fa genomes.h5 --level windows -k 2
    #query	target	rank	cosine	dims	target_start	target_end	target_contig
    frag1	Ecoli_K12	1	0.991207	128	1052000	1054048	NC_000913.3
    frag1	Ecoli_W	2	0.990114	128	998000	1000048	NZ_CP009072.1

Columns: query id; target id (a record, or a file with embed --per-file); rank (1 = best); cosine at the last
prefix width used; dims = the prefix widths used, comma-separated (funnel stages, e.g. 8,16,32,64,128; one
width for exact search); with --level windows (the hit window) or --windows (the best window inside each
record hit) also target_start, target_end and target_contig: the window [start, end) (0-based, end exclusive)
on target_contig (the target itself, or the record of a per-file target that holds the window). Lines are
grouped by query in input order, ranks ascending, so `sort -k4,4gr` or `awk '$3==1'` work as expected.

A query longer than one window at --level windows (a contig, a genome) is searched by its own windows and
reported per target, as a mapper reports targets (output abridged):

    $ mrl-dna search contigs.fa genomes.h5 --level windows -k 2
    #query	target	rank	cosine	dims	target_start	target_end	target_contig	query_start	query_end	query_contig	strand	query_windows	n_best	frac_best	best_cosine	identity
    K12_100k	Ecoli_W	1	0.886617	512	3961422	3963470	NC_017664.1	24988	27036	K12_100k	+	99	92	0.9293	0.982129	95.64
    K12_100k	Salmonella_LT2	2	0.645201	512	3933156	3935204	NC_003197.1	83959	86007	K12_100k	+	99	5	0.0505	0.823886	81.83

(a 100 kb piece of E. coli K-12 MG1655 against genomes saved every 250 bp that hold E. coli W but not K-12.)
For such a query, cosine is the mean over ALL the query's windows of their best cosine within the target (targets are
ranked by it); target_*/query_* are the best window pair; strand is + or - when the query windows' best hits run
forward or backward along the target (else .); query_windows is how many windows the query has, n_best and
frac_best how many of them have their best hit in this target; best_cosine is the best pair's cosine; identity
the model's calibrated identity over the query's homologous windows (percent; those whose best hits are colinear
with a neighbour's, as dist --level windows counts them; NA without a calibration.json, below the range it holds,
or with fewer than 5 homologous windows: scattered best hits are chance, not homology). Lines of
one-window queries in the same table keep their window hits, with . in the columns that need several windows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import (cosine_cutoff, device_option, dim_option, existing, model_option, no_header_option,
                                 quiet_option, set_threads, threads_option)
from mrl_dna.search import Level, Match, search, tsv_lines


def command(
    query: Path = typer.Argument(
        ..., callback=existing(what="query file"),
        help="Queries: FASTA/GenBank/EMBL ('-' for stdin), embedded with the DB's model (see --model), or an HDF5 "
        "embedding file of the same model and embed options.",
    ),
    db: list[Path] = typer.Argument(..., callback=existing(what="DB"), help="One or more embedding files, each once, of comparable vectors (one model, window, stride, --max-n)."),
    k: int = typer.Option(10, "-k", "--hits", min=1, help="Hits per query (capped at the DB's rows); with --level windows, targets per query longer than one window."),
    dim: int | None = dim_option("Exact search at this prefix width."),
    funnel: str | None = typer.Option(
        None,
        "--funnel",
        help="Funnel stages DIM:KEEP,...: shortlist at a small prefix, rerank at growing ones, e.g. "
        "16:2000,64:200,128:10; 'auto': the --match level's plan (locus: the full-width index's; genome: the "
        "index's, else the default prefix funnel); 'calibrate': the cheapest prefix funnel that keeps the exact "
        "top-k of 200 DB rows 99.5% of the time. auto and calibrate then search 100 DB rows with the plan and "
        "exactly, and keep the plan only when >= 99% of them get the exact top-k in <= 0.8 of the exact scan's "
        "time; else they run the exact scan and the summary says so (the measuring costs the exact scan and the "
        "plan itself on 100 queries: on 1M marker genes auto --match genome without an index spent 150 s finding "
        "that its funnel does not pay). On a small DB (a full scan of <= 4M multiply-adds per query) both are the exact scan. "
        "Default (neither --dim nor --funnel): the index's plan when `mrl-dna index` wrote one that suits "
        "--match, else exact at full width.",
    ),
    match: Match = typer.Option(
        Match.locus, "--match",
        help="Which neighbours: locus (the full-width neighbours: a gene or window finds the same locus in other "
        "genomes; only an index over the full width is used: `mrl-dna index DB`, exact) or genome (neighbours a "
        "small prefix ranks, e.g. per-file genome vectors; also an index over a prefix, `mrl-dna index DB --dim "
        "64 --kind hnsw`, and the prefix funnel). For the shipped model a prefix does not hold a gene's full-width "
        "neighbours: on its 1,036,027 marker genes an HNSW index over dim 64 gave 18% of queries their exact "
        "top-10, the default index 100% (bench/RESULTS.md, issue 25).",
    ),
    min_score: float | None = typer.Option(None, "--min-score", callback=cosine_cutoff("--min-score"), help="Drop hits with a cosine below this."),
    model: Path | None = model_option(
        "Model directory for FASTA queries. Default: the DB's model, found where `embed` loaded it from (the "
        "bundled model, or the directory the DB's `model_dir` attribute names) when its weights still match; "
        "else an error asks for --model.",
    ),
    level: Level = typer.Option(Level.records, "--level", help="What a DB row is: records (one vector per record, or per file with embed --per-file) or windows (every window saved by embed --save-windows: a 2 kb fragment finds its locus; a longer query is searched by its own windows and reported per target, see below). Exact, --funnel and an index (mrl-dna index --level windows) work at both levels."),
    query_stride: int | None = typer.Option(
        None, "--query-stride", min=1,
        help="With --level windows: bp between the windows of a query longer than one window (FASTA queries are "
        "embedded at it; an HDF5 query's saved windows are thinned to it). Default: 4x the DB's saved-window stride, "
        "at most one window (1,000 bp for windows saved every 250 bp).",
    ),
    windows: bool = typer.Option(False, "--windows", help="With --level records: also report the best-matching window inside each record hit (needs a DB embedded with --save-windows)."),
    device: str = device_option("auto | cpu | cuda | cuda:N: where FASTA queries are embedded and the matrix products run (a GPU scores a long query's windows in blocks sized to its free memory)."),
    threads: int = threads_option(),
    no_index: bool = typer.Option(False, "--no-index", help="Ignore a FAISS index beside the DB."),
    quiet: bool = quiet_option("No summary on stderr (warnings and errors still print)."),
    no_header: bool = no_header_option("#query..."),
) -> None:
    """Search embedding files for the nearest sequences of each query; TSV hits on stdout.

    Example: mrl-dna search queries.fa db.h5 -k 5 --min-score 0.9 | sort -k4,4gr | head

    Example: mrl-dna search fragments.fa genomes.h5 --level windows -k 1

    \b
    --level windows, a query longer than one window (contigs, genomes; FASTA, or HDF5 with saved windows):
      its windows (--query-stride apart) are matched against the DB's windows; -k targets per query.
      First pass, which targets are candidates (those owning a query window's best hit): exact when the
      plan is the exact scan (--dim, or the default without an index); approximate under --funnel or a FAISS
      index (a target whose windows the shortlist misses is not a candidate). Then exact: every query window
      against every window of each candidate (up to 64 per query, 1 GiB of windows) at the plan's last
      width: cosine, n_best, frac_best, best window pair. Estimated: identity (the model's calibration.json,
      full width only, over >= 5 colinear windows; NA otherwise) and strand (from the order of the best hits).
    Example: mrl-dna search contigs.fa genomes.h5 --level windows -k 3 | awk '$3==1'
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_threads(threads)
    res = search(
        query,
        [str(p) for p in db],
        k=k,
        dim=dim,
        funnel=funnel,
        min_score=min_score,
        model_dir=model,
        windows=windows,
        level=level,
        match=match,
        device=device,
        use_index=not no_index,
        query_stride=query_stride,
        warn=console.warn,
    )
    out = sys.stdout
    n_hits = 0
    for line in tsv_lines(res, header=not no_header):
        out.write(line + "\n")
        n_hits += not line.startswith("#")
    out.flush()
    macs = res.hits.macs_per_query
    ratio = res.exact_macs_per_query / macs if macs else 1.0
    if round(ratio, 1) > 1:
        saving = f"{ratio:,.1f}x fewer than"
    elif round(1 / ratio, 1) > 1:
        saving = f"{1 / ratio:,.1f}x more than"
    else:
        saving = "as many as"  # said "1.0x fewer"
    rows = console.count(res.n_db, "window" if res.level is Level.windows else "row")
    head = f"{console.count(len(res.query_ids), 'query', 'queries')} x {rows} in {console.count(res.n_db_files, 'file')}"
    by_vector = (f"{res.plan.why}: {console.count(n_hits, 'hit')}; {macs:,} multiply-adds per query ({saving} exact at "
                 "full width)")
    if res.targets is not None:
        n = sum(t is not None for t in res.targets)
        by_windows = (f"{console.count(n, 'query', 'queries')} by {'its' if n == 1 else 'their'} windows (every "
                      f"{res.query_stride:,} bp; first pass {res.target_plan.why}, {res.target_macs_per_window:,} "
                      "multiply-adds per window, then every window of each candidate target, exactly): "
                      f"{console.count(sum(len(t) for t in res.targets if t is not None), 'target')}")
        n_one = len(res.query_ids) - n
        by_vector = (f"; {console.count(n_one, 'query', 'queries')} of one window by {'its' if n_one == 1 else 'their'} "
                     f"vector, {res.plan.why}; {macs:,} multiply-adds per query ({saving} exact at full width)"
                     if n_one else "")
        summary = f"{head}: {by_windows}{by_vector}"
    else:
        summary = f"{head}, {by_vector}"
    console.footer(
        summary,
        timer,
    )
