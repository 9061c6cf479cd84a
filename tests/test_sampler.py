"""Sampler: identity targets match the mutations made, determinism from (seed, step), RC correctness."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.genomes import expand_inputs, read_groups
from mrl_dna.train.sampler import GenomeSampler, SamplerConfig, load_pairs, pack
from mrl_dna.train.sources import Source, load_genomes, load_labelled

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample.fa"


def _random_seq(rng, n, alphabet=dna.BASES):
    return rng.choice(np.array(alphabet, dtype=np.uint8), size=n)


def _two_sources(rng, n=20_000):
    # source 0 uses only A/T, source 1 only C/G: both sets are closed under reverse complement
    return [
        Source("at", 0, [_random_seq(rng, n, (dna.A, dna.T))]),
        Source("cg", 1, [_random_seq(rng, n // 2, (dna.C, dna.G)), _random_seq(rng, 3000, (dna.C, dna.G))]),
    ]


def test_batch_is_a_function_of_seed_rank_step():
    srcs = _two_sources(np.random.default_rng(0))
    cfg = SamplerConfig(window=256, batch_size=8)
    a = GenomeSampler(srcs, cfg, seed=1).batch(5)
    b = GenomeSampler(srcs, cfg, seed=1).batch(5)
    assert np.array_equal(a.tokens, b.tokens) and np.array_equal(a.identity, b.identity)
    assert not np.array_equal(a.tokens, GenomeSampler(srcs, cfg, seed=1).batch(6).tokens)
    assert not np.array_equal(a.tokens, GenomeSampler(srcs, cfg, seed=2).batch(5).tokens)
    assert not np.array_equal(a.tokens, GenomeSampler(srcs, cfg, seed=1, rank=1).batch(5).tokens)
    assert not np.array_equal(a.tokens, GenomeSampler(srcs, cfg, seed=1).batch(5, micro=1).tokens)


def test_batch_shapes_labels_and_same_source_positives():
    srcs = _two_sources(np.random.default_rng(1))
    cfg = SamplerConfig(window=256, batch_size=16, max_mutation_rate=0.0, multi_window_prob=0.5, max_windows=3)
    batch = GenomeSampler(srcs, cfg, seed=0).batch(0)
    b = 16
    assert batch.n_views == 3 and batch.tokens.shape[0] == 3 * b and batch.lengths.shape == batch.tokens.shape[:2]
    assert batch.labels.shape == (b,) and set(batch.labels.tolist()) <= {0, 1}
    assert np.all(batch.identity == 1.0)  # no mutations at rate 0
    assert batch.tokens.shape[1] > 1  # some runs of several windows
    alphabet = {0: {dna.A, dna.T}, 1: {dna.C, dna.G}}
    for v in range(3):
        for i in range(b):
            toks = batch.tokens[v * b + i]
            bases = set(toks[toks != dna.PAD].tolist())
            assert bases and bases <= alphabet[int(batch.labels[i])]
            # windows are full size except a run's last window; absent windows have length 0
            lens = batch.lengths[v * b + i]
            assert lens.max() <= 256 and np.all(np.diff((lens > 0).astype(int)) <= 0)


def test_mutant_identity_matches_its_log_pooled_over_windows():
    srcs = _two_sources(np.random.default_rng(2))
    cfg = SamplerConfig(window=128, batch_size=8, indel_fraction=0.0, rc_prob=0.0, multi_window_prob=0.0)
    batch = GenomeSampler(srcs, cfg, seed=4).batch(0)
    b = 8
    for i in range(b):
        a = batch.tokens[i, 0, : batch.lengths[i, 0]]
        m = batch.tokens[2 * b + i, 0, : batch.lengths[2 * b + i, 0]]
        # substitutions only: identity = fraction of equal positions
        assert batch.identity[i] == pytest.approx(np.mean(a == m), abs=1e-6)


def test_reverse_complement_of_a_run():
    srcs = _two_sources(np.random.default_rng(3))
    cfg = SamplerConfig(window=100, batch_size=4, max_mutation_rate=0.0, rc_prob=1.0)
    s = GenomeSampler(srcs, cfg, seed=0)
    run = [np.array([dna.A, dna.A, dna.C], np.uint8), np.array([dna.G, dna.T], np.uint8)]
    out, ident = s._evolve(np.random.default_rng(0), run)
    assert ident == 1.0
    assert dna.decode(np.concatenate(out)) == "ACGTT"  # revcomp("AACGT")
    assert [x.size for x in out] == [2, 3]


def test_pack_pads_and_marks_absent_windows():
    toks, lens = pack([[np.array([7, 8], np.uint8)], [np.array([9], np.uint8), np.array([10, 10, 10], np.uint8)]])
    assert toks.shape == (2, 2, 3) and lens.tolist() == [[2, 0], [1, 3]]
    assert toks[0, 0].tolist() == [7, 8, dna.PAD] and np.all(toks[0, 1] == dna.PAD)


def test_one_group_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="needs negatives"):
        GenomeSampler([Source("a", 0, [_random_seq(rng, 500)]), Source("b", 0, [_random_seq(rng, 500)])], SamplerConfig(), 0)


def _write_fasta(path, recs, gz=False):
    text = "".join(f">{rid}\n{seq}\n" for rid, seq in recs).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def test_inputs_groups_and_labelled(tmp_path):
    d = tmp_path / "g"
    d.mkdir()
    _write_fasta(d / "one.fa.gz", [("r1", "ACGT" * 50), ("r2", "GGCC" * 30)], gz=True)
    _write_fasta(d / "two.fna", [("s1", "ATAT" * 40)])
    (d / "notes.txt").write_text("not fasta")
    paths = expand_inputs([d])
    assert [p.name for p in paths] == ["one.fa.gz", "two.fna"]
    assert expand_inputs([str(d / "*.fna"), d / "two.fna"]) == [d / "two.fna"]
    with pytest.raises(InputError, match="does not exist"):
        expand_inputs([tmp_path / "missing.fa"])
    with pytest.raises(InputError, match="matches no file"):
        expand_inputs([str(tmp_path / "*.fa")])
    (tmp_path / "groups.tsv").write_text("file\tgroup\ng/one.fa.gz\tspecies X\nsomewhere/two.fna\tspecies X\n")
    srcs = load_genomes(paths, read_groups(tmp_path / "groups.tsv"))
    assert [s.name for s in srcs] == ["one", "two"] and srcs[0].label == srcs[1].label
    assert srcs[0].group == "species X" and srcs[0].n_bases == 320
    srcs = load_genomes(paths)
    assert [s.label for s in srcs] == [0, 1]
    lab = load_labelled(paths, {"r1": "x", "r2": "y", "s1": "x"})
    assert [(s.name, len(s.seqs)) for s in lab] == [("x", 2), ("y", 1)]
    with pytest.raises(InputError, match="record s1 .* has no group"):
        load_labelled(paths, {"r1": "x", "r2": "y"})


def test_load_pairs(tmp_path):
    p = tmp_path / "pairs.tsv"
    p.write_text("seq_a\tseq_b\tscore\nACGT\tACGA\t0.75\nAAAA\tCCCC\t0.0\n")
    pairs = load_pairs(p)
    assert pairs.score.tolist() == [0.75, 0.0] and dna.decode(pairs.b[0]) == "ACGA"
    toks, lens, scores = pairs.batch(np.random.default_rng(0), 4, window=2, max_windows=8)
    assert toks.shape == (8, 2, 2) and scores.shape == (4,)
    p.write_text("ACGT\tAC-T\t1\nAAAA\tCCCC\t0\n")
    with pytest.raises(InputError, match="not DNA"):
        load_pairs(p)


def test_sample_fasta_loads():
    srcs = load_genomes(expand_inputs([SAMPLE]))
    assert len(srcs) == 1 and len(srcs[0].seqs) == 8


def test_genome_blocks_hold_distinct_genomes_and_pair_each_anchor_with_its_block():
    rng = np.random.default_rng(11)
    sources = [Source(f"g{i}", i, [_random_seq(rng, 5000)]) for i in range(6)]
    cfg = SamplerConfig(window=200, batch_size=12, windows_per_genome=3, mutant_view=False, max_mutation_rate=0.0,
                        rc_prob=0.0, max_shift_fraction=0.25)
    batch = GenomeSampler(sources, cfg, seed=3).batch(7)
    labels = batch.labels
    assert labels.tolist() == np.repeat(labels[::3], 3).tolist() and len(set(labels[::3])) == 4
    assert batch.partner.tolist() == [1, 2, 0, 4, 5, 3, 7, 8, 6, 10, 11, 9]
    # each positive is its own anchor's window shifted by at most a quarter window (no mutation, no RC here)
    for i in range(12):
        anchor = batch.tokens[i, 0, : batch.lengths[i, 0]]
        pos = batch.tokens[12 + i, 0, : batch.lengths[12 + i, 0]]
        seq = sources[labels[i]].seqs[0]
        a, p = _find(seq, anchor), _find(seq, pos)
        assert abs(a - p) <= 50
    again = GenomeSampler(sources, cfg, seed=3).batch(7)
    assert np.array_equal(again.tokens, batch.tokens)


def _find(seq, sub):
    for s in range(seq.size - sub.size + 1):
        if np.array_equal(seq[s : s + sub.size], sub):
            return s
    raise AssertionError("window not found in its genome")


def test_genome_blocks_need_a_batch_that_splits_into_two_genomes():
    with pytest.raises(ConfigError, match="windows-per-genome"):
        SamplerConfig(batch_size=8, windows_per_genome=3)
    with pytest.raises(ConfigError, match="windows-per-genome"):
        SamplerConfig(batch_size=4, windows_per_genome=4)
    rng = np.random.default_rng(12)
    sources = [Source(f"g{i}", i, [_random_seq(rng, 1000)]) for i in range(2)]
    with pytest.raises(ConfigError, match="2 groups"):
        GenomeSampler(sources, SamplerConfig(window=100, batch_size=6, windows_per_genome=2), seed=0).batch(0)
