"""embed --regions BED (mrl_dna/inputs/regions.py): each interval of an indexed FASTA is a record, bit for bit the
same as the interval cut by hand; the index is built and never trusted stale; bad intervals are one line."""

from __future__ import annotations

import gzip

import h5py
import numpy as np
import pytest

from mrl_dna.inputs.regions import read_bed
from mrl_dna.errors import InputError

from conftest import random_dna


@pytest.fixture
def genome(tmp_path):
    rng = np.random.default_rng(11)
    chroms = {"chr1": random_dna(rng, 3000), "chr2": random_dna(rng, 1700).lower()}
    path = tmp_path / "g.fa"
    path.write_text("".join(f">{c} test\n" + "\n".join(s[i:i + 60] for i in range(0, len(s), 60)) + "\n"
                            for c, s in chroms.items()))
    return path, chroms


BED = "track name=x\n# comment\nchr1\t0\t500\tgeneA\nchr2\t100\t1700\nchr1\t2990\t3000\t.\nchr1\t700\t2900\tgeneB\t0\t+\n"
IDS = ["geneA", "chr2:100-1700", "chr1:2990-3000", "geneB"]


def _embed(cli, model_dir, *args):
    code, _, err = cli("embed", *args, "-m", model_dir, "-q")
    assert code == 0, err


def _read(path):
    with h5py.File(path) as f:
        return [x.decode() for x in f["ids"][()]], f["embeddings"][()]


def test_regions_equal_the_intervals_cut_by_hand(tmp_path, cli, tiny_model_dir, genome):
    fa, chroms = genome
    bed = tmp_path / "r.bed"
    bed.write_text(BED)
    by_hand = tmp_path / "cut.fa"
    cuts = [("chr1", 0, 500), ("chr2", 100, 1700), ("chr1", 2990, 3000), ("chr1", 700, 2900)]
    by_hand.write_text("".join(f">{i}\n{chroms[c][s:e]}\n" for i, (c, s, e) in zip(IDS, cuts)))
    _embed(cli, tiny_model_dir, by_hand, "-o", tmp_path / "hand.h5")
    _embed(cli, tiny_model_dir, fa, "--regions", bed, "-o", tmp_path / "reg.h5")
    assert (tmp_path / "g.fa.fai").is_file()  # built beside the FASTA
    ids, got = _read(tmp_path / "reg.h5")
    want_ids, want = _read(tmp_path / "hand.h5")
    assert ids == want_ids == IDS and np.array_equal(got, want)

    from Bio import bgzf  # the same through a bgzip FASTA (.fai + .gzi built)

    bgz = tmp_path / "g.fa.bgz"
    with bgzf.BgzfWriter(str(bgz), "wb") as w:
        w.write(fa.read_bytes())
    _embed(cli, tiny_model_dir, bgz, "--regions", bed, "-o", tmp_path / "bgz.h5")
    assert (tmp_path / "g.fa.bgz.gzi").is_file() and np.array_equal(_read(tmp_path / "bgz.h5")[1], want)

    # a stale index (the file was rewritten with other line widths) is rebuilt, never trusted
    fa.write_text("".join(f">{c}\n{s}\n" for c, s in chroms.items()))
    _embed(cli, tiny_model_dir, fa, "--regions", bed, "-o", tmp_path / "again.h5", "-f")
    assert np.array_equal(_read(tmp_path / "again.h5")[1], want)


@pytest.mark.parametrize("line,message", [
    ("chrZ\t0\t10", "line 2: unknown chromosome 'chrZ'; "),
    ("chr1\t0\t3001", "line 2: end 3,001 is past the end of chr1 (3,000 bp"),
    ("chr1\t50\t50", "line 2: start 50 >= end 50; a BED interval is [start, end)"),
    ("chr1\t50", "line 2: expected chrom<TAB>start<TAB>end[<TAB>name]"),
    ("chr1\tx\t50", "line 2: start and end must be whole numbers"),
    ("chr1\t0\t10\tgeneA", "line 2: the id 'geneA' is used on line 1 too"),
])
def test_bad_intervals_are_one_line_naming_it(tmp_path, cli, tiny_model_dir, genome, line, message):
    fa, _ = genome
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t0\t100\tgeneA\n" + line + "\n")
    code, out, err = cli("embed", fa, "--regions", bed, "-o", tmp_path / "o.h5", "-m", tiny_model_dir)
    assert code == 1 and err.count("\n") == 1 and message in err and str(bed) in err, err
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.h5.partial").exists()


def test_plain_gzip_is_refused_with_the_bgzip_command(tmp_path, cli, tiny_model_dir, genome):
    fa, _ = genome
    gz = tmp_path / "g.fa.gz"
    gz.write_bytes(gzip.compress(fa.read_bytes()))
    bed = tmp_path / "r.bed"
    bed.write_text("chr1\t0\t100\n")
    code, _, err = cli("embed", gz, "--regions", bed, "-o", tmp_path / "o.h5", "-m", tiny_model_dir)
    assert code == 1 and "is gzip, not bgzip" in err and "| bgzip >" in err, err


def test_read_bed_reads_gzip_and_names_intervals(tmp_path):
    bed = tmp_path / "r.bed.gz"
    bed.write_bytes(gzip.compress(BED.encode()))
    assert [r.id for r in read_bed(bed)] == IDS
    assert [(r.start, r.end, r.line) for r in read_bed(bed)][:2] == [(0, 500, 3), (100, 1700, 4)]
    (tmp_path / "empty.bed").write_text("# nothing\n")
    with pytest.raises(InputError, match="holds no intervals"):
        read_bed(tmp_path / "empty.bed")
