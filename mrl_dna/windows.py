"""Tile a record into fixed-size windows, and skip the windows that are mostly N.

Axis letters: L record length in bp, k windows, 2 = [start, end) (0-based, end exclusive).

Tiling (window_spans): the fewest full-size windows whose starts are at most `stride` apart, spread evenly
from the first base to the last and laid out mirror-symmetrically, so that a record and its reverse
complement are cut into the same pieces (record vectors stay RC-invariant, not only window vectors). All
windows have the full `size` (the encoder never sees a short tail window next to long ones) and every base
is covered as long as stride <= size (checked). When L = size + j * stride this is plain tiling at
multiples of stride. A record shorter than `size` is one short window [0, L); an empty record has none.

Mostly-N windows (assembly gaps, hard-masked repeats) carry no signal and would pull a record's vector
towards "N": windows whose N fraction exceeds `max_n_fraction` are dropped and counted in `n_skipped`, so
the caller can report them and tell an all-N record (every window skipped) from an empty one (none).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from mrl_dna import dna
from mrl_dna.errors import ConfigError

# Bases per block when counting N: the temporaries of split_windows stay ~15 MiB (measured) instead of a
# whole-record int64 cumulative sum (800 MB for a 100 Mbp chromosome); 100 Mbp still takes ~0.4 s.
_N_COUNT_BLOCK = 1 << 20


@dataclass(frozen=True)
class WindowConfig:
    """How a record is cut into windows for the encoder."""

    # 2 kbp: the default model's training window; long enough for k-mer and motif statistics, short enough
    # that one window's activations stay small on a laptop. The model stores its own value; this is the fallback.
    size: int = 2048
    # stride = size: the fewest windows that cover every base (they overlap only by the few bases needed to
    # spread them evenly over L). A smaller stride overlaps more; a larger one would leave bases out: refused.
    stride: int = 2048
    # Skip a window when more than half of it is N: such windows are gaps or masked repeats, not sequence.
    max_n_fraction: float = 0.5

    def __post_init__(self) -> None:
        for name in ("size", "stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise ConfigError(f"window {name}={value!r} is not an integer; give a whole number of bp, e.g. 2048")
            object.__setattr__(self, name, int(value))
        if self.size < 1:
            raise ConfigError(f"window size {self.size} must be >= 1 bp; e.g. --window 2048")
        if self.stride < 1:
            raise ConfigError(f"window stride {self.stride} must be >= 1 bp; e.g. --stride {self.size}")
        if self.stride > self.size:
            raise ConfigError(
                f"window stride {self.stride} exceeds window size {self.size}, so bases between windows would "
                f"never be embedded; pick a stride <= {self.size}"
            )
        f = self.max_n_fraction
        if isinstance(f, bool) or not isinstance(f, Real) or math.isnan(f) or not 0.0 <= f <= 1.0:
            raise ConfigError(
                f"max_n_fraction {f!r} must be between 0 and 1; e.g. 0.5 skips windows that are more than half N"
            )
        object.__setattr__(self, "max_n_fraction", float(f))


@dataclass(frozen=True, eq=False)  # eq=False: holds an array, and == on arrays is not a bool
class Windows:
    """The kept windows of one record, and how many mostly-N windows were dropped."""

    spans: np.ndarray  # (k, 2) int64 [start, end) of the KEPT windows, sorted by start
    n_skipped: int  # windows dropped because their N fraction exceeded max_n_fraction

    def __len__(self) -> int:
        return len(self.spans)


def window_spans(length: int, size: int, stride: int) -> np.ndarray:
    """[start, end) of every window of a record of `length` bp, as int64 (k, 2), sorted by start.

    k = ceil((length - size) / stride) + 1 full-size windows (one more when needed for symmetry), spread
    evenly from the first base to the last and laid out mirror-symmetrically: the windows of the reverse
    complement are exactly the mirror images of these, so a record and its reverse complement are cut into
    the same pieces (record vectors stay RC-invariant, not only window vectors). Consecutive starts differ
    by <= stride <= size, so every base is covered; with length = size + j * stride this is plain tiling
    at multiples of stride.

    >>> window_spans(13, 4, 4).tolist()
    [[0, 4], [3, 7], [6, 10], [9, 13]]
    >>> window_spans(10, 4, 4).tolist()
    [[0, 4], [3, 7], [6, 10]]
    >>> window_spans(3, 4, 4).tolist()
    [[0, 3]]
    """
    if length < 0:
        raise ConfigError(f"record length {length} is negative; lengths are >= 0 bp")
    WindowConfig(size=size, stride=stride)  # same checks and messages as the config
    if length == 0:
        return np.empty((0, 2), dtype=np.int64)
    if length <= size:
        return np.array([[0, length]], dtype=np.int64)
    span = length - size  # last start
    # Even spacing x = span / (k - 1) <= stride, starts rounded to the nearest base (gaps <= ceil(x) <=
    # stride), the second half the mirror image of the first. With an odd k the middle window must be its
    # own mirror (start = span / 2), which needs an even span: otherwise take one window more.
    k = -(-span // stride) + 1
    if k % 2 == 1 and span % 2 == 1:
        k += 1
    i = np.arange((k + 1) // 2, dtype=np.int64)
    first = (2 * i * span + (k - 1)) // (2 * (k - 1))  # round(i * span / (k - 1)), half up, in integers
    starts = np.sort(np.concatenate([first, span - first]))  # mirror-symmetric set, sorted
    # drop duplicates (the middle start can appear twice); not np.unique: numpy 2 took 60 s for 14M starts here
    starts = starts[np.concatenate([[True], starts[1:] != starts[:-1]])]  # (k,)
    return np.stack([starts, starts + size], axis=1)  # (k, 2)


def n_counts(tokens: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Number of N tokens in each span, int64 (k,). Vectorised, O(L) time, O(block + k) extra memory."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # (k, 2)
    return _n_before(tokens, spans[:, 1]) - _n_before(tokens, spans[:, 0])


def _n_before(tokens: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Number of N in tokens[:p] for each p of pos (int64 (m,), values in [0, L]), counted block by block."""
    order = None
    if len(pos) > 1 and not (pos[1:] >= pos[:-1]).all():  # window starts and ends come sorted; others may not
        order = np.argsort(pos, kind="stable")
        pos = pos[order]
    cum = np.zeros(len(pos), dtype=np.int64)  # (m,)
    done = 0  # N counted in tokens[:block_start]
    for block_start in range(0, len(tokens), _N_COUNT_BLOCK):
        block = tokens[block_start : block_start + _N_COUNT_BLOCK]
        # positions p with block_start < p <= block_end take their count from this block (p = 0 stays 0)
        lo, hi = np.searchsorted(pos, [block_start, block_start + len(block)], side="right")
        if hi > lo:
            in_block = np.cumsum(block == dna.N, dtype=np.int32)  # (len(block),) N count up to each index
            cum[lo:hi] = done + in_block[pos[lo:hi] - block_start - 1]
            done += int(in_block[-1])
        else:
            done += int(np.count_nonzero(block == dna.N))
    if order is None:
        return cum
    out = np.empty_like(cum)
    out[order] = cum
    return out


