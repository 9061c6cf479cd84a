"""mrl_dna/model/scan.py: the chunked SSD scan against the sequential oracle."""

from __future__ import annotations


import pytest
import torch

from conftest import rel_err
from mrl_dna.model.scan import ssd_scan_chunked, ssd_scan_sequential


def _scan_inputs(seed, b, l, h, p, n, decay_scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=g)
    log_a = -torch.rand(b, l, h, generator=g) * decay_scale
    B = torch.randn(b, l, n, generator=g)
    C = torch.randn(b, l, n, generator=g)
    return [t.requires_grad_() for t in (x, log_a, B, C)]


@pytest.mark.parametrize("l,chunk,decay_scale", [(1, 32, 1.0), (37, 8, 0.5), (130, 32, 0.2), (96, 32, 20.0)])
def test_chunked_scan_matches_sequential_oracle(l, chunk, decay_scale):
    """float32 chunked scan vs the float32 sequential oracle: outputs and gradients within 1e-5 relative."""
    inputs = _scan_inputs(0, 2, l, 3, 4, 5, decay_scale)
    y_ref = ssd_scan_sequential(*inputs)
    y = ssd_scan_chunked(*inputs, chunk=chunk)
    assert rel_err(y, y_ref) < 1e-5
    w = torch.randn_like(y_ref)
    g_ref = torch.autograd.grad((y_ref * w).sum(), inputs)
    g = torch.autograd.grad((y * w).sum(), inputs)
    for a, b in zip(g, g_ref):
        assert rel_err(a, b) < 1e-5


@pytest.mark.parametrize("l,chunk", [(37, 8), (130, 16), (64, 64)])
def test_chunked_scan_inference_path_equals_autograd_path(l, chunk):
    """Without autograd the decay matrix is built in place: the outputs must be the very same floats."""
    inputs = _scan_inputs(1, 2, l, 3, 4, 5, 1.0)
    y_grad = ssd_scan_chunked(*inputs, chunk=chunk)
    with torch.inference_mode():
        y_inf = ssd_scan_chunked(*[t.detach() for t in inputs], chunk=chunk)
    assert torch.equal(y_inf, y_grad.detach())
