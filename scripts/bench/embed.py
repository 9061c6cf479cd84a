#!/usr/bin/env python
"""Embedding throughput and peak memory: bp/s by window length and mixer, linearity in sequence length,
and flat memory as the input grows. Each measurement runs in a fresh subprocess so its peak RSS is its own.

    python scripts/bench/embed.py --suite windows   # window 1k..16k x mixer (ssd, mamba1), random-init default-size model
    python scripts/bench/embed.py --suite length    # 0.25 .. 4 Mbp single record: time must grow linearly
    python scripts/bench/embed.py --suite memory --sizes 10e6,100e6   # peak RSS flat while input grows 10x
    python scripts/bench/embed.py --suite default   # the bundled default model on 1 Mbp

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


def measure(**kw) -> dict:
    r = subprocess.run([sys.executable, __file__, "--one", json.dumps(kw)], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"measurement {kw} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["windows", "length", "memory", "default"], default="windows")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--windows", default="1024,2048,4096,8192,16384")
    ap.add_argument("--mixers", default="ssd,mamba1")
    ap.add_argument("--bp", type=float, default=1e6)
    ap.add_argument("--sizes", default="10e6,100e6", help="memory suite: input sizes in bp")
    ap.add_argument("--batch-tokens", type=int, default=65536)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(json.loads(a.one))))
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
