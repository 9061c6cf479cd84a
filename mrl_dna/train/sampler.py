"""Label-free training pairs from genome FASTA files: windows, runs of windows, simulated evolution.

Axis letters: b items in a batch, w windows per item (a run of consecutive windows), l tokens per window
(bp; the model patches them itself), n bases of one sequence.

A *source* (train/sources.py) is one class of sequence: a genome file, or one group of a labelled FASTA.
Simulated evolution is mrl_dna/evolve.py's `mutate`. For every item of a batch the sampler draws
- an anchor: a run of w consecutive windows from a source (w = 1 mostly; w > 1 with probability
  `multi_window_prob`, so that attention pooling learns to merge windows);
- a positive for InfoNCE: mostly ANOTHER run of the same source at an independent location (d), else a
  shifted, overlapping run (c); then simulated evolution (a) at a rate r ~ U[0, max_mutation_rate] and a
  reverse complement (b) half of the time. Other sources in the batch are the negatives; items of the
  same label (same genome, or same species/group when a groups TSV is given) are masked out of the
  negatives by `infonce_loss(labels=...)`;
- a mutant for CoSENT (optional): the anchor itself evolved at r ~ U[0, max_mutation_rate], with the
  identity that the mutations actually made give as the graded target.

Genome blocks (`windows_per_genome` W > 1, the v2 objective) draw batch_size / W distinct labels and W single
windows of one genome of each; every positive is the anchor's own evolved copy, shifted by up to
`max_shift_fraction` of a window. The trainer pairs anchor i with the copy of another window of its block
(`Batch.partner`) for the genome loss, and with its own copy for the locus loss.

Determinism: batch `step` of rank `rank` comes from `np.random.default_rng([seed, rank, step, micro])`, so
the sampler has no state of its own and a resumed run draws exactly the batches the uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna import dna
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.evolve import mutate
from mrl_dna.inputs.genomes import read_tsv
from mrl_dna.train.sources import Source
from mrl_dna.windows import WindowConfig


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SamplerConfig:
    """How items and their positives are drawn. Defaults are what the default model is trained with."""

    window: int = WindowConfig.size  # bp per window; the model's embed window, so training sees what embedding sees
    batch_size: int = 64  # items per (micro-)batch: 63 negatives per anchor in InfoNCE
    # Runs of consecutive windows: 1 in 4 items spans 2..max_windows windows so attention pooling sees
    # multi-window records; most items stay single windows because that is where the per-window encoder learns.
    multi_window_prob: float = 0.25
    max_windows: int = 4
    # Simulated evolution: r ~ U[0, 0.25] -> identities ~75..100%, the range where "same species" turns
    # into "same genus" (ANI 95% is the usual species line).
    max_mutation_rate: float = 0.25
    indel_fraction: float = 0.2  # share of mutation events that are small indels (half insertions, half deletions)
    max_indel: int = 3  # indel length ~ geometric(0.5) capped here: small indels as in real alignments
    rc_prob: float = 0.5  # the encoder is RC-invariant by construction; RC keeps the data honest anyway
    # Positive = another location of the same source (genome-level composition, what fragment -> genome
    # retrieval measures) with this probability, else a shifted overlap of the anchor.
    other_window_prob: float = 0.8
    max_shift_fraction: float = 0.5  # shifted overlaps move by at most half a window
    max_n_fraction: float = WindowConfig.max_n_fraction  # redraw runs with more N than this (assembly gaps say nothing about a genome)
    mutant_view: bool = True  # draw the CoSENT (anchor, evolved anchor, identity) view
    # Genome blocks (the v2 objective): > 1 draws batch_size / windows_per_genome distinct labels and that many
    # single windows from each, every positive being the evolved, shifted copy of its own anchor. The trainer
    # then pairs each anchor with the copy of ANOTHER window of its genome for the genome loss, and with its
    # own copy (other windows of the same genome as negatives) for the locus loss. 1 = independent items.
    windows_per_genome: int = 1

    def __post_init__(self) -> None:
        if self.window < 16:
            raise ConfigError(f"window {self.window} bp is too small; give --window >= 16 (e.g. 2048)")
        if self.batch_size < 2:
            raise ConfigError(f"batch size {self.batch_size} leaves no in-batch negatives; give --batch-size >= 2")
        if self.max_windows < 1:
            raise ConfigError(f"max_windows {self.max_windows} must be >= 1")
        for name in ("multi_window_prob", "indel_fraction", "rc_prob", "other_window_prob", "max_shift_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}={v} must be in [0, 1]")
        if not 0.0 <= self.max_mutation_rate <= 0.75:
            raise ConfigError(f"max mutation rate {self.max_mutation_rate} must be in [0, 0.75]; e.g. 0.25")
        w = self.windows_per_genome
        if w < 1 or self.batch_size % w or (w > 1 and self.batch_size // w < 2):
            raise ConfigError(
                f"--windows-per-genome {w} must be >= 1 and divide --batch-size {self.batch_size} into >= 2 genomes; "
                f"e.g. --batch-size 128 --windows-per-genome 4"
            )


# ---------------------------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """One micro-batch as numpy arrays. Views share (w, l) so that the trainer runs one forward on
    their concatenation: tokens (v*b, w, l) with v = 2 (anchor, positive) or 3 (+ mutant)."""

    tokens: np.ndarray  # (v*b, w, l) uint8, PAD-filled
    lengths: np.ndarray  # (v*b, w) int64, 0 = absent window
    labels: np.ndarray  # (b,) int64
    identity: np.ndarray  # (b,) float32: mutant vs anchor identity (CoSENT target); empty without mutants
    n_views: int
    # (b,) the positive each anchor pairs with in the genome loss: itself for independent items; in genome
    # blocks, the next window of the same block (the evolved copy of ANOTHER window of its genome)
    partner: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        return self.labels.size

    @property
    def n_bases(self) -> int:
        return int(self.lengths.sum())


Item = list[np.ndarray]  # a run of windows, each (l_i,) uint8


class GenomeSampler:
    """Draws Batches from Sources; a pure function of (seed, rank, step, micro)."""

    def __init__(self, sources: Sequence[Source], cfg: SamplerConfig, seed: int, rank: int = 0) -> None:
        if len({s.label for s in sources}) < 2:
            raise ConfigError(
                f"{len(sources)} genome(s) in {len({s.label for s in sources})} group(s); InfoNCE needs negatives "
                "from another group: give genomes of >= 2 groups"
            )
        self.sources = list(sources)
        by_label: dict[int, list[int]] = {}
        for i, src in enumerate(self.sources):
            by_label.setdefault(src.label, []).append(i)
        self._by_label = [np.array(v) for v in by_label.values()]  # source indices of each label
        self.cfg = cfg
        self.seed = int(seed)
        self.rank = int(rank)

    def rng(self, step: int, micro: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.rank, int(step), int(micro)])

    def batch(self, step: int, micro: int = 0) -> Batch:
        cfg = self.cfg
        rng = self.rng(step, micro)
        if cfg.windows_per_genome > 1:
            return self._genome_blocks(rng)
        b = cfg.batch_size
        # A label (genome, or species when groups are given) uniformly, then one of its genomes uniformly:
        # a big genome or a species with many genomes does not crowd out the others. Repeats in a batch
        # share a label and are masked out of each other's negatives.
        lab = rng.integers(0, len(self._by_label), size=b)
        src_idx = [int(self._by_label[j][rng.integers(0, self._by_label[j].size)]) for j in lab]
        anchors, positives, mutants, ident = [], [], [], []
        for s in src_idx:
            src = self.sources[s]
            w = int(rng.integers(2, cfg.max_windows + 1)) if rng.random() < cfg.multi_window_prob and cfg.max_windows > 1 else 1
            seq_i, start, end = self._draw_run(rng, src, w)
            anchors.append(_split(src.seqs[seq_i][start:end], cfg.window))
            if rng.random() < cfg.other_window_prob:
                w2 = int(rng.integers(2, cfg.max_windows + 1)) if rng.random() < cfg.multi_window_prob and cfg.max_windows > 1 else 1
                seq_j, s2, e2 = self._draw_run(rng, src, w2)
            else:
                seq_j, s2, e2 = self._shift(rng, src, seq_i, start, end)
            pos, _ = self._evolve(rng, _split(src.seqs[seq_j][s2:e2], cfg.window))
            positives.append(pos)
            if cfg.mutant_view:
                mut, identity = self._evolve(rng, anchors[-1])
                mutants.append(mut)
                ident.append(identity)
        views = anchors + positives + mutants
        tokens, lengths = pack(views)
        labels = np.array([self.sources[s].label for s in src_idx], dtype=np.int64)
        return Batch(tokens, lengths, labels, np.array(ident, dtype=np.float32), 3 if cfg.mutant_view else 2)

    def _genome_blocks(self, rng: np.random.Generator) -> Batch:
        """batch_size / W distinct labels, W single windows from one genome of each (items i*W .. i*W+W-1):
        anchors, and as positives their evolved copies shifted by up to max_shift_fraction of a window."""
        cfg = self.cfg
        W = cfg.windows_per_genome
        G = cfg.batch_size // W
        if G > len(self._by_label):
            raise ConfigError(
                f"--batch-size {cfg.batch_size} / --windows-per-genome {W} = {G} genomes per batch, but the data has "
                f"{len(self._by_label)} groups; lower --batch-size or raise --windows-per-genome"
            )
        lab = rng.choice(len(self._by_label), size=G, replace=False)
        src_idx = [int(self._by_label[j][rng.integers(0, self._by_label[j].size)]) for j in lab]
        anchors, positives, mutants, ident = [], [], [], []
        for s in src_idx:
            src = self.sources[s]
            for _ in range(W):
                seq_i, start, end = self._draw_run(rng, src, 1)
                anchors.append(_split(src.seqs[seq_i][start:end], cfg.window))
                seq_j, s2, e2 = self._shift(rng, src, seq_i, start, end)
                positives.append(self._evolve(rng, _split(src.seqs[seq_j][s2:e2], cfg.window))[0])
                if cfg.mutant_view:
                    mut, identity = self._evolve(rng, anchors[-1])
                    mutants.append(mut)
                    ident.append(identity)
        tokens, lengths = pack(anchors + positives + mutants)
        labels = np.repeat([self.sources[s].label for s in src_idx], W).astype(np.int64)
        i = np.arange(G * W)
        partner = i - i % W + (i + 1) % W  # (b,): the next window of the same block, cyclically
        return Batch(tokens, lengths, labels, np.array(ident, dtype=np.float32), 3 if cfg.mutant_view else 2, partner)

    def _draw_run(self, rng: np.random.Generator, src: Source, w: int) -> tuple[int, int, int]:
        """(sequence, start, end) of a run of w windows, length-weighted over the source's sequences;
        a sequence shorter than the run gives a shorter run. Redraws mostly-N runs a few times."""
        for _ in range(8):
            i = int(rng.choice(len(src.seqs), p=src.weights)) if len(src.seqs) > 1 else 0
            n = src.seqs[i].size
            span = min(n, w * self.cfg.window)
            start = int(rng.integers(0, n - span + 1))
            run = src.seqs[i][start : start + span]
            if np.count_nonzero(run == dna.N) <= self.cfg.max_n_fraction * span:
                break
        return i, start, start + span

    def _shift(self, rng: np.random.Generator, src: Source, i: int, start: int, end: int) -> tuple[int, int, int]:
        """An overlapping run: the anchor's run moved by up to max_shift_fraction of a window."""
        n = src.seqs[i].size
        m = int(self.cfg.max_shift_fraction * self.cfg.window)
        d = int(rng.integers(-m, m + 1)) if m else 0
        s = min(max(0, start + d), n - (end - start))
        return i, s, s + (end - start)

    def _evolve(self, rng: np.random.Generator, item: Item) -> tuple[Item, float]:
        """Mutate every window at one rate r ~ U[0, max], reverse-complement the run with rc_prob.
        Returns the new run and the identity over the whole run (pooled alignment columns)."""
        cfg = self.cfg
        rate = rng.random() * cfg.max_mutation_rate
        out, match, cols = [], 0, 0
        for win in item:
            y, log = mutate(win, rate, rng, indel_fraction=cfg.indel_fraction, max_indel=cfg.max_indel)
            out.append(y)
            match += log.n_match
            cols += log.columns
        if rng.random() < cfg.rc_prob:
            out = [dna.revcomp(y) for y in reversed(out)]  # RC of a run: windows reversed, each RC'd
        return out, (match / cols if cols else 1.0)


