"""Fragment-retrieval benchmark: how well does a short fragment find the genome (and species) it came from?

    database = one vector per genome (all records of a genome file, joined by one N)
    queries  = fragments of given lengths cut from those genomes, mutated at given divergences
               (substitutions plus small indels), half of them reverse-complemented
    score    = cosine of query vs database at each Matryoshka prefix k (normalize(v[:k]))
    metrics  = species top-1, genome top-1, genome recall@k, and retention = accuracy at k / at full width

Anything that maps a list of token arrays to vectors (n, D) is an *embedder*, so the same code scores the
mrl-dna model at every Matryoshka dim, k-mer profiles (mrl_dna.kmer), or a second model. Tools that do not
produce vectors (sourmash, mash: scripts/bench/retrieval.py) hand a score matrix to `retrieval_metrics`,
so every method is measured by the same function on the same fragments.

Ties are scored pessimistically for everyone: a query whose best score is shared by genomes of another
species (e.g. an empty sketch: every score 0) is a species miss, and the rank of the true genome counts every
genome scoring at least as high. A method that cannot tell genomes apart gets no credit for luck.

Axis glossary: q queries (fragments), g genomes (database rows), D embedder width, k a prefix dim.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrl_dna import console
from mrl_dna.dna import N, revcomp
from mrl_dna.embed import EmbedOptions, embed_sequences
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.evolve import mutate  # one simulated-evolution function for training and evaluation
from mrl_dna.inputs.fasta import Record, read_fasta
from mrl_dna.inputs.genomes import genome_name, group_of, manifest_group
from mrl_dna.vectors import truncate_normalize

Embedder = Callable[[Sequence[np.ndarray]], np.ndarray]  # list of q uint8 token arrays -> (q, D) float


# ---- configuration ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FragmentConfig:
    """How query fragments are cut and mutated. The defaults are issue 3's benchmark."""

    lengths: tuple[int, ...] = (2000,)  # 2 kb: a short contig / read chunk, about one model window
    divergences: tuple[float, ...] = (0.0, 0.05, 0.10, 0.20)  # per-base event rate; 20% ~ different genus
    per_genome: int = 50  # fragments per genome, length and divergence: 50 x 9 genomes ~ +-2% resolution
    seed: int = 0  # fragments depend only on (seed, genome name, length), never on the other genomes
    # Mutations are mrl_dna.evolve.mutate's (the training sampler's simulated evolution), with a lower
    # indel share than training uses (0.2), so the benchmark is not exactly the training distribution.
    indel_fraction: float = 0.1  # share of mutation events that are indels (~1 in 10 in bacterial alignments)
    max_indel: int = 3  # "small" indels: lengths ~ geometric(0.5) capped at 3
    rc_fraction: float = 0.5  # exactly this share of fragments is reverse-complemented (strand must not matter)
    max_n_fraction: float = 0.1  # a fragment with more N than this is redrawn (assembly gaps are not signal)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lengths", tuple(int(x) for x in self.lengths))
        object.__setattr__(self, "divergences", tuple(float(x) for x in self.divergences))
        if not self.lengths or min(self.lengths) < 1:
            raise ConfigError(f"fragment lengths {list(self.lengths)} must be >= 1 bp; e.g. --fragments 2000")
        if not self.divergences or any(not 0.0 <= d < 1.0 for d in self.divergences):
            raise ConfigError(f"divergences {list(self.divergences)} must lie in [0, 1); e.g. --divergence 0,0.05,0.1")
        if self.per_genome < 1:
            raise ConfigError(f"fragments per genome {self.per_genome} must be >= 1; e.g. --per-genome 50")
        if not 0.0 <= self.indel_fraction <= 1.0 or self.max_indel < 1:
            raise ConfigError(f"indel_fraction {self.indel_fraction} must be in [0, 1] and max_indel {self.max_indel} >= 1")
        if not 0.0 <= self.rc_fraction <= 1.0:
            raise ConfigError(f"rc_fraction {self.rc_fraction} must be in [0, 1]")


