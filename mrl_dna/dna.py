"""DNA alphabet and token ids.

Token ids follow Caduceus' character tokenizer, so official Caduceus checkpoints read the same ids:
    [CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11
Lowercase (soft-masked) bases are the same as uppercase; IUPAC ambiguity codes (R Y S W K M B D H V)
become N; U (RNA) is read as T. Any other byte maps to INVALID, which the FASTA reader reports with the
record and position.
"""

from __future__ import annotations

import hashlib

import numpy as np

PAD, A, C, G, T, N = 4, 7, 8, 9, 10, 11
INVALID = 255
BASES = (A, C, G, T)

IUPAC_AMBIGUOUS = b"RYSWKMBDHVN"

# bytes -> token id, a 256-entry lookup table
ENCODE_TABLE = np.full(256, INVALID, dtype=np.uint8)
for _ch, _id in ((b"A", A), (b"C", C), (b"G", G), (b"T", T), (b"U", T)):
    ENCODE_TABLE[_ch[0]] = _id
    ENCODE_TABLE[_ch.lower()[0]] = _id
for _ch in IUPAC_AMBIGUOUS:
    ENCODE_TABLE[_ch] = N
    ENCODE_TABLE[bytes([_ch]).lower()[0]] = N

# token id -> complement token id (ids outside A,C,G,T map to themselves, as Caduceus' complement_map)
COMPLEMENT = np.arange(256, dtype=np.uint8)
COMPLEMENT[A], COMPLEMENT[T] = T, A
COMPLEMENT[C], COMPLEMENT[G] = G, C

DECODE_TABLE = np.frombuffer(b"?" * 256, dtype=np.uint8).copy()
for _ch, _id in ((b"A", A), (b"C", C), (b"G", G), (b"T", T), (b"N", N), (b"-", PAD)):
    DECODE_TABLE[_id] = _ch[0]


def encode(seq: bytes | str) -> np.ndarray:
    """Sequence text -> uint8 token ids (INVALID where the byte is not a DNA/IUPAC letter)."""
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    return ENCODE_TABLE[np.frombuffer(seq, dtype=np.uint8)]


def decode(ids: np.ndarray) -> str:
    """uint8 token ids -> uppercase sequence text."""
    return DECODE_TABLE[np.asarray(ids, dtype=np.uint8)].tobytes().decode("ascii")


def revcomp(ids: np.ndarray) -> np.ndarray:
    """Reverse complement of token ids (N stays N)."""
    return COMPLEMENT[np.asarray(ids, dtype=np.uint8)][::-1].copy()


def first_invalid(ids: np.ndarray) -> int:
    """Index of the first INVALID token, or -1 when every token is valid."""
    bad = np.flatnonzero(ids == INVALID)
    return int(bad[0]) if bad.size else -1


def checksum(ids: np.ndarray) -> int:
    """A 64-bit checksum (blake2b) of a sequence's token ids, never 0 (0 = unknown in a store's /checksum): what
    resume compares to tell a record it embedded from an edited one of the same id and length. Of the ids, not
    the text, so a change that does not change the vector (soft-masking case, U for T) is not a change.
    About 1 GB/s: nothing beside the encoder."""
    h = hashlib.blake2b(np.ascontiguousarray(ids, dtype=np.uint8), digest_size=8).digest()
    return int.from_bytes(h, "little") or 1
