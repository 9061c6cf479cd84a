"""The held-out genomes of issue 11's benchmarks: which files of ../shared/data are scored, with which species
labels, and which near-duplicate genomes are left out.

Default model v2 trains on a corpus with every genome of ../shared/data held out, so the benchmarks draw from
all of them: the bacterial and archaeal genomes (genomes/, and the three 500 kb genomes of small/). Not used:
phages, viruses, plasmids and mtDNA (not bacterial or archaeal genomes, and 10-230 kb: too short for 50
fragments of 10 kb), and the TARA marine MAG (a bin of 459 contigs, mean 4.8 kb, named by no species).

Species labels are scripts/data/default_groups.tsv (MANIFEST.tsv's `group`, with the Blochmannia genus split into
species), checked against whole-genome alignments and changed in two places (`LABEL_CHANGES`). The check:
`minimap2 -x asm20 -c --secondary=no A.fa B.fa`, identity = 1 - the `de:f` tag (gap-compressed divergence)
averaged over primary alignments weighted by aligned query length, coverage = aligned fraction of B
(minimap2 2.24, this VM). Pairs at >= 95% identity over most of the genome are one species (the ANI species
boundary of Jain et al. 2018, used by GTDB); pairs that align over a few % at < 91% are two.

    E. coli MG1655 / W3110         100.00% over 100%    near-duplicate (W3110 left out)
    C. crescentus NA1000 / CB15    100.00% over 100%    near-duplicate (CB15 left out; pyani's ANIb 99.99%)
    B. pennsylvanicus BPEN / BPenn7 99.85% over 100%    near-duplicate (BPenn7 left out)
    E. coli MG1655 / EC590          99.64% over 94%     kept: strains of one species (as W 98.7% over 93%)
    B. chromaiodes 640 / BPEN       98.17% over 100%    one species (default_groups.tsv says two)
    C. glutamicum 13032 / 14067     98.39% over 89%     one species
    S. baltica OS185 / OS223        97.16% over 77%     one species (first 500 kb of each: partly other regions)
    Methanobacterium AL-21 / MB1    90.63% over 0.5%    two species (both files say "Methanobacterium")
    every other Blochmannia pair    < 90% over < 68%    different species
    E. coli MG1655 / Salmonella LT2 84.71% over 39%     different genera

A near-duplicate (>= 99.5% identity over >= 95% of the genome) is left out of every benchmark: beside its twin,
genome top-1 and locus top-1 would be a coin toss for every method, and in clustering it only repeats
sequence. Leaving them out gives 24 genomes of 19 species.
"""

from __future__ import annotations

import csv
import os
from enum import Enum
from pathlib import Path

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.errors import InputError
from mrl_dna.inputs.genomes import genome_name

