"""Throughput of the Mamba-1 selective scan implementations (tokens/s), printed as a markdown table.

    python scripts/bench/scan.py                       # d_inner 256, d_state 16, batch 8, L 2048, 2 threads
    python scripts/bench/scan.py --length 512 --impls chunked sequential --repeats 5

Inputs follow the standard Mamba init (A = -exp(log(1..16)), softplus(dt bias) in [0.001, 0.1]). A token is
one position of one sequence (batch x length per call). Each figure is the best of --repeats runs.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch

from mrl_dna.model.selective_scan import _chunk_length, selective_scan


def make_inputs(batch: int, d_inner: int, d_state: int, length: int, device: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    dt = torch.exp(torch.rand(d_inner, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    x = {
        "u": torch.randn(batch, d_inner, length, generator=g),
        "delta": 0.1 * torch.randn(batch, d_inner, length, generator=g),
        "A": -torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1),
        "B": torch.randn(batch, d_state, length, generator=g),
        "C": torch.randn(batch, d_state, length, generator=g),
        "D": torch.ones(d_inner),
        "z": torch.randn(batch, d_inner, length, generator=g),
        "delta_bias": dt + torch.log(-torch.expm1(-dt)),
    }
    return {k: v.to(device) for k, v in x.items()}


def best_seconds(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--d-inner", type=int, default=256)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--impls", nargs="+", default=["sequential", "chunked"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x = make_inputs(args.batch, args.d_inner, args.d_state, args.length, args.device)
    tokens = args.batch * args.length
    delta = torch.nn.functional.softplus(x["delta"] + x["delta_bias"][:, None])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"d_inner {args.d_inner}, d_state {args.d_state}, batch {args.batch}, L {args.length}, "
        f"{args.threads} threads, {args.device}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"load average {load:.1f}, chunk length {_chunk_length(delta, x['A'])}"
    )
    print("\n| scan | forward tok/s | fwd+bwd tok/s |\n|---|---:|---:|")
    for impl in args.impls:

        def forward():
            with torch.no_grad():
                selective_scan(**x, delta_softplus=True, impl=impl)

        def forward_backward():
            leaves = {k: v.clone().requires_grad_(k in ("u", "delta", "B", "C", "z")) for k, v in x.items()}
            selective_scan(**leaves, delta_softplus=True, impl=impl).sum().backward()

        f = best_seconds(forward, args.repeats, args.device)
        fb = best_seconds(forward_backward, args.repeats, args.device)
        print(f"| {impl} | {tokens / f:,.0f} | {tokens / fb:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