def split_windows(tokens: np.ndarray, cfg: WindowConfig) -> Windows:
    """Windows of one record's tokens, without those whose N fraction exceeds cfg.max_n_fraction."""
    n = len(tokens)
    if n <= cfg.size:  # one window [0, n) or none: reads, genes, short contigs (one numpy call, not a tiling)
        spans = np.array([[0, n]] if n else [], dtype=np.int64).reshape(-1, 2)  # (k, 2)
        if n and cfg.max_n_fraction < 1.0 and np.count_nonzero(tokens == dna.N) > cfg.max_n_fraction * n:
            return Windows(spans=spans[:0], n_skipped=1)
        return Windows(spans=spans, n_skipped=0)
    spans = window_spans(n, cfg.size, cfg.stride)  # (k, 2)
    # most genomes hold no N at all: one compare instead of counting per window
    if cfg.max_n_fraction >= 1.0 or len(spans) == 0 or not np.count_nonzero(tokens == dna.N):
        return Windows(spans=spans, n_skipped=0)
    width = spans[:, 1] - spans[:, 0]  # (k,)
    keep = n_counts(tokens, spans) <= cfg.max_n_fraction * width  # (k,) bool
    return Windows(spans=spans[keep], n_skipped=int(len(spans) - np.count_nonzero(keep)))


def pad_windows(seqs: Sequence[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Token arrays -> (n, L) int64 right-padded with PAD and their lengths (n,) int64: the batch layout
    that `model.window_vectors` takes (embed's batches, the whitening, the PCA rotation script). L is the
    longest array, or `length` when given (embed's fixed batch shapes; it must hold the longest)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    longest = int(lengths.max(initial=0))
    if length is not None and length < longest:
        raise ValueError(f"pad_windows: length {length} is shorter than the longest window ({longest})")
    tokens = np.full((len(seqs), longest if length is None else length), dna.PAD, dtype=np.int64)
    for row, s in enumerate(seqs):
        tokens[row, : len(s)] = s
    return tokens, lengths
