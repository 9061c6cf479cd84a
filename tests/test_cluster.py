"""Tests for mrl_dna/compare/cluster.py and the `cluster` command.

Properties: planted groups are recovered by both methods; every leader member is within --min-sim of its
representative, which is the longest row of its cluster; clusters are numbered by size; the same input, options
and seed give the same TSV (also at another --threads); one error line and exit 1 for each user mistake.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_store
from mrl_dna.compare import ClusterMethod, KMeansConfig, cluster, size_summary
from mrl_dna.errors import ConfigError
from mrl_dna.vectors import normalize_rows

GROUPS = np.array([0, 1, 2, 0, 1, 0, 2, 0, 1, 3, 0, 1, 2, 0, 0])  # sizes 7, 4, 3, 1


@pytest.fixture
def db(tmp_path):
    rng = np.random.default_rng(4)
    centers = normalize_rows(rng.standard_normal((4, 32)))
    x = normalize_rows(centers[GROUPS] + 0.03 * rng.standard_normal((len(GROUPS), 32)))  # within a group: cos > 0.9
    lengths = rng.integers(1000, 9000, len(GROUPS))
    ids = [f"r{i}" for i in range(len(GROUPS))]
    return write_store(tmp_path / "c.h5", x, dims=(8, 32), ids=ids, lengths=lengths), x, lengths


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all(len(set(b[a == c])) == 1 for c in set(a)) and len(set(a)) == len(set(b))


def test_leader_recovers_the_groups_with_the_longest_row_as_representative(db):
    path, x, lengths = db
    c, s = cluster(path, method="leader", min_sim=0.8)
    assert same_partition(c.cluster, GROUPS) and s.n_clusters == 4
    assert list(c.sizes) == [7, 4, 3, 1]  # numbered by size
    for g in range(4):
        members = np.flatnonzero(GROUPS == g)
        assert set(c.representative[members]) == {members[np.argmax(lengths[members])]}
    cos = np.einsum("ij,ij->i", x, x[c.representative])
    assert np.all(c.similarity >= 0.8) and np.allclose(c.similarity, cos, atol=1e-6)
    singles, _ = cluster(path, method="leader", min_sim=0.9999)
    assert len(singles.sizes) == len(GROUPS) and np.array_equal(singles.representative, np.arange(len(GROUPS)))


def test_leader_is_greedy_in_length_order():
    """Three rows on an arc: b (longest) founds a cluster, a and c are within the cut-off of b but not of each
    other; visited by length, a and c both join b."""
    from mrl_dna.compare.cluster import leader_clusters
    from mrl_dna.compare.matrix import Vectors

    ang = np.radians([0.0, 20.0, 40.0])
    x = np.stack([np.cos(ang), np.sin(ang)], axis=1).astype(np.float32)
    v = Vectors(path=None, ids=["a", "b", "c"], x=x, lengths=np.array([10, 30, 20]), n_skipped=0, model_hash="",
                model_name="", matryoshka_dims=(2,), dim=2)
    label, rep, sim = leader_clusters(v, float(np.cos(np.radians(25))))
    assert list(label) == [1, 1, 1] and list(rep) == [1, 1, 1]


def test_kmeans_recovers_the_groups_and_is_deterministic(db):
    path, x, _ = db
    c, s = cluster(path, method="kmeans", n_clusters=4, kmeans=KMeansConfig(seed=1))
    assert same_partition(c.cluster, GROUPS) and list(c.sizes) == [7, 4, 3, 1] and s.iterations >= 1
    for g in range(4):
        members = np.flatnonzero(c.cluster == g)
        assert c.representative[members[0]] in members
    again, _ = cluster(path, method="kmeans", n_clusters=4, kmeans=KMeansConfig(seed=1))
    assert np.array_equal(again.cluster, c.cluster) and np.array_equal(again.similarity, c.similarity)


def test_kmeans_similarity_is_the_cosine_to_the_representative_beside_it(db):
    """Issue 22.20: with --n-clusters the similarity column was the cosine to the centroid, printed beside a
    representative it does not belong to (only a docstring said so). Now it is the cosine to that
    representative, as leader's: 1 for the representative itself, dist's number for every other row."""
    path, x, _ = db
    c, _ = cluster(path, method="kmeans", n_clusters=3, kmeans=KMeansConfig(seed=2))  # 3 bins for 4 groups
    cos = np.einsum("ij,ij->i", x.astype(np.float64), x[c.representative].astype(np.float64))
    np.testing.assert_allclose(c.similarity, cos, atol=1e-6)
    is_rep = c.representative == np.arange(len(GROUPS))
    assert np.all(c.similarity[is_rep] == 1.0) and not np.all(is_rep)


def test_cli_cluster_is_deterministic_with_sizes_on_stderr(db, cli, tmp_path):
    path, *_ = db
    runs = [cli("cluster", path, "--n-clusters", "3", "--seed", "7", "--threads", t) for t in ("1", "2", "1")]
    assert all(code == 0 for code, _, _ in runs) and runs[0][1] == runs[1][1] == runs[2][1]
    code, out, err = cli("cluster", path, "--min-sim", "0.8", "--dim", "8")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "#id\tcluster\trepresentative\tsimilarity" and len(lines) == 1 + len(GROUPS)
    assert "4 clusters of 15 rows; sizes 7, 4, 3, 1" in err and "leader at dim 8 (cosine >= 0.8)" in err
    out_file = tmp_path / "clusters.tsv.gz"
    assert cli("cluster", path, "--min-sim", "0.8", "--dim", "8", "-o", out_file)[0] == 0
    assert __import__("gzip").decompress(out_file.read_bytes()).decode() == out


@pytest.mark.parametrize("args, expect", [
    (["--method", "leader"], "give --min-sim S"),
    (["--method", "kmeans", "--min-sim", "0.9"], "give --n-clusters K and no --min-sim"),
    (["--n-clusters", "99"], "--n-clusters 99 exceeds the 15 rows"),
    (["--min-sim", "0.9", "--dim", "64"], "dim 64 is outside 1..32"),
])
def test_cli_cluster_errors_are_one_line(db, cli, args, expect):
    path, *_ = db
    code, out, err = cli("cluster", path, *args)
    lines = err.strip().splitlines()
    assert code == 1 and out == "" and len(lines) == 1 and expect in lines[0], err


def test_library_checks_and_size_summary(db):
    path, *_ = db
    with pytest.raises(ConfigError, match="--n-init 0"):
        cluster(path, method=ClusterMethod.kmeans, n_clusters=2, kmeans=KMeansConfig(n_init=0))
    assert size_summary(np.array([1, 12, 3, 3, 1, 1])) == "12, 3 x 2, 1 x 3"
    assert size_summary(np.arange(1, 50), most=3) == "49, 48, 47, ..."
