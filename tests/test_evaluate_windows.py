"""Fragment -> window retrieval (mrl_dna/evaluate/windows.py): windows, hit judging, aligner output parsing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import windows as ew
from mrl_dna.dna import BASES, N
from mrl_dna.kmer import KmerEmbedder
from mrl_dna.windows import WindowConfig, split_windows


@pytest.fixture(scope="module")
def genomes() -> list[ev.Genome]:
    """Three random genomes: a1 and a2 of species 'a' (a2 = a1 with 3% substitutions: close relatives), b1 of
    'b' with two records, the first with an N run that fills one whole window."""
    rng = np.random.default_rng(2)
    a1 = rng.choice(np.array(BASES, dtype=np.uint8), size=5000)
    a2 = a1.copy()
    sub = rng.random(a2.size) < 0.03
    a2[sub] = (a2[sub] - BASES[0] + 1) % 4 + BASES[0]
    b = rng.choice(np.array(BASES, dtype=np.uint8), size=4000)
    b[1000:2000] = N
    return [ev.Genome("a1", "a", (a1,)), ev.Genome("a2", "a", (a2,)),
            ev.Genome("b1", "b", (b, rng.choice(np.array(BASES, dtype=np.uint8), size=1500)))]


CFG = ew.WindowBenchConfig(window=512, stride=256, fragments=ev.FragmentConfig(
    lengths=(400,), divergences=(0.0, 0.1), per_genome=6, seed=1))


def test_window_table_is_embeds_layout_per_record(genomes):
    w = ew.window_spans_of(genomes, CFG)
    wc = WindowConfig(size=512, stride=256)
    for gi, g in enumerate(genomes):
        for ri, r in enumerate(g.records):
            sel = (w.genome == gi) & (w.record == ri)
            assert np.array_equal(np.stack([w.start[sel], w.end[sel]], 1), split_windows(r, wc).spans)
    mostly_n = (w.genome == 2) & (w.record == 0) & (w.start >= 1000) & (w.end <= 2000)
    assert not mostly_n.any()  # skipped as embed skips it


def _spans(*rows):
    return ew.Spans(*(np.array(c, dtype=np.int64) for c in zip(*rows)))


def test_vector_hits_hand_example_species_locus_and_ties():
    windows = _spans((0, 0, 0, 100), (0, 0, 100, 200), (1, 0, 0, 100), (2, 0, 0, 100))
    species = np.array([0, 0, 1])  # genomes 0 and 1 one species, genome 2 another
    W = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], dtype=np.float32)
    Q = np.array([
        [1, 0, 0],  # origin in window 0: species + locus hit
        [0, 1, 0],  # origin genome 0 [150, 250): window 1 [100, 200) overlaps: hit
        [0, 0, 1],  # origin genome 0 but the best window is genome 1's: species hit, locus miss
        [0.6, 0.8, 0],  # best window is genome 2's (another species): both miss
        [0, 0, 0],  # zero vector: every window ties -> both miss
        [0, 1, 0],  # origin genome 0 [200, 300): touches window 1's end only -> no overlap: locus miss
    ], dtype=np.float32)
    origins = _spans((0, 0, 0, 90), (0, 0, 150, 250), (0, 0, 0, 90), (0, 0, 0, 90), (0, 0, 0, 90), (0, 0, 200, 300))
    sp, loc = ew.vector_hits(Q, W, origins, windows, species, block=4)
    assert sp.tolist() == [True, True, True, False, False, True]
    assert loc.tolist() == [True, True, False, False, False, False]


def test_paf_and_blast_parsing_pick_the_best_and_keep_ties():
    paf = "\n".join([
        "q0\t400\t0\t400\t+\tg1_r0\t5000\t100\t500\t380\t400\t60\ttp:A:P\tAS:i:700",
        "q0\t400\t0\t400\t+\tg0_r0\t5000\t100\t500\t390\t400\t60\ttp:A:P\tAS:i:750",
        "q0\t400\t0\t400\t+\tg2_r1\t1500\t0\t400\t400\t400\t0\ttp:A:S\tAS:i:800",  # secondary: ignored
        "q2\t400\t0\t400\t-\tg2_r1\t1500\t10\t410\t390\t400\t60\ttp:A:P\tAS:i:500",
        "q1\t400\t0\t400\t+\tg1_r0\t5000\t0\t300\t50\t300\t60\ttp:A:P\tcm:i:9\ts1:i:90",  # no -c: by s1
        "q1\t400\t0\t400\t+\tg0_r0\t5000\t0\t300\t80\t300\t60\ttp:A:P\tcm:i:5\ts1:i:60",
    ])
    best = ew.parse_paf(paf, 3)
    assert best[0] == [ew.Hit(0, 0, 100, 500, 750.0)] and best[2][0].record == 1
    assert best[1] == [ew.Hit(1, 0, 0, 300, 90.0)]
    assert ew.parse_paf(paf, 4)[3] == []
    blast = "q1\tg0_r0\t500\t101\t200.5\nq1\tg1_r0\t101\t500\t200.5\nq1\tg2_r0\t1\t400\t100\n"
    best = ew.parse_blast6(blast, 2)
    assert best[1] == [ew.Hit(0, 0, 100, 500, 200.5), ew.Hit(1, 0, 100, 500, 200.5)]  # minus strand sorted, 0-based
    origins = _spans((0, 0, 0, 400), (0, 0, 0, 400))
    sp, loc, none = ew.aligner_hits(best, origins, np.array([0, 0, 1]))
    assert none.tolist() == [True, False] and sp.tolist() == [False, True]
    assert loc.tolist() == [False, False]  # tie with genome 1's copy: the pessimistic rule says miss


def test_kmer_end_to_end_finds_locus_at_zero_divergence(genomes):
    methods = [ev.Method("6-mer profile", KmerEmbedder(6)), ev.Method("zero", lambda s: np.zeros((len(s), 4)))]
    rep = ew.run_window_benchmark(genomes, methods, CFG, genome_vectors=True)
    get = {(s.method, s.divergence): s for s in rep.scores}
    s0 = get[("6-mer profile", 0.0)]
    assert (s0.n, s0.species_top1, s0.locus_top1) == (18, 1.0, 1.0)
    assert get[("zero", 0.0)].species_top1 == 0.0 and get[("zero", 0.1)].locus_top1 == 0.0
    gv = get[("6-mer profile -> genome vector", 0.0)]
    assert gv.locus_top1 != gv.locus_top1 and 0 < gv.species_top1 <= 1  # no locus for a genome vector (NaN)
    md = ew.format_window_markdown(rep)
    assert "| 6-mer profile | 2080 | 100.0 |" in md and "| 6-mer profile -> genome vector | 2080 |" in md


def test_model_windows_are_embeds_saved_windows(genomes, tiny_model):
    """A model's database windows are embed_sequences(save_windows=True)'s, which are window_outputs of the
    windows cut at the benchmark's spans, and a query of one window length gets the same vector."""
    cfg = ew.WindowBenchConfig(window=256, stride=128, fragments=CFG.fragments)
    m = ev.model_method(tiny_model, "tiny")
    w = ew.window_spans_of(genomes[2:], cfg)
    V = ew.embed_windows(m, genomes[2:], w, cfg)
    pieces = [genomes[2].records[r][s:e] for r, s, e in zip(w.record, w.start, w.end)]
    from mrl_dna.windows import pad_windows

    tok, lens = (torch.from_numpy(a) for a in pad_windows(pieces))
    with torch.no_grad():
        direct = tiny_model.window_outputs(tiny_model.window_vectors(tok, lens)).numpy()
    np.testing.assert_allclose(V, direct, atol=1e-5)
    np.testing.assert_allclose(m.embed(pieces[:3]), direct[:3], atol=1e-5)


