"""FASTA reader: round trips of valid FASTA in every accepted form, and one clear InputError per bad input."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import sys
import time
import tracemalloc
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from Bio import bgzf  # a declared dependency (pyfaidx reads gzip through it): never skipped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mrl_dna.inputs.fasta as fasta
from mrl_dna import dna
from mrl_dna.errors import InputError
from mrl_dna.inputs.fasta import Record, is_stream, read_fasta, record_lengths

from conftest import named_pipe

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def write(tmp: Path, name: str, data: bytes, compression: str = "none") -> Path:
    path = tmp / name
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "bgzip":
        with bgzf.BgzfWriter(str(path), "wb") as f:
            f.write(data)
        return path
    path.write_bytes(data)
    return path


def to_fasta(records: list[tuple[str, str]], width: int, eol: bytes = b"\n", final_eol: bool = True) -> bytes:
    out = []
    for rid, seq in records:
        out.append(b">" + rid.encode() + b" some description" + eol)
        s = seq.encode()
        for i in range(0, len(s), width):
            out.append(s[i : i + width] + eol)
    data = b"".join(out)
    return data if final_eol else data[: len(data) - len(eol)]


def read_all(*paths: str | Path, **kw) -> list[Record]:
    return list(read_fasta([str(p) for p in paths], **kw))


def message(paths: list, **kw) -> str:
    with pytest.raises(InputError) as e:
        list(read_fasta([str(p) for p in paths], **kw))
    text = str(e.value)
    assert "\n" not in text  # one line
    return text


# ------------------------------------------------------------------------------------- property tests

ids = st.text(st.sampled_from("abcXYZ019_.|:-"), min_size=1, max_size=12)
seqs = st.text(st.sampled_from("ACGTNacgtnRYKMSWBDHVUu"), max_size=300)


@FUZZ
@given(
    records=st.lists(st.tuples(ids, seqs), min_size=1, max_size=6, unique_by=lambda r: r[0]),
    width=st.integers(1, 120),
    eol=st.sampled_from([b"\n", b"\r\n"]),
    final_eol=st.booleans(),
    compression=st.sampled_from(["none", "gzip", "bgzip"]),
    n_files=st.integers(1, 3),
    block=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_round_trip(tmp_path_factory, records, width, eol, final_eol, compression, n_files, block) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    # split the records over n_files files, read them back in order
    parts = [records[i::n_files] for i in range(n_files)]
    parts = [p for p in parts if p]
    paths = [write(tmp, f"in{i}.data", to_fasta(p, width, eol, final_eol), compression) for i, p in enumerate(parts)]
    with mock.patch.object(fasta, "_BLOCK", block):  # small blocks: headers and lines cut at every place
        got = read_all(*paths)
        lengths = record_lengths(paths)
    expected = [r for p in parts for r in p]
    assert [r.id for r in got] == [rid for rid, _ in expected]
    for rec, (_, seq) in zip(got, expected):
        assert rec.tokens.dtype == np.uint8
        assert np.array_equal(rec.tokens, dna.encode(seq))
        assert rec.description == "some description"
    assert lengths == [(rid, len(seq)) for rid, seq in expected]
    assert [r.source for r in got] == [str(p) for p, part in zip(paths, parts) for _ in part]


@FUZZ
@given(data=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(lambda t: t.encode("utf-8"))),
       prefix=st.sampled_from([b"", b">", b">r\n", b"\x1f\x8b"]), gz=st.booleans(), cut=st.integers(0, 50),
       block=st.sampled_from([3, 1 << 20]))
def test_random_input_raises_only_input_error(tmp_path_factory, data, prefix, gz, cut, block) -> None:
    raw = prefix + data
    if gz:
        raw = gzip.compress(raw)
        raw = raw[: len(raw) - cut] if cut else raw  # sometimes truncated
    path = write(tmp_path_factory.mktemp("fz"), "x.fa", raw)
    try:
        with mock.patch.object(fasta, "_BLOCK", block):
            for rec in read_fasta([path]):
                assert rec.tokens.dtype == np.uint8 and dna.first_invalid(rec.tokens) == -1
                assert rec.id and not any(c.isspace() for c in rec.id)
    except InputError as e:
        assert "\n" not in str(e)


@FUZZ
@given(text=st.text(st.sampled_from(">ACGTNacgt \t\r\n*-1E"), max_size=200))
def test_fasta_like_text_raises_only_input_error(tmp_path_factory, text) -> None:
    path = write(tmp_path_factory.mktemp("fl"), "x.fa", text.encode())
    try:
        for rec in read_fasta([path]):
            assert dna.first_invalid(rec.tokens) == -1
    except InputError:
        pass


# ------------------------------------------------------------------------------------- accepted input


def test_plain_gzip_and_bgzip_are_detected_by_content_not_name(tmp_path: Path) -> None:
    data = b">a x y\nACGT\nacgt\n>b\nRYN\n"
    for compression in ("none", "gzip", "bgzip"):
        path = write(tmp_path, f"{compression}.txt", data, compression)  # misleading extension on purpose
        recs = read_all(path)
        assert [(r.id, r.description, dna.decode(r.tokens)) for r in recs] == [("a", "x y", "ACGTACGT"), ("b", "", "NNN")]
    misnamed = write(tmp_path, "plain.fa.gz", data)
    assert [r.id for r in read_all(misnamed)] == ["a", "b"]


def test_crlf_lowercase_iupac_u_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "x.fa", b"\r\n\r\n>r1 \t d  e \r\nacgu\r\n\r\nRYKM SWBD\tHVN\r\n")
    (rec,) = read_all(path)
    assert rec.id == "r1" and rec.description == "d  e"
    assert dna.decode(rec.tokens) == "ACGT" + "N" * 11  # spaces and tabs inside sequence lines are ignored


@pytest.mark.parametrize("block", [1, 3, 1 << 20])
def test_utf8_byte_order_mark_is_skipped(tmp_path: Path, block: int) -> None:
    path = write(tmp_path, "bom.fa", b"\xef\xbb\xbf>a\nACGT\n")
    with mock.patch.object(fasta, "_BLOCK", block):
        assert [(r.id, len(r)) for r in read_all(path)] == [("a", 4)]


def test_star_at_end_is_dropped_inside_is_an_error(tmp_path: Path) -> None:
    (rec,) = read_all(write(tmp_path, "a.fa", b">a\nACGT*\n"))
    assert dna.decode(rec.tokens) == "ACGT"
    text = message([write(tmp_path, "b.fa", b">b\nAC*GT\n")])
    assert "record 'b', position 3: '*'" in text and "protein" in text


def test_empty_records_are_yielded(tmp_path: Path) -> None:
    recs = read_all(write(tmp_path, "x.fa", b">a\n>b\nACGT\n>c\n"))
    assert [(r.id, len(r.tokens)) for r in recs] == [("a", 0), ("b", 4), ("c", 0)]


def test_header_only_file_yields_one_empty_record(tmp_path: Path) -> None:
    (rec,) = read_all(write(tmp_path, "h.fa", b">only a header\n"))
    assert rec.id == "only" and rec.description == "a header" and rec.tokens.shape == (0,)
    (rec,) = read_all(write(tmp_path, "h2.fa", b">no_newline"))
    assert rec.id == "no_newline" and len(rec) == 0


def test_several_files_in_order_and_single_path(tmp_path: Path) -> None:
    a = write(tmp_path, "a.fa", b">a1\nA\n>a2\nC\n")
    b = write(tmp_path, "b.fa.gz", b">b1\nG\n", "gzip")
    assert [(r.id, r.source) for r in read_all(b, a)] == [("b1", str(b)), ("a1", str(a)), ("a2", str(a))]
    assert [r.id for r in read_fasta(a)] == ["a1", "a2"]  # one path, not a list of characters
    assert [r.id for r in read_fasta(Path(a))] == ["a1", "a2"]


def test_long_single_line_and_many_short_lines(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    seq = bytes(rng.choice(list(b"ACGT"), size=3_000_001).astype(np.uint8))
    one_line = write(tmp_path, "one.fa", b">long\n" + seq + b"\n>next\nA\n")
    short = write(tmp_path, "short.fa", b">long\n" + b"\n".join(seq[i : i + 7] for i in range(0, len(seq), 7)) + b"\n")
    for path in (one_line, short):
        rec = next(iter(read_fasta([path])))
        assert np.array_equal(rec.tokens, dna.encode(seq))
    assert record_lengths([one_line]) == [("long", 3_000_001), ("next", 1)]


def test_memory_is_bounded_by_the_largest_record(tmp_path: Path) -> None:
    record = b"ACGT" * 250_000  # 1 Mbp
    path = write(tmp_path, "many.fa", b"".join(b">r%d\n%s\n" % (i, record) for i in range(40)))  # 40 MB file
    tracemalloc.start()
    try:
        n = sum(len(r.tokens) for r in read_fasta([path]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 40 * len(record)
    assert peak < 12 * len(record), f"peak {peak / 2**20:.1f} MiB for 1 MiB records: not streaming"


def test_stdin_binary_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b">s1\r\nACGT\r\n>s2\nNN\n")))
    recs = read_all("-")
    assert [(r.id, dna.decode(r.tokens), r.source) for r in recs] == [("s1", "ACGT", "-"), ("s2", "NN", "-")]


def test_stdin_gzip_and_then_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(gzip.compress(b">z\nACGT\n"))))
    f = write(tmp_path, "f.fa", b">f\nA\n")
    assert [(r.id, r.source) for r in read_all("-", f)] == [("z", "-"), ("f", str(f))]


def test_stdin_text_stream_without_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(">t\nacgt\n"))
    assert [r.id for r in read_all("-")] == ["t"]


def test_stdin_bad_input_names_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b">p\nEKV\n")))
    assert message(["-"]).startswith("file stdin, line 2, record 'p', position 1: 'E' is not a DNA base")


def test_empty_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    assert message(["-"]).startswith("no FASTA records in stdin (it is empty)")


def test_duplicates_allowed_when_not_checked(tmp_path: Path) -> None:
    a = write(tmp_path, "a.fa", b">x\nA\n")
    assert [r.id for r in read_all(a, a, check_duplicates=False)] == ["x", "x"]


# ------------------------------------------------------------------------------------- bad input (issue 6)


def test_protein_fasta(tmp_path: Path) -> None:
    path = write(tmp_path, "x.fa", b">ok\nACGT\n>p1 some protein\nMEEKLV\n")
    assert message([path]) == (
        f"file {path}, line 4, record 'p1', position 2: 'E' is not a DNA base (A C G T U or IUPAC); "
        "is this a protein FASTA?"
    )


def test_position_counts_bases_not_bytes(tmp_path: Path) -> None:
    path = write(tmp_path, "x.fa", b">r\r\nACGT\r\nAC GT\r\nAAJ\r\n")
    assert "line 4, record 'r', position 11: 'J'" in message([path])


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"LOCUS       NC_001422  5386 bp\nORIGIN\n", "starts like a GenBank file but cannot be read as one"),
        (b"@read1\nACGT\n+\nIIII\n", "looks like FASTQ"),
        (b"\n\nACGT\n>r\nACGT\n", "line 3: text before the first '>' header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary data (byte 0x89)"),
        (b"\x00\x00\x00\x01garbage", "binary data (byte 0x00)"),
        (b">r\nAC\x00GT\n", "record 'r', position 3: byte 0x00 is not text"),
        (b">bin\x00ary\nACGT\n", "line 1: the header holds binary data (byte 0x00)"),
        (b">r1 Escherichia coli \xe9t\xe9\nACGT\n", "line 1: the header is not UTF-8 text (byte 0xe9, '\xe9' in Latin-1, "
         "at column 22); convert the file to UTF-8, e.g. `iconv -f latin1 -t utf8"),
        (b">\nACGT\n", "line 1: '>' with no id"),
        (b">a\nACGT\n>   \nACGT\n", "line 3: '>' with no id"),
        (b">r\nAC-GT\n", "'-' is an alignment gap"),
        (b">r\nACGT12\n", "position 5: '1' is a digit"),
        (b">r\nAC>GT\n", "a '>' header must start its own line"),
        (b">a\rACGT\r>b\rACGT\r", "old Mac line ends"),
        (b"", "no FASTA records in"),
        (b"\n \n\r\n", "no FASTA records in"),
        (bz2.compress(b">a\nACGT\n"), "is bzip2-compressed"),
        (b"\xfd7zXZ\x00\x00", "is xz-compressed"),
    ],
)
def test_bad_input(tmp_path: Path, data: bytes, fragment: str) -> None:
    path = write(tmp_path, "bad.fa", data)
    text = message([path])
    assert fragment in text and str(path) in text
    with pytest.raises(InputError) as e:  # the lengths pass refuses the same input with the same words
        record_lengths([path])
    assert str(e.value) == text


def test_empty_file_message(tmp_path: Path) -> None:
    path = write(tmp_path, "empty.fa", b"")
    assert message([path]) == f"no FASTA records in {path} (it is empty); give a FASTA file with '>id' header lines"


def test_truncated_and_corrupt_gzip(tmp_path: Path) -> None:
    full = gzip.compress(b">a\n" + b"ACGT" * 10_000 + b"\n")
    truncated = write(tmp_path, "t.fa.gz", full[: len(full) // 2])
    assert message([truncated]).startswith(f"{truncated} is truncated or corrupt gzip")
    assert "re-download or re-compress it" in message([truncated])
    corrupt = bytearray(full)
    corrupt[30:60] = b"\xff" * 30
    path = write(tmp_path, "c.fa.gz", bytes(corrupt))
    assert "is truncated or corrupt gzip" in message([path])
    header_only = write(tmp_path, "h.fa.gz", full[:5])
    assert "is truncated or corrupt gzip" in message([header_only])


def test_duplicate_ids_within_and_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.fa", b">x\nA\n>y\nC\n")
    b = write(tmp_path, "b.fa", b">z\nG\n>x desc\nT\n")
    assert message([a, b]) == (
        f"duplicate id 'x' in {b} line 3 (first seen in {a} line 1); ids must be unique: rename one of the records "
        "(or, for one vector per file as for genomes of many contigs, embed with --per-file)"
    )  # two files: the hint of issue 14
    same = write(tmp_path, "s.fa", b">q\nA\n>q\nA\n")
    assert f"duplicate id 'q' in {same} line 3 (first seen in {same} line 1)" in message([same])


def test_missing_path_and_directory(tmp_path: Path) -> None:
    assert message([tmp_path / "nope.fa"]) == f"{tmp_path / 'nope.fa'}: no such file; check the path"
    assert "is a directory, not a FASTA file" in message([tmp_path])


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads unreadable files")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "locked.fa", b">a\nA\n")
    path.chmod(0)
    assert "cannot open" in message([path])


def test_error_comes_before_the_rest_of_a_huge_non_fasta_file(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", b"not fasta\n" * 2_000_000)  # 20 MB
    t0 = time.perf_counter()
    assert "line 1: text before the first '>' header" in message([path])
    assert time.perf_counter() - t0 < 1.0  # fails on the first block, never reads the whole file


# ------------------------------------------------------------------------------------- lengths and random access


def test_record_lengths_uses_a_matching_fai(tmp_path: Path) -> None:
    import pyfaidx

    for data in (b">a desc\nACGTA\nCG\n>b\nAC\n>e\n>c\nACGTA\n", b">a\r\nACG\r\nT\r\n>b\r\nAC\r\n>e\r\n>c\r\nACG\r\nTA"):
        path = write(tmp_path, "x.fa", data)  # LF and final newline; CRLF and none
        Path(str(path) + ".fai").unlink(missing_ok=True)
        pyfaidx.Faidx(str(path)).close()  # writes x.fa.fai as samtools faidx does
        with mock.patch.object(fasta, "_raw_records", side_effect=AssertionError("read the file despite the .fai")):
            assert record_lengths([path]) == [("a", 4 if b"\r" in data else 7), ("b", 2), ("e", 0), ("c", 5)]


def test_stale_fai_listing_two_of_four_records_is_not_trusted(tmp_path: Path, capsys) -> None:
    """Issue 12, item 5: a .fai of an older version of the file, newer mtime, was trusted, and embed
    embedded the 2 records it listed of the file's 4. Now it is checked against the file and ignored."""
    path = write(tmp_path, "x.fa", b">a\nACGT\n>b\nAC\n")
    fai = Path(str(path) + ".fai")
    fai.write_text("a\t4\t3\t4\t5\nb\t2\t11\t2\t3\n")  # right for this file
    assert record_lengths([path]) == [("a", 4), ("b", 2)]
    path.write_bytes(b">a\nACGT\n>b\nAC\n>c\nGGG\n>d\nT\n")  # two records appended...
    os.utime(fai, (time.time() + 60, time.time() + 60))  # ...and the old index looks newer
    assert record_lengths([path]) == [("a", 4), ("b", 2), ("c", 3), ("d", 1)]
    assert "ignoring" in capsys.readouterr().err
    for wrong in ("a\t5\t3\t4\t5\n", "a\t4\t3\t4\t5\nc\t2\t11\t2\t3\n", "a\t4\t3\t4\t5\nb\t2\t11\t2\t3\n"
                  "c\t3\t17\t3\t4\nd\t1\t25\t1\t2\ne\t1\t29\t1\t2\n"):  # a length, an id, a record too many
        fai.write_text(wrong)
        assert record_lengths([path]) == [("a", 4), ("b", 2), ("c", 3), ("d", 1)], wrong