# file (relative to the data dir, as in MANIFEST.tsv) -> species; MANIFEST order
SPECIES: dict[str, str] = {
    "genomes/Ecoli_K12_MG1655.fa.gz": "Escherichia coli",
    "genomes/Ecoli_W.fa.gz": "Escherichia coli",
    "genomes/Salmonella_LT2.fa.gz": "Salmonella enterica",
    "genomes/Ccres_NA1000.fa.gz": "Caulobacter crescentus",
    "genomes/Ccres_CB15.fa.gz": "Caulobacter crescentus",
    "genomes/Cglut_ATCC13032.fa.gz": "Corynebacterium glutamicum",
    "genomes/Cglut_ATCC14067.fa.gz": "Corynebacterium glutamicum",
    "genomes/Cpseudotb_CIP52.97.fa.gz": "Corynebacterium pseudotuberculosis",
    "genomes/Methanobacterium_AL-21.fa.gz": "Methanobacterium sp. AL-21",
    "genomes/Methanobacterium_MB1.fa.gz": "Methanobacterium sp. MB1",
    "genomes/Aquifex_aeolicus_VF5.fa.gz": "Aquifex aeolicus",
    "genomes/Pectobacterium_atrosepticum_SCRI1043.fa.gz": "Pectobacterium atrosepticum",
    "genomes/Sphingobacteriaceae_DW12.fa.gz": "Sphingobacteriaceae",
    "genomes/Blochmannia_pennsylvanicus_BPEN.fa.gz": "Blochmannia pennsylvanicus",
    "genomes/Blochmannia_pennsylvanicus_BPenn7.fa.gz": "Blochmannia pennsylvanicus",
    "genomes/Blochmannia_chromaiodes_640.fa.gz": "Blochmannia pennsylvanicus",
    "genomes/Blochmannia_Camponotus_nipponensis.fa.gz": "Blochmannia Camponotus_nipponensis",
    "genomes/Blochmannia_Colobopsis_obliquus_757.fa.gz": "Blochmannia Colobopsis_obliquus",
    "genomes/Blochmannia_Polyrhachis_turneri_675.fa.gz": "Blochmannia Polyrhachis_turneri",
    "genomes/Blochmannia_Colobopsis_nipponica.fa.gz": "Blochmannia Colobopsis_nipponica",
    "genomes/Blochmannia_vafer_BVAF.fa.gz": "Blochmannia vafer",
    "genomes/Blochmannia_floridanus.fa.gz": "Blochmannia floridanus",
    "genomes/Ecoli_K12_W3110.fa.gz": "Escherichia coli",
    "genomes/Ecoli_EC590.fa.gz": "Escherichia coli",
    "small/Shew_baltica_OS185_first500k.fa.gz": "Shewanella baltica",
    "small/Shew_baltica_OS223_first500k.fa.gz": "Shewanella baltica",
    "small/Akkermansia_first500k.fa.gz": "Akkermansia muciniphila",
}

# where SPECIES differs from scripts/data/default_groups.tsv, and why (the module docstring has the alignments)
LABEL_CHANGES: dict[str, str] = {
    "genomes/Methanobacterium_AL-21.fa.gz": "default_groups.tsv: 'Methanobacterium' (a genus); aligns to MB1 "
                                            "over 0.5% of its length: MANIFEST's organism name",
    "genomes/Methanobacterium_MB1.fa.gz": "default_groups.tsv: 'Methanobacterium' (a genus); MANIFEST's organism name",
    "genomes/Blochmannia_chromaiodes_640.fa.gz": "default_groups.tsv: 'Blochmannia chromaiodes'; 98.2% identity "
                                                 "to B. pennsylvanicus BPEN over 100%: one species",
}

# left out of every benchmark: file -> its kept twin and the measured identity / coverage
NEAR_DUPLICATES: dict[str, str] = {
    "genomes/Ecoli_K12_W3110.fa.gz": "E. coli K-12 MG1655 (100.00% identity over 100%)",
    "genomes/Ccres_CB15.fa.gz": "C. crescentus NA1000 (100.00% over 100%)",
    "genomes/Blochmannia_pennsylvanicus_BPenn7.fa.gz": "B. pennsylvanicus BPEN (99.85% over 100%)",
}

# the window benchmark's references: every genus with two or more kept genomes (close relatives), plus the
# lone Caulobacter (whose twin is a near-duplicate) as issue 11 lists it
_RELATIVES = ("Ecoli_", "Salmonella_", "Ccres_", "Cglut_", "Cpseudotb_", "Methanobacterium_", "Blochmannia_",
              "Shew_baltica_")
_SMALL_MAX_BP = 2_600_000  # quick mode: genomes up to ~2.6 Mbp (MANIFEST's bp), a quarter of the sequence
_SMALL_RELATIVES = ("Methanobacterium_", "Blochmannia_", "Shew_baltica_")


