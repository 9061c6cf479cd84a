"""Official Caduceus checkpoints: our forward pass against arrays made with the official code, RC invariance
of the embedding, padding independence, and config/weights validation.

Fixtures: ../shared/fixtures/caduceus/{ps_small,ph_small} (see their README.md); env MRL_DNA_SHARED points to
`shared` elsewhere. Reached in float32: max abs error 1.7e-6 (hidden), 6e-7 (logits).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mrl_dna import dna
from mrl_dna.errors import ModelError
from mrl_dna.model import model_type
from mrl_dna.model.caduceus import CaduceusEmbedder


def _fixtures() -> Path | None:
    for root in (Path(__file__).resolve().parents[2] / "shared", Path(os.environ.get("MRL_DNA_SHARED", "/nonexistent"))):
        if (root / "fixtures" / "caduceus" / "ps_small" / "model.safetensors").is_file():
            return root / "fixtures" / "caduceus"
    return None


FIXTURES = _fixtures()
pytestmark = pytest.mark.skipif(
    FIXTURES is None, reason="Caduceus fixtures absent: need ../shared/fixtures/caduceus (or MRL_DNA_SHARED=<shared dir>)"
)
ATOL = 1e-4  # the fixtures' README: a float32 run differs from their float64 arrays by ~2e-6


@pytest.fixture(scope="module", params=["ps_small", "ph_small"])
def fixture_dir(request) -> Path:
    return FIXTURES / request.param


@pytest.fixture(scope="module")
def model(fixture_dir) -> CaduceusEmbedder:
    return CaduceusEmbedder.from_pretrained(fixture_dir)


def arr(fixture_dir: Path, name: str) -> torch.Tensor:
    return torch.from_numpy(np.load(fixture_dir / f"{name}.npy"))


@pytest.fixture(scope="module")
def outputs(model, fixture_dir) -> dict[str, torch.Tensor]:
    """Our hidden states and logits for the fixture's inputs, computed once per model."""
    ids, ids_rc = arr(fixture_dir, "input_ids"), arr(fixture_dir, "input_ids_rc")
    with torch.no_grad():
        hidden, hidden_rc = model.backbone(torch.cat([ids, ids_rc])).split(ids.shape[0])
        return {"hidden": hidden, "hidden_rc": hidden_rc, "logits": model.backbone.lm_logits(hidden)}


def test_reproduces_official_hidden_states_and_logits(outputs, fixture_dir):
    for name, value in outputs.items():
        want = arr(fixture_dir, name)
        assert value.shape == want.shape and value.dtype == torch.float32, name
        err = (value - want).abs().max().item()
        assert err < ATOL, f"{fixture_dir.name} {name}: max abs error {err:.3g}"


def test_logits_method_equals_head_on_hidden(model, fixture_dir, outputs):
    ids = arr(fixture_dir, "input_ids")[:1, :50]
    with torch.no_grad():
        torch.testing.assert_close(model.logits(ids), model.backbone.lm_logits(model.backbone(ids)))


def test_ps_hidden_state_is_rc_equivariant(model, outputs):
    if not model.cfg.rcps:
        pytest.skip("RC equivariance of the hidden state holds for PS (rcps) models only")
    torch.testing.assert_close(outputs["hidden_rc"], outputs["hidden"].flip(1, 2), rtol=0, atol=1e-5)


def test_embedding_is_rc_invariant(model, fixture_dir):
    ids, ids_rc = arr(fixture_dir, "input_ids"), arr(fixture_dir, "input_ids_rc")
    lengths = torch.full((ids.shape[0],), ids.shape[1])
    with torch.no_grad():
        v, v_rc = model.window_vectors(ids, lengths), model.window_vectors(ids_rc, lengths)
    assert v.shape == (3, model.cfg.d_model)
    torch.testing.assert_close(v_rc, v, rtol=0, atol=1e-6)
    # the definition: PS (fwd half + channel-flipped RC half) / 2 averaged over tokens; Ph mean of h(x) and h(rc x)
    h = arr(fixture_dir, "hidden").mean(1)
    d = model.cfg.d_model
    want = 0.5 * (h[:, :d] + h[:, d:].flip(-1)) if model.cfg.rcps else 0.5 * (h + arr(fixture_dir, "hidden_rc").mean(1))
    torch.testing.assert_close(v, want, rtol=0, atol=ATOL)


