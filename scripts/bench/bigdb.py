#!/usr/bin/env python
"""Search a database larger than RAM: `mrl-dna search` streams column prefixes from the HDF5 file (chunked by
Matryoshka dims) instead of loading it, so its memory stays at a block while the file is many times larger.

    python scripts/bench/bigdb.py --vectors markers.h5 --rows 13e6 --out big.h5 --queries q.fa \\
        --run "--dim 64" --run "--funnel 64:20000,512:10" --run ""

1. Build (skipped when OUT exists and holds --rows rows): OUT = the rows of --vectors (an embedding file of
   real sequences, e.g. every marker gene of the training corpus) followed by jittered copies of them
   (normalize(v + JITTER * per-dim std * noise), ids ID#cN) up to --rows rows: a STAND-IN for a bigger
   collection, real for cost (bytes, rows, layout), not for quality.
2. Each --run OPTIONS: `mrl-dna search QUERIES OUT OPTIONS -k 10` in a subprocess, after dropping the page
   cache when --drop-caches (root): wall time, peak RSS (the child's ru_maxrss), and recall@10 against the
   run given by --reference (default: exact at full width, '' = the CLI's default).

Prints a markdown table (file size, machine RAM, and per run: wall, peak RSS, recall@10 vs the reference).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mrl_dna.store import EmbeddingStore
from mrl_dna.store.format import HOUSEKEEPING, EmbeddedRecord
from mrl_dna.store.writer import EmbeddingWriter


def machine_ram_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def build(src_path: Path, out: Path, rows: int, jitter: float, seed: int, block: int = 200_000) -> float:
    """Write OUT (see the module doc); returns seconds."""
    t0 = time.perf_counter()
    src = EmbeddingStore.open(src_path)
    n, D = src.n, src.dim
    ok = np.flatnonzero(np.asarray(src.status) == 0)
    ids = [str(x) for x in src.ids]
    std = np.zeros(D, np.float64)
    for _, b in src.iter_blocks(D, block):  # per-dim spread of the real rows (normalised)
        std += (b.astype(np.float64) ** 2).sum(0)
    std = np.sqrt(std / n).astype(np.float32)
    # the source's model and run attributes, as merge copies them (the writer sets the rest)
    attrs = {k: v for k, v in src.attrs.items() if k not in HOUSEKEEPING + ("dim", "dtype", "save_windows", "per_file")}
    attrs["command"] = "scripts/bench/bigdb.py " + " ".join(sys.argv[1:])
    rng = np.random.default_rng(seed)
    with EmbeddingWriter(out, attrs=attrs, dim=D, overwrite=True) as w:
        done, copy = 0, 0
        while done < rows:
            for s in range(0, len(ok), block):
                take = ok[s : s + block][: rows - done]
                if not len(take):
                    break
                v = src.read(D, rows=take, normalize=True).astype(np.float32)
                if copy:
                    v += jitter * std * rng.standard_normal(v.shape, dtype=np.float32)
                    v /= np.linalg.norm(v, axis=1, keepdims=True)
                suffix = f"#c{copy}" if copy else ""
                w.append([EmbeddedRecord(id=ids[i] + suffix, length=0, n_windows=1, n_skipped=0, status="ok",
                                         vector=v[j], order=done + j) for j, i in enumerate(take)])
                done += len(take)
                print(f"build: {done:,}/{rows:,} rows", file=sys.stderr, flush=True)
                if done >= rows:
                    break
            copy += 1
        w.finish()
    src.close()
    return time.perf_counter() - t0


def run_search(queries: str, db: Path, opts: str, drop: bool) -> tuple[float, float, dict[str, list[str]]]:
    """(wall s, peak RSS MiB, hits per query) of one `mrl-dna search` run in a child process (os.wait4 gives
    that child's own peak RSS)."""
    if drop:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "mrl_dna", "search", queries, str(db), "-k", "10", "-q",
                              *opts.split()], stdout=so, stderr=se, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        so.seek(0), se.seek(0)
        out, err = so.read(), se.read()
    if p.returncode:
        sys.exit(f"scripts/bench/bigdb.py: search {opts!r} failed: {err.strip()}")
    hits: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        hits.setdefault(f[0], []).append(f[1])
    return wall, usage.ru_maxrss / 1024, hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", required=True, help="embedding file of real sequences (the rows to copy)")
    ap.add_argument("--rows", type=float, default=13e6)
    ap.add_argument("--out", required=True, help="the big DB (built when absent or of another size)")
    ap.add_argument("--queries", required=True, help="FASTA (or HDF5 of the same model) of query sequences")
    ap.add_argument("--run", action="append", default=[], help="search options of one run; repeatable")
    ap.add_argument("--reference", default=None, help="options of the reference run [exact at full width]")
    ap.add_argument("--jitter", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each run (root)")
    args = ap.parse_args()
    rows, out = int(args.rows), Path(args.out)
    have = None
    if out.exists():
        with EmbeddingStore.open(out) as st:
            have = st.n
    build_s = build(Path(args.vectors), out, rows, args.jitter, args.seed) if have != rows else None
    with EmbeddingStore.open(out) as st:
        D, n = st.dim, st.n
    ref_opts = args.reference if args.reference is not None else f"--dim {D}"
    size = out.stat().st_size / 2**30
    print(f"# {out}: {n:,} rows x {D} dims, {size:.1f} GiB on disk; machine RAM {machine_ram_gib():.1f} GiB; "
          f"{platform.machine()}, {os.cpu_count()} CPUs" + (f"; built in {build_s:.0f} s" if build_s else ""))
    ref_wall, ref_rss, ref = run_search(args.queries, out, ref_opts, args.drop_caches)
    print("\n| search options | wall s | peak RSS MiB | recall@10 vs reference |")
    print("|---|---:|---:|---:|")
    print(f"| `{ref_opts}` (reference) | {ref_wall:.1f} | {ref_rss:,.0f} | 1.000 |", flush=True)
    for opts in args.run:
        wall, rss, hits = run_search(args.queries, out, opts, args.drop_caches)
        rec = np.mean([len(set(hits.get(q, [])) & set(r)) / len(r) for q, r in ref.items()])
        print(f"| `{opts or '(default)'}` | {wall:.1f} | {rss:,.0f} | {rec:.3f} |", flush=True)


if __name__ == "__main__":
    main()