class GenomeSet(str, Enum):
    """Which held-out genomes a benchmark uses (near-duplicates are never used)."""

    ALL = "all"  # 24 genomes, 19 species: clustering and fragment -> genome retrieval
    RELATIVES = "relatives"  # 20 genomes (15 species) of same-genus groups: fragment -> window retrieval
    SMALL = "small"  # quick retrieval: the genomes <= 2.6 Mbp (15 genomes, 13 species)
    SMALL_RELATIVES = "small-relatives"  # quick window retrieval: Methanobacterium, Blochmannia, Shewanella (12, 10)


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $MRL_DNA_SHARED (the folder that holds MANIFEST.tsv)."""
    env = os.environ.get("MRL_DNA_SHARED")
    if env:
        p = Path(env)
        return p / "data" if (p / "data" / "MANIFEST.tsv").is_file() else p
    return Path(__file__).resolve().parents[3] / "shared" / "data"  # mrl_dna/evaluate/heldout.py -> ../shared/data


def set_files(which: GenomeSet, manifest_bp: dict[str, int] | None = None) -> list[str]:
    """The data-dir-relative files of a genome set, in MANIFEST order, near-duplicates left out."""
    kept = [f for f in SPECIES if f not in NEAR_DUPLICATES]
    base = lambda f: Path(f).name  # noqa: E731
    if which is GenomeSet.ALL:
        return kept
    if which is GenomeSet.RELATIVES:
        return [f for f in kept if base(f).startswith(_RELATIVES)]
    if which is GenomeSet.SMALL_RELATIVES:
        return [f for f in kept if base(f).startswith(_SMALL_RELATIVES)]
    if manifest_bp is None:
        raise InputError("the 'small' genome set needs MANIFEST.tsv's bp column; pass manifest_bp")
    return [f for f in kept if manifest_bp.get(f, 0) <= _SMALL_MAX_BP]


def read_manifest(data: Path) -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file."""
    m = Path(data) / "MANIFEST.tsv"
    if not m.is_file():
        raise InputError(f"{m} not found; pass --data DIR of the shared genomes (the folder with MANIFEST.tsv) "
                         "or set MRL_DNA_SHARED")
    with open(m, newline="") as fh:
        return {r["file"]: r for r in csv.DictReader(fh, delimiter="\t")}


def load_set(which: GenomeSet | str, data: Path | None = None) -> list[ev.Genome]:
    """Read the genomes of a set with their checked species labels (SPECIES)."""
    which = GenomeSet(which)
    data = Path(data) if data is not None else shared_data_dir()
    rows = read_manifest(data)
    files = set_files(which, {f: int(r["bp"]) for f, r in rows.items() if r.get("bp", "").isdigit()})
    missing = [f for f in files if f not in rows or not (data / f).is_file()]
    if missing:
        raise InputError(f"{data} lacks {missing}: the held-out set needs the shared genomes of issue 11; "
                         "pass --data DIR of a complete copy")
    return ev.load_genomes([data / f for f in files], species={str(data / f): SPECIES[f] for f in files})


def describe_set(genomes: list[ev.Genome]) -> str:
    """One markdown paragraph: the genomes, their species, what was left out and why."""
    by_sp: dict[str, list[str]] = {}
    for g in genomes:
        by_sp.setdefault(g.species, []).append(g.name)
    names = {g.name for g in genomes}
    left = [f"{genome_name(f)} (twin of {why})" for f, why in NEAR_DUPLICATES.items()]
    changed = [f"{genome_name(f)} -> {SPECIES[f]}" for f in LABEL_CHANGES if genome_name(f) in names]
    text = (f"{len(genomes)} held-out genomes, {len(by_sp)} species (labels: scripts/data/default_groups.tsv checked by "
            "whole-genome alignment; mrl_dna/evaluate/heldout.py): "
            + "; ".join(f"{sp} ({', '.join(n)})" for sp, n in by_sp.items()) + ". "
            f"Near-duplicates left out: {', '.join(left)}.")
    if changed:
        text += f" Labels changed from default_groups.tsv: {'; '.join(changed)}."
    return text
