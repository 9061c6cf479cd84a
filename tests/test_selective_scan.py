"""Selective scan: the chunked scan (and mamba-ssm's kernel when present) against the sequential oracle.

"Agree" means max |a - b| <= 1e-5 * max |b| in float32, for the output and for the gradient of every input
(plus 1e-9 absolute, for gradients that are exactly zero in theory, e.g. dA at length 1 from a zero state).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mrl_dna.errors import ConfigError
from mrl_dna.model import selective_scan as ss
from mrl_dna.model.selective_scan import selective_scan

RTOL = 1e-5
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def mamba_inputs(b=2, d=8, n=16, l=300, groups=None, delta_shift=0.0, seed=0):
    """Random inputs at the standard Mamba init: A = -exp(A_log), A_log = log(1..n) (perturbed), and a dt bias
    with softplus(bias) in [0.001, 0.1]; delta_shift > 0 moves the pre-softplus delta up (larger steps)."""
    g = torch.Generator().manual_seed(seed)
    A_log = torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(d, 1) + 0.1 * torch.randn(d, n, generator=g)
    dt = torch.exp(torch.rand(d, generator=g) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
    bc_shape = (b, n, l) if groups is None else (b, groups, n, l)
    return {
        "u": torch.randn(b, d, l, generator=g),
        "delta": 0.5 * torch.randn(b, d, l, generator=g) + delta_shift,
        "A": -torch.exp(A_log),
        "B": torch.randn(*bc_shape, generator=g),
        "C": torch.randn(*bc_shape, generator=g),
        "D": torch.randn(d, generator=g),
        "z": torch.randn(b, d, l, generator=g),
        "delta_bias": dt + torch.log(-torch.expm1(-dt)),  # inverse softplus, as Mamba's dt_proj.bias init
    }


def run(inputs, impl, grad=True, **kw):
    """Output and gradients (of a fixed random projection of the output) for each input tensor."""
    leaves = {k: v.detach().clone().requires_grad_(grad) for k, v in inputs.items() if v is not None}
    y = selective_scan(**leaves, delta_softplus=kw.pop("delta_softplus", True), impl=impl, **kw)
    if not grad:
        return y, {}
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype)
    (y * w).sum().backward()
    return y.detach(), {k: v.grad for k, v in leaves.items()}


def assert_agree(a: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    err = (a.double() - ref.double()).abs().max().item()
    scale = ref.double().abs().max().item()
    assert torch.isfinite(a).all(), f"{what}: non-finite values"
    assert err <= RTOL * scale + 1e-9, f"{what}: max abs error {err:.3g} > {RTOL} x max |ref| {scale:.3g}"


@pytest.mark.parametrize(
    "case",
    [
        dict(l=300),  # standard init, long-ish
        dict(l=300, groups=2),  # B, C per group of channels (b, g, n, l)
        dict(l=37, delta_shift=1.5),  # larger steps: delta ~ 1.7, max delta*|A| ~ 60 -> short chunks
        dict(l=64, delta_shift=4.0),  # very large steps: single-token chunks, per-step decay clamp
        dict(l=1),
        dict(l=5, b=1, d=3, n=4),
    ],
    ids=["std-300", "groups", "large-delta", "huge-delta", "len1", "tiny"],
)
def test_chunked_matches_sequential_outputs_and_gradients(case):
    inputs = mamba_inputs(**case)
    y_ref, g_ref = run(inputs, "sequential")
    y, g = run(inputs, "chunked")
    assert y.shape == inputs["u"].shape and y.dtype == torch.float32
    assert_agree(y, y_ref, "output")
    for name in NAMES:
        assert_agree(g[name], g_ref[name], f"grad {name}")


def test_without_optional_inputs_and_without_softplus():
    inputs = mamba_inputs(l=100)
    inputs.update(D=None, z=None, delta_bias=None)
    inputs["delta"] = F.softplus(inputs["delta"] - 4.0)  # already positive, small
    y_ref, g_ref = run(inputs, "sequential", delta_softplus=False)
    y, g = run(inputs, "chunked", delta_softplus=False)
    assert_agree(y, y_ref, "output")
    for name in ("u", "delta", "A", "B", "C"):
        assert_agree(g[name], g_ref[name], f"grad {name}")


def test_oracle_matches_the_recurrence_written_out():
    """One channel, two states, three steps, by hand: h_t = exp(dt A) h + dt B u; y = C.h + D u, gated."""
    u = torch.tensor([[[1.0, -2.0, 0.5]]])
    delta = torch.tensor([[[0.1, 0.2, 0.3]]])
    A = torch.tensor([[-1.0, -3.0]])
    B = torch.tensor([[[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]]])
    C = torch.tensor([[[1.0, 1.0, -1.0], [2.0, 0.0, 1.0]]])
    D = torch.tensor([0.7])
    z = torch.tensor([[[0.0, 1.0, -1.0]]])
    h = torch.zeros(2)
    want = []
    for t in range(3):
        h = torch.exp(delta[0, 0, t] * A[0]) * h + delta[0, 0, t] * B[0, :, t] * u[0, 0, t]
        want.append(((C[0, :, t] * h).sum() + D[0] * u[0, 0, t]) * F.silu(z[0, 0, t]))
    want = torch.stack(want).view(1, 1, 3)
    for impl in ("sequential", "chunked"):
        got = selective_scan(u, delta, A, B, C, D, z=z, impl=impl)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def test_output_dtype_follows_u_and_auto_is_chunked_on_cpu():
    inputs = mamba_inputs(l=50, d=4)
    y_auto, _ = run(inputs, "auto", grad=False)
    y_chunk, _ = run(inputs, "chunked", grad=False)
    assert torch.equal(y_auto, y_chunk)
    y64 = selective_scan(**{k: v.double() for k, v in inputs.items()}, delta_softplus=True, impl="chunked")
    assert y64.dtype == torch.float64


def test_chunk_length_respects_the_fp32_bound():
    A = -torch.arange(1, 17, dtype=torch.float32).repeat(4, 1)
    assert ss._chunk_length(torch.full((1, 4, 8), 0.099), A) == int(ss.MAX_LOG_DECAY_SPREAD / (0.099 * 16))  # standard init
    assert ss._chunk_length(torch.full((1, 4, 8), 1e-4), A) == ss.MAX_CHUNK
    assert ss._chunk_length(torch.full((1, 4, 8), 100.0), A) == 1
    # huge steps do not overflow
    y = selective_scan(torch.randn(1, 4, 20), torch.full((1, 4, 20), 500.0), A, torch.randn(1, 16, 20), torch.randn(1, 16, 20))
    assert torch.isfinite(y).all()


def test_bad_arguments_raise_config_errors():
    inputs = mamba_inputs(l=10, d=4)
    with pytest.raises(ConfigError, match="impl 'fast' is unknown"):
        selective_scan(**inputs, impl="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs CUDA tensors"):
            selective_scan(**inputs, impl="mamba_ssm")
    bad = dict(inputs, B=inputs["B"][..., :5])
    with pytest.raises(ConfigError, match="B"):
        selective_scan(**bad, impl="chunked")


@pytest.mark.skipif(
    not (torch.cuda.is_available() and ss.mamba_ssm_available()), reason="needs CUDA and mamba-ssm's selective_scan_cuda"
)
def test_mamba_ssm_kernel_matches_chunked_on_cuda():
    inputs = {k: v.cuda() for k, v in mamba_inputs(l=300).items()}
    y_ref, g_ref = run(inputs, "chunked")
    y, g = run(inputs, "mamba_ssm")
    assert_agree(y, y_ref, "output")
    for name in NAMES:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-3, atol=1e-3 * g_ref[name].abs().max().item())


def test_checkpointed_chunked_scan_gives_the_same_gradients(monkeypatch):
    """Long training inputs recompute blocks of chunks in the backward; results must not change."""
    inputs = mamba_inputs(l=300)
    y_ref, g_ref = run(inputs, "chunked")
    monkeypatch.setattr(ss, "CHECKPOINT_ELEMENTS", 0)
    monkeypatch.setattr(ss, "CHECKPOINT_BLOCK", 64)
    y, g = run(inputs, "chunked")
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    for name in NAMES:
        torch.testing.assert_close(g[name], g_ref[name], rtol=1e-6, atol=1e-6 * g_ref[name].abs().max().item())
