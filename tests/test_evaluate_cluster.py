"""Species clustering benchmark (mrl_dna/evaluate/cluster.py): fragments, K-means ARI, leave-one-out 1-NN."""

from __future__ import annotations

import numpy as np
import pytest

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import cluster as ec
from mrl_dna.dna import BASES, N, revcomp
from mrl_dna.errors import ConfigError
from mrl_dna.kmer import KmerEmbedder

pytest.importorskip("sklearn")


def _genome(rng: np.random.Generator, n: int, gc: float) -> np.ndarray:
    p = np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])  # A C G T
    return rng.choice(np.array(BASES, dtype=np.uint8), size=n, p=p)


@pytest.fixture(scope="module")
def genomes() -> list[ev.Genome]:
    """3 species far apart in GC; species 'b' has two genomes, the second with two records and an N run."""
    rng = np.random.default_rng(0)
    b2 = _genome(rng, 4000, 0.5)
    b2[1000:1500] = N
    return [
        ev.Genome("a1", "a", (_genome(rng, 6000, 0.2),)),
        ev.Genome("b1", "b", (_genome(rng, 6000, 0.5),)),
        ev.Genome("b2", "b", (b2, _genome(rng, 3000, 0.5))),
        ev.Genome("c1", "c", (_genome(rng, 6000, 0.8),)),
    ]


CFG = ec.ClusterConfig(fragment_length=500, per_species=8, kmeans_seeds=(0, 1))


def test_fragments_are_balanced_non_overlapping_half_reversed_and_reproducible(genomes):
    fr = ec.make_cluster_fragments(genomes, CFG)
    assert fr.species_names == ("a", "b", "c") and len(fr) == 24
    assert np.bincount(fr.species).tolist() == [8, 8, 8]
    assert np.bincount(fr.genome, minlength=4).tolist() == [8, 4, 4, 8]  # species b split over its 2 genomes
    for si in range(3):
        assert fr.reverse[fr.species == si].sum() == 4  # exactly half of each species
    for t, g, r, s, rev in zip(fr.tokens, fr.genome, fr.record, fr.start, fr.reverse):
        src = genomes[g].records[r][s : s + 500]
        assert s % 500 == 0 and np.array_equal(revcomp(t) if rev else t, src)  # a tile, as cut
        assert np.count_nonzero(src == N) <= 0.1 * 500  # the N run is never drawn
    keys = list(zip(fr.genome.tolist(), fr.record.tolist(), fr.start.tolist()))
    assert len(set(keys)) == len(keys)  # no piece twice
    again = ec.make_cluster_fragments(genomes, CFG)
    assert all(np.array_equal(x, y) for x, y in zip(fr.tokens, again.tokens))


def test_too_few_pieces_is_a_config_error_naming_the_genome(genomes):
    with pytest.raises(ConfigError, match=r"genome a1 has 12 non-overlapping 500 bp pieces, fewer than the 13"):
        ec.make_cluster_fragments(genomes, ec.ClusterConfig(fragment_length=500, per_species=13))


def test_kmeans_on_separated_points_is_perfect_and_seed_averaged():
    rng = np.random.default_rng(0)
    centres = np.eye(4)[:3]
    X = np.repeat(centres, 10, axis=0) + 0.01 * rng.normal(size=(30, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = np.repeat([0, 1, 2], 10)
    m = ec.kmeans_scores(X, labels, ec.ClusterConfig(kmeans_seeds=(0, 1, 2)))
    assert m["ari"] == pytest.approx(1.0) and m["nmi"] == pytest.approx(1.0) and len(m["ari_per_seed"]) == 3
    shuffled = ec.kmeans_scores(X, rng.permutation(labels), ec.ClusterConfig(kmeans_seeds=(0,)))
    assert shuffled["ari"] < 0.3  # labels unrelated to the geometry


def test_loo_nearest_neighbour_hand_example_with_ties():
    X = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0.6, 0.8]], dtype=np.float32)
    labels = np.array([0, 0, 1, 2, 1])
    hit = ec.loo_nearest_neighbour(X, labels, block=2)  # blocks of 2: the leave-out index must be global
    # 0 and 1 find each other; 2's best (1.0) is 3, another species; 3's best is 2, another species;
    # 4's best is row 2 or 3 at 0.8, tied across species 1 and 2 -> a miss
    assert hit.tolist() == [True, True, False, False, False]
    assert not ec.loo_nearest_neighbour(np.zeros((3, 2), np.float32), np.array([0, 0, 1])).any()  # all tie


def test_benchmark_end_to_end_and_table(genomes):
    methods = [ev.Method("4-mer profile", KmerEmbedder(4)), ev.Method("fake", lambda s: np.zeros((len(s), 8)), (4, 8))]
    rep = ec.run_cluster_benchmark(genomes, methods, CFG)
    good = rep.scores[0]
    assert (good.method, good.dim, good.n, good.n_species) == ("4-mer profile", 136, 24, 3)
    assert good.ari == pytest.approx(1.0) and good.knn_top1 == 1.0 and set(good.knn_per_species) == {"a", "b", "c"}
    zero = [s for s in rep.scores if s.method == "fake"]
    assert [s.dim for s in zero] == [4, 8] and all(s.knn_top1 == 0.0 for s in zero)  # zero vectors: every tie a miss
    md = ec.format_cluster_markdown(rep)
    assert "| 4-mer profile | 136 | 100.0 | 0.0 | 0.0 | 100.0 | 100.0 |" in md and "K = 3" in md


def test_draws_are_averaged_and_each_draw_is_its_own_fragment_set(genomes):
    cfg = ec.ClusterConfig(fragment_length=500, per_species=8, kmeans_seeds=(0,), draws=2)
    d0 = ec.make_cluster_fragments(genomes, cfg)
    d1 = ec.make_cluster_fragments(genomes, ec.ClusterConfig(fragment_length=500, per_species=8, seed=1))
    assert not all(np.array_equal(x, y) for x, y in zip(d0.tokens, d1.tokens))
    noisy = ev.Method("noise", lambda s: np.random.default_rng(len(s) + sum(int(t[0]) for t in s)).normal(size=(len(s), 4)))
    (one,) = ec.run_cluster_benchmark(genomes, [noisy], cfg).scores
    singles = [ec.run_cluster_benchmark(genomes, [noisy], cfg, fragments=[d]).scores[0] for d in (d0, d1)]
    assert one.knn_per_draw == (singles[0].knn_top1, singles[1].knn_top1)
    assert one.ari == pytest.approx((singles[0].ari + singles[1].ari) / 2)
    assert one.ari_sd_draws == pytest.approx(abs(singles[0].ari - singles[1].ari) / 2)
    assert len(one.ari_per_seed) == 2  # (draws, seeds)
