"""Smoke tests of the held-out benchmark scripts (scripts/bench_{cluster,retrieval,windows}.py) on the shared
genomes: a few fragments, cheap methods only (the tiny random model, the 4-mer profile), markdown and JSON out."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir() and os.environ.get("MRL_DNA_SHARED"):
    SHARED = Path(os.environ["MRL_DNA_SHARED"])

pytestmark = pytest.mark.shared_data


def _script(name: str):
    if not (SHARED / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared data not found at {SHARED} (set MRL_DNA_SHARED)")
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_cluster_model_rows_at_every_dim_and_json(tiny_model_dir, tmp_path, capsys):
    pytest.importorskip("sklearn")
    out = tmp_path / "c.json"
    _script("bench_cluster").main(["--model", f"tiny={tiny_model_dir}", "--baselines", "4mer", "--quick",
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
    _script("bench_retrieval").main(["--set", "all", "--quick", "--no-model", "--baselines", "4mer",
                                     "--per-genome", "1", "--data", str(SHARED), "--json", str(out)])
    md = capsys.readouterr().out
    assert "genome set 'small'" in md and "species top-1 @30%" in md and "| 4-mer profile | 136 |" in md
    assert json.loads(out.read_text())["config"]["divergences"] == [0.0, 0.05, 0.1, 0.2, 0.3]


def test_bench_windows_quick_without_aligners(capsys):
    _script("bench_windows").main(["--quick", "--no-model", "--baselines", "4mer", "--aligners", "none",
                                   "--per-genome", "1", "--divergence", "0", "--data", str(SHARED)])
    md = capsys.readouterr().out
    assert "12 references (10 species)" in md and "| 4-mer profile | 136 | 100.0 |" in md
