"""Smoke tests of the held-out benchmark scripts (scripts/bench/{cluster,retrieval,windows}.py) on the shared
genomes: a few fragments, cheap methods only (the tiny random model, the 4-mer profile), markdown and JSON out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import script_module

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir() and os.environ.get("MRL_DNA_SHARED"):
    SHARED = Path(os.environ["MRL_DNA_SHARED"])

pytestmark = pytest.mark.shared_data


def _script(name: str):
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set MRL_DNA_SHARED)")
    return script_module(f"scripts/bench/{name}.py")


def test_bench_cluster_model_rows_at_every_dim_and_json(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "c.json"
    _script("cluster").main(["--model", f"tiny={tiny_model_dir}", "--baselines", "4mer", "--quick",
                                   "--per-species", "3", "--kmeans-seeds", "0", "--data", str(SHARED),
                                   "--json", str(out)])
    md = capsys.readouterr().out
    rows = [r.split("|")[1:3] for r in md.splitlines() if r.startswith("| tiny") or r.startswith("| 4-mer")]
    assert [(m.strip(), d.strip()) for m, d in rows] == [("tiny", "4"), ("tiny", "8"), ("tiny", "16"),
                                                         ("4-mer profile", "136")]
    d = json.loads(out.read_text())
    assert d["benchmark"] == "cluster" and len(d["scores"]) == 4 and d["scores"][0]["n_species"] == 19
    assert d["meta"]["threads"] == 1 and "Machine:" in md and "19 species" in md


def test_bench_retrieval_issue11_set(tmp_path, capsys):
    out = tmp_path / "r.json"
    _script("retrieval").main(["--set", "all", "--quick", "--no-model", "--baselines", "4mer",
                                     "--per-genome", "1", "--data", str(SHARED), "--json", str(out)])
    md = capsys.readouterr().out
    assert "genome set 'small'" in md and "species top-1 @30%" in md and "| 4-mer profile | 136 |" in md
    assert json.loads(out.read_text())["config"]["divergences"] == [0.0, 0.05, 0.1, 0.2, 0.3]


def test_bench_windows_quick_without_aligners(capsys):
    _script("windows").main(["--quick", "--no-model", "--baselines", "4mer", "--aligners", "none",
                                   "--per-genome", "1", "--divergence", "0", "--data", str(SHARED)])
    md = capsys.readouterr().out
    assert "12 references (10 species)" in md and "| 4-mer profile | 136 | 100.0 |" in md


def test_bench_dist_times_each_run_on_the_first_rows(tmp_path, capsys):
    """scripts/bench/dist.py on a 30-row file: each run's wall time, peak RSS and lines (no shared data needed)."""
    import shutil

    import numpy as np

    from conftest import write_store
    from mrl_dna.vectors import normalize_rows

    if not shutil.which("/usr/bin/time"):
        pytest.skip("/usr/bin/time not installed (GNU time)")
    x = normalize_rows(np.random.default_rng(0).standard_normal((30, 16)))
    db = write_store(tmp_path / "db.h5", x, dims=(8, 16))
    mod = script_module("scripts/bench/dist.py")
    mod.main([str(db), "--sizes", "20", "--big", "30", "--dim", "8", "--min-sim", "0.2", "--json", str(tmp_path / "d.json")])
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ") and r[2].isdigit()]
    assert len(rows) == 5 and "| 20 | A A, --dim 8 -> /dev/null | 400 | 400 |" in rows[0]
    d = json.loads((tmp_path / "d.json").read_text())
    assert [r["n"] for r in d["rows"]] == [20] * 4 + [30] and all(r["peak_rss_mib"] > 0 for r in d["rows"])
    assert d["rows"][2]["lines"] == 190  # dist A: each pair once
