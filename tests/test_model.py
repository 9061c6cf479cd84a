"""Encoder, scan, pooling and model files: properties that must hold for any weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrl_dna import dna
from mrl_dna.model.config import ModelConfig, Pooling
from mrl_dna.errors import ModelError
from mrl_dna.model import CaduceusMrlModel, MrlDnaModel, load_model
from mrl_dna.model.caduceus_mrl import CaduceusMrlConfig
from mrl_dna.model.encoder import revcomp_tokens
from mrl_dna.model.pooling import WindowPooling

from conftest import random_windows, tiny_config


@pytest.mark.parametrize("mixer_pooling", [Pooling.mean, Pooling.attention])
def test_window_and_record_vectors_are_rc_invariant(mixer_pooling):
    torch.manual_seed(1)
    model = MrlDnaModel(tiny_config(pooling=mixer_pooling)).eval()
    tok, lengths = random_windows(np.random.default_rng(2), [256, 200, 37, 9])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        w_rc = model.window_vectors(revcomp_tokens(tok, lengths), lengths)
        assert F.cosine_similarity(w, w_rc).min() >= 0.99999
        seg = torch.tensor([0, 0, 1, 1])
        r = model.record_vectors(w, lengths, seg, 2)
        r_rc = model.record_vectors(w_rc, lengths, seg, 2)
    assert F.cosine_similarity(r, r_rc).min() >= 0.99999


def test_window_vector_does_not_depend_on_padding_or_batch(tiny_model):
    tok, lengths = random_windows(np.random.default_rng(3), [256, 100, 31, 256])
    with torch.no_grad():
        batch = tiny_model.window_vectors(tok, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = tiny_model.window_vectors(tok[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(alone[0], batch[i], rtol=1e-5, atol=1e-6)


def test_record_vectors_are_unit_and_nested_prefixes_normalise(tiny_model):
    tok, lengths = random_windows(np.random.default_rng(4), [256, 256, 120])
    with torch.no_grad():
        r = tiny_model.record_vectors(tiny_model.window_vectors(tok, lengths), lengths, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(r.norm(dim=-1), torch.ones(2))
    assert r.shape == (2, tiny_model.config.dim)


def test_attention_pooling_starts_as_length_weighted_mean():
    win = torch.randn(5, 16)
    lengths = torch.tensor([256, 256, 10, 256, 100])
    seg = torch.tensor([0, 0, 0, 1, 1])
    mean = WindowPooling(Pooling.mean, 16)(win, lengths, seg, 2)
    att = WindowPooling(Pooling.attention, 16)(win, lengths, seg, 2)
    torch.testing.assert_close(att, mean)
    expected0 = (win[:3] * lengths[:3, None]).sum(0) / lengths[:3].sum()
    torch.testing.assert_close(mean[0], expected0)


def test_forward_on_runs_matches_record_vectors(tiny_model):
    tok, lengths = random_windows(np.random.default_rng(5), [256, 256, 256, 80])
    runs = torch.full((2, 2, 256), dna.PAD, dtype=torch.long)
    runs[0, 0], runs[0, 1], runs[1, 0], runs[1, 1, :80] = tok[0], tok[1], tok[2], tok[3, :80]
    run_len = torch.tensor([[256, 256], [256, 80]])
    with torch.no_grad():
        out = F.normalize(tiny_model(runs, run_len), dim=-1)
        ref = tiny_model.record_vectors(tiny_model.window_vectors(tok, lengths), lengths, torch.tensor([0, 0, 1, 1]), 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_is_exact(tmp_path, tiny_model):
    tiny_model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.config == tiny_model.config
    assert loaded.weights_hash() == tiny_model.weights_hash()
    tok, lengths = random_windows(np.random.default_rng(6), [256, 99])
    with torch.no_grad():
        assert torch.equal(loaded.window_vectors(tok, lengths), tiny_model.window_vectors(tok, lengths))
    assert (tmp_path / "README.md").read_text().startswith("# tiny")


def test_hash_changes_with_weights(tiny_model):
    other = MrlDnaModel(tiny_model.config)
    assert other.weights_hash() != tiny_model.weights_hash()


def tiny_caduceus_mrl() -> CaduceusMrlModel:
    """A caduceus-mrl model with random weights: a 1-layer, 8-wide Caduceus-PS backbone (no checkpoint needed)."""
    cad = {"model_type": "caduceus", "d_model": 8, "n_layer": 1, "vocab_size": 16, "rcps": True, "bidirectional": True,
           "bidirectional_strategy": "add", "bidirectional_weight_tie": True, "fused_add_norm": True, "rms_norm": True,
           "ssm_cfg": {"d_state": 4, "expand": 2, "d_conv": 4}, "pad_vocab_size_multiple": 8,
           "complement_map": {str(i): c for i, c in enumerate([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11, 12, 13, 14, 15])}}
    return CaduceusMrlModel(CaduceusMrlConfig(caduceus=cad, matryoshka_dims=(4, 8), head_hidden=0, window=64,
                                              window_stride=64))


def other_weights(d: Path) -> None:
    """model.safetensors of another model class: tensors that are not the config's."""
    from safetensors.torch import save_file
    save_file({"head.weight": torch.zeros(3, 3)}, str(d / "model.safetensors"))


@pytest.mark.parametrize("kind", ["mrl-dna", "caduceus-mrl"])
@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 20), "corrupt or truncated"),
        (other_weights, "does not match its config.json"),
        (lambda d: (d / "config.json").write_text("{not json"), "is not valid JSON"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "holds a JSON list, not an object"),
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text(
            (d / "config.json").read_text().replace('"name"', '"bogus": 1, "name"')), "does not know"),
    ],
)
def test_damaged_model_dirs_raise_model_error(tmp_path, tiny_model, kind, damage, fragment):
    """Issue 23: caduceus-mrl directories were read by a second copy of from_pretrained that skipped these
    checks (a damaged file was one vague line, a JSON list an internal error); both classes share one now."""
    (tiny_model if kind == "mrl-dna" else tiny_caduceus_mrl()).save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(ModelError, match=fragment):
        load_model(tmp_path)


def test_caduceus_mrl_round_trip_keeps_weights_and_identity(tmp_path):
    model = tiny_caduceus_mrl()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, CaduceusMrlModel) and loaded.info == model.info
    assert loaded.info.kind == "caduceus-mrl" and loaded.info.matryoshka_dims == (4, 8)


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_config_round_trip_and_validation():
    c = ModelConfig()
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(Exception, match="strictly increasing"):
        ModelConfig(matryoshka_dims=(16, 8))


def test_hub_name_loads_only_from_the_local_cache(tmp_path, tiny_model, monkeypatch):
    snap = tmp_path / "hub" / "models--org--tiny" / "snapshots" / "abc123"
    tiny_model.save_pretrained(snap)
    (tmp_path / "hub" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--tiny" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # 'org/tiny' is not a local path here
    assert load_model("org/tiny").weights_hash() == tiny_model.weights_hash()
    with pytest.raises(ModelError, match="not in the local Hugging Face cache; mrl-dna never downloads"):
        load_model("org/absent")


