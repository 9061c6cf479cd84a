"""scripts/pca_rotate_head.py: the rotation is orthogonal, orders axes by variance, and leaves full-dim
cosines of the model unchanged."""

from __future__ import annotations

import importlib.util

import numpy as np
import torch

from conftest import REPO, random_dna
from mrl_dna import dna

spec = importlib.util.spec_from_file_location("pca_rotate_head", REPO / "scripts" / "pca_rotate_head.py")
prh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prh)


def test_rotation_is_orthogonal_and_sorted_by_variance():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(500, 6, generator=g) * torch.tensor([0.1, 3.0, 1.0, 0.5, 2.0, 0.2])
    R = prh.pca_rotation(y)
    torch.testing.assert_close(R @ R.T, torch.eye(6), atol=1e-5, rtol=0)
    var = ((y - y.mean(0)) @ R.T).var(0)
    assert (var[:-1] >= var[1:] - 1e-5).all()


def test_rotating_the_head_keeps_full_dim_cosines(tiny_model):
    import copy

    model = copy.deepcopy(tiny_model)
    rng = np.random.default_rng(0)
    wins = [dna.encode(random_dna(rng, 256)) for _ in range(40)]
    y = prh.head_outputs(model, wins)
    R = prh.pca_rotation(y)
    last = model.head[-1] if isinstance(model.head, torch.nn.Sequential) else model.head
    with torch.no_grad():
        last.weight.copy_(R @ last.weight)
        last.bias.copy_(R @ last.bias)
    y2 = prh.head_outputs(model, wins)
    torch.testing.assert_close(y2 @ y2.T, y @ y.T, atol=1e-5, rtol=0)
    assert not torch.allclose(y2, y)  # the prefixes did change
