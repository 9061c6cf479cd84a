#!/usr/bin/env python
"""Window-level homology on a GPU vs the CPU in one run (issue 20, item 4): the check for a lent GPU machine,
~3-6 minutes on one H100/H200 with the defaults.

    bash scripts/gpu/homology.sh OUT_DIR                         # on the GPU machine, from the repository root
    python scripts/gpu/homology.py --out OUT_DIR                 # the same without the wrapper
    python scripts/gpu/homology.py --device cpu --quick --out h  # a smoke test of every path on a CPU

Data (made here: the machine has no network): `--families` random genomes of `--genome-bp` (GC 0.35-0.65), each
with `--members - 1` relatives made by evolve.mutate at 2%, 5%, 15%, ... events per base; and `--queries` whole-
genome queries, copies of DB genomes mutated at 3% (not in the DB). Embedded with the bundled default model on
--device, windows saved every --windows-stride bp (DB and queries): the embedding time is reported apart.

Measured, each on the CPU (numpy/BLAS, all cores) and on --device (torch float32 products, blocks sized to the
GPU's free memory), with the same inputs:
  1. best hits: every window of the queries (every 4th saved window, ~1 kb) against every DB window
     (homology.best_hits); agreement = share of identical best windows, max |cosine difference|;
  2. `search QUERY.h5 DB.h5 --level windows -k 5` (search.search: first pass, then exact per-target scoring);
     agreement = identical (target, rank, n_best) lines, max |cosine| and |identity| differences;
  3. `dist DB.h5 --level windows` pairs (compare.windows.WindowLevel.compare: what dist runs per pair), the CPU
     on the first --cpu-pairs pairs, the device on all of them (and window_dist end to end); agreement = same NA
     pattern, max |ANI difference| (the bar: 0.01), max |af difference|.
Writes OUT_DIR/homology_gpu.md (the table) and OUT_DIR/homology_gpu.json (after each step, so a run cut short
keeps what it measured); prints the table. Installs nothing:
the checkout on PYTHONPATH (homology.sh) or `pip install -e .`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mrl_dna import console  # noqa: E402
from mrl_dna.compare.windows import WindowLevel, window_dist  # noqa: E402
from mrl_dna.dna import decode, encode  # noqa: E402
from mrl_dna.embed import EmbedOptions, embed_fasta  # noqa: E402
from mrl_dna.evolve import mutate  # noqa: E402
from mrl_dna.homology import HomologyConfig, best_hits, read_window_sets  # noqa: E402
from mrl_dna.model import DEFAULT_MODEL_DIR, load_model  # noqa: E402
from mrl_dna.search import search, tsv_lines  # noqa: E402
from mrl_dna.store import EmbeddingStore  # noqa: E402

RATES = (0.02, 0.05, 0.15, 0.25, 0.01, 0.08)  # relatives' events per base, in member order (member 0: the base)
QUERY_RATE = 0.03


def random_genome(rng: np.random.Generator, bp: int, gc: float) -> str:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(rng.choice(list("ACGT"), size=bp, p=p))


def make_fasta(out: Path, *, families: int, members: int, bp: int, queries: int, seed: int) -> tuple[Path, Path]:
    """db.fa (families x members genomes) and queries.fa (copies of the first `queries` DB genomes at 3%)."""
    rng = np.random.default_rng(seed)
    db, qs = {}, {}
    for f in range(families):
        base = random_genome(rng, bp, 0.35 + 0.3 * f / max(1, families - 1))
        db[f"f{f}m0"] = base
        for m in range(1, members):
            db[f"f{f}m{m}"] = decode(mutate(encode(base), RATES[(m - 1) % len(RATES)], rng)[0])
    for name in list(db)[:queries]:
        qs[f"q_{name}"] = decode(mutate(encode(db[name]), QUERY_RATE, rng)[0])
    paths = []
    for fname, recs in (("db.fa", db), ("queries.fa", qs)):
        p = out / fname
        p.write_text("".join(f">{k}\n{v}\n" for k, v in recs.items()))
        paths.append(p)
    return paths[0], paths[1]


def embed(model, fasta: Path, out: Path, device: str, windows_stride: int) -> float:
    t0 = time.perf_counter()
    embed_fasta([fasta], model=model, output=out,
                options=EmbedOptions(device=device, save_windows=True, windows_stride=windows_stride, overwrite=True,
                                     resume=False))
    return time.perf_counter() - t0


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def bench_best_hits(qh5: Path, dbh5: Path, devices: list[str]) -> dict:
    """Every 4th saved window of every query (~1 kb) against every DB window, at full width."""
    step = HomologyConfig().query_step
    with EmbeddingStore.open(qh5) as qs, EmbeddingStore.open(dbh5) as ds:
        q = np.concatenate([w.vecs[::step] for w in read_window_sets(qs) if w is not None])
        t = ds.windows().read(None, normalize=False)
    res = {"query_windows": len(q), "db_windows": len(t)}
    outs = {}
    for label, dev in devices:
        best_hits(q[:8], t[:8], device=dev)  # warm-up (CUDA context, cuBLAS handles)
        (b, a), secs = timed(lambda: best_hits(q, t, device=dev), dev)
        outs[label] = (b, a)
        res[label] = {"seconds": secs, "per_query_window_ms": 1e3 * secs / len(q),
                    "gmacs_per_s": len(q) * len(t) * t.shape[1] / secs / 1e9}
    if len(devices) == 2:
        (b0, a0), (b1, a1) = (outs[label] for label, _ in devices)
        res["same_best_window"] = float(np.mean(a0 == a1))
        res["max_abs_cosine_diff"] = float(np.max(np.abs(b0 - b1)))
    return res


def bench_search(qh5: Path, dbh5: Path, devices: list[str], k: int) -> dict:
    res, lines = {}, {}
    with EmbeddingStore.open(qh5) as qs:
        n_queries = qs.n
    for label, dev in devices:
        if dev != "cpu":
            search(qh5, [dbh5], level="windows", k=1, device=dev, use_index=False)  # warm-up (CUDA context)
        r, secs = timed(lambda: search(qh5, [dbh5], level="windows", k=k, device=dev, use_index=False), dev)
        lines[label] = [line.split("\t") for line in tsv_lines(r, header=False)]
        res[label] = {"seconds": secs, "per_query_s": secs / max(1, n_queries)}
    res["queries"] = n_queries
    if len(devices) == 2:
        a, b = (lines[label] for label, _ in devices)
        key = lambda rows: [(r[0], r[1], r[2], r[13]) for r in rows]  # query, target, rank, n_best  # noqa: E731
        res["same_targets_ranks_n_best"] = key(a) == key(b)
        res["lines"] = len(a)
        if len(a) == len(b):
            res["max_abs_cosine_diff"] = max((abs(float(x[3]) - float(y[3])) for x, y in zip(a, b)), default=0.0)
            ids = [(x[16], y[16]) for x, y in zip(a, b)]
            res["same_identity_na"] = all((x == "NA") == (y == "NA") for x, y in ids)
            res["max_abs_identity_diff"] = max((abs(float(x) - float(y)) for x, y in ids if "NA" not in (x, y)),
                                               default=0.0)
    return res


def bench_dist(dbh5: Path, devices: list[str], cpu_pairs: int) -> dict:
    with EmbeddingStore.open(dbh5) as ds:
        n = ds.n
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    res = {"genomes": n, "pairs": len(pairs)}
    results = {}
    for n_dev, (label, dev) in enumerate(devices):
        todo = pairs[:cpu_pairs] if n_dev == 0 else pairs  # the CPU: a sample; the device: every pair
        with WindowLevel(dbh5, device=dev, warn=lambda m: None) as level:
            level.compare(0, 0, 0, 1)  # warm-up and the first window sets into the cache
            (out, secs) = timed(lambda: [level.compare(0, i, 0, j) for i, j in todo], dev)
            results[label] = dict(zip(todo, out))
            res[label] = {"pairs": len(todo), "seconds": secs, "per_pair_ms": 1e3 * secs / max(1, len(todo)),
                          "calibrated": level.calibration is not None}
            if n_dev == len(devices) - 1:
                lines: list[str] = []
                (_, secs_all) = timed(lambda: window_dist(level, write=lines.append), dev)
                res[label]["window_dist_all_pairs_s"] = secs_all
    if len(devices) == 2:
        first, second = (results[label] for label, _ in devices)
        common = [p for p in first if p in second and first[p] is not None and second[p] is not None]
        a = [first[p] for p in common]
        b = [second[p] for p in common]
        nan = [(math.isnan(x.ani), math.isnan(y.ani)) for x, y in zip(a, b)]
        res["compared_pairs"] = len(common)
        res["same_na"] = all(x == y for x, y in nan)
        res["with_ani"] = sum(not x for x, _ in nan)
        res["max_abs_ani_diff"] = max((abs(x.ani - y.ani) for x, y in zip(a, b)
                                       if not (math.isnan(x.ani) or math.isnan(y.ani))), default=0.0)
        res["max_abs_af_diff"] = max((max(abs(x.af_query - y.af_query), abs(x.af_target - y.af_target))
                                      for x, y in zip(a, b)), default=0.0)
        res["ani_within_0.01"] = res["same_na"] and res["max_abs_ani_diff"] <= 0.01
    return res


def table(r: dict, devices: list[tuple[str, str]]) -> str:
    cpu, dev = devices[0][0], devices[-1][0]
    bh, se, di = r["best_hits"], r["search"], r["dist"]

    def cell(d: dict, key: str, fmt: str) -> str:
        return format(d[key], fmt) if key in d else "-"

    rows = [
        "| step | size | CPU | " + dev + " | speed-up | agreement |",
        "|---|---|---:|---:|---:|---|",
        f"| best hits (exact, float32) | {bh['query_windows']:,} query windows x {bh['db_windows']:,} DB windows | "
        f"{bh[cpu]['per_query_window_ms']:.3f} ms/window | {bh[dev]['per_query_window_ms']:.3f} ms/window | "
        f"{bh[cpu]['seconds'] / bh[dev]['seconds']:.1f}x | same best window {cell(bh, 'same_best_window', '.4%')}, "
        f"max dcos {cell(bh, 'max_abs_cosine_diff', '.1e')} |",
        f"| search --level windows -k {r['k']} | {se['queries']} whole-genome queries | {se[cpu]['per_query_s']:.2f} s/query"
        f" | {se[dev]['per_query_s']:.3f} s/query | {se[cpu]['seconds'] / se[dev]['seconds']:.1f}x | "
        f"same targets/ranks/n_best {se.get('same_targets_ranks_n_best', '-')}, max dcos "
        f"{cell(se, 'max_abs_cosine_diff', '.1e')}, max d identity {cell(se, 'max_abs_identity_diff', '.3f')} |",
        f"| dist --level windows (per pair) | {di['genomes']} genomes, CPU {di[cpu]['pairs']} / {dev} {di[dev]['pairs']} "
        f"pairs | {di[cpu]['per_pair_ms']:.0f} ms/pair | {di[dev]['per_pair_ms']:.1f} ms/pair | "
        f"{di[cpu]['per_pair_ms'] / di[dev]['per_pair_ms']:.1f}x | same NA {di.get('same_na', '-')}, max dANI "
        f"{cell(di, 'max_abs_ani_diff', '.4f')} ({di.get('with_ani', '-')} pairs with an ANI), max daf "
        f"{cell(di, 'max_abs_af_diff', '.1e')} |",
    ]
    e2e = di[dev].get("window_dist_all_pairs_s")
    if e2e is not None:
        rows.append(f"| dist --level windows, all {di['pairs']} pairs end to end | | | {e2e:.1f} s | | "
                    f"{'calibrated' if di[dev]['calibrated'] else 'no calibration.json: every ANI NA, only af compared'} |")
    emb = r["embed"]
    rows.append(f"| embed --save-windows (DB + queries, on {emb['device']}) | {emb['mbp']:.1f} Mbp | | "
                f"{emb['seconds']:.1f} s | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="homology-gpu-out", help="directory for homology_gpu.md / .json")
    ap.add_argument("--device", default="cuda",
                    help="the device compared with the CPU (cpu: the CPU against itself, a check of the script)")
    ap.add_argument("--families", type=int, default=6)
    ap.add_argument("--members", type=int, default=4, help="genomes per family (the first and its relatives)")
    ap.add_argument("--genome-bp", type=float, default=2e6)
    ap.add_argument("--queries", type=int, default=4, help="whole-genome queries (mutated copies of DB genomes)")
    ap.add_argument("--windows-stride", type=int, default=250, help="bp between saved windows (DB and queries)")
    ap.add_argument("--cpu-pairs", type=int, default=24, help="dist pairs timed on the CPU (the device does all)")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; with --device cpu)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", default=None, help="where the generated genomes and embedding files go (default: the "
                    "system's temporary directory; removed at the end)")
    a = ap.parse_args(argv)
    if a.quick:
        a.families, a.members, a.genome_bp, a.queries, a.cpu_pairs = 2, 2, 3e4, 2, 3
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    console.set_quiet(True)
    devices = [("cpu", "cpu"), ("cpu again" if a.device == "cpu" else a.device, a.device)]
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "device": a.device, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "args": vars(a)}
    print(json.dumps(info), flush=True)
    save = lambda: (out / "homology_gpu.json").write_text(json.dumps(r, indent=1) + "\n")  # noqa: E731
    r = {"info": info, "k": a.k}
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:  # outside OUT_DIR: a killed run leaves no genomes there
        tmp = Path(tmp)
        dbfa, qfa = make_fasta(tmp, families=a.families, members=a.members, bp=int(a.genome_bp), queries=a.queries,
                               seed=a.seed)
        model = load_model(DEFAULT_MODEL_DIR)
        dbh5, qh5 = tmp / "db.h5", tmp / "queries.h5"
        secs = (embed(model, dbfa, dbh5, a.device, a.windows_stride)
                + embed(model, qfa, qh5, a.device, a.windows_stride))
        mbp = (a.families * a.members + a.queries) * a.genome_bp / 1e6
        r["embed"] = {"device": a.device, "mbp": mbp, "seconds": secs}
        save()
        print(f"embedded {mbp:.1f} Mbp in {secs:.1f} s", flush=True)
        r["best_hits"] = bench_best_hits(qh5, dbh5, devices)
        print(json.dumps(r["best_hits"]), flush=True)
        save()
        r["search"] = bench_search(qh5, dbh5, devices, a.k)
        print(json.dumps(r["search"]), flush=True)
        save()
        r["dist"] = bench_dist(dbh5, devices, a.cpu_pairs)
        print(json.dumps(r["dist"]), flush=True)
    md = table(r, devices)
    save()
    (out / "homology_gpu.md").write_text(f"{json.dumps(info)}\n\n{md}\n")
    print(md)


if __name__ == "__main__":
    main()
