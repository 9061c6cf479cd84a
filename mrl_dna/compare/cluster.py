"""`mrl-dna cluster`: clusters of the rows of an embedding file, for dereplication and for binning.

Two methods, each deterministic (same input, options and seed -> same clusters, whatever the thread count:
cosines are computed as matrix.Products does, in float64):

leader (dereplication at a cosine cut-off, --min-sim S): greedy centroid/leader clustering as CD-HIT does it,
    with cosines. Rows are visited longest first (ties: file order); a row joins the representative it is
    most similar to among those chosen so far when that cosine is >= S (ties: the earlier representative),
    else it becomes the representative of a new cluster. Why this and not linkage over all pairs above S:
    every member is within S of its representative, which is a real sequence of the set (the one to keep when
    dereplicating), so a cluster cannot chain far apart genomes together as single linkage does; longest
    first keeps the most complete assembly of a group as its representative; and it needs one pass over
    rows x representatives in blocks, no n x n matrix and no pair list. The price: the result depends on the
    visiting order (which is fixed), and a row may sit closer to a later representative than to its own.
kmeans (binning into --n-clusters K): spherical K-means, the cosine version of Lloyd's algorithm (rows and
    centroids are unit vectors, a row goes to the centroid of largest cosine; a centroid is the normalised
    mean of its rows), seeded by k-means++ with the seed --seed, best of --n-init runs by the sum of (1 -
    cosine to the centroid). An emptied cluster is reseeded with the row farthest from its centroid. The
    representative is the member closest to the centroid. numpy only (no scikit-learn).

The similarity of a row is, for both methods, its cosine to the representative printed beside it (what `dist`
prints for that pair). Before issue 22 K-means printed the cosine to the centroid there, which no output shows
and nothing can check against; the centroids' fit is the objective in the summary line.

Clusters are numbered 0, 1, ... by decreasing size (ties: the cluster whose first member comes first in the
file). Rows without a vector (empty or all-N records) are left out, with a warning.

Axis letters: n rows, b rows in a block, r representatives, c clusters (K), k prefix width.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna.compare.matrix import Products, Vectors, block_rows, compute_device, load_vectors
from mrl_dna.console import count
from mrl_dna.errors import ConfigError
from mrl_dna.vectors import check_cosine

LEADER_BLOCK = 256  # rows compared with the representatives at once, then placed one by one among themselves


class ClusterMethod(str, enum.Enum):
    leader = "leader"  # dereplication: greedy leader clustering at a cosine cut-off (--min-sim)
    kmeans = "kmeans"  # binning: spherical K-means into --n-clusters clusters


@dataclass(frozen=True)
class KMeansConfig:
    n_init: int = 3  # runs from different k-means++ seeds, the best kept (scikit-learn's default for init="random" was 10; 3 as DNABERT-S's protocol)
    max_iter: int = 100  # Lloyd iterations per run; it stops earlier when no row changes cluster
    seed: int = 0


@dataclass(frozen=True, eq=False)
class Clusters:
    """One cluster per kept row (file order)."""

    ids: list[str]  # (n,) rows with a vector
    cluster: np.ndarray  # (n,) int64, 0 = the largest cluster
    representative: np.ndarray  # (n,) int64 row (into ids) of the cluster's representative
    similarity: np.ndarray  # (n,) float32 cosine to the representative (both methods)

    @property
    def sizes(self) -> np.ndarray:
        """(c,) members per cluster, largest first."""
        return np.bincount(self.cluster) if len(self.cluster) else np.zeros(0, np.int64)


@dataclass(frozen=True)
class ClusterSummary:
    n: int
    n_clusters: int
    skipped: int
    method: str
    dim: int
    device: str
    seconds: float
    objective: float = 0.0  # kmeans: sum of (1 - cosine to the centroid) of the best run
    iterations: int = 0  # kmeans: Lloyd iterations of the best run


def cluster(
    path: str | Path,
    *,
    method: ClusterMethod | str,
    dim: int | None = None,
    min_sim: float | None = None,
    n_clusters: int | None = None,
    kmeans: KMeansConfig = KMeansConfig(),
    device: str = "cpu",
    warn: Callable[[str], None] = lambda m: None,
) -> tuple[Clusters, ClusterSummary]:
    """Everything `mrl-dna cluster` does except the rendering."""
    t0 = time.perf_counter()
    method = ClusterMethod(method)
    if method is ClusterMethod.leader and (min_sim is None or n_clusters is not None):
        raise ConfigError("--method leader clusters at a cosine cut-off: give --min-sim S (e.g. 0.95) and no "
                          "--n-clusters")
    if method is ClusterMethod.kmeans and (n_clusters is None or min_sim is not None):
        raise ConfigError("--method kmeans makes a fixed number of clusters: give --n-clusters K and no --min-sim")
    check_cosine(min_sim, "--min-sim")
    dev = compute_device(device)
    v = load_vectors(path, dim, warn=warn)
    if v.n_skipped:
        one = v.n_skipped == 1
        warn(f"{count(v.n_skipped, 'row')} {'has' if one else 'have'} no vector (empty or all-N records) and "
             f"{'is' if one else 'are'} left out")
    if not len(v.ids):
        raise ConfigError(f"{path} has no row with a vector; nothing to cluster")
    objective, iterations = 0.0, 0
    if method is ClusterMethod.leader:
        labels, reps, sims = leader_clusters(v, min_sim, device=dev)
    else:
        if n_clusters > len(v.ids):
            raise ConfigError(f"--n-clusters {n_clusters} exceeds the {len(v.ids)} rows with a vector; give at most "
                              f"{len(v.ids)}")
        labels, reps, sims, objective, iterations = kmeans_clusters(v.x, n_clusters, kmeans, device=dev)
    out = _renumber(v.ids, labels, reps, sims)
    return out, ClusterSummary(n=len(v.ids), n_clusters=len(out.sizes), skipped=v.n_skipped, method=method.value,
                               dim=v.x.shape[1], device=dev, seconds=time.perf_counter() - t0, objective=objective,
                               iterations=iterations)


def leader_clusters(v: Vectors, min_sim: float, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy leader clustering (module docstring) -> per row: label (= its representative's row), the
    representative's row, the cosine to it."""
    n = len(v.ids)
    order = np.lexsort((np.arange(n), -v.lengths))  # longest first, then file order
    reps = Products(v.x[:0], device, capacity=n)  # the representatives' vectors, in the order chosen
    rep_rows: list[int] = []  # their rows
    label = np.empty(n, np.int64)
    sim = np.empty(n, np.float32)
    for b0 in range(0, n, LEADER_BLOCK):
        rows = order[b0 : b0 + LEADER_BLOCK]  # (b,)
        block = v.x[rows]
        S_old = reps(block) if reps.m else np.zeros((len(rows), 0), np.float32)  # (b, r) vs earlier representatives
        S_in = Products(block, device)(block)  # (b, b) among the block, for representatives chosen inside it
        best_old = S_old.argmax(1) if reps.m else np.zeros(len(rows), np.int64)
        new: list[int] = []  # positions in the block of representatives chosen in this block
        for t, row in enumerate(rows):
            who, s = -1, -np.inf
            if reps.m:
                who, s = int(best_old[t]), float(S_old[t, best_old[t]])
            if new:
                j = int(np.argmax(S_in[t, new]))
                if S_in[t, new[j]] > s:  # strictly better: on a tie the earlier representative wins
                    who, s = reps.m + j, float(S_in[t, new[j]])
            if s >= min_sim:
                label[row], sim[row] = rep_rows[who] if who < reps.m else rows[new[who - reps.m]], s
            else:
                new.append(t)
                label[row], sim[row] = row, 1.0
        rep_rows += [int(rows[t]) for t in new]
        reps.append(block[new])
    return label, label.copy(), sim