def test_fai_beside_gzip_is_not_used(tmp_path: Path) -> None:
    path = write(tmp_path, "x.fa.gz", b">a\nACGT\n", "gzip")
    Path(str(path) + ".fai").write_text("a\t400\t3\t4\t5\n")
    assert record_lengths([path]) == [("a", 4)]


def test_record_lengths_checks_unless_told_not_to(tmp_path: Path) -> None:
    a = write(tmp_path, "a.fa", b">x\nACGT*\n>p\nMEEK\n")
    b = write(tmp_path, "b.fa", b">x\nAC\n")
    with pytest.raises(InputError, match="record 'p', position 2: 'E' is not a DNA base"):
        record_lengths([a])
    c = write(tmp_path, "c.fa", b">y\nA\n>x\nACGT\n")
    with pytest.raises(InputError, match="duplicate id 'x' in .*c.fa line 3 \\(first seen in .*b.fa line 1\\)"):
        record_lengths([b, c])
    assert record_lengths([a, b], check=False) == [("x", 4), ("p", 4), ("x", 2)]


def test_record_lengths_of_stdin_is_an_error() -> None:
    with pytest.raises(InputError, match="cannot measure records on stdin '-' without consuming it"):
        record_lengths(["-"])


def test_record_lengths_of_a_named_pipe_is_an_error_not_a_read(tmp_path) -> None:
    """A first pass over a pipe drains it (issue 22, item 7): stdin and pipes are streams, files are not."""
    (tmp_path / "f.fa").write_text(">a\nACGT\n")
    with named_pipe(tmp_path / "p", b">a\nACGT\n") as pipe:
        assert is_stream("-") and is_stream(pipe) and not is_stream(tmp_path / "f.fa")
        assert not is_stream(tmp_path) and not is_stream(tmp_path / "missing")
        with pytest.raises(InputError, match=r"p \(a pipe\) without consuming it; .*save it to a file"):
            record_lengths([pipe])


