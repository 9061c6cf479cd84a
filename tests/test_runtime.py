"""How a run uses the machine (mrl_dna/runtime.py): --threads auto and the allocator settings."""

from __future__ import annotations

import torch

from mrl_dna import runtime


def test_auto_threads_leaves_busy_cores_and_shares_among_local_ranks(monkeypatch):
    monkeypatch.setattr(runtime, "available_cpus", lambda: 8)
    monkeypatch.setattr(runtime, "busy_cpus", lambda seconds=0.1: 2.6)
    assert runtime.auto_threads()[0] == 5  # 8 CPUs, ~3 busy
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    threads, why = runtime.auto_threads()
    assert threads == 2 and "2 local ranks" in why
    monkeypatch.setattr(runtime, "busy_cpus", lambda seconds=0.1: 8.0)
    assert runtime.auto_threads()[0] == 1  # never 0


def test_set_threads_explicit_auto_and_omp_num_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(runtime, "auto_threads", lambda: (1, "test"))
        assert runtime.set_threads(0) == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own setting stands
        torch.set_num_threads(1)
        assert runtime.set_threads(0) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_machine_readings_are_sane():
    assert 1 <= runtime.available_cpus() <= (torch.get_num_threads() + 1024)
    busy = runtime.busy_cpus(0.01)
    assert 0.0 <= busy
    assert runtime.tune_allocator() in (True, False) and runtime.tune_allocator() == runtime.tune_allocator()


def test_set_threads_when_an_import_of_faiss_failed(monkeypatch):
    """sys.modules["faiss"] is None after a failed or blocked import: --threads must not touch it (CI, where
    FAISS is not installed, hit an internal error in `mrl-dna index` here)."""
    before = torch.get_num_threads()
    monkeypatch.setitem(__import__("sys").modules, "faiss", None)
    try:
        assert runtime.set_threads(1) == 1
    finally:
        torch.set_num_threads(before)
