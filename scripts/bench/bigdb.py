#!/usr/bin/env python
"""`mrl-dna search` at scale, through the CLI: exact scan, `mrl-dna index` + search, each documented alternative:
time per query, peak memory, recall@10 and the share of queries that get the exact top-10; index build time
and size. The DB is streamed from the HDF5 file (column prefixes), so a DB larger than RAM works.

    # the real 1M marker-gene DB as it is (the index is written beside DB: link the file into a writable
    # directory), 500 of its own rows and a held-out query file, fp32 scan, 2 threads (issue 25's table):
    python scripts/bench/bigdb.py --db m1m.h5 --db-queries 500 --queries held=heldout.h5 --fp32 --threads 2 \
        --run index --run "" --run "--funnel auto" \
        --run "index --kind hnsw --dim 64" --run "--match genome" --run "--funnel calibrate --no-index"
    # a bigger DB of real rows + jittered copies (built when absent):
    python scripts/bench/bigdb.py --vectors markers.h5 --rows 10e6 --out big.h5 --db-queries 500 --run index --run ""

1. The DB: --db FILE as it is, or (--vectors, --rows, --out) OUT = the rows of --vectors (an embedding file of
   real sequences) followed by jittered copies of them (normalize(v + JITTER * per-dim std * noise), ids ID#cN)
   up to --rows rows: a STAND-IN for a bigger collection, real for cost (bytes, rows, layout), not for quality.
   Built when absent or of another size.
2. Query files: each --queries [LABEL=]FILE (FASTA, or HDF5 of the same model), and with --db-queries N an HDF5
   of N valid DB rows (seeded; written beside the DB as DB.rowsN.h5).
3. Per query file, the reference `mrl-dna search Q DB --dim D --no-index -k 10` (exact at full width), then each
   --run in order: "index OPTIONS" runs `mrl-dna index DB OPTIONS --force` (build time, file size; later runs
   use that index), anything else is `mrl-dna search Q DB OPTIONS -k 10`, in a subprocess after dropping the page
   cache when --drop-caches (root). Per search: `real` from its summary line (the command's own time: reading
   the index and DB, embedding FASTA queries, searching; not the interpreter's start-up), ms per query, peak RSS
   (the child's ru_maxrss), recall@10 and the exact-top-10 share against the reference (a query's hits are
   its exact top-10 when the same targets, or the same cosines within 1e-5: ties between identical rows).
   --fp32 sets MRL_DNA_BF16_SCAN=0 (the exact scan in fp32 only, as on a CPU without bf16 instructions).

Prints a markdown table (file size, machine RAM, and a row per run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def db_queries(db: Path, n: int, seed: int = 0) -> Path:
    """An HDF5 query file of n valid DB rows (seeded), beside the DB as DB.rowsN.h5 (kept and reused)."""
    out = db.with_name(f"{db.name}.rows{n}.h5")
    if out.exists():
        return out
    src = EmbeddingStore.open(db)
    ok = np.flatnonzero(np.asarray(src.status) == 0)
    pick = np.sort(np.random.default_rng(seed).choice(ok, size=min(n, len(ok)), replace=False))
    v = src.read(src.dim, rows=pick, normalize=True).astype(np.float32)
    ids = [str(x) for x in src.ids]
    attrs = {k: x for k, x in src.attrs.items() if k not in HOUSEKEEPING + ("dim", "dtype", "save_windows", "per_file")}
    with EmbeddingWriter(out, attrs=attrs, dim=src.dim, overwrite=True) as w:
        w.append([EmbeddedRecord(id=ids[i], length=0, n_windows=1, n_skipped=0, status="ok", vector=v[j], order=j)
                  for j, i in enumerate(pick)])
        w.finish()
    src.close()
    return out


def child(args: list[str], drop: bool, env: dict[str, str]) -> tuple[float, float, str, str]:
    """(wall s, peak RSS MiB, stdout, stderr) of `python -m mrl_dna ARGS` in a child process (os.wait4 gives that
    child's own peak RSS)."""
    if drop:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
        t0 = time.perf_counter()
        p = subprocess.Popen([sys.executable, "-m", "mrl_dna", *args], stdout=so, stderr=se, text=True,
                             env={**os.environ, **env})
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        so.seek(0), se.seek(0)
        out, err = so.read(), se.read()
    if p.returncode:
        sys.exit(f"scripts/bench/bigdb.py: mrl-dna {' '.join(args)} failed: {err.strip()}")
    return wall, usage.ru_maxrss / 1024, out, err


def run_search(queries: str, db: Path, opts: str, drop: bool, env: dict[str, str] | None = None
               ) -> tuple[float, float, dict[str, list[tuple[str, float]]], float | None]:
    """(wall s, peak RSS MiB, (target, cosine) hits per query, the command's own `real` seconds) of one
    `mrl-dna search` run."""
    wall, rss, out, err = child(["search", queries, str(db), "-k", "10", *opts.split()], drop, env or {})
    hits: dict[str, list[tuple[str, float]]] = {}
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        hits.setdefault(f[0], []).append((f[1], float(f[3])))
    m = re.search(r"; real ([0-9.]+) s;", err)
    return wall, rss, hits, float(m.group(1)) if m else None


def quality(hits: dict, ref: dict) -> tuple[float, float]:
    """recall@10 and the share of queries whose hits are their exact top-10 (same targets, or cosines within
    1e-5), against the reference hits."""
    rec, same = [], []
    for q, r in ref.items():
        h = hits.get(q, [])
        rec.append(len({t for t, _ in h} & {t for t, _ in r}) / max(1, len(r)))
        a, b = sorted(c for _, c in h), sorted(c for _, c in r)
        same.append({t for t, _ in h} == {t for t, _ in r} or (len(a) == len(b) and np.allclose(a, b, atol=1e-5)))
    return float(np.mean(rec)), float(np.mean(same))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", help="search this embedding file as it is (indexes are written beside it)")
    src.add_argument("--vectors", help="embedding file of real sequences (the rows to copy into --out)")
    ap.add_argument("--rows", type=float, default=13e6)
    ap.add_argument("--out", help="the big DB built from --vectors (built when absent or of another size)")
    ap.add_argument("--queries", action="append", default=[], help="[LABEL=]FILE: FASTA or HDF5 of the same model; repeatable")
    ap.add_argument("--db-queries", type=int, default=0, help="also N valid DB rows as queries (DB.rowsN.h5)")
    ap.add_argument("--run", action="append", default=[], help="search options of one run, or 'index OPTIONS'; repeatable, in order")
    ap.add_argument("--reference", default=None, help="options of the reference run [--dim D --no-index]")
    ap.add_argument("--threads", type=int, default=None, help="--threads of every index and search run")
    ap.add_argument("--fp32", action="store_true", help="MRL_DNA_BF16_SCAN=0: the exact scan in fp32 only")
    ap.add_argument("--jitter", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each run (root)")
    args = ap.parse_args()
    build_s = None
    if args.db:
        out = Path(args.db)
    else:
        if not args.out:
            ap.error("--vectors needs --out (the big DB to build)")
        rows, out = int(args.rows), Path(args.out)
        have = None
        if out.exists():
            with EmbeddingStore.open(out) as st:
                have = st.n
        build_s = build(Path(args.vectors), out, rows, args.jitter, args.seed) if have != rows else None
    with EmbeddingStore.open(out) as st:
        D, n = st.dim, st.n
    env = {"MRL_DNA_BF16_SCAN": "0"} if args.fp32 else {}
    threads = ["--threads", str(args.threads)] if args.threads else []
    qfiles = [tuple(q.split("=", 1)) if "=" in q else (Path(q).name, q) for q in args.queries]
    if args.db_queries:
        qfiles.insert(0, (f"{args.db_queries} DB rows", str(db_queries(out, args.db_queries, args.seed))))
    ref_opts = args.reference if args.reference is not None else f"--dim {D} --no-index"
    size = out.stat().st_size / 2**30
    print(f"# {out}: {n:,} rows x {D} dims, {size:.1f} GiB on disk; machine RAM {machine_ram_gib():.1f} GiB; "
          f"{platform.machine()}, {os.cpu_count()} CPUs; threads {args.threads or 'default'}; "
          f"exact scan {'fp32 (MRL_DNA_BF16_SCAN=0)' if args.fp32 else 'default'}" + (f"; built in {build_s:.0f} s" if build_s else ""))
    print("\n| queries | run | index | real s | ms/query | peak RSS MiB | recall@10 | exact top-10 |")
    print("|---|---|---|---:|---:|---:|---:|---:|", flush=True)
    refs = {}
    for label, qf in qfiles:
        _, rss, refs[label], real = run_search(qf, out, " ".join([ref_opts, *threads]), args.drop_caches, env)
        nq = len(refs[label])
        print(f"| {label} | `{ref_opts}` (reference) | - | {real:.1f} | {1e3 * real / max(1, nq):.2f} | {rss:,.0f} | 1.000 | 1.000 |", flush=True)
    index = "none"
    if Path(f"{out}.faiss.json").exists():  # an index built before this run: the default searches use it
        meta = json.loads(Path(f"{out}.faiss.json").read_text())
        index = f"{meta['kind']} dim {meta['dim']} (built before)"
    for opts in args.run:
        if opts.split()[:1] == ["index"]:
            extra = opts.split()[1:]
            wall, rss, _, err = child(["index", str(out), "--force", *threads, *extra], args.drop_caches, env)
            fa = Path(f"{out}.faiss")
            meta = json.loads(Path(f"{fa}.json").read_text())
            index = f"{meta['kind']} dim {meta['dim']}" + (f" nprobe {meta['nprobe']}" if meta["kind"] == "ivf" else "") + (
                f" head {meta['head']}" if meta.get("head") else "")
            m = re.search(r"; real ([0-9.]+) s;", err)
            print(f"| - | `{opts}` | {index}: built in {float(m.group(1)) if m else wall:.0f} s, "
                  f"{fa.stat().st_size / 2**20:,.0f} MiB, peak RSS {rss:,.0f} MiB | | | | | |", flush=True)
            continue
        for label, qf in qfiles:
            wall, rss, hits, real = run_search(qf, out, " ".join([opts, *threads]), args.drop_caches, env)
            rec, same = quality(hits, refs[label])
            nq = len(refs[label])
            print(f"| {label} | `{opts or '(default)'}` | {index} | {real:.1f} | {1e3 * real / max(1, nq):.2f} | {rss:,.0f} "
                  f"| {rec:.3f} | {same:.3f} |", flush=True)


if __name__ == "__main__":
    main()