def test_biopython_is_a_declared_dependency() -> None:
    """What a fresh `pip install -e .` installs must cover what the code imports at run time."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: tomli, the same parser, is a dependency there
        import tomli as tomllib

    deps = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.replace(" ", "").startswith("biopython>=") for d in deps), deps


# ---------------------------------------------------------------------------------------- GenBank / EMBL


def _flat_files(tmp_path, fasta: Path) -> dict[str, Path]:
    """The records of `fasta` as GenBank, gzip GenBank and EMBL files (written by biopython)."""
    import gzip

    from Bio import SeqIO

    recs = list(SeqIO.parse(str(fasta), "fasta"))
    for r in recs:
        r.annotations["molecule_type"] = "DNA"
        r.id = r.name = r.id  # LOCUS name and accession
    out = {"gb": tmp_path / "x.gb", "embl": tmp_path / "x.embl", "gb.gz": tmp_path / "x.gb.gz"}
    SeqIO.write(recs, str(out["gb"]), "genbank")
    SeqIO.write(recs, str(out["embl"]), "embl")
    out["gb.gz"].write_bytes(gzip.compress(out["gb"].read_bytes()))
    return out


def test_genbank_and_embl_read_as_the_same_records(tmp_path, small_fasta):
    want = [(r.id, r.tokens.tobytes()) for r in read_fasta(small_fasta)]
    for kind, path in _flat_files(tmp_path, small_fasta).items():
        got = [(r.id, r.tokens.tobytes()) for r in read_fasta(path)]
        assert got == want, kind
        assert record_lengths(path) == [(rid, len(t)) for rid, t in want], kind


def test_genbank_embeds_bit_for_bit_as_fasta(tmp_path, cli, tiny_model_dir, small_fasta):
    import h5py

    gb = _flat_files(tmp_path, small_fasta)["gb.gz"]
    for src, out in ((small_fasta, tmp_path / "fa.h5"), (gb, tmp_path / "gb.h5")):
        code, _, err = cli("embed", src, "-o", out, "-m", tiny_model_dir, "-q")
        assert code == 0, err
    with h5py.File(tmp_path / "fa.h5") as a, h5py.File(tmp_path / "gb.h5") as b:
        assert np.array_equal(a["embeddings"][()], b["embeddings"][()]) and list(a["ids"]) == list(b["ids"])


def test_genbank_errors_are_one_line(tmp_path):
    no_seq = tmp_path / "contig.gb"
    no_seq.write_text("LOCUS       AB000001                5000 bp    DNA     linear   BCT 01-JAN-2000\n"
                      "DEFINITION  a scaffold.\nACCESSION   AB000001\nVERSION     AB000001.1\n"
                      "CONTIG      join(AB000002.1:1..5000)\n//\n")
    with pytest.raises(InputError, match=r"record 'AB000001.1' has no sequence .*gbwithparts"):
        list(read_fasta(no_seq))
    bad = tmp_path / "bad.gb"
    bad.write_text(no_seq.read_text().replace("CONTIG      join(AB000002.1:1..5000)\n", "ORIGIN\n        1 acgtqq\n"))
    with pytest.raises(InputError, match=r"file .*bad.gb, record 'AB000001.1', position 5: 'Q' is not a DNA base"):
        list(read_fasta(bad))
