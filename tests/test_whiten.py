"""--head-init whiten: the whitening math, the head it writes, and the CLI around it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mrl_dna.model.config import EncoderConfig, ModelConfig
from mrl_dna.errors import ConfigError
from mrl_dna.model import MrlDnaModel, load_model
from mrl_dna.model.encoder import KmerProfile
from mrl_dna.train.sources import Source
from mrl_dna.train.whiten import WhitenConfig, sample_views, whiten_head, whitening

from conftest import random_dna, run_train, tiny_config

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.fa"


def _synthetic(rng, n_src=6, per=400, p=5):
    """Sources with random centroids and one shared, strongly anisotropic within-source noise."""
    A = rng.normal(size=(p, p)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1])  # noise = z @ A.T: scales differ 50x
    cents = rng.normal(size=(n_src, p)) * 3
    X = np.concatenate([c + rng.normal(size=(per, p)) @ A.T for c in cents])
    src = np.repeat(np.arange(n_src), per)
    return X, src, np.ones(len(X), dtype=bool), A


def test_whitening_flattens_the_noise_and_orders_axes_by_variance():
    rng = np.random.default_rng(0)
    X, src, clean, A = _synthetic(rng)
    P, mu, stats = whitening(X, src, clean, D=5, shrinkage=1e-9)
    cents = np.stack([X[src == i].mean(0) for i in range(6)])
    np.testing.assert_allclose(mu, cents.mean(0))
    dev = X - cents[src]
    Sw_out = P.T @ (dev.T @ dev / len(X)) @ P
    np.testing.assert_allclose(Sw_out, np.eye(5), atol=1e-4)  # within-source noise becomes isotropic
    Z = (X - mu) @ P
    var = Z.var(0)
    assert np.all(np.diff(var) <= 1e-9)  # axes come largest-variance first (the Matryoshka prefixes)
    assert np.all(P[np.abs(P).argmax(0), np.arange(5)] > 0)  # deterministic signs
    assert stats["genomes"] == 6 and stats["width"] == 5


def test_whitening_beats_cosine_on_anisotropic_noise():
    """Nearest-centroid with cosine: raw features are dominated by the loud noise axis, whitened ones are not."""
    rng = np.random.default_rng(1)
    X, src, clean, _ = _synthetic(rng, n_src=8, per=300)
    P, mu, _ = whitening(X[::2], src[::2], clean[::2], D=5, shrinkage=0.01)  # fit on half, score the other half

    def acc(f):
        Y = f(X[1::2])
        C = np.stack([Y[src[1::2] == i].mean(0) for i in range(8)])
        Yn, Cn = Y / np.linalg.norm(Y, axis=1, keepdims=True), C / np.linalg.norm(C, axis=1, keepdims=True)
        return float(((Yn @ Cn.T).argmax(1) == src[1::2]).mean())

    raw, white = acc(lambda x: x - mu), acc(lambda x: (x - mu) @ P)
    assert white > raw + 0.1, (raw, white)


def test_whitening_errors_name_the_fix():
    X = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ConfigError, match="use --dims up to 4"):
        whitening(X, np.repeat([0, 1], 10), np.ones(20, bool), D=8, shrinkage=0.3)
    with pytest.raises(ConfigError, match="at least 2 training genomes"):
        whitening(X, np.zeros(20, int), np.ones(20, bool), D=2, shrinkage=0.3)
    with pytest.raises(ConfigError, match="must be > 0"):
        WhitenConfig(shrinkage=0)


def _sources(rng, n=3, length=3000):
    from mrl_dna.dna import encode

    return [Source(f"s{i}", i, [encode(random_dna(rng, length))]) for i in range(n)]


def test_short_sources_give_views_by_their_length():
    """A source shorter than cfg.windows windows is not over-weighted: a 600 bp record has 3 windows of 256."""
    from mrl_dna.dna import encode

    rng = np.random.default_rng(5)
    srcs = _sources(rng, n=2) + [Source("short", 2, [encode(random_dna(rng, 600))])]
    seqs, src, clean = sample_views(srcs, 256, WhitenConfig(windows=12, mutants=6))
    assert [int((clean & (src == i)).sum()) for i in range(3)] == [12, 12, 3]
    assert [int((~clean & (src == i)).sum()) for i in range(3)] == [6, 6, 2]  # ceil(6 * 3 / 12)


def test_whiten_head_writes_the_kmer_map_and_is_deterministic():
    torch.manual_seed(0)
    model = MrlDnaModel(tiny_config()).eval()  # kmer_features=2: 10 canonical 2-mers, head 16 wide
    srcs = _sources(np.random.default_rng(2))
    cfg = WhitenConfig(windows=12, mutants=12)
    seqs, src, clean = sample_views(srcs, 256, cfg)
    assert len(seqs) == 72 and clean.sum() == 36 and all(len(s) <= 256 for s in seqs)
    with pytest.raises(ConfigError, match="use --dims up to 10"):
        whiten_head(model, srcs, 256, cfg)  # 16 outputs from 10 k-mer features is impossible
    model = MrlDnaModel(tiny_config(matryoshka_dims=(4, 8))).eval()
    stats = whiten_head(model, srcs, 256, cfg)
    assert stats["features"] == "k-mer block" and stats["width"] == 10
    W = model.head.weight.detach()
    d_model = model.config.encoder.d_model
    assert torch.all(W[:, :d_model] == 0) and torch.all(W[:, d_model:].abs().sum(1) > 0)  # only the k-mer block
    again = MrlDnaModel(tiny_config(matryoshka_dims=(4, 8))).eval()
    whiten_head(again, srcs, 256, cfg)
    assert torch.equal(again.head.weight, model.head.weight) and torch.equal(again.head.bias, model.head.bias)
    # the centroid of the sources' clean windows maps to ~0: the head is centred on the training genomes
    from mrl_dna.train.whiten import window_features

    X = window_features(model, [s for s, c in zip(seqs, clean) if c], torch.device("cpu"), 16)
    y = model.head(torch.from_numpy(X).float()).detach().numpy()
    np.testing.assert_allclose(np.stack([y[i * 12:(i + 1) * 12].mean(0) for i in range(3)]).mean(0), 0, atol=1e-4)


def test_whiten_head_needs_a_linear_head():
    model = MrlDnaModel(tiny_config(head_hidden=32, matryoshka_dims=(4, 8))).eval()
    with pytest.raises(ConfigError, match="needs a linear head: add --head-hidden 0"):
        whiten_head(model, _sources(np.random.default_rng(3)), 256, WhitenConfig(windows=4, mutants=0))


@pytest.mark.parametrize("transform", ["sqrt", "centered"])
def test_kmer_transforms_match_numpy(transform):
    from mrl_dna.kmer import kmer_counts

    rng = np.random.default_rng(4)
    tok = torch.from_numpy(rng.integers(7, 11, size=(2, 300)).astype(np.int64))
    lengths = torch.tensor([300, 120])
    tok[1, 120:] = 4  # PAD past the row's length, as the pipeline pads
    got = KmerProfile(3, transform)(tok, lengths)
    for i, n in enumerate(lengths.tolist()):
        f = kmer_counts(tok[i, :n].numpy().astype(np.uint8), 3)
        f = f / f.sum() * 32
        np.testing.assert_allclose(got[i].numpy(), (np.sqrt(f) if transform == "sqrt" else f) - 1, atol=1e-5)


def test_configs_without_kmer_transform_load_as_centered():
    d = ModelConfig().to_dict()
    assert d["encoder"]["kmer_transform"] == "sqrt"  # new models
    del d["encoder"]["kmer_transform"]
    assert ModelConfig.from_dict(d).encoder.kmer_transform == "centered"  # files written before the field
    with pytest.raises(ConfigError, match="kmer_transform='log' must be one of sqrt, centered"):
        EncoderConfig(kmer_transform="log")


TINY = ["--batch-size", "8", "--warmup", "1", "--device", "cpu", "--cosent-weight", "0",
        "--whiten-windows", "8", "-q"]


def test_cli_head_init_whiten_fresh_and_from_init(tmp_path, capsys):
    torch.set_num_threads(1)
    first = tmp_path / "first"
    code, err = run_train([str(SAMPLE), "-o", str(first), "--steps", "2", "--d-model", "16", "--n-layer", "1",
                     "--window", "256", "--dims", "8,16", "--head-init", "whiten", *TINY], capsys)
    assert code == 0, err
    m = load_model(first)
    assert m.config.head_hidden == 0 and m.config.encoder.kmer_transform == "sqrt"
    assert "--head-init whiten" in (first / "README.md").read_text()
    # an MLP-head model with centered k-mers, re-headed: encoder kept, new linear head, sqrt k-mers
    mlp = tmp_path / "mlp"
    assert run_train([str(SAMPLE), "-o", str(mlp), "--steps", "1", "--d-model", "16", "--n-layer", "1", "--dims", "8,16",
                "--window", "256", "--kmer-transform", "centered", *TINY], capsys)[0] == 0
    second = tmp_path / "second"
    code, err = run_train([str(SAMPLE), "-o", str(second), "--init", str(mlp), "--head-init", "whiten", "--kmer-transform",
                     "sqrt", "--freeze-backbone", "--dims", "4,8,32", "--steps", "1", *TINY], capsys)
    assert code == 0, err
    a, b = load_model(mlp), load_model(second)
    assert b.config.head_hidden == 0 and b.config.matryoshka_dims == (4, 8, 32)
    assert b.config.encoder.kmer_transform == "sqrt" and a.config.encoder.kmer_transform == "centered"
    for k, v in a.encoder.state_dict().items():
        assert torch.equal(v, b.encoder.state_dict()[k]), k  # frozen backbone: the encoder is the init's
    cfg = json.loads((second / "config.json").read_text())
    assert cfg["encoder"]["kmer_transform"] == "sqrt"


def test_cli_head_init_whiten_errors(tmp_path, capsys):
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "a"), "--head-init", "whiten", "--head-hidden", "64", *TINY], capsys)
    assert code == 1 and "--head-init whiten starts a linear head; drop --head-hidden 64" in err
    first = tmp_path / "first"
    assert run_train([str(SAMPLE), "-o", str(first), "--steps", "1", "--d-model", "16", "--n-layer", "1", "--dims", "8,16",
                "--window", "256", *TINY], capsys)[0] == 0
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "b"), "--init", str(first), "--kmer-transform", "sqrt", *TINY], capsys)
    assert code == 1 and "--kmer-transform conflicts with --init" in err
