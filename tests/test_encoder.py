"""mrl_dna/model/encoder.py: stem, convs, RC and padding invariance of window vectors, k-mer and pooled features."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrl_dna import dna
from mrl_dna.model.config import EncoderConfig, ModelConfig, Patch
from mrl_dna.errors import ConfigError
from mrl_dna.model import MrlDnaModel
from mrl_dna.model.encoder import Stem, flip_valid, revcomp_tokens

from conftest import random_windows, rel_err, tiny_config


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
        assert rel_err(got, want) < 1e-6


def test_conv1d_channels_last_equals_conv1d():
    from mrl_dna.model.encoder import _conv1d_channels_last

    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3)  # the mixer's causal depthwise conv
    x = torch.randn(2, 9, 6)
    with torch.no_grad():
        want = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
        assert rel_err(_conv1d_channels_last(conv, x), want) < 1e-6


def test_flip_valid_flips_within_length_only():
    x = torch.arange(12.0).reshape(2, 6, 1)
    out = flip_valid(x, torch.tensor([6, 4]))
    assert out[0, :, 0].tolist() == [5, 4, 3, 2, 1, 0]
    assert out[1, :, 0].tolist() == [9, 8, 7, 6, 10, 11]


def test_revcomp_tokens_matches_numpy(rng=np.random.default_rng(0)):
    seq = rng.choice([7, 8, 9, 10, 11], size=50).astype(np.uint8)
    t = torch.from_numpy(seq.astype(np.int64))[None]
    assert revcomp_tokens(t, torch.tensor([50]))[0].numpy().tolist() == dna.revcomp(seq).tolist()


def test_mamba1_mixer_is_rc_invariant_and_padding_independent():
    from mrl_dna.model.config import EncoderConfig, Mixer

    torch.manual_seed(3)
    enc = EncoderConfig(stride=8, stem_channels=8, d_model=16, n_layer=1, d_state=4, mixer=Mixer.mamba1)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    tok, lengths = random_windows(np.random.default_rng(8), [256, 90])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        assert F.cosine_similarity(w, model.window_vectors(revcomp_tokens(tok, lengths), lengths)).min() >= 0.99999
        alone = model.window_vectors(tok[1:, :90], lengths[1:])
    torch.testing.assert_close(alone[0], w[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 4, 6])
def test_kmer_features_equal_the_numpy_profile_and_ignore_padding(k):
    from mrl_dna import dna
    from mrl_dna.kmer import kmer_counts, n_canonical
    from mrl_dna.model.encoder import KmerProfile

    rng = np.random.default_rng(9)
    tok, lengths = random_windows(rng, [300, 77, 3, 40])
    tok[0, 50:53] = dna.N  # k-mers that touch an N are skipped
    tok[3, 5:40] = dna.N  # a row with no full k-mer of bases at all for k = 6
    tok[3, 0] = dna.N
    got = KmerProfile(k, "centered")(tok, lengths)
    K = n_canonical(k)
    for i, n in enumerate(lengths.tolist()):
        c = kmer_counts(tok[i, :n].numpy().astype(np.uint8), k)
        ref = c / c.sum() * K - 1 if c.sum() else np.zeros(K)
        np.testing.assert_allclose(got[i].numpy(), ref, atol=1e-5)


def test_pooled_features_are_rc_invariant_and_padding_independent():
    torch.manual_seed(5)
    enc = dataclasses.replace(tiny_config().encoder, pool_features=24)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    assert model.config.encoder.out_dim == 24 + enc.n_kmer_features
    tok, lengths = random_windows(np.random.default_rng(6), [256, 90, 17])
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
    tok, lengths = random_windows(np.random.default_rng(7), [256, 40])
    with torch.no_grad():
        torch.testing.assert_close(model.window_vectors(tok, lengths), KmerProfile(2, enc.kmer_transform)(tok, lengths))
    with pytest.raises(ConfigError, match="needs kmer_features"):
        dataclasses.replace(enc, kmer_features=0)


def test_mean_patch_and_pool_norm_keep_rc_invariance_and_padding_independence():
    enc = dataclasses.replace(tiny_config().encoder, patch=Patch.mean, pool_features=12, pool_norm=True)
    torch.manual_seed(8)
    model = MrlDnaModel(tiny_config(encoder=enc))
    with torch.no_grad():  # give the batch norm running statistics that are not the identity
        model.train()(torch.randint(7, 11, (6, 1, 256)), torch.full((6, 1), 256))
    model.eval()
    assert model.encoder.pool_norm.running_var.ne(1).any()
    tok, lengths = random_windows(np.random.default_rng(9), [256, 90, 33])
    with torch.no_grad():
        w = model.window_vectors(tok, lengths)
        w_rc = model.window_vectors(revcomp_tokens(tok, lengths), lengths)
        alone = model.window_vectors(tok[1:2, :90], lengths[1:2])
    torch.testing.assert_close(w, w_rc, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(alone[0], w[1], rtol=1e-5, atol=1e-5)
    assert ModelConfig.from_dict(model.config.to_dict()).encoder == enc


def test_mean_patch_tokens_move_little_when_the_sequence_shifts_by_one_base():
    """The point of Patch.mean: a 1 bp shift changes a token by ~1/stride of its input, where the learned patch
    conv moves every base onto other weights."""
    torch.manual_seed(10)
    rng = np.random.default_rng(11)
    seq = torch.from_numpy(rng.integers(7, 11, size=(1, 513))).long()
    change = {}
    for patch in Patch:
        stem = Stem(dataclasses.replace(tiny_config().encoder, patch=patch))
        with torch.no_grad():
            a, b = stem(seq[:, :512]), stem(seq[:, 1:])
        change[patch] = float((a - b).norm() / a.norm())
    assert change[Patch.mean] < 0.5 * change[Patch.conv]


def test_pool_norm_booleans_of_old_config_files_load_as_batch_and_none():
    """config.json files before PoolNorm hold pool_norm true/false; they load as batch / none and write values."""
    from mrl_dna.model.config import Backbone, PoolNorm

    d = tiny_config().to_dict()
    for old, new in ((True, PoolNorm.batch), (False, PoolNorm.none)):
        d["encoder"]["pool_norm"] = old
        d["encoder"].pop("backbone", None)
        cfg = ModelConfig.from_dict(d)
        assert cfg.encoder.pool_norm == new and cfg.encoder.backbone == Backbone.bimamba
        assert cfg.to_dict()["encoder"]["pool_norm"] == new.value
    with pytest.raises(ConfigError, match="pool_norm is one of"):
        dataclasses.replace(tiny_config().encoder, pool_norm="running")


def test_layer_pool_norm_is_the_same_function_in_training_and_inference_and_per_window():
    """PoolNorm.layer: no state, no batch coupling: a window's vector in train mode, in eval mode, alone or in a
    batch is the same; its learned block has mean 0 and norm sqrt(e) whatever the encoder's scale."""
    enc = dataclasses.replace(tiny_config().encoder, patch=Patch.mean, pool_features=12, pool_norm="layer")
    torch.manual_seed(8)
    model = MrlDnaModel(tiny_config(encoder=enc))
    assert not list(model.encoder.pool_norm.state_dict())  # nothing to save, nothing that lags
    tok, lengths = random_windows(np.random.default_rng(9), [256, 90, 33])
    with torch.no_grad():
        model.train()
        train_w = model.window_vectors(tok, lengths)
        model.eval()
        w = model.window_vectors(tok, lengths)
        alone = model.window_vectors(tok[1:2, :90], lengths[1:2])
        w_rc = model.window_vectors(revcomp_tokens(tok, lengths), lengths)
        model.encoder.pool_proj.weight.mul_(1e-4)  # an encoder whose features all but vanish
        tiny = model.window_vectors(tok, lengths)
    torch.testing.assert_close(train_w, w, rtol=0, atol=0)
    torch.testing.assert_close(alone[0], w[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w, w_rc, rtol=1e-5, atol=1e-5)
    for v in (w, tiny):
        learned = v[:, :12]
        torch.testing.assert_close(learned.mean(1), torch.zeros(3), atol=1e-5, rtol=0)
        torch.testing.assert_close(learned.norm(dim=1), torch.full((3,), 12 ** 0.5), atol=1e-2, rtol=0)


def test_kmer_mlp_backbone_is_a_gelu_layer_on_the_kmer_profile():
    """Backbone.kmer_mlp: learned block = norm(GELU(W k)) of the window's k-mer profile k; no stem, no mixer."""
    from mrl_dna.model.encoder import KmerProfile

    enc = dataclasses.replace(tiny_config().encoder, backbone="kmer-mlp", pool_features=12, pool_norm="layer")
    torch.manual_seed(3)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    assert not hasattr(model.encoder, "stem") and enc.out_dim == 12 + enc.n_kmer_features
    tok, lengths = random_windows(np.random.default_rng(2), [256, 200])
    with torch.no_grad():
        k = KmerProfile(enc.kmer_features, enc.kmer_transform)(tok, lengths)
        want = torch.cat([F.layer_norm(F.gelu(model.encoder.kmer_mlp(k)), (12,), eps=enc.norm_eps), k], dim=-1)
        torch.testing.assert_close(model.window_vectors(tok, lengths), want)
    assert ModelConfig.from_dict(model.config.to_dict()).encoder == enc
    with pytest.raises(ConfigError, match="kmer-mlp backbone"):
        dataclasses.replace(enc, pool_features=0)


def test_trunk_autocast_runs_only_the_trunk_in_bf16_and_inference_stays_fp32():
    """train --cpu-bf16: inside trunk_autocast the stem + mixers run in bf16 and the pooled features come out
    fp32, close to the fp32 ones; outside it (every inference) the vectors are the fp32 bits, and the context
    leaves a caller's own autocast alone when it is not entered."""
    from mrl_dna.model.encoder import trunk_autocast

    enc = dataclasses.replace(tiny_config().encoder, patch=Patch.mean, pool_features=12, pool_norm="layer")
    torch.manual_seed(4)
    model = MrlDnaModel(tiny_config(encoder=enc)).eval()
    tok, lengths = random_windows(np.random.default_rng(5), [256, 256])
    with torch.no_grad():
        before = model.window_vectors(tok, lengths)
        with trunk_autocast(torch.bfloat16):
            bf16 = model.window_vectors(tok, lengths)
        after = model.window_vectors(tok, lengths)
    assert bf16.dtype == torch.float32
    assert torch.equal(before, after)
    assert rel_err(bf16, before) < 0.05 and not torch.equal(bf16, before)
