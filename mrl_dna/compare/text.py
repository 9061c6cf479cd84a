"""Tables of many numbers as bytes, formatted by numpy rather than one Python f-string per value.

`mrl-dna dist` writes up to n x m lines (10k x 10k = 10^8); an f-string per line costs ~1 us, minutes per
matrix. Here every field is a fixed-width uint8 column padded with NUL bytes, a block of lines is one
(lines, width) array assembled by broadcasting or gathering, and `compact` drops the NULs: the bytes of the
lines, in order. Numbers are written with 6 decimals (the precision of `mrl-dna search`'s cosine column);
a value is rounded half to even at the 7th decimal (numpy's rint), so the last digit can differ from
printf's "%.6f" on exact ties, and the same float always prints the same digits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NUL, TAB, NEWLINE, SPACE = 0, ord("\t"), ord("\n"), ord(" ")
NUMBER_WIDTH = 9  # '-0.123456': sign, one digit, point, six decimals


def id_column(ids: Sequence[str], *, min_width: int = 0, pad: int = NUL) -> np.ndarray:
    """(n, w) uint8: each id's UTF-8 bytes, padded to the longest (and to min_width with `pad`), then NUL."""
    raw = [s.encode("utf-8") for s in ids]
    if pad != NUL:
        raw = [r.ljust(min_width, bytes([pad])) for r in raw]
    w = max([len(r) for r in raw] + [min_width, 1])
    return np.array(raw, dtype=f"S{w}").view(np.uint8).reshape(len(raw), w) if raw else np.zeros((0, w), np.uint8)


def fixed6(x: np.ndarray) -> np.ndarray:
    """(...,) numbers in [-9.999999, 9.999999] -> (..., 9) uint8: '-d.dddddd' with the '-' only below zero
    (NUL otherwise), as "%.6f" writes them (ties at the 7th decimal aside, module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    v = np.rint(np.abs(x) * 1e6).astype(np.int64)  # (...,) micro-units
    out = np.empty(x.shape + (NUMBER_WIDTH,), np.uint8)
    out[..., 0] = np.where((x < 0) & (v > 0), ord("-"), NUL)
    out[..., 1] = ord("0") + v // 1_000_000
    out[..., 2] = ord(".")
    for d in range(6):
        out[..., 3 + d] = ord("0") + (v // 10 ** (5 - d)) % 10
    return out


def compact(lines: np.ndarray) -> bytes:
    """The bytes of a (lines, width) uint8 block without its NUL padding, row after row."""
    return lines[lines != NUL].tobytes()


def pair_lines(query: np.ndarray, target: np.ndarray, numbers: Sequence[np.ndarray]) -> bytes:
    """Lines 'query<TAB>target<TAB>number...<NEWLINE>': query (p, wq) and target (p, wt) id columns (already
    gathered per pair), numbers a few (p,) arrays."""
    p = len(query)
    parts = [query, _col(p, TAB), target] + [a for x in numbers for a in (_col(p, TAB), fixed6(x))] + [_col(p, NEWLINE)]
    return compact(np.concatenate(parts, axis=1))


def matrix_lines(ids: np.ndarray, values: np.ndarray, *, sep: int = TAB) -> bytes:
    """Lines 'id<sep>v1<sep>v2...<NEWLINE>' of a block of matrix rows: ids (b, w) id column, values (b, m)."""
    b, m = values.shape
    cells = np.empty((b, m, 1 + NUMBER_WIDTH), np.uint8)  # (b, m, 10): separator, then the number
    cells[:, :, 0] = sep
    cells[:, :, 1:] = fixed6(values)
    return compact(np.concatenate([ids, cells.reshape(b, m * (1 + NUMBER_WIDTH)), _col(b, NEWLINE)], axis=1))


def _col(n: int, byte: int) -> np.ndarray:
    return np.full((n, 1), byte, np.uint8)
