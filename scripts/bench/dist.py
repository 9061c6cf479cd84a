#!/usr/bin/env python
"""Time and peak memory of `mrl-dna dist` as the number of rows grows (issue 14).

    DB        = an embedding file of real sequences (e.g. 100,000 marker genes: `mrl-dna embed markers.fa -o DB.h5`)
    sizes     = its first n rows, copied bit for bit into a file of n rows, for each n of --sizes
    runs      = `mrl-dna dist N.h5 N.h5` (all n x n ordered pairs, as mash dist) at --dim 64 and at full width to
                /dev/null, and at --dim 64 with --min-sim S to a TSV file; `mrl-dna dist N.h5` (each pair once)
                at --dim 64 to /dev/null; for --big n only the --min-sim run (the unfiltered output of 10^10 pairs
                would be ~0.5 TB)
    measured  = wall time and peak RSS of the process (/usr/bin/time -v), lines written

Markdown table on stdout, progress on stderr; --json OUT keeps every number.

Example (~5 min on 1 thread for the sizes, +~5 min for --big 100000):
    python scripts/bench/dist.py markers100k.h5 --sizes 2500,5000,10000 --big 100000 --min-sim 0.95 --threads 1
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from mrl_dna.store import EmbeddedRecord, EmbeddingStore, EmbeddingWriter
from mrl_dna.store.format import HOUSEKEEPING


def first_rows(db: Path, n: int, out: Path) -> Path:
    """The first n rows of db (vectors bit for bit) as a file of their own."""
    with EmbeddingStore.open(db) as st:
        if n > st.n:
            raise SystemExit(f"bench_dist: {db} has {st.n} rows, fewer than {n}")
        attrs = {k: v for k, v in st.attrs.items() if k not in HOUSEKEEPING and k not in ("dim", "dtype", "save_windows")}
        vecs, ids, status = st.read(normalize=False, rows=slice(0, n)), st.ids[:n], st.status[:n]
        with EmbeddingWriter(out, attrs=attrs, dim=st.dim, dtype=st.dtype, overwrite=True) as w:
            w.append([EmbeddedRecord(ids[i], int(st.lengths[i]), int(st.n_windows[i]), 0,
                                     "ok" if status[i] == 0 else "empty", vecs[i]) for i in range(n)])
            w.finish()
    return out


def timed(args: list[str], threads: int) -> dict:
    """Run `mrl-dna ARGS --threads T -q` under /usr/bin/time -v: wall seconds and peak RSS (MiB)."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "mrl_dna", *args, "--threads", str(threads), "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"bench_dist: {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", r.stderr)
    h, m, s = (float(x) if x else 0.0 for x in wall.groups())
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return {"seconds": h * 3600 + m * 60 + s, "peak_rss_mib": rss / 1024}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("db", type=Path, help="embedding file of real sequences with at least max(--sizes, --big) rows")
    ap.add_argument("--sizes", default="2500,5000,10000", help="[%(default)s]")
    ap.add_argument("--big", type=int, default=0, help="also n x n at this n with --min-sim only (0: no)")
    ap.add_argument("--min-sim", type=float, default=0.95, help="[%(default)s]")
    ap.add_argument("--dim", type=int, default=64, help="the prefix of the --dim runs [%(default)s]")
    ap.add_argument("--threads", type=int, default=1, help="[%(default)s]")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    sizes = [int(x) for x in a.sizes.split(",") if x.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_dist_") as tmp:
        for n in sizes + ([a.big] if a.big else []):
            h5 = first_rows(a.db, n, Path(tmp) / f"n{n}.h5")
            tsv = Path(tmp) / "close.tsv"
            k = str(a.dim)
            runs = [] if n == a.big else [
                (f"A A, --dim {k} -> /dev/null", ["dist", h5, h5, "--dim", k, "-o", "/dev/null"], n * n),
                ("A A, full width -> /dev/null", ["dist", h5, h5, "-o", "/dev/null"], n * n),
                (f"A (each pair once), --dim {k} -> /dev/null", ["dist", h5, "--dim", k, "-o", "/dev/null"],
                 n * (n - 1) // 2)]
            runs.append((f"A A, --dim {k} --min-sim {a.min_sim} -> TSV",
                         ["dist", h5, h5, "--dim", k, "--min-sim", str(a.min_sim), "-o", tsv, "-f"], None))
            for label, args, lines in runs:
                print(f"bench_dist: n={n:,}: {label} ...", file=sys.stderr)
                t = timed([str(x) for x in args], a.threads)
                if lines is None:
                    lines = sum(1 for _ in open(tsv)) - 1
                rows.append({"n": n, "run": label, "pairs_scored": n * n if "A A" in label else n * (n - 1) // 2,
                             "lines": lines, **t})
                print(f"bench_dist:   {t['seconds']:.1f} s, {t['peak_rss_mib']:.0f} MiB, {lines:,} lines", file=sys.stderr)
    print("| n | run | pairs scored | lines written | wall s | peak RSS MiB |")
    print("|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['run']} | {r['pairs_scored']:,} | {r['lines']:,} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mib']:.0f} |")
    if a.json:
        a.json.write_text(json.dumps({"db": str(a.db), "threads": a.threads, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