# ---- data --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Genome:
    """One database entry: a genome file (all its records) with its species label."""

    name: str  # file name without FASTA/gzip suffixes; unique within a benchmark
    species: str
    records: tuple[np.ndarray, ...]  # uint8 token arrays, one per FASTA record
    path: str = ""

    @property
    def length(self) -> int:
        return int(sum(r.size for r in self.records))

    @property
    def tokens(self) -> np.ndarray:
        """All records joined by one N, so no k-mer (and no model window's content) is invented at a junction."""
        parts: list[np.ndarray] = []
        for i, r in enumerate(self.records):
            if i:
                parts.append(np.array([N], dtype=np.uint8))
            parts.append(r)
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)


@dataclass(frozen=True)
class Fragments:
    """The queries, shared by every method. Arrays are (q,), aligned with `tokens`."""

    tokens: list[np.ndarray]
    genome: np.ndarray  # int64 index into the genome list (the true database row)
    length: np.ndarray  # int64 nominal fragment length (before indels)
    divergence: np.ndarray  # float64
    record: np.ndarray  # int64 record index inside the genome
    start: np.ndarray  # int64 0-based start inside that record (forward strand)
    reverse: np.ndarray  # bool: reverse-complemented
    identity: np.ndarray  # float64 identity to the source that the mutations made (matches / alignment columns)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Method:
    """A way to embed sequences, scored at the given prefix dims (None = its full width only)."""

    name: str
    embed: Embedder
    dims: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Score:
    """One result row: one method at one prefix dim on one (fragment length, divergence) cell."""

    method: str
    dim: int
    fragment_length: int
    divergence: float
    n: int  # queries in the cell
    species_top1: float
    genome_top1: float
    recall: tuple[tuple[int, float], ...]  # (k, genome recall@k)
    db_rows: int

    @property
    def cost(self) -> int:
        """Multiply-adds per query for brute-force search: dims x database rows."""
        return self.dim * self.db_rows


@dataclass(frozen=True)
class Report:
    genomes: tuple[str, ...]
    species: tuple[str, ...]
    config: FragmentConfig
    recall_k: tuple[int, ...]
    scores: list[Score] = field(default_factory=list)
    full_dims: dict[str, int] = field(default_factory=dict)  # method -> width used for "retention"
    identity: dict[float, float] = field(default_factory=dict)  # divergence -> mean identity of its fragments

    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.scores))

    def dims(self, method: str) -> list[int]:
        return sorted({s.dim for s in self.scores if s.method == method})

    def get(self, method: str, dim: int, length: int, divergence: float) -> Score:
        for s in self.scores:
            if (s.method, s.dim, s.fragment_length, s.divergence) == (method, dim, length, divergence):
                return s
        raise KeyError((method, dim, length, divergence))


# ---- genomes and species labels ----------------------------------------------------------------------------
def species_from_name(name: str) -> str:
    """Fallback label: the genome name up to its first '_' (`Ecoli_K12_MG1655` -> `Ecoli`). Give a
    --species TSV when file names do not start with the species."""
    return name.split("_", 1)[0]


def load_genomes(paths: Sequence[str | Path], *, species: dict[str, str] | None = None) -> list[Genome]:
    """Read genome FASTA files (one genome per file) and label each with its species: from `species`
    (a `genomes.read_groups` TSV: keys path, file name or genome name), else a MANIFEST.tsv next to the
    files, else the file name."""
    genomes: list[Genome] = []
    seen: dict[str, str] = {}
    for path in paths:
        name = genome_name(path)
        if name in seen:
            raise InputError(f"genomes {seen[name]} and {path} have the same name {name!r}; rename one of them")
        seen[name] = str(path)
        records = tuple(r.tokens for r in read_fasta([path]) if r.tokens.size)
        if not records:
            raise InputError(f"genome {path} has no sequence; remove it from the benchmark")
        label = None
        if species is not None:
            label = group_of(species, path)
            if label is None:
                raise InputError(f"genome {path} is not in the species TSV; add a line '{name}<TAB>species'")
        label = label or manifest_group(path) or species_from_name(name)
        genomes.append(Genome(name=name, species=label, records=records, path=str(path)))
    if not genomes:
        raise InputError("no genome files given; pass at least two FASTA files")
    return genomes


