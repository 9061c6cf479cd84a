#!/usr/bin/env python
"""Benchmark mrl-dna search: queries/s and recall@10 vs exact full-width search, at several DB sizes.

Methods (all through mrl_dna.search, the code `mrl-dna search` runs):
    exact@D          blocked exact search at the full width: the reference top-10
    exact@d1         exact at the funnel's first (small) prefix alone: what shortlisting without rerank gives
    funnel           the default funnel for the DB size (mrl_dna.search.default_funnel; `--funnel auto`)
    funnel-cal       the cheapest funnel that keeps the exact top-10 of 99.5% of 200 DB rows used as
                     queries (mrl_dna.search.calibrate_funnel; `--funnel calibrate`), tested on the held-out queries
    funnel-paper     16:2000,64:200,D:10-style fixed funnel (the paper's shape, when the dims allow)
    faiss-flat+rr    FAISS IndexFlatIP over normalize(v[:d1]) as the shortlist, then the funnel's reranks
                     (same shortlist as the blocked scan by construction; --faiss-flat-rr to run it)
    faiss-ivf+rr     FAISS IVF (nlist ~4 sqrt(n), nprobe nlist/8) as the shortlist, then the reranks
                     (what `mrl-dna index --kind ivf` + `mrl-dna search` do)
    hnsw@d:m         FAISS HNSW (M 32, efConstruction 80, efSearch m) over normalize(v[:d]) returning m
                     candidates, reranked exactly at D: the paper's adaptive retrieval (HNSW shortlist at a
                     small prefix, rerank at full width); --hnsw DIM:M,... picks the settings
    faiss-flat@D     FAISS exact inner product at the full width (speed reference only)

FAISS multiply-adds are counted from FAISS's own counters (indexIVF_stats.ndis, hnsw_stats.ndis: vectors
actually compared, times the prefix width; plus nlist centroids for IVF), not from a formula.

Data (one of):
    --vectors FILE.h5   real embeddings: the per-window vectors of a file written by
                        `mrl-dna embed --save-windows` (else its per-record rows). Queries are held-out
                        windows (not in the DB). DB sizes beyond the file's rows are filled with jittered
                        copies of real rows (normalize(v + 0.05 * per-dim std * noise)), reported as such.
    --kmer-pca FASTA..  a STAND-IN from REAL genome windows, not model embeddings: 2 kb windows at stride
                        512 bp, Hellinger-transformed canonical 5-mer profiles projected on their top-D
                        principal axes (ordered by variance, so prefixes are nested like Matryoshka dims).
    --synthetic         a STAND-IN, not embeddings: species x strains x genome positions, a smooth (AR(1))
                        signal along each genome, strain divergence and window noise, with per-dim variance
                        decaying like a Matryoshka-trained model's. Use only until a trained model exists.

Recall: recall@10 = mean |top10 ∩ exact top10| / 10; same-top10 = share of queries whose top-10 set equals
the exact one, or whose 10 cosines equal the exact ones to 1e-5 (ties between identical windows).
Cost: multiply-adds of scoring per query (dot products), exact@D = n * D.

    python scripts/bench/search.py --synthetic --sizes 10000,100000,1000000 --queries 500
    mrl-dna embed GENOMES.fa.gz... --window 512 --stride 512 --save-windows --windows-stride 512 -o win512.h5
    python scripts/bench/search.py --vectors win512.h5 --sizes 10000,100000,1000000 --queries 1000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import torch

from mrl_dna.search import (
    Database,
    calibrate_funnel,
    check_funnel,
    Stage,
    default_funnel,
    exact_search,
    funnel_search,
    parse_funnel,
)
from mrl_dna.vectors import normalize_rows as normalize
from mrl_dna.vectors import truncate_normalize


# ----------------------------------------------------------------------------------------------- data
def synthetic(n: int, dims: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """(n, D) stand-in vectors (see module docstring)."""
    D = dims[-1]
    n_species, n_strains = 40, 3
    per_genome = math.ceil(n / (n_species * n_strains))
    decay = (1.0 + np.arange(D)) ** -0.6  # energy concentrated in the first dims, as MRL training does
    out = np.empty((n_species * n_strains * per_genome, D), np.float32)
    rho = 0.95  # neighbouring windows of a genome are similar
    row = 0
    for _ in range(n_species):
        center = rng.standard_normal(D) * 1.0
        path = np.empty((per_genome, D))
        path[0] = rng.standard_normal(D)
        eps = rng.standard_normal((per_genome, D)) * math.sqrt(1 - rho**2)
        for j in range(1, per_genome):
            path[j] = rho * path[j - 1] + eps[j]
        for _ in range(n_strains):
            strain = center + path + 0.35 * rng.standard_normal((per_genome, D))  # strain divergence
            out[row : row + per_genome] = normalize((strain + 0.25 * rng.standard_normal((per_genome, D))) * decay)
            row += per_genome
    return out[rng.permutation(len(out))[:n]]


def kmer_pca_windows(paths: list[str], dims: tuple[int, ...], k: int = 5, block: int = 512, blocks_per_window: int = 4) -> np.ndarray:
    """(n, D) vectors of REAL genome windows (block*blocks_per_window bp, stride `block`): Hellinger-transformed
    canonical k-mer profiles projected on their top-D principal axes, axes ordered by variance, so every
    prefix is the best linear prefix of that width (nested by construction, like Matryoshka dims)."""
    from mrl_dna.inputs.fasta import read_fasta
    from mrl_dna.kmer import canonical_index, n_canonical

    bits_of = np.full(256, 4, dtype=np.int64)
    for tok, b in ((7, 0), (8, 1), (9, 2), (10, 3)):
        bits_of[tok] = b
    col_of, ncol = canonical_index(k), n_canonical(k)
    wins = []
    for rec in read_fasta(paths, check_duplicates=False):
        bits = bits_of[rec.tokens]
        n = bits.size - k + 1
        nb = bits.size // block
        if nb < blocks_per_window:
            continue
        b = np.where(bits == 4, 0, bits)
        fwd = np.zeros(n, np.int64)
        rev = np.zeros(n, np.int64)
        for j in range(k):
            fwd = (fwd << 2) | b[j : j + n]
            rev |= (3 - b[j : j + n]) << (2 * j)
        bad = np.concatenate(([0], np.cumsum(bits == 4)))
        ok = ((bad[k:] - bad[:n]) == 0) & (np.arange(n) < nb * block)
        pos = np.flatnonzero(ok)
        counts = np.bincount((pos // block) * ncol + col_of[np.minimum(fwd, rev)[pos]], minlength=nb * ncol)
        counts = counts.reshape(nb, ncol).astype(np.float32)  # (blocks, kmers)
        csum = np.concatenate([np.zeros((1, ncol), np.float32), np.cumsum(counts, 0)])
        wins.append(csum[blocks_per_window:] - csum[:-blocks_per_window])  # (windows, kmers), stride = block
    X = np.concatenate(wins)
    X = np.sqrt(X / np.maximum(X.sum(1, keepdims=True), 1))  # Hellinger
    X -= X.mean(0)
    sample = X[np.random.default_rng(0).choice(len(X), min(len(X), 50_000), replace=False)]
    evals, evecs = np.linalg.eigh(sample.T @ sample)
    axes = evecs[:, np.argsort(evals)[::-1][: dims[-1]]]  # (kmers, D) by decreasing variance
    return normalize(X @ axes)


def load_vectors(path: str) -> tuple[np.ndarray, tuple[int, ...], str]:
    from mrl_dna.store import EmbeddingStore

    st = EmbeddingStore.open(path)
    win = st.windows()
    if win is not None and len(win):
        vecs, what = win.read(None), f"{len(win):,} window vectors"
    else:
        vecs, what = st.read(None)[np.asarray(st.status) == 0], f"{st.n:,} record vectors"
    return np.asarray(vecs, np.float32), tuple(st.matryoshka_dims), f"{path}: {what} (model {st.model_hash[:12]})"


def grow(base: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """n rows: the real ones first, then jittered copies of random real rows. Returns (vectors, n_real)."""
    if n <= len(base):
        return base[:n], n
    std = base.std(0)
    extra = base[rng.integers(0, len(base), n - len(base))]
    extra = normalize(extra + 0.05 * std * rng.standard_normal(extra.shape).astype(np.float32))
    return np.concatenate([base, extra]), len(base)


# ---------------------------------------------------------------------------------------------- bench
def topk_quality(rows: np.ndarray, scores: np.ndarray, ref_rows: np.ndarray, ref_scores: np.ndarray, k: int) -> tuple[float, float]:
    inter = [len(set(a[:k]) & set(b[:k])) for a, b in zip(rows, ref_rows)]
    same = [
        set(a[:k]) == set(b[:k]) or np.allclose(np.sort(s[:k]), np.sort(r[:k]), atol=1e-5)
        for a, s, b, r in zip(rows, scores, ref_rows, ref_scores)
    ]
    return float(np.mean(inter)) / k, float(np.mean(same))


def full_scores(q: np.ndarray, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine at the full width of the returned rows (so approximate methods are compared fairly)."""
    return np.einsum("qd,qkd->qk", normalize(q), x[np.maximum(rows, 0)])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def faiss_shortlister(x: np.ndarray, dim: int, kind: str, n_q: int):
    import faiss

    xd = np.ascontiguousarray(truncate_normalize(x, dim))
    t0 = time.perf_counter()
    if kind == "ivf":
        nlist = max(1, min(len(x) // 39, int(4 * math.sqrt(len(x)))))
        nprobe = max(1, nlist // 8)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(xd[np.random.default_rng(0).choice(len(x), min(len(x), 64 * nlist), replace=False)])
        index.add(xd)
        index.nprobe = nprobe
        macs = int((nlist + nprobe * len(x) / nlist) * dim)
    else:
        index = faiss.IndexFlatIP(dim)
        index.add(xd)
        macs = len(x) * dim
    build = time.perf_counter() - t0

    def shortlist(qd: np.ndarray, m: int):
        if kind == "ivf":
            faiss.cvar.indexIVF_stats.reset()
        _, r = index.search(np.ascontiguousarray(qd, np.float32), m)
        if kind == "ivf":  # vectors actually compared (lists are not balanced) + the centroids
            return r.astype(np.int64), int((faiss.cvar.indexIVF_stats.ndis + nlist * len(qd)) * dim)
        return r.astype(np.int64), macs * len(qd)

    return shortlist, build


def hnsw_shortlister(x: np.ndarray, dim: int, ef: int):
    """FAISS HNSW over normalize(v[:dim]); macs = distance computations FAISS counted x dim."""
    import faiss

    xd = np.ascontiguousarray(truncate_normalize(x, dim))
    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(xd)
    build = time.perf_counter() - t0

    def shortlist(qd: np.ndarray, m: int):
        index.hnsw.efSearch = max(ef, m)
        faiss.cvar.hnsw_stats.reset()
        _, r = index.search(np.ascontiguousarray(qd, np.float32), m)
        return r.astype(np.int64), int(faiss.cvar.hnsw_stats.ndis * dim)

    return shortlist, build


def single_query_ms(run, q: np.ndarray, n: int) -> float:
    """Median wall milliseconds of `run` on one query at a time (the first n queries): the latency a user who
    searches one sequence waits for, without the batching that queries/s assumes."""
    times = []
    for i in range(min(n, len(q))):
        t0 = time.perf_counter()
        run(q[i : i + 1])
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def bench_size(
    x: np.ndarray, q: np.ndarray, dims: tuple[int, ...], k: int, device: str, use_faiss: bool,
    hnsw: list[tuple[int, int]] = (), flat_rr: bool = False, funnels: list[tuple[Stage, ...]] = (),
    calibrate: bool = True, single: int = 0,
) -> list[dict]:
    n, D = x.shape
    db = Database.from_arrays(x, matryoshka_dims=dims)
    res = []

    def record(name, hits, secs, extra="", run=None):
        fs = full_scores(q, x, hits.rows)
        rec, same = topk_quality(hits.rows, fs, ref.rows, ref.scores, k)
        ms = single_query_ms(run, q, single) if (run is not None and single) else None
        res.append(
            dict(method=name, n=n, stages=extra, recall10=rec, same_top10=same, qps=len(q) / secs,
                 macs=hits.macs_per_query, macs_ratio=n * D / max(1, hits.macs_per_query), single_ms=ms)
        )
        print(f"  {name:<14} {extra:<26} recall@10 {rec:.4f}  same-top10 {same:.4f}  {len(q) / secs:10.1f} q/s  "
              f"{hits.macs_per_query / 1e6:8.3f} M macs/q ({n * D / max(1, hits.macs_per_query):6.1f}x fewer)"
              + (f"  {ms:.2f} ms single" if ms is not None else ""), flush=True)

    ref, t = timed(lambda: exact_search(q, db.blocks(D, 1 << 16), k=k, device=device))
    record("exact@D", ref, t, f"{D}", run=lambda qq: exact_search(qq, db.blocks(D, 1 << 16), k=k, device=device))
    for f in funnels:
        f = check_funnel(f, dim=D, matryoshka_dims=dims, k=k, source="--funnel")  # as search checks --funnel
        h, t = timed(lambda: funnel_search(q, db, f, device=device))
        record("funnel-fixed", h, t, ",".join(map(str, f)), run=lambda qq: funnel_search(qq, db, f, device=device))
    stages = default_funnel(n, dims, k, small_db_macs=0)  # the CLI scans small DBs exactly; show the funnel
    d1 = stages[0].dim
    h, t = timed(lambda: exact_search(truncate_normalize(q, d1), db.blocks(d1, 1 << 16), k=k, device=device))
    record("exact@d1", h, t, f"{d1}")
    trace: list[np.ndarray] = []
    h, t = timed(lambda: funnel_search(q, db, stages, device=device, trace=trace))
    record("funnel", h, t, ",".join(map(str, stages)))
    kept = [np.mean([len(set(a) & set(b)) for a, b in zip(rows, ref.rows)]) / k for rows in trace]
    res[-1]["stage_retention"] = kept
    print("    exact top-10 still present after each funnel stage: " + ", ".join(f"{s}: {x:.4f}" for s, x in zip(stages, kept)))
    if calibrate:
        cal = calibrate_funnel(db, k=k, device=device)  # pseudo-queries are DB rows, not the held-out queries
        h, t = timed(lambda: funnel_search(q, db, cal.stages, device=device))
        record("funnel-cal", h, t, ",".join(map(str, cal.stages)) + f" (calibration {cal.seconds:.1f}s)")
        res[-1]["needed_keep_p995"] = cal.needed
        print("    shortlist needed at each dim to keep the exact top-10 of 99.5% of 200 DB-row queries: "
              + ", ".join(f"{d}: {m:,}" for d, m in cal.needed.items()))
    small = [d for d in dims if d >= 16][:1] or [dims[0]]
    mid = [d for d in dims if d >= 4 * small[0] and d < D][:1]
    paper = (Stage(small[0], min(n, 2000)), *([Stage(mid[0], 200)] if mid else []), Stage(D, k))
    h, t = timed(lambda: funnel_search(q, db, paper, device=device))
    record("funnel-paper", h, t, ",".join(map(str, paper)))
    if use_faiss:
        for kind in ("flat", "ivf") if flat_rr else ("ivf",):
            sl, build = faiss_shortlister(x, d1, kind, len(q))
            h, t = timed(lambda: funnel_search(q, db, stages, device=device, shortlist=sl))
            record(f"faiss-{kind}+rr", h, t, ",".join(map(str, stages)) + f" (build {build:.1f}s)")
        built: dict[int, tuple] = {}
        for hd, m in hnsw:
            if hd not in built:
                built[hd] = hnsw_shortlister(x, hd, m)
            sl, build = built[hd]
            st = (Stage(hd, min(m, n)), Stage(D, k))
            h, t = timed(lambda: funnel_search(q, db, st, device=device, shortlist=sl))
            record(f"hnsw@{hd}:{m}", h, t, ",".join(map(str, st)) + f" (build {build:.1f}s)",
                   run=lambda qq: funnel_search(qq, db, st, device=device, shortlist=sl))
        import faiss

        index = faiss.IndexFlatIP(D)
        index.add(np.ascontiguousarray(x))
        (_, r), t = timed(lambda: index.search(np.ascontiguousarray(normalize(q)), k))
        from mrl_dna.search import Hits

        record("faiss-flat@D", Hits(r.astype(np.int64), np.zeros(r.shape, np.float32), (D,), n * D), t, f"{D}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--vectors", help="HDF5 from `mrl-dna embed --save-windows` (real window embeddings)")
    src.add_argument("--synthetic", action="store_true", help="synthetic STAND-IN vectors (not embeddings)")
    src.add_argument("--kmer-pca", nargs="+", metavar="FASTA",
                     help="STAND-IN from REAL genome windows (2 kb, stride 512): PCA of canonical 5-mer profiles")
    ap.add_argument("--dims", default="8,16,32,64,128", help="Matryoshka dims of the synthetic stand-in")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-faiss", action="store_true")
    ap.add_argument("--hnsw", default="64:500,64:1000,64:2000",
                    help="HNSW shortlist settings DIM:M,... (M candidates = efSearch, reranked at D); '' = none")
    ap.add_argument("--faiss-flat-rr", action="store_true", help="also run FAISS flat over d1 + the auto reranks")
    ap.add_argument("--funnel", default="", help="extra fixed funnels DIM:KEEP,...;DIM:KEEP,... (e.g. 256:2000,512:10)")
    ap.add_argument("--no-calibrate", action="store_true", help="skip funnel-cal (slow on a 1M-row DB)")
    ap.add_argument("--single", type=int, default=0,
                    help="also time N queries one at a time (median ms) for exact@D, --funnel and HNSW rows")
    ap.add_argument("--json", help="write the rows as JSON here")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.synthetic:
        dims = tuple(int(d) for d in args.dims.split(","))
        pool = synthetic(max(sizes) + args.queries, dims, rng)
        what = f"SYNTHETIC STAND-IN (not embeddings): {len(pool):,} vectors, dims {dims}"
    elif args.kmer_pca:
        dims = tuple(int(d) for d in args.dims.split(","))
        pool = kmer_pca_windows(args.kmer_pca, dims)
        what = (f"STAND-IN from REAL genome windows, not model embeddings: {len(pool):,} windows (2048 bp, stride 512) "
                f"of {len(args.kmer_pca)} FASTA files, PCA (top {dims[-1]} axes) of Hellinger 5-mer profiles")
        pool = pool[rng.permutation(len(pool))]
    else:
        pool, dims, what = load_vectors(args.vectors)
        pool = pool[rng.permutation(len(pool))]
    q, base = pool[: args.queries], pool[args.queries :]
    try:
        import faiss  # noqa: F401

        use_faiss = not args.no_faiss
        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        use_faiss = False
    print(f"# data: {what}; {len(q)} held-out queries; torch {torch.__version__}, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}; faiss {'yes' if use_faiss else 'no'}", flush=True)
    rows = []
    for n in sizes:
        x, n_real = grow(base, n, rng)
        print(f"## n = {n:,} rows ({n_real:,} {'stand-in' if args.synthetic else 'real-window'}"
              f"{f', {n - n_real:,} jittered copies' if n > n_real else ''})", flush=True)
        hnsw = [tuple(int(v) for v in p.split(":")) for p in args.hnsw.split(",") if p] if use_faiss else []
        for r in bench_size(np.ascontiguousarray(x), q, dims, args.k, args.device, use_faiss, hnsw, args.faiss_flat_rr,
                            [parse_funnel(f) for f in args.funnel.split(";") if f], not args.no_calibrate, args.single):
            rows.append({**r, "n_real": n_real, "data": what})
    print("\n| n | method | stages | recall@10 | same top-10 | queries/s | ms per single query | M multiply-adds/query | fewer than exact |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ms = "-" if r.get("single_ms") is None else f"{r['single_ms']:.2f}"
        print(f"| {r['n']:,} | {r['method']} | {r['stages']} | {r['recall10']:.4f} | {r['same_top10']:.3f} | "
              f"{r['qps']:,.0f} | {ms} | {r['macs'] / 1e6:.3f} | {r['macs_ratio']:.1f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"argv": sys.argv, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
