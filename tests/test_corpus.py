"""The v2 corpus builder (mrl_dna/train/corpus.py) on a tiny markers.fasta made here."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrl_dna import dna
from mrl_dna.errors import InputError
from mrl_dna.train import corpus as C


def _seq(rng, n):
    return dna.decode(rng.integers(dna.A, dna.T + 1, size=n).astype(np.uint8))


def _markers(tmp_path, rng, *, heldout_seq=None):
    """3 complete genomes (NC_...) of 4 markers, one draft genome split over two contigs (RefSeq and GenBank
    headers), a tiny genome, and GeneID/XM headers; returns (path, {genome: [(header, seq)]})."""
    recs = []
    for acc in ("NC_000001.1", "NC_000002.1", "NC_000003.1"):
        for j in range(4):
            start = 1000 * (4 - j)  # out of order on purpose
            recs.append((f"gi|1|ref|{acc}|:{start + 1}-{start + 300}", _seq(rng, 300)))
    recs.append(("gi|2|ref|NZ_ABCD01000002.1|:c900-601", _seq(rng, 300)))
    recs.append(("gi|3|gb|ABCD01000001.1|:1-300", _seq(rng, 300)))
    recs += [("gi|2|ref|NZ_ABCD01000003.1|:1-300", _seq(rng, 300)), ("gi|2|ref|NZ_ABCD01000003.1|:501-800", _seq(rng, 300))]
    recs.append(("gi|4|ref|NC_000009.1|:1-50", _seq(rng, 50)))
    recs.append(("GeneID:12345", _seq(rng, 200)))
    recs.append(("gi|156083978|ref|XM_001609423.1|", _seq(rng, 200)))
    if heldout_seq is not None:
        for j in range(4):
            recs.append((f"gi|5|ref|NC_000005.1|:{j * 1000 + 1}-{j * 1000 + 300}", heldout_seq[j * 300 : (j + 1) * 300]))
    path = tmp_path / "markers.fasta"
    path.write_text("".join(f">{h}\n{s}\n" for h, s in recs))
    return path, recs


def _read(path):
    from mrl_dna.inputs.fasta import read_fasta

    return {r.id: dna.decode(r.tokens) for r in read_fasta([path])}


def test_headers_name_their_genome_and_strand():
    m = C.parse_header("gi|345004010|ref|NC_015954.1|:c1336247-1335993")
    assert (m.genome, m.seq_id, m.start, m.minus) == ("NC_015954", "NC_015954.1", 1335992, True)
    assert C.parse_header("gi|9|ref|NZ_BAEG01000038.1|:7081-7431").genome == "BAEG01"
    assert C.parse_header("gi|9|gb|BAEG01000001.1|:1-10").genome == "BAEG01"  # GenBank copy of the same draft
    assert C.parse_header("gi|9|ref|NZ_ABCDEF010000012.1|:1-10").genome == "ABCDEF01"  # 6-letter WGS prefix
    assert C.parse_header("gi|9|ref|NZ_CP022614.1|:1-10").genome == "NZ_CP022614"  # complete genome, not WGS
    assert C.parse_header("GeneID:1260278") is None
    assert C.parse_header("gi|156083978|ref|XM_001609423.1|") is None


def test_markers_are_joined_in_genome_order_on_the_forward_strand():
    a, b = dna.encode("AAAC"), dna.encode("GGGT")
    ms = [(C.Marker("G", "G.1", 100, True), b), (C.Marker("G", "G.1", 10, False), a)]
    assert dna.decode(C.assemble(ms)) == "AAAC" + "ACCC"  # sorted by start; the minus-strand gene reverse-complemented


def test_sketch_is_strand_independent_and_skips_n():
    rng = np.random.default_rng(0)
    t = rng.integers(dna.A, dna.T + 1, size=5000).astype(np.uint8)
    assert np.array_equal(C.sketch(t, 21, 4), C.sketch(dna.revcomp(t), 21, 4))
    t2 = t.copy()
    t2[2500] = dna.N
    assert C.sketch(t2, 21, 4).size < C.sketch(t, 21, 4).size
    assert C.containment(C.sketch(t, 21, 4), C.sketch(t, 21, 4)) == 1.0
    other = rng.integers(dna.A, dna.T + 1, size=5000).astype(np.uint8)
    assert C.containment(C.sketch(other, 21, 4), C.sketch(t, 21, 4)) == 0.0


def test_build_groups_drops_small_and_heldout_and_is_deterministic(tmp_path):
    rng = np.random.default_rng(1)
    held = _seq(rng, 1200)
    markers, _ = _markers(tmp_path, rng, heldout_seq=held)
    held_fa = tmp_path / "held.fa"
    held_fa.write_text(f">h\n{held}\n")
    cfg = C.CorpusConfig(min_markers=4, min_bp=1000, val_fraction=0.0, scaled=1)
    s = C.build_corpus(markers, tmp_path / "out", [held_fa], cfg, log=lambda m: None)
    assert (s.train, s.val, s.dropped_small, s.dropped_heldout, s.no_genome_markers) == (4, 0, 1, 1, 2)
    train = _read(tmp_path / "out" / "train.fa")
    assert sorted(train) == ["ABCD01", "NC_000001", "NC_000002", "NC_000003"]
    assert all(len(v) == 1200 for v in train.values())
    rows = (tmp_path / "out" / "genomes.tsv").read_text().splitlines()
    split = {r.split("\t")[0]: r.split("\t")[1] for r in rows[1:]}
    assert split["NC_000005"] == "dropped-heldout" and split["NC_000009"] == "dropped-small"
    meta = json.loads((tmp_path / "out" / "corpus.json").read_text())
    assert meta["summary"]["train_bp"] == 4800 and meta["heldout"] == ["held.fa"]
    # same inputs -> the same files
    C.build_corpus(markers, tmp_path / "again", [held_fa], cfg, log=lambda m: None)
    for name in ("train.fa", "genomes.tsv"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_validation_split_is_a_fixed_hash_of_the_genome_key(tmp_path):
    rng = np.random.default_rng(2)
    markers, _ = _markers(tmp_path, rng)
    cfg = C.CorpusConfig(min_markers=4, min_bp=1000, val_fraction=0.5, scaled=1)
    C.build_corpus(markers, tmp_path / "out", [], cfg, log=lambda m: None)
    val = sorted(p.stem for p in (tmp_path / "out" / "val").glob("*.fa"))
    assert val == sorted(k for k in ("ABCD01", "NC_000001", "NC_000002", "NC_000003") if C.in_validation(k, 0.5))
    assert set(val).isdisjoint(_read(tmp_path / "out" / "train.fa"))


def test_existing_output_or_missing_markers_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="get_training_data.sh"):
        C.build_corpus(tmp_path / "nope.fasta", tmp_path / "out", [])
    rng = np.random.default_rng(3)
    markers, _ = _markers(tmp_path, rng)
    (tmp_path / "out").mkdir()
    with pytest.raises(InputError, match="already exists"):
        C.build_corpus(markers, tmp_path / "out", [], log=lambda m: None)
    assert C.main([str(markers), str(tmp_path / "out")]) == 1
