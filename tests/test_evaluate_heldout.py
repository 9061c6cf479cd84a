"""The held-out genome set of issue 11's benchmarks (mrl_dna/evaluate/heldout.py): labels, sets, loading."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from mrl_dna.evaluate import heldout as eh
from mrl_dna.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir() and os.environ.get("MRL_DNA_SHARED"):
    SHARED = eh.shared_data_dir()


def test_species_labels_are_default_groups_except_the_documented_changes():
    with open(REPO / "scripts" / "data" / "default_groups.tsv", newline="") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t") if r and not r[0].startswith("#")]
    groups = {r[0]: r[1] for r in rows[1:]}
    for f, sp in eh.SPECIES.items():
        name = Path(f).name
        if f in eh.LABEL_CHANGES:
            assert groups[name] != sp
        else:
            assert groups[name] == sp, f
    assert set(eh.NEAR_DUPLICATES) <= set(eh.SPECIES)


def test_genome_sets_without_data():
    bp = {f: 3_000_000 for f in eh.SPECIES} | {"small/Akkermansia_first500k.fa.gz": 500_000}
    all_ = eh.set_files(eh.GenomeSet.ALL, bp)
    assert len(all_) == 24 and len({eh.SPECIES[f] for f in all_}) == 19
    assert not set(all_) & set(eh.NEAR_DUPLICATES)
    rel = eh.set_files(eh.GenomeSet.RELATIVES)
    assert len(rel) == 20 and len({eh.SPECIES[f] for f in rel}) == 15 and set(rel) <= set(all_)
    assert eh.set_files(eh.GenomeSet.SMALL, bp) == ["small/Akkermansia_first500k.fa.gz"]
    assert set(eh.set_files(eh.GenomeSet.SMALL_RELATIVES)) <= set(rel)


@pytest.mark.shared_data
def test_load_set_from_shared_data():
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set MRL_DNA_SHARED)")
    gs = eh.load_set(eh.GenomeSet.SMALL_RELATIVES, SHARED)
    assert len(gs) == 12 and {g.species for g in gs} >= {"Methanobacterium sp. AL-21", "Methanobacterium sp. MB1"}
    text = eh.describe_set(gs)
    assert text.startswith("12 held-out genomes, 10 species") and "Ecoli_K12_W3110 (twin of" in text


def test_load_set_names_a_missing_manifest(tmp_path):
    with pytest.raises(InputError, match=r"MANIFEST.tsv not found; pass --data DIR"):
        eh.load_set("all", tmp_path)


def test_shared_data_dir_is_beside_the_checkout(monkeypatch):
    """After evaluate_heldout.py moved into mrl_dna/evaluate/, its default data folder pointed inside the checkout."""
    monkeypatch.delenv("MRL_DNA_SHARED", raising=False)
    assert eh.shared_data_dir() == REPO.parent / "shared" / "data"
