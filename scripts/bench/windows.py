#!/usr/bin/env python
"""Fragment -> window retrieval on held-out genomes with close relatives, beside minimap2 and blastn (issues 11, 14).

    references = the held-out genomes that have same-genus relatives (E. coli x3 + Salmonella, Caulobacter,
                 the Corynebacterium trio, two Methanobacterium, 8 Blochmannia, two Shewanella: 20 genomes,
                 15 species; near-duplicates left out: mrl_dna/evaluate/heldout.py)
    database   = their 2048 bp windows at stride 1000 (`mrl-dna embed --save-windows --window 2048 --stride 1000 --windows-stride 1000`)
    queries    = 2 kb fragments of the references at 0/5/10/20/30% divergence (mrl_dna.evolve.mutate:
                 substitutions + 10% small indels), half reverse-complemented, 50 per reference and divergence
    methods    = each --model NAME=DIR at every Matryoshka dim, then the baselines (canonical 4-mer and 6-mer
                 profiles, DNABERT-S's raw 256-d TNF, the v1 default model), then the aligners on the same
                 reference sequences: minimap2 -x asm20 (best primary chain by chaining score), blastn -task
                 dc-megablast and -task blastn (best hit by bitscore, e-value <= 1e-5); no hit = a miss.
                 Aligners are benchmark-only tools (`apt-get install -y minimap2 ncbi-blast+`); when one is
                 missing its rows are skipped and stderr says so.
    metrics    = species top-1 (the best window's genome is of the query's species) and locus top-1 (the best
                 window is in the source genome and overlaps the fragment's origin); ties count as misses.
                 --genome-vectors adds each vector method's fragment -> genome-vector species top-1 on the same
                 queries (issue 14's comparison; on by default in full mode).
    --via-search = each model's references are embedded by `embed_fasta` into an HDF5 file (what `mrl-dna embed
                 REFS.fa --save-windows --window 2048 --stride 1000 --windows-stride 1000` writes), its queries into another (`mrl-dna
                 embed QUERIES.fa`), and `mrl-dna search QUERIES.h5 REFS.h5 --level windows --dim K -k 1` (the
                 library call `mrl_dna.search.search`) finds each query's window: rows "NAME (search --level
                 windows)", and stderr and the notes say for how many queries search's window is the
                 brute-force argmax of the in-memory scoring (ties apart, the same numbers).

Markdown table on stdout, progress on stderr; --json OUT keeps every number (per species too).

Example (the baselines and v1 with the aligners, ~10 min on 1 CPU thread):
    python scripts/bench/windows.py --no-model --json windows.json > windows.md
A new model, quick check (Methanobacterium, Blochmannia, Shewanella only; 10 queries per cell; ~2 min):
    python scripts/bench/windows.py --model v2=runs/v2/model --baselines 6mer --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import heldout as eh
from mrl_dna.evaluate import windows as ew
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.search import search
from mrl_dna.store import EmbeddingStore
from mrl_dna.vectors import truncate_normalize

import common as eb  # scripts/bench/common.py: what the bench scripts share

QUICK_PER_GENOME = 10


def main(argv: list[str] | None = None) -> None:
    ap = eb.bench_parser(__doc__, threads="torch, BLAS and aligner threads")
    ap.add_argument("--aligners", default=",".join(a.value for a in ew.Aligner),
                    help="comma list of minimap2,dc-megablast,blastn or none [%(default)s]")
    ap.add_argument("--genome-vectors", action=argparse.BooleanOptionalAction, default=None,
                    help="also score fragment -> genome vector [full: on, quick: off]")
    ap.add_argument("--quick", action="store_true",
                    help=f"references Methanobacterium, Blochmannia, Shewanella only; {QUICK_PER_GENOME} queries per cell")
    ap.add_argument("--per-genome", type=int, help=f"queries per reference and divergence [50; quick {QUICK_PER_GENOME}]")
    ap.add_argument("--divergence", default="0,0.05,0.1,0.2,0.3", help="[%(default)s]")
    ap.add_argument("--fragment-length", type=int, default=2000, help="[%(default)s]")
    ap.add_argument("--window", type=int, default=2048, help="database window [%(default)s]")
    ap.add_argument("--stride", type=int, default=1000, help="database window stride [%(default)s]")
    ap.add_argument("--via-search", action="store_true",
                    help="also score each model through `mrl-dna search --level windows` on its embedded HDF5 files")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    eb.limit_threads(a.threads)
    cfg = ew.WindowBenchConfig(window=a.window, stride=a.stride, fragments=ev.FragmentConfig(
        lengths=(a.fragment_length,), divergences=tuple(float(x) for x in a.divergence.split(",")),
        per_genome=a.per_genome or (QUICK_PER_GENOME if a.quick else 50), seed=a.seed))
    genomes = eh.load_set(eh.GenomeSet.SMALL_RELATIVES if a.quick else eh.GenomeSet.RELATIVES, a.data)
    _, ms = eb.methods_of(a)
    notes = list(ms.notes)
    aligners = []
    for name in (x.strip() for x in a.aligners.split(",") if x.strip() and x.strip() != "none"):
        al = ew.Aligner(name)
        if ew.aligner_available(al):
            aligners.append(al)
        else:
            msg = f"{al.program} not on PATH (apt-get install -y {'minimap2' if al is ew.Aligner.MINIMAP2 else 'ncbi-blast+'}); its rows are skipped"
            print(f"bench_windows: {msg}", file=sys.stderr)
            notes.append(msg)
    for n in ms.notes:
        print(f"bench_windows: {n}", file=sys.stderr)
    genome_vectors = (not a.quick) if a.genome_vectors is None else a.genome_vectors
    with tempfile.TemporaryDirectory(prefix="bench_windows_") as tmp:
        fr = ev.make_fragments(genomes, cfg.fragments)
        report = ew.run_window_benchmark(genomes, ms.methods, cfg, aligners=aligners, threads=a.threads, work=Path(tmp),
                                         genome_vectors=genome_vectors, fragments=fr,
                                         store_dir=Path(tmp) if a.via_search else None)
        if a.via_search:
            notes += via_search(report, ms.methods, genomes, fr, Path(tmp), device=a.device)
    meta = eb.run_metadata(threads=a.threads, seconds=time.perf_counter() - t0)
    title = "Fragment -> window retrieval (held-out genomes with close relatives)" + (" -- quick" if a.quick else "")
    md = (ew.format_window_markdown(report, title=title) + "\n" + eh.describe_set(genomes) + "\n\n"
          + eb.footer_markdown(meta, report.seconds, notes))
    print(md)
    if a.json:
        eb.write_json(a.json, {"benchmark": "windows", "quick": a.quick, "config": cfg, "genomes": report.genomes,
                               "species": report.species, "n_windows": report.n_windows, "models": ms.models,
                               "identity": report.identity, "scores": report.scores, "commands": report.commands,
                               "seconds": report.seconds, "meta": meta})


def via_search(report: ew.WindowReport, methods, genomes, fr, work: Path, *, device: str) -> list[str]:
    """Score each model's top window as `mrl-dna search --level windows -k 1` finds it (rows added to the report)
    and count the queries where it is the brute-force argmax over the same stored vectors."""
    notes = []
    qfa = ew.write_fasta(work / "queries.fa", [f"q{i}" for i in range(len(fr))], fr.tokens)
    for m in methods:
        if m.name not in report.stores:
            continue
        refs, queries = report.stores[m.name], work / f"queries_{len(notes)}.h5"
        # with the DB's window, as `search` embeds FASTA queries: a query file of another window is refused
        embed_fasta([qfa], model=m.embed.model, output=queries,
                    options=EmbedOptions(window=report.config.window, device=m.embed.device, overwrite=True))
        with EmbeddingStore.open(refs) as st, EmbeddingStore.open(queries) as qs:
            W, Q = st.windows().read(normalize=False), qs.read(normalize=False)
        same = []
        for k in m.dims:
            res = search(queries, [refs], k=1, dim=k, level="windows", device=device, use_index=False)
            contig, start, end = res.windows.contig[:, 0], res.windows.start[:, 0], res.windows.end[:, 0]
            order = [int(q[1:]) for q in res.query_ids]
            full = [np.full(len(fr), "", object), np.full(len(fr), -1), np.full(len(fr), -1)]
            for dst, src in zip(full, (contig, start, end)):
                dst[order] = src
            sp, loc = ew.top_window_hits(fr, genomes, *full)
            report.scores.extend(ew.score_top_windows(f"{m.name} (search --level windows)", k, fr, genomes, sp, loc))
            brute = np.argmax(truncate_normalize(Q, k) @ truncate_normalize(W, k).T, axis=1)  # (q,)
            same.append(f"{k}: {int(np.sum(res.hits.rows[:, 0] == brute[order]))}/{len(order)}")
        notes.append(f"{m.name}: search --level windows returned the brute-force argmax window for "
                     + ", ".join(same) + " queries (dim: equal/all)")
        print(f"bench_windows: {notes[-1]}", file=sys.stderr)
    return notes


if __name__ == "__main__":
    main()