# ---- fragments -------------------------------------------------------------------------------------------
def _stable_seed(*parts: object) -> list[int]:
    return [zlib.crc32(str(p).encode()) for p in parts]


def make_fragments(genomes: Sequence[Genome], cfg: FragmentConfig) -> Fragments:
    """Cut `per_genome` fragments per genome and length, then mutate each at every divergence: the same
    starting fragments at every divergence (paired comparison; divergence 0 = the exact genome sequence)."""
    toks: list[np.ndarray] = []
    cols: dict[str, list] = {k: [] for k in ("genome", "length", "divergence", "record", "start", "reverse", "identity")}
    for gi, g in enumerate(genomes):
        for length in cfg.lengths:
            rng = np.random.default_rng(_stable_seed(cfg.seed, g.name, length))
            picks = _pick_fragments(g, length, cfg, rng)
            n_rc = int(round(cfg.rc_fraction * cfg.per_genome))
            reverse = rng.permutation(cfg.per_genome) < n_rc
            for di, div in enumerate(cfg.divergences):
                mrng = np.random.default_rng(_stable_seed(cfg.seed, g.name, length, div))
                for (ri, st), rev in zip(picks, reverse):
                    frag, log = mutate(g.records[ri][st : st + length], div, mrng,
                                       indel_fraction=cfg.indel_fraction, max_indel=cfg.max_indel)
                    toks.append(revcomp(frag) if rev else frag)
                    for k, v in (("genome", gi), ("length", length), ("divergence", div), ("record", ri),
                                 ("start", st), ("reverse", bool(rev)), ("identity", log.identity)):
                        cols[k].append(v)
    return Fragments(
        tokens=toks,
        genome=np.asarray(cols["genome"], dtype=np.int64),
        length=np.asarray(cols["length"], dtype=np.int64),
        divergence=np.asarray(cols["divergence"], dtype=np.float64),
        record=np.asarray(cols["record"], dtype=np.int64),
        start=np.asarray(cols["start"], dtype=np.int64),
        reverse=np.asarray(cols["reverse"], dtype=bool),
        identity=np.asarray(cols["identity"], dtype=np.float64),
    )


