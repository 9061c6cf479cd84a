"""Mamba-1 selective scan: a sequential oracle, a chunked pure-PyTorch scan, and mamba-ssm's CUDA kernel.

Glossary (mamba-ssm / Mamba paper notation):
    b  batch                       u      input x_t of the SSM            (b, d, l)
    d  channels (d_inner)          delta  step size Delta_t               (b, d, l)
    l  sequence length             A      diagonal state matrix, < 0      (d, n)
    n  state size (d_state)        B, C   input/output projections        (b, n, l) or (b, g, n, l)
    g  groups of channels sharing B/C (channels split into g contiguous blocks of h = d // g)
    T  chunk length (chunked scan only)

Recurrence (zero initial state), for every (b, d, n):
    h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t
    y_t = sum_n C_t[n] * h_t[n] + D * u_t ;   y_t *= silu(z_t) when z is given

`selective_scan(...)` has the signature and semantics of mamba-ssm's `selective_scan_fn` /
`selective_scan_ref` (mamba_ssm/ops/selective_scan_interface.py) for real A and variable B, C; it never
returns the last state. Computation is in float32 (as the reference casts), the output has u's dtype.

Implementations (`impl=`):
    "sequential"  the oracle: one step per token, `unbind` once (PERF_NOTES: `x[:, t]` in a loop makes the
                  backward O(L^2)). Used by the tests and benchmarks as the reference.
    "chunked"     sequential over chunks of T tokens, parallel inside a chunk through cumulative sums of
                  the log-decay, with exponents taken relative to the middle of each chunk (see
                  `_chunk_length`). Pure PyTorch, runs anywhere, autograd gives the backward.
    "mamba_ssm"   mamba-ssm's fused CUDA kernel, only when it is importable and the tensors are on CUDA.
    "auto"        "mamba_ssm" when available for these tensors, else "chunked".
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from mrl_dna.errors import ConfigError

IMPLS = ("auto", "chunked", "sequential", "mamba_ssm")

# Largest spread of the cumulative log-decay inside one chunk. Exponents are taken relative to the chunk
# middle, so every exp() argument lies in [-R/2, R/2]: no overflow (fp32 overflows past ~88) and, more
# strictly, the rounding error of a cumulative sum of size S is ~ eps * S, i.e. a relative error of
# 6e-8 * 8 = 5e-7 on the terms that matter for R = 16. A larger R means longer chunks but less precision.
MAX_LOG_DECAY_SPREAD = 16.0
# Longest chunk: beyond ~32 tokens the per-chunk tensors (b, d, T, n) fall out of cache and nothing is gained.
MAX_CHUNK = 32
# One step's log-decay is clamped at -CLAMP: exp(-40) = 4e-18 already erases the previous state in float32,
# and the clamp keeps a single-token chunk's exponents (|.| <= 20) finite for any delta.
LOG_DECAY_CLAMP = 40.0
# With gradients and more than this many (b, d, l, n) elements, the chunked scan checkpoints blocks of
# CHECKPOINT_BLOCK tokens (2**24 floats = 64 MB per materialised tensor).
CHECKPOINT_ELEMENTS = 2**24
CHECKPOINT_BLOCK = 256


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    impl: str = "auto",
) -> Tensor:
    """Mamba-1 selective scan with mamba-ssm's `selective_scan_fn` semantics -> (b, d, l), dtype of u.

    u, delta: (b, d, l); A: (d, n) real; B, C: (b, n, l) or (b, g, n, l); D: (d,); z: (b, d, l);
    delta_bias: (d,). delta <- softplus(delta + delta_bias) when delta_softplus.
    """
    if impl not in IMPLS:
        raise ConfigError(f"selective scan impl {impl!r} is unknown; pick one of {', '.join(IMPLS)}")
    if impl in ("auto", "mamba_ssm"):
        kernel = _mamba_ssm_kernel() if u.is_cuda else None
        if kernel is not None:
            return kernel(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
        if impl == "mamba_ssm":
            raise ConfigError(
                "selective scan impl 'mamba_ssm' needs CUDA tensors and an importable mamba-ssm with its CUDA "
                "kernel (pip install mamba-ssm); use impl='chunked' otherwise"
            )
        impl = "chunked"
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    u32, delta32 = u.float(), delta.float()
    if delta_bias is not None:
        delta32 = delta32 + delta_bias.float()[:, None]
    if delta_softplus:
        delta32 = F.softplus(delta32)
    A32, B32, C32 = A.float(), B.float(), C.float()
    if B32.dim() == 3:
        B32 = B32.unsqueeze(1)  # (b, 1, n, l)
    if C32.dim() == 3:
        C32 = C32.unsqueeze(1)
    scan = _scan_sequential if impl == "sequential" else _scan_chunked
    y = scan(u32, delta32, A32, B32, C32)  # (b, d, l)
    if D is not None:
        y = y + u32 * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)


@functools.lru_cache(maxsize=1)
def _mamba_ssm_kernel() -> Callable[..., Tensor] | None:
    """The one place that imports mamba-ssm: its `selective_scan_fn` when the CUDA kernel is built, else None.

    mamba-ssm >= 2.3 imports without its CUDA extension (`selective_scan_cuda`) and fails only when called,
    so the extension is checked too.
    """
    try:
        import selective_scan_cuda  # noqa: F401  (the compiled kernel mamba-ssm calls)
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # ImportError, or a broken CUDA/torch ABI that raises OSError/RuntimeError on import
        return None
    return selective_scan_fn


def mamba_ssm_available() -> bool:
    """True when mamba-ssm's CUDA selective scan can be used (for info/bench output)."""
    return _mamba_ssm_kernel() is not None


