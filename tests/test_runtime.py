"""How a run uses the machine (mrl_dna/runtime.py): --threads auto and the allocator settings."""

from __future__ import annotations

import pytest
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


def test_threads_beyond_the_cpus_are_clamped_with_a_warning(monkeypatch, capsys):
    """Issue 22: --threads 999 on 2 cores ran ~100x slower without a word; it now uses the 2, and says so."""
    from mrl_dna.compare import set_blas_threads

    monkeypatch.setattr(runtime, "available_cpus", lambda: 1)
    before = torch.get_num_threads()
    try:
        assert runtime.set_threads(999) == 1 and torch.get_num_threads() == 1
        err = capsys.readouterr().err
        assert err == ("mrl-dna: warning: --threads 999 is more than the 1 CPU this process may use (oversubscribed "
                       "threads run many times slower); using 1\n"), err
        set_blas_threads(64)  # dist, cluster
        assert "--threads 64 is more than the 1 CPU" in capsys.readouterr().err
        assert runtime.set_threads(1) == 1 and capsys.readouterr().err == ""
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


def test_auto_threads_on_a_busy_machine_prints_no_line_of_its_own(monkeypatch, tmp_path, capsys):
    """On a busy machine auto chose 1 thread and said so on a line of its own before every error line: each
    error then took two lines of stderr (CI failed 12 tests so while a training job ran). The choice is now
    part of embed's one-line summary."""
    from mrl_dna.cli import main as cli_main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    monkeypatch.setattr(runtime, "busy_cpus", lambda seconds=0.1: 1.9)
    before = torch.get_num_threads()
    try:
        fa = tmp_path / "a.fa"
        fa.write_text("this is not a FASTA file\n")
        monkeypatch.setattr("sys.argv", ["mrl-dna", "embed", str(fa), "-o", str(tmp_path / "a.h5")])
        try:
            cli_main()
        except SystemExit:
            pass
        err = capsys.readouterr().err
        assert err.startswith("mrl-dna: error:") and err.count("\n") == 1, err
        assert runtime.set_threads(0) == 1 and "1 CPUs" not in runtime.thread_note()
        assert runtime.thread_note().startswith("1 thread: 2 CPUs, 1.9 busy")
        assert runtime.set_threads(1) == 1 and runtime.thread_note() == ""
    finally:
        torch.set_num_threads(before)


def test_fast_bf16_follows_the_override_and_reads_the_cpu_flags_once(monkeypatch):
    monkeypatch.setenv("MRL_DNA_BF16_SCAN", "0")
    assert runtime.fast_bf16() is False
    monkeypatch.setenv("MRL_DNA_BF16_SCAN", "1")
    assert runtime.fast_bf16() is True
    monkeypatch.delenv("MRL_DNA_BF16_SCAN")
    monkeypatch.setattr(runtime, "_BF16", None)
    first = runtime.fast_bf16()
    monkeypatch.setattr("builtins.open", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read twice")))
    assert runtime.fast_bf16() == first in (True, False)


def test_one_blas_thread_sets_numpys_blas_to_one_thread_and_back():
    """embed's pooled head (issue 24) multiplies on one BLAS thread, so its bits never follow the thread count;
    found without threadpoolctl's ~0.1 s scan of every loaded library, every OpenBLAS of the process (the first
    version set only the first one found)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    import numpy as np  # noqa: F401 (loads numpy's BLAS)

    try:  # another OpenBLAS in the process (scipy's wheels bundle their own): the full suite had one loaded
        import scipy.linalg  # noqa: F401
    except ImportError:
        pass

    def openblas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["internal_api"] == "openblas"]

    if not openblas_threads():
        pytest.skip("numpy here does not use OpenBLAS (one_blas_thread then goes through threadpoolctl)")
    with threadpool_limits(limits=2, user_api="blas"):  # as on a 2-core machine without OMP_NUM_THREADS
        assert set(openblas_threads()) == {2}
        with runtime.one_blas_thread():
            assert set(openblas_threads()) == {1}
        assert set(openblas_threads()) == {2}
