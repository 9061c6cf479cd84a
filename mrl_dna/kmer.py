"""Canonical k-mer frequency profiles: the alignment-free baseline every mrl-dna claim is compared with.

A profile counts every k-mer of a sequence together with its reverse complement (the "canonical" k-mer is
the smaller of the two 2-bit codes), so a sequence and its reverse complement get the same vector, as
mrl-dna's encoder does by construction. k-mers that touch an N (or any non-ACGT token) are skipped.
Vectors are L2-normalised so that a dot product is the cosine of the two profiles.

    k = 4  ->  136 canonical 4-mers   ((4^4 + 4^2) / 2: 120 pairs plus 16 palindromes)
    k = 6  -> 2080 canonical 6-mers   ((4^6 + 4^3) / 2)

Everything is vectorised numpy over the uint8 token arrays of `mrl_dna.dna` (A=7 C=8 G=9 T=10 N=11);
a 5 Mbp genome takes well under a second at k=6.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from mrl_dna.dna import A, C, G, T
from mrl_dna.errors import ConfigError
from mrl_dna.vectors import normalize_rows

MAX_K = 12  # 4^12 = 16.7M-entry lookup table (67 MB); beyond that a dense profile is the wrong tool

# token id -> 2-bit code (A0 C1 G2 T3); 4 marks "not a base" (N, PAD, INVALID)
_BITS = np.full(256, 4, dtype=np.int64)
_BITS[A], _BITS[C], _BITS[G], _BITS[T] = 0, 1, 2, 3
_CODE2 = _BITS.astype(np.uint8)  # the same as uint8, for kmer_codes


def n_canonical(k: int) -> int:
    """Number of canonical k-mers: (4^k + palindromes) / 2, palindromes = 4^(k/2) for even k, else 0."""
    return (4**k + (4 ** (k // 2) if k % 2 == 0 else 0)) // 2


@lru_cache(maxsize=None)
def canonical_index(k: int) -> np.ndarray:
    """Lookup table (4^k,) int64: k-mer code -> column of its canonical k-mer in the profile.

    Columns are ordered by the canonical code, so column 0 is AAAA..., column 1 AAA..C, and so on."""
    _check_k(k)
    codes = np.arange(4**k, dtype=np.int64)
    canon = np.minimum(codes, _revcomp_codes(codes, k))
    uniq, col = np.unique(canon, return_inverse=True)  # uniq sorted -> columns in canonical-code order
    assert uniq.size == n_canonical(k)
    return col.astype(np.int64)


def canonical_kmers(k: int) -> list[str]:
    """The canonical k-mers as strings, in profile column order (for labelling plots and tests)."""
    codes = np.unique(np.minimum(np.arange(4**k), _revcomp_codes(np.arange(4**k, dtype=np.int64), k)))
    return ["".join("ACGT"[(int(c) >> (2 * (k - 1 - j))) & 3] for j in range(k)) for c in codes]


def kmer_codes(tokens: np.ndarray, k: int) -> np.ndarray:
    """The 2-bit code (A0 C1 G2 T3, first base highest) of the k-mer starting at each position -> (max(0, L - k
    + 1),) unsigned ints, or 4^k ("no k-mer") where it touches an N or any non-base.

    The counting core of every profile here (kmer_counts, window_kmer_counts): one pass per base of the k-mer
    over the codes (uint16 up to k = 7; no (L, k) array), and counts are taken over the 4^k codes, folded into
    canonical columns afterwards (_fold), so nothing is looked up per base."""
    _check_k(k)
    t = np.asarray(tokens, dtype=np.uint8)
    n = t.size - k + 1
    if n < 1:
        return np.empty(0, dtype=np.uint16 if k <= 7 else np.uint32)
    b = t - np.uint8(A)  # A C G T -> 0..3 (the ids are consecutive: dna.A..dna.T); anything else -> >= 4
    if not (A + 1 == C and C + 1 == G and G + 1 == T):  # pragma: no cover (guards the token table's layout)
        b = _CODE2[t]
    bad = (b[:n] > 3).view(np.uint8)  # 1 where the k-mer's first base is not ACGT
    code = b[:n].astype(np.uint16 if k <= 7 else np.uint32)
    code &= 3
    for j in range(1, k):  # rolling 2-bit code: code = code * 4 + base; bad |= (base is not ACGT)
        nxt = b[j : j + n]
        bad |= nxt > 3
        code <<= 2
        code |= nxt & 3
    code[bad.view(bool)] = 4**k
    return code


@lru_cache(maxsize=None)
def _fold(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How counts over the 4^k codes become canonical counts: column c = raw[first[c]] (+ raw[second[c]] for the
    columns `pair`, the k-mers that are not their own reverse complement)."""
    codes = np.arange(4**k, dtype=np.int64)
    rc = _revcomp_codes(codes, k)
    first = np.unique(np.minimum(codes, rc))  # (K,) canonical codes, in column order
    second = _revcomp_codes(first, k)
    pair = np.flatnonzero(second != first)
    return first.astype(np.intp), pair, second[pair].astype(np.intp)


