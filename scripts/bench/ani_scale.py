#!/usr/bin/env python
"""Scale of window-level ANI (issue 20): an all-vs-all of --n genomes with `mrl-dna dist --level windows` beside
skani (pyskani: sketch once, query all) and fastANI, and whole-genome queries against a DB of --db-windows saved
windows with `mrl-dna search --level windows`. Wall time and peak RSS of every step (each in its own process,
/usr/bin/time -v), at --threads (default 1) for every tool.

Genomes: every bacterial genome of --data's genomes/ (MANIFEST.tsv), cut to its first --genome-bp of its longest
record (real sequence), plus relatives of them made at known divergence (homology_data.make_relative: uneven
rates, replaced segments, moved blocks; identity drawn uniformly in [--min-ident, 1]; fixed seeds) until there
are --n: families of ~n/24 genomes, so the all-vs-all holds a realistic share of related pairs.
  ours     embed --per-file --save-windows --dtype float16 (timed apart), then dist --level windows (A vs A);
           the total = both.
  skani    pyskani 0.2 defaults: sketch every genome once, query every genome against the database.
  fastANI  --ql (a random sample of --fastani-sample genomes, all when 0) --rl (all n): its time x n / sample is
           the all-vs-all estimate (marked as such).
Big DB: the windows of the n genomes, then jittered copies of them (normalize(v + jitter * std * noise), per
record; a stand-in for more genomes: real for cost, not for quality) up to --db-windows windows (float16);
--db-queries whole genomes (those of the set) searched against it by their windows (`search --level windows
-k 10`): time per query and peak RSS.

    python scripts/bench/ani_scale.py --work WORK --n 1000 --genome-bp 200000 --db-windows 10000000
    python scripts/bench/ani_scale.py --work WORK_TRIAL --n 100 --db-windows 0      # a trial
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import homology_data as hd  # noqa: E402

from mrl_dna import dna  # noqa: E402


def make_genomes(a, folder: Path) -> list[Path]:
    """--n genomes (module doc) as folder/NAME.fa; reused when all exist."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [g for g in hd.manifest(a.data) if g.kind == "genomes" and g.bp >= a.genome_bp]
    if not sources:
        raise SystemExit(f"no genome of {a.data} has --genome-bp {a.genome_bp} bp")
    rng = np.random.default_rng(a.seed)
    plan = []  # (name, source index, identity or None)
    for i in range(a.n):
        s = i % len(sources)
        k = i // len(sources)
        plan.append((f"{sources[s].name}" if k == 0 else f"{sources[s].name}__m{k}", s,
                     None if k == 0 else round(float(rng.uniform(a.min_ident, 1.0)), 4)))
    paths = [folder / f"{n}.fa" for n, _, _ in plan]
    if all(p.exists() for p in paths):
        return paths
    roots = {}
    for name, s, ident in plan:
        p = folder / f"{name}.fa"
        if p.exists():
            continue
        if s not in roots:
            x = max((t for _, t in hd.read_records(sources[s].path)), key=len)
            x = x[x != dna.N][: a.genome_bp]
            roots[s] = x
        y = roots[s] if ident is None else hd.make_relative(roots[s], name, ident, segment=min(5000, a.genome_bp // 20))[0]
        hd.write_fasta(p, [(name, y)])
    return paths


def mrl_timed(args: list, threads: int, stdout=None, quiet: bool = True) -> dict:
    return hd.timed([sys.executable, "-m", "mrl_dna", *map(str, args), "--threads", str(threads),
                     *(["-q"] if quiet else [])], stdout=stdout)


def screen_counts(stderr: str) -> tuple[int | None, int | None]:
    """(pairs skipped by the pooled screen, pairs compared by windows) from dist's summary line."""
    import re

    sk = re.search(r"([\d,]+) pairs? skipped by the pooled screen", stderr)
    cp = re.search(r"([\d,]+) pairs? compared by windows", stderr)
    num = (lambda m: int(m.group(1).replace(",", "")) if m else None)
    return num(sk), num(cp)


def skani_timed(files: list[Path], out: Path, threads: int) -> dict:
    """pyskani in a process of its own (its peak RSS alone): sketch all, query all."""
    out.unlink(missing_ok=True)  # timed: always run
    lst = out.with_suffix(".files.txt")
    lst.write_text("".join(f"{p}\n" for p in files))
    code = ("import sys, time, json; sys.path.insert(0, sys.argv[1]); import homology_data as hd; "
            "fs=[l.strip() for l in open(sys.argv[2]) if l.strip()]; from pathlib import Path; "
            "t=hd.skani([Path(f) for f in fs],[Path(f) for f in fs],Path(sys.argv[3])); print(json.dumps(t))")
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    t = hd.timed([sys.executable, "-c", code, str(Path(__file__).resolve().parent), lst, out], env=env)
    t.update(json.loads(t.pop("stdout").strip().splitlines()[-1]))
    return t


def build_big_db(src: Path, out: Path, windows: int, jitter: float, seed: int) -> dict:
    """OUT = src's rows with their saved windows, then jittered copies (ids NAME#cK) until >= windows windows."""
    from mrl_dna.store import EmbeddingStore
    from mrl_dna.store.format import HOUSEKEEPING, EmbeddedRecord
    from mrl_dna.store.writer import EmbeddingWriter

    t0 = time.perf_counter()
    st = EmbeddingStore.open(src)
    wt = st.windows()
    D = st.dim
    wv = wt.read(None).astype(np.float32)
    std = np.sqrt((wv.astype(np.float64) ** 2).mean(0)).astype(np.float32)
    ct = st.contigs()
    recs = []
    for r in range(st.n):
        m = wt.record == r
        cidx = np.flatnonzero(ct.record == r)
        names = tuple((ct.name[i], int(ct.length[i])) for i in cidx)
        local = wt.contig[m] - (cidx[0] if len(cidx) else 0)
        recs.append((str(st.ids[r]), int(st.lengths[r]), np.stack([wt.start[m], wt.end[m]], 1), wv[m], names, local))
    pooled = st.read(None)
    attrs = {k: v for k, v in st.attrs.items() if k not in HOUSEKEEPING + ("dim", "dtype", "save_windows", "per_file")}
    attrs["command"] = "scripts/bench/ani_scale.py (big DB: jittered copies)"
    rng = np.random.default_rng(seed)
    done, copy = 0, 0
    with EmbeddingWriter(out, attrs=attrs, dim=D, dtype="float16", save_windows=True, per_file=True, overwrite=True) as w:
        while done < windows:
            batch = []
            for i, (rid, L, spans, v, names, local) in enumerate(recs):
                if copy:
                    v = v + jitter * std * rng.standard_normal(v.shape, dtype=np.float32)
                    v /= np.linalg.norm(v, axis=1, keepdims=True)
                p = v.sum(0)
                p /= np.linalg.norm(p)
                batch.append(EmbeddedRecord(id=rid + (f"#c{copy}" if copy else ""), length=L, n_windows=len(v),
                                            n_skipped=0, status="ok", vector=p if copy else pooled[i],
                                            window_spans=spans, window_vectors=v, contigs=names, window_contigs=local))
                done += len(v)
                if done >= windows:
                    break
            w.append(batch)
            copy += 1
            hd.log(f"big DB: {done:,}/{windows:,} windows")
        w.finish()
    st.close()
    return {"seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=hd.DEFAULT_DATA, help="shared data folder with MANIFEST.tsv [%(default)s]")
    ap.add_argument("--work", type=Path, required=True, help="work folder (genomes, embeddings, outputs; kept)")
    ap.add_argument("--n", type=int, default=1000, help="genomes in the all-vs-all [%(default)s]")
    ap.add_argument("--genome-bp", type=int, default=200_000, help="bp per genome [%(default)s]")
    ap.add_argument("--min-ident", type=float, default=0.8, help="lowest identity of a relative [%(default)s]")
    ap.add_argument("--seed", type=int, default=0, help="[%(default)s]")
    ap.add_argument("--dist-options", default="", help="extra options of `dist --level windows`, e.g. '--min-ani 95'")
    ap.add_argument("--fastani-sample", type=int, default=20, help="query genomes of the fastANI run (0 = all) [%(default)s]")
    ap.add_argument("--db-windows", type=float, default=10e6, help="windows of the big DB (0 = skip) [%(default)s]")
    ap.add_argument("--db-queries", type=int, default=5, help="whole genomes queried against it [%(default)s]")
    ap.add_argument("--jitter", type=float, default=0.05, help="[%(default)s]")
    ap.add_argument("--db-search-options", default="", help="extra options of the big DB's search, e.g. '--funnel auto'")
    ap.add_argument("--model", help="model directory (embedding and its calibration.json) [the bundled default]")
    ap.add_argument("--threads", type=int, default=1, help="[%(default)s]")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    work = a.work
    work.mkdir(parents=True, exist_ok=True)
    versions = hd.tool_versions("fastani", "skani")
    from mrl_dna import __version__
    versions["mrl-dna"] = __version__
    hd.log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    gdir = work / f"genomes_n{a.n}_{a.genome_bp}"
    t0 = time.perf_counter()
    files = make_genomes(a, gdir)
    hd.log(f"{len(files)} genomes of {a.genome_bp:,} bp in {gdir} ({time.perf_counter() - t0:.0f} s)")
    res: dict = {}
    h5 = work / f"all_n{a.n}.h5"
    model = ["--model", a.model] if a.model else []
    embed_json = h5.with_name(h5.name + ".embed.json")  # the embed run's time, kept for reruns of the rest
    if not h5.exists():
        t = mrl_timed(["embed", *files, "--per-file", "--save-windows", "--dtype", "float16", *model, "-o", h5], a.threads)
        t.pop("stdout", None), t.pop("stderr", None)
        embed_json.write_text(json.dumps(t) + "\n")
        hd.log(f"embed: {t['seconds']:.0f} s")
    if embed_json.exists():
        res["ours embed"] = json.loads(embed_json.read_text())
    tsv = work / f"dist_n{a.n}.tsv"
    res["ours dist --level windows"] = mrl_timed(["dist", h5, "--level", "windows", *model, *a.dist_options.split(), "-o", tsv,
                                                  "-f"], a.threads, quiet=False)
    skipped, compared = screen_counts(res["ours dist --level windows"]["stderr"])
    res["ours dist --level windows"].update(screened_out=skipped, compared=compared)
    n_lines = sum(1 for ln in open(tsv) if not ln.startswith("#"))
    hd.log(f"dist: {res['ours dist --level windows']['seconds']:.0f} s, {n_lines} lines")
    res["skani sketch + query"] = skani_timed(files, work / f"skani_n{a.n}.tsv", a.threads)
    sample = files if not a.fastani_sample or a.fastani_sample >= len(files) else \
        [files[i] for i in sorted(np.random.default_rng(a.seed).choice(len(files), a.fastani_sample, replace=False))]
    fa_out = work / f"fastani_n{a.n}_q{len(sample)}.tsv"
    fa_out.unlink(missing_ok=True)
    res["fastANI"] = hd.fastani(sample, files, fa_out, a.threads)
    scale = len(files) / len(sample)
    n_pairs = len(files) * (len(files) - 1) // 2
    lines = [f"## ANI all-vs-all of {len(files):,} genomes of {a.genome_bp // 1000} kb ({n_pairs:,} pairs), "
             f"{a.threads} thread(s) ({', '.join(f'{k} {v}' for k, v in versions.items())})\n",
             "| tool | step | wall s | peak RSS MiB |", "|---|---|---:|---:|"]
    e = res.get("ours embed")
    if e:
        lines.append(f"| ours | embed --per-file --save-windows (float16) | {e['seconds']:.0f} | {e['peak_rss_mib']:.0f} |")
    d = res["ours dist --level windows"]
    how = (f"{compared:,} pairs compared by windows" if compared is not None else "") + \
        (f", {skipped:,} skipped by the pooled screen" if skipped else "")
    lines.append(f"| ours | dist --level windows {a.dist_options} ({how}; {n_lines:,} lines) | {d['seconds']:.0f} | "
                 f"{d['peak_rss_mib']:.0f} |")
    if e:
        lines.append(f"| **ours** | **total (embed + dist)** | **{e['seconds'] + d['seconds']:.0f}** | "
                     f"{max(e['peak_rss_mib'], d['peak_rss_mib']):.0f} |")
    s = res["skani sketch + query"]
    lines.append(f"| skani | sketch {s['sketch_s']:.0f} s + query {s['query_s']:.0f} s | {s['seconds']:.0f} | "
                 f"{s['peak_rss_mib']:.0f} |")
    f = res["fastANI"]
    if scale > 1:
        lines.append(f"| fastANI | {len(sample)} queries x {len(files)} refs (measured) | {f['seconds']:.0f} | "
                     f"{f['peak_rss_mib']:.0f} |")
        lines.append(f"| fastANI | all-vs-all, **extrapolated** x{scale:.0f} from the sample | ~{f['seconds'] * scale:.0f} | - |")
    else:
        lines.append(f"| fastANI | all-vs-all | {f['seconds']:.0f} | {f['peak_rss_mib']:.0f} |")
    if a.db_windows:
        big = work / f"bigdb_{int(a.db_windows)}.h5"
        if not big.exists():
            res["big DB build"] = build_big_db(h5, big, int(a.db_windows), a.jitter, a.seed)
        qs = files[: a.db_queries]
        qfa = work / f"queries_{len(qs)}.fa"
        hd.write_fasta(qfa, [r for p in qs for r in hd.read_records(p)])
        with open(work / "bigdb_search.tsv", "w") as fh:
            res["big DB search"] = mrl_timed(["search", qfa, big, "--level", "windows", "-k", "10", *model,
                                              *a.db_search_options.split()], a.threads, stdout=fh)
        from mrl_dna.store import EmbeddingStore
        with EmbeddingStore.open(big) as st:
            nw = len(st.windows())
        q = res["big DB search"]
        lines += [f"\nWhole-genome queries ({len(qs)} x {a.genome_bp // 1000} kb, `search --level windows -k 10`) against "
                  f"{nw:,} saved windows (float16, {big.stat().st_size / 2**30:.1f} GiB; real windows of the set + "
                  f"jittered copies): {q['seconds']:.0f} s in all, **{q['seconds'] / len(qs):.1f} s per query** "
                  f"(model load and query embedding included), peak RSS {q['peak_rss_mib']:.0f} MiB."]
    print("\n".join(lines))
    if a.json:
        a.json.write_text(json.dumps({"versions": versions, "command": " ".join(sys.argv[1:]),
                                      "n": len(files), "genome_bp": a.genome_bp, "fastani_scale": scale,
                                      "results": {k: {kk: vv for kk, vv in v.items() if kk not in ("stdout", "stderr")}
                                                  for k, v in res.items() if v}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
