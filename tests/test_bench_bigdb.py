"""Smoke test of scripts/bench/bigdb.py (the larger-than-RAM search benchmark) at toy size: the DB it builds is
a valid embedding file of the source's rows plus jittered copies, and its table scores each run against exact."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from mrl_dna.store import EmbeddingStore

REPO = Path(__file__).resolve().parents[1]


def test_bench_bigdb_builds_real_rows_then_copies_and_scores_runs(tiny_model_dir, small_fasta, tmp_path):
    src, big = tmp_path / "src.h5", tmp_path / "big.h5"
    subprocess.run([sys.executable, "-m", "mrl_dna", "embed", str(small_fasta), "-o", str(src), "-q",
                    "--model", str(tiny_model_dir)], check=True)
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench" / "bigdb.py"), "--vectors", str(src),
                        "--rows", "12", "--out", str(big), "--queries", str(small_fasta), "--db-queries", "4",
                        "--run", "", "--run", "index", "--run", ""],
                       capture_output=True, text=True, check=True)
    with EmbeddingStore.open(src) as s, EmbeddingStore.open(big) as b:
        ids = [str(x) for x in b.ids]
        ok = [str(x) for x, st in zip(s.ids, s.status) if st == 0]
        assert b.n == 12 and ids[: len(ok)] == ok and ids[len(ok)].endswith("#c1")
        assert b.model_hash == s.model_hash
        v = b.read(None)
        assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
        assert np.array_equal(v[: len(ok)], s.read(None, rows=np.flatnonzero(np.asarray(s.status) == 0)))
    for label in (small_fasta.name, "4 DB rows"):  # reference, default, default over the index: all exact
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith(f"| {label} |")]
        assert len(lines) == 3 and all(ln.endswith("| 1.000 | 1.000 |") for ln in lines), p.stdout
    assert any(ln.startswith("| - | `index` | pca dim ") for ln in p.stdout.splitlines()), p.stdout