def _split(run: np.ndarray, window: int) -> Item:
    """A run of consecutive bases -> its windows of `window` bp (the last may be shorter)."""
    return [run[i : i + window] for i in range(0, max(run.size, 1), window)]


def pack(items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
    """Runs of windows -> tokens (b, w, l) uint8 PAD-filled, lengths (b, w) int64 (0 = absent window)."""
    w = max(len(it) for it in items)
    l = max(max((x.size for x in it), default=0) for it in items)
    tokens = np.full((len(items), w, max(l, 1)), dna.PAD, dtype=np.uint8)
    lengths = np.zeros((len(items), w), dtype=np.int64)
    for i, it in enumerate(items):
        for j, x in enumerate(it):
            tokens[i, j, : x.size] = x
            lengths[i, j] = x.size
    return tokens, lengths


# ------------------------------------------------------------------------------------------- scored pairs
@dataclass
class PairData:
    """User data for CoSENT: sequence pairs with a similarity score (higher = more similar)."""

    a: list[np.ndarray]
    b: list[np.ndarray]
    score: np.ndarray  # (n,) float32

    def batch(self, rng: np.random.Generator, batch_size: int, window: int, max_windows: int):
        """tokens (2*b, w, l), lengths (2*b, w), scores (b,): pairs drawn with replacement; a sequence
        longer than max_windows windows keeps its first max_windows windows."""
        idx = rng.integers(0, self.score.size, size=batch_size)
        items = [_split(self.a[i], window)[:max_windows] for i in idx] + [
            _split(self.b[i], window)[:max_windows] for i in idx
        ]
        tokens, lengths = pack(items)
        return tokens, lengths, self.score[idx]


def load_pairs(path: str | Path) -> PairData:
    """TSV seq_a, seq_b, score (a header line is skipped). Sequences are DNA letters."""
    rows = read_tsv(path, min_cols=3)
    a, b, s = [], [], []
    for i, row in enumerate(rows):
        try:
            score = float(row[2])
        except ValueError:
            if i == 0:
                continue  # header
            raise InputError(f"{path}: score {row[2]!r} of pair {i + 1} is not a number") from None
        ta, tb = dna.encode(row[0].strip()), dna.encode(row[1].strip())
        for t, col in ((ta, "seq_a"), (tb, "seq_b")):
            bad = dna.first_invalid(t)
            if bad >= 0 or t.size == 0:
                raise InputError(f"{path}: {col} of pair {i + 1} is empty or not DNA (position {bad + 1})")
        a.append(ta)
        b.append(tb)
        s.append(score)
    if len(s) < 2:
        raise InputError(f"{path}: {len(s)} scored pair(s); CoSENT needs at least 2")
    return PairData(a, b, np.array(s, dtype=np.float32))
