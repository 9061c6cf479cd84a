"""Encoder, scan, pooling and model files: properties that must hold for any weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrl_dna import dna
from mrl_dna.config import EncoderConfig, ModelConfig, Pooling
from mrl_dna.errors import ConfigError, ModelError
from mrl_dna.model import MrlDnaModel, load_model
from mrl_dna.model.encoder import Stem, flip_valid, revcomp_tokens
from mrl_dna.model.pooling import WindowPooling
from mrl_dna.model.scan import ssd_scan_chunked, ssd_scan_sequential

from conftest import tiny_config


def _scan_inputs(seed, b, l, h, p, n, decay_scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=g)
    log_a = -torch.rand(b, l, h, generator=g) * decay_scale
    B = torch.randn(b, l, n, generator=g)
    C = torch.randn(b, l, n, generator=g)
    return [t.requires_grad_() for t in (x, log_a, B, C)]


def _rel_err(a, b):
    """Norm-wise relative error ||a - b|| / ||b|| (element-wise relative error is meaningless near zero)."""
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


@pytest.mark.parametrize("l,chunk,decay_scale", [(1, 32, 1.0), (37, 8, 0.5), (130, 32, 0.2), (96, 32, 20.0)])
def test_chunked_scan_matches_sequential_oracle(l, chunk, decay_scale):
    """float32 chunked scan vs the float32 sequential oracle: outputs and gradients within 1e-5 relative."""
    inputs = _scan_inputs(0, 2, l, 3, 4, 5, decay_scale)
    y_ref = ssd_scan_sequential(*inputs)
    y = ssd_scan_chunked(*inputs, chunk=chunk)
    assert _rel_err(y, y_ref) < 1e-5
    w = torch.randn_like(y_ref)
    g_ref = torch.autograd.grad((y_ref * w).sum(), inputs)
    g = torch.autograd.grad((y * w).sum(), inputs)
    for a, b in zip(g, g_ref):
        assert _rel_err(a, b) < 1e-5


@pytest.mark.parametrize("l,chunk", [(37, 8), (130, 16), (64, 64)])
def test_chunked_scan_inference_path_equals_autograd_path(l, chunk):
    """Without autograd the decay matrix is built in place: the outputs must be the very same floats."""
    inputs = _scan_inputs(1, 2, l, 3, 4, 5, 1.0)
    y_grad = ssd_scan_chunked(*inputs, chunk=chunk)
    with torch.inference_mode():
        y_inf = ssd_scan_chunked(*[t.detach() for t in inputs], chunk=chunk)
    assert torch.equal(y_inf, y_grad.detach())


def test_stem_equals_its_convs_on_one_hot_input():
    """Stem.forward lays the convs out channels-last; it must compute nn.Conv1d(one-hot) -> GELU -> patch conv."""
    for kernel, stride, L in ((9, 16, 300), (4, 8, 37), (1, 4, 3)):  # odd and even kernels, L not a multiple
        stem = Stem(EncoderConfig(stem_kernel=kernel, stride=stride))
        tok = torch.randint(7, 12, (3, L), generator=torch.Generator().manual_seed(kernel))  # A C G T N
        tok[1, L // 2 :] = dna.PAD
        one_hot = torch.zeros(256, 4)
        one_hot[list(dna.BASES), range(4)] = 1.0
        x = one_hot[F.pad(tok, (0, (-L) % stride), value=dna.PAD)].transpose(1, 2)
        with torch.no_grad():
            want = stem.patch(F.gelu(stem.kmer(x))).transpose(1, 2)
            got = stem(tok)
        assert got.shape == want.shape
        assert _rel_err(got, want) < 1e-6


def test_conv1d_channels_last_equals_conv1d():
    from mrl_dna.model.encoder import _conv1d_channels_last

    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)  # the mixer's causal depthwise conv
    x = torch.randn(2, 9, 6)
    with torch.no_grad():
        want = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
        assert _rel_err(_conv1d_channels_last(conv, x), want) < 1e-6


def test_flip_valid_flips_within_length_only():
    x = torch.arange(12.0).reshape(2, 6, 1)
    out = flip_valid(x, torch.tensor([6, 4]))
    assert out[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 10, 11]


def test_revcomp_tokens_matches_numpy(rng=np.random.default_rng(0)):
    seq = rng.choice([7, 8, 9, 10, 11], size=50).astype(np.uint8)
    t = torch.from_numpy(seq.astype(np.int64))[None]
    assert revcomp_tokens(t, torch.tensor([50]))[0].numpy().tolist() == dna.revcomp(seq).tolist()


def _windows(rng, lengths, L=None):
    L = L or max(lengths)
    tok = np.full((len(lengths), L), dna.PAD, dtype=np.int64)
    for i, n in enumerate(lengths):
        tok[i, :n] = rng.choice([7, 8, 9, 10, 11], size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04])
    return torch.from_numpy(tok), torch.tensor(lengths)


@pytest.mark.parametrize("mixer_pooling", [Pooling.mean, Pooling.attention])
def test_window_and_record_vectors_are_rc_invariant(mixer_pooling):
    torch.manual_seed(1)
    model = MrlDnaModel(tiny_config(pooling=mixer_pooling)).eval()
    tok, lengths = _windows(np.random.default_rng(2), [256, 200, 37, 9])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        w_rc = model.window_vectors(revcomp_tokens(tok, lengths), lengths)
        assert F.cosine_similarity(w, w_rc).min() >= 0.99999
        seg = torch.tensor([0, 0, 1, 1])
        r = model.record_vectors(w, lengths, seg, 2)
        r_rc = model.record_vectors(w_rc, lengths, seg, 2)
    assert F.cosine_similarity(r, r_rc).min() >= 0.99999


def test_window_vector_does_not_depend_on_padding_or_batch(tiny_model):
    tok, lengths = _windows(np.random.default_rng(3), [256, 100, 31, 256])
    with torch.no_grad():
        batch = tiny_model.window_vectors(tok, lengths)
        for i, n in enumerate(lengths.tolist()):
            alone = tiny_model.window_vectors(tok[i : i + 1, :n], lengths[i : i + 1])
            torch.testing.assert_close(alone[0], batch[i], rtol=1e-5, atol=1e-6)


def test_record_vectors_are_unit_and_nested_prefixes_normalise(tiny_model):
    tok, lengths = _windows(np.random.default_rng(4), [256, 256, 120])
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
    tok, lengths = _windows(np.random.default_rng(5), [256, 256, 256, 80])
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
    tok, lengths = _windows(np.random.default_rng(6), [256, 99])
    with torch.no_grad():
        assert torch.equal(loaded.window_vectors(tok, lengths), tiny_model.window_vectors(tok, lengths))
    assert (tmp_path / "README.md").read_text().startswith("# tiny")


def test_hash_changes_with_weights(tiny_model):
    other = MrlDnaModel(tiny_model.config)
    assert other.weights_hash() != tiny_model.weights_hash()


@pytest.mark.parametrize(
    "damage,fragment",
    [
        (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 20), "corrupt or truncated"),
        (lambda d: (d / "config.json").write_text("{not json"), "is not valid JSON"),
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text('{"model_type": "mrl-dna", "bogus": 1}'), "does not know"),
    ],
)
def test_damaged_model_dirs_raise_model_error(tmp_path, tiny_model, damage, fragment):
    tiny_model.save_pretrained(tmp_path)
    damage(tmp_path)
    with pytest.raises(ModelError, match=fragment):
        load_model(tmp_path)


def test_missing_model_dir(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")


def test_config_round_trip_and_validation():
    c = ModelConfig()
    assert ModelConfig.from_dict(c.to_dict()) == c
    with pytest.raises(Exception, match="strictly increasing"):
        ModelConfig(matryoshka_dims=(16, 8))


def test_mamba1_mixer_is_rc_invariant_and_padding_independent():
    from mrl_dna.config import EncoderConfig, Mixer

    torch.manual_seed(3)
    enc = EncoderConfig(stride=8, stem_channels=8, d_model=16, n_layer=1, d_state=4, mixer=Mixer.mamba1)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    tok, lengths = _windows(np.random.default_rng(8), [256, 90])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        assert F.cosine_similarity(w, model.window_vectors(revcomp_tokens(tok, lengths), lengths)).min() >= 0.99999
        alone = model.window_vectors(tok[1:, :90], lengths[1:])
    torch.testing.assert_close(alone[0], w[1], rtol=1e-5, atol=1e-6)


def test_kmer_features_equal_the_numpy_profile_and_ignore_padding():
    from mrl_dna.kmer import kmer_counts
    from mrl_dna.model.encoder import KmerProfile

    rng = np.random.default_rng(9)
    tok, lengths = _windows(rng, [300, 77, 3])
    got = KmerProfile(4, "centered")(tok, lengths)
    for i, n in enumerate(lengths.tolist()):
        c = kmer_counts(tok[i, :n].numpy().astype(np.uint8), 4)
        ref = c / c.sum() * 136 - 1 if c.sum() else np.zeros(136)
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-5)


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


def test_pooled_features_are_rc_invariant_and_padding_independent():
    torch.manual_seed(5)
    enc = dataclasses.replace(tiny_config().encoder, pool_features=24)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    assert model.config.encoder.out_dim == 24 + enc.n_kmer_features
    tok, lengths = _windows(np.random.default_rng(6), [256, 90, 17])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        w_rc = model.window_vectors(revcomp_tokens(tok, lengths), lengths)
        alone = model.window_vectors(tok[1:2, :90], lengths[1:2])
    assert w.shape == (3, 24 + enc.n_kmer_features)
    torch.testing.assert_close(w, w_rc, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alone[0], w[1], rtol=1e-5, atol=1e-6)


def test_kmer_only_encoder_is_the_kmer_profile_alone():
    from mrl_dna.model.encoder import KmerProfile

    enc = dataclasses.replace(tiny_config().encoder, learned=False)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    assert not any(n.startswith(("encoder.stem", "encoder.layers")) for n in model.state_dict())
    tok, lengths = _windows(np.random.default_rng(7), [256, 40])
    with torch.no_grad():
        torch.testing.assert_close(model.window_vectors(tok, lengths), KmerProfile(2, enc.kmer_transform)(tok, lengths))
    with pytest.raises(ConfigError, match="needs kmer_features"):
        dataclasses.replace(enc, kmer_features=0)
