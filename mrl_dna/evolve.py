"""Simulated evolution: substitutions and small indels at a known rate, with the log of what was done, so the
identity of the result to its source is known exactly (the CoSENT target in training, the divergence axis of
every benchmark). One function for training (`train/sampler.py`, `train/whiten.py`) and evaluation
(`evaluate*.py`).

Axis letters: n bases of the source, n' bases of the result, m mutation events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrl_dna import dna

_ACGT = np.zeros(256, dtype=bool)
_ACGT[list(dna.BASES)] = True

@dataclass(frozen=True)
class Mutations:
    """What `mutate` did to a source sequence of n bases (the log the identity is computed from).

    sub_pos/sub_base: substituted positions (each a real change of A/C/G/T) and their new bases;
    del_pos: deleted positions; ins_pos/ins_len: ins_len[i] random bases inserted right after source
    position ins_pos[i] (after its base, or where it was, if deleted); ins_bases: those bases, in order.
    """

    n: int
    sub_pos: np.ndarray
    sub_base: np.ndarray
    del_pos: np.ndarray
    ins_pos: np.ndarray
    ins_len: np.ndarray
    ins_bases: np.ndarray

    @property
    def n_sub(self) -> int:
        return int(self.sub_pos.size)

    @property
    def n_del(self) -> int:
        return int(self.del_pos.size)

    @property
    def n_ins(self) -> int:
        return int(self.ins_len.sum())

    @property
    def n_match(self) -> int:
        return self.n - self.n_del - self.n_sub

    @property
    def columns(self) -> int:
        """Columns of the alignment the mutations imply: matches + mismatches + deleted + inserted bases."""
        return self.n_match + self.n_sub + self.n_del + self.n_ins

    @property
    def identity(self) -> float:
        """Matches / alignment columns (BLAST-style identity with gaps counted), 1.0 for no change."""
        return self.n_match / self.columns if self.columns else 1.0


def mutate(
    x: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    *,
    indel_fraction: float = 0.2,
    max_indel: int = 3,
) -> tuple[np.ndarray, Mutations]:
    """Simulated evolution of tokens x (n,) at `rate` events per base -> (y (n',), the mutation log).

    Each base starts an event with probability `rate`: an indel with probability `indel_fraction` (half
    insertions, half deletions, length ~ geometric(0.5) <= max_indel), else a substitution to one of the
    three other bases. Deletions win over substitutions at the same base; N bases are never substituted.
    Vectorised: a few (n,) draws, no per-base Python loop.
    """
    n = x.size
    ev = np.flatnonzero(rng.random(n) < rate)  # (m,) event positions; per-event draws only (fast at low rates)
    m = ev.size
    kind = rng.random(m)  # < indel_fraction -> indel
    half = rng.random(m)  # < 0.5 -> insertion (for indels)
    lens = np.minimum(rng.geometric(0.5, size=m), max_indel)  # indel lengths
    shift = rng.integers(1, 4, size=m).astype(np.uint8)  # substitution = base + 1..3 (mod 4): always a change
    indel = kind < indel_fraction
    ins = indel & (half < 0.5)
    dels = indel & ~ins
    deleted = np.zeros(n + max_indel, dtype=bool)
    for o in range(max_indel):  # mark [start, start + len) of every deletion
        deleted[ev[dels & (lens > o)] + o] = True
    deleted = deleted[:n]
    sub = ~indel & ~deleted[ev] & _ACGT[x[ev]]
    sub_pos = ev[sub]
    y = x.copy()
    y[sub_pos] = (x[sub_pos] - dna.A + shift[sub]) % 4 + dna.A
    ins_pos = ev[ins]
    ins_len = lens[ins]
    ins_bases = rng.integers(dna.A, dna.T + 1, size=int(ins_len.sum())).astype(np.uint8)
    keep = ~deleted
    count = keep.astype(np.int64)  # (n,): output slots per source position
    count[ins_pos] += ins_len
    first = np.cumsum(count) - count  # (n,): first output slot of each source position
    out = np.empty(int(count.sum()), dtype=np.uint8)
    filled = np.zeros(out.size, dtype=bool)
    filled[first[keep]] = True
    out[first[keep]] = y[keep]
    out[~filled] = ins_bases  # the remaining slots, in source order, are the insertions
    log = Mutations(
        n=n,
        sub_pos=sub_pos,
        sub_base=y[sub_pos],
        del_pos=np.flatnonzero(deleted),
        ins_pos=ins_pos,
        ins_len=ins_len,
        ins_bases=ins_bases,
    )
    return out, log
