"""mrl_dna/model/head.py: every trainable model class runs the Matryoshka head on each window, then pools, so
a record's vector is the weighted centroid of its windows' embeddings."""

import torch
import torch.nn.functional as F
import pytest

from conftest import shared_dir, tiny_config
from mrl_dna.model.config import Pooling
from mrl_dna.model import CaduceusMrlModel, MrlDnaModel
from mrl_dna.model.head import matryoshka_head


def _models():
    torch.manual_seed(0)
    yield MrlDnaModel(tiny_config(head_hidden=32)).eval()
    yield MrlDnaModel(tiny_config(head_hidden=32, pooling=Pooling.attention)).eval()
    cad = shared_dir() / "fixtures" / "caduceus" / "ps_small"
    if (cad / "model.safetensors").is_file():
        yield CaduceusMrlModel.from_caduceus(cad, dims=(8, 16), head_hidden=32).eval()


@pytest.mark.parametrize("model", list(_models()), ids=lambda m: f"{type(m).__name__}-{m.config.pooling.value}")
def test_record_vector_is_the_pooled_head_outputs(model):
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(7, 11, (3, 96), generator=g)
    lengths = torch.tensor([96, 96, 40])
    with torch.no_grad():
        win = model.window_vectors(tokens, lengths)  # (3, d)
        segment = torch.tensor([0, 0, 1])
        rec = model.record_vectors(win, lengths, segment, 2)  # (2, D)
        one = model.window_outputs(win)  # (3, D)
        assert torch.allclose(rec[1], one[2], atol=1e-6)  # a record of one window: that window's output
        if model.config.pooling == Pooling.mean:
            want = F.normalize((model.head(win[:2]) * lengths[:2, None]).sum(0) / lengths[:2].sum(), dim=-1)
            assert torch.allclose(rec[0], want, atol=1e-6)
        z = model(tokens[:2].reshape(1, 2, 96), lengths[:2].reshape(1, 2))  # training forward: same pooling
        assert torch.allclose(F.normalize(z, dim=-1)[0], rec[0], atol=1e-5)


def test_head_shapes():
    assert isinstance(matryoshka_head(8, 0, 4), torch.nn.Linear)
    mlp = matryoshka_head(8, 16, 4)
    assert [type(m).__name__ for m in mlp] == ["Linear", "GELU", "Linear"] and mlp(torch.zeros(2, 8)).shape == (2, 4)
