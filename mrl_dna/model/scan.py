"""Scalar-decay selective scan (Mamba-2 "SSD"), in pure PyTorch.

Axis glossary (Mamba-2 paper notation in brackets):
    b  batch
    l  sequence length (tokens)                      [T]
    h  heads, each with one scalar decay per step    [H]
    p  channels per head (headdim)                   [P]
    n  state size                                    [N]
    c  chunks, q  positions inside a chunk           [Q = chunk length]

Recurrence, per head:  S_t = a_t * S_{t-1} + x_t B_t^T      (S: (p, n), a_t = exp(log_a_t) in (0, 1])
                       y_t = S_t C_t
This mirrors `ssd_minimal_discrete` from the Mamba-2 reference (state-spaces/mamba, ssd_minimal.py) with one
B/C group; it differs in taking log_a = dt * A directly and in looping over chunks (there are only l/q of
them) instead of a second segment-sum matrix over chunks.

Why this scan: with a scalar decay per head the intra-chunk work is three small matmuls, which a CPU runs
~7x faster than Mamba-1's per-channel scan (PERF_NOTES.md). Numerically it is stable for any chunk length:
the only exponents taken are of differences cumsum[i] - cumsum[j] <= 0 (i >= j), never of a raw cumsum.
`ssd_scan_sequential` is the oracle the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ssd_scan_sequential(x: Tensor, log_a: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Reference scan, one step at a time. x (b, l, h, p), log_a (b, l, h), B/C (b, l, n) -> y (b, l, h, p)."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    state = x.new_zeros(b, h, p, n)
    ys = []
    for x_t, la_t, B_t, C_t in zip(x.unbind(1), log_a.unbind(1), B.unbind(1), C.unbind(1)):
        # (b, h, p, n) = (b, h, 1, 1) * (b, h, p, n) + (b, h, p, 1) * (b, 1, 1, n)
        state = la_t.exp()[:, :, None, None] * state + x_t[..., None] * B_t[:, None, None, :]
        ys.append(torch.einsum("bhpn,bn->bhp", state, C_t))
    return torch.stack(ys, dim=1)


def ssd_scan_chunked(x: Tensor, log_a: Tensor, B: Tensor, C: Tensor, chunk: int = 16) -> Tensor:
    """Chunked scan: parallel (matmuls) inside a chunk, sequential over chunks. Shapes as the reference.

    The chunk length trades the intra-chunk (q x q) work, which grows with q, against the Python loop over
    l / q chunks; 16 is the fastest on a 2-core CPU for 2 kb windows at stride 16 (bench/HISTORY.md). Without
    autograd the (q x q) decay matrix is built in place (no temporaries): the same values either way."""
    b, l, h, p = x.shape
    n = B.shape[-1]
    q = min(chunk, l)
    pad = (-l) % q
    if pad:  # zero input and zero log-decay after the end change nothing before it
        x = F.pad(x, (0, 0, 0, 0, 0, pad))
        log_a = F.pad(log_a, (0, 0, 0, pad))
        B = F.pad(B, (0, 0, 0, pad))
        C = F.pad(C, (0, 0, 0, pad))
    c = x.shape[1] // q
    x = x.reshape(b, c, q, h, p).permute(0, 1, 3, 2, 4).contiguous()  # (b, c, h, q, p), one copy for all uses
    B = B.reshape(b, c, q, n)
    C = C.reshape(b, c, q, n)
    a_cum = log_a.reshape(b, c, q, h).permute(0, 1, 3, 2).cumsum(-1)  # (b, c, h, q)

    # 1. within each chunk: y_i = sum_{j<=i} exp(a_cum_i - a_cum_j) (C_i . B_j) x_j
    decay = a_cum[..., :, None] - a_cum[..., None, :]  # (b, c, h, q, q), row i, column j
    later = torch.ones(q, q, dtype=torch.bool, device=x.device).triu(1)  # j > i: no contribution
    cb = (C @ B.transpose(-1, -2))[:, :, None]  # (b, c, 1, q, q)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, log_a, B, C)):
        decay = decay.masked_fill(later, float("-inf")).exp() * cb
    else:
        decay.masked_fill_(later, float("-inf")).exp_().mul_(cb)
    y = decay @ x  # (b, c, h, q, p)

    # 2. state left by each chunk: S_c = sum_j exp(a_cum_last - a_cum_j) x_j B_j^T
    to_end = (a_cum[..., -1:] - a_cum).exp()  # (b, c, h, q)
    chunk_states = (x.transpose(-1, -2) * to_end[..., None, :]) @ B[:, :, None]  # (b, c, h, p, n)

    # 3. carry states across chunks (c is small: l / q steps) and add their contribution
    chunk_decay = a_cum[..., -1].exp()  # (b, c, h)
    from_start = a_cum.exp()  # (b, c, h, q): decay from the chunk start to position i
    # the per-chunk slices are taken once (unbind), not by indexing inside the loop: each `t[:, ci]` would
    # cost a zero-filled full-size gradient in the backward pass (PERF_NOTES: indexing in a loop is O(l^2))
    carried = x.new_zeros(b, h, p, n)
    outs = []
    for C_c, start_c, y_c, decay_c, states_c in zip(C[:, :, None].unbind(1), from_start.unbind(1), y.unbind(1),
                                                     chunk_decay.unbind(1), chunk_states.unbind(1)):
        # y_i += exp(a_cum_i) * carried C_i   -> (b, h, q, p)
        y_off = (C_c @ carried.transpose(-1, -2)) * start_c[..., None]
        outs.append(y_c + y_off)
        carried = decay_c[..., None, None] * carried + states_c
    y = torch.stack(outs, dim=1)  # (b, c, h, q, p)
    return y.permute(0, 1, 3, 2, 4).reshape(b, c * q, h, p)[:, :l]


def ssd_scan(x: Tensor, log_a: Tensor, B: Tensor, C: Tensor, impl: str = "chunked") -> Tensor:
    """The one entry point the encoder calls. impl: 'chunked' (default) or 'sequential' (oracle)."""
    if impl == "sequential":
        return ssd_scan_sequential(x, log_a, B, C)
    return ssd_scan_chunked(x, log_a, B, C)
