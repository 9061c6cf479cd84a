#!/usr/bin/env python
"""Species clustering of 10 kb fragments of held-out genomes, as DNABERT-S scores it (issue 11).

    fragments = 50 non-overlapping 10 kb pieces per species (--per-species), spread over its genomes, half
                reverse-complemented; 3 independent draws (--draws), every number averaged over them (quick: one
                draw of 20 per species); genomes = the held-out bacterial/archaeal genomes of ../shared/data
                (24 genomes, 19 species: mrl_dna/evaluate/heldout.py)
    methods   = each --model NAME=DIR at every Matryoshka dim, then the baselines: canonical 4-mer and 6-mer
                profiles, DNABERT-S's raw 256-d TNF, the v1 default model (bench/models/v1)
    metrics   = K-means ARI (K = number of species, init random, n_init 3, max_iter 1000, averaged over
                random_state 0-4: DNABERT-S's protocol) and leave-one-out 1-NN species top-1 (cosine)

Markdown table on stdout, progress on stderr; --json OUT keeps every number (per seed, per species).

Example (the baselines, v1 among them, ~1.5 min on 1 CPU thread):
    python scripts/bench/cluster.py --no-model --json cluster.json > cluster.md
A new model against all of them, quick check (~20 s):
    python scripts/bench/cluster.py --model v2=runs/v2/model --quick
"""

from __future__ import annotations

import sys
import time

from mrl_dna.evaluate import cluster as ec
from mrl_dna.evaluate import heldout as eh

import common as eb  # scripts/bench/common.py: what the bench scripts share

QUICK_PER_SPECIES = 20  # quick mode: one draw of 380 fragments instead of three of 950


def main(argv: list[str] | None = None) -> None:
    ap = eb.bench_parser(__doc__)
    ap.add_argument("--quick", action="store_true", help=f"one draw of {QUICK_PER_SPECIES} fragments per species")
    ap.add_argument("--per-species", type=int, help="fragments per species [50; quick %d]" % QUICK_PER_SPECIES)
    ap.add_argument("--fragment-length", type=int, default=10_000, help="[%(default)s]")
    ap.add_argument("--draws", type=int, help="fragment draws (seeds seed, seed+1, ...) [3; quick 1]")
    ap.add_argument("--kmeans-seeds", default="0,1,2,3,4", help="K-means random_state values [%(default)s]")
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    eb.limit_threads(a.threads)
    per_species = a.per_species or (QUICK_PER_SPECIES if a.quick else 50)
    cfg = ec.ClusterConfig(fragment_length=a.fragment_length, per_species=per_species, seed=a.seed,
                           draws=a.draws or (1 if a.quick else 3),
                           kmeans_seeds=tuple(int(s) for s in a.kmeans_seeds.split(",") if s.strip()))
    genomes = eh.load_set(eh.GenomeSet.ALL, a.data)
    _, ms = eb.methods_of(a)
    for n in ms.notes:
        print(f"bench_cluster: {n}", file=sys.stderr)
    report = ec.run_cluster_benchmark(genomes, ms.methods, cfg)
    meta = eb.run_metadata(threads=a.threads, seconds=time.perf_counter() - t0)
    md = (ec.format_cluster_markdown(report, title="Species clustering of 10 kb fragments (held-out genomes)")
          + "\n" + eh.describe_set(genomes) + "\n\n" + eb.footer_markdown(meta, report.seconds, ms.notes))
    print(md)
    if a.json:
        eb.write_json(a.json, {"benchmark": "cluster", "quick": a.quick, "config": cfg, "genomes": report.genomes,
                               "species": report.species, "models": ms.models, "scores": report.scores,
                               "seconds": report.seconds, "meta": meta})


if __name__ == "__main__":
    main()
