"""The v2 training corpus: MetaPhlAn2 marker genes grouped into genomes, held-out genomes removed by sequence.

Source: Debian's `metaphlan2-data` package (expat licence), file `var/lib/metaphlan2-data/markers.fasta`:
~1M marker genes (~710 Mbp) of the MetaPhlAn2 database. Each header names the sequence the gene was cut from,
`>gi|345004010|ref|NC_015954.1|:c1336247-1335993` (`c` = the gene lies on the complement strand), so:
- markers of one complete genome share an accession (`NC_015954.1`);
- markers of one draft genome share a WGS project prefix (`NZ_ABCD01000012.1` and `ABCD01000012.1` -> `ABCD01`: four
  or six letters and a two-digit version, then the contig number);
- headers without coordinates name no genome and are left out: 61,709 bare `GeneID:` numbers and 24,894
  eukaryotic transcripts (`ref|XM_...|`, one gene per accession), 86,784 of 1,036,027 markers. Without a genome
  they can be neither a genome's window nor a negative of their own genome.

A *genome* of the corpus is the concatenation of its markers in genome order (sorted by sequence and start,
complement-strand genes reverse-complemented back onto the forward strand), so a training window of 2 kb spans
a few neighbouring genes of one organism, on both strands, as a window of a real genome does. Genomes with
fewer than `min_markers` markers or `min_bp` bases are dropped (they cannot give enough distinct windows).

Hold-out by sequence, not by name (the headers carry no species): every genome whose FracMinHash 21-mer
sketch is contained in the held-out genomes' sketch at >= `max_containment` is dropped. A 21-mer survives
identity p with probability p^21, so the default 0.01 drops genomes down to ~80% ANI, i.e. the held-out
species and their close congeners (mash screen's containment, computed here with numpy).

Output directory (what `mrl-dna train` reads):
    train.fa            one record per training genome (id = genome key), plain FASTA
    val/<key>.fa        one file per validation genome (--val-genomes), a fixed hash-chosen share
    genomes.tsv         every genome key: markers, bp, split (train / val / dropped-small / dropped-heldout),
                        containment in the held-out set and the held-out file it matched best
    corpus.json         the parameters, the source file's size and sha256, and the counts

Deterministic: the output depends only on markers.fasta, the held-out files and the parameters (no RNG; the
validation split hashes the genome key). `python -m mrl_dna.train.corpus --help` for the command line;
`scripts/data/get_training_data.sh` fetches the package and runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mrl_dna import dna
from mrl_dna.errors import InputError, MrlDnaError
from mrl_dna.inputs.fasta import read_fasta

FORMAT = "mrl-dna-corpus"
FORMAT_VERSION = 1

# gi|345004010|ref|NC_015954.1|:c1336247-1335993   (also gb|/emb|/dbj| records; the c marks the minus strand)
_HEADER = re.compile(r"^gi\|\d+\|[a-z]+\|(?P<acc>[^|]+)\|:(?P<c>c?)(?P<a>\d+)-(?P<b>\d+)")
# a WGS contig accession: optional RefSeq NZ_, 4 or 6 letters, 2-digit version, 6+ digit contig number. The
# project key drops NZ_, so RefSeq (ref|NZ_ABCD01...) and GenBank (gb|ABCD01...) copies of a draft are one genome.
_WGS = re.compile(r"^(?:NZ_)?(?P<project>[A-Z]{4}(?:[A-Z]{2})?\d{2})\d{6,}")


@dataclass(frozen=True)
class CorpusConfig:
    """How markers become genomes. Defaults give ~7k genomes of >= 20 markers (issue 11)."""

    min_markers: int = 20  # a genome with fewer markers gives few distinct 2 kb windows
    min_bp: int = 10_000  # ... and at least 5 non-overlapping 2 kb windows
    val_fraction: float = 0.02  # ~140 validation genomes: enough for a stable top-1, cheap to evaluate
    kmer: int = 21  # mash's default k: a shared 21-mer is (almost) never chance between genomes
    scaled: int = 20  # FracMinHash keeps 1 in 20 k-mers: ~1,400 per 28 kb corpus genome
    max_containment: float = 0.01  # drop genomes sharing >= 1% of their 21-mers with a held-out genome (~80% ANI)

    def __post_init__(self) -> None:
        if self.min_markers < 1 or self.min_bp < 0:
            raise MrlDnaError(f"min_markers {self.min_markers} must be >= 1 and min_bp {self.min_bp} >= 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MrlDnaError(f"val_fraction {self.val_fraction} must be in [0, 1)")
        if not 1 <= self.kmer <= 31 or self.scaled < 1:
            raise MrlDnaError(f"kmer {self.kmer} must be in 1..31 and scaled {self.scaled} >= 1")
        if not 0.0 < self.max_containment <= 1.0:
            raise MrlDnaError(f"max_containment {self.max_containment} must be in (0, 1]")


@dataclass(frozen=True)
class Marker:
    genome: str  # genome key: the accession, or the WGS project of a draft genome's contig
    seq_id: str  # the accession the marker was cut from
    start: int  # 0-based start on that sequence's forward strand
    minus: bool  # the gene lies on the complement strand


def parse_header(header: str) -> Marker | None:
    """A markers.fasta header (without '>') -> Marker, or None for headers that name no genome (`GeneID:`)."""
    m = _HEADER.match(header)
    if m is None:
        return None
    acc = m["acc"]
    a, b = int(m["a"]), int(m["b"])
    wgs = _WGS.match(acc)
    return Marker(genome=wgs["project"] if wgs else acc.split(".")[0], seq_id=acc, start=min(a, b) - 1, minus=m["c"] == "c")


def read_markers(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """(header, sequence bytes) of every record of a plain FASTA, fast (markers.fasta is 770 MB)."""
    header, chunks = None, []
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b">"):
                if header is not None:
                    yield header, b"".join(chunks)
                header, chunks = line[1:].rstrip().decode("ascii", "replace"), []
            elif header is not None:
                chunks.append(line.rstrip())
    if header is not None:
        yield header, b"".join(chunks)


def group_markers(records: Iterable[tuple[str, bytes]]) -> tuple[dict[str, list[tuple[Marker, np.ndarray]]], int]:
    """Markers grouped by genome key -> ({key: [(marker, tokens)]}, number of headers that name no genome)."""
    genomes: dict[str, list[tuple[Marker, np.ndarray]]] = {}
    no_genome = 0
    for header, seq in records:
        m = parse_header(header)
        if m is None:
            no_genome += 1
            continue
        genomes.setdefault(m.genome, []).append((m, dna.encode(seq)))
    return genomes, no_genome


def assemble(markers: Sequence[tuple[Marker, np.ndarray]]) -> np.ndarray:
    """One genome's markers in genome order, complement-strand genes turned back onto the forward strand,
    concatenated -> tokens. Invalid bytes become N (markers.fasta is clean; this keeps the corpus valid)."""
    ordered = sorted(markers, key=lambda mt: (mt[0].seq_id, mt[0].start))
    parts = [dna.revcomp(t) if m.minus else t for m, t in ordered]
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    out[out == dna.INVALID] = dna.N
    return out


# ------------------------------------------------------------------------------------ held-out sketches
_CODE = np.full(256, 255, dtype=np.uint8)
for _j, _tok in enumerate(dna.BASES):
    _CODE[_tok] = _j


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective 64-bit hash (uniform bits for FracMinHash's threshold)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def sketch(tokens: np.ndarray, k: int, scaled: int) -> np.ndarray:
    """FracMinHash sketch: sorted unique hashes of the canonical k-mers of `tokens` whose hash < 2^64/scaled.
    k-mers touching N (or any non-ACGT token) are skipped. Strand-independent (canonical k-mers)."""
    n = tokens.size - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    code = _CODE[tokens]
    bad = np.concatenate([[0], np.cumsum(code == 255)])
    valid = (bad[k:] - bad[:n]) == 0  # (n,): windows of k bases with no N
    c = np.where(code == 255, 0, code).astype(np.uint64)
    fwd = np.zeros(n, dtype=np.uint64)
    rev = np.zeros(n, dtype=np.uint64)
    for j in range(k):  # rolling codes, one vectorised pass per k-mer position
        fwd = (fwd << np.uint64(2)) | c[j : j + n]
        rev = rev | ((np.uint64(3) - c[j : j + n]) << np.uint64(2 * j))
    h = _mix64(np.minimum(fwd, rev)[valid])
    return np.unique(h[h < np.uint64((2**64 - 1) // scaled)])


def containment(query: np.ndarray, reference: np.ndarray) -> float:
    """Share of the query sketch's hashes found in the (sorted) reference sketch; 0 for an empty query."""
    if query.size == 0:
        return 0.0
    i = np.searchsorted(reference, query).clip(max=max(reference.size - 1, 0))
    return float(np.count_nonzero(reference[i] == query) / query.size) if reference.size else 0.0


