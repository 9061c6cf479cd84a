"""Genome files: finding them (files, directories, globs), naming them, and their group (species) labels.

One genome per FASTA file is the layout every command that takes GENOMES... expects (train, eval, the
benchmarks). A genome's name is its file name without FASTA and compression suffixes; its group comes from
a TSV `key<TAB>group` (key = a path, a file name, a genome name or a record id; MANIFEST.tsv of the shared
data works as it is) or, for the benchmarks, from a MANIFEST.tsv beside the files.
"""

from __future__ import annotations

import csv
import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from mrl_dna.errors import InputError

# What a directory given as GENOMES is searched for (case-insensitive), compressed or not.
FASTA_EXTENSIONS = (".fa", ".fasta", ".fna", ".fas", ".ffn")
FASTA_SUFFIXES = FASTA_EXTENSIONS + tuple(s + ".gz" for s in FASTA_EXTENSIONS)
# What genome_name strips from a file name (repeatedly, case-insensitive).
NAME_SUFFIXES = (".gz", ".bgz", *FASTA_EXTENSIONS, ".seq")


def genome_name(path: str | Path) -> str:
    """`dir/Ecoli_K12_MG1655.fa.gz` -> `Ecoli_K12_MG1655`."""
    name = Path(path).name
    while True:
        low = name.lower()
        suf = next((s for s in NAME_SUFFIXES if low.endswith(s) and len(name) > len(s)), None)
        if suf is None:
            return name
        name = name[: -len(suf)]


def expand_inputs(specs: Sequence[str | Path]) -> list[Path]:
    """Genome inputs -> FASTA paths. Each spec is a file, a directory (searched recursively for
    .fa/.fasta/.fna/.fas/.ffn[.gz]), or a glob pattern; the order is kept and duplicates are dropped."""
    out: list[Path] = []
    for spec in specs:
        s = str(spec)
        p = Path(s)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(FASTA_SUFFIXES))
            if not found:
                raise InputError(f"directory {s} holds no FASTA file (*.fa, *.fasta, *.fna, optionally .gz)")
            out += found
        elif p.is_file():
            out.append(p)
        elif any(c in s for c in "*?["):
            found = sorted(Path(q) for q in glob.glob(s, recursive=True) if Path(q).is_file())
            if not found:
                raise InputError(f"pattern {s} matches no file; quote it so the shell does not expand it, or fix it")
            out += found
        elif p.exists():  # a named pipe or a shell's <(...): training reads every genome many times
            raise InputError(f"genome input {s} is not a regular file (a pipe?), and training reads its genomes more "
                             "than once; save it to a file and pass that")
        else:
            raise InputError(f"genome input {s} does not exist; give FASTA files, a directory or a quoted glob")
    seen: set[Path] = set()
    return [q for q in out if not (q.resolve() in seen or seen.add(q.resolve()))]


def read_tsv(path: str | Path, min_cols: int) -> list[list[str]]:
    """Rows of a tab-separated file with at least `min_cols` columns; blank and '#' lines skipped."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"TSV {p} does not exist")
    rows = []
    with open(p, newline="") as f:
        for i, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not any(c.strip() for c in row) or row[0].startswith("#"):
                continue
            if len(row) < min_cols:
                raise InputError(f"{p}, line {i}: {len(row)} column(s), expected at least {min_cols} tab-separated")
            rows.append(row)
    return rows


def read_groups(path: str | Path) -> dict[str, str]:
    """A TSV key -> group: the first column names a genome (its path, file name or name without suffixes)
    or a record id, the second its group (species). A header line is allowed; extra columns are ignored (so
    the shared data's MANIFEST.tsv works as it is)."""
    out = {}
    for i, (key, group, *_) in enumerate(read_tsv(path, min_cols=2), 1):
        if not group.strip():
            raise InputError(f"{path}: the group of {key.strip()!r} is empty; write 'genome<TAB>group'")
        out[key.strip()] = group.strip()
    return out


def group_of(groups: dict[str, str], path: str | Path, record_ids: Iterable[str] = ()) -> str | None:
    """The group of the genome file `path`: looked up by its path, file name or genome name (keys may also be
    paths whose file name matches), else by one of its record ids; None when the TSV does not name it."""
    path = Path(path)
    for key in (str(path), path.name, genome_name(path)):
        if key in groups:
            return groups[key]
    by_name = {Path(k).name: g for k, g in groups.items()}
    for key in (str(path), path.name):
        if key in by_name:
            return by_name[key]
    for rid in record_ids:
        if rid in groups:
            return groups[rid]
    return None


def manifest_group(path: str | Path) -> str | None:
    """The `group` column of a MANIFEST.tsv (as in ../shared/data) that lists this file, if one is found in
    the file's directory or up to two levels above it."""
    p = Path(path).resolve()
    for d in list(p.parents)[:3]:
        m = d / "MANIFEST.tsv"
        if m.is_file():
            rel = p.relative_to(d).as_posix()
            with open(m, newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    if row.get("file") == rel and row.get("group"):
                        return row["group"]
    return None
