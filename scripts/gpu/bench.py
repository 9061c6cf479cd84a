#!/usr/bin/env python
"""GPU embedding throughput in one run (issue 16): the whole check for a lent GPU machine, ~6-8 minutes.

    bash scripts/gpu/bench.sh OUT_DIR                       # on the GPU machine, from the repository root
    python scripts/gpu/bench.py --out OUT_DIR               # the same without the wrapper
    python scripts/gpu/bench.py --device cpu --quick --out g       # a smoke test of every path on a CPU

What it measures, for the bundled default model and for a randomly initialised model of the v2 shape
(pool_features 1024, patch mean, pool_norm, Matryoshka dims up to 512):
  1. model alone: window_vectors + head on fixed random batches under bf16 autocast, by batch tokens
     (2^18 .. 2^22 bases), timed with CUDA events around a loop with no host sync inside; eager, and
     torch.compile (mode reduce-overhead: CUDA graphs) at the default batch size; peak GPU memory;
  2. the whole pipeline, mrl_dna.embed.embed_fasta on a generated FASTA (5 Mbp genome-like records, plain
     text, page-cached): Mbp/s and seconds per stage (scan, read, windows, batch, model, wait, pool,
     write), for batch tokens 2^19 .. 2^21, prefetch thread on/off, GPU batches in flight 3 vs 0 (a sync per
     batch), --compile; and 200k reads of 150 bp (per-record cost). A model that embed runs on its pooled
     k-mer path without --save-windows (the bundled default since issue 24: numpy on the CPU, one head call per
     record) runs these rows with --save-windows (the GPU engine), plus one row of the pooled path;
  3. `torchrun --standalone --nproc_per_node N -m mrl_dna embed` on 1 GPU and on all GPUs (when > 1), wall
     time including start-up.
Writes OUT_DIR/bench_gpu.md (the tables) and OUT_DIR/bench_gpu.json; prints the tables as it goes.
The issue's bar: >= 100 Mbp/s for the default model on one H100/H200-class GPU (bench/HISTORY.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mrl_dna import console  # noqa: E402
from mrl_dna.model.config import EncoderConfig, ModelConfig, Patch  # noqa: E402
from mrl_dna.embed import EmbedOptions, embed_fasta  # noqa: E402
from mrl_dna.embed.pooled import pooled_model  # noqa: E402
from mrl_dna.model import MrlDnaModel, load_model  # noqa: E402
from mrl_dna.embed.pipeline import window_embeddings  # noqa: E402


def v2_shape_model() -> MrlDnaModel:
    """A random model of the shape default model v2 is expected to take (the lead's options of issue 11)."""
    torch.manual_seed(0)
    enc = EncoderConfig(pool_features=1024, patch=Patch.mean, pool_norm=True)
    return MrlDnaModel(ModelConfig(encoder=enc, matryoshka_dims=(8, 16, 32, 64, 128, 256, 512), head_hidden=0)).eval()


def write_fasta(path: Path, bp: int, record_bp: int, seed: int = 0) -> int:
    """Random ACGT records of record_bp (60 bp lines): bp bases in all. Returns the bases written."""
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"ACGT", np.uint8)
    n = max(1, bp // record_bp)
    with open(path, "wb") as f:
        for i in range(n):
            seq = alphabet[rng.integers(0, 4, record_bp)]
            pad = (-record_bp) % 60
            lines = np.concatenate([seq, np.zeros(pad, np.uint8)]).reshape(-1, 60)
            body = np.concatenate([lines, np.full((len(lines), 1), ord("\n"), np.uint8)], 1).tobytes()
            if pad:
                body = body[: len(body) - pad - 1] + b"\n"
            f.write(b">r%d\n" % i + body)
    return n * record_bp


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def model_alone(model, dev: torch.device, batch_tokens: int, window: int, iters: int, compile: bool) -> dict:
    """Mbp/s of window_vectors + head on one fixed batch, repeated `iters` times without a host sync."""
    rows = max(1, batch_tokens // window)
    tokens = torch.randint(7, 11, (rows, window), device=dev)
    lengths = torch.full((rows,), window, device=dev)
    fn = lambda t, l: window_embeddings(model, t, l)  # noqa: E731
    t_compile = 0.0
    if compile:
        t0 = time.perf_counter()
        cfn = torch.compile(fn, mode="reduce-overhead" if dev.type == "cuda" else None, dynamic=False)

        def fn(t, l):
            if dev.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            return cfn(t, l)

        with _autocast(dev), torch.inference_mode():
            for _ in range(3):
                fn(tokens, lengths)
        sync(dev)
        t_compile = time.perf_counter() - t0
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with _autocast(dev), torch.inference_mode():
        for _ in range(2):
            out = fn(tokens, lengths)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(iters):
            out = fn(tokens, lengths)
        sync(dev)
        secs = time.perf_counter() - t0
    del out
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
    return {"batch_tokens": rows * window, "iters": iters, "seconds": secs, "mbp_s": rows * window * iters / secs / 1e6,
            "peak_gib": peak, "compile_s": t_compile}


def _autocast(dev: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)


def pipeline_run(model, fasta: Path, out: Path, dev: torch.device, **kw) -> dict:
    out.unlink(missing_ok=True)
    sync(dev)
    t0 = time.perf_counter()
    options = EmbedOptions(device=str(dev), overwrite=True, resume=False, **kw)
    s = embed_fasta([fasta], model=model, output=out, options=options)
    sync(dev)
    wall = time.perf_counter() - t0
    st = s.stages
    row = {"bp": s.bp, "records": s.records, "wall": wall, "mbp_s": s.bp / wall / 1e6,
           **{k: round(v, 3) for k, v in st.seconds.items()},
           **{f"prefetch_{k}": round(v, 3) for k, v in st.worker.items()}}
    out.unlink(missing_ok=True)
    return row


def torchrun(fasta: Path, out: Path, n: int, model_dir: str | None, timeout: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "mrl_dna",
           "embed", str(fasta), "-o", str(out), "--device", "cuda", "-q", "-f"]
    if model_dir:
        cmd += ["--model", model_dir]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    return {"gpus": n, "rc": r.returncode, "wall": wall, "stderr_tail": r.stderr[-600:]}


def md_table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
                     + ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench-gpu-out", help="directory for bench_gpu.md / .json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--bp", type=float, default=500e6, help="bases of the generated genome FASTA")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test; with --device cpu)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (saves ~1-3 min)")
    ap.add_argument("--no-torchrun", action="store_true")
    ap.add_argument("--models", default="default,v2shape", help="default, v2shape and/or model directories")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    console.set_quiet(True)
    quick = a.quick
    bp = int(2e5 if quick else a.bp)
    sizes = [1 << 15] if quick else [1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22]
    iters = 2 if quick else 20
    report: dict = {"machine": {"host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
                                "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor(),
                                "gpus": torch.cuda.device_count() if dev.type == "cuda" else 0,
                                "cpus": os.cpu_count()}, "argv": sys.argv}
    md = {"": f"# bench_gpu: {report['machine']}\n"}  # section title -> markdown (rewritten as rows come in)

    def emit(title: str, rows: list[dict], cols: list[str], show: bool = True) -> None:
        md[title] = f"## {title}\n\n{md_table(rows, cols)}\n"
        if show:
            print(md[title], flush=True)
        report[title] = rows
        (out_dir / "bench_gpu.md").write_text("\n".join(md.values()))
        (out_dir / "bench_gpu.json").write_text(json.dumps(report, indent=1))

    models = {}
    for name in a.models.split(","):
        models[name] = (load_model(None) if name == "default" else v2_shape_model() if name == "v2shape"
                        else load_model(name)).to(dev).eval()

    # 1. the model alone
    rows = []
    for name, model in models.items():
        window = model.info.window
        for bt in sizes:
            try:
                r = model_alone(model, dev, bt, window, iters, compile=False)
            except torch.OutOfMemoryError:
                r = {"batch_tokens": bt, "mbp_s": "OOM"}
                torch.cuda.empty_cache()
            rows.append({"model": name, "mode": "eager bf16", **r})
        if not a.no_compile:
            bt = sizes[min(2, len(sizes) - 1)]
            try:
                rows.append({"model": name, "mode": "compile (CUDA graphs)" if dev.type == "cuda" else "compile",
                             **model_alone(model, dev, bt, window, iters, compile=True)})
            except Exception as e:  # noqa: BLE001 (a compiler failure is a result here)
                rows.append({"model": name, "mode": f"compile failed: {type(e).__name__}: {str(e)[:80]}"})
        emit("model alone (window_vectors + head, fixed batches, no host sync)", rows,
             ["model", "mode", "batch_tokens", "mbp_s", "peak_gib", "compile_s", "seconds", "iters"], show=False)
    print(md["model alone (window_vectors + head, fixed batches, no host sync)"], flush=True)

    # 2. the whole pipeline
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp = Path(tmp)
        genomes = tmp / "genomes.fa"
        t0 = time.perf_counter()
        total = write_fasta(genomes, bp, record_bp=min(5_000_000, bp))
        reads = tmp / "reads.fa"
        write_fasta(reads, 30_000 if quick else 30_000_000, record_bp=150, seed=1)
        warm = tmp / "warm.fa"
        write_fasta(warm, 100_000 if quick else 20_000_000, record_bp=min(5_000_000, bp), seed=2)
        md["inputs"] = (f"Inputs: {genomes.name} {total:,} bp in {max(1, bp // 5_000_000)} records, reads.fa 150 bp reads "
                        f"(written in {time.perf_counter() - t0:.1f} s)\n")
        cols = ["model", "input", "variant", "mbp_s", "wall", "scan", "read", "windows", "batch", "model_s", "wait",
                "pool", "write", "prefetch_read", "prefetch_windows"]
        rows = []
        base_bt = sizes[min(2, len(sizes) - 1)]
        variants = [("batch 2^19", dict(batch_tokens=1 << 19)), ("batch 2^20 (default)", dict(batch_tokens=base_bt)),
                    ("batch 2^21", dict(batch_tokens=1 << 21)), ("no prefetch thread", dict(batch_tokens=base_bt, prefetch=False)),
                    ("compile", dict(batch_tokens=base_bt, compile=True))]
        if quick:
            variants = [("default", dict(batch_tokens=base_bt)), ("no prefetch", dict(batch_tokens=base_bt, prefetch=False))]
        for name, model in models.items():
            # the GPU engine runs a model with a pooled path only with --save-windows (issue 24)
            gpu = {"save_windows": True} if pooled_model(model) is not None else {}
            if gpu:
                r = pipeline_run(model, genomes, tmp / "o.h5", dev)
                r["model_s"] = r.pop("model", "")
                rows.append({"model": name, "input": "genomes", "variant": "pooled path (numpy, CPU)", **r})
                r = pipeline_run(model, reads, tmp / "o.h5", dev)
                r["model_s"] = r.pop("model", "")
                rows.append({"model": name, "input": "150 bp reads", "variant": "pooled path (numpy, CPU)", **r})
            variants_of = [(v + (" + --save-windows" if gpu else ""), {**kw, **gpu}) for v, kw in variants]
            pipeline_run(model, warm, tmp / "warm.h5", dev, batch_tokens=base_bt, **gpu)  # warm-up (cuDNN, allocator)
            for vname, kw in variants_of:
                if kw.get("compile") and a.no_compile:
                    continue
                try:
                    r = pipeline_run(model, genomes, tmp / "o.h5", dev, **kw)
                except Exception as e:  # noqa: BLE001
                    r = {"mbp_s": f"failed: {type(e).__name__}: {str(e)[:80]}"}
                r["model_s"] = r.pop("model", "")
                rows.append({"model": name, "input": "genomes", "variant": vname, **r})
                emit("whole pipeline (embed_fasta, FASTA -> HDF5)", rows, cols, show=False)
            if dev.type == "cuda":  # a sync per batch: what the asynchronous engine saves
                import mrl_dna.embed.pipeline as pl

                depth = pl.GPU_DEPTH
                pl.GPU_DEPTH = 0
                try:
                    r = pipeline_run(model, genomes, tmp / "o.h5", dev, batch_tokens=base_bt, **gpu)
                finally:
                    pl.GPU_DEPTH = depth
                r["model_s"] = r.pop("model", "")
                rows.append({"model": name, "input": "genomes", "variant": "0 batches in flight (sync each)", **r})
            r = pipeline_run(model, reads, tmp / "o.h5", dev, batch_tokens=base_bt, **gpu)
            r["model_s"] = r.pop("model", "")
            rows.append({"model": name, "input": "150 bp reads", "variant": "default" + (" + --save-windows" if gpu else ""),
                         **r})
            emit("whole pipeline (embed_fasta, FASTA -> HDF5)", rows, cols)

        # 3. torchrun: 1 GPU vs all
        if dev.type == "cuda" and not a.no_torchrun:
            n = torch.cuda.device_count()
            rows = [dict(torchrun(genomes, tmp / "tr.h5", k, None, timeout=300), bp=total) for k in sorted({1, n})]
            for r in rows:
                r["mbp_s"] = r["bp"] / r["wall"] / 1e6 if r["rc"] == 0 else "failed"
            emit("torchrun -m mrl_dna embed (default model, wall time incl. start-up and merge)", rows,
                 ["gpus", "rc", "wall", "mbp_s", "bp", "stderr_tail"])
    print(f"wrote {out_dir / 'bench_gpu.md'} and {out_dir / 'bench_gpu.json'}")


if __name__ == "__main__":
    main()