def _folded(raw: np.ndarray, k: int) -> np.ndarray:
    """(..., 4^k [+ 1]) counts per code -> (..., n_canonical(k)) int64 counts per canonical k-mer."""
    first, pair, second = _fold(k)
    out = raw[..., first].astype(np.int64)
    out[..., pair] += raw[..., second]
    return out


def kmer_counts(tokens: np.ndarray, k: int) -> np.ndarray:
    """Canonical k-mer counts of one token array -> (n_canonical(k),) int64. k-mers with N are skipped."""
    return _folded(np.bincount(kmer_codes(tokens, k), minlength=4**k + 1), k)


def window_kmer_counts(tokens: np.ndarray, k: int, spans: np.ndarray) -> np.ndarray:
    """Canonical k-mer counts of each window [start, end) of one token array -> (w, n_canonical(k)) int64: the
    k-mers that lie wholly inside the window (those touching an N skipped), as kmer_counts(tokens[s:e]) row by
    row, in one vectorised pass (windows may overlap; spans are (w, 2) within the array). Memory: (w,
    n_canonical(k)) int64 counts, so callers pass windows a few hundred at a time."""
    _check_k(k)
    spans = np.asarray(spans, dtype=np.intp).reshape(-1, 2)  # (w, 2)
    w, K = len(spans), n_canonical(k)
    if not w:
        return np.zeros((0, K), dtype=np.int64)
    col = _columns(k)[kmer_codes(tokens, k)]  # (n,) canonical column of each k-mer, K where there is none
    bins = K + 1  # a window's row of counts: K columns and the "no k-mer" one
    s = spans[:, 0]
    f = np.maximum(spans[:, 1] - k + 1, s)  # window i's k-mers start in [s_i, f_i)
    if not ((s[1:] > s[:-1]).all() and (f[1:] >= f[:-1]).all() and (f[:-2] <= s[2:]).all()):
        return _any_window_counts(col, s, f, K)  # unsorted, or windows that reach past the next one
    # each k-mer start p in [s_0, f_last) gets the row of the last window that starts at or before it: positions
    # [s_i, s_i+1) go to window i, those past f_i (k-mers that cross its end) to a spare row w; the starts that
    # window i shares with window i+1 ([s_i+1, f_i), where windows overlap) are added to row i afterwards
    nxt = np.append(s[1:], f[-1])  # (w,) where window i's own run stops
    own = np.minimum(f, nxt) - s  # (w,) its k-mer starts before the next window's
    gap = nxt - s - own  # (w,) starts after f_i and before s_i+1: in no window
    rows = np.empty(2 * w, dtype=np.intp)
    rows[0::2] = np.arange(w, dtype=np.intp) * bins
    rows[1::2] = w * bins  # the spare row
    lengths = np.empty(2 * w, dtype=np.intp)
    lengths[0::2], lengths[1::2] = own, gap
    flat = np.repeat(rows, lengths)  # (f_last - s_0,)
    if f[-1] > len(col):  # windows shorter than k at the end start past the last k-mer: "no k-mer" there
        col = np.append(col, np.full(f[-1] - len(col), K, dtype=np.intp))
    flat += col[s[0] : f[-1]]
    counts = np.bincount(flat, minlength=(w + 1) * bins)
    shared = np.maximum(f[:-1] - s[1:], 0)  # (w - 1,) starts window i shares with window i + 1
    if shared.any():
        first = np.cumsum(shared) - shared
        pos = np.arange(int(shared.sum()), dtype=np.intp)
        pos += np.repeat(s[1:] - first, shared)
        extra = np.repeat(np.arange(w - 1, dtype=np.intp) * bins, shared)
        extra += col[pos]
        counts[: w * bins] += np.bincount(extra, minlength=w * bins)
    return counts[: w * bins].reshape(w, bins)[:, :K]


def _any_window_counts(col: np.ndarray, s: np.ndarray, f: np.ndarray, K: int) -> np.ndarray:
    """window_kmer_counts for any windows (k-mer starts [s_i, f_i) over the columns `col`): every window's starts
    laid out in a row, one gather."""
    per = f - s  # (w,)
    first = np.cumsum(per) - per  # where window i's run begins in that row
    pos = np.arange(int(per.sum()), dtype=np.intp)
    pos += np.repeat(s - first, per)
    flat = np.repeat(np.arange(len(s), dtype=np.intp) * (K + 1), per)  # window i's bins: i * (K + 1) + column
    flat += col[pos]
    return np.bincount(flat, minlength=len(s) * (K + 1)).reshape(len(s), K + 1)[:, :K]


@lru_cache(maxsize=None)
def _columns(k: int) -> np.ndarray:
    """(4^k + 1,) intp: code -> canonical column (canonical_index), and the "no k-mer" code 4^k -> n_canonical(k)."""
    return np.append(canonical_index(k), n_canonical(k)).astype(np.intp)


def kmer_profile(tokens: np.ndarray, k: int) -> np.ndarray:
    """L2-normalised canonical k-mer profile of one sequence -> (n_canonical(k),) float32.
    A sequence without a single valid k-mer gets the zero vector (cosine 0 with everything)."""
    c = kmer_counts(tokens, k).astype(np.float64)
    norm = np.linalg.norm(c)
    return (c / norm if norm > 0 else c).astype(np.float32)


