"""Tests for mrl_dna/compare/dist.py (and compare/text.py, compare/matrix.py) and the `dist` command.

Properties: every printed similarity is the matrix product of the stored normalised prefixes (6 decimals), the
distance is arccos(similarity) / pi, `dist A` prints each pair once and `dist A A` is symmetric string for
string, blocks of any size give the same bytes, the matrix and PHYLIP outputs are square and symmetric with a
1 / 0 diagonal, --min-sim filters. CLI: one error line and exit 1 for each user mistake; no torch import.
"""

from __future__ import annotations

import gzip
import importlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, write_store
from mrl_dna.compare import angular_distance, dist, text
from mrl_dna.vectors import normalize_rows

DIMS = (8, 16, 32)
dist_mod = importlib.import_module("mrl_dna.compare.dist")  # the module (the package exports the function)


@pytest.fixture
def db(tmp_path):
    """40 rows in 4 groups (close within a group), one all-N row without a vector."""
    rng = np.random.default_rng(3)
    centers = rng.standard_normal((4, 32))
    x = normalize_rows(centers[np.arange(40) % 4] + 0.3 * rng.standard_normal((40, 32)))
    status = ["ok"] * 40
    status[7] = "all_n"
    ids = [f"g{i}" for i in range(40)]
    return write_store(tmp_path / "a.h5", x, dims=DIMS, status=status, ids=ids), x, ids


def cosines(x: np.ndarray, k: int) -> np.ndarray:
    """The exact cosines of the stored normalised float32 prefixes (computed in float64)."""
    xk = normalize_rows(x[:, :k]).astype(np.float64)
    xk /= np.linalg.norm(xk, axis=1, keepdims=True)
    return xk @ xk.T


def parse_long(out: str) -> dict[tuple[str, str], tuple[float, float]]:
    lines = out.splitlines()
    assert lines[0] == "#query\ttarget\tsimilarity\tdistance"
    rows = [line.split("\t") for line in lines[1:]]
    return {(q, t): (float(s), float(d)) for q, t, s, d in rows}


def test_fixed6_writes_what_printf_writes():
    x = np.concatenate([np.random.default_rng(0).uniform(-1, 1, 5000), [0.0, -0.0, 1.0, -1.0, 0.5, -1e-9, 0.9999996]])
    got = [text.compact(row[None, :]).decode() for row in text.fixed6(x)]
    want = [f"{v:.6f}" for v in x]
    diff = [(g, w) for g, w in zip(got, want) if g != w]
    assert all(abs(float(g) - float(w)) <= 1.0000001e-6 for g, w in diff)
    assert len(diff) <= 3  # "-0.000000" for -1e-9 and the odd tie at the 7th decimal


@pytest.mark.parametrize("dim", [None, 8])
def test_dist_of_one_file_is_each_pair_once_equal_to_the_matrix_product(db, tmp_path, dim):
    path, x, ids = db
    out = tmp_path / "d.tsv"
    s = dist(path, dim=dim, output=out)
    k = dim or 32
    pairs = parse_long(out.read_text())
    kept = [i for i in range(40) if i != 7]
    assert s.n_queries == 39 and s.skipped == 1 and len(pairs) == 39 * 38 // 2 == s.lines == s.pairs_scored
    S = cosines(x, k)
    for a, i in enumerate(kept):
        for j in kept[a + 1 :]:
            sim, d = pairs[(ids[i], ids[j])]
            assert abs(sim - S[i, j]) <= 1.0000001e-6 and abs(d - angular_distance(S[i, j])) <= 1.0000001e-6
    assert not any(ids[7] in p for p in pairs)


def test_dist_a_a_is_symmetric_and_blocks_do_not_change_a_byte(db, tmp_path, monkeypatch):
    path, x, ids = db
    whole = tmp_path / "whole.tsv"
    dist(path, path, output=whole)
    pairs = parse_long(whole.read_text())
    assert len(pairs) == 39 * 39
    assert all(pairs[(q, t)] == pairs[(t, q)] for q, t in pairs)  # printed values equal, not only close
    assert all(pairs[(q, q)] == (1.0, 0.0) for q, _ in pairs)
    monkeypatch.setattr(dist_mod, "block_rows", lambda m, per_value=48: 3)  # 13 blocks of queries
    monkeypatch.setattr(dist_mod, "LINES_PER_STEP", 7)
    small = tmp_path / "small.tsv"
    dist(path, path, output=small)
    assert small.read_bytes() == whole.read_bytes()
    one = tmp_path / "one.tsv"
    dist(path, output=one)  # the self case in blocks: still each pair once
    assert len(parse_long(one.read_text())) == 39 * 38 // 2


