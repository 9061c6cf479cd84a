#!/usr/bin/env python
"""Genome-vs-genome ANI of `mrl-dna dist --level windows` against fastANI, skani and published ANIm (issue 20).

Two sets, every number from the product (`embed --per-file --save-windows`, then `dist --level windows` or, for a
chosen list of pairs, its own pair code compare.windows.WindowLevel.compare in this process):
  real       every genome of --data (MANIFEST.tsv: genomes/, small/, assemblies/); --pairs related (default):
             every pair that fastANI, skani or an ANIm table gives a value, every pair of one MANIFEST group, and
             --controls random unrelated pairs; --pairs all: all pairs. References: fastANI (apt, all-vs-all, both
             directions averaged), skani (pyskani defaults) and the ANIm tables of truth/ (pyani, JSpecies).
  relatives  8 genomes x 11 identities (99.5 ... 75%) made at known divergence (homology_data.make_relative:
             uneven rates along the genome, replaced segments, moved / reverse-complemented blocks; fixed seeds),
             each against its source; reference = the known event identity (and the known homologous fraction).
Figures: MAE by band (>= 99, 95-99, 90-95, 80-90, 70-80, by the reference's value), overall MAE, Pearson,
species-call agreement at 95% (NA = below), NA counts; aligned fraction against fastANI's mapped fraction
(mapped / query fragments) and skani's AF; the same rows for fastANI and skani against the truth.

Peer outputs and our embeddings are cached in --work (rerun only when missing; delete a file to redo it);
tool versions are printed. Markdown on stdout, talk on stderr, --json/--tsv keep every number and every pair.

    python scripts/bench/ani.py --work WORK                      # ../shared/data, 1 thread
    python scripts/bench/ani.py --work W --sets relatives --json ani.json
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


# ---- our side: the CLI ------------------------------------------------------------------------------------
def mrl(args: list, threads: int) -> dict:
    return hd.timed([sys.executable, "-m", "mrl_dna", *map(str, args), "--threads", str(threads), "-q"])


def embed(files: list[Path], out: Path, a) -> dict | None:
    """`mrl-dna embed FILES --per-file --save-windows` into out (kept: rerun only when missing)."""
    if out.exists():
        return None
    extra = ["--windows-stride", a.windows_stride] if a.windows_stride else []
    if a.model:
        extra += ["--model", a.model]
    t = mrl(["embed", *files, "--per-file", "--save-windows", "--dtype", a.dtype, *extra, "-o", out], a.threads)
    hd.log(f"embedded {len(files)} files -> {out.name}: {t['seconds']:.0f} s, {t['peak_rss_mib']:.0f} MiB")
    return t


def dist(h5a: Path, h5b: Path | None, out: Path, a) -> dict | None:
    if out.exists():
        return None
    tmp = out.with_name(out.name + ".partial.tsv")
    t = mrl(["dist", h5a, *([h5b] if h5b else []), "--level", "windows", *(["--model", a.model] if a.model else []),
             *a.dist_options.split(), "-o", tmp, "-f"], a.threads)
    if "no identity calibration" in t["stderr"]:
        tmp.unlink(missing_ok=True)
        raise SystemExit("the model has no identity calibration.json (every ANI would be NA): give --model a model "
                         "directory that has one (`mrl-dna calibrate`)")
    os.replace(tmp, out)
    hd.log(f"dist --level windows {h5a.name} {h5b.name if h5b else ''} -> {out.name}: {t['seconds']:.0f} s, "
           f"{t['peak_rss_mib']:.0f} MiB")
    return t


def dist_pairs(h5: Path, pairs: list[tuple[str, str]], out: Path, a) -> dict | None:
    """The lines `dist H5 --level windows` prints for the given pairs only (its own code: WindowLevel.compare, then
    the --min-af rule), into out; in this process (no screen: every pair is compared)."""
    if out.exists():
        return None
    import resource

    from mrl_dna.compare.matrix import set_blas_threads
    from mrl_dna.compare.windows import MIN_AF, WindowLevel, header_line, pair_line, reported

    set_blas_threads(a.threads)
    t0 = time.perf_counter()
    tmp = out.with_name(out.name + ".partial.tsv")
    with WindowLevel(h5, model_dir=a.model) as lv, open(tmp, "w") as f:
        if lv.calibration is None:
            raise SystemExit("the model has no identity calibration.json (every ANI would be NA): give --model a "
                             "model directory that has one (`mrl-dna calibrate`)")
        idx = {str(n): i for i, n in enumerate(lv.ids(0))}
        f.write(header_line())
        for k, (x, y) in enumerate(pairs):
            r = lv.compare(0, idx[x], 0, idx[y])
            if r is not None:
                f.write(pair_line(reported(r, MIN_AF)))
            if (k + 1) % 10 == 0:
                hd.log(f"windows: {k + 1}/{len(pairs)} pairs, {time.perf_counter() - t0:.0f} s")
    os.replace(tmp, out)
    t = {"seconds": time.perf_counter() - t0,
         "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    hd.log(f"dist --level windows on {len(pairs)} pairs of {h5.name}: {t['seconds']:.0f} s")
    return t


def chosen_pairs(genomes, fa, sk, truth, controls: int, seed: int) -> list[tuple[str, str]]:
    """Pairs with a fastANI, skani or ANIm value, pairs of one MANIFEST group, and `controls` random other pairs."""
    names = [g.name for g in genomes]
    group = {g.name: g.group for g in genomes}
    ref = {tuple(sorted(p)) for p in (*fa, *sk, *truth)}
    allp = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    keep = [p for p in allp if tuple(sorted(p)) in ref or group[p[0]] == group[p[1]]]
    rest = [p for p in allp if p not in set(keep)]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(rest), min(controls, len(rest)), replace=False)) if rest else []
    return keep + [rest[i] for i in pick]


def load_ours(path: Path) -> dict[tuple[str, str], dict]:
    """dist --level windows TSV -> {(query, target): row}; both orders filled (af_* swapped for the reverse)."""
    out = {}
    if not path.exists():
        return out
    with open(path, newline="") as fh:
        rows = [r for r in csv.DictReader((ln for ln in fh if not ln.startswith("##")), delimiter="\t")]
    for r in rows:
        q, t = r.get("query") or r.get("#query"), r["target"]
        val = {k: _num(v) for k, v in r.items() if k not in ("query", "#query", "target")}
        out[(q, t)] = val
        if (t, q) not in out:
            rev = dict(val)
            rev["af_query"], rev["af_target"] = val.get("af_target", math.nan), val.get("af_query", math.nan)
            if "ani_qt" in val and "ani_tq" in val:
                rev["ani_qt"], rev["ani_tq"] = val["ani_tq"], val["ani_qt"]
            out[(t, q)] = rev
    return out


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan if v in ("", "NA", "nan", None) else v


# ---- the sets --------------------------------------------------------------------------------------------
def real_set(a, genomes, work: Path, timing: dict) -> list[dict]:
    inputs = [hd.local_copy(g.path, work / "inputs") for g in genomes]
    peers = work / "peers"
    t = hd.fastani(inputs, inputs, peers / "fastani_real.tsv", a.threads)
    timing["fastANI real all-vs-all"] = t
    timing["skani real all-vs-all"] = hd.skani(inputs, inputs, peers / "skani_real.tsv")
    fa, sk = hd.load_fastani(peers / "fastani_real.tsv"), hd.load_skani(peers / "skani_real.tsv")
    truth = hd.truth_ani(a.data, genomes)
    ours = {}
    if not a.peers_only:
        h5 = work / "ours" / "real.h5"
        h5.parent.mkdir(parents=True, exist_ok=True)
        timing["ours embed real"] = embed(inputs, h5, a)
        if a.pairs == "all":
            timing["ours dist real (all pairs)"] = dist(h5, None, work / "ours" / "dist_real.tsv", a)
            ours = load_ours(work / "ours" / "dist_real.tsv")
        else:
            sel = chosen_pairs(genomes, fa, sk, truth, a.controls, 0)
            out = work / "ours" / f"dist_real_related_c{a.controls}.tsv"
            timing[f"ours dist real ({len(sel)} pairs)"] = dist_pairs(h5, sel, out, a)
            ours = load_ours(out)
    rows = []
    names = [g.name for g in genomes]
    sel = None if a.pairs == "all" or a.peers_only else {tuple(sorted(p)) for p in
                                                         chosen_pairs(genomes, fa, sk, truth, a.controls, 0)}
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            if sel is not None and tuple(sorted((x, y))) not in sel:
                continue
            f = [fa[p][0] for p in ((x, y), (y, x)) if p in fa]
            s = [sk[p][0] for p in ((x, y), (y, x)) if p in sk]
            o = ours.get((x, y), {})
            rows.append(dict(
                set="real", a=x, b=y, truth=truth.get((min(x, y), max(x, y)), (math.nan, ""))[0],
                fastani=float(np.mean(f)) if f else math.nan, skani=float(np.mean(s)) if s else math.nan,
                ours=o.get("ani", math.nan), ours_ab=o.get("ani_qt", math.nan), ours_ba=o.get("ani_tq", math.nan),
                af_a=o.get("af_query", math.nan), af_b=o.get("af_target", math.nan),
                fa_af_a=fa[(x, y)][1] / fa[(x, y)][2] if (x, y) in fa else math.nan,
                fa_af_b=fa[(y, x)][1] / fa[(y, x)][2] if (y, x) in fa else math.nan,
                sk_af_a=sk[(x, y)][1] if (x, y) in sk else (sk[(y, x)][2] if (y, x) in sk else math.nan),
                sk_af_b=sk[(x, y)][2] if (x, y) in sk else (sk[(y, x)][1] if (y, x) in sk else math.nan),
                af_a_truth=math.nan, af_b_truth=math.nan))
    return rows


def relatives_set(a, genomes, work: Path, timing: dict) -> list[dict]:
    by_name = {g.name: g for g in genomes}
    chosen = [s.strip() for s in a.relative_sources.split(",") if s.strip()] if a.relative_sources else hd.RELATIVE_SOURCES
    missing = [s for s in chosen if s not in by_name]
    if missing:
        raise SystemExit(f"relatives: sources {missing} not in {a.data}/MANIFEST.tsv")
    srcs = {s: hd.local_copy(by_name[s].path, work / "inputs") for s in chosen}
    decoys = [Path(p) for p in a.decoys] if a.decoys else None
    rels = hd.make_relatives(srcs, hd.RELATIVE_TARGETS, work / "relatives", decoys)
    peers = work / "peers"
    tf = tq = 0.0
    for s, sp in srcs.items():
        rp = [work / "relatives" / f"{r.name}.fa" for r in rels if r.source == s]
        t1 = hd.fastani(rp, [sp], peers / f"fastani_rel_{s}.fwd.tsv", a.threads)
        t2 = hd.fastani([sp], rp, peers / f"fastani_rel_{s}.rev.tsv", a.threads)
        tf += (t1["seconds"] or 0) + (t2["seconds"] or 0)
        tk = hd.skani(rp, [sp], peers / f"skani_rel_{s}.tsv")
        tq += (tk.get("sketch_s") or 0) + (tk.get("query_s") or 0)
        if not t1.get("cached"):
            hd.log(f"peers for the relatives of {s} done")
    timing["fastANI relatives (new runs)"] = {"seconds": tf}
    timing["skani relatives (new runs)"] = {"seconds": tq}
    fa, sk = {}, {}
    for s in srcs:
        for suf in ("fwd", "rev"):
            fa.update(hd.load_fastani(peers / f"fastani_rel_{s}.{suf}.tsv"))
        sk.update(hd.load_skani(peers / f"skani_rel_{s}.tsv"))
    ours = {}
    if not a.peers_only:
        for s, sp in srcs.items():
            rp = [work / "relatives" / f"{r.name}.fa" for r in rels if r.source == s]
            h_rel, h_src = work / "ours" / f"rel_{s}.h5", work / "ours" / f"src_{s}.h5"
            h_rel.parent.mkdir(parents=True, exist_ok=True)
            for key, t in ((f"ours embed relatives of {s}", embed(rp, h_rel, a)),
                           (f"ours embed source {s}", embed([sp], h_src, a)),
                           (f"ours dist relatives of {s}", dist(h_rel, h_src, work / "ours" / f"dist_rel_{s}.tsv", a))):
                timing[key] = t
            ours.update(load_ours(work / "ours" / f"dist_rel_{s}.tsv"))
    rows = []
    for r in rels:
        x, y = r.name, r.source
        f = [fa[p][0] for p in ((x, y), (y, x)) if p in fa]
        s = [sk[p][0] for p in ((x, y), (y, x)) if p in sk]
        o = ours.get((x, y), {})
        rows.append(dict(
            set="relatives", a=x, b=y, truth=100 * r.ident, fastani=float(np.mean(f)) if f else math.nan,
            skani=float(np.mean(s)) if s else math.nan, ours=o.get("ani", math.nan),
            ours_ab=o.get("ani_qt", math.nan), ours_ba=o.get("ani_tq", math.nan),
            af_a=o.get("af_query", math.nan), af_b=o.get("af_target", math.nan),
            fa_af_a=fa[(x, y)][1] / fa[(x, y)][2] if (x, y) in fa else math.nan,
            fa_af_b=fa[(y, x)][1] / fa[(y, x)][2] if (y, x) in fa else math.nan,
            sk_af_a=sk[(x, y)][1] if (x, y) in sk else math.nan, sk_af_b=sk[(x, y)][2] if (x, y) in sk else math.nan,
            af_a_truth=r.af_relative, af_b_truth=r.af_source))
    return rows


# ---- report ------------------------------------------------------------------------------------------------
def af_error(rows: list[dict], ours: str, ref: str, lo: float, hi: float, by: str) -> tuple[float | None, int]:
    """Mean |ours af - ref af| over both sides of the pairs whose `by` ANI lies in [lo, hi) and both exist."""
    d = []
    for r in rows:
        if not (lo <= r[by] < hi):
            continue
        for side in ("a", "b"):
            x, y = r[f"{ours}_{side}"], r[f"{ref}_{side}"]
            if not (math.isnan(x) or math.isnan(y)):
                d.append(abs(x - y))
    return (float(np.mean(d)) if d else None), len(d)


def report(rows: list[dict], set_name: str, refs: list[str]) -> tuple[list[str], dict]:
    lines, stats = [], {}
    rr = [r for r in rows if r["set"] == set_name]
    if not rr:
        return lines, stats
    lines += [f"\n### {set_name}: {len(rr)} pairs\n", hd.TABLE_HEAD]
    for ref in refs:
        for est in ("ours", "fastani", "skani"):
            if est == ref:
                continue
            pairs = [(r[ref], r[est]) for r in rr]
            if all(math.isnan(p[0]) for p in pairs):
                continue
            t = hd.error_table(pairs)
            ag = hd.species_agreement(pairs)
            stats[f"{est}_vs_{ref}"] = {**t, "species_agreement": ag[0], "species_pairs": ag[1]}
            label = {"ours": "**ours**", "fastani": "fastANI", "skani": "skani"}[est]
            lines.append(hd.markdown_row(f"{label} vs {ref}", t, ag))
    # aligned fractions
    ref_ani = refs[0]
    lines.append(f"\nAligned fraction, mean |difference| per side (pairs binned by {ref_ani} ANI; n = sides):\n")
    lines.append("| ours vs | >=95 | 90-95 | 80-90 | 70-80 |")
    lines.append("|---|---:|---:|---:|---:|")
    af_refs = [("fa_af", "fastANI mapped fraction"), ("sk_af", "skani AF")]
    if set_name == "relatives":
        af_refs.insert(0, ("af_truth", "truth (homologous bp)"))
    for key, label in af_refs:
        cells = []
        for lo, hi in ((95, 101), (90, 95), (80, 90), (70, 80)):
            if key == "af_truth":
                d = [abs(r[f"af_{s}"] - r[f"af_{s}_truth"]) for r in rr if lo <= r[ref_ani] < hi for s in "ab"
                     if not math.isnan(r[f"af_{s}"])]
                m, n = (float(np.mean(d)) if d else None), len(d)
            else:
                m, n = af_error(rr, "af", key, lo, hi, ref_ani)
            cells.append("-" if m is None else f"{m:.3f} ({n})")
            stats.setdefault("af", {})[f"{key}_{lo}_{hi}"] = {"mae": m, "n": n}
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    na = {est: sum(1 for r in rr if math.isnan(r[est])) for est in ("ours", "fastani", "skani")}
    related = [r for r in rr if not math.isnan(r["fastani"]) or not math.isnan(r["skani"])]
    ours_only = [r for r in rr if not math.isnan(r["ours"]) and math.isnan(r["fastani"]) and math.isnan(r["skani"])]
    lines.append(f"\nNA (no value) of {len(rr)} pairs: ours {na['ours']}, fastANI {na['fastani']}, skani {na['skani']}; "
                 f"pairs with a fastANI or skani value: {len(related)}, of them NA for ours: "
                 f"{sum(1 for r in related if math.isnan(r['ours']))}; pairs with a value from ours only: "
                 f"{len(ours_only)}" + (" (" + ", ".join(f"{r['a']}/{r['b']} {r['ours']:.1f}" for r in ours_only[:8])
                                        + (" ..." if len(ours_only) > 8 else "") + ")" if ours_only else "") + ".")
    stats["na"] = na
    stats["ours_only"] = len(ours_only)
    return lines, stats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=hd.DEFAULT_DATA, help="shared data folder with MANIFEST.tsv [%(default)s]")
    ap.add_argument("--work", type=Path, required=True, help="work folder: copies of the inputs, relatives, peer "
                    "outputs, our embeddings and dist tables (kept; each step reruns only when its output is missing)")
    ap.add_argument("--sets", default="real,relatives", help="real, relatives or both [%(default)s]")
    ap.add_argument("--pairs", default="related", choices=("related", "all"),
                    help="real set: 'related' = every pair with a fastANI, skani or ANIm value, every pair of one "
                    "MANIFEST group and --controls random others (our side through dist's own pair code, in this "
                    "process); 'all' = `dist --level windows` over all pairs (~1 h on one busy core) [%(default)s]")
    ap.add_argument("--controls", type=int, default=40, help="unrelated control pairs of --pairs related [%(default)s]")
    ap.add_argument("--model", help="model directory (embedding and its calibration.json) [the bundled default]")
    ap.add_argument("--windows-stride", help="embed --windows-stride [the product's default]")
    ap.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="stored vectors [%(default)s]")
    ap.add_argument("--dist-options", default="", help="extra options of `dist --level windows`, e.g. '--min-ani 70'")
    ap.add_argument("--relative-sources", help="comma list: make relatives of these genomes only [the 8 of "
                    "homology_data.RELATIVE_SOURCES]")
    ap.add_argument("--decoys", nargs="*", help="FASTA files of unrelated sequence for the relatives' replaced "
                    "segments [the source reversed, not complemented]")
    ap.add_argument("--threads", type=int, default=1, help="threads of every tool (fastANI -t, mrl-dna --threads) [%(default)s]")
    ap.add_argument("--peers-only", action="store_true", help="build the data and the peers' outputs, skip ours")
    ap.add_argument("--json", type=Path, help="every number here")
    ap.add_argument("--tsv", type=Path, help="one line per pair here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    sets = [s.strip() for s in a.sets.split(",") if s.strip()]
    bad = [s for s in sets if s not in ("real", "relatives")]
    if bad:
        raise SystemExit(f"--sets: unknown {bad}; use real, relatives or both")
    genomes = hd.manifest(a.data)
    a.work.mkdir(parents=True, exist_ok=True)
    versions = hd.tool_versions("fastani", "skani")
    from mrl_dna import __version__
    versions["mrl-dna"] = __version__
    hd.log("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    timing: dict = {}
    rows = []
    if "real" in sets:
        rows += real_set(a, genomes, a.work, timing)
    if "relatives" in sets:
        rows += relatives_set(a, genomes, a.work, timing)
    out = [f"## ANI: `dist --level windows` vs fastANI, skani and ANIm ({', '.join(f'{k} {v}' for k, v in versions.items())})"]
    stats = {}
    if "real" in sets:
        ln, stats["real"] = report(rows, "real", ["fastani", "skani", "truth"])
        out += ln
    if "relatives" in sets:
        ln, stats["relatives"] = report(rows, "relatives", ["truth"])
        out += ln
    tl = [f"{k}: {v['seconds']:.0f} s" + (f", {v['peak_rss_mib']:.0f} MiB" if v.get("peak_rss_mib") else "")
          for k, v in timing.items() if v and v.get("seconds")]
    out.append(f"\nNew runs this time ({a.threads} thread(s)): " + ("; ".join(tl) if tl else "none (all cached)") +
               f". Total {time.perf_counter() - t0:.0f} s.")
    print("\n".join(out))
    if a.tsv:
        with open(a.tsv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    if a.json:
        def clean(x):
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [clean(v) for v in x]
            return None if isinstance(x, float) and math.isnan(x) else x
        a.json.write_text(json.dumps(clean({"versions": versions, "command": " ".join(sys.argv[1:]), "stats": stats,
                                            "timing": {k: {kk: vv for kk, vv in v.items() if kk not in ("stdout", "stderr")}
                                                       for k, v in timing.items() if v}, "pairs": rows}),
                                     indent=1) + "\n")


if __name__ == "__main__":
    main()
