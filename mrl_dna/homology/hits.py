"""Exact best hits: for each query window, the target window of highest cosine at full width, in blocks of
bounded memory, on the CPU (numpy BLAS, float32) or a torch device (`device=`: a GPU's float32 products, blocks
sized to its free memory). Ties go to the lowest target index on both.

Glossary: n query windows, m target windows, D full width, b query rows per block.
"""

from __future__ import annotations

import numpy as np

# One (b, m) float32 score block on the CPU: big enough for BLAS to run at full speed, small beside the RAM.
CPU_BLOCK_BYTES = 64 << 20
# Share of a GPU's free memory one score block may take (the rest: the two operands and torch's cache).
GPU_BLOCK_SHARE = 0.25


def block_rows(m: int, block_bytes: int) -> int:
    """Query rows per block so that the (b, m) float32 score block stays near block_bytes."""
    return max(1, min(65536, block_bytes // max(4 * m, 1)))


def best_hits(q: np.ndarray, t: np.ndarray, *, device: str = "cpu",
              block_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(best cosine (n,) float32, index (n,) int64) of every query row among the target rows.

    q (n, D), t (m, D): unit rows (float32 or float16; products in float32). device: "cpu" (numpy) or a torch
    device name ("cuda", "cuda:1"); block_bytes: the score block's size (default: CPU_BLOCK_BYTES, or
    GPU_BLOCK_SHARE of the GPU's free memory)."""
    n, m = len(q), len(t)
    best = np.full(n, -np.inf, np.float32)
    arg = np.zeros(n, np.int64)
    if n == 0 or m == 0:
        return best, arg
    if str(device) == "cpu":
        tt = np.ascontiguousarray(t, dtype=np.float32).T  # (D, m)
        b = block_rows(m, block_bytes or CPU_BLOCK_BYTES)
        for i in range(0, n, b):
            s = np.asarray(q[i: i + b], dtype=np.float32) @ tt  # (b, m)
            j = s.argmax(1)
            arg[i: i + b] = j
            best[i: i + b] = s[np.arange(len(j)), j]
        return best, arg
    return _best_hits_torch(q, t, device, block_bytes)


def _best_hits_torch(q: np.ndarray, t: np.ndarray, device: str, block_bytes: int | None):
    import torch

    dev = torch.device(device)
    if block_bytes is None:
        free = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else CPU_BLOCK_BYTES
        block_bytes = int(free * GPU_BLOCK_SHARE)
    tt = torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32)).to(dev)  # (m, D)
    b = block_rows(len(t), block_bytes)
    best, arg = [], []
    for i in range(0, len(q), b):
        qq = torch.from_numpy(np.ascontiguousarray(q[i: i + b], dtype=np.float32)).to(dev)
        s = qq @ tt.T  # (b, m)
        v, j = s.max(1)  # torch's max returns the first maximal index, as numpy's argmax
        best.append(v.cpu().numpy())
        arg.append(j.cpu().numpy())
    return np.concatenate(best).astype(np.float32), np.concatenate(arg).astype(np.int64)
