#!/usr/bin/env python
"""Embedding throughput and peak memory: bp/s by window length and mixer, linearity in sequence length,
and flat memory as the input grows. Each measurement runs in a fresh subprocess so its peak RSS is its own.

    python scripts/bench/embed.py --suite windows   # window 1k..16k x mixer (ssd, mamba1), random-init default-size model
    python scripts/bench/embed.py --suite length    # 0.25 .. 4 Mbp single record: time must grow linearly
    python scripts/bench/embed.py --suite memory --sizes 10e6,100e6   # peak RSS flat while input grows 10x
    python scripts/bench/embed.py --suite default   # the bundled default model on 1 Mbp
    python scripts/bench/embed.py --suite kmer      # the pooled path's k-mer counter alone, Mbp/s, one thread
    python scripts/bench/embed.py --suite mash --data ../shared/data --before-python ../venv/bin/python
        # issue 24: `mrl-dna embed` beside `mash sketch` (start-up included) on whole genomes at 1 and 2 threads,
        # a loop of one process per genome, and Mbp/s on many short records (--markers FASTA); with
        # --before-python, the same commands of another install (e.g. main's venv) in the same rounds

Prints a markdown table (paste into bench/HISTORY.md with the machine it ran on; the current figure into bench/RESULTS.md). --device cuda for a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(args: dict) -> dict:
    """Run one measurement in this process and return its figures."""
    import numpy as np
    import torch

    from mrl_dna import dna
    from mrl_dna.model.config import EncoderConfig, Mixer, ModelConfig
    from mrl_dna.embed import EmbedOptions, embed_fasta, embed_sequences
    from mrl_dna.inputs.fasta import Record
    from mrl_dna.model import MrlDnaModel, load_model

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    if args["model"] == "default":
        model = load_model(None)
    else:
        enc = EncoderConfig(mixer=Mixer(args["mixer"]))
        model = MrlDnaModel(ModelConfig(encoder=enc, window=args["window"], window_stride=args["window"])).eval()
    rng = np.random.default_rng(0)
    bp = int(args["bp"])
    dev = args["device"]
    if args.get("file"):  # memory suite: stream a FASTA of many records through the whole pipeline to HDF5
        with tempfile.TemporaryDirectory() as tmp:
            fa = Path(tmp) / "in.fa"
            rec_len = 1_000_000
            with open(fa, "wb") as f:
                block = rng.choice(np.frombuffer(b"ACGT", np.uint8), size=rec_len).tobytes()
                for i in range(max(1, bp // rec_len)):
                    f.write(b">r%d\n" % i + block + b"\n")
            t0 = time.perf_counter()
            from mrl_dna import console

            console.set_quiet(True)
            embed_fasta([fa], model=model, output=Path(tmp) / "out.h5",
                        options=EmbedOptions(window=args["window"], device=dev))
            secs = time.perf_counter() - t0
    else:
        seq = rng.choice(np.array(dna.BASES, np.uint8), size=bp)
        rec = Record("x", "", seq, "synthetic")
        warm = Record("w", "", seq[: min(bp, 4 * args["window"])], "synthetic")
        list(embed_sequences([warm], model=model, options=EmbedOptions(window=args["window"], device=dev)))
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        list(embed_sequences([rec], model=model,
                             options=EmbedOptions(window=args["window"], device=dev, batch_tokens=args["batch_tokens"])))
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        secs = time.perf_counter() - t0
    import resource

    out = {"bp": bp, "seconds": secs, "bp_per_s": bp / secs, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if dev.startswith("cuda"):
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# ---- --suite kmer (issue 24) ---------------------------------------------------------------------------------
def kmer_suite(a: argparse.Namespace) -> None:
    """The pooled path's stages alone on one thread, best of --runs on a random --bp genome: the canonical k-mer
    count of a whole record, per 2 kb window (kmer.window_kmer_counts, 128 windows a call as embed calls it), and
    the window sums of the default model (KmerLinearModel.piece_sums: counts -> sums of l_w x_w). Compare with
    the pipeline's ceiling: `python scripts/bench/pipeline.py FASTA --model null --threads 1`."""
    import numpy as np

    from mrl_dna import dna, runtime
    from mrl_dna.kmer import kmer_counts, window_kmer_counts
    from mrl_dna.model import load_embedder
    from mrl_dna.model.kmer_linear import GROUP_WINDOWS
    from mrl_dna.windows import window_spans

    runtime.tune_allocator()
    bp = int(a.bp)
    tokens = np.random.default_rng(0).choice(np.array(dna.BASES, np.uint8), size=bp)
    model = load_embedder(None)
    spans = window_spans(bp, model.info.window, model.info.window_stride)
    groups = [spans[i : i + GROUP_WINDOWS] for i in range(0, len(spans), GROUP_WINDOWS)]

    def per_group(fn):
        for g in groups:
            lo, hi = int(g[0, 0]), int(g[-1, 1])
            fn(tokens[lo:hi], g - lo)

    one = np.zeros(1, dtype=bool)
    stages = {"k-mer counts of the whole record (kmer_counts)": lambda: kmer_counts(tokens, 6),
              f"counts per {model.info.window} bp window (window_kmer_counts)": lambda: per_group(
                  lambda t, g: window_kmer_counts(t, 6, g)),
              "counts + window sums of the default model (piece_sums)": lambda: per_group(
                  lambda t, g: model.piece_sums(t, g, np.zeros(1, dtype=np.intp), one))}
    print(f"# bench_embed --suite kmer: {bp:,} bp random genome, one thread, best of {a.runs}; load average "
          f"{os.getloadavg()[0]:.1f}\n\n| stage | seconds | Mbp/s |\n|---|---:|---:|")
    for name, fn in stages.items():
        best = float("inf")
        for _ in range(a.runs):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        print(f"| {name} | {best:.3f} | {bp / best / 1e6:.0f} |", flush=True)