def kmer_profiles(seqs: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Profiles of many sequences -> (n, n_canonical(k)) float32, rows L2-normalised.

    This is an "embedder" in the sense of `mrl_dna.evaluate`: list of token arrays -> (n, D) vectors."""
    out = np.zeros((len(seqs), n_canonical(k)), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i] = kmer_profile(s, k)
    return out


class KmerEmbedder:
    """Callable embedder for `mrl_dna.evaluate`: `KmerEmbedder(6)(token_arrays) -> (n, 2080)`."""

    def __init__(self, k: int) -> None:
        _check_k(k)
        self.k = k
        self.name = f"{k}-mer profile"
        self.dim = n_canonical(k)

    def __call__(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        return kmer_profiles(seqs, self.k)


class ProjectedKmerEmbedder:
    """`ProjectedKmerEmbedder(6, 512)(token_arrays) -> (n, 512)`: a fixed random linear image of the k-mer
    profile, the reference for "what a `dim`-wide linear map of k-mer frequencies keeps" (issue 11: a trained
    linear head on the 6-mer profile scores like this on locus retrieval, far below the 2,080-d profile itself).

    Each profile is scaled as the model's k-mer input is (`KmerProfile(k, "sqrt")`: sqrt(K * f) - 1, so the
    uniform composition maps to 0), multiplied by a Gaussian matrix (K, dim) drawn from `seed`, and
    L2-normalised; cosines are then those of the scaled profiles up to the projection's ~1/sqrt(dim) error."""

    def __init__(self, k: int, dim: int, seed: int = 0) -> None:
        _check_k(k)
        self.k, self.dim = k, dim
        self.name = f"{k}-mer profile -> random {dim}-d"
        n = n_canonical(k)
        self.proj = (np.random.default_rng(seed).standard_normal((n, dim)) / np.sqrt(dim)).astype(np.float32)

    def __call__(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        n = n_canonical(self.k)
        x = np.zeros((len(seqs), n), dtype=np.float32)
        for i, s in enumerate(seqs):
            c = kmer_counts(s, self.k).astype(np.float64)
            total = c.sum()
            if total > 0:  # a sequence without a valid k-mer stays 0, as in KmerProfile
                x[i] = np.sqrt(c / total * n) - 1.0
        return normalize_rows(x @ self.proj)


def _revcomp_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """2-bit codes of the reverse complements of the k-mers with the given codes."""
    rc = np.zeros_like(codes)
    for j in range(k):  # base j (from the left) becomes base k-1-j, complemented (3 - b)
        b = (codes >> (2 * (k - 1 - j))) & 3
        rc |= (3 - b) << (2 * j)
    return rc


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k-mer size {k} is out of range 1..{MAX_K}; pick e.g. 4 or 6")


# ---- the TNF baseline of DNABERT-S ---------------------------------------------------------------------------
# DNABERT-S (Zhou et al. 2024) reports "TNF" as its composition baseline: MAGICS-LAB/DNABERT_S,
# evaluate/utils.py `calculate_tnf` counts all 256 tetranucleotides of the sequence as written (NOT canonical:
# a sequence and its reverse complement get different vectors), columns in the order of
# itertools.product('ATCG', repeat=4), and divides by the total count (frequencies, not L2-normalised; the
# clustering normalises afterwards). Deviation: their loop raises KeyError on a k-mer with N; here k-mers
# with N (or any non-ACGT token) are skipped, and a sequence without one valid 4-mer gets zeros, not 0/0.
_TNF_BITS = np.full(256, 4, dtype=np.int64)
_TNF_BITS[A], _TNF_BITS[T], _TNF_BITS[C], _TNF_BITS[G] = 0, 1, 2, 3  # DNABERT-S's alphabet order A, T, C, G


def tnf_frequencies(tokens: np.ndarray) -> np.ndarray:
    """DNABERT-S's TNF of one token array -> (256,) float64 frequencies of the (non-canonical) 4-mers."""
    bits = _TNF_BITS[np.asarray(tokens, dtype=np.uint8)]  # (L,) 0..3 in ATCG order, 4 = not a base
    n = bits.size - 3
    if n < 1:
        return np.zeros(256)
    b = np.where(bits == 4, 0, bits)
    code = (b[:n] << 6) | (b[1 : n + 1] << 4) | (b[2 : n + 2] << 2) | b[3 : n + 3]  # (n,) index into product('ATCG', 4)
    bad = np.concatenate(([0], np.cumsum(bits == 4)))
    counts = np.bincount(code[(bad[4:] - bad[:n]) == 0], minlength=256).astype(np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts


class TnfEmbedder:
    """DNABERT-S's raw 256-d TNF as an embedder for `mrl_dna.evaluate`: token arrays -> (n, 256) float32."""

    name = "TNF (DNABERT-S, 256-d)"
    dim = 256

    def __call__(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(seqs), 256), dtype=np.float32)
        for i, s in enumerate(seqs):
            out[i] = tnf_frequencies(s)
        return out
