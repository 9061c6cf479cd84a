"""`mrl-dna dist`: cosine similarity and angular distance of all pairs of rows of one or two embedding files,
as a long table, a square matrix or a PHYLIP distance matrix, streamed in blocks.

Similarity s = normalize(a[:k]) . normalize(b[:k]), the cosine `mrl-dna search` reports at prefix k.
Distance d = arccos(s) / pi, the angle between the two vectors as a fraction of a half turn: 0 for the same
direction, 0.5 for orthogonal vectors, 1 for opposite ones. Why the angle and not 1 - s: d is a metric (it
obeys the triangle inequality, which 1 - s does not), so neighbour joining, UPGMA and average linkage get
distances they can add; it orders pairs exactly as s does (--min-sim is the same filter as a maximum d); and it
spreads out close pairs (s = 0.995 and 0.999 are d = 0.032 and 0.014, where 1 - s gives 0.005 and 0.001). It is
not an ANI or a mutation distance: the model's cosine has no calibrated relation to either.

Pairs: `dist A B` scores every row of A with every row of B (n x m, A's rows in order, each with B's in
order, like `mash dist`). `dist A` scores A with itself: the long table holds each unordered pair once
(row i < row j, no self pairs, like the lower triangle of `mash triangle`, without its diagonal); a matrix
or PHYLIP output is square, both triangles and the diagonal (1 and 0). Rows without a vector (empty or
all-N records) are left out, with a warning.

Memory: the targets at prefix k (m x k float32 plus a float64 copy: 100k x 128 is 150 MB) and one block of
query rows (matrix.BLOCK_BYTES of scores and text); never the n x m matrix.

Axis letters: n rows of A (queries), m rows of B (targets), b query rows in a block, p pairs, k prefix width.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mrl_dna.compare import text
from mrl_dna.console import count
from mrl_dna.compare.matrix import Products, Vectors, block_rows, compute_device, load_vectors
from mrl_dna.errors import ConfigError
from mrl_dna.store import check_comparable, same_file
from mrl_dna.store.textout import check_text_output, text_output
from mrl_dna.vectors import check_cosine

# Pairs formatted at once in the long table: 60-120 bytes each, 4-8 MB of text per step. Measured on 5k x 5k
# marker genes (1 thread): 2^16 lines per step ran in 9 s at a 150 MiB peak, 2^19 in 12.5 s at 410 MiB (the
# step's arrays no longer fit in the caches); 2^15 was no faster.
LINES_PER_STEP = 1 << 16


class DistFormat(str, enum.Enum):
    long = "long"  # one line per pair: query, target, similarity, distance (--min-sim drops far pairs)
    matrix = "matrix"  # square (or n x m) TSV of similarities, a header line of target ids
    phylip = "phylip"  # square distance matrix of one file for tree tools (relaxed PHYLIP: names of any length)


LONG_HEADER = "#query\ttarget\tsimilarity\tdistance\n"


def angular_distance(similarity: np.ndarray) -> np.ndarray:
    """d = arccos(s) / pi in [0, 1] (module docstring); s is clipped to [-1, 1] first (rounding)."""
    return np.arccos(np.clip(np.asarray(similarity, np.float64), -1.0, 1.0)) / np.pi


@dataclass(frozen=True)
class DistSummary:
    n_queries: int
    n_targets: int
    dim: int
    pairs_scored: int
    lines: int  # data lines written (pairs, or matrix rows)
    skipped: int  # rows without a vector, left out (both files)
    device: str
    seconds: float


def dist(
    a: str | Path,
    b: str | Path | None = None,
    *,
    dim: int | None = None,
    fmt: DistFormat | str = DistFormat.long,
    min_sim: float | None = None,
    output: str | Path | None = None,
    force: bool = False,
    header: bool = True,
    device: str = "cpu",
    warn: Callable[[str], None] = lambda m: None,
) -> DistSummary:
    """Everything `mrl-dna dist` does: check the output, read the prefixes, score block by block, write."""
    t0 = time.perf_counter()
    fmt = DistFormat(fmt)
    check_cosine(min_sim, "--min-sim")
    if min_sim is not None and fmt is not DistFormat.long:
        raise ConfigError(f"--min-sim drops pairs from the long table; a {fmt.value} has every pair: drop --min-sim "
                          "or use --format long")
    if fmt is DistFormat.phylip and b is not None:
        raise ConfigError("--format phylip is a square distance matrix of one file; give one file (dist A.h5), or "
                          "merge the two first (mrl-dna merge --concat A.h5 B.h5 -o AB.h5)")
    inputs = [a] if b is None else [a, b]
    example = "dist.phy" if fmt is DistFormat.phylip else "dist.tsv"  # the name suggested for -o DIR
    check_text_output(output, inputs=inputs, force=force, example=example)  # before any work
    dev = compute_device(device)
    qa = load_vectors(a, dim, warn=warn)
    qb = qa if b is None else load_vectors(b, dim, warn=warn)
    check_comparable([(str(qa.path), qa.attrs), (str(qb.path), qb.attrs)])  # one model, window, stride, ...
    if b is not None and fmt is DistFormat.long and same_file(a, b):
        warn(f"{a} and {b} are one file: every pair is printed twice (i, j and j, i) and each row with itself; "
             f"`mrl-dna dist {a}` prints each pair once")
    skipped = qa.n_skipped + (0 if b is None else qb.n_skipped)
    if skipped:
        warn(f"{count(skipped, 'row')} {'has' if skipped == 1 else 'have'} no vector (empty or all-N records) and "
             f"{'is' if skipped == 1 else 'are'} left out")
    products = Products(qb.x, dev)
    with text_output(output, inputs=inputs, force=force, example=example) as out:
        if fmt is DistFormat.long:
            scored, lines = _long(qa, qb, products, out, self_pairs=b is None, min_sim=min_sim, header=header)
        else:
            scored, lines = _matrix(qa, qb, products, out, fmt=fmt, header=header, self_pairs=b is None)
    return DistSummary(n_queries=len(qa.ids), n_targets=len(qb.ids), dim=qa.x.shape[1], pairs_scored=scored,
                       lines=lines, skipped=skipped, device=dev, seconds=time.perf_counter() - t0)


def _long(qa: Vectors, qb: Vectors, products: Products, out: BinaryIO, *, self_pairs: bool,
          min_sim: float | None, header: bool) -> tuple[int, int]:
    """Lines 'query target similarity distance'; with self_pairs only row i < row j."""
    if header:
        out.write(LONG_HEADER.encode())
    qid, tid = text.id_column(qa.ids), text.id_column(qb.ids)
    n, m = len(qa.ids), len(qb.ids)
    step = block_rows(m)
    scored = lines = 0
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        c0 = r0 + 1 if self_pairs else 0  # self: the targets after the block's first row
        if c0 >= m:
            break
        S = products(qa.x[r0:r1], slice(c0, m))  # (b, m - c0) float64
        keep = np.ones(S.shape, bool)
        if self_pairs:  # row i pairs with columns j > i only
            keep &= (np.arange(c0, m)[None, :] > np.arange(r0, r1)[:, None])
        scored += int(keep.sum())
        if min_sim is not None:
            keep &= S >= min_sim
        i, j = np.nonzero(keep)  # (p,) query-major, targets in order
        for p0 in range(0, len(i), LINES_PER_STEP):
            ii, jj = i[p0 : p0 + LINES_PER_STEP], j[p0 : p0 + LINES_PER_STEP]
            s = S[ii, jj]  # (p,) float64; printed as float32 values, which are symmetric (matrix.Products)
            out.write(text.pair_lines(qid[r0 + ii], tid[c0 + jj], _printed(s)))
        lines += len(i)
    return scored, lines


def _matrix(qa: Vectors, qb: Vectors, products: Products, out: BinaryIO, *, fmt: DistFormat, header: bool,
            self_pairs: bool) -> tuple[int, int]:
    """Rows of similarities (matrix, a '#query<TAB>ids...' header) or of distances (phylip, a first line with
    the number of rows; names padded to 10 characters, whitespace in them replaced by '_')."""
    n, m = len(qa.ids), len(qb.ids)
    if fmt is DistFormat.phylip:
        out.write(f"{n:>5}\n".encode())
        ids = text.id_column(["_".join(i.split()) for i in qa.ids], min_width=10, pad=text.SPACE)
        sep = text.SPACE
    else:
        if header:
            out.write(("#query\t" + "\t".join(qb.ids) + "\n").encode())
        ids, sep = text.id_column(qa.ids), text.TAB
    step = block_rows(m, per_value=64)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        S = products(qa.x[r0:r1])  # (b, m) float64
        if self_pairs:  # a vector's cosine with itself is 1 (rounding aside)
            S[np.arange(r1 - r0), np.arange(r0, r1)] = 1.0
        sim, d = _printed(S)
        out.write(text.matrix_lines(ids[r0:r1], d if fmt is DistFormat.phylip else sim, sep=sep))
    return n * m, n


def _printed(similarity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity and distance as printed: rounded to float32 from the float64 cosines (symmetric bit for bit,
    see matrix.Products)."""
    return similarity.astype(np.float32), angular_distance(similarity).astype(np.float32)
