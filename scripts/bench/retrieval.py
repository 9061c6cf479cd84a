#!/usr/bin/env python
"""Held-out fragment -> genome retrieval: models at every Matryoshka dim vs k-mer profiles, TNF, v1, sourmash, mash.

    database = one vector per held-out genome (all its records)
    queries  = fragments of those genomes (default 2 kb) at several divergences (substitutions + small
               indels, via mrl_dna.evolve.mutate), half reverse-complemented; the SAME fragments for
               every method (mrl_dna.evaluate.retrieval.make_fragments, seeded)
    methods  = each --model NAME=DIR at each Matryoshka dim ('default' = the bundled model), a
               --no-matryoshka model at the same dims (--no-matryoshka-model), then --baselines: canonical 4-mer
               and 6-mer profiles (cosine), DNABERT-S's raw 256-d TNF, the v1 default model (bench/models/v1);
               sourmash (k=21, scaled, containment of the fragment in the genome) and mash (`mash dist`, k=21,
               sketch size -s) when installed (bench-only tools, never runtime dependencies: `pip install
               sourmash`, `apt-get install mash`)
    metrics  = species top-1 and genome top-1 (mrl_dna.evaluate.retrieval.retrieval_metrics): ties and no-hit
               (empty sketch, no shared hash) count as misses for every method

Genome sets (--set):
    issue3  the 8 genomes (6 species) that the v1 default model was not trained on; species = MANIFEST.tsv's
            `group`; divergences 0/5/10/20% (issue 3's benchmark, unchanged)
    all     issue 11: every held-out bacterial/archaeal genome of ../shared/data (24 genomes, 19 species;
            near-duplicates left out, labels checked: mrl_dna/evaluate/heldout.py); divergences 0/5/10/20/30%
    small   --quick's subset of `all`: the 15 genomes <= 2.6 Mbp (13 species), 10 fragments per genome

Example (issue 11, v1 model + baselines, ~3 min on 1 CPU thread):
    python scripts/bench/retrieval.py --set all --json retrieval.json > retrieval.md
A new model, quick check (~1 min):
    python scripts/bench/retrieval.py --set all --quick --model v2=runs/v2/model
Issue 3's benchmark with the default model and its --no-matryoshka twin:
    python scripts/bench/retrieval.py --model default --no-matryoshka-model bench/models/no-matryoshka
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import report as er
from mrl_dna.evaluate import heldout as eh
from mrl_dna.dna import decode

import common as eb  # scripts/bench/common.py: what the bench scripts share

# Species held out by default: the groups of ../shared/data with >= 2 genomes that are not E. coli /
# Salmonella / Blochmannia (the bulk of the training data), plus a sister species to make genus-level
# confusion possible. 9 genomes, 5 species.
DEFAULT_HELDOUT = (  # = scripts/train/train_default.sh's hold-out (its two held-out Blochmannia are left out
    "Pectobacterium atrosepticum",  # here: MANIFEST's group for them is the whole genus, which trains)
    "Aquifex aeolicus",
    "Corynebacterium pseudotuberculosis",
    "Methanobacterium",
    "Shewanella baltica",
    "Akkermansia muciniphila",
)


def heldout_files(data: Path, species: list[str]) -> list[Path]:
    with open(data / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    known = sorted({r["group"] for r in rows})
    missing = [s for s in species if s not in known]
    if missing:
        sys.exit(f"bench_retrieval: species {missing} not in {data}/MANIFEST.tsv; pick from: {'; '.join(known)}")
    return [data / r["file"] for r in rows if r["group"] in species]


# ---- sketch-based baselines: score matrices (q, g), NaN = no hit -------------------------------------------
def sourmash_scores(genomes: list[ev.Genome], frags: ev.Fragments, *, k: int, scaled: int) -> np.ndarray:
    """Containment of each fragment's FracMinHash sketch in each genome's sketch; 0 shared hashes -> NaN."""
    import sourmash

    def sketch(records) -> "sourmash.MinHash":
        mh = sourmash.MinHash(n=0, ksize=k, scaled=scaled)
        for r in records:
            mh.add_sequence(decode(r), force=True)  # force: skip k-mers with N instead of raising
        return mh

    db = [sketch(g.records) for g in genomes]
    S = np.full((len(frags), len(genomes)), np.nan)  # (q, g)
    for i, t in enumerate(frags.tokens):
        q = sketch([t])
        if len(q) == 0:
            continue  # an empty sketch cannot find anything: a miss
        c = np.array([q.contained_by(d) for d in db])
        S[i] = np.where(c > 0, c, np.nan)
    return S


def mash_scores(genomes: list[ev.Genome], frags: ev.Fragments, *, k: int, sketch_size: int, work: Path,
                threads: int) -> np.ndarray:
    """-(mash distance) of each fragment to each genome sketch; distance 1 (no shared hash) -> NaN."""
    gdir = work / "genomes"
    gdir.mkdir(exist_ok=True)
    gfiles = []
    for gi, g in enumerate(genomes):  # one FASTA per genome so mash makes one sketch per genome
        p = gdir / f"g{gi}.fa"
        p.write_text("".join(f">g{gi}_{j}\n{decode(r)}\n" for j, r in enumerate(g.records)))
        gfiles.append(str(p))
    qfa = work / "fragments.fa"
    qfa.write_text("".join(f">q{i}\n{decode(t)}\n" for i, t in enumerate(frags.tokens)))
    ref, qry = work / f"genomes_s{sketch_size}", work / f"fragments_s{sketch_size}"
    common = ["-k", str(k), "-s", str(sketch_size), "-p", str(threads)]
    subprocess.run(["mash", "sketch", *common, "-o", str(ref), *gfiles], check=True, capture_output=True)
    subprocess.run(["mash", "sketch", *common, "-i", "-o", str(qry), str(qfa)], check=True, capture_output=True)
    out = subprocess.run(["mash", "dist", "-p", str(threads), f"{ref}.msh", f"{qry}.msh"], check=True,
                         capture_output=True, text=True).stdout
    S = np.full((len(frags), len(genomes)), np.nan)  # (q, g)
    gidx = {p: i for i, p in enumerate(gfiles)}
    for line in out.splitlines():
        r, q, dist, _p, shared = line.split("\t")
        if int(shared.split("/")[0]) > 0:
            S[int(q[1:]), gidx[r]] = -float(dist)
    return S


# ---- main --------------------------------------------------------------------------------------------------
QUICK_PER_GENOME = 10


def main(argv: list[str] | None = None) -> None:
    ap = eb.bench_parser(__doc__)
    ap.add_argument("--set", choices=("issue3", "all", "small"), default="issue3",
                    help="which held-out genomes (see above) [%(default)s]")
    ap.add_argument("--quick", action="store_true",
                    help=f"--set all becomes small; {QUICK_PER_GENOME} fragments per genome; no sourmash/mash")
    ap.add_argument("--species", default=";".join(DEFAULT_HELDOUT),
                    help="--set issue3: held-out MANIFEST groups, ';'-separated [%(default)s]")
    ap.add_argument("--genomes", nargs="+", type=Path, help="explicit genome files instead of --set")
    ap.add_argument("--no-matryoshka-model", help="a model trained with --no-matryoshka, shown at the first model's dims")
    ap.add_argument("--no-sourmash", action="store_true")
    ap.add_argument("--no-mash", action="store_true")
    ap.add_argument("--sketch-k", type=int, default=21, help="k for sourmash and mash [%(default)s]")
    ap.add_argument("--scaled", type=int, default=100, help="sourmash scaled [%(default)s]")
    ap.add_argument("--mash-sizes", default="1000,100000", help="mash sketch sizes -s, one row each [%(default)s]")
    ap.add_argument("--fragments", default="2000")
    ap.add_argument("--divergence", help="comma list [issue3: 0,0.05,0.1,0.2; all/small: 0,0.05,0.1,0.2,0.3]")
    ap.add_argument("--per-genome", type=int, help=f"fragments per genome, length and divergence [50; quick {QUICK_PER_GENOME}]")
    ap.add_argument("-o", "--output", type=Path, help="also write the markdown here")
    ap.add_argument("--plot", type=Path, help="PNG of accuracy vs dims / search cost")
    a = ap.parse_args(argv)

    eb.limit_threads(a.threads)
    t_all = time.perf_counter()
    gset = "small" if (a.quick and a.set == "all") else a.set
    if a.genomes:
        genomes = ev.load_genomes(a.genomes)
    elif gset == "issue3":
        genomes = ev.load_genomes(heldout_files(a.data, [s.strip() for s in a.species.split(";") if s.strip()]))
    else:
        genomes = eh.load_set(eh.GenomeSet(gset), a.data)
    divergence = a.divergence or ("0,0.05,0.1,0.2" if gset == "issue3" and not a.genomes else "0,0.05,0.1,0.2,0.3")
    cfg = ev.FragmentConfig(lengths=tuple(int(x) for x in a.fragments.split(",")),
                            divergences=tuple(float(x) for x in divergence.split(",")),
                            per_genome=a.per_genome or (QUICK_PER_GENOME if a.quick else 50), seed=a.seed)
    frags = ev.make_fragments(genomes, cfg)
    print(f"bench_retrieval: {len(genomes)} genomes: " + ", ".join(f"{g.name} ({g.species})" for g in genomes),
          file=sys.stderr)

    specs, ms = eb.methods_of(a)
    methods = list(ms.methods)
    if a.no_matryoshka_model:
        from mrl_dna.model import load_model

        dims = methods[0].dims if specs else None
        methods.insert(len(specs), ev.model_method(load_model(a.no_matryoshka_model), "--no-matryoshka twin", dims,
                                                   device=a.device))
    for n in ms.notes:
        print(f"bench_retrieval: {n}", file=sys.stderr)

    timings: dict[str, float] = {}
    no_hit: dict[str, list[float]] = {}  # sketch methods: % of fragments with no shared hash with any genome
    report = ev.Report(tuple(g.name for g in genomes), tuple(g.species for g in genomes), cfg, ())
    report.identity.update(ev.fragment_identity(frags))
    for m in methods:  # one at a time so each gets its own wall time
        t = time.perf_counter()
        r = ev.run_benchmark(genomes, [m], cfg, recall_k=(), fragments=frags)
        report.scores.extend(r.scores)
        report.full_dims.update(r.full_dims)
        timings[m.name] = time.perf_counter() - t

    def add_matrix(name: str, fn) -> None:
        t = time.perf_counter()
        S = fn()
        report.scores.extend(ev.score_matrix_metrics(name, S, frags, genomes, ks=()))
        timings[name] = time.perf_counter() - t
        empty = np.isnan(S).all(axis=1)  # (q,)
        no_hit[name] = [100 * float(empty[frags.divergence == d].mean()) for d in cfg.divergences]
        print(f"bench_retrieval: {name}: {timings[name]:.1f} s", file=sys.stderr)

    if not (a.no_sourmash or a.quick):
        try:
            import sourmash
        except ImportError:
            print("bench_retrieval: sourmash not installed (pip install sourmash); its row is skipped", file=sys.stderr)
        else:
            add_matrix(f"sourmash {sourmash.VERSION} k={a.sketch_k} scaled={a.scaled} containment",
                       lambda: sourmash_scores(genomes, frags, k=a.sketch_k, scaled=a.scaled))
    if not (a.no_mash or a.quick):
        if shutil.which("mash") is None:
            print("bench_retrieval: mash not on PATH (apt-get install mash); its rows are skipped", file=sys.stderr)
        else:
            ver = subprocess.run(["mash", "--version"], capture_output=True, text=True).stdout.strip()
            with tempfile.TemporaryDirectory(prefix="bench_retrieval_") as tmp:
                for s in (int(x) for x in a.mash_sizes.split(",") if x.strip()):
                    add_matrix(f"mash {ver} dist k={a.sketch_k} s={s}",
                               lambda s=s: mash_scores(genomes, frags, k=a.sketch_k, sketch_size=s, work=Path(tmp),
                                                       threads=a.threads))

    title = "Held-out-species fragment retrieval" + ("" if gset == "issue3" else f" (issue 11, genome set '{gset}')")
    md = er.format_markdown(report, title=title)
    if no_hit:
        md += ("\nFragments with no hit at all (no shared hash with any genome; counted as misses above):\n\n| method | "
               + " | ".join(f"no hit @{d:.0%}" for d in cfg.divergences) + " |\n|---|" + "---:|" * len(cfg.divergences)
               + "\n" + "".join(f"| {k} | " + " | ".join(f"{v:.1f}" for v in vs) + " |\n" for k, vs in no_hit.items()))
    if gset != "issue3" and not a.genomes:
        md += "\n" + eh.describe_set(genomes) + "\n"
    meta = eb.run_metadata(threads=a.threads, seconds=time.perf_counter() - t_all)
    md += "\n" + eb.footer_markdown(meta, timings, ms.notes) + "(Fragments depend on mrl_dna.evolve.mutate's random draws.)\n"
    print(md)
    if a.output:
        a.output.write_text(md)
    if a.json:
        eb.write_json(a.json, {"benchmark": "retrieval", "set": gset, "quick": a.quick, "config": cfg,
                               "genomes": report.genomes, "species": report.species, "models": ms.models,
                               "identity": report.identity, "scores": report.scores, "full_dims": report.full_dims,
                               "no_hit": no_hit, "seconds": timings, "meta": meta})
    if a.plot:
        er.plot_report(report, a.plot)


if __name__ == "__main__":
    main()
