"""transformers integration (mrl_dna/hf): AutoModel loads an mrl-dna directory after `import mrl_dna` in
either import order; save_pretrained writes a directory that the hub accepts and mrl-dna loads; the vectors
are mrl-dna's, bit for bit. Official Caduceus checkpoints still load through mrl-dna."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import mrl_dna

transformers = pytest.importorskip("transformers", reason="transformers is not installed (a dependency of mrl-dna)")

from conftest import REPO, SAMPLE_FA, random_dna, shared_dir  # noqa: E402


def _seqs():
    rng = np.random.default_rng(2)
    return [random_dna(rng, n) for n in (90, 700, 2000)]


def test_automodel_loads_an_mrl_dna_directory_with_the_same_vectors(tiny_model_dir):
    """This process imported mrl_dna first (conftest), transformers after: the import hook registered."""
    model = transformers.AutoModel.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "MrlDnaHFModel" and model.config.model_type == "mrl-dna"
    assert np.array_equal(model.encode(_seqs(), dim=8), mrl_dna.load_model(tiny_model_dir).encode(_seqs(), dim=8))
    cfg = transformers.AutoConfig.from_pretrained(tiny_model_dir)
    assert cfg.matryoshka_dims == [4, 8, 16] and cfg.window == 256


def test_forward_gives_window_embeddings(tiny_model_dir):
    import torch

    model = transformers.AutoModel.from_pretrained(tiny_model_dir)
    seq = random_dna(np.random.default_rng(4), 200)
    ids = torch.full((1, 256), 4)
    ids[0, :200] = torch.from_numpy(mrl_dna.dna.encode(seq).astype(np.int64))
    with torch.no_grad():
        out = model(input_ids=ids)
    assert out.pooler_output.shape == (1, 16)
    # one window shorter than the model's window: its window embedding is the record vector
    np.testing.assert_allclose(out.pooler_output[0].numpy(), mrl_dna.load_model(tiny_model_dir).encode(seq)[0], atol=1e-6)


def test_save_pretrained_round_trip_and_hub_files(tmp_path, tiny_model_dir):
    from huggingface_hub import ModelCard
    from safetensors import safe_open

    model = transformers.AutoModel.from_pretrained(tiny_model_dir)
    out = tmp_path / "saved"
    model.save_pretrained(out)
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_type"] == "mrl-dna" and cfg["architectures"] == ["MrlDnaHFModel"]
    assert cfg["encoder"]["kmer_transform"]  # every field written, never only the non-defaults
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata()["format"] == "pt"  # what transformers and the hub expect
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "mrl-dna" and "dna" in card.data.tags
    again = mrl_dna.load_model(out)  # mrl-dna loads what transformers wrote
    orig = mrl_dna.load_model(tiny_model_dir)
    assert again.info.weights_hash == orig.info.weights_hash
    assert np.array_equal(again.encode(_seqs()), orig.encode(_seqs()))
    assert np.array_equal(transformers.AutoModel.from_pretrained(out).encode(_seqs()), orig.encode(_seqs()))


def test_from_config_builds_a_working_model(tiny_model_dir):
    cfg = transformers.AutoConfig.from_pretrained(tiny_model_dir)
    model = transformers.AutoModel.from_config(cfg)
    assert np.isfinite(model.encode(_seqs())).all()


def test_transformers_imported_first_then_mrl_dna(tiny_model_dir):
    """The other order, in a fresh interpreter: transformers' Auto classes first, then mrl_dna."""
    code = (
        "import sys\nfrom transformers import AutoConfig, AutoModel\nimport mrl_dna\n"
        f"m = AutoModel.from_pretrained({str(tiny_model_dir)!r})\n"
        "print(type(m).__name__, m.encode('ACGT' * 100).shape)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.stdout.split() == ["MrlDnaHFModel", "(1,", "16)"], r.stderr[-2000:]


def test_import_mrl_dna_does_not_import_transformers_and_vice_versa():
    code = ("import sys, mrl_dna; assert 'transformers' not in sys.modules; import transformers; "
            "assert 'mrl_dna.hf.model' not in sys.modules, 'import transformers loaded the model class (and torch)'; "
            "assert 'mrl_dna.api' not in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_official_caduceus_checkpoint_still_loads_through_mrl_dna():
    fixture = shared_dir() / "fixtures" / "caduceus" / "ps_small"
    if not fixture.is_dir():
        pytest.skip(f"{fixture} is absent (../shared)")
    m = mrl_dna.load_model(fixture)
    assert m.info.kind == "caduceus"
    X = m.encode([SAMPLE_FA.read_text().split("\n", 2)[1][:500]])
    assert X.shape == (1, m.dim) and np.isfinite(X).all()
