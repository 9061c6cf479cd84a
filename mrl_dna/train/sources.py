"""Training data: genome FASTA files (or labelled records) -> Sources, the classes the sampler draws from.

A *source* is one class of sequence: a genome file (all its records), or one group of a labelled FASTA
(`--labels`). Its label decides the negatives: items with equal labels are not negatives of each other (one
genome, or one species/group when a `--groups` TSV names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrl_dna.errors import InputError
from mrl_dna.inputs.fasta import read_fasta
from mrl_dna.inputs.genomes import genome_name, group_of


@dataclass
class Source:
    """One class: the sequences of one genome file (or one group of a labelled FASTA)."""

    name: str
    label: int  # negatives mask: items with equal labels are not negatives of each other
    seqs: list[np.ndarray]  # uint8 token arrays
    group: str = ""  # species/group name when known (validation reports species top-1 with it)
    weights: np.ndarray = field(init=False)  # (n_seqs,) length-weighted choice of a sequence

    def __post_init__(self) -> None:
        self.seqs = [s for s in self.seqs if s.size]
        if not self.seqs:
            raise InputError(f"{self.name}: no sequence to sample from (all records are empty)")
        lengths = np.array([s.size for s in self.seqs], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    @property
    def n_bases(self) -> int:
        return int(sum(s.size for s in self.seqs))


def read_records(path: Path) -> list[tuple[str, np.ndarray]]:
    """(id, tokens) of every record of one FASTA file."""
    return [(r.id, r.tokens) for r in read_fasta([path], check_duplicates=False)]


def load_genomes(paths: Sequence[Path], groups: dict[str, str] | None = None) -> list[Source]:
    """One Source per genome file. label = genome index, or the group index when `groups` names the
    genome's group (same-species genomes then are not negatives of each other)."""
    sources: list[Source] = []
    group_ids: dict[str, int] = {}
    for i, p in enumerate(paths):
        recs = read_records(p)
        g = (group_of(groups, p, [r for r, _ in recs]) or "") if groups else ""
        label = group_ids.setdefault(g, len(paths) + len(group_ids)) if g else i
        sources.append(Source(name=genome_name(p), label=label, seqs=[t for _, t in recs], group=g))
    return sources


def load_labelled(paths: Sequence[Path], labels: dict[str, str]) -> list[Source]:
    """User data: FASTA records + a TSV record id -> group. One Source per group (records of one group are
    positives of each other); every record must have a group."""
    by_group: dict[str, list[np.ndarray]] = {}
    for p in paths:
        for rid, tok in read_records(p):
            if rid not in labels:
                raise InputError(f"record {rid} of {p} has no group in the labels TSV; add a line '{rid}<TAB>group'")
            by_group.setdefault(labels[rid], []).append(tok)
    return [Source(name=g, label=i, seqs=s, group=g) for i, (g, s) in enumerate(by_group.items())]
