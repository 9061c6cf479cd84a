"""Canonical k-mer profiles (mrl_dna/kmer.py): sizes, a hand-counted example, N handling, RC invariance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrl_dna import dna
from mrl_dna.dna import decode, encode, revcomp
from mrl_dna.errors import ConfigError
from mrl_dna.kmer import (KmerEmbedder, canonical_kmers, kmer_counts, kmer_profile, kmer_profiles, n_canonical,
                          window_kmer_counts)


def _naive_counts(seq: str, k: int) -> dict[str, int]:
    """Reference: count canonical k-mers with plain string operations."""
    comp = str.maketrans("ACGT", "TGCA")
    out: dict[str, int] = {}
    for i in range(len(seq) - k + 1):
        w = seq[i : i + k]
        if set(w) - set("ACGT"):
            continue
        c = min(w, w.translate(comp)[::-1])
        out[c] = out.get(c, 0) + 1
    return out


@pytest.mark.parametrize("k,n", [(1, 2), (2, 10), (3, 32), (4, 136), (5, 512), (6, 2080)])
def test_number_of_canonical_kmers(k, n):
    assert n_canonical(k) == n
    assert len(canonical_kmers(k)) == n
    assert KmerEmbedder(k).dim == n


def test_hand_example_k2():
    # ACGT: AC, CG, GT -> canonical AC (GT's revcomp is AC) twice, CG (a palindrome) once
    kmers = canonical_kmers(2)
    assert kmers == ["AA", "AC", "AG", "AT", "CA", "CC", "CG", "GA", "GC", "TA"]
    counts = kmer_counts(encode("ACGT"), 2)
    assert counts[kmers.index("AC")] == 2 and counts[kmers.index("CG")] == 1 and counts.sum() == 3


def test_hand_example_k4_with_n():
    # AAAA N AAAATTTT: the four 4-mers touching N are skipped; after it AAAA AAAT AATT ATTT TTTT, where
    # ATTT is AAAT's reverse complement and TTTT is AAAA's
    seq = "AAAANAAAATTTT"
    counts = kmer_counts(encode(seq), 4)
    kmers = canonical_kmers(4)
    assert counts[kmers.index("AAAA")] == 3  # AAAA, AAAA, TTTT
    assert counts.sum() == 1 + 5  # 1 k-mer before N, 5 after it
    assert counts[kmers.index("AAAT")] == 2 and counts[kmers.index("AATT")] == 1


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ACGTN", min_size=0, max_size=200), st.sampled_from([1, 2, 3, 4, 5, 6]))
def test_counts_match_naive_reference(seq, k):
    counts = kmer_counts(encode(seq), k)
    ref = _naive_counts(seq, k)
    got = {km: int(c) for km, c in zip(canonical_kmers(k), counts) if c}
    assert got == ref


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ACGTNacgt", min_size=0, max_size=300), st.sampled_from([4, 6]))
def test_reverse_complement_gives_identical_profile(seq, k):
    ids = encode(seq)
    assert np.array_equal(kmer_counts(ids, k), kmer_counts(revcomp(ids), k))
    assert np.array_equal(kmer_profile(ids, k), kmer_profile(revcomp(ids), k))


def test_profiles_are_unit_norm_and_empty_is_zero():
    rng = np.random.default_rng(0)
    seqs = [encode("".join(rng.choice(list("ACGT"), 500))), encode("NNNN"), encode("")]
    p = kmer_profiles(seqs, 6)
    assert p.shape == (3, 2080) and p.dtype == np.float32
    assert np.isclose(np.linalg.norm(p[0]), 1.0)
    assert not p[1].any() and not p[2].any()


def test_all_kmers_of_size_3_are_found():
    # every 3-mer once in a de Bruijn-like concatenation -> every canonical column non-zero
    seq = "".join("".join(p) + "N" for p in itertools.product("ACGT", repeat=3))
    assert (kmer_counts(encode(seq), 3) > 0).all()
    assert decode(encode("ACGN")) == "ACGN"


def test_bad_k_is_a_config_error():
    with pytest.raises(ConfigError, match="k-mer size 0 is out of range"):
        kmer_counts(encode("ACGT"), 0)


# ---- DNABERT-S's TNF (kmer.tnf_frequencies / TnfEmbedder) -----------------------------------------------------
def _dnabert_s_tnf(seq: str) -> np.ndarray:
    """DNABERT-S's calculate_tnf (evaluate/utils.py) for one sequence, restated: all 256 4-mers as written, in
    itertools.product('ATCG') order, counts / total; 4-mers with N are skipped (theirs raises KeyError)."""
    index = {"".join(p): i for i, p in enumerate(itertools.product("ATCG", repeat=4))}
    v = np.zeros(256)
    for i in range(len(seq) - 3):
        if seq[i : i + 4] in index:
            v[index[seq[i : i + 4]]] += 1
    return v / v.sum() if v.sum() else v


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet="ACGTN", min_size=0, max_size=60))
def test_tnf_matches_dnabert_s_reference(seq):
    from mrl_dna.kmer import tnf_frequencies

    np.testing.assert_allclose(tnf_frequencies(encode(seq)), _dnabert_s_tnf(seq), atol=1e-12)


def test_tnf_is_strand_specific_and_embedder_shape():
    from mrl_dna.kmer import TnfEmbedder

    t = encode("AAAACCCGGT")
    v = TnfEmbedder()([t, revcomp(t), encode("NNN")])
    assert v.shape == (3, 256) and v.dtype == np.float32
    assert v[0, 0] == pytest.approx(1 / 7)  # AAAA is column 0 (product('ATCG') starts AAAA), 1 of 7 4-mers
    assert not np.allclose(v[0], v[1])  # not canonical: DNABERT-S's TNF sees the strand
    assert not v[2].any()  # no valid 4-mer -> zeros, not 0/0


def test_projected_profile_is_the_models_kmer_input_times_a_seeded_gaussian():
    import torch

    from mrl_dna.kmer import ProjectedKmerEmbedder
    from mrl_dna.model.encoder import KmerProfile

    rng = np.random.default_rng(3)
    seqs = [rng.integers(7, 11, size=n).astype(np.uint8) for n in (300, 1000)] + [np.full(50, 11, dtype=np.uint8)]
    emb = ProjectedKmerEmbedder(4, 32, seed=5)
    out = emb(seqs)
    assert out.shape == (3, 32) and emb.dim == 32
    # the same scaled profile the model's head reads (sqrt(K f) - 1), through the seeded matrix, normalised
    x = KmerProfile(4, "sqrt")(torch.from_numpy(seqs[1].astype(np.int64))[None], torch.tensor([1000]))[0].numpy()
    want = x @ np.random.default_rng(5).standard_normal((136, 32)) / np.sqrt(32)
    np.testing.assert_allclose(out[1], want / np.linalg.norm(want), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out[:2], axis=1), 1.0, atol=1e-6)
    assert not out[2].any()  # all N: no k-mer, the zero vector
    rc = revcomp(seqs[0])
    np.testing.assert_allclose(emb([rc])[0], out[0], atol=1e-6)  # canonical k-mers: strand-invariant
    assert np.array_equal(ProjectedKmerEmbedder(4, 32, seed=5)(seqs), out)
    assert not np.allclose(ProjectedKmerEmbedder(4, 32, seed=6)(seqs[:1]), out[:1])


def test_window_counts_equal_each_windows_own_counts_for_any_windows():
    """kmer.window_kmer_counts (issue 24: every window of a record in one vectorised pass) counts, per window,
    exactly the k-mers kmer_counts finds in that window alone: overlapping, gapped, unsorted and shorter-than-k
    windows, N's, and windows that end past the last k-mer."""
    from mrl_dna.windows import window_spans

    rng = np.random.default_rng(24)
    alphabet = np.array([*dna.BASES, dna.N], np.uint8)
    for trial in range(200):
        L, k = int(rng.integers(0, 1500)), int(rng.integers(1, 8))
        tokens = rng.choice(alphabet, size=L, p=[0.24, 0.24, 0.24, 0.24, 0.04])
        size = int(rng.integers(1, 300))
        spans = window_spans(L, size, int(rng.integers(1, size + 1))) if L else np.zeros((0, 2), np.int64)
        if trial % 3 == 0:
            spans = spans[rng.permutation(len(spans))]
        if trial % 5 == 1 and L > 10:  # back-to-back short windows, as records packed into one chunk
            ends = np.unique(rng.integers(1, L + 1, size=5))
            spans = np.stack([np.append(0, ends[:-1]), ends], axis=1)
        want = np.array([kmer_counts(tokens[a:b], k) for a, b in spans]).reshape(len(spans), n_canonical(k))
        assert np.array_equal(window_kmer_counts(tokens, k, spans), want), (trial, L, k)
