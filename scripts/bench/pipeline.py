#!/usr/bin/env python
"""Where embed's time goes: the pipeline's ceiling (a null model: zero vectors through the same reading,
tokenising, windows, batches, pooling and HDF5 writing) and the split per stage for a real model.

    python scripts/bench/pipeline.py genomes.fa --model null      # the ceiling: everything but the model
    python scripts/bench/pipeline.py genomes.fa --model default --threads 2
    python scripts/bench/pipeline.py genomes.fa --model default --threads 2 --torch-profile   # + top ops

Runs mrl_dna.embed.embed_fasta (what `mrl-dna embed --profile` runs) into a temporary HDF5 file and prints a
markdown table: seconds per stage (read = FASTA parsing and tokenising, windows, batch = gathering windows
into token batches, model = encoder + head, wait = GPU results, pool, write = HDF5), the wall time, bp/s
and peak RSS. The null model has the bundled model's window, dims and pooling; its encoder and head return
zeros, so `model` is ~0 and the rest is what the pipeline costs per base.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from mrl_dna import console
from mrl_dna.model.config import Pooling
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.model import load_model
from mrl_dna.model.base import ModelInfo
from mrl_dna.model.head import HeadThenPool
from mrl_dna.model.pooling import WindowPooling
from mrl_dna.runtime import set_threads, tune_allocator


class _Zeros(nn.Module):
    def __init__(self, D: int) -> None:
        super().__init__()
        self.D = D

    def forward(self, win: Tensor) -> Tensor:
        return win.new_zeros(len(win), self.D)


class NullModel(HeadThenPool, nn.Module):
    """The pipeline without a model: window vectors of width 1 and zero embeddings, pooled and written as a
    real model's are (the window, dims and pooling of `like`)."""

    def __init__(self, like: ModelInfo) -> None:
        super().__init__()
        self.info = ModelInfo(name="null", kind="null", weights_hash="0" * 64, dim=like.dim,
                              matryoshka_dims=like.matryoshka_dims, window=like.window,
                              window_stride=like.window_stride, pooling=Pooling.mean.value)
        self.head = _Zeros(like.dim)
        self.pooling = WindowPooling(Pooling.mean, 1)

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return torch.zeros(len(tokens), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="FASTA files (plain or gzip)")
    ap.add_argument("--model", default="null", help="null (the ceiling), default (bundled) or a model directory")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = auto, as embed)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-tokens", type=int, default=None)
    ap.add_argument("--save-windows", action="store_true")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--prefetch", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--torch-profile", action="store_true", help="also print torch.profiler's top ops (CPU)")
    a = ap.parse_args()
    tune_allocator()
    threads = set_threads(a.threads)
    console.set_quiet(True)
    real = load_model(None if a.model in ("default", "null") else a.model)
    model = NullModel(real.info) if a.model == "null" else real
    prefetch = {"auto": None, "on": True, "off": False}[a.prefetch]
    with tempfile.TemporaryDirectory() as tmp:
        prof = None
        if a.torch_profile:
            from torch.profiler import ProfilerActivity, profile

            prof = profile(activities=[ProfilerActivity.CPU])
            prof.__enter__()
        t0 = time.perf_counter()
        options = EmbedOptions(batch_tokens=a.batch_tokens, device=a.device, save_windows=a.save_windows,
                               per_file=a.per_file, prefetch=prefetch)
        s = embed_fasta(a.inputs, model=model, output=Path(tmp) / "out.h5", options=options)
        wall = time.perf_counter() - t0
        if prof is not None:
            prof.__exit__(None, None, None)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"# bench_pipeline: {' '.join(sys.argv[1:])}")
    print(f"# {platform.node()} {platform.machine()}, torch {torch.__version__}, threads {threads}, device {s.device}")
    print(f"# {s.records:,} records, {s.bp:,} bp, {s.windows:,} windows; {wall:.2f} s wall, "
          f"{s.bp / wall / 1e6:.2f} Mbp/s, peak RSS {rss:,.0f} MiB\n")
    print("| stage | seconds | share | Mbp/s of the stage alone | what |\n|---|---:|---:|---:|---|")
    for line in s.stages.report(s.bp, wall)[1:]:
        name, rest = line[:36].strip(), line[36:].split(None, 3)
        print(f"| {name} | {rest[0]} | {rest[1]} | {rest[2]} | {rest[3] if len(rest) > 3 else ''} |")
    if prof is not None:
        print()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
