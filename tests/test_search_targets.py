"""Tests for mrl_dna/search/targets.py: `search --level windows` with queries longer than one window.

Properties: a query made of pieces of two DB records names both, with the share of its windows each owns and the
coordinates of the best window pair; a reverse-complemented piece finds its record (strand -); a query of one
window keeps today's lines; an HDF5 query with saved windows gives the summary of the same FASTA embedded on the
fly; identity comes from the model's calibration and is NA without one or below its range; mistakes are one line.

The DB: three random 6,144 bp records, tiny model (window 256), windows saved every 256 bp: a piece cut at a
multiple of 256 has windows equal to the record's own (cosine 1), so the expected counts are exact.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import random_dna, run_cli
from mrl_dna.homology import ModelCalibration, StrideCalibration
from mrl_dna.model import load_model

W = 256  # the tiny model's window


def rc(s: str) -> str:
    return s[::-1].translate(str.maketrans("ACGT", "TGCA"))


def parse_tsv(out: str) -> tuple[list[str], list[dict]]:
    lines = out.splitlines()
    header = lines[0][1:].split("\t")
    return header, [dict(zip(header, line.split("\t"))) for line in lines[1:]]


@pytest.fixture
def setup(tmp_path, tiny_model_dir, capsys):
    """(DB with saved windows, the records' sequences, a model dir of its own, tmp_path)."""
    rng = np.random.default_rng(5)
    seqs = {n: random_dna(rng, 24 * W) for n in "ABC"}
    (tmp_path / "db.fa").write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    db = tmp_path / "db.h5"
    code, _, err = run_cli(["embed", tmp_path / "db.fa", "-o", db, "-m", model, "--save-windows", "--windows-stride", W,
                            "-q"], capsys)
    assert code == 0, err
    return db, seqs, model, tmp_path


def search(capsys, query, db, model, *extra):
    code, out, err = run_cli(["search", query, db, "--level", "windows", "-m", model, "--query-stride", W, *extra],
                             capsys)
    assert code == 0, err
    return (*parse_tsv(out), err)


def write_fasta(path, records: dict) -> str:
    path.write_text("".join(f">{k}\n{v}\n" for k, v in records.items()))
    return str(path)


def test_long_query_of_two_records_pieces_names_both_with_their_share_and_coordinates(setup, capsys):
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"mix": seqs["A"][: 8 * W] + seqs["B"][12 * W: 16 * W]})  # 12 windows: 8 A, 4 B
    header, rows, err = search(capsys, q, db, model, "-k", "3")
    assert header[:8] == ["query", "target", "rank", "cosine", "dims", "target_start", "target_end", "target_contig"]
    assert [(r["target"], r["rank"], r["query_windows"], r["n_best"], r["frac_best"]) for r in rows] == [
        ("A", "1", "12", "8", "0.6667"), ("B", "2", "12", "4", "0.3333")]  # C owns no window's best hit
    a, b = rows
    assert int(a["target_start"]) == int(a["query_start"]) < 8 * W and a["target_contig"] == "A"
    assert int(b["target_start"]) - int(b["query_start"]) == 4 * W and 8 * W <= int(b["query_start"]) < 12 * W
    assert all(int(r["target_end"]) - int(r["target_start"]) == W and r["strand"] == "+" for r in rows)
    assert float(a["best_cosine"]) > 0.9999 and float(a["cosine"]) >= float(b["cosine"])
    assert "1 query by its windows (every 256 bp" in err
    code, out, err = run_cli(["search", q, db, "--level", "windows", "-m", model, "-k", "3"], capsys)
    assert code == 0 and parse_tsv(out)[1] == rows and "(every 256 bp" in err  # 4 x the DB's stride, <= the window
    cut = (float(a["cosine"]) + float(b["cosine"])) / 2  # --min-score applies to the cosine column: the mean
    assert [r["target"] for r in search(capsys, q, db, model, "-k", "3", "--min-score", cut)[1]] == ["A"]


def test_reverse_complemented_query_finds_its_target_on_the_minus_strand(setup, capsys):
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"rc": rc(seqs["C"][4 * W: 12 * W])})
    _, rows, _ = search(capsys, q, db, model, "-k", "2")
    top = rows[0]
    assert (top["target"], top["n_best"], top["frac_best"], top["strand"]) == ("C", "8", "1.0000", "-")
    # the query's first window is the reverse complement of the piece's last one
    assert (int(top["query_start"]), int(top["target_start"])) in {(i * W, (11 - i) * W) for i in range(8)}


