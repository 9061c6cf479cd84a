"""Fragment -> window retrieval: does a 2 kb fragment find its species, and its locus, among the 2 kb windows
of reference genomes that include its close relatives?

    database = every window of every reference (size 2048, stride 1000 -- `mrl-dna embed --save-windows
               --window 2048 --stride 1000 --windows-stride 1000`; windows more than half N are skipped, as embed skips them)
    queries  = 2 kb fragments cut from the references at 0-30% divergence (evaluate.retrieval.make_fragments:
               substitutions + small indels by mrl_dna.evolve.mutate, half reverse-complemented)
    vectors  = cosine of the query vector and each window vector at every prefix dim; the best window is the hit
    aligners = minimap2 -x asm20 (chaining score) / blastn (bitscore) against the same reference sequences;
               the best alignment is the hit; a query with no alignment is a miss
    species top-1 = the hit's genome is of the query's species
    locus top-1   = the hit lies in the query's source genome and record and overlaps [start, start + length)
               of the fragment's origin by >= 1 bp

Ties count against the method, as in evaluate.retrieval: every window (alignment) that scores as high as the
best must be a hit, so a zero vector (all windows tie) is a miss.

A model embeds the references exactly as `mrl-dna embed --save-windows` does (mrl_dna.embed.embed_sequences,
window vectors through `model.window_outputs`), and each query as one sequence (a 2 kb fragment is one model
window of 2048: its record vector is its window's output). k-mer embedders see the same window spans. With
`store_dir`, a model's references go through `embed_fasta` into an HDF5 file there instead (the file
`mrl-dna embed --save-windows` writes; record names g<genome>_r<record>, see `target_name`), whose windows are
scored here and which `scripts/bench/windows.py --via-search` also searches with `mrl-dna search --level windows`.

Axis glossary: q queries, w windows of the database, D method width, k a prefix dim.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np

from mrl_dna import console
from mrl_dna.evaluate import retrieval as ev
from mrl_dna.dna import decode
from mrl_dna.embed import EmbedOptions, embed_fasta, embed_sequences
from mrl_dna.errors import ConfigError
from mrl_dna.inputs.fasta import Record
from mrl_dna.store import EmbeddingStore
from mrl_dna.vectors import truncate_normalize
from mrl_dna.windows import WindowConfig, split_windows

DIVERGENCES = (0.0, 0.05, 0.10, 0.20, 0.30)


@dataclass(frozen=True)
class WindowBenchConfig:
    window: int = WindowConfig.size  # "2 kb windows": the v1 model's window, so each database window is one model window
    stride: int = 1000  # issue 11/14: stride 1 kb, so every 2 kb fragment overlaps windows by >= half
    max_n_fraction: float = WindowConfig.max_n_fraction  # embed's default: mostly-N windows are not in the database
    fragments: ev.FragmentConfig = field(default_factory=lambda: ev.FragmentConfig(
        lengths=(2000,), divergences=DIVERGENCES, per_genome=50, seed=0))

    def __post_init__(self) -> None:
        WindowConfig(size=self.window, stride=self.stride, max_n_fraction=self.max_n_fraction)  # validates


@dataclass(frozen=True, eq=False)
class Spans:
    """Intervals on the references: (n,) arrays. Windows of the database, or the origins of the queries."""

    genome: np.ndarray  # int64 index into the reference list
    record: np.ndarray  # int64 record index inside that genome
    start: np.ndarray  # int64, 0-based, forward strand
    end: np.ndarray  # int64, exclusive

    def __len__(self) -> int:
        return int(self.genome.size)


def window_spans_of(genomes: Sequence[ev.Genome], cfg: WindowBenchConfig) -> Spans:
    """The database windows of every record of every genome, in order (genome, record, start)."""
    wc = WindowConfig(size=cfg.window, stride=cfg.stride, max_n_fraction=cfg.max_n_fraction)
    cols: list[list[np.ndarray]] = [[], [], [], []]
    for gi, g in enumerate(genomes):
        for ri, r in enumerate(g.records):
            sp = split_windows(r, wc).spans  # (k, 2)
            for c, v in zip(cols, (np.full(len(sp), gi), np.full(len(sp), ri), sp[:, 0], sp[:, 1])):
                c.append(np.asarray(v, dtype=np.int64))
    return Spans(*(np.concatenate(c) if c else np.zeros(0, np.int64) for c in cols))


def query_origins(fr: ev.Fragments) -> Spans:
    return Spans(fr.genome, fr.record, fr.start, fr.start + fr.length)


# ---- embedding the database -------------------------------------------------------------------------------
def embed_windows(method: ev.Method, genomes: Sequence[ev.Genome], windows: Spans, cfg: WindowBenchConfig) -> np.ndarray:
    """(w, D) vectors of the database windows: a model through embed_sequences(save_windows=True) on whole
    records (what `mrl-dna embed --save-windows` stores), any other embedder on the window sequences."""
    if not isinstance(method.embed, ev.ModelEmbedder):
        seqs = [genomes[g].records[r][s:e] for g, r, s, e in zip(windows.genome, windows.record, windows.start, windows.end)]
        return np.asarray(method.embed(seqs), dtype=np.float32)
    emb = method.embed
    recs = [Record(id=f"g{gi}_r{ri}", description="", tokens=r, source="bench")
            for gi, g in enumerate(genomes) for ri, r in enumerate(g.records)]
    parts, spans = [], []
    total = sum(r.tokens.size for r in recs)
    with console.progress(f"embedding windows of {len(genomes)} references ({method.name})", total) as bar:
        for er in embed_sequences(recs, model=emb.model, options=_window_options(emb, cfg), progress=bar):
            if er.status == "ok":
                parts.append(er.window_vectors)
                spans.append(er.window_spans)
    got = np.concatenate(spans) if spans else np.zeros((0, 2), np.int64)
    if not np.array_equal(got, np.stack([windows.start, windows.end], axis=1)):
        raise ConfigError(f"{method.name}: embed's windows differ from the benchmark's ({len(got)} vs {len(windows)}); "
                          "mrl_dna.windows and this benchmark disagree on the window layout")
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, emb.dim), np.float32)


def _window_options(emb: ev.ModelEmbedder, cfg: WindowBenchConfig) -> EmbedOptions:
    """embed's options for the database windows: the benchmark's window, stride and max N, the embedder's
    device and batch size, saved windows."""
    return EmbedOptions(window=cfg.window, stride=cfg.stride, max_n_fraction=cfg.max_n_fraction, device=emb.device,
                        batch_tokens=emb.batch_tokens, save_windows=True, windows_stride=cfg.stride)


def embed_windows_to_store(method: ev.Method, genomes: Sequence[ev.Genome], windows: Spans, cfg: WindowBenchConfig,
                           path: Path) -> np.ndarray:
    """(w, D) vectors of the database windows of a model, through `embed_fasta(save_windows=True)` into `path`
    (what `mrl-dna embed REFS.fa --save-windows --window W --stride S -o PATH` writes), read back from it."""
    emb = method.embed
    refs = write_fasta(Path(path).with_suffix(".fa"), [target_name(gi, ri) for gi, g in enumerate(genomes)
                                                        for ri in range(len(g.records))],
                       [r for g in genomes for r in g.records])
    embed_fasta([refs], model=emb.model, output=Path(path), options=replace(_window_options(emb, cfg), overwrite=True))
    with EmbeddingStore.open(path) as st:
        t = st.windows()
        got = np.stack([t.start, t.end], axis=1)
        rec = [parse_target(st.ids[r]) for r in t.record]
        if not (np.array_equal(got, np.stack([windows.start, windows.end], axis=1))
                and [(g, r) for g, r in rec] == list(zip(windows.genome.tolist(), windows.record.tolist()))):
            raise ConfigError(f"{method.name}: {path}'s windows differ from the benchmark's ({len(got)} vs "
                              f"{len(windows)}); mrl_dna.windows and this benchmark disagree on the window layout")
        return t.read(normalize=False).astype(np.float32)


# ---- judging hits ----------------------------------------------------------------------------------------
def _ok(q: Spans, q_sp: np.ndarray, t: Spans, t_sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Broadcast judge: species and locus agreement of queries q (b, 1) with targets t (1, w) or (b, w)."""
    species = t_sp == q_sp
    locus = (t.genome == q.genome) & (t.record == q.record) & (t.start < q.end) & (t.end > q.start)
    return species, locus