def _check_shapes(u, delta, A, B, C, D, z, delta_bias) -> None:
    if u.dim() != 3 or delta.shape != u.shape:
        raise ConfigError(f"selective scan: u {tuple(u.shape)} and delta {tuple(delta.shape)} must both be (b, d, l)")
    b, d, l = u.shape
    if A.dim() != 2 or A.shape[0] != d or A.is_complex():
        raise ConfigError(f"selective scan: A {tuple(A.shape)} must be real (d={d}, n)")
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        ok = (t.dim() == 3 and t.shape == (b, n, l)) or (
            t.dim() == 4 and t.shape[0] == b and t.shape[2:] == (n, l) and d % t.shape[1] == 0
        )
        if not ok:
            raise ConfigError(f"selective scan: {name} {tuple(t.shape)} must be (b={b}, n={n}, l={l}) or (b, g, n, l) with g | d")
    for name, t, shape in (("D", D, (d,)), ("delta_bias", delta_bias, (d,)), ("z", z, (b, d, l))):
        if t is not None and tuple(t.shape) != shape:
            raise ConfigError(f"selective scan: {name} {tuple(t.shape)} must be {shape}")


def _scan_sequential(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Oracle: the plain recurrence, one token at a time. Mirrors mamba-ssm's `selective_scan_ref` loop.

    Deviation: the per-token slices come from one `unbind` instead of `x[:, :, i]` indexing, which keeps the
    autograd backward linear in l. u, delta: (b, d, l); A: (d, n); B, C: (b, g, n, l) -> y (b, d, l).
    """
    b, d, l = u.shape
    g, n = B.shape[1], A.shape[1]
    # Time-major copies so that every step reads contiguous memory: (l, b, g, h, n) and (l, b, g, 1, n).
    dl = delta.permute(2, 0, 1).reshape(l, b, g, d // g, 1)
    dA = torch.exp(dl * A.view(g, d // g, n))  # (l, b, g, h, n)
    dBu = (dl * u.permute(2, 0, 1).reshape(l, b, g, d // g, 1)) * B.permute(3, 0, 1, 2).unsqueeze(3)  # (l, b, g, h, n)
    Cl = C.permute(3, 0, 1, 2).unsqueeze(3).contiguous()  # (l, b, g, 1, n)
    h = u.new_zeros(b, g, d // g, n)
    ys = []
    for a_t, x_t, c_t in zip(dA.unbind(0), dBu.unbind(0), Cl.unbind(0)):
        h = a_t * h + x_t  # (b, g, h, n)
        ys.append((h * c_t).sum(-1))  # (b, g, h)
    return torch.stack(ys, dim=-1).reshape(b, d, l) if ys else u.new_zeros(b, d, 0)


def _chunk_length(delta: Tensor, A: Tensor) -> int:
    """Tokens per chunk such that the log-decay spread inside a chunk stays <= MAX_LOG_DECAY_SPREAD.

    The spread of a chunk is at most T * max(delta * |A|) (PERF_NOTES: the unbounded version gives NaN at
    chunk 64 with the standard Mamba init). Standard init (delta <= 0.1, |A| <= 16) gives T = 10.
    """
    if delta.numel() == 0:
        return 1
    max_rate = min(float(delta.detach().max()) * float(A.detach().abs().max()), LOG_DECAY_CLAMP)
    if not math.isfinite(max_rate) or max_rate <= 0:
        return MAX_CHUNK
    return max(1, min(MAX_CHUNK, int(MAX_LOG_DECAY_SPREAD / max_rate)))


def _scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """Chunked scan: sequential over chunks, closed form inside a chunk. Same inputs/outputs as the oracle.

    Inside a chunk with cumulative log-decay S_t = sum_{s<=t} delta_s * A (S <= 0, decreasing) and a reference
    m = S_last / 2 (the middle of its range):
        h_t = exp(S_t - m) * ( sum_{s<=t} exp(m - S_s) * delta_s B_s u_s  +  exp(m) * h_0 )
    Each factor is bounded by exp(R/2) (R = spread of S in the chunk), so nothing overflows; the product
    restores exp(S_t - S_s) <= 1. Deviation from the reference: one step's log-decay is clamped at
    -LOG_DECAY_CLAMP (a decay below 4e-18, invisible in float32).
    """
    b, d, l = u.shape
    g, n = B.shape[1], A.shape[1]
    hd = d // g
    T = _chunk_length(delta, A)
    clamp = T == 1  # only a single-token chunk can meet a step with delta * |A| > MAX_LOG_DECAY_SPREAD
    A_ = A.view(g, hd, 1, n)  # (g, h, 1, n)
    du = (delta * u).view(b, g, hd, l)  # (b, g, h, l)
    dl = delta.view(b, g, hd, l)
    Bt = B.transpose(-1, -2).unsqueeze(2).contiguous()  # (b, g, 1, l, n)
    Ct = C.transpose(-1, -2).unsqueeze(2).contiguous()  # (b, g, 1, l, n)
    h = u.new_zeros(b, g, hd, 1, n)
    # Training on long inputs: autograd would keep ~6 tensors of (b, d, l, n) alive. Above CHECKPOINT_ELEMENTS,
    # blocks of chunks are recomputed in the backward instead (PERF_NOTES: per-chunk checkpointing), so memory
    # stays ~ one block's worth; it costs one more forward.
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))
    if grad and b * d * l * n > CHECKPOINT_ELEMENTS:
        from torch.utils.checkpoint import checkpoint

        block = max(T, (CHECKPOINT_BLOCK // T) * T)
        ys = []
        for dl_b, du_b, B_b, C_b in zip(dl.split(block, -1), du.split(block, -1), Bt.split(block, -2), Ct.split(block, -2)):
            y_b, h = checkpoint(_chunks, dl_b, du_b, B_b, C_b, A_, h, T, clamp, use_reentrant=False)
            ys.append(y_b)
        y = torch.cat(ys, dim=-1) if ys else u.new_zeros(b, g, hd, 0)
    else:
        y, _ = _chunks(dl, du, Bt, Ct, A_, h, T, clamp)
    return y.reshape(b, d, l)


def _chunks(dl: Tensor, du: Tensor, Bt: Tensor, Ct: Tensor, A_: Tensor, h0: Tensor, T: int, clamp: bool) -> tuple[Tensor, Tensor]:
    """The chunk loop of `_scan_chunked` over one block: dl, du (b, g, h, l); Bt, Ct (b, g, 1, l, n);
    A_ (g, h, 1, n); h0 (b, g, h, 1, n) -> y (b, g, h, l), last state (b, g, h, 1, n)."""
    ys = []
    for dl_c, du_c, B_c, C_c in zip(dl.split(T, -1), du.split(T, -1), Bt.split(T, -2), Ct.split(T, -2)):
        log_a = dl_c.unsqueeze(-1) * A_  # (b, g, h, T, n)
        if clamp:
            log_a = log_a.clamp(min=-LOG_DECAY_CLAMP)
        S = log_a.cumsum(dim=-2)  # (b, g, h, T, n)
        m = 0.5 * S[..., -1:, :]  # (b, g, h, 1, n)
        E = torch.exp(S - m)  # exp(S_t - m), in [exp(-R/2), exp(R/2)]
        x = du_c.unsqueeze(-1) * B_c  # (b, g, h, T, n)
        P = (x / E).cumsum(dim=-2) + torch.exp(m) * h0  # (b, g, h, T, n)
        hs = E * P  # (b, g, h, T, n)
        ys.append((hs * C_c).sum(-1))  # (b, g, h, T)
        h0 = hs[..., -1:, :]
    y = torch.cat(ys, dim=-1) if ys else dl.new_zeros(dl.shape)
    return y, h0.clone()  # a clone, not a view: a view would keep the block's temporaries alive (PERF_NOTES)