def test_one_window_queries_keep_todays_lines(setup, capsys):
    """A query of one window is searched by its vector, as before: the same lines as the record-level query path
    (an HDF5 query without saved windows), today's header when no query has several windows, and the same first
    columns beside a long query."""
    db, seqs, model, tmp = setup
    one = {"one": seqs["B"][512:700], "two": seqs["C"][100:356]}
    q = write_fasta(tmp / "q.fa", one)
    qh5 = tmp / "q.h5"
    assert run_cli(["embed", q, "-o", qh5, "-m", model, "-q"], capsys)[0] == 0
    outs = []
    for query in (q, qh5):
        code, out, err = run_cli(["search", query, db, "--level", "windows", "-m", model, "-k", "4"], capsys)
        assert code == 0, err
        outs.append(out)
    assert outs[0] == outs[1]
    assert outs[0].splitlines()[0] == "#query\ttarget\trank\tcosine\tdims\ttarget_start\ttarget_end\ttarget_contig"
    mixed = write_fasta(tmp / "m.fa", {**one, "long": seqs["A"][: 4 * W]})
    code, out, err = run_cli(["search", mixed, db, "--level", "windows", "-m", model, "-k", "4"], capsys)
    assert code == 0, err
    lines = [line.split("\t") for line in out.splitlines()[1:]]
    assert [l[:8] for l in lines if l[0] != "long"] == [l.split("\t") for l in outs[0].splitlines()[1:]]
    assert all(l[-9:] == [".", ".", ".", ".", "1", ".", ".", l[3], "NA"] for l in lines if l[0] != "long")


def test_hdf5_query_with_saved_windows_gives_the_summary_of_the_fasta(setup, capsys):
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"mix": seqs["A"][W: 6 * W] + seqs["C"][: 3 * W], "rc": rc(seqs["B"][: 5 * W])})
    qh5 = tmp / "q.h5"
    assert run_cli(["embed", q, "-o", qh5, "-m", model, "--save-windows", "--windows-stride", W, "-q"], capsys)[0] == 0
    _, from_fasta, _ = search(capsys, q, db, model, "-k", "3")
    _, from_h5, _ = search(capsys, qh5, db, model, "-k", "3")
    assert from_fasta == from_h5 and len(from_fasta) >= 3
    # windows saved every 128 bp, thinned to the query stride (every second): the windows of the FASTA at 256
    dense = tmp / "dense.h5"
    assert run_cli(["embed", q, "-o", dense, "-m", model, "--save-windows", "--windows-stride", W // 2, "-q"],
                   capsys)[0] == 0
    assert search(capsys, dense, db, model, "-k", "3")[1] == from_fasta


def _calibrate(model, *, top_identity: float, valid_min: float) -> None:
    """A calibration.json for the model: score 0 -> 70%, score 1 -> top_identity."""
    table = StrideCalibration(stride=W, window=W, query_step=1, identity=np.array([0.70, top_identity]),
                              score=np.array([0.0, 1.0]), valid_min=valid_min)
    ModelCalibration(model_hash=load_model(model).info.weights_hash, model_name="tiny", tables={W: table},
                     screen=None, build={}).save(model)


def test_identity_comes_from_the_models_calibration_and_is_na_without_or_below_its_range(setup, capsys):
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"rc": rc(seqs["C"][4 * W: 12 * W])})
    _, rows, err = search(capsys, q, db, model, "-k", "1")
    assert rows[0]["identity"] == "NA" and "no identity calibration for the DB's model" in err
    _calibrate(model, top_identity=1.0, valid_min=0.75)
    _, rows, err = search(capsys, q, db, model, "-k", "1")
    assert rows[0]["identity"] == "100.00" and "calibration" not in err  # every window is its target's own
    scattered = write_fasta(tmp / "s.fa", {"s": "".join(seqs["C"][i * W: (i + 1) * W] for i in (5, 1, 9, 3, 7))})
    _, rows, _ = search(capsys, scattered, db, model, "-k", "1")
    assert (rows[0]["target"], rows[0]["n_best"], rows[0]["strand"], rows[0]["identity"]) == ("C", "5", ".", "NA")
    _calibrate(model, top_identity=0.74, valid_min=0.75)
    _, rows, _ = search(capsys, q, db, model, "-k", "1")
    assert rows[0]["identity"] == "NA"  # below the range the table holds: never an invented number


