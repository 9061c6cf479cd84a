"""The Python API (mrl_dna/api.py): encode == what embed stores, bit for bit; dims; inputs; read_embeddings;
and a cheap `import mrl_dna`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import mrl_dna
from mrl_dna import dna
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.fasta import read_fasta
from mrl_dna.vectors import truncate_normalize

from conftest import REPO, random_dna


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return mrl_dna.load_model(tiny_model_dir)


def _seqs(path):
    return [dna.decode(r.tokens) for r in read_fasta([path])]


def test_encode_equals_what_embed_stores_bit_for_bit(tmp_path, cli, model, tiny_model_dir, small_fasta):
    out = tmp_path / "e.h5"
    code, _, err = cli("embed", small_fasta, "-o", out, "-m", tiny_model_dir, "-q")
    assert code == 0, err
    ids, stored = mrl_dna.read_embeddings(out)
    assert ids == ["a", "b", "c", "d", "e"]
    X = model.encode(_seqs(small_fasta))
    assert X.dtype == np.float32 and X.shape == (5, model.dim)
    assert np.array_equal(X, stored)  # bitwise: same pipeline, same batch shapes, same thread count
    for k in model.matryoshka_dims[:-1]:
        assert np.array_equal(model.encode(_seqs(small_fasta), dim=k), mrl_dna.read_embeddings(out, dim=k)[1])


def test_encode_batch_size_is_embeds_batch_tokens(tmp_path, cli, model, tiny_model_dir, small_fasta):
    out = tmp_path / "e.h5"
    assert cli("embed", small_fasta, "-o", out, "-m", tiny_model_dir, "-q", "--batch-tokens", 3 * 256)[0] == 0
    assert np.array_equal(model.encode(_seqs(small_fasta), batch_size=3), mrl_dna.read_embeddings(out)[1])


def test_rows_are_unit_and_prefixes_nest(model):
    rng = np.random.default_rng(3)
    seqs = [random_dna(rng, n) for n in (50, 700, 1500)]
    full = model.encode(seqs)
    np.testing.assert_allclose(np.linalg.norm(full, axis=1), 1, rtol=1e-6)
    for k in model.matryoshka_dims[:-1]:
        assert np.array_equal(model.encode(seqs, dim=k), truncate_normalize(full, k))
    assert np.array_equal(model.encode(seqs, dim=model.dim), full)  # the full width as stored, not renormalised


def test_reverse_complement_gives_the_same_vector(model):
    seq = random_dna(np.random.default_rng(5), 1200)
    rc = dna.decode(dna.revcomp(dna.encode(seq)))
    a, b = model.encode([seq, rc])
    assert float(a @ b) >= 0.99999


def test_inputs_str_bytes_seqrecord_lowercase(model):
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    seq = random_dna(np.random.default_rng(9), 600)
    one = model.encode(seq)
    assert one.shape == (1, model.dim)  # a str is one sequence, not a list of letters
    many = model.encode([seq.lower(), seq.encode(), Seq(seq), SeqRecord(Seq(seq), id="x"), seq[:300] + "\n" + seq[300:]])
    assert all(np.array_equal(row, one[0]) for row in many)
    assert np.array_equal(model.encode(SeqRecord(Seq(seq), id="x")), one)
    assert model.encode([]).shape == (0, model.dim)


def test_empty_and_all_n_are_zero_rows(model):
    X = model.encode(["", "N" * 500, "ACGT" * 100])
    assert not X[:2].any() and np.linalg.norm(X[2]) == pytest.approx(1, rel=1e-6)


def test_bad_input_and_dim_are_clear_errors(model):
    with pytest.raises(InputError, match=r"sequence 1 \(seq1\), position 3: 'Q' is not a DNA base"):
        model.encode(["ACGT", "ACQT"])
    with pytest.raises(InputError, match="sequence 0 is a int"):
        model.encode([5])
    with pytest.raises(ConfigError, match=r"dim 1000 is outside 1\.\.16"):
        model.encode(["ACGT"], dim=1000)
    with pytest.raises(ConfigError, match="batch_size=0"):
        model.encode(["ACGT"], batch_size=0)


def test_encode_refuses_window_0_and_a_bool_dim(model):
    """Issue 22: window=0 silently used the model's window (embed --window 0 is refused) and dim=True gave a
    (1, 1) array (True is 1); counts are whole numbers >= 1 or None, as embed's options."""
    with pytest.raises(ConfigError, match=r"window=0 must be >= 1 \(bp\); None gives the default"):
        model.encode(["ACGT"], window=0)
    with pytest.raises(ConfigError, match=r"stride=0 must be >= 1"):
        model.encode(["ACGT"], stride=0)
    with pytest.raises(ConfigError, match=r"dim=True is not a whole number \(a prefix width\)"):
        model.encode(["ACGT"], dim=True)
    with pytest.raises(ConfigError, match=r"batch_size=2.5 is not a whole number"):
        model.encode(["ACGT"], batch_size=2.5)
    assert model.encode(["ACGT"], dim=np.int64(8)).shape == (1, 8)


def test_a_non_ascii_character_is_named_as_given(model):
    """encode("ACGTé") named '?' (the ASCII stand-in it was read as) as the bad character."""
    with pytest.raises(InputError, match=r"sequence 0 \(seq0\), position 5: 'é' is not a DNA base"):
        model.encode("ACGTé")
    with pytest.raises(InputError, match=r"sequence 1 \(seq1\), position 5: '😀' is not a DNA base"):
        model.encode(["ACGT", "AC G\nT😀A"])  # whitespace is skipped, positions count bases
    with pytest.raises(InputError, match=r"position 4: the byte 0xc3 is not a DNA base"):
        model.encode(b"ACG\xc3\xa9")


def test_default_model_loads_and_says_what_it_is():
    m = mrl_dna.load_model()
    assert m.info.kind == "mrl-dna" and m.directory.name == "default_model"
    assert "mrl_dna.Model(" in repr(m)


def test_import_is_cheap_and_loads_torch_only_on_use():
    code = ("import sys, mrl_dna; heavy = {'torch', 'transformers', 'h5py'} & set(sys.modules); "
            "assert not heavy, heavy; mrl_dna.load_model; assert 'torch' not in sys.modules; "  # names load lazily
            "mrl_dna.load_model(); assert 'torch' in sys.modules; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.stdout.strip() == "ok", r.stderr