def vector_hits(Q: np.ndarray, W: np.ndarray, origins: Spans, windows: Spans, genome_species: np.ndarray,
                block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Best window of each query by cosine (rows of Q (q, k) and W (w, k) already L2-normalised) ->
    (species hit (q,), locus hit (q,)) bool, ties against the method."""
    q = Q.shape[0]
    sp_hit, loc_hit = np.zeros(q, bool), np.zeros(q, bool)
    w_sp = genome_species[windows.genome][None, :]  # (1, w)
    wt = Spans(*(a[None, :] for a in (windows.genome, windows.record, windows.start, windows.end)))
    for b0 in range(0, q, block):
        sl = slice(b0, b0 + block)
        S = Q[sl] @ W.T  # (b, w)
        tied = S >= S.max(axis=1, keepdims=True)  # (b, w) every window as good as the best
        qo = Spans(*(a[sl, None] for a in (origins.genome, origins.record, origins.start, origins.end)))
        species, locus = _ok(qo, genome_species[origins.genome[sl]][:, None], wt, w_sp)
        sp_hit[sl] = ~(tied & ~species).any(axis=1)
        loc_hit[sl] = ~(tied & ~locus).any(axis=1)
    return sp_hit, loc_hit


def top_window_hits(fr: ev.Fragments, genomes: Sequence[ev.Genome], contig: Sequence[str], start: np.ndarray,
                    end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Species and locus hit (q,) of one window per query, given by its record (target_name; '' = no hit) and
    [start, end), as `mrl-dna search --level windows -k 1` reports it."""
    species_names = tuple(dict.fromkeys(g.species for g in genomes))
    gsp = np.array([species_names.index(g.species) for g in genomes], dtype=np.int64)
    found = np.array([bool(c) for c in contig])
    gr = np.array([parse_target(c) if c else (0, 0) for c in contig], dtype=np.int64).reshape(-1, 2)
    t = Spans(gr[:, 0], gr[:, 1], np.asarray(start, np.int64), np.asarray(end, np.int64))
    species, locus = _ok(query_origins(fr), gsp[fr.genome], t, gsp[t.genome])
    return species & found, locus & found


def score_top_windows(name: str, dim: int, fr: ev.Fragments, genomes: Sequence[ev.Genome], species_hit: np.ndarray,
                      locus_hit: np.ndarray) -> list[WindowScore]:
    """WindowScores (one per divergence) of per-query hits found outside run_window_benchmark."""
    species_names = tuple(dict.fromkeys(g.species for g in genomes))
    gsp = np.array([species_names.index(g.species) for g in genomes], dtype=np.int64)
    return _cells(name, dim, fr, species_hit, locus_hit, np.zeros(len(fr), bool), species_names, gsp)


@dataclass(frozen=True)
class Hit:
    """One alignment of a query: the target interval and the score that ranks it (higher = better)."""

    genome: int
    record: int
    start: int
    end: int
    score: float


def aligner_hits(best: Sequence[Sequence[Hit]], origins: Spans, genome_species: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query the best-scoring alignments (ties: all of them) -> (species hit, locus hit, no hit) (q,) bool."""
    q = len(origins)
    sp_hit, loc_hit, none = np.zeros(q, bool), np.zeros(q, bool), np.zeros(q, bool)
    for i in range(q):
        hits = best[i]
        if not hits:
            none[i] = True
            continue
        t = Spans(*(np.array([getattr(h, k) for h in hits]) for k in ("genome", "record", "start", "end")))
        qo = Spans(*(a[i : i + 1] for a in (origins.genome, origins.record, origins.start, origins.end)))
        species, locus = _ok(qo, genome_species[origins.genome[i]], t, genome_species[t.genome])
        sp_hit[i], loc_hit[i] = bool(species.all()), bool(locus.all())
    return sp_hit, loc_hit, none


def best_by_score(hits: Sequence[tuple[int, Hit]], n_queries: int) -> list[list[Hit]]:
    """(query index, Hit) pairs -> per query the hits with the highest score (all of them on a tie)."""
    out: list[list[Hit]] = [[] for _ in range(n_queries)]
    for qi, h in hits:
        cur = out[qi]
        if not cur or h.score > cur[0].score:
            out[qi] = [h]
        elif h.score == cur[0].score:
            cur.append(h)
    return out


# ---- aligners ----------------------------------------------------------------------------------------------
class Aligner(str, Enum):
    # minimap2 -x asm20 as issue 11 names it: chaining only, no -c. With -c (base-level alignment) the 2 kb
    # queries at 20% divergence lose almost every hit (measured: 0.4% vs ~60% without), so plain is the fair row
    MINIMAP2 = "minimap2"  # best primary alignment by chaining score (s1)
    DC_MEGABLAST = "dc-megablast"  # blastn -task dc-megablast: discontiguous seeds, made for cross-species
    BLASTN = "blastn"  # blastn -task blastn: word 11, the most sensitive nucleotide task of the three

    @property
    def program(self) -> str:
        return "minimap2" if self is Aligner.MINIMAP2 else "blastn"


BLAST_EVALUE = 1e-5  # a best hit must be significant; no hit above it = a miss


def aligner_available(a: Aligner) -> bool:
    return shutil.which(a.program) is not None and (a is Aligner.MINIMAP2 or shutil.which("makeblastdb") is not None)


def write_fasta(path: Path, names: Sequence[str], seqs: Sequence[np.ndarray]) -> Path:
    with open(path, "w") as fh:
        for n, s in zip(names, seqs):
            fh.write(f">{n}\n{decode(s)}\n")
    return path


def target_name(gi: int, ri: int) -> str:
    return f"g{gi}_r{ri}"


def parse_target(name: str) -> tuple[int, int]:
    g, r = name.split("_")
    return int(g[1:]), int(r[1:])


def parse_paf(text: str, n_queries: int) -> list[list[Hit]]:
    """minimap2 PAF (queries named q<i>) -> best primary alignments per query, by the AS tag (DP score, with
    -c), else the s1 tag (chaining score), else the number of matching bases. Secondary alignments (tp:A:S)
    are ignored."""
    hits = []
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < 12:
            continue
        tags = dict((t[:2], t[5:]) for t in f[12:])
        if tags.get("tp", "P") not in ("P", "I"):
            continue
        gi, ri = parse_target(f[5])
        hits.append((int(f[0][1:]), Hit(gi, ri, int(f[7]), int(f[8]), float(tags.get("AS", tags.get("s1", f[9]))))))
    return best_by_score(hits, n_queries)


def parse_blast6(text: str, n_queries: int) -> list[list[Hit]]:
    """blastn -outfmt '6 qseqid sseqid sstart send bitscore' -> best hits per query by bitscore."""
    hits = []
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) < 5:
            continue
        gi, ri = parse_target(f[1])
        s, e = sorted((int(f[2]), int(f[3])))
        hits.append((int(f[0][1:]), Hit(gi, ri, s - 1, e, float(f[4]))))
    return best_by_score(hits, n_queries)


def run_aligner(a: Aligner, ref_fa: Path, query_fa: Path, n_queries: int, *, threads: int, work: Path
                ) -> tuple[list[list[Hit]], str]:
    """Align the queries to the references -> (best hits per query, the command line that ran)."""
    if a is Aligner.MINIMAP2:
        cmd = ["minimap2", "-x", "asm20", "--secondary=no", "-t", str(threads), str(ref_fa), str(query_fa)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return parse_paf(out, n_queries), " ".join(cmd[:-2]) + " REF.fa QUERIES.fa"
    db = work / "refdb"
    if not Path(f"{db}.ndb").exists() and not Path(f"{db}.nsq").exists():
        subprocess.run(["makeblastdb", "-in", str(ref_fa), "-dbtype", "nucl", "-out", str(db)], check=True,
                       capture_output=True)
    cmd = ["blastn", "-task", a.value, "-query", str(query_fa), "-db", str(db), "-outfmt",
           "6 qseqid sseqid sstart send bitscore", "-evalue", str(BLAST_EVALUE), "-max_target_seqs", "5",
           "-num_threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    shown = [c if c != str(query_fa) else "QUERIES.fa" for c in cmd]
    shown[shown.index(str(db))] = "REFDB"
    return parse_blast6(out, n_queries), "makeblastdb -dbtype nucl; " + " ".join(
        f"'{c}'" if " " in c else c for c in shown)


def tool_version(a: Aligner) -> str:
    args = ["minimap2", "--version"] if a is Aligner.MINIMAP2 else ["blastn", "-version"]
    out = subprocess.run(args, capture_output=True, text=True).stdout.strip().splitlines()
    return out[0].replace("blastn: ", "") if out else "?"


# ---- the benchmark -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowScore:
    method: str
    dim: int  # 0 for aligners
    divergence: float
    n: int
    species_top1: float
    locus_top1: float  # NaN for genome-vector rows (no locus)
    no_hit: float  # share of queries without any hit (aligners); 0 for vectors
    per_species: dict[str, tuple[float, float]] = field(default_factory=dict)  # species -> (species, locus) top-1


@dataclass
class WindowReport:
    genomes: tuple[str, ...]
    species: tuple[str, ...]
    config: WindowBenchConfig
    n_windows: int
    identity: dict[float, float] = field(default_factory=dict)
    scores: list[WindowScore] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    stores: dict[str, Path] = field(default_factory=dict)  # model -> its windows' HDF5 file (store_dir given)

    def methods(self) -> list[str]:
        return list(dict.fromkeys(s.method for s in self.scores))


def _cells(name: str, dim: int, fr: ev.Fragments, sp_hit, loc_hit, none, species_names, genome_species) -> list[WindowScore]:
    """One WindowScore per divergence from per-query hits (loc_hit None: a row without a locus)."""
    out = []
    q_sp = genome_species[fr.genome]
    loc = loc_hit if loc_hit is not None else np.full(len(fr), np.nan)
    for d in sorted(set(fr.divergence.tolist())):
        idx = fr.divergence == d
        per = {sp: (float(sp_hit[idx & (q_sp == si)].mean()), float(loc[idx & (q_sp == si)].mean()))
               for si, sp in enumerate(species_names) if (idx & (q_sp == si)).any()}
        out.append(WindowScore(name, dim, float(d), int(idx.sum()), float(sp_hit[idx].mean()),
                               float(loc[idx].mean()), float(none[idx].mean()), per))
    return out


def run_window_benchmark(genomes: Sequence[ev.Genome], methods: Sequence[ev.Method],
                         cfg: WindowBenchConfig = WindowBenchConfig(), *, aligners: Sequence[Aligner] = (),
                         threads: int = 1, work: Path | None = None, genome_vectors: bool = False,
                         fragments: ev.Fragments | None = None, store_dir: Path | None = None) -> WindowReport:
    """Score every method at each of its dims, then each aligner (`work`: a scratch folder for FASTA and the
    BLAST database; needed when aligners are given). genome_vectors: also score each vector method's
    fragment -> genome-vector species top-1 on the same queries (issue 14's comparison). store_dir: models
    embed their windows into an HDF5 file there (embed_windows_to_store; report.stores names it)."""
    if len(genomes) < 2:
        raise ConfigError(f"{len(genomes)} reference given; window retrieval needs at least 2 genomes")
    fr = fragments if fragments is not None else ev.make_fragments(genomes, cfg.fragments)
    windows = window_spans_of(genomes, cfg)
    species_names = tuple(dict.fromkeys(g.species for g in genomes))
    gsp = np.array([species_names.index(g.species) for g in genomes], dtype=np.int64)
    origins = query_origins(fr)
    no_none = np.zeros(len(fr), bool)
    report = WindowReport(tuple(g.name for g in genomes), tuple(g.species for g in genomes), cfg, len(windows))
    report.identity.update(ev.fragment_identity(fr))
    console.info(f"windows: {len(genomes)} references, {len(species_names)} species, {len(windows):,} windows of "
                 f"{cfg.window} bp (stride {cfg.stride}), {len(fr)} queries")
    for m in methods:
        t = time.perf_counter()
        if store_dir is not None and isinstance(m.embed, ev.ModelEmbedder):
            report.stores[m.name] = Path(store_dir) / f"windows{len(report.stores)}.h5"
            W = embed_windows_to_store(m, genomes, windows, cfg, report.stores[m.name])  # (w, D)
        else:
            W = embed_windows(m, genomes, windows, cfg)  # (w, D)
        Qv = np.asarray(m.embed(fr.tokens), dtype=np.float32)  # (q, D)
        D = W.shape[1]
        for k in (m.dims or (D,)):
            if k > D:
                raise ConfigError(f"dim {k} exceeds {m.name}'s width {D}; pick dims <= {D}")
            sp, loc = vector_hits(truncate_normalize(Qv, k), truncate_normalize(W, k), origins, windows, gsp)
            report.scores.extend(_cells(m.name, k, fr, sp, loc, no_none, species_names, gsp))
        if genome_vectors:
            G = np.asarray(m.embed([g.tokens for g in genomes]), dtype=np.float32)  # (g, D)
            for k in (m.dims or (D,)):
                S = truncate_normalize(Qv, k) @ truncate_normalize(G, k).T  # (q, g)
                top = S >= S.max(axis=1, keepdims=True)
                sp = ~(top & (gsp[None, :] != gsp[fr.genome][:, None])).any(axis=1)
                report.scores.extend(_cells(f"{m.name} -> genome vector", k, fr, sp, None, no_none, species_names, gsp))
        report.seconds[m.name] = time.perf_counter() - t
        console.info(f"windows: {m.name}: {report.seconds[m.name]:.1f} s")
    if aligners:
        if work is None:
            raise ConfigError("aligners need a scratch folder (work=...)")
        names = [target_name(gi, ri) for gi, g in enumerate(genomes) for ri in range(len(g.records))]
        ref_fa = write_fasta(Path(work) / "references.fa", names, [r for g in genomes for r in g.records])
        qry_fa = write_fasta(Path(work) / "queries.fa", [f"q{i}" for i in range(len(fr))], fr.tokens)
        for a in aligners:
            t = time.perf_counter()
            label = f"{a.program} {tool_version(a)}" + (f" -task {a.value}" if a is not Aligner.MINIMAP2 else " -x asm20")
            best, cmd = run_aligner(a, ref_fa, qry_fa, len(fr), threads=threads, work=Path(work))
            sp, loc, none = aligner_hits(best, origins, gsp)
            report.scores.extend(_cells(label, 0, fr, sp, loc, none, species_names, gsp))
            report.seconds[label] = time.perf_counter() - t
            report.commands[label] = cmd
            console.info(f"windows: {label}: {report.seconds[label]:.1f} s")
    return report


# ---- rendering -------------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return "-" if x != x else f"{100 * x:.1f}"


def format_window_markdown(report: WindowReport, *, title: str = "Fragment -> window retrieval") -> str:
    cfg, fc = report.config, report.config.fragments
    divs = sorted({s.divergence for s in report.scores})
    dl = [f"{d:.0%}" for d in divs]
    lines = [f"### {title}", "",
             f"{len(report.genomes)} references ({len(set(report.species))} species), {report.n_windows:,} windows of "
             f"{cfg.window} bp at stride {cfg.stride}; {fc.per_genome} queries of {fc.lengths[0]} bp per reference "
             f"and divergence (half reverse-complemented; substitutions + {fc.indel_fraction:.0%} indels of "
             f"1-{fc.max_indel} bp; seed {fc.seed}). Species top-1: the best window (alignment) is in a genome of "
             "the query's species. Locus top-1: it is in the query's source genome and record and overlaps the "
             "fragment's origin. % of queries; ties and no hit count as misses.", ""]
    if report.identity:
        lines += ["Mean identity of the queries to their source: " + ", ".join(
            f"{d:.0%} -> {100 * i:.1f}%" for d, i in sorted(report.identity.items())) + ".", ""]
    head = ["method", "dims"] + [f"species @{d}" for d in dl] + [f"locus @{d}" for d in dl]
    lines += ["| " + " | ".join(head) + " |", "|---|---:|" + "---:|" * (len(head) - 2)]
    for m in report.methods():
        rows = [s for s in report.scores if s.method == m]
        for k in sorted({s.dim for s in rows}):
            cell = {s.divergence: s for s in rows if s.dim == k}
            lines.append("| " + " | ".join([m, str(k) if k else "-"] + [_pct(cell[d].species_top1) for d in divs]
                                           + [_pct(cell[d].locus_top1) for d in divs]) + " |")
    al = [m for m in report.methods() if m in report.commands]
    if al:
        lines += ["", "Queries with no alignment at all (counted as misses): " + "; ".join(
            f"{m}: " + " / ".join(_pct(s.no_hit) for s in sorted((s for s in report.scores if s.method == m),
                                                                  key=lambda s: s.divergence)) + "%" for m in al) + ".",
                  "", "Aligner commands: " + "; ".join(f"`{report.commands[m]}`" for m in al) + "."]
    return "\n".join(lines) + "\n"