def test_identity_needs_five_colinear_windows_so_short_or_scattered_queries_are_na(setup, capsys):
    """Issue 20's contig benchmark: identity was the calibrated mean of ALL a contig's windows once two of its best
    hits ran one way, so 366 of 459 unrelated real contigs (a TARA MAG) read as 75-89% relatives. It now counts
    only the query's homologous windows (best hits colinear with a neighbour's, as dist --level windows) and is
    NA under 5 of them; ranks and shares are unchanged."""
    db, seqs, model, tmp = setup
    _calibrate(model, top_identity=1.0, valid_min=0.75)
    q = write_fasta(tmp / "q.fa", {"three": seqs["C"][4 * W: 7 * W], "six": rc(seqs["C"][4 * W: 10 * W]),
                                   "scattered": "".join(seqs["C"][i * W: (i + 1) * W] for i in (2, 9, 4, 11, 6, 13))})
    _, rows, _ = search(capsys, q, db, model, "-k", "1")
    got = {r["query"]: (r["target"], r["n_best"], r["identity"]) for r in rows}
    assert got == {"three": ("C", "3", "NA"), "six": ("C", "6", "100.00"), "scattered": ("C", "6", "NA")}, got


def test_window_search_mistakes_are_one_line(setup, capsys):
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"long": seqs["A"][: 4 * W]})
    nowin = tmp / "nowin.h5"
    assert run_cli(["embed", tmp / "db.fa", "-o", nowin, "-m", model, "-q"], capsys)[0] == 0
    for args, code, want in (
        ([q, nowin, "--level", "windows"], 1, "no saved windows for --level windows"),
        ([q, db, "--query-stride", "100"], 1, "--query-stride sets the windows of long queries at --level windows"),
        ([q, db, "--level", "windows", "--query-stride", "300"], 2, "--query-stride 300 must be 1..256 bp"),
        ([q, db, "--level", "windows", "--query-stride", "0"], 2, "--query-stride"),
    ):
        c, out, err = run_cli(["search", *args, "-m", model], capsys)
        lines = [l for l in err.splitlines() if l.startswith("mrl-dna: error:") or "Error" in l]
        assert c == code and out == "" and want in err and len(lines) == 1, err


def test_first_pass_through_a_funnel_or_a_faiss_index_scores_the_same_targets_exactly(setup, capsys):
    """Large DBs: the first pass (which targets are candidates) may be a funnel or a FAISS windows index; the
    scores of the candidates are exact, so where the shortlist keeps the best windows the lines are the exact
    search's, the dims column aside."""
    db, seqs, model, tmp = setup
    q = write_fasta(tmp / "q.fa", {"mix": seqs["A"][: 8 * W] + seqs["B"][12 * W: 16 * W], "c": seqs["C"][W: 5 * W]})
    _, exact, _ = search(capsys, q, db, model, "-k", "3")
    _, funnel, err = search(capsys, q, db, model, "-k", "3", "--funnel", "4:40,16")
    drop = lambda rows: [{k: v for k, v in r.items() if k != "dims"} for r in rows]  # noqa: E731
    assert drop(funnel) == drop(exact) and {r["dims"] for r in funnel} == {"4,16"}
    assert "first pass funnel 4:40,16:1" in err
    _, narrow, err = search(capsys, q, db, model, "-k", "3", "--dim", "8")
    assert {r["dims"] for r in narrow} == {"8"} and {r["identity"] for r in narrow} == {"NA"}
    assert "identity is calibrated at the full width (16); at dim 8 the identity column is NA" in err
    pytest.importorskip("faiss")
    assert run_cli(["index", db, "--level", "windows", "--kind", "flat", "--dim", "4", "-q"], capsys)[0] == 0
    _, indexed, err = search(capsys, q, db, model, "-k", "3", "--funnel", "4:40,16", "--match", "genome")
    assert drop(indexed) == drop(exact) and "first stage: FAISS flat index over dim 4" in err, err


def test_per_file_db_reports_the_file_as_target_and_the_record_as_its_contig(setup, capsys):
    """A DB embedded with --per-file: a genome of two records is one target; the best window's contig is the
    record that holds it, and its coordinates are on that record."""
    _, seqs, model, tmp = setup
    write_fasta(tmp / "g1.fa", {"A": seqs["A"], "B": seqs["B"]})
    write_fasta(tmp / "g2.fa", {"C": seqs["C"]})
    db = tmp / "files.h5"
    code, _, err = run_cli(["embed", tmp / "g1.fa", tmp / "g2.fa", "--per-file", "--save-windows", "--windows-stride",
                            W, "-o", db, "-m", model, "-q"], capsys)
    assert code == 0, err
    q = write_fasta(tmp / "q.fa", {"b": seqs["B"][8 * W: 14 * W]})
    _, rows, _ = search(capsys, q, db, model, "-k", "2")
    top = rows[0]
    assert (top["target"], top["target_contig"], top["n_best"], top["query_windows"]) == ("g1", "B", "6", "6")
    assert int(top["target_start"]) - int(top["query_start"]) == 8 * W
