#!/usr/bin/env python
"""Contig -> species and contig -> genome (strain) with `mrl-dna search --level windows` (issue 20), beside
minimap2 -x asm20 and the pooled vectors (`search` at --level records).

References: every genome of --data (MANIFEST.tsv, genomes/ and small/) of at least --min-ref-bp (default 400 kb:
the 24 genomes and the three 500 kb bacterial pieces), each embedded into its own file (`embed --per-file
--save-windows`), so that a reference can be left out of the DB by leaving its file out. Species = groups of
references joined by fastANI >= 95% (cached fastANI all-vs-all of the references); strain twins (fastANI >= 99.8%:
K-12 MG1655 / W3110, CB15 / NA1000, BPEN / BPenn7) count as one genome.

Queries:
  cut contigs  --per-genome contigs from the chromosome of every reference with a same-species sibling, at real
               assembly lengths (drawn from the contig lengths of the real assemblies and drafts of --data, 300 bp
               to 50 kb), half reverse-complemented, seed --seed.
               species task: the source genome is left out of the DB; right = a genome of its species;
               strain task: every reference in; right = its own genome (or its twin).
  real contigs the contigs of --data's assemblies/ (a marine MAG): no reference is related to it (fastANI finds
               nothing), so this is the negative control: how many contigs each method gives a homolog
               (minimap2: any alignment; ours: a calibrated identity for the top target; pooled: always a hit).

Methods: minimap2 -x asm20 -N 100 -p 0.1 (the target with most matching bases), pooled contig vector vs pooled
genome vectors (`search` --level records), ours (`search --level windows`: the contig's windows summarised per
target, rank 1 among the allowed targets). Accuracy by contig length. Markdown on stdout, --json/--tsv.

    python scripts/bench/contigs.py --work WORK
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import homology_data as hd  # noqa: E402

from mrl_dna import dna  # noqa: E402

LENGTH_BINS = ((0, 2000), (2000, 5000), (5000, 20000), (20000, 10**9))
METHODS = ("minimap2", "pooled", "ours")


def species_groups(names: list[str], fa: dict, cut: float) -> dict[str, str]:
    """name -> the first name (sorted) of its group: connected components of pairs with fastANI >= cut (either
    direction)."""
    parent = {n: n for n in names}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for (a, b), v in fa.items():
        if a in parent and b in parent and v[0] >= cut:
            ra, rb = find(a), find(b)
            parent[max(ra, rb)] = min(ra, rb)
    return {n: find(n) for n in names}


def cut_contigs(refs: dict[str, Path], sources: list[str], lengths: np.ndarray, n_per: int, seed: int
                ) -> list[tuple[str, str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for src in sources:
        x = max((t for _, t in hd.read_records(refs[src])), key=len)  # the chromosome
        for i in range(n_per):
            L = int(min(rng.choice(lengths), len(x) - 1))
            s = int(rng.integers(0, len(x) - L))
            c = x[s: s + L]
            if (c == dna.N).mean() > 0.1:
                continue
            if rng.random() < 0.5:
                c = dna.revcomp(c)
            out.append((f"{src}__{i}", src, c))
    return out


def minimap2_best(paf: Path) -> dict[str, dict[str, int]]:
    """contig -> {reference: matching bases summed over its alignments}."""
    score: dict[str, dict[str, int]] = {}
    for line in open(paf):
        f = line.split("\t")
        q, t, match = f[0], f[5].split("|")[0], int(f[9])
        score.setdefault(q, {}).setdefault(t, 0)
        score[q][t] += match
    return score


def read_search(path: Path) -> dict[str, list[dict]]:
    """search TSV -> query -> its lines in rank order (dicts by header name; '#query' read as query)."""
    out: dict[str, list[dict]] = {}
    with open(path, newline="") as fh:
        head = None
        for line in fh:
            cells = line.rstrip("\n").split("\t")
            if line.startswith("#") and head is None:
                head = [c.lstrip("#") for c in cells]
                continue
            if line.startswith("#") or not line.strip():
                continue
            if head is None:
                head = ["query", "target", "rank", "cosine", "dims"]
            r = dict(zip(head, cells))
            out.setdefault(r["query"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: int(r.get("rank", 0) or 0))
    return out


def mrl(args: list, threads: int) -> dict:
    return hd.timed([sys.executable, "-m", "mrl_dna", *map(str, args), "--threads", str(threads), "-q"])


def search(queries: Path, dbs: list[Path], out: Path, level: str, k: int, a) -> float | None:
    if out.exists():
        return None
    tmp = out.with_name(out.name + ".partial")
    extra = (a.search_options.split() if level == "windows" else []) + (["--model", a.model] if a.model else [])
    with open(tmp, "w") as fh:
        t = hd.timed([sys.executable, "-m", "mrl_dna", "search", queries, *dbs, "--level", level, "-k", str(k),
                      *extra, "--threads", str(a.threads), "-q"], stdout=fh)
    os.replace(tmp, out)
    return t["seconds"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=hd.DEFAULT_DATA, help="shared data folder with MANIFEST.tsv [%(default)s]")
    ap.add_argument("--work", type=Path, required=True, help="work folder (inputs, contigs, peer and our outputs; "
                    "each step reruns only when its output is missing)")
    ap.add_argument("--per-genome", type=int, default=150, help="contigs cut per source genome [%(default)s]")
    ap.add_argument("--seed", type=int, default=20, help="[%(default)s]")
    ap.add_argument("--min-ref-bp", type=int, default=400_000, help="smallest reference genome [%(default)s]")
    ap.add_argument("--model", help="model directory (embedding and its calibration.json) [the bundled default]")
    ap.add_argument("--windows-stride", help="embed --windows-stride of the references [the product's default]")
    ap.add_argument("--search-options", default="", help="extra options of `search --level windows`")
    ap.add_argument("--threads", type=int, default=1, help="[%(default)s]")
    ap.add_argument("--tasks", default="species,strain,real", help="which of species, strain, real [%(default)s]")
    ap.add_argument("--strain-per-genome", type=int, default=0,
                    help="strain task on the first K contigs of each source only (0 = all) [%(default)s]")
    ap.add_argument("--peers-only", action="store_true", help="build the contigs and minimap2's output, skip ours")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--tsv", type=Path, help="one line per contig and task")
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    work = a.work
    genomes = [g for g in hd.manifest(a.data) if g.kind in ("genomes", "small") and g.bp >= a.min_ref_bp]
    refs = {g.name: hd.local_copy(g.path, work / "inputs") for g in genomes}
    names = sorted(refs)
    versions = hd.tool_versions("fastani", "minimap2")
    from mrl_dna import __version__
    versions["mrl-dna"] = __version__
    hd.log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    hd.fastani(list(refs.values()), list(refs.values()), work / "peers" / "fastani_refs.tsv", a.threads)
    fa = hd.load_fastani(work / "peers" / "fastani_refs.tsv")
    species = species_groups(names, fa, 95.0)
    strain = species_groups(names, fa, 99.8)
    sources = [n for n in names if sum(1 for m in names if species[m] == species[n]) > 1]
    # contig lengths of the real assemblies and drafts (>= 20 records) of the data set
    drafts = [g for g in hd.manifest(a.data) if g.kind == "assemblies" or (g.kind == "genomes" and g.nseq >= 20)]
    lengths = np.concatenate([[len(t) for _, t in hd.read_records(g.path)] for g in drafts])
    lengths = np.minimum(lengths[lengths >= 300], 50_000)
    cdir = work / "contigs"
    cdir.mkdir(parents=True, exist_ok=True)
    truth_f = cdir / "truth.tsv"
    if not truth_f.exists():
        contigs = cut_contigs(refs, sources, lengths, a.per_genome, a.seed)
        for src in sources:
            hd.write_fasta(cdir / f"{src}.fa", [(cid, c) for cid, s, c in contigs if s == src])
        hd.write_fasta(cdir / "all.fa", [(cid, c) for cid, _, c in contigs])
        with open(truth_f, "w") as f:
            f.write("contig\tsource\tlength\n")
            f.writelines(f"{cid}\t{s}\t{len(c)}\n" for cid, s, c in contigs)
    truth = {r["contig"]: (r["source"], int(r["length"])) for r in csv.DictReader(open(truth_f), delimiter="\t")}
    real = [g for g in hd.manifest(a.data) if g.kind == "assemblies"]
    real_fa = cdir / "real_assemblies.fa"
    if not real_fa.exists():
        hd.write_fasta(real_fa, [(f"{g.name}|{rid}", t) for g in real for rid, t in hd.read_records(g.path)
                                 if len(t) >= 300])
    n_real = sum(1 for ln in open(real_fa) if ln.startswith(">"))
    hd.log(f"{len(truth):,} cut contigs from {len(sources)} genomes; {n_real} real contigs; {len(names)} references")
    timing = {}
    # minimap2
    refs_fa = work / "peers" / "refs.fa"
    if not refs_fa.exists():
        hd.write_fasta(refs_fa, [(f"{n}|{rid}", t) for n in names for rid, t in hd.read_records(refs[n])])
    for qname, q in (("cut", cdir / "all.fa"), ("real", real_fa)):
        paf = work / "peers" / f"minimap2_{qname}.paf"
        if not paf.exists():
            with open(Path(str(paf) + ".partial"), "w") as fh:
                t = hd.timed(["minimap2", "-x", "asm20", "-N", "100", "-p", "0.1", "-t", str(a.threads), refs_fa, q],
                             stdout=fh)
            os.replace(Path(str(paf) + ".partial"), paf)
            timing[f"minimap2 {qname}"] = t["seconds"]
    mm = minimap2_best(work / "peers" / "minimap2_cut.paf")
    mm_real = minimap2_best(work / "peers" / "minimap2_real.paf")
    if a.peers_only:
        hd.log("--peers-only: done")
        return
    # ours: one embedding file per reference
    odir = work / "ours"
    odir.mkdir(parents=True, exist_ok=True)
    t_embed = 0.0
    for n in names:
        h5 = odir / f"{n}.h5"
        if not h5.exists():
            extra = ["--windows-stride", a.windows_stride] if a.windows_stride else []
            if a.model:
                extra += ["--model", a.model]
            t_embed += mrl(["embed", refs[n], "--per-file", "--save-windows", *extra, "-o", h5], a.threads)["seconds"]
    if t_embed:
        timing["ours embed references"] = t_embed
    dbs = {n: odir / f"{n}.h5" for n in names}
    tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    queries = {"species": list(truth), "strain": list(truth)}
    strain_fa, strain_tag = cdir / "all.fa", ""
    if a.strain_per_genome:  # the first K contigs of each source
        seen: dict[str, int] = {}
        queries["strain"] = [q for q in truth if seen.setdefault(truth[q][0], 0) < a.strain_per_genome
                             and not seen.__setitem__(truth[q][0], seen[truth[q][0]] + 1)]
        strain_tag = f"_k{a.strain_per_genome}"
        strain_fa = cdir / f"strain{strain_tag}.fa"
        if not strain_fa.exists():
            keep = set(queries["strain"])
            hd.write_fasta(strain_fa, [r for r in hd.read_records(cdir / "all.fa") if r[0] in keep])
    picks: dict[tuple[str, str], dict[str, str | None]] = {}  # (task, contig) -> method -> pick
    real_ours: dict = {}
    for level, method in (("records", "pooled"), ("windows", "ours")):
        ts = 0.0
        for src in sources if "species" in tasks else ():  # species: the source left out
            out = odir / f"search_{level}_species_{src}.tsv"
            ts += search(cdir / f"{src}.fa", [dbs[n] for n in names if n != src], out, level, len(names), a) or 0
            for q, hits in read_search(out).items():
                picks.setdefault(("species", q), {})[method] = hits[0]["target"] if hits else None
        if "strain" in tasks:
            out = odir / f"search_{level}_strain{strain_tag}.tsv"
            ts += search(strain_fa, list(dbs.values()), out, level, 3, a) or 0
            for q, hits in read_search(out).items():
                picks.setdefault(("strain", q), {})[method] = hits[0]["target"] if hits else None
        if "real" in tasks:
            out = odir / f"search_{level}_real.tsv"
            ts += search(real_fa, list(dbs.values()), out, level, 1, a) or 0
            if level == "windows":
                real_ours = read_search(out)
        if ts:
            timing[f"ours search --level {level}" if level == "windows" else "search --level records (pooled)"] = ts
    for task in ("species", "strain"):
        for q in queries[task]:
            picks.setdefault((task, q), {})
            sc = {k: v for k, v in mm.get(q, {}).items() if task == "strain" or k != truth[q][0]}
            picks[(task, q)]["minimap2"] = max(sc, key=sc.get) if sc else None
    # scores
    key = {"species": species, "strain": strain}
    stats: dict = {}
    lines = [f"## Contig -> species / strain ({', '.join(f'{k} {v}' for k, v in versions.items())})",
             f"\n{len(truth):,} contigs cut at real assembly lengths from {len(sources)} genomes with a same-species "
             f"sibling; {len(names)} references (species task: the source left out). Accuracy % (n):\n"]
    head = "| task | method | " + " | ".join(f"{lo // 1000}-{hi // 1000 if hi < 10**9 else 'inf'} kb" for lo, hi in LENGTH_BINS) + " | all |"
    lines += [head, "|---|---|" + "---:|" * (len(LENGTH_BINS) + 1)]
    for task in [t for t in ("species", "strain") if t in tasks]:
        for m in METHODS:
            cells, st = [], {}
            for lo, hi in (*LENGTH_BINS, (0, 10**10)):
                qs = [q for q in queries[task] if lo <= truth[q][1] < hi]
                ok = [picks[(task, q)].get(m) is not None and key[task].get(picks[(task, q)][m]) == key[task][truth[q][0]]
                      for q in qs]
                acc = 100 * float(np.mean(ok)) if ok else math.nan
                cells.append(f"{acc:.1f} ({len(ok)})" if ok else "-")
                st[f"{lo}-{hi}"] = {"accuracy": acc, "n": len(ok)}
            stats[f"{task}/{m}"] = st
            lines.append(f"| {task} | {'**ours**' if m == 'ours' else m} | " + " | ".join(cells) + " |")
    # real contigs: negative control
    def has_identity(hits):
        if not hits:
            return False
        v = hits[0].get("identity", "")
        try:
            return not math.isnan(float(v))
        except ValueError:
            return False
    n_mm = sum(1 for q in mm_real if mm_real[q])
    n_ours = sum(1 for q, h in real_ours.items() if has_identity(h))
    if "real" in tasks:
        lines.append(f"\nReal assembly contigs ({n_real} of {', '.join(g.name for g in real)}; no reference is related): "
                     f"given a homolog by minimap2 {n_mm}, by ours (a calibrated identity for the top target) "
                     f"{n_ours}; the pooled vectors always name a nearest genome.")
    stats["real_contigs"] = {"n": n_real, "minimap2_hit": n_mm, "ours_identity": n_ours}
    tl = "; ".join(f"{k} {v:.0f} s" for k, v in timing.items())
    lines.append(f"\nNew runs this time ({a.threads} thread(s)): {tl or 'none (all cached)'}. Species = fastANI >= 95% "
                 f"groups; strain twins = fastANI >= 99.8%. Total {time.perf_counter() - t_start:.0f} s.")
    print("\n".join(lines))
    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write("task\tcontig\tsource\tlength\t" + "\t".join(METHODS) + "\n")
            for (task, q), p in sorted(picks.items()):
                if q in truth:
                    f.write(f"{task}\t{q}\t{truth[q][0]}\t{truth[q][1]}\t" + "\t".join(str(p.get(m)) for m in METHODS) + "\n")
    if a.json:
        a.json.write_text(json.dumps({"versions": versions, "command": " ".join(sys.argv[1:]), "stats": stats,
                                      "timing": timing, "species_groups": species, "strain_groups": strain}, indent=1) + "\n")


if __name__ == "__main__":
    main()