def test_windows_through_the_store_are_embed_sequences_windows_and_search_finds_the_same(genomes, tiny_model, tmp_path):
    """store_dir: a model's windows come from the HDF5 `mrl-dna embed --save-windows` writes, equal bit for bit
    to embed_sequences'; `search --level windows -k 1` on that file (scripts/bench/windows.py --via-search) gives
    the same species/locus numbers as the in-memory scoring, and its window is the brute-force argmax."""
    from conftest import script_module

    m = ev.model_method(tiny_model, "tiny")
    # the model's own window (as the real benchmark's 2 kb): the in-memory queries are embedded with it, and
    # search refuses a query file of another window than the DB's (issue 22)
    cfg = dataclasses.replace(CFG, window=tiny_model.info.window, stride=tiny_model.info.window // 2)
    fr = ev.make_fragments(genomes, cfg.fragments)
    mem = ew.run_window_benchmark(genomes, [m], cfg, fragments=fr)
    rep = ew.run_window_benchmark(genomes, [m], cfg, fragments=fr, store_dir=tmp_path)
    w = ew.window_spans_of(genomes, cfg)
    assert np.array_equal(ew.embed_windows_to_store(m, genomes, w, cfg, tmp_path / "again.h5"),
                          ew.embed_windows(m, genomes, w, cfg))
    assert [(s.dim, s.species_top1, s.locus_top1) for s in rep.scores] == [(s.dim, s.species_top1, s.locus_top1)
                                                                           for s in mem.scores]
    bw = script_module("scripts/bench/windows.py")
    notes = bw.via_search(rep, [m], genomes, fr, tmp_path, device="cpu")
    n = len(fr)
    assert notes == [f"tiny: search --level windows returned the brute-force argmax window for 4: {n}/{n}, "
                     f"8: {n}/{n}, 16: {n}/{n} queries (dim: equal/all)"]
    via = [s for s in rep.scores if s.method == "tiny (search --level windows)"]
    assert [(s.dim, s.divergence, s.species_top1, s.locus_top1) for s in via] == [
        (s.dim, s.divergence, s.species_top1, s.locus_top1) for s in mem.scores]  # no ties among these windows


@pytest.mark.parametrize("aligner", list(ew.Aligner))
def test_aligner_finds_exact_fragments(genomes, aligner, tmp_path):
    if not ew.aligner_available(aligner):
        pytest.skip(f"{aligner.program} not installed (apt-get install -y minimap2 ncbi-blast+)")
    cfg = ew.WindowBenchConfig(window=512, stride=256, fragments=ev.FragmentConfig(
        lengths=(400,), divergences=(0.0,), per_genome=4, seed=1))
    rep = ew.run_window_benchmark(genomes[::2], [], cfg, aligners=[aligner], work=tmp_path)
    (s,) = rep.scores
    assert s.species_top1 == 1.0 and s.locus_top1 == 1.0 and s.no_hit == 0.0
    assert aligner.value in rep.commands[s.method]
