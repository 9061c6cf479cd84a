"""mrl_dna/inputs/genomes.py: genome names, discovery of genome files, the one group TSV reader and its lookups."""

import pytest

from mrl_dna.errors import InputError
from mrl_dna.inputs.genomes import expand_inputs, genome_name, group_of, read_groups


def test_genome_name_strips_fasta_and_compression_suffixes():
    assert genome_name("dir/Ecoli_K12_MG1655.fa.gz") == "Ecoli_K12_MG1655"
    assert genome_name("x.FASTA") == "x" and genome_name("y.fna.bgz") == "y" and genome_name(".fa") == ".fa"
    assert genome_name("Cpseudotb_CIP52.97.fa.gz") == "Cpseudotb_CIP52.97"


def test_group_lookup_by_path_file_name_genome_name_or_record(tmp_path):
    tsv = tmp_path / "g.tsv"
    tsv.write_text("# comment\nfile\tgroup\nsub/a.fa.gz\tA\nb\tB\nrec1\tC\n\n")
    groups = read_groups(tsv)
    assert group_of(groups, "elsewhere/a.fa.gz") == "A"  # a key's file name matches
    assert group_of(groups, "b.fna") == "B"  # the genome name
    assert group_of(groups, "c.fa", ["rec0", "rec1"]) == "C"  # a record id
    assert group_of(groups, "d.fa") is None
    tsv.write_text("a\t \n")
    with pytest.raises(InputError, match="is empty"):
        read_groups(tsv)
    tsv.write_text("a\n")
    with pytest.raises(InputError, match="expected at least 2 tab-separated"):
        read_groups(tsv)


def test_expand_inputs_finds_fasta_files_once(tmp_path):
    (tmp_path / "a.fa").write_text(">a\nACGT\n")
    (tmp_path / "b.fasta.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in expand_inputs([tmp_path, tmp_path / "a.fa"])] == ["a.fa", "b.fasta.gz"]


def test_a_pipe_as_a_training_genome_is_refused_not_called_missing(tmp_path):
    """train reads its genomes many times: a named pipe (or a shell's <(...)) was reported as "does not exist"."""
    import os

    os.mkfifo(tmp_path / "g.pipe")
    with pytest.raises(InputError, match=r"is not a regular file \(a pipe\?\).*save it to a file"):
        expand_inputs([tmp_path / "g.pipe"])
