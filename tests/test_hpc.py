"""HPC runs: `torchrun -m mrl_dna embed` (2 gloo CPU processes) == one process, kill -9 at several moments
then rerun == an uninterrupted run, and the torch.distributed glue of mrl_dna/distributed.py.

Both end-to-end tests run the real command in subprocesses (`python -m mrl_dna`, `python -m
torch.distributed.run` = torchrun) on a tiny model, and compare every dataset of the HDF5 files bitwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mrl_dna.embed.distributed import shard_output
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.model import load_model
from mrl_dna.store import EmbeddingStore, partial_path

from conftest import assert_same_datasets, random_dna

_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "TORCHELASTIC_RUN_ID")


def _env(**extra) -> dict[str, str]:
    """The test's environment without torchrun's variables (pytest itself may run under a launcher)."""
    env = {k: v for k, v in os.environ.items() if k not in _TORCHRUN_ENV}
    env.update({"OMP_NUM_THREADS": "1", "MRL_DNA_DEBUG": "", **extra})
    return env


def _mrl(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mrl_dna", *map(str, args)], capture_output=True, text=True,
                          env=_env(), timeout=120, **kw)


def _torchrun(nproc: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "mrl_dna", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=180)


def _fasta(path: Path, n: int, *, seed: int, lo: int = 20, hi: int = 900, special: bool = True) -> Path:
    """n records of random lengths in [lo, hi); with special, one empty and one all-N record in the middle."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        seq = random_dna(rng, int(rng.integers(lo, hi)))
        if special and i == n // 3:
            seq = ""
        if special and i == n // 2:
            seq = "N" * 400
        parts.append(f">r{i} test record\n{seq}\n" if seq else f">r{i}\n")
    path.write_text("".join(parts))
    return path


# ------------------------------------------------------------------------------------------ torchrun


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(tmp_path, tiny_model_dir):
    fa = _fasta(tmp_path / "in.fa", 60, seed=3)
    single, multi = tmp_path / "single.h5", tmp_path / "multi.h5"
    r = _mrl("embed", fa, "-o", single, "-m", tiny_model_dir, "--threads", "1", "-q")
    assert r.returncode == 0, r.stderr
    r = _torchrun(2, "embed", fa, "-o", multi, "-m", tiny_model_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    # one footer (rank 0) with the whole job's counts; ranks > 0 are quiet
    footers = [line for line in r.stderr.splitlines() if line.startswith("[mrl-dna ")]
    assert len(footers) == 1 and "60 records, 1 empty, 1 all-N" in footers[0] and "2 x cpu" in footers[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.fa", "multi.h5", "single.h5"]  # shard files removed
    # Bitwise: each window's vector is computed independently of its batch neighbours, both runs use one
    # thread per process (torchrun sets OMP_NUM_THREADS=1; --threads 1 here), and merge copies rows bit for bit.
    assert_same_datasets(single, multi)
    with EmbeddingStore.open(multi) as s:
        assert s.complete and s.attrs["shard"] == "" and s.n == 60


@pytest.mark.slow
def test_torchrun_a_failing_rank_stops_every_rank_with_one_line(tmp_path, tiny_model_dir, tiny_model):
    """Rank 1 finds a finished shard file of another run in its way: it fails, rank 0 does not hang at the
    merge, both exit non-zero with one line each, and nothing looks complete."""
    fa = _fasta(tmp_path / "in.fa", 12, seed=4, special=False)
    other = _fasta(tmp_path / "other.fa", 12, seed=5, special=False)
    out = tmp_path / "out.h5"
    embed_fasta([other], model=tiny_model, output=shard_output(out, 1, 2),
                options=EmbedOptions(device="cpu", shard=(2, 2)))
    r = _torchrun(2, "embed", fa, "-o", out, "-m", tiny_model_dir)
    assert r.returncode != 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("mrl-dna: error: ")]
    assert len(errors) == 2, r.stderr
    assert any("out.h5.rank1of2 is a finished shard of another run" in e for e in errors), errors
    assert any("1 of 2 torchrun ranks failed" in e for e in errors), errors
    assert "mrl-dna: internal error" not in r.stderr
    assert not out.exists()


# ------------------------------------------------------------------------------------------ kill -9


def _rows_committed(partial: Path) -> int:
    with EmbeddingStore.open(partial, allow_incomplete=True) as s:
        return s.n


@pytest.mark.slow
def test_kill_minus_9_at_several_moments_then_rerun_is_bitwise_identical(tmp_path, tiny_model_dir):
    """SIGKILL the real command (a) as soon as OUT.h5.partial appears, (b) 0.3 s later, (c) 0.7 s later,
    rerunning the same command each time; the file the last rerun finishes equals an uninterrupted run."""
    fa = _fasta(tmp_path / "many.fa", 1500, seed=6, lo=40, hi=400)
    out = tmp_path / "out.h5"
    partial = partial_path(out)
    cmd = [sys.executable, "-m", "mrl_dna", "embed", str(fa), "-o", str(out), "-m", str(tiny_model_dir),
           "--threads", "1", "-q"]
    env = _env(MRL_DNA_FLUSH_RECORDS="4")  # many small flushes: the kills land between and inside them

    committed = []
    for delay in (0.0, 0.3, 0.7):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t_end = time.monotonic() + 60
        seen = partial.exists()  # from the previous kill: wait until this run has started writing
        size0 = partial.stat().st_size if seen else -1
        while time.monotonic() < t_end and proc.poll() is None:
            if partial.exists() and (not seen or partial.stat().st_size != size0):
                break
            time.sleep(0.005)
        time.sleep(delay)
        assert proc.poll() is None, f"the run finished before the kill at +{delay} s; make the input bigger"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close(), proc.stderr.close()
        # killed: a partial only, never a file that looks complete
        assert not out.exists() and partial.exists()
        with pytest.raises(StoreError, match="is incomplete|cannot be opened"):  # the latter: killed mid-create
            EmbeddingStore.open(partial)
        with pytest.raises(StoreError, match="interrupted run; rerun the same `mrl-dna embed` command"):
            EmbeddingStore.open(out)
        try:
            committed.append(_rows_committed(partial))
        except StoreError:  # killed while h5py was still creating the file: the rerun starts over
            committed.append(0)
    assert committed[-1] < 1500

    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and not partial.exists()

    ref = tmp_path / "ref.h5"
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # the same thread count as the subprocesses
    try:
        embed_fasta([fa], model=load_model(tiny_model_dir), output=ref, options=EmbedOptions(device="cpu"))
    finally:
        torch.set_num_threads(prev)
    assert_same_datasets(ref, out)
    with EmbeddingStore.open(out) as s:
        assert s.complete and s.n == 1500


def test_flush_records_env_is_checked(tmp_path, tiny_model, small_fasta, monkeypatch):
    monkeypatch.setenv("MRL_DNA_FLUSH_RECORDS", "0")
    with pytest.raises(ConfigError, match="MRL_DNA_FLUSH_RECORDS='0' must be a whole number >= 1"):
        embed_fasta([small_fasta], model=tiny_model, output=tmp_path / "x.h5", options=EmbedOptions(device="cpu"))
    assert list(tmp_path.iterdir()) == [small_fasta]  # refused before any file is written


# ------------------------------------------------------------------------------------------ distributed.py


