"""Tests for mrl_dna/search.py and the `search` / `index` commands.

Properties: exact blocked search equals a numpy brute force whatever the block size; a funnel whose first
stage keeps every row and whose last stage is the full width equals exact search; reranking reads only
the shortlisted rows; the default funnel costs >= 10x fewer multiply-adds than exact on large DBs. CLI:
TSV parseable and ordered as documented; each user mistake is one error line and exit 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import named_pipe, run_cli, write_store
import mrl_dna.search.exact as exact_mod
import mrl_dna.search.funnel as funnel_mod
from mrl_dna.errors import ConfigError
from mrl_dna.search import (
    Database,
    IndexInfo,
    Mode,
    Stage,
    calibrate_funnel,
    check_funnel,
    default_funnel,
    exact_search,
    funnel_search,
    parse_funnel,
    plan_stages,
    rerank,
)
from mrl_dna.search.funnel import Trial, measure_plans
from mrl_dna.vectors import normalize_rows as normalize
from mrl_dna.vectors import truncate_normalize

DIMS = (8, 16, 32, 64)
D = DIMS[-1]
HASH = "a" * 64


def brute_force(q: np.ndarray, x: np.ndarray, k: int, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """numpy reference: (q, k) rows and cosines of the best rows, cosines on normalised inputs."""
    s = normalize(q) @ normalize(x).T  # (q, n)
    if valid is not None:
        s[:, ~valid] = -np.inf
    rows = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return rows, np.take_along_axis(s, rows, 1)


def clustered(n: int, rng: np.random.Generator, d: int = D) -> np.ndarray:
    """Normalised vectors in clusters, with variance decaying along the dims as a Matryoshka model's."""
    centers = rng.standard_normal((max(2, n // 20), d))
    x = centers[rng.integers(0, len(centers), n)] + 0.3 * rng.standard_normal((n, d))
    return normalize(x * (1.0 / np.sqrt(np.arange(1, d + 1)))).astype(np.float32)


def write_db(path: Path, vecs: np.ndarray, **kw) -> Path:
    return write_store(path, vecs, dims=DIMS, model_hash=kw.pop("model_hash", HASH), **kw)


def error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.startswith("mrl-dna: error:")]
    assert len(lines) == 1, err
    return lines[0]


# ------------------------------------------------------------------------------------------ library
@pytest.mark.parametrize("block_rows", [37, 10_000])
def test_exact_equals_numpy_bruteforce(block_rows):
    rng = np.random.default_rng(1)
    x = normalize(rng.standard_normal((503, D)))
    q = normalize(rng.standard_normal((9, D)))
    valid = rng.random(503) > 0.1
    db = Database.from_arrays(x, valid=valid, matryoshka_dims=DIMS)
    for dim in (8, 64):
        h = exact_search(truncate_normalize(q, dim), db.blocks(dim, block_rows), k=12, valid=db.valid)
        rows, scores = brute_force(q[:, :dim], x[:, :dim], 12, valid)
        np.testing.assert_array_equal(h.rows, rows)
        np.testing.assert_allclose(h.scores, scores, atol=1e-5)
        assert h.macs_per_query == 503 * dim and h.dims == (dim,)
        assert valid[h.rows].all()


def test_exact_k_beyond_valid_rows_and_min_score():
    rng = np.random.default_rng(2)
    x = normalize(rng.standard_normal((5, D)))
    valid = np.array([1, 0, 1, 1, 0], bool)
    h = exact_search(x[:2], Database.from_arrays(x, valid=valid).blocks(D, 2), k=4, valid=valid)
    assert (h.rows[:, 3] == -1).all() and (h.rows[:, :3] >= 0).all()  # only 3 ok rows
    assert np.isneginf(h.scores[:, 3]).all()
    h = exact_search(x[:1], Database.from_arrays(x).blocks(D, 2), k=5, min_score=0.999)
    assert h.rows[0, 0] == 0 and (h.rows[0, 1:] == -1).all()  # only itself passes


def test_funnel_with_full_shortlist_and_full_final_stage_equals_exact():
    rng = np.random.default_rng(3)
    x = clustered(800, rng)
    q = clustered(20, rng)
    db = Database.from_arrays(x, matryoshka_dims=DIMS)
    ex = exact_search(q, db.blocks(D, 128), k=10)
    f = funnel_search(q, db, [Stage(8, 800), Stage(D, 10)])
    np.testing.assert_array_equal(f.rows, ex.rows)
    np.testing.assert_allclose(f.scores, ex.scores, atol=1e-5)
    assert f.dims == (8, D) and f.macs_per_query == 800 * 8 + 800 * D


def test_funnel_three_stages_matches_bruteforce_on_clustered_data():
    rng = np.random.default_rng(4)
    x, q = clustered(3000, rng), clustered(30, rng)
    f = funnel_search(q, Database.from_arrays(x, matryoshka_dims=DIMS), [Stage(8, 600), Stage(32, 100), Stage(D, 10)])
    rows, scores = brute_force(q, x, 10)
    same = np.mean([set(a) == set(b) for a, b in zip(f.rows, rows)])
    assert same >= 0.9
    np.testing.assert_allclose(f.scores[:, 0], scores[:, 0], atol=1e-5)  # cosine is at the full width


def test_rerank_reads_only_the_candidates_sorted_unique():
    rng = np.random.default_rng(5)
    x = normalize(rng.standard_normal((50, D)))
    asked = []

    def read_rows(dim, rows):
        assert np.all(np.diff(rows) > 0)  # h5py fancy indexing needs sorted unique rows
        asked.append(rows.copy())
        return truncate_normalize(x[rows], dim)

    cand = np.array([[4, 9, 2, -1], [9, 30, 4, 7]])
    rows, scores, macs = rerank(x[[9, 30]], cand, read_rows, dim=16, keep=2)
    np.testing.assert_array_equal(asked[0], [2, 4, 7, 9, 30])
    assert rows[0, 0] == 9 and rows[1, 0] == 30
    assert macs == 7 * 16  # 3 + 4 real candidates


def test_default_funnel_is_10x_cheaper_on_large_dbs_and_exact_on_small():
    dims = (8, 16, 32, 64, 128)
    assert default_funnel(500, dims, 10) == (Stage(128, 10),)
    for n in (100_000, 1_000_000):
        st = default_funnel(n, dims, 10)
        assert st[0].dim == 8 and st[-1] == Stage(128, 10)
        macs = n * st[0].dim + sum(a.keep * b.dim for a, b in zip(st, st[1:]))
        assert n * 128 / macs >= 10


def test_calibrated_funnel_keeps_the_exact_top_k_and_is_cheaper():
    rng = np.random.default_rng(10)
    x = clustered(4040, rng)  # one draw: the held-out queries come from the DB's distribution
    q, db = x[:40], Database.from_arrays(x[40:], matryoshka_dims=DIMS)
    cal = calibrate_funnel(db, k=5, n_queries=50, small_db_macs=0)  # 4000 rows is 'small': calibrate anyway
    assert cal.stages[-1] == Stage(D, 5) and cal.macs_per_query <= 4000 * D
    assert all(a.keep >= b.keep for a, b in zip(cal.stages, cal.stages[1:]))
    f = funnel_search(q, db, cal.stages)
    ex = exact_search(q, db.blocks(D, 1000), k=5)
    assert np.mean([set(a) == set(b) for a, b in zip(f.rows, ex.rows)]) >= 0.9
    assert f.macs_per_query == cal.macs_per_query or cal.stages == (Stage(D, 5),)


def test_calibrated_funnel_on_a_tiny_db_is_the_exact_scan(tmp_path, capsys):
    """Issue 22.5: on 8 rows a quantile of 8 pseudo-queries promised the exact top-2 and got rank 2 wrong.
    calibrate now falls back to the exact full-width scan where auto does (seeds where it used to fail)."""
    for seed in (0, 6, 17):
        rng = np.random.default_rng(seed)
        db = write_db(tmp_path / f"tiny{seed}.h5", clustered(8, rng))
        qf = write_db(tmp_path / f"q{seed}.h5", clustered(20, rng), ids=[f"q{i}" for i in range(20)])
        assert calibrate_funnel(Database.open([db]), k=2).stages == (Stage(D, 2),)
        _, exact, _ = run_cli(["search", qf, db, "-k", "2", "--dim", str(D), "-q"], capsys)
        code, out, err = run_cli(["search", qf, db, "-k", "2", "--funnel", "calibrate"], capsys)
        assert code == 0 and out == exact and "a small DB: the funnel is a full scan" in err


def test_default_search_on_a_small_db_ignores_an_approximate_full_width_index(dbs, capsys):
    """Issue 22.5: an IVF index over the full width made the small-DB 'exact scan' an IVF probe of 1 list."""
    pytest.importorskip("faiss")
    a, _, qf, *_ = dbs
    assert run_cli(["index", a, "--dim", str(D), "--kind", "ivf", "--nlist", "6", "--nprobe", "1"], capsys)[0] == 0
    _, exact, _ = run_cli(["search", qf, a, "--dim", str(D), "-q"], capsys)
    for extra in ([], ["--funnel", "auto"], ["--funnel", "calibrate"]):
        code, out, err = run_cli(["search", qf, a, *extra], capsys)
        assert code == 0 and out == exact and "FAISS" not in err


def scan_shortlist(db: Database):
    """A FAISS-like shortlister over an in-memory DB (brute force): (q, d) normalised, m -> rows, cosines, macs."""
    def shortlist(qd: np.ndarray, m: int):
        s = qd @ db.rows(qd.shape[1], np.arange(db.n)).T  # (q, n)
        r = np.argsort(-s, axis=1, kind="stable")[:, :m]
        return r, np.take_along_axis(s, r, 1).astype(np.float32), db.n * qd.shape[1] * len(qd)
    return shortlist


def _index(kind: str, dim: int) -> IndexInfo:
    return IndexInfo(path="x.faiss", kind=kind, dim=dim, n_rows=0, n_indexed=0, nlist=0, nprobe=0, model_hash=HASH,
                     db_created="")


def test_plan_stages_chooses_exact_funnel_and_index_as_search_documents(monkeypatch):
    """Every branch of funnel.plan_stages on one DB, large (small_db_macs=0) or small (the default): which stages,
    which index shortlists the first stage, and the footer's words. Timing is taken out (MEASURE_PAYS: any
    time pays) where a measured plan is asked for; the tests below measure."""
    monkeypatch.setattr(funnel_mod, "MEASURE_PAYS", 1e9)
    db = Database.from_arrays(clustered(300, np.random.default_rng(3)), matryoshka_dims=DIMS)
    big = dict(k=5, small_db_macs=0)
    genome = dict(big, match="genome")
    warned: list[str] = []
    plan = plan_stages(db, k=5, dim=16)  # --dim: exact there, whatever the index
    assert (plan.mode, plan.stages, plan.index, plan.why) == (Mode.exact, (Stage(16, 5),), None, "exact at dim 16")
    assert plan_stages(db, **big).stages == (Stage(D, 5),)  # neither and no index: exact at full width
    flat8, hnsw16 = _index("flat", 8), _index("hnsw", 16)
    plan = plan_stages(db, index=flat8, warn=warned.append, **big)  # --match locus: a prefix index is not used
    assert (plan.mode, plan.stages, plan.index) == (Mode.exact, (Stage(D, 5),), None)
    assert warned and warned.pop().startswith("ignoring the FAISS index over dim 8: a prefix does not hold")
    plan = plan_stages(db, index=flat8, **genome)  # --match genome: the default funnel over the index's dim
    assert plan.mode is Mode.funnel and plan.index is flat8
    assert plan.stages == tuple(Stage(s.dim, min(s.keep, 300)) for s in default_funnel(300, DIMS, 5, 8, small_db_macs=0))
    assert plan.why == "funnel " + ",".join(map(str, plan.stages)) + " (first stage: FAISS flat index over dim 8)"
    plan = plan_stages(db, index=hnsw16, **genome)  # a graph: HNSW_KEEP_PER_HIT * k rows, then the full width
    assert plan.stages == (Stage(16, 300), Stage(D, 5)) and plan.index is hnsw16
    for match in ("locus", "genome"):  # a full-width index: one stage, whatever the match
        full = _index("ivf", D)
        plan = plan_stages(db, index=full, k=5, small_db_macs=0, match=match)
        assert (plan.mode, plan.stages, plan.index) == (Mode.funnel, (Stage(D, 5),), full)
    plan = plan_stages(db, k=5, index=flat8, match="genome")  # a small DB: the exact full-width scan, no index
    assert (plan.stages, plan.index, plan.why) == ((Stage(D, 5),), None, f"exact at dim {D} (a small DB: the funnel is a full scan)")
    plan = plan_stages(db, funnel="16:100,64", index=flat8, warn=warned.append, **big)  # another dim: a scan
    assert plan.stages == (Stage(16, 100), Stage(64, 5)) and plan.index is None
    assert warned == ["FAISS index is over dim 8 but --funnel starts at 16; scanning instead"]
    assert plan_stages(db, funnel="8:100,64", index=flat8, **big).index is flat8  # asked for: used at any match
    assert plan_stages(db, k=5, funnel="8:100,64", index=flat8).index is flat8  # asked for: also on a small DB
    assert plan_stages(db, funnel="8:1000,64:5", **big).stages == (Stage(8, 300), Stage(64, 5))  # keeps <= rows
    plan = plan_stages(db, funnel="auto", **big)  # auto, locus, no full-width index: the exact scan, said why
    assert plan.mode is Mode.exact and plan.stages == (Stage(D, 5),) and "no FAISS index over the full width" in plan.why
    plan = plan_stages(db, funnel="auto", **genome)  # auto, genome: the default funnel, measured
    assert plan.stages == tuple(Stage(s.dim, min(s.keep, 300)) for s in default_funnel(300, DIMS, 5, small_db_macs=0))
    assert "auto: measured on 100 DB rows:" in plan.why
    cal = calibrate_funnel(db, k=5, small_db_macs=0).stages  # what plan_stages measures (seeded)
    assert len(cal) > 1
    for index, kept in ((None, False), (_index("flat", cal[0].dim), True), (_index("hnsw", cal[0].dim), False),
                        (_index("flat", D), False)):
        plan = plan_stages(db, funnel="calibrate", index=index, shortlist=scan_shortlist(db), **big)
        assert plan.stages == cal and plan.index is (index if kept else None)  # only a flat index of the first dim
        if not kept:
            assert "calibrate: measured on 100 DB rows:" in plan.why
    with pytest.raises(ConfigError, match="must strictly increase"):
        plan_stages(db, funnel="32:100,16", **big)


def test_parse_and_check_funnel_errors():
    assert parse_funnel("16:2000,64:200,128:10") == (Stage(16, 2000), Stage(64, 200), Stage(128, 10))
    assert check_funnel(parse_funnel("8:100,64"), dim=64, matryoshka_dims=DIMS, k=5, source="x")[-1] == Stage(64, 5)
    with pytest.raises(ConfigError, match="is not DIM:KEEP"):
        parse_funnel("16-2000")
    with pytest.raises(ConfigError, match="must strictly increase"):
        check_funnel(parse_funnel("32:100,16:10"), dim=64, matryoshka_dims=DIMS, k=10, source="x")
    with pytest.raises(ConfigError, match="outside the DB's width 1..64"):
        check_funnel(parse_funnel("16:100,128:10"), dim=64, matryoshka_dims=DIMS, k=10, source="x")
    with pytest.raises(ConfigError, match="keeps 5 < -k 10"):
        check_funnel(parse_funnel("16:100,64:5"), dim=64, matryoshka_dims=DIMS, k=10, source="x")


def test_database_spans_files_and_reads_dense_and_sparse_rows(tmp_path):
    rng = np.random.default_rng(6)
    x = normalize(rng.standard_normal((300, D)))
    db = Database.open([write_db(tmp_path / "a.h5", x[:120]), write_db(tmp_path / "b.h5", x[120:], ids=[f"u{i}" for i in range(180)])])
    assert db.n == 300 and db.ids[120] == "u0"
    for rows in (np.array([3, 119, 120, 299]), np.arange(10, 290)):
        np.testing.assert_allclose(db.rows(16, rows), truncate_normalize(x[rows], 16), atol=1e-6)
    h = exact_search(truncate_normalize(x[:4], 32), db.blocks(32, 50), k=3)
    np.testing.assert_array_equal(h.rows, brute_force(x[:4, :32], x[:, :32], 3)[0])


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def dbs(tmp_path):
    rng = np.random.default_rng(7)
    x = clustered(400, rng)
    q = clustered(6, rng)
    status = ["ok"] * 400
    status[5] = "empty"
    a = write_db(tmp_path / "a.h5", x[:250], status=status[:250])
    b = write_db(tmp_path / "b.h5", x[250:], ids=[f"b{i}" for i in range(150)])
    qf = write_db(tmp_path / "q.h5", q, ids=[f"q{i}" for i in range(6)])
    return a, b, qf, x, q


def parse_tsv(out: str) -> tuple[list[str], list[list[str]]]:
    lines = out.splitlines()
    assert lines[0].startswith("#")
    return lines[0][1:].split("\t"), [l.split("\t") for l in lines[1:]]


def test_cli_exact_tsv_matches_bruteforce_and_is_ordered(dbs, capsys):
    a, b, qf, x, q = dbs
    code, out, err = run_cli(["search", str(qf), str(a), str(b), "-k", "5", "--dim", "32"], capsys)
    assert code == 0, err
    header, rows = parse_tsv(out)
    assert header == ["query", "target", "rank", "cosine", "dims"]
    ids = [f"t{i}" for i in range(250)] + [f"b{i}" for i in range(150)]
    valid = np.ones(400, bool)
    valid[5] = False
    ref, ref_s = brute_force(q[:, :32], x[:, :32], 5, valid)
    assert [r[0] for r in rows] == [f"q{i}" for i in range(6) for _ in range(5)]  # grouped, input order
    assert [int(r[2]) for r in rows] == list(range(1, 6)) * 6  # ranks ascending
    assert [r[1] for r in rows] == [ids[j] for j in ref.ravel()]
    np.testing.assert_allclose([float(r[3]) for r in rows], ref_s.ravel(), atol=2e-6)
    assert all(r[4] == "32" for r in rows)
    assert "multiply-adds per query" in err
    for qi in range(6):  # cosines non-increasing within a query: sort -k4,4gr agrees with rank
        s = [float(r[3]) for r in rows[qi * 5 : qi * 5 + 5]]
        assert s == sorted(s, reverse=True)


def test_cli_default_and_auto_funnel_equal_exact_on_small_db_and_no_header(dbs, capsys):
    a, b, qf, *_ = dbs
    _, exact, _ = run_cli(["search", str(qf), str(a), str(b), "--dim", "64", "-q"], capsys)
    code, out, err = run_cli(["search", str(qf), str(a), str(b), "--quiet", "--no-header"], capsys)
    assert code == 0 and err == ""
    assert out == "".join(exact.splitlines(True)[1:])
    code, out, err = run_cli(["search", str(qf), str(a), str(b), "--funnel", "auto"], capsys)
    assert code == 0 and out == exact and "a small DB: the funnel is a full scan" in err
    code, out, err = run_cli(["search", str(qf), str(a), str(b), "--funnel", "calibrate", "-k", "3"], capsys)
    assert code == 0 and len(parse_tsv(out)[1]) == 18 and "multiply-adds per query" in err
    code, out, _ = run_cli(["search", str(qf), str(a), "--funnel", "8:250,16:100,64:10", "--min-score", "0.5"], capsys)
    _, rows = parse_tsv(out)
    assert code == 0 and all(r[4] == "8,16,64" and float(r[3]) >= 0.5 for r in rows)


def test_cli_windows_reports_the_best_window(tmp_path, capsys):
    rng = np.random.default_rng(8)
    wv = [clustered(4, rng) for _ in range(3)]
    spans = [np.array([[0, 500], [500, 1000], [1000, 1500], [1500, 2000]], np.int64)] * 3
    vecs = normalize(np.stack([w.mean(0) for w in wv]))
    db = write_db(tmp_path / "w.h5", vecs, windows=list(zip(spans, wv)))
    qf = write_db(tmp_path / "q.h5", wv[1][2:3], ids=["frag"])
    code, out, err = run_cli(["search", str(qf), str(db), "-k", "1", "--windows", "--dim", str(D)], capsys)
    assert code == 0, err
    header, rows = parse_tsv(out)
    assert header[-3:] == ["target_start", "target_end", "target_contig"]
    assert rows == [["frag", "t1", "1", rows[0][3], str(D), "1000", "1500", "t1"]]


def test_level_windows_at_full_width_is_the_top_window_of_a_brute_force_scan(tmp_path, capsys):
    """Every saved window is a row: the first hit is the argmax of (query . window) over all windows of all
    files, with the window's record and [start, end); exact, the auto funnel and --funnel agree on it."""
    rng = np.random.default_rng(9)
    wv = [clustered(7, rng) for _ in range(5)]  # 5 records x 7 windows
    spans = [np.stack([np.arange(7) * 300, np.arange(7) * 300 + 512], axis=1).astype(np.int64)] * 5
    vecs = normalize(np.stack([w.mean(0) for w in wv]))
    a = write_db(tmp_path / "a.h5", vecs[:3], windows=list(zip(spans[:3], wv[:3])))
    b = write_db(tmp_path / "b.h5", vecs[3:], windows=list(zip(spans[3:], wv[3:])), ids=["u0", "u1"])
    queries = normalize(np.concatenate(wv)[[3, 17, 30]] + 0.2 * rng.standard_normal((3, D)).astype(np.float32))
    qf = write_db(tmp_path / "q.h5", queries, ids=["x", "y", "z"])
    W = np.concatenate(wv)  # (35, D) stored window vectors, unit norm
    best = np.argmax(queries @ W.T, axis=1)
    ids = ["t0", "t1", "t2", "u0", "u1"]
    want = [[ids[i // 7], str(int(spans[0][i % 7, 0])), str(int(spans[0][i % 7, 1]))] for i in best]
    for extra in ([], ["--dim", str(D)], ["--funnel", "8:20,16:10,64:5"]):
        code, out, err = run_cli(["search", str(qf), str(a), str(b), "--level", "windows", "-k", "5", *extra], capsys)
        assert code == 0, err
        header, rows = parse_tsv(out)
        assert header[-3:] == ["target_start", "target_end", "target_contig"]
        top = [r for r in rows if r[2] == "1"]
        assert [[r[1], r[5], r[6]] for r in top] == want
        assert [r[7] for r in top] == [w[0] for w in want]  # rows of records: the contig is the record
        assert np.allclose([float(r[3]) for r in top], (queries @ W.T).max(1), atol=1e-6)
        assert "35 windows in 2 files" in err


def test_level_windows_errors_are_one_line(dbs, tmp_path, capsys):
    a, _, qf, *_ = dbs
    code, _, err = run_cli(["search", str(qf), str(a), "--level", "windows"], capsys)
    assert code == 1 and "no saved windows for --level windows" in error_line(err) and "--save-windows" in err
    code, _, err = run_cli(["search", str(qf), str(a), "--level", "windows", "--windows"], capsys)
    assert code == 1 and "drop --windows" in error_line(err)
    code, _, err = run_cli(["search", str(qf), str(a), "--level", "genes"], capsys)
    assert code == 2 and "Traceback" not in err


def test_cli_windows_without_saved_windows_is_one_error(dbs, capsys):
    a, _, qf, *_ = dbs
    code, _, err = run_cli(["search", str(qf), str(a), "--windows"], capsys)
    assert code == 1 and "--save-windows" in error_line(err)


@pytest.mark.parametrize(
    "args, expect",
    [
        (["--dim", "1024"], "--dim 1024 is outside the DB's width 1..64"),
        (["--funnel", "8:100,1024:10"], "matryoshka dims 8,16,32,64"),
        (["--dim", "8", "--funnel", "8:10,64"], "give one of them"),
    ],
)
def test_cli_bad_dims_are_one_error_line(dbs, capsys, args, expect):
    a, _, qf, *_ = dbs
    code, out, err = run_cli(["search", str(qf), str(a), *args], capsys)
    assert code == 1 and out == ""
    assert expect in error_line(err)


def test_cli_model_mismatch_between_query_file_and_db(dbs, tmp_path, capsys):
    a, *_ = dbs
    other = write_db(tmp_path / "o.h5", normalize(np.ones((2, D))), model_hash="b" * 64)
    code, _, err = run_cli(["search", str(other), str(a)], capsys)
    assert code == 1 and f"DB {a} and query file {other} were embedded with two models (aaaaaaaaaaaa test vs " \
        "bbbbbbbbbbbb test)" in error_line(err)
    code, _, err = run_cli(["search", str(a), str(a), str(other)], capsys)  # two DBs of two models
    assert code == 1 and f"{a} and {other} were embedded with two models" in error_line(err)


def _set_attrs(path: Path, **attrs) -> Path:
    import h5py

    with h5py.File(path, "r+") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


@pytest.mark.parametrize("attr, value, what", [("window", 32, "different windows (window 512 vs 32)"),
                                               ("stride", 256, "different strides (stride 512 vs 256)"),
                                               ("pooling", "attention", "different poolings (pooling mean vs attention)")])
def test_search_refuses_db_files_and_query_files_of_another_window_stride_or_pooling(dbs, capsys, attr, value, what):
    """search q.fa s.h5 w32.h5 ranked vectors of 2,048 bp and 32 bp windows together (the order of the DB files
    changed the hits, the query took the first file's window) and dist ran: one line naming both files."""
    a, b, qf, *_ = dbs
    _set_attrs(b, **{attr: value})
    for args, expect in [(["search", qf, a, b], f"{a} and {b} were embedded with {what}"),
                         (["search", qf, b, a], f"{b} and {a} were embedded with different"),
                         (["search", b, a], f"DB {a} and query file {b} were embedded with {what}"),
                         (["dist", a, b], f"{a} and {b} were embedded with {what}")]:
        code, out, err = run_cli(args, capsys)
        assert code == 1 and out == "" and "their vectors are not comparable" in error_line(err), err
        assert expect in error_line(err), err


def test_search_level_windows_compares_windows_of_files_of_other_strides(tmp_path, capsys):
    """Saved windows are vectors of their bases alone: the stride (and --max-n) choose which windows exist, so
    --level windows searches files that differ in them, while record vectors (pooled over those windows) do not
    mix; the window length must agree at both levels."""
    rng = np.random.default_rng(11)
    spans = np.stack([np.arange(6) * 100, np.arange(6) * 100 + 512], axis=1).astype(np.int64)
    dbs = []
    for name, stride in (("a", 512), ("b", 100)):
        wv = clustered(6, rng)
        db = write_db(tmp_path / f"{name}.h5", normalize(wv.mean(0, keepdims=True)), ids=[name], windows=[(spans, wv)])
        dbs.append(_set_attrs(db, stride=stride))
    q = write_db(tmp_path / "q.h5", clustered(2, rng), ids=["q0", "q1"])
    code, out, err = run_cli(["search", q, *dbs, "--level", "windows", "-k", "3", "-q"], capsys)
    assert code == 0 and len(parse_tsv(out)[1]) == 6, err
    code, _, err = run_cli(["search", q, *dbs], capsys)
    assert code == 1 and "different strides (stride 512 vs 100)" in error_line(err)
    _set_attrs(dbs[1], window=256)
    code, _, err = run_cli(["search", q, *dbs, "--level", "windows"], capsys)
    assert code == 1 and "different windows (window 512 vs 256)" in error_line(err)


def test_search_refuses_the_same_db_file_twice_even_through_a_link(dbs, tmp_path, capsys):
    """search q db.h5 db.h5 doubled every hit (also through a symlink or a hard link): refused, as merge does."""
    import os

    a, b, qf, *_ = dbs
    soft, hard = tmp_path / "soft.h5", tmp_path / "hard.h5"
    soft.symlink_to(a)
    os.link(a, hard)
    for dbs_, expect in [([a, b, a], f"{a} is given twice; give each DB file once"),
                         ([a, soft], f"{a} is given twice (as {a} and as {soft}: the same file)"),
                         ([hard, b, a], f"{hard} is given twice (as {hard} and as {a}: the same file)")]:
        code, out, err = run_cli(["search", qf, *dbs_], capsys)
        assert code == 1 and out == "" and expect in error_line(err), err
    code, out, err = run_cli(["search", a, a, "-q"], capsys)  # a query file may be a DB file: all against all
    assert code == 0, err


def test_fasta_queries_are_embedded_with_the_dbs_max_n_fraction(tmp_path, tiny_model_dir, capsys):
    """A DB embedded with --max-n 0.9 got queries embedded with the default 0.5: a record with N runs did not
    find itself with cosine 1."""
    rng = np.random.default_rng(3)
    seqs = {"clean": "".join(rng.choice(list("ACGT"), 1024)),
            "gappy": "".join(rng.choice(list("ACGT"), 256)) + "N" * 180 + "".join(rng.choice(list("ACGT"), 588))}
    fa = tmp_path / "x.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    db = tmp_path / "db.h5"
    assert run_cli(["embed", fa, "-o", db, "-m", tiny_model_dir, "--max-n", "0.9", "-q"], capsys)[0] == 0
    code, out, err = run_cli(["search", fa, db, "-m", tiny_model_dir, "-k", "1", "-q"], capsys)
    assert code == 0, err
    _, rows = parse_tsv(out)
    assert [r[:2] for r in rows] == [["clean", "clean"], ["gappy", "gappy"]]
    assert all(float(r[3]) >= 0.999999 for r in rows), rows


def tiny_model(path: Path, seed: int = 0):
    import torch

    from mrl_dna.model.config import EncoderConfig, ModelConfig
    from mrl_dna.model import MrlDnaModel

    torch.manual_seed(seed)
    model = MrlDnaModel(ModelConfig(encoder=EncoderConfig(d_model=16, n_layer=1), matryoshka_dims=DIMS, head_hidden=0, window=256, window_stride=256))
    model.save_pretrained(path)
    return model


def test_cli_fasta_query_embedded_with_the_db_model_finds_itself(tmp_path, capsys):
    rng = np.random.default_rng(9)
    seqs = {f"s{i}": "".join(rng.choice(list("ACGT"), 900)) for i in range(5)}
    fa = tmp_path / "db.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    tiny_model(tmp_path / "m")
    code, _, err = run_cli(["embed", str(fa), "-o", str(tmp_path / "db.h5"), "-m", str(tmp_path / "m"), "--save-windows", "-q"], capsys)
    assert code == 0, err
    q = tmp_path / "q.fa"
    q.write_text(f">s3\n{seqs['s3']}\n>frag\n{seqs['s1'][256:512]}\n")
    code, out, err = run_cli(["search", str(q), str(tmp_path / "db.h5"), "-m", str(tmp_path / "m"), "-k", "2", "--windows"], capsys)
    assert code == 0, err
    _, rows = parse_tsv(out)
    assert rows[0][:3] == ["s3", "s3", "1"] and float(rows[0][3]) > 0.9999
    assert rows[2][0] == "frag" and all(len(r) == 8 and int(r[5]) < int(r[6]) and r[7] == r[1] for r in rows)


def test_cli_fasta_query_with_another_model_names_both_hashes(dbs, tmp_path, capsys):
    a, *_ = dbs
    model = tiny_model(tmp_path / "m")
    fa = tmp_path / "q.fa"
    fa.write_text(">s1\nACGTACGTAAACCCGGGTTT\n")
    code, _, err = run_cli(["search", str(fa), str(a), "--model", str(tmp_path / "m")], capsys)
    line = error_line(err)
    assert code == 1
    assert f"query model {model.info.weights_hash[:12]} differs from DB model {HASH[:12]}" in line
    assert "pass --model DIR of the DB's model" in line


def test_cli_empty_and_malformed_db_are_one_error_line(tmp_path, capsys):
    empty = write_db(tmp_path / "empty.h5", np.zeros((0, D), np.float32))
    none_ok = write_db(tmp_path / "none.h5", np.zeros((2, D), np.float32), status=["empty", "all_n"])
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    text = tmp_path / "text.h5"
    text.write_text(">not an hdf5\nACGT\n")
    q = write_db(tmp_path / "q.h5", normalize(np.ones((1, D))))
    for db, expect in [(empty, "has no rows"), (none_ok, "none with status ok"), (bad, "bad.h5"), (text, "not an HDF5 file")]:
        code, out, err = run_cli(["search", str(q), str(db)], capsys)
        assert code == 1 and out == ""
        assert expect in error_line(err)


def test_index_without_faiss_names_the_extra(dbs, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    code, _, err = run_cli(["index", str(dbs[0]), "--dim", "16", "--kind", "flat"], capsys)
    assert code == 1 and "pip install 'mrl-dna[faiss]'" in error_line(err)


def test_faiss_index_is_used_and_a_stale_one_ignored(dbs, capsys):
    pytest.importorskip("faiss")
    a, b, qf, *_ = dbs
    code, _, err = run_cli(["index", str(a), "--dim", "8", "--kind", "flat"], capsys)
    assert code == 0, err
    _, exact, _ = run_cli(["search", str(qf), str(a), "--dim", "64", "-q"], capsys)
    code, out, err = run_cli(["search", str(qf), str(a), "--funnel", "8:250,64:10"], capsys)
    assert code == 0 and "FAISS flat index over dim 8" in err
    (_, got), (_, ref) = parse_tsv(out), parse_tsv(exact)
    assert [r[:3] for r in got] == [r[:3] for r in ref] and all(r[4] == "8,64" for r in got)
    np.testing.assert_allclose([float(r[3]) for r in got], [float(r[3]) for r in ref], atol=2e-6)
    Path(str(a) + ".faiss.json").write_text(Path(str(a) + ".faiss.json").read_text().replace('"n_rows": 250', '"n_rows": 7'))
    code, out, err = run_cli(["search", str(qf), str(a), "--funnel", "8:250,64:10"], capsys)
    assert code == 0 and "ignoring stale FAISS index" in err and "FAISS flat" not in err
    code, _, err = run_cli(["index", str(b), "--dim", "16", "--kind", "ivf"], capsys)
    assert code == 0 and "ivf, dim 16" in err
    code, out, err = run_cli(["search", str(qf), str(b), "--funnel", "16:150,64:5", "-k", "5"], capsys)
    assert code == 0 and "FAISS ivf index over dim 16" in err and len(parse_tsv(out)[1]) == 30



def test_index_on_a_full_disk_or_interrupted_leaves_no_partial(dbs, capsys, monkeypatch):
    """Issue 22.17: a failed `index` (full disk, Ctrl-C while writing) left DB.h5.faiss.partial behind."""
    faiss = pytest.importorskip("faiss")
    a = dbs[0]

    def fails_with(exc):
        def write_index(index, path):
            Path(path).write_bytes(b"part of an index")
            raise exc
        return write_index

    full = RuntimeError("Error in faiss::FileIOWriter: write error: No space left on device")
    monkeypatch.setattr(faiss, "write_index", fails_with(full))
    code, _, err = run_cli(["index", a, "--dim", "16", "--kind", "flat"], capsys)
    assert code == 1 and error_line(err).startswith(f"mrl-dna: error: no space left on device on the disk that holds {a}.faiss (")
    assert sorted(p.name for p in a.parent.iterdir() if p.name.startswith(a.name)) == [a.name]
    monkeypatch.setattr(faiss, "write_index", fails_with(KeyboardInterrupt()))
    code, _, err = run_cli(["index", a, "--dim", "16", "--kind", "flat"], capsys)
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in a.parent.iterdir() if p.name.startswith(a.name)) == [a.name]


def test_a_damaged_faiss_index_is_ignored_with_a_warning(dbs, capsys):
    """Issue 22.10: a corrupt DB.h5.faiss made every search end in "internal error: RuntimeError" (FAISS could
    not read it). Now it is ignored with a warning, as a stale index is, and the search scans."""
    pytest.importorskip("faiss")
    a, b, qf, *_ = dbs
    assert run_cli(["index", a, "--dim", "8", "--kind", "flat", "-q"], capsys)[0] == 0
    assert run_cli(["index", b, "--dim", "16", "--kind", "flat", "-q"], capsys)[0] == 0
    good = Path(f"{a}.faiss").read_bytes()
    _, exact, _ = run_cli(["search", qf, a, "--funnel", "8:250,64:10", "--no-index", "-q"], capsys)
    for damage in (b"garbage\n", good[: len(good) // 2], Path(f"{b}.faiss").read_bytes()):  # junk, cut, another
        Path(f"{a}.faiss").write_bytes(damage)
        for args in (["--funnel", "8:250,64:10"], []):  # the index's funnel; the default (small DB: a scan)
            code, out, err = run_cli(["search", qf, a, *args], capsys)
            assert code == 0, err
            assert f"warning: ignoring damaged FAISS index {a}.faiss" in err
            assert f"rebuild with mrl-dna index {a} --dim 8 --force" in err and "FAISS flat" not in err
        assert out == run_cli(["search", qf, a, "-q"], capsys)[1]
    code, out, _ = run_cli(["search", qf, a, "--funnel", "8:250,64:10", "-q"], capsys)
    assert out == exact


def test_index_ivf_with_more_lists_than_rows_is_refused_as_a_bad_value(dbs, capsys):
    """Issue 22.11: `index --kind ivf --nlist 100000` on 3,000 rows ended in an internal error from FAISS's
    k-means. Refused (exit 2, a bad option value; not clamped: the lists and the default nprobe the user
    chose would silently change); up to one row per list it is built, with a warning below 39 rows per list."""
    pytest.importorskip("faiss")
    b = dbs[1]  # 150 rows
    for nlist in (100000, 151):
        code, _, err = run_cli(["index", b, "--kind", "ivf", "--nlist", str(nlist), "--dim", "16"], capsys)
        assert code == 2
        assert err.splitlines() == [f"mrl-dna: error: --nlist {nlist} exceeds the 150 rows to index (each IVF list is "
                                    "trained on its rows); pick --nlist <= 3 (39 rows per list), or leave it out for "
                                    "the default"]
        assert not Path(f"{b}.faiss").exists() and not Path(f"{b}.faiss.json").exists()
    code, _, err = run_cli(["index", b, "--kind", "ivf", "--nlist", "150", "--dim", "16"], capsys)
    assert code == 0 and "warning: --nlist 150 leaves fewer than 39 of the 150 rows per list" in err


def test_index_level_windows_is_a_separate_index_used_by_search_level_windows(tmp_path, capsys):
    pytest.importorskip("faiss")
    rng = np.random.default_rng(10)
    wv = [clustered(40, rng) for _ in range(3)]
    spans = [np.stack([np.arange(40) * 100, np.arange(40) * 100 + 512], axis=1).astype(np.int64)] * 3
    db = write_db(tmp_path / "w.h5", normalize(np.stack([w.mean(0) for w in wv])), windows=list(zip(spans, wv)))
    qf = write_db(tmp_path / "q.h5", clustered(4, rng), ids=["a", "b", "c", "d"])
    code, _, err = run_cli(["index", str(db), "--level", "windows", "--dim", "8", "--kind", "flat"], capsys)
    assert code == 0 and "120 of 120 windows" in err and Path(str(db) + ".windows.faiss").exists()
    assert not Path(str(db) + ".faiss").exists()  # the record-level index is another file
    _, exact, _ = run_cli(["search", str(qf), str(db), "--level", "windows", "--dim", "64", "-q"], capsys)
    code, out, err = run_cli(["search", str(qf), str(db), "--level", "windows", "--funnel", "8:120,64:10"], capsys)
    assert code == 0 and "FAISS flat index over dim 8" in err and "x 120 windows" in err
    assert [r[:3] + r[5:] for r in parse_tsv(out)[1]] == [r[:3] + r[5:] for r in parse_tsv(exact)[1]]
    code, _, err = run_cli(["search", str(qf), str(db), "--funnel", "8:3,64:3"], capsys)  # records: no index
    assert code == 0 and "FAISS" not in err


def test_hnsw_index_is_used_as_the_shortlist(dbs, capsys):
    pytest.importorskip("faiss")
    a, _, qf, *_ = dbs
    code, _, err = run_cli(["index", str(a), "--dim", "16", "--kind", "hnsw"], capsys)
    assert code == 0 and "hnsw, dim 16" in err
    _, exact, _ = run_cli(["search", str(qf), str(a), "--dim", "64", "-q"], capsys)
    # a shortlist as large as the DB (efSearch = 249 >= rows): the graph walk reaches every row
    code, out, err = run_cli(["search", str(qf), str(a), "--funnel", "16:249,64:10"], capsys)
    assert code == 0 and "FAISS hnsw index over dim 16" in err
    (_, got), (_, ref) = parse_tsv(out), parse_tsv(exact)
    assert [r[:3] for r in got] == [r[:3] for r in ref] and all(r[4] == "16,64" for r in got)


def test_fasta_queries_use_the_dbs_own_model_when_it_is_here(tmp_path, tiny_model, small_fasta, capsys):
    """search --help says FASTA queries are embedded with the DB's model: without --model it is the directory
    embed loaded (recorded in the DB), not the bundled one; when that is gone, one line asks for --model."""
    model_dir = tmp_path / "my_model"
    tiny_model.save_pretrained(model_dir)
    db = tmp_path / "db.h5"
    assert run_cli(["embed", small_fasta, "-o", db, "-m", model_dir, "-q"], capsys)[0] == 0
    code, out, err = run_cli(["search", small_fasta, db, "-k", "1", "-q"], capsys)
    assert code == 0, err
    assert [line.split("\t")[:2] for line in out.splitlines()[1:]] == [[r, r] for r in "abcde"]
    model_dir.rename(tmp_path / "moved")
    code, _, err = run_cli(["search", small_fasta, db, "-q"], capsys)
    assert code == 1 and "(missing)" in error_line(err) and "pass --model DIR of that model" in error_line(err)
    assert run_cli(["search", small_fasta, db, "-q", "-m", tmp_path / "moved"], capsys)[0] == 0


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _scan(q, x, k, monkeypatch, bf16: str, valid=None):
    monkeypatch.setenv("MRL_DNA_BF16_SCAN", bf16)
    return exact_search(q, ((s, x[s : s + 8192]) for s in range(0, len(x), 8192)), k=k, valid=valid)


def test_two_pass_bf16_scan_returns_the_fp32_scans_top_k(monkeypatch):
    """The bf16-then-fp32 scan (CPUs with native bf16) must stay exact: clusters of 8 near-duplicate rows
    (their scores within the bf16 error of each other), invalid rows, and a last block shorter than the others."""
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((3_000, 64)))
    x = _unit(np.repeat(centres, 8, axis=0) + 0.01 * rng.standard_normal((24_000, 64)))  # 8 near-ties each
    x = np.concatenate([x, _unit(rng.standard_normal((3_000, 64)))])
    valid = rng.random(len(x)) > 0.1
    q = _unit(x[rng.choice(len(x), 64)] + 0.05 * rng.standard_normal((64, 64)))
    calls = {"two": 0, "fp32": 0}
    real = exact_mod._two_pass

    def counted(*a):
        r = real(*a)
        calls["two" if r is not None else "fp32"] += 1
        return r

    monkeypatch.setattr(exact_mod, "_two_pass", counted)
    ref = _scan(q, x, 10, monkeypatch, "0", valid)
    got = _scan(q, x, 10, monkeypatch, "1", valid)
    assert calls["two"] > 0  # the two-pass scan ran on some blocks
    assert np.abs(got.scores - ref.scores).max() < 1e-5
    differ = got.rows != ref.rows  # only where two rows score the same to float precision
    assert np.all(np.abs(got.scores[differ] - ref.scores[differ]) < 1e-6)
    assert valid[got.rows].all()


def test_two_pass_bf16_scan_gives_up_on_rows_too_close_to_rank_in_bf16(monkeypatch):
    """3,000 rows within 1e-3 of one another: no bf16 shortlist of 64 can be proven to hold the top-k, so the
    blocks fall back to fp32 (and after 3 such blocks the scan stops trying); the result is still exact."""
    rng = np.random.default_rng(1)
    c = _unit(rng.standard_normal((1, 32)))
    x = _unit(np.repeat(c, 40_000, axis=0) + 1e-4 * rng.standard_normal((40_000, 32)))
    q = _unit(c + 0.01 * rng.standard_normal((32, 32)))
    tried = []
    real = exact_mod._two_pass
    monkeypatch.setattr(exact_mod, "_two_pass", lambda *a: tried.append(real(*a)) or tried[-1])
    ref = _scan(q, x, 5, monkeypatch, "0")
    got = _scan(q, x, 5, monkeypatch, "1")
    assert tried == [None, None, None]  # 5 blocks of 8,192 rows: gave up after 3
    assert np.abs(got.scores - ref.scores).max() < 1e-6


def test_fasta_query_from_a_pipe_is_read_once(tmp_path, tiny_model_dir, small_fasta, capsys):
    """search <(cat q.fa) DB: the HDF5-or-FASTA check read the pipe's first bytes, and the FASTA reader then
    said "text before the first '>' header" (issue 22, item 7); a named pipe is read once too."""
    db = tmp_path / "db.h5"
    assert run_cli(["embed", small_fasta, "-o", db, "-m", tiny_model_dir, "-q"], capsys)[0] == 0
    code, ref, err = run_cli(["search", small_fasta, db, "-k", "1", "-q"], capsys)
    assert code == 0, err
    with named_pipe(tmp_path / "q.pipe", small_fasta.read_bytes()) as pipe:
        code, out, err = run_cli(["search", pipe, db, "-k", "1", "-q"], capsys)
    assert code == 0, err
    assert out == ref


# ------------------------------------------------ issue 25: --match, measured auto/calibrate, the default index
def loci_of_genomes(rng: np.random.Generator, genomes: int = 20, loci: int = 150) -> np.ndarray:
    """(genomes * loci, D) vectors built as the shipped model's are: dims < D/2 say which genome (one centre per
    genome), dims >= D/2 which locus (one vector per locus, shared by every genome) and weigh 4x more. The
    full-width neighbours of a row are the same locus in other genomes, which no prefix <= D/2 ranks."""
    h = D // 2
    centre, locus = rng.standard_normal((genomes, h)), rng.standard_normal((loci, h))
    g, l = np.repeat(np.arange(genomes), loci), np.tile(np.arange(loci), genomes)
    x = np.concatenate([centre[g] + 0.05 * rng.standard_normal((len(g), h)),
                        2.0 * locus[l] + 0.3 * rng.standard_normal((len(g), h))], axis=1)
    return normalize(x).astype(np.float32)


def test_auto_and_calibrate_fall_back_to_exact_where_the_prefix_does_not_hold_the_neighbours(monkeypatch):
    """Issue 25: on the shipped model's 1M marker genes the auto funnel kept the exact top-10 for 59% of queries
    and took 22x the exact scan's time. Now auto and calibrate measure their plan on the DB and run the exact
    scan when it does not keep the exact top-k, whatever the time (MEASURE_PAYS: any time would pay)."""
    monkeypatch.setattr(funnel_mod, "MEASURE_PAYS", 1e9)
    db = Database.from_arrays(loci_of_genomes(np.random.default_rng(4)), matryoshka_dims=DIMS)
    big = dict(k=10, small_db_macs=0)
    for funnel, match in (("auto", "genome"), ("calibrate", "genome"), ("calibrate", "locus"), ("auto", "locus")):
        plan = plan_stages(db, funnel=funnel, match=match, **big)
        assert (plan.mode, plan.stages, plan.index) == (Mode.exact, (Stage(D, 10),), None), (funnel, match, plan)
        assert plan.why.startswith(f"exact at dim {D} (")
    plan = plan_stages(db, funnel="auto", match="genome", **big)
    assert "auto: the exact scan, since" in plan.why and "does not pay, measured on 100 DB rows" in plan.why
    # what it measured is true: the default prefix funnel loses most exact top-10s on this DB
    trial = measure_plans(db, [(default_funnel(db.n, DIMS, 10, small_db_macs=0), None)], k=10)[0]
    assert trial.exact_share < 0.5 and not trial.pays


def test_auto_keeps_a_prefix_funnel_where_the_prefix_holds_the_neighbours_unless_it_is_slower(monkeypatch):
    """Issue 25: where the prefix does rank the neighbours (here dims >= 8 are noise), auto --match genome keeps
    the default funnel (it keeps the exact top-10 of >= 99% of DB rows); a plan slower than the exact scan
    (MEASURE_PAYS 0: no time pays) is never kept, by auto or calibrate."""
    rng = np.random.default_rng(5)
    x = normalize(np.concatenate([normalize(rng.standard_normal((3000, 8))), 1e-3 * rng.standard_normal((3000, D - 8))], 1))
    db = Database.from_arrays(x.astype(np.float32), matryoshka_dims=DIMS)
    big = dict(k=10, small_db_macs=0, match="genome")
    monkeypatch.setattr(funnel_mod, "MEASURE_PAYS", 1e9)
    plan = plan_stages(db, funnel="auto", **big)
    assert plan.mode is Mode.funnel and plan.stages[0].dim == 8 and "auto: measured on 100 DB rows: 100% got" in plan.why
    assert plan_stages(db, funnel="calibrate", **big).mode is Mode.funnel
    monkeypatch.setattr(funnel_mod, "MEASURE_PAYS", 0.0)
    for funnel in ("auto", "calibrate"):
        plan = plan_stages(db, funnel=funnel, **big)
        assert (plan.mode, plan.stages) == (Mode.exact, (Stage(D, 10),)) and "does not pay" in plan.why


def test_trial_pays_only_with_the_exact_top_k_and_less_time():
    t = dict(stages=(Stage(D, 10),), n_queries=100)
    assert Trial(seconds=0.5, exact_seconds=1.0, exact_share=0.99, **t).pays
    assert not Trial(seconds=0.5, exact_seconds=1.0, exact_share=0.98, **t).pays  # below the recall promised
    assert not Trial(seconds=0.9, exact_seconds=1.0, exact_share=1.0, **t).pays  # not faster than exact enough
    assert not Trial(seconds=2.0, exact_seconds=1.0, exact_share=1.0, **t).pays


def test_default_index_is_exact_over_the_full_width_and_search_match_picks_the_index(tmp_path, capsys):
    """Issue 25: `mrl-dna index DB` built a flat index over dim 16 and the README steered users to an HNSW over
    dim 64, which on the shipped model holds genome neighbours, not a gene's. Now the default is the exact
    rotated index over the full width (no FAISS): search --match locus (the default) uses it and prints the
    exact scan's hits, and ignores an index over a prefix (with a warning); --match genome uses a prefix index.
    An IVF index over the full width measures its nprobe at build time."""
    rng = np.random.default_rng(6)
    x = loci_of_genomes(rng, genomes=100, loci=700)  # 70,000 rows x 64: above the small-DB scan (4M mult-adds)
    db = write_db(tmp_path / "big.h5", x)
    qf = write_db(tmp_path / "q.h5", x[::3500], ids=[f"q{i}" for i in range(20)])
    code, _, err = run_cli(["index", str(db)], capsys)
    assert code == 0 and f"(pca, dim {D}, 70,000 of 70,000 records, head " in err, err
    assert "measured on 200 DB rows: 100.0% got their exact top-10" in err
    meta = json.loads(Path(f"{db}.faiss.json").read_text())
    assert (meta["kind"], meta["dim"], meta["tune_queries"], meta["exact_share"]) == ("pca", D, 200, 1.0)
    _, exact, _ = run_cli(["search", str(qf), str(db), "--no-index", "-q"], capsys)
    code, out, err = run_cli(["search", str(qf), str(db)], capsys)
    assert code == 0 and f"funnel {D}:10 (first stage: pca index over dim {D})" in err or "does not pay" in err, err
    (_, got), (_, ref) = parse_tsv(out), parse_tsv(exact)
    assert [r[:3] for r in got] == [r[:3] for r in ref]
    np.testing.assert_allclose([float(r[3]) for r in got], [float(r[3]) for r in ref], atol=2e-6)
    pytest.importorskip("faiss")
    code, _, err = run_cli(["index", str(db), "--kind", "ivf", "--nlist", "64", "--force"], capsys)
    assert code == 0 and f"(ivf, dim {D}, 70,000 of 70,000 records, nlist 64, nprobe " in err
    assert json.loads(Path(f"{db}.faiss.json").read_text())["tune_queries"] == 200
    assert run_cli(["index", str(db), "--dim", "8", "--kind", "flat", "--force", "-q"], capsys)[0] == 0
    code, out, err = run_cli(["search", str(qf), str(db)], capsys)
    assert code == 0 and out == exact and "warning: ignoring the FAISS index over dim 8: a prefix does not hold" in err
    code, out, err = run_cli(["search", str(qf), str(db), "--match", "genome"], capsys)
    assert code == 0 and "FAISS flat index over dim 8" in err


def test_an_index_built_from_another_directory_is_found(dbs, capsys, monkeypatch):
    """Issue 25: the .json recorded the index's path as given to `index` (relative to where it ran), so a search
    from another directory called the index damaged and scanned. The index beside the DB is read wherever it
    was built from."""
    a, _, qf, *_ = dbs
    monkeypatch.chdir(a.parent)
    assert run_cli(["index", a.name, "--dim", "8", "--kind", "pca", "--force", "-q"], capsys)[0] == 0  # a relative path
    monkeypatch.chdir(a.parent.parent)
    code, _, err = run_cli(["search", str(qf), str(a), "--funnel", "8:250,64:10"], capsys)
    assert code == 0 and "damaged" not in err and "(first stage: pca index over dim 8)" in err
