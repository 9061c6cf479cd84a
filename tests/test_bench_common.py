"""Benchmark plumbing (scripts/bench/common.py): model specs, baselines, methods at every dim, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrl_dna.evaluate import retrieval as ev
from mrl_dna.errors import ConfigError

from conftest import script_module

eb = script_module("scripts/bench/common.py")


# ---- methods ---------------------------------------------------------------------------------------------
def test_model_specs():
    assert eb.parse_model_spec("v2=runs/v2/model") == eb.ModelSpec("v2", "runs/v2/model")
    assert eb.parse_model_spec("default") == eb.ModelSpec("default", None)
    assert eb.parse_model_spec("ablation=default") == eb.ModelSpec("ablation", None)
    assert eb.parse_model_spec("runs/x/model/") == eb.ModelSpec("model", "runs/x/model/")
    with pytest.raises(ConfigError, match=r"--model 'v2=' is not NAME=DIR"):
        eb.parse_model_spec("v2=")


def test_baselines():
    assert eb.parse_baselines(eb.ALL_BASELINES) == tuple(eb.Baseline)
    assert eb.parse_baselines("none") == () and eb.parse_baselines("") == ()
    with pytest.raises(ConfigError, match=r"--baselines \['5mer'\] unknown; pick from 4mer,6mer,6mer-rp512,tnf,v1"):
        eb.parse_baselines("4mer,5mer")


def test_build_methods_every_dim_baselines_and_v1_scored_once(tiny_model_dir):
    ms = eb.build_methods([eb.ModelSpec("new", str(tiny_model_dir))], tuple(eb.Baseline), v1_dir=tiny_model_dir)
    assert [m.name for m in ms.methods] == ["new", "4-mer profile", "6-mer profile", "6-mer profile -> random 512-d",
                                            "TNF (DNABERT-S)"]
    assert ms.methods[0].dims == (4, 8, 16)  # every Matryoshka dim of the tiny model (the last = full width)
    assert ms.notes == [f"v1 has the same weights as new (sha256 {ms.models['new']['weights_hash'][:12]}); scored once"]
    ms = eb.build_methods([], (eb.Baseline.V1,), v1_dir=tiny_model_dir)
    assert [m.name for m in ms.methods] == ["v1"] and not ms.notes
    with pytest.raises(ConfigError, match="v1 baseline model not found"):
        eb.build_methods([], (eb.Baseline.V1,), v1_dir=tiny_model_dir / "nope")
    with pytest.raises(ConfigError, match="two methods are named 'x'"):
        eb.build_methods([eb.ModelSpec("x", str(tiny_model_dir))] * 2, ())


def test_json_of_dataclasses_numpy_and_nan(tmp_path):
    s = ev.Score("m", 8, 2000, 0.1, 3, 0.5, float("nan"), ((5, 1.0),), 4)
    path = tmp_path / "r.json"
    eb.write_json(path, {"scores": [s], "a": np.arange(2), "x": np.float32(0.5), "cfg": ev.FragmentConfig()})
    d = json.loads(path.read_text())
    assert d["scores"][0]["genome_top1"] is None and d["scores"][0]["recall"] == [[5, 1.0]]
    assert d["a"] == [0, 1] and d["x"] == 0.5 and d["cfg"]["divergences"] == [0.0, 0.05, 0.1, 0.2]


def test_run_records_name_no_machine_path(tiny_model_dir):
    """bench/heldout/*.json named absolute paths of the machine that ran them (its work and temp folders)."""
    assert eb.portable(eb.REPO / "bench" / "models" / "v1") == "bench/models/v1"
    assert eb.portable("/scratch/v21/model") == ".../v21/model" and eb.portable("runs/v21/model") == "runs/v21/model"
    cmd = [str(eb.REPO / "scripts" / "bench" / "cluster.py"), "--model", "v2=/scratch/v21/model", "--json",
           "/scratch/full/c.json", "--threads", "1"]
    assert eb.portable_command(cmd) == "scripts/bench/cluster.py --model v2=.../v21/model --json .../full/c.json --threads 1"
    ms = eb.build_methods([], (eb.Baseline.V1,), v1_dir=tiny_model_dir)
    assert not ms.models["v1"]["path"].startswith("/")