def _pick_fragments(g: Genome, length: int, cfg: FragmentConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(record, start) of `per_genome` fragments, uniform over all positions where a whole fragment fits in
    one record (never across a contig junction), redrawing fragments with too many N."""
    room = np.array([max(r.size - length + 1, 0) for r in g.records], dtype=np.int64)
    if room.sum() == 0:
        longest = max(r.size for r in g.records)
        raise ConfigError(
            f"genome {g.name}: longest record is {longest} bp, shorter than the fragment length {length}; "
            "use shorter --fragments or drop this genome"
        )
    p = room / room.sum()
    out: list[tuple[int, int]] = []
    tries = 0
    while len(out) < cfg.per_genome:
        tries += 1
        if tries > 100 * cfg.per_genome:
            raise ConfigError(
                f"genome {g.name}: fewer than {cfg.per_genome} fragments of {length} bp with <= "
                f"{cfg.max_n_fraction:.0%} N; the genome is mostly N"
            )
        ri = int(rng.choice(room.size, p=p))
        st = int(rng.integers(0, room[ri]))
        if np.count_nonzero(g.records[ri][st : st + length] == N) <= cfg.max_n_fraction * length:
            out.append((ri, st))
    return out


# ---- scoring ---------------------------------------------------------------------------------------------
def retrieval_metrics(scores: np.ndarray, true_genome: np.ndarray, genome_species: np.ndarray,
                      ks: Sequence[int] = (5,)) -> dict[str, object]:
    """Metrics from a score matrix (q, g), higher = more similar (NaN = no hit: the true genome is then not
    found at any k, and an all-NaN row is a species miss).

    Returns species_top1, genome_top1 (fractions) and recall: {k: fraction with the true genome's
    pessimistic rank <= k}. Ties count against the method (see the module docstring)."""
    S = np.where(np.isnan(scores), -np.inf, np.asarray(scores, dtype=np.float64))  # (q, g)
    q = S.shape[0]
    if q == 0:
        return {"species_top1": float("nan"), "genome_top1": float("nan"), "recall": {k: float("nan") for k in ks}}
    true_s = S[np.arange(q), true_genome]  # (q,)
    rank = (S >= true_s[:, None]).sum(axis=1)  # (q,) pessimistic 1-based rank of the true genome
    rank = np.where(np.isfinite(true_s), rank, S.shape[1] + 1)  # no score for the true genome: never found
    best = S.max(axis=1, keepdims=True)
    top = S == best  # (q, g) every genome sharing the best score
    same = genome_species[None, :] == genome_species[true_genome][:, None]  # (q, g)
    species_hit = ~(top & ~same).any(axis=1) & np.isfinite(best[:, 0])
    return {
        "species_top1": float(species_hit.mean()),
        "genome_top1": float((rank == 1).mean()),
        "recall": {int(k): float((rank <= k).mean()) for k in ks},
    }


def score_matrix_metrics(name: str, scores: np.ndarray, fragments: Fragments, genomes: Sequence[Genome],
                         *, dim: int = 0, ks: Sequence[int] = (5,)) -> list[Score]:
    """Score rows for a method that produces a score matrix (q, g) directly (sourmash, mash)."""
    species = _species_index(genomes)
    out = []
    for length, div, idx in _cells(fragments):
        m = retrieval_metrics(scores[idx], fragments.genome[idx], species, ks)
        out.append(Score(name, dim, length, div, int(idx.size), m["species_top1"], m["genome_top1"],
                         tuple(m["recall"].items()), len(genomes)))
    return out


def score_vectors(name: str, query: np.ndarray, db: np.ndarray, fragments: Fragments, genomes: Sequence[Genome],
                  *, dims: Sequence[int] | None = None, ks: Sequence[int] = (5,)) -> list[Score]:
    """Score rows for vectors: query (q, D) and database (g, D), cosine at each prefix dim."""
    D = query.shape[1]
    dims = tuple(dims) if dims else (D,)
    if max(dims) > D:
        raise ConfigError(f"dim {max(dims)} exceeds {name}'s width {D}; pick dims <= {D}")
    out = []
    for k in dims:
        S = truncate_normalize(query, k) @ truncate_normalize(db, k).T  # (q, g)
        out.extend(score_matrix_metrics(name, S, fragments, genomes, dim=k, ks=ks))
    return out


def run_benchmark(genomes: Sequence[Genome], methods: Sequence[Method], cfg: FragmentConfig = FragmentConfig(),
                  *, recall_k: Sequence[int] = (5,), fragments: Fragments | None = None) -> Report:
    """Embed the genomes and the (shared) fragments with each method and score them."""
    if len(genomes) < 2:
        raise ConfigError(f"{len(genomes)} genome given; retrieval needs at least 2 genomes in the database")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ConfigError(f"method names {names} must be unique")
    frags = fragments if fragments is not None else make_fragments(genomes, cfg)
    console.info(f"eval: {len(genomes)} genomes, {len(set(g.species for g in genomes))} species, "
                 f"{len(frags):,} fragments, methods: {', '.join(names)}")
    report = Report(tuple(g.name for g in genomes), tuple(g.species for g in genomes), cfg, tuple(recall_k))
    report.identity.update(fragment_identity(frags))
    db_tokens = [g.tokens for g in genomes]
    for m in methods:
        timer = console.Timer()
        db = np.asarray(m.embed(db_tokens), dtype=np.float32)  # (g, D)
        qv = np.asarray(m.embed(frags.tokens), dtype=np.float32)  # (q, D)
        if db.shape[0] != len(genomes) or qv.shape[0] != len(frags) or db.shape[1] != qv.shape[1]:
            raise ConfigError(f"method {m.name} returned {db.shape} and {qv.shape}; expected ({len(genomes)}, D) "
                              f"and ({len(frags)}, D)")
        report.scores.extend(score_vectors(m.name, qv, db, frags, genomes, dims=m.dims, ks=recall_k))
        report.full_dims[m.name] = max(m.dims) if m.dims else db.shape[1]
        console.info(f"eval: {m.name}: embedded {len(genomes):,} genomes + {len(frags):,} fragments in {timer.seconds:.1f} s")
    return report


def fragment_identity(fr: Fragments) -> dict[float, float]:
    """Mean identity (matches / alignment columns) of the fragments at each divergence."""
    return {float(d): float(fr.identity[fr.divergence == d].mean()) for d in sorted(set(fr.divergence.tolist()))}


def _species_index(genomes: Sequence[Genome]) -> np.ndarray:
    labels = {s: i for i, s in enumerate(dict.fromkeys(g.species for g in genomes))}
    return np.array([labels[g.species] for g in genomes], dtype=np.int64)


def _cells(fr: Fragments):
    for length in sorted(set(fr.length.tolist())):
        for div in sorted(set(fr.divergence.tolist())):
            idx = np.flatnonzero((fr.length == length) & (fr.divergence == div))
            if idx.size:
                yield int(length), float(div), idx


# ---- model embedders -----------------------------------------------------------------------------------
class ModelEmbedder:
    """An mrl-dna model as an embedder: one vector per token array through `mrl_dna.embed.embed_sequences`
    (windows, pooling, projection exactly as `mrl-dna embed`). Records that embed to nothing (all N) get a
    zero vector, which scores as a miss."""

    def __init__(self, model, *, batch_tokens: int | None = None, device: str = "cpu", label: str = "") -> None:
        self.model = model
        self.batch_tokens = batch_tokens  # None: embed's default
        self.device = device
        self.label = label or str(model.info.name)
        self.dim = int(model.info.dim)

    def __call__(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        recs = [Record(id=f"s{i}", description="", tokens=np.asarray(s, dtype=np.uint8), source="eval")
                for i, s in enumerate(seqs)]
        options = EmbedOptions(device=self.device, batch_tokens=self.batch_tokens)
        out = np.zeros((len(recs), self.dim), dtype=np.float32)  # (q, D)
        with console.progress(f"embedding {len(recs)} sequences ({self.label})", sum(r.tokens.size for r in recs)) as bar:
            for i, er in enumerate(embed_sequences(recs, model=self.model, options=options, progress=bar)):
                if er.status == "ok":
                    out[i] = er.vector
        return out


def model_method(model, name: str, dims: Sequence[int] | None = None, *, device: str = "cpu",
                 batch_tokens: int | None = None) -> Method:
    """A Method for a loaded model, scored at `dims` (default: its Matryoshka dims) plus its full width.
    Prefixes wider than the model are dropped, so a --no-matryoshka baseline (trained at its full width
    only) is shown at the same prefixes as the main model: the comparison of the Matryoshka paper."""
    D = int(model.info.dim)
    want = tuple(dims) if dims else tuple(model.info.matryoshka_dims)
    use = tuple(sorted({int(k) for k in want if k <= D} | {D}))  # full width always: retention is relative to it
    return Method(name, ModelEmbedder(model, batch_tokens=batch_tokens, device=device, label=name), use)


def check_dims(dims: Sequence[int], model_dims: Sequence[int], model_name: str) -> tuple[int, ...]:
    """Dims asked for on the command line must be Matryoshka dims the model was trained with."""
    bad = [k for k in dims if k not in model_dims]
    if bad:
        raise ConfigError(
            f"dims {bad} are not Matryoshka dims of model {model_name} (it has {list(model_dims)}); "
            f"pick from {','.join(map(str, model_dims))}"
        )
    return tuple(sorted(set(int(k) for k in dims)))