def test_window_vectors_ignore_padding_and_batch_company(model, fixture_dir):
    ids = arr(fixture_dir, "input_ids")[:, :90]
    lengths = torch.tensor([90, 50, 31])
    padded = ids.clone()
    for row, n in enumerate(lengths.tolist()):
        padded[row, n:] = dna.PAD
    with torch.no_grad():
        together = model.window_vectors(padded, lengths)
        alone = [model.window_vectors(ids[row : row + 1, :n], torch.tensor([n])) for row, n in enumerate(lengths.tolist())]
        longer = model.window_vectors(torch.cat([padded, torch.full((3, 10), dna.PAD)], dim=1), lengths)
        empty = model.window_vectors(padded[:1], torch.tensor([0]))
    torch.testing.assert_close(together, torch.cat(alone), rtol=0, atol=1e-6)
    torch.testing.assert_close(longer, together, rtol=0, atol=1e-6)
    assert torch.equal(empty, torch.zeros(1, model.cfg.d_model))


def test_record_vectors_are_length_weighted_and_normalised(model):
    win = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    out = model.record_vectors(win, torch.tensor([300, 100, 5]), torch.tensor([0, 0, 1]), 3)
    torch.testing.assert_close(out[0], torch.nn.functional.normalize(torch.tensor([3.0, 1.0]), dim=0))
    torch.testing.assert_close(out[1], torch.tensor([0.6, 0.8]))
    assert torch.equal(out[2], torch.zeros(2))  # a record without windows stays zero
    torch.testing.assert_close(model.window_outputs(win).norm(dim=-1), torch.ones(3))


def test_info_and_directory_detection(model, fixture_dir):
    info = model.info
    assert info.kind == "caduceus" and info.pooling == "mean" and info.name == fixture_dir.name
    assert info.dim == 32 and tuple(info.matryoshka_dims) == (32,) and info.window == info.window_stride == 1024
    assert info.weights_hash == hashlib.sha256((fixture_dir / "model.safetensors").read_bytes()).hexdigest()
    assert model_type(fixture_dir) == "caduceus"
    with pytest.raises(ModelError, match="does not exist"):
        model_type(fixture_dir / "nope")


def test_backbone_module_trains_and_freezes(model, fixture_dir):
    ids = arr(fixture_dir, "input_ids")[:1, :40]
    params = list(model.backbone_module.parameters())
    assert params and all(p.requires_grad for p in params)
    model.window_vectors(ids, torch.tensor([40])).sum().backward()
    assert all(p.grad is not None for p in params)
    model.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------- bad inputs


def _copy(tmp_path: Path, name: str = "ps_small") -> Path:
    dst = tmp_path / name
    shutil.copytree(FIXTURES / name, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def _edit_config(directory: Path, **changes) -> None:
    cfg = json.loads((directory / "config.json").read_text())
    for key, value in changes.items():
        if value is ...:
            cfg.pop(key)
        else:
            cfg[key] = value
    (directory / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"bidirectional_strategy": "concat"}, "bidirectional_strategy='concat' is unknown"),
        ({"complement_map": ...}, "rcps=true but no complement_map"),
        ({"d_model": 48}, "d_model=48"),
        ({"model_type": "mamba"}, "model_type='mamba' is not 'caduceus'"),
        ({"hidden_act": "gelu"}, "field 'hidden_act' is unknown"),
        ({"ssm_cfg": {"d_state": 16, "headdim": 64}}, "ssm_cfg field 'headdim'"),
        ({"ssm_cfg": {"d_state": 8}}, "d_state=8"),
        ({"n_layer": 3}, "lacks tensors caduceus.backbone.layers.2"),
        ({"n_layer": 1}, r"tensor caduceus.backbone.layers.1.mixer.* is not part of a Caduceus backbone"),
        ({"rcps": False}, "lacks tensors caduceus.backbone.embeddings.word_embeddings.weight"),
        ({"bidirectional_weight_tie": False}, "bidirectional_weight_tie=False is not supported"),
        ({"complement_map": {"0": 0, "1": 1, "7": 7}}, "complement_map keys"),
        ({"vocab_size": 17}, "vocab_size=24"),
    ],
)
def test_bad_configs_raise_model_error_naming_the_field(tmp_path, changes, message):
    directory = _copy(tmp_path)
    _edit_config(directory, **changes)
    with pytest.raises(ModelError, match=message):
        CaduceusEmbedder.from_pretrained(directory)


def test_missing_tensor_and_corrupt_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    directory = _copy(tmp_path)
    tensors = load_file(directory / "model.safetensors")
    del tensors["caduceus.backbone.layers.1.norm.weight"]
    save_file(tensors, directory / "model.safetensors")
    with pytest.raises(ModelError, match="lacks tensors caduceus.backbone.layers.1.norm.weight"):
        CaduceusEmbedder.from_pretrained(directory)
    (directory / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="cannot be read as safetensors"):
        CaduceusEmbedder.from_pretrained(directory)
    (directory / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="needs config.json and model.safetensors"):
        CaduceusEmbedder.from_pretrained(directory)
