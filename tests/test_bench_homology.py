"""The issue-20 benchmark plumbing (scripts/bench/homology_data.py, ani.py, contigs.py): relatives at known
divergence and their truth, the published ANIm tables, the error tables, and the parsers of our TSV outputs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import script_module

hd = script_module("scripts/bench/homology_data.py")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir() and os.environ.get("MRL_DNA_SHARED"):
    SHARED = Path(os.environ["MRL_DNA_SHARED"])


def _genome(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(7, 11, n).astype(np.uint8)  # A C G T token ids


def test_relative_truth_is_the_event_identity_and_homologous_fraction():
    x = _genome(60_000)
    y, rel = hd.make_relative(x, "g", 1.0)
    # rate 0: every homologous segment is an exact copy; only replaced segments (0-20%) differ
    assert rel.ident == 1.0 and 0.75 <= rel.af_source <= 1.0 and rel.af_relative == pytest.approx(rel.af_source, abs=1e-9)
    assert len(y) == len(x)
    y2, rel2 = hd.make_relative(x, "g", 0.9)
    assert abs(rel2.ident - 0.9) < 0.02  # the event identity lands near the target
    y3, rel3 = hd.make_relative(x, "g", 0.9)
    assert np.array_equal(y2, y3) and rel2 == rel3  # seeded by (source, target)
    assert not np.array_equal(hd.make_relative(x, "h", 0.9)[0], y2)


def test_error_table_bands_na_and_species_agreement():
    pairs = [(99.5, 99.0), (97.0, 96.0), (92.0, math.nan), (85.0, 87.0), (75.0, 70.0), (math.nan, 90.0)]
    t = hd.error_table(pairs)
    assert t["n"] == 5 and t["na"] == 1
    assert t["bands"][">=99"]["mae"] == pytest.approx(0.5) and t["bands"]["90-95"]["mae"] is None
    assert t["bands"]["90-95"]["n_band"] == 1 and t["mae"] == pytest.approx((0.5 + 1 + 2 + 5) / 4)
    ag, n = hd.species_agreement([(96.0, 94.0), (97.0, 97.5), (80.0, math.nan), (math.nan, 99.0)])
    assert n == 3 and ag == pytest.approx(2 / 3)  # NA counts as below the cut
    assert hd.fmt_cell(t["bands"]["90-95"]) == "NA (0/1)" and hd.fmt_cell(t["bands"]["95-99"]) == "1.00 (1)"


def test_fastani_names_are_genome_names_and_self_pairs_dropped(tmp_path):
    f = tmp_path / "fa.tsv"
    f.write_text("d/A.fa.gz\td/B.fa\t97.5\t90\t100\nd/A.fa.gz\td/A.fa.gz\t100\t100\t100\n")
    assert hd.load_fastani(f) == {("A", "B"): (97.5, 90, 100)}


def test_ours_table_fills_the_reverse_pair_with_swapped_fractions(tmp_path):
    ani = script_module("scripts/bench/ani.py")
    f = tmp_path / "d.tsv"
    f.write_text("#query\ttarget\tani\taf_query\taf_target\tani_qt\tani_tq\nA\tB\t97.0\t0.5\t1.0\t96.5\t97.5\n"
                 "A\tC\tNA\t0.0\t0.0\tNA\tNA\n")
    d = ani.load_ours(f)
    assert d[("A", "B")]["af_query"] == 0.5 and d[("B", "A")]["af_query"] == 1.0
    assert d[("B", "A")]["ani_qt"] == 97.5 and math.isnan(d[("C", "A")]["ani"])


def test_contig_species_groups_join_pairs_at_the_cut(tmp_path):
    cg = script_module("scripts/bench/contigs.py")
    fa = {("a", "b"): (96.0, 1, 1), ("b", "c"): (94.0, 1, 1), ("d", "c"): (99.9, 1, 1)}
    assert cg.species_groups(["a", "b", "c", "d"], fa, 95) == {"a": "a", "b": "a", "c": "c", "d": "c"}
    f = tmp_path / "s.tsv"
    f.write_text("#query\ttarget\trank\tcosine\tdims\nq\tY\t2\t0.8\t512\nq\tX\t1\t0.9\t512\n")
    assert [r["target"] for r in cg.read_search(f)["q"]] == ["X", "Y"]


@pytest.mark.shared_data
def test_truth_tables_name_genomes_of_the_manifest():
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set MRL_DNA_SHARED)")
    t = hd.truth_ani(SHARED, hd.manifest(SHARED))
    assert t[("Ccres_CB15", "Ccres_NA1000")][0] == pytest.approx(99.95)
    assert t[("Cglut_ATCC13032", "Cglut_ATCC14067")][0] == pytest.approx(98.19)
    assert t[("Blochmannia_chromaiodes_640", "Blochmannia_pennsylvanicus_BPEN")][0] == pytest.approx(98.02488, abs=1e-4)
    assert len(t) == 19  # 15 Blochmannia + 1 Caulobacter + 3 Corynebacterium pairs of the set
