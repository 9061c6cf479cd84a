"""`embed FASTA --regions regions.bed`: BED intervals of an indexed FASTA, read by random access (pyfaidx).

- BED: tab-separated chrom, start, end[, name, ...]; 0-based, half-open [start, end) as everywhere in BED;
  blank, '#', 'track' and 'browser' lines are skipped; gzip is read by its magic bytes. Each interval is one
  record, named by the name column, else chrom:start-end. Every problem is an InputError naming the line: a
  malformed line, start >= end, an unknown chromosome, an end past the chromosome's end, a name used twice.
- FASTA: plain or bgzip (random access; plain gzip cannot seek and is refused with the bgzip command). The
  index (.fai, and .gzi for bgzip) is built beside the file when missing, and rebuilt when it does not match
  the file (fasta.py's check for a plain FASTA; for bgzip, names and lengths against a streaming pass and
  mtimes): a stale index would cut the wrong bases. Where it cannot be written, one error says so.
Sequences are checked as read_fasta checks them (upper/lower case, IUPAC codes as N).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mrl_dna import dna
from mrl_dna.errors import InputError
from mrl_dna.inputs.fasta import Record, checked_fai, record_lengths

_SKIP = ("#", "track", "browser")


@dataclass(frozen=True)
class Region:
    chrom: str
    start: int  # 0-based
    end: int  # exclusive
    id: str  # the BED name, else chrom:start-end
    line: int  # 1-based line in the BED file

    def __len__(self) -> int:
        return self.end - self.start


def read_bed(path: str | Path) -> list[Region]:
    """The intervals of a BED file, in file order; InputError naming the line for anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--regions {path}: no such file; check the path")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    out: list[Region] = []
    seen: dict[str, int] = {}
    for n, text in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not text.strip() or text.startswith(_SKIP):
            continue
        where = f"{path} line {n}"
        f = text.rstrip("\r").split("\t") if "\t" in text else text.split()
        if len(f) < 3:
            raise InputError(f"{where}: expected chrom<TAB>start<TAB>end[<TAB>name], got {text[:60]!r}")
        try:
            start, end = int(f[1]), int(f[2])
        except ValueError:
            raise InputError(f"{where}: start and end must be whole numbers, got {f[1]!r} and {f[2]!r}") from None
        if start < 0:
            raise InputError(f"{where}: start {start} is negative; BED coordinates are 0-based")
        if start >= end:
            raise InputError(f"{where}: start {start} >= end {end}; a BED interval is [start, end), 0-based, "
                             "half-open, so end must be larger")
        name = f[3].strip() if len(f) > 3 and f[3].strip() not in ("", ".") else f"{f[0]}:{start}-{end}"
        if name in seen:
            raise InputError(f"{where}: the id {name!r} is used on line {seen[name]} too; ids must be unique: rename "
                             "one (column 4)")
        seen[name] = n
        out.append(Region(f[0], start, end, name, n))
    if not out:
        raise InputError(f"--regions {path} holds no intervals; give a BED file (chrom, start, end[, name])")
    return out


class RegionSource:
    """The intervals of a BED file cut from one indexed FASTA: `listed` (id, bp) for embed's first pass, and
    `records()` the records themselves."""

    def __init__(self, fasta: str | Path, bed: str | Path) -> None:
        self.path, self.bed = Path(fasta), Path(bed)
        self.regions = read_bed(bed)
        self._fasta = _open_indexed(self.path)
        lengths = {name: len(self._fasta[name]) for name in self._fasta.keys()}
        for r in self.regions:
            if r.chrom not in lengths:
                known = ", ".join(list(lengths)[:5]) + (", ..." if len(lengths) > 5 else "")
                raise InputError(f"{self.bed} line {r.line}: unknown chromosome {r.chrom!r}; {self.path} has {known}")
            if r.end > lengths[r.chrom]:
                raise InputError(f"{self.bed} line {r.line}: end {r.end:,} is past the end of {r.chrom} "
                                 f"({lengths[r.chrom]:,} bp in {self.path})")
        self.listed = [(r.id, len(r)) for r in self.regions]

    def records(self) -> Iterator[Record]:
        for r in self.regions:
            text = self._fasta[r.chrom][r.start : r.end]  # str (as_raw): 0-based, half-open
            tokens = dna.encode(text)
            bad = dna.first_invalid(tokens)
            if bad >= 0:
                raise InputError(f"{self.path}, {r.chrom}:{r.start + bad + 1} ({self.bed} line {r.line}): "
                                 f"{text[bad]!r} is not a DNA base (A C G T U or IUPAC)")
            yield Record(id=r.id, description=f"{r.chrom}:{r.start}-{r.end}", tokens=tokens, source=str(self.path))


def _open_indexed(path: Path):
    """pyfaidx.Fasta over a plain or bgzip FASTA with an index that matches it (built or rebuilt here)."""
    from pyfaidx import Fasta, UnsupportedCompressionFormat  # a dependency; only --regions needs it

    if not path.is_file():
        raise InputError(f"{path}: no such file; check the path")
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    fai, gzi = Path(str(path) + ".fai"), Path(str(path) + ".gzi")
    stale = [p for p in (fai, gzi) if p.exists()] if not _index_matches(path, fai, gzi, gz) else []
    missing = not fai.exists() or (gz and not gzi.exists()) or stale
    if missing and not os.access(path.parent, os.W_OK | os.X_OK):
        what = "does not match the file" if stale else "is missing"
        raise InputError(f"--regions needs an index of {path}, which {what}, and {path.parent} is not writable; "
                         f"copy the FASTA where you can write, or index it there (`samtools faidx {path}`)")
    for p in stale:
        p.unlink()
    try:
        return Fasta(str(path), as_raw=True, sequence_always_upper=False, rebuild=True, build_index=True)
    except UnsupportedCompressionFormat:
        raise InputError(f"{path} is gzip, not bgzip: --regions reads by random access, which needs a plain or bgzip "
                         f"FASTA; recompress it: zcat {path} | bgzip > {path.name.removesuffix('.gz')}.bgz") from None
    except ValueError as e:  # pyfaidx: duplicate names, inconsistent line lengths, ...
        raise InputError(f"{path} cannot be indexed for --regions ({e}); fix the FASTA (equal line lengths within "
                         "a record, unique names) or rewrap it (`seqkit seq -w 60`)") from None


def _index_matches(path: Path, fai: Path, gzi: Path, gz: bool) -> bool:
    """Whether the existing index describes this file (False when there is none)."""
    if not fai.exists():
        return False
    if not gz:
        return checked_fai(path) is not None  # every record's place checked (fasta.py)
    if not gzi.exists() or min(fai.stat().st_mtime, gzi.stat().st_mtime) < path.stat().st_mtime:
        return False
    try:
        listed = [(row.split("\t")[0], int(row.split("\t")[1])) for row in fai.read_text().splitlines() if row.strip()]
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return listed == record_lengths(path, check=False)  # a streaming pass: names and lengths as the file has them