def kmeans_clusters(x: np.ndarray, n_clusters: int, cfg: KMeansConfig, *, device: str = "cpu"
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, int]:
    """Spherical K-means (module docstring) -> per row: label, its cluster's representative row (the member
    closest to the centroid), the cosine to that representative; the objective (sum of 1 - cosine to the
    centroid) and the iterations of the best of cfg.n_init runs."""
    if cfg.n_init < 1 or cfg.max_iter < 1:
        raise ConfigError(f"--n-init {cfg.n_init} and max_iter {cfg.max_iter} must be >= 1")
    best = None
    for run in range(cfg.n_init):
        rng = np.random.default_rng([cfg.seed, run])
        res = _lloyd(x, _kmeans_pp(x, n_clusters, rng, device), cfg.max_iter, device)
        if best is None or res[2] < best[2]:
            best = res
    label, sims, objective, iterations = best
    rep = np.zeros(n_clusters, np.int64)
    to_rep = np.empty(len(x), np.float32)  # (n,) cosine to the representative, as leader's (Products, float64)
    for c in np.unique(label):  # the member closest to the centroid (ties: the first in the file); a cluster
        members = np.flatnonzero(label == c)  # emptied by the last assignment (rare) is simply not there
        rep[c] = members[np.argmax(sims[members])]
        to_rep[members] = Products(x[rep[c] : rep[c] + 1], device)(x[members])[:, 0]
        to_rep[rep[c]] = 1.0  # as leader's representatives: exactly 1
    return label, rep[label], to_rep, objective, iterations


