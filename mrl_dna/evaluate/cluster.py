"""Species clustering of genome fragments, scored as DNABERT-S scores it, plus leave-one-out 1-NN accuracy.

    fragments = `per_species` non-overlapping 10 kb pieces per species, spread evenly over its genomes, exactly
                half of them reverse-complemented (both strands; no mutation)
    vectors   = each method's vector of each fragment, prefix k, L2-normalised (normalize(v[:k]))
    K-means   = K = the true number of species, init "random", n_init 3, max_iter 1000, random_state 0..4
                (scikit-learn); adjusted Rand index (and NMI, homogeneity, completeness) per seed, averaged
    draws     = the whole protocol on `draws` independent fragment sets (seeds seed, seed+1, ...), averaged:
                one draw is DNABERT-S's protocol; on these 19 species the draw moves the ARI by 1-5 points
                (measured), as much as the K-means seed, so the full benchmark averages 3
    1-NN      = leave-one-out nearest fragment by cosine; a hit when it is of the same species. Ties count
                against the method (a zero vector, or a best score shared with another species, is a miss)

The K-means protocol is DNABERT-S's (Zhou et al. 2024), evaluate/eval_clustering_classification.py of
github.com/MAGICS-LAB/DNABERT_S: `KMeans(n_clusters=num_clusters, random_state=seed, max_iter=1000,
init="random", n_init=3)` on `sklearn.preprocessing.normalize(embedding)` for seeds 0-4, sequences cut to
10,000 bp for their "reference" genomes. Differences: their sequences are their benchmark's, ours are the
held-out genomes of ../shared/data; their few-shot logistic regression is replaced by the 1-NN accuracy
(no training on the benchmark, one number per method); scikit-learn's version may differ from theirs.

Axis glossary: n fragments, k a prefix dim, s species.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from mrl_dna import console
from mrl_dna.evaluate import retrieval as ev
from mrl_dna.dna import N, revcomp
from mrl_dna.errors import ConfigError
from mrl_dna.vectors import truncate_normalize


@dataclass(frozen=True)
class ClusterConfig:
    # DNABERT-S cuts its reference-genome sequences at 10 kb (max_length = 10000 for "reference")
    fragment_length: int = 10_000
    # the same count for every species (balanced classes); 50 x 10 kb fit in the smallest held-out genome
    # (Akkermansia, first 500 kb of it); quick mode uses fewer
    per_species: int = 50
    rc_fraction: float = 0.5  # exactly this share of each species' fragments is reverse-complemented
    max_n_fraction: float = 0.1  # a piece with more N than this is never drawn (assembly gaps are not signal)
    seed: int = 0  # fragments depend only on (seed, genome name, length, its share), never on other species
    draws: int = 1  # fragment sets drawn with seeds seed, seed+1, ...; every number is averaged over them
    kmeans_seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # DNABERT-S: random_state 0..4, metrics averaged
    n_init: int = 3  # DNABERT-S
    max_iter: int = 1000  # DNABERT-S

    def __post_init__(self) -> None:
        object.__setattr__(self, "kmeans_seeds", tuple(int(s) for s in self.kmeans_seeds))
        if self.fragment_length < 1 or self.per_species < 2:
            raise ConfigError(f"fragment length {self.fragment_length} must be >= 1 and per_species "
                              f"{self.per_species} >= 2 (1-NN needs a second fragment); e.g. --per-species 50")
        if self.draws < 1:
            raise ConfigError(f"draws {self.draws} must be >= 1; e.g. --draws 3")
        if not self.kmeans_seeds:
            raise ConfigError("give at least one K-means seed; e.g. --kmeans-seeds 0,1,2,3,4")


@dataclass(frozen=True)
class ClusterFragments:
    tokens: list[np.ndarray]
    species: np.ndarray  # (n,) int64 index into species_names
    genome: np.ndarray  # (n,) int64 index into the genome list
    record: np.ndarray  # (n,) int64
    start: np.ndarray  # (n,) int64, forward-strand start in the record
    reverse: np.ndarray  # (n,) bool
    species_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class ClusterScore:
    method: str
    dim: int
    n: int
    n_species: int
    ari: float  # mean over fragment draws and K-means seeds
    ari_sd: float  # spread (sd) over K-means seeds, averaged over draws
    ari_sd_draws: float  # sd over draws of each draw's mean ARI (0 for one draw)
    ari_per_seed: tuple[tuple[float, ...], ...]  # (draws, seeds)
    nmi: float
    homogeneity: float
    completeness: float
    knn_top1: float  # leave-one-out 1-NN species accuracy, mean over draws
    knn_per_draw: tuple[float, ...] = ()
    knn_per_species: dict[str, float] = field(default_factory=dict)


@dataclass
class ClusterReport:
    genomes: tuple[str, ...]
    species: tuple[str, ...]
    config: ClusterConfig
    scores: list[ClusterScore] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


# ---- fragments ---------------------------------------------------------------------------------------------
def make_cluster_fragments(genomes: Sequence[ev.Genome], cfg: ClusterConfig) -> ClusterFragments:
    """`per_species` non-overlapping pieces per species: genome j of a species with G genomes gives
    per_species // G pieces (+1 for the first per_species % G), drawn without replacement from the tiling
    [0, L), [L, 2L), ... of each record; pieces with too many N are never drawn."""
    species_names = tuple(dict.fromkeys(g.species for g in genomes))
    toks: list[np.ndarray] = []
    cols: dict[str, list] = {k: [] for k in ("species", "genome", "record", "start", "reverse")}
    L = cfg.fragment_length
    for si, sp in enumerate(species_names):
        members = [gi for gi, g in enumerate(genomes) if g.species == sp]
        share = [cfg.per_species // len(members) + (j < cfg.per_species % len(members)) for j in range(len(members))]
        picked: list[tuple[int, int, int]] = []  # (genome, record, start)
        for gi, count in zip(members, share):
            g = genomes[gi]
            tiles = [(ri, st) for ri, r in enumerate(g.records) for st in range(0, r.size - L + 1, L)
                     if np.count_nonzero(r[st : st + L] == N) <= cfg.max_n_fraction * L]
            if len(tiles) < count:
                raise ConfigError(f"genome {g.name} has {len(tiles)} non-overlapping {L} bp pieces, fewer than the "
                                  f"{count} its species needs; lower --per-species or --fragment-length")
            rng = np.random.default_rng(ev._stable_seed(cfg.seed, g.name, L, count))
            picked += [(gi, *tiles[i]) for i in rng.choice(len(tiles), size=count, replace=False)]
        rng = np.random.default_rng(ev._stable_seed(cfg.seed, sp, L))
        reverse = rng.permutation(len(picked)) < int(round(cfg.rc_fraction * len(picked)))
        for (gi, ri, st), rev in zip(picked, reverse):
            piece = genomes[gi].records[ri][st : st + L]
            toks.append(revcomp(piece) if rev else piece.copy())
            for k, v in (("species", si), ("genome", gi), ("record", ri), ("start", st), ("reverse", bool(rev))):
                cols[k].append(v)
    return ClusterFragments(toks, *(np.asarray(cols[k], dtype=bool if k == "reverse" else np.int64)
                                    for k in ("species", "genome", "record", "start", "reverse")), species_names)


# ---- scoring (pure functions of vectors and labels) --------------------------------------------------------
def kmeans_scores(X: np.ndarray, labels: np.ndarray, cfg: ClusterConfig) -> dict[str, object]:
    """DNABERT-S's K-means on rows of X (already L2-normalised), K = number of distinct labels, one run per
    seed -> ARI per seed and the means of ARI, NMI, homogeneity, completeness."""
    try:
        from sklearn.cluster import KMeans
        from sklearn import metrics
    except ImportError as e:
        raise ConfigError("clustering needs scikit-learn; pip install scikit-learn (or pip install 'mrl-dna[bench]')") from e
    K = int(np.unique(labels).size)
    per: list[tuple[float, float, float, float]] = []
    for seed in cfg.kmeans_seeds:
        with warnings.catch_warnings():  # "fewer distinct clusters than K" (e.g. zero vectors): the ARI says it
            warnings.simplefilter("ignore", category=UserWarning)
            pred = KMeans(n_clusters=K, random_state=seed, max_iter=cfg.max_iter, init="random",
                          n_init=cfg.n_init).fit(np.asarray(X, dtype=np.float64)).labels_
        per.append((metrics.adjusted_rand_score(labels, pred), metrics.normalized_mutual_info_score(labels, pred),
                    metrics.homogeneity_score(labels, pred), metrics.completeness_score(labels, pred)))
    a = np.array(per)  # (seeds, 4)
    return {"ari": float(a[:, 0].mean()), "ari_sd": float(a[:, 0].std()), "ari_per_seed": tuple(a[:, 0].tolist()),
            "nmi": float(a[:, 1].mean()), "homogeneity": float(a[:, 2].mean()), "completeness": float(a[:, 3].mean())}


def loo_nearest_neighbour(X: np.ndarray, labels: np.ndarray, block: int = 1024) -> np.ndarray:
    """(n,) bool: is the leave-one-out nearest row of X (cosine; rows L2-normalised) of the same label?
    Pessimistic ties: any other-label row scoring as high as the best is a miss."""
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    hit = np.zeros(n, dtype=bool)
    for b0 in range(0, n, block):
        S = X[b0 : b0 + block] @ X.T  # (b, n)
        rows = np.arange(S.shape[0])
        S[rows, b0 + rows] = -np.inf  # leave the query out
        best = S.max(axis=1, keepdims=True)
        tied = S >= best  # (b, n)
        other = labels[None, :] != labels[b0 : b0 + block, None]
        hit[b0 : b0 + block] = ~(tied & other).any(axis=1)
    return hit


def score_vectors(name: str, V: np.ndarray, fr: ClusterFragments, cfg: ClusterConfig,
                  dims: Sequence[int] | None = None) -> list[ClusterScore]:
    """One ClusterScore per prefix dim of the vectors V (n, D)."""
    D = V.shape[1]
    out = []
    for k in tuple(dims) if dims else (D,):
        if k > D:
            raise ConfigError(f"dim {k} exceeds {name}'s width {D}; pick dims <= {D}")
        X = truncate_normalize(V, k)  # (n, k)
        km = kmeans_scores(X, fr.species, cfg)
        nn = loo_nearest_neighbour(X, fr.species)
        per_sp = {sp: float(nn[fr.species == si].mean()) for si, sp in enumerate(fr.species_names)}
        out.append(ClusterScore(name, k, len(fr), len(fr.species_names), km["ari"], km["ari_sd"], 0.0,
                                (km["ari_per_seed"],), km["nmi"], km["homogeneity"], km["completeness"],
                                float(nn.mean()), (float(nn.mean()),), per_sp))
    return out


def combine_draws(per_draw: Sequence[ClusterScore]) -> ClusterScore:
    """Scores of one method and dim on several fragment draws -> one score: means, and the sd over draws."""
    first = per_draw[0]
    mean = lambda key: float(np.mean([getattr(s, key) for s in per_draw]))  # noqa: E731
    aris = [s.ari for s in per_draw]
    species = list(first.knn_per_species)
    return ClusterScore(first.method, first.dim, first.n, first.n_species, mean("ari"), mean("ari_sd"),
                        float(np.std(aris)), tuple(p for s in per_draw for p in s.ari_per_seed), mean("nmi"),
                        mean("homogeneity"), mean("completeness"), mean("knn_top1"),
                        tuple(s.knn_top1 for s in per_draw),
                        {sp: float(np.mean([s.knn_per_species[sp] for s in per_draw])) for sp in species})


def run_cluster_benchmark(genomes: Sequence[ev.Genome], methods: Sequence[ev.Method], cfg: ClusterConfig = ClusterConfig(),
                          *, fragments: Sequence[ClusterFragments] | None = None) -> ClusterReport:
    """Every method on the same `cfg.draws` fragment sets (or the given ones), each score averaged over them."""
    draws = list(fragments) if fragments is not None else [
        make_cluster_fragments(genomes, dataclasses.replace(cfg, seed=cfg.seed + i)) for i in range(cfg.draws)]
    fr0 = draws[0]
    if len(fr0.species_names) < 2:
        raise ConfigError(f"{len(fr0.species_names)} species given; clustering needs at least 2")
    console.info(f"cluster: {len(genomes)} genomes, {len(fr0.species_names)} species, {len(draws)} draw(s) of "
                 f"{len(fr0)} fragments of {cfg.fragment_length} bp")
    report = ClusterReport(tuple(g.name for g in genomes), tuple(g.species for g in genomes), cfg)
    for m in methods:
        timer = console.Timer()
        per_draw = []
        for fr in draws:
            V = np.asarray(m.embed(fr.tokens), dtype=np.float32)  # (n, D)
            per_draw.append(score_vectors(m.name, V, fr, cfg, m.dims))
        report.scores.extend(combine_draws(by_dim) for by_dim in zip(*per_draw))
        report.seconds[m.name] = timer.seconds
        console.info(f"cluster: {m.name}: {timer.seconds:.1f} s")
    return report


# ---- rendering -------------------------------------------------------------------------------------------
def format_cluster_markdown(report: ClusterReport, *, title: str = "Species clustering of 10 kb fragments") -> str:
    cfg = report.config
    s0 = report.scores[0] if report.scores else None
    lines = [f"### {title}", ""]
    if s0 is not None:
        seeds = ",".join(str(cfg.seed + i) for i in range(cfg.draws))
        lines += [f"{s0.n} fragments of {cfg.fragment_length:,} bp per draw ({cfg.per_species} per species, {s0.n_species} "
                  f"species, half reverse-complemented), {cfg.draws} draw(s) (fragment seeds {seeds}). K-means as "
                  f"DNABERT-S: L2-normalised vectors, K = {s0.n_species}, init random, n_init {cfg.n_init}, max_iter "
                  f"{cfg.max_iter}, random_state {','.join(map(str, cfg.kmeans_seeds))}; ARI and NMI averaged over seeds "
                  "and draws (sd seeds = spread over K-means seeds; sd draws = spread of the draw means). 1-NN = "
                  "leave-one-out nearest fragment by cosine, % of the same species (ties count as misses).", ""]
    lines += ["| method | dims | K-means ARI | sd seeds | sd draws | NMI | 1-NN species top-1 |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for s in report.scores:
        lines.append(f"| {s.method} | {s.dim} | {100 * s.ari:.1f} | {100 * s.ari_sd:.1f} | {100 * s.ari_sd_draws:.1f} | "
                     f"{100 * s.nmi:.1f} | {100 * s.knn_top1:.1f} |")
    return "\n".join(lines) + "\n"