def heldout_sketches(paths: Sequence[Path], k: int, scaled: int) -> list[tuple[str, np.ndarray]]:
    """(file name, sketch of all its records) for each held-out FASTA file."""
    out = []
    for p in paths:
        hashes = [sketch(r.tokens, k, scaled) for r in read_fasta([p], check_duplicates=False)]
        out.append((p.name, np.unique(np.concatenate(hashes)) if hashes else np.zeros(0, dtype=np.uint64)))
    return out


def in_validation(key: str, fraction: float) -> bool:
    """A fixed, order-independent choice: the genome key's sha1 mapped to [0, 1) < fraction."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64 < fraction


# ------------------------------------------------------------------------------------------------- build
@dataclass
class CorpusSummary:
    genomes: int  # genome keys in markers.fasta
    no_genome_markers: int
    dropped_small: int
    dropped_heldout: int
    train: int
    val: int
    train_bp: int
    val_bp: int


def build_corpus(markers: Path, out: Path, heldout: Sequence[Path], cfg: CorpusConfig = CorpusConfig(),
                 log=lambda msg: print(msg, file=sys.stderr)) -> CorpusSummary:
    """markers.fasta + held-out FASTA files -> the corpus directory `out` (see the module docstring).
    Written into `out.partial` and renamed, so a directory named `out` is always complete."""
    if not markers.is_file():
        raise InputError(f"{markers} does not exist; run scripts/data/get_training_data.sh to fetch metaphlan2-data")
    if out.exists():
        raise InputError(f"{out} already exists; delete it to rebuild the corpus")
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    (tmp / "val").mkdir(parents=True)

    log(f"corpus: sketching {len(heldout)} held-out file(s) (k={cfg.kmer}, scaled={cfg.scaled})")
    held = heldout_sketches(heldout, cfg.kmer, cfg.scaled)
    union = np.unique(np.concatenate([h for _, h in held])) if held else np.zeros(0, dtype=np.uint64)
    log(f"corpus: reading {markers}")
    genomes, no_genome = group_markers(read_markers(markers))
    log(f"corpus: {len(genomes):,} genome keys, {no_genome:,} markers without a genome (left out)")

    summary = CorpusSummary(len(genomes), no_genome, 0, 0, 0, 0, 0, 0)
    rows = []
    with open(tmp / "train.fa", "w") as train_fa:
        for key in sorted(genomes):
            ms = genomes[key]
            tokens = assemble(ms)
            row = {"genome": key, "markers": len(ms), "bp": int(tokens.size), "containment": "", "best_heldout": ""}
            if len(ms) < cfg.min_markers or tokens.size < cfg.min_bp:
                row["split"] = "dropped-small"
                summary.dropped_small += 1
                rows.append(row)
                continue
            sk = sketch(tokens, cfg.kmer, cfg.scaled)
            c = containment(sk, union)
            row["containment"] = f"{c:.4f}"
            if c >= cfg.max_containment:
                best = max(held, key=lambda nh: containment(sk, nh[1]))[0]
                row.update(split="dropped-heldout", best_heldout=best)
                summary.dropped_heldout += 1
            elif in_validation(key, cfg.val_fraction):
                row["split"] = "val"
                _write_fasta(tmp / "val" / f"{key}.fa", key, tokens, f"markers={len(ms)}")
                summary.val += 1
                summary.val_bp += tokens.size
            else:
                row["split"] = "train"
                _write_record(train_fa, key, tokens, f"markers={len(ms)}")
                summary.train += 1
                summary.train_bp += tokens.size
            rows.append(row)

    with open(tmp / "genomes.tsv", "w") as f:
        cols = ["genome", "split", "markers", "bp", "containment", "best_heldout"]
        f.write("\t".join(cols) + "\n")
        for row in rows:
            f.write("\t".join(str(row[c]) for c in cols) + "\n")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": {"file": markers.name, "bytes": markers.stat().st_size, "sha256": _sha256(markers)},
        "heldout": [name for name, _ in held],
        "config": asdict(cfg),
        "summary": asdict(summary),
    }
    (tmp / "corpus.json").write_text(json.dumps(meta, indent=2) + "\n")
    tmp.rename(out)
    log(
        f"corpus: {summary.train:,} training genomes ({summary.train_bp / 1e6:.1f} Mbp), {summary.val} validation "
        f"({summary.val_bp / 1e6:.1f} Mbp); dropped {summary.dropped_small:,} small and {summary.dropped_heldout} "
        f"similar to a held-out genome -> {out}"
    )
    return summary


def _write_record(f, rid: str, tokens: np.ndarray, description: str, width: int = 80) -> None:
    text = dna.decode(tokens)
    f.write(f">{rid} {description}\n")
    f.write("\n".join(text[i : i + width] for i in range(0, len(text), width)) + "\n")


def _write_fasta(path: Path, rid: str, tokens: np.ndarray, description: str) -> None:
    with open(path, "w") as f:
        _write_record(f, rid, tokens, description)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    d = CorpusConfig()
    ap = argparse.ArgumentParser(
        prog="python -m mrl_dna.train.corpus",
        description="Group MetaPhlAn2 marker genes into genomes, drop genomes like the held-out ones, split "
        "validation genomes, and write the corpus that `mrl-dna train` reads.",
    )
    ap.add_argument("markers", type=Path, help="markers.fasta of Debian's metaphlan2-data")
    ap.add_argument("out", type=Path, help="corpus directory to write (must not exist)")
    ap.add_argument("--heldout", type=Path, nargs="*", default=[], help="held-out FASTA files (plain/gzip)")
    ap.add_argument("--min-markers", type=int, default=d.min_markers)
    ap.add_argument("--min-bp", type=int, default=d.min_bp)
    ap.add_argument("--val-fraction", type=float, default=d.val_fraction)
    ap.add_argument("--max-containment", type=float, default=d.max_containment)
    args = ap.parse_args(argv)
    try:
        cfg = CorpusConfig(min_markers=args.min_markers, min_bp=args.min_bp, val_fraction=args.val_fraction,
                           max_containment=args.max_containment)
        build_corpus(args.markers, args.out, args.heldout, cfg)
    except MrlDnaError as e:
        print(f"corpus: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