def _assign(x: np.ndarray, centroids: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
    """(n,) label of the centroid of largest cosine (ties: the lower label) and that cosine."""
    prod = Products(centroids, device)
    label, sim = np.empty(len(x), np.int64), np.empty(len(x), np.float32)
    step = block_rows(len(centroids), per_value=16)
    for b0 in range(0, len(x), step):
        S = prod(x[b0 : b0 + step])  # (b, c)
        label[b0 : b0 + step] = S.argmax(1)
        sim[b0 : b0 + step] = S[np.arange(len(S)), label[b0 : b0 + step]]
    return label, sim


def _kmeans_pp(x: np.ndarray, c: int, rng: np.random.Generator, device: str) -> np.ndarray:
    """k-means++ seeding with the distance 1 - cosine (= half the squared distance of unit vectors)."""
    centers = [int(rng.integers(len(x)))]
    gap = np.maximum(0.0, 1.0 - Products(x[centers], device)(x)[:, 0].astype(np.float64))  # (n,)
    for _ in range(1, c):
        total = gap.sum()
        nxt = int(rng.choice(len(x), p=gap / total)) if total > 0 else int(rng.integers(len(x)))
        centers.append(nxt)
        gap = np.minimum(gap, np.maximum(0.0, 1.0 - Products(x[[nxt]], device)(x)[:, 0].astype(np.float64)))
    return x[centers].astype(np.float32)


def _lloyd(x: np.ndarray, centroids: np.ndarray, max_iter: int, device: str
           ) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Lloyd iterations from `centroids` until no row changes cluster -> label, cosine to the centroid,
    objective, iterations. Labels are always the assignment to the final centroids."""
    c = len(centroids)
    label, sim = _assign(x, centroids, device)
    it = 0
    for it in range(1, max_iter + 1):
        label, sim = label.copy(), sim.copy()
        for e in np.flatnonzero(np.bincount(label, minlength=c) == 0):  # reseed an emptied cluster
            far = int(np.argmin(sim))  # the row farthest from its centroid
            label[far], sim[far] = e, 1.0
        sums = np.zeros((c, x.shape[1]), np.float64)
        np.add.at(sums, label, x.astype(np.float64))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        new, sim = _assign(x, centroids, device)
        done = np.array_equal(new, label)
        label = new
        if done:
            break
    return label, sim, float(np.sum(1.0 - sim.astype(np.float64))), it


def _renumber(ids: list[str], labels: np.ndarray, reps: np.ndarray, sims: np.ndarray) -> Clusters:
    """Clusters numbered 0.. by decreasing size, ties by their first row."""
    uniq, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    rank = np.lexsort((first, -counts))  # cluster order: size desc, then first row
    number = np.empty(len(uniq), np.int64)
    number[rank] = np.arange(len(uniq))
    return Clusters(ids=ids, cluster=number[inverse], representative=np.asarray(reps, np.int64),
                    similarity=np.asarray(sims, np.float32))


def cluster_lines(c: Clusters, *, header: bool = True):
    """The TSV: '#id cluster representative similarity', one line per row in file order."""
    if header:
        yield "#id\tcluster\trepresentative\tsimilarity\n"
    for i, rid in enumerate(c.ids):
        yield f"{rid}\t{c.cluster[i]}\t{c.ids[c.representative[i]]}\t{c.similarity[i]:.6f}\n"


def size_summary(sizes: np.ndarray, most: int = 30) -> str:
    """'12, 9, 5, 3 x 2, 1 x 20': cluster sizes, largest first, runs of equal sizes counted."""
    parts, i = [], 0
    s = np.sort(np.asarray(sizes))[::-1]
    while i < len(s) and len(parts) < most:
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        parts.append(f"{s[i]}" if j - i == 1 else f"{s[i]} x {j - i}")
        i = j
    return ", ".join(parts) + (", ..." if i < len(s) else "")
