"""Smoke test of scripts/gpu/homology.py (issue 20's GPU check) on the CPU: with --device cpu it compares the CPU
with itself, so every path of the script runs here and every agreement must be exact."""

from __future__ import annotations

import json

from conftest import script_module


def test_gpu_homology_script_runs_every_step_on_the_cpu_and_agrees_with_itself(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    script_module("scripts/gpu/homology.py").main(["--device", "cpu", "--quick", "--out", str(tmp_path),
                                                   "--tmp", str(work)])
    r = json.loads((tmp_path / "homology_gpu.json").read_text())
    assert r["best_hits"]["same_best_window"] == 1.0 and r["best_hits"]["max_abs_cosine_diff"] == 0.0
    assert r["search"]["same_targets_ranks_n_best"] and r["search"]["lines"] >= r["search"]["queries"]
    assert r["dist"]["ani_within_0.01"] and r["dist"]["compared_pairs"] == 3 and r["dist"]["cpu again"]["pairs"] == 6
    table = (tmp_path / "homology_gpu.md").read_text()
    assert "| search --level windows -k 5 | 2 whole-genome queries |" in table
    assert not list(work.iterdir())  # the genomes and embedding files are removed