# ---- --suite mash (issue 24) ---------------------------------------------------------------------------------
_CPU: dict[str, float] = {}  # tool -> CPU seconds (user + sys) of all its runs so far


def _wall(cmd: list[str], tool: str = "") -> float:
    """Seconds one command takes, start-up included (its output discarded; a failure stops the benchmark); its
    CPU seconds are added to _CPU[tool] (on a busy machine the steadier figure)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    # outside the checkout: `python -m mrl_dna` run from the repository imports the repository's code, whatever
    # install --before-python names (a "before" that silently timed the current code)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    _CPU[tool] = _CPU.get(tool, 0.0) + (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall


def _tools(a: argparse.Namespace, out: Path) -> dict[str, object]:
    """name -> (threads, input, tag) -> the command line of one run. The embed rows run `python -m mrl_dna` of
    this interpreter and of --before-python (another install) with its default model."""
    tools = {"mash sketch": lambda t, src, tag: ["mash", "sketch", "-p", str(t), "-o", str(out / f"m{tag}"), str(src)]}
    for name, py in (("mrl-dna embed", sys.executable), ("mrl-dna embed (before)", a.before_python)):
        if py:
            tools[name] = (lambda py: lambda t, src, tag: [py, "-m", "mrl_dna", "embed", str(src), "-o",
                                                           str(out / f"e{tag}.h5"), "--force", "-q", "--threads", str(t)])(py)
    return tools


def mash_suite(a: argparse.Namespace) -> None:
    """Whole genomes (one FASTA of all of them), a loop of one process per genome, and many short records: every
    tool in the same rounds (interleaved), so that a busy machine slows them alike; ratios are to mash."""
    import shutil

    if not shutil.which("mash"):
        raise SystemExit("mash is not on PATH (apt install mash)")
    data = Path(a.data).resolve()  # the commands run outside the checkout (_wall)
    genomes = sorted(p for sub in ("genomes", "small", "assemblies") for p in (data / sub).glob("*.fa*"))
    if not genomes:
        raise SystemExit(f"no genomes under {data}/{{genomes,small,assemblies}}; pass --data DIR (the shared data)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        tools = _tools(a, out)
        allfa = out / "all.fa"
        with open(allfa, "wb") as f:  # one plain FASTA of every genome (read from the page cache by each run)
            for g in genomes:
                f.write(subprocess.run(["zcat", "-f", str(g)], capture_output=True, check=True).stdout)
        bp = sum(len(line.strip()) for line in open(allfa, "rb") if not line.startswith(b">"))
        print(f"# bench_embed --suite mash: {len(genomes)} genomes, {bp:,} bp; best of {a.runs} rounds (tools "
              f"interleaved in each); cpu_count={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the start")
        print("\n| input | threads | tool | best wall s | Mbp/s | x mash (best) | x mash (median of rounds) | x mash (CPU s) |")
        print("|---|---:|---|---:|---:|---:|---:|---:|")
        for threads in (1, 2):
            _CPU.clear()
            _rows_of(f"{len(genomes)} genomes in one FASTA", threads, bp, tools,
                     [{name: _wall(cmd(threads, allfa, name[-8:].replace(" ", "_")), name) for name, cmd in tools.items()}
                      for _ in range(a.runs)])
        _CPU.clear()
        loop = [genomes[i % len(genomes)] for i in range(a.loop)]
        per_genome: dict[str, list[list[float]]] = {name: [] for name in tools}
        for _ in range(a.loop_runs):  # a loop per tool per round: one process per genome, as a shell loop
            for name, cmd in tools.items():
                n = a.loop_before if name.endswith("(before)") and a.loop_before else len(loop)
                per_genome[name].append([_wall(cmd(1, g, f"l{j}"), name) for j, g in enumerate(loop[:n])])
        _loop_rows(loop, per_genome)
        # the same genomes in ONE call: embed --per-file (a row per file) beside mash sketch of the files (a sketch each)
        many = {name: (["mash", "sketch", "-p", "1", "-o", str(out / "many")] if name == "mash sketch" else
                       [py, "-m", "mrl_dna", "embed", "--per-file", "-o", str(out / f"many{i}.h5"), "--force", "-q",
                        "--threads", "1"]) + [str(g) for g in genomes]
                for i, (name, py) in enumerate((("mash sketch", None), ("mrl-dna embed", sys.executable),
                                                ("mrl-dna embed (before)", a.before_python))) if name in tools}
        _CPU.clear()
        _rows_of(f"{len(genomes)} genome files in one call (embed --per-file)", 1, bp, tools,
                 [{name: _wall(cmd, name) for name, cmd in many.items()} for _ in range(a.runs)])
        if a.markers:
            short = out / "short.fa"
            n = _first_records(Path(a.markers), short, a.markers_n)
            sbp = _fasta_bp(short)
            _CPU.clear()
            _rows_of(f"{n:,} short records ({sbp / max(n, 1):,.0f} bp each)", 1, sbp, tools,
                     [{name: _wall(cmd(1, short, "s"), name) for name, cmd in tools.items()} for _ in range(a.markers_runs)])
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end. Wall times include start-up (a process per run); "
              "x mash (CPU s): the tool's user + sys seconds over all its runs of that row's input / mash's.")


def _rows_of(what: str, threads: int, bp: int, tools: dict, rounds: list[dict[str, float]]) -> None:
    import statistics

    for name in tools:
        best = min(r[name] for r in rounds)
        ratio_best = best / min(r["mash sketch"] for r in rounds)
        ratio_med = statistics.median(r[name] / r["mash sketch"] for r in rounds)
        cpu = _CPU.get(name, 0.0) / max(_CPU.get("mash sketch", 0.0), 1e-9)
        print(f"| {what} | {threads} | {name} | {best:.2f} | {bp / best / 1e6:.1f} | {ratio_best:.2f} | {ratio_med:.2f} "
              f"| {cpu:.2f} |", flush=True)


def _loop_rows(loop: list[Path], per_genome: dict[str, list[list[float]]]) -> None:
    """The loop's rows: seconds per genome (best round) and the ratio to mash over the same genomes (a tool
    given fewer, with --loop-before, is compared with mash on those)."""
    mash = per_genome["mash sketch"]
    mash_cpu = _CPU.get("mash sketch", 0.0) / max(1, sum(len(r) for r in mash))  # per run
    for name, rounds in per_genome.items():
        n = len(rounds[0])
        best = min(sum(r) for r in rounds)
        ratio = best / min(sum(r[:n]) for r in mash)
        cpu = _CPU.get(name, 0.0) / max(1, sum(len(r) for r in rounds)) / max(mash_cpu, 1e-9)
        bp = sum(_fasta_bp(g) for g in loop[:n])
        print(f"| loop of {n} single-genome runs (one process each) | 1 | {name} | {best:.2f} ({best / n:.3f} per genome) "
              f"| {bp / best / 1e6:.1f} | {ratio:.2f} | - | {cpu:.2f} |", flush=True)


def _fasta_bp(path: Path) -> int:
    data = subprocess.run(["zcat", "-f", str(path)], capture_output=True, check=True).stdout
    return sum(len(line.strip()) for line in data.splitlines() if not line.startswith(b">"))


def _first_records(src: Path, dst: Path, n: int) -> int:
    """The first n records of a FASTA (plain) into dst; returns how many there were."""
    k = 0
    with open(src, "rb") as f, open(dst, "wb") as g:
        for line in f:
            if line.startswith(b">"):
                k += 1
                if k > n:
                    return n
            g.write(line)
    return k


def measure(**kw) -> dict:
    r = subprocess.run([sys.executable, __file__, "--one", json.dumps(kw)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"measurement {kw} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["windows", "length", "memory", "default", "kmer", "mash"], default="windows")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--windows", default="1024,2048,4096,8192,16384")
    ap.add_argument("--mixers", default="ssd,mamba1")
    ap.add_argument("--bp", type=float, default=1e6)
    ap.add_argument("--sizes", default="10e6,100e6", help="memory suite: input sizes in bp")
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / ".." / "shared" / "data"),
                    help="mash suite: the shared data (genomes/, small/, assemblies/ of *.fa.gz)")
    ap.add_argument("--runs", type=int, default=3, help="mash and kmer suites: rounds (best of)")
    ap.add_argument("--loop", type=int, default=100, help="mash suite: single-genome runs in the loop")
    ap.add_argument("--loop-runs", type=int, default=1, help="mash suite: rounds of the loop")
    ap.add_argument("--loop-before", type=int, default=0,
                    help="mash suite: the before-install's loop on the first N genomes only (0: all; it is slow)")
    ap.add_argument("--markers", help="mash suite: a FASTA of short records (e.g. MetaPhlAn2's markers.fasta)")
    ap.add_argument("--markers-n", type=int, default=1_000_000, help="mash suite: its first N records")
    ap.add_argument("--markers-runs", type=int, default=1)
    ap.add_argument("--before-python", help="mash suite: the python of another install to time beside this one "
                                            "(e.g. main's venv/bin/python): rows 'mrl-dna embed (before)'")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))))
        return
    if a.suite == "mash":
        mash_suite(a)
        return
    if a.suite == "kmer":
        kmer_suite(a)
        return
    base = dict(device=a.device, threads=a.threads, batch_tokens=a.batch_tokens, model="random", mixer="ssd", window=2048, bp=a.bp)
    print(f"# bench_embed --suite {a.suite} on {a.device}, threads={a.threads or os.cpu_count()}, cpu_count={os.cpu_count()}")
    gpu = a.device.startswith("cuda")
    if a.suite == "windows":
        print("| mixer | window | bp | seconds | kbp/s | peak RSS MiB |" + (" peak GPU MiB |" if gpu else ""))
        print("|---|---|---|---|---|---|" + ("---|" if gpu else ""))
        for mixer in a.mixers.split(","):
            for w in (int(x) for x in a.windows.split(",")):
                bp = a.bp if mixer == "ssd" else a.bp / 10  # mamba1 is ~10x slower on CPU: keep the run short
                r = measure(**{**base, "mixer": mixer, "window": w, "bp": bp})
                print(f"| {mixer} | {w} | {r['bp']:,} | {r['seconds']:.2f} | {r['bp_per_s'] / 1e3:,.0f} | {r['peak_rss_mib']:,.0f} |"
                      + (f" {r['peak_gpu_mib']:,.0f} |" if gpu else ""))
    elif a.suite == "length":
        print("| record bp | seconds | kbp/s | seconds per Mbp |")
        print("|---|---|---|---|")
        for bp in (a.bp / 4, a.bp / 2, a.bp, 2 * a.bp, 4 * a.bp):
            r = measure(**{**base, "bp": bp})
            print(f"| {int(bp):,} | {r['seconds']:.2f} | {r['bp_per_s'] / 1e3:,.0f} | {r['seconds'] / (bp / 1e6):.2f} |")
    elif a.suite == "memory":
        print("| input bp (1 Mbp records, FASTA -> HDF5) | seconds | kbp/s | peak RSS MiB |")
        print("|---|---|---|---|")
        for bp in (float(x) for x in a.sizes.split(",")):
            r = measure(**{**base, "bp": bp, "file": True})
            print(f"| {int(bp):,} | {r['seconds']:.1f} | {r['bp_per_s'] / 1e3:,.0f} | {r['peak_rss_mib']:,.0f} |")
    else:
        r = measure(**{**base, "model": "default"})
        print("| model | bp | seconds | kbp/s | peak RSS MiB |\n|---|---|---|---|---|")
        print(f"| bundled default | {r['bp']:,} | {r['seconds']:.2f} | {r['bp_per_s'] / 1e3:,.0f} | {r['peak_rss_mib']:,.0f} |")


if __name__ == "__main__":
    main()