def test_matrix_and_phylip_are_square_symmetric_with_their_diagonal(db, tmp_path):
    path, x, ids = db
    m = tmp_path / "m.tsv"
    dist(path, fmt="matrix", dim=16, output=m)
    lines = m.read_text().splitlines()
    kept = [ids[i] for i in range(40) if i != 7]
    assert lines[0].split("\t") == ["#query", *kept]
    cells = [line.split("\t") for line in lines[1:]]
    assert [c[0] for c in cells] == kept and all(len(c) == 40 for c in cells)
    M = np.array([[float(v) for v in c[1:]] for c in cells])
    S = cosines(np.delete(x, 7, axis=0), 16)
    np.testing.assert_allclose(M, S, atol=1.0000001e-6)
    assert [c[1:] for c in cells] == [list(r) for r in zip(*[c[1:] for c in cells])]  # symmetric, string for string
    assert all(cells[i][i + 1] == "1.000000" for i in range(39))
    p = tmp_path / "m.phy"
    dist(path, fmt="phylip", dim=16, output=p)
    lines = p.read_text().splitlines()
    assert lines[0].strip() == "39"
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == kept
    assert lines[1].startswith("g0         0.000000 ")  # name padded to 10 characters, then the distances
    D = np.array([[float(v) for v in r[1:]] for r in rows])
    np.testing.assert_allclose(D, angular_distance(S), atol=1.0000001e-6)
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0)


def test_min_sim_keeps_the_close_pairs_and_gzip_output(db, tmp_path):
    path, x, ids = db
    all_pairs = parse_long(dist_text(path))
    out = tmp_path / "close.tsv.gz"
    s = dist(path, min_sim=0.5, output=out)
    close = parse_long(gzip.decompress(out.read_bytes()).decode())
    assert close == {p: v for p, v in all_pairs.items() if v[0] >= 0.5} and 0 < len(close) < len(all_pairs)
    assert s.pairs_scored == len(all_pairs) and s.lines == len(close)


def dist_text(path) -> str:
    out = path.parent / "all.tsv"
    dist(path, output=out, force=True)
    return out.read_text()


def test_cli_dist_and_its_errors(db, tmp_path, cli):
    path, x, ids = db
    code, out, err = cli("dist", path, "--dim", "8", "--min-sim", "0.9")
    assert code == 0 and out.startswith("#query\ttarget\tsimilarity\tdistance\n")
    assert "39 x 39 rows at dim 8: 741 pairs scored" in err and "1 row has no vector" in err
    other = write_store(tmp_path / "o.h5", x[:5], dims=DIMS, model_hash="b" * 64, model_name="other")
    existing = tmp_path / "exists.tsv"
    existing.write_text("keep\n")
    for args, expect in [
        ([path, other], "were embedded with two models"),
        ([path, "--dim", "64"], "dim 64 is outside 1..32"),
        ([path, "--format", "matrix", "--min-sim", "0.5"], "--min-sim drops pairs from the long table"),
        ([path, path, "--format", "phylip"], "square distance matrix of one file"),
        ([path, "-o", existing], "already exists; pass --force"),
        ([path, "-o", path, "-f"], "would destroy"),
        ([path, "--device", "tpu"], "--device 'tpu' is not a device"),
    ]:
        code, out, err = cli("dist", *args)
        lines = err.strip().splitlines()
        assert code == 1 and out == "" and len(lines) == 1 and expect in lines[0], (args, err)
    assert existing.read_text() == "keep\n"
    code, _, err = cli("dist", path, "--format", "tree")
    assert code == 2


def test_output_to_a_device_or_pipe_is_written_in_place_never_replaced(db, tmp_path, cli):
    """-o /dev/null must stay /dev/null: a rename of OUT.partial onto it once replaced the device with a file.
    Checked on a named pipe (the same kind of path, harmless if it regressed)."""
    import os
    import stat
    import threading

    path, *_ = db
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, _, err = cli("dist", path, "--dim", "8", "-o", fifo, "-f")
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not (tmp_path / "pipe.partial").exists()
    assert got and got[0].startswith(b"#query\ttarget") and got[0].count(b"\n") == 1 + 39 * 38 // 2
    code, _, err = cli("embed", REPO / "data" / "sample.fa", "-o", fifo, "-f")  # HDF5 needs a real file
    assert code == 1 and "is not a regular file" in err and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_dist_and_cluster_do_not_import_torch(db):
    path, *_ = db
    code = (f"import sys; from mrl_dna.cli import main\n"
            f"for args in (['dist', {str(path)!r}, '-q'], ['cluster', {str(path)!r}, '--min-sim', '0.9', '-q'],\n"
            f"             ['merge', '--concat', {str(path)!r}, '-o', {str(path.parent / 'c.h5')!r}, '-q']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0, args\n"
            "assert 'torch' not in sys.modules; print('light', file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.stderr.strip().endswith("light"), r.stderr[-2000:]


def test_dist_of_one_file_given_as_both_arguments_warns_that_pairs_repeat(db, tmp_path, cli):
    """dist A A (also through a link) is the full A x A table, self pairs and both orders: allowed (two roles, as
    asked), with a warning pointing to `dist A`, which prints each pair once."""
    path, x, ids = db
    link = tmp_path / "link.h5"
    link.symlink_to(path)
    code, out, err = cli("dist", path, link, "--dim", "8")
    assert code == 0 and f"{path} and {link} are one file: every pair is printed twice" in err
    assert out.count("\n") == 1 + 39 * 39
    code, _, err = cli("dist", path, "--dim", "8")
    assert code == 0 and "printed twice" not in err
