"""The embedding engine (mrl_dna/embed/pipeline.py): the prefetch thread, batches in flight, the head inside the
fixed-shape batch, stage times, and the scripts that measure it (scripts/bench/pipeline.py, scripts/gpu/bench.py on a CPU)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from mrl_dna import dna
from mrl_dna.embed import EmbedOptions, embed_fasta, embed_sequences
from mrl_dna.errors import InputError
from mrl_dna.inputs.fasta import Record, read_fasta
from mrl_dna.embed.pipeline import StageTimes, embedded_windows, prefetched
from mrl_dna.windows import WindowConfig

from conftest import REPO, random_dna, script_module


def _records(n: int = 40, seed: int = 3) -> list[Record]:
    """Records of many lengths (short ones in several buckets, long ones over several batches), one all-N."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([1, 30, 70, 100, 200, 256, 257, 600, 1500, 3000], size=n)
    recs = [Record(f"r{i}", "", dna.encode(random_dna(rng, int(L))), "t") for i, L in enumerate(lengths)]
    recs.insert(7, Record("n", "", dna.encode("N" * 300), "t"))
    return recs


def _rows(model, recs, **kw):
    options = EmbedOptions(batch_tokens=1024, save_windows=True, device="cpu", **kw)
    return [(r.id, r.status, r.vector, r.window_vectors) for r in embed_sequences(recs, model=model, options=options)]


def _same(a, b) -> None:
    assert [x[:2] for x in a] == [y[:2] for y in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[2], y[2])
        if x[3] is not None or y[3] is not None:
            np.testing.assert_array_equal(x[3], y[3])


def test_prefetch_thread_gives_the_same_vectors_bit_for_bit(tiny_model):
    recs = _records()
    _same(_rows(tiny_model, recs, prefetch=False), _rows(tiny_model, recs, prefetch=True))


def test_batches_in_flight_give_the_same_records_in_order(tiny_model):
    """depth > 0 (the GPU's asynchronous results, here on the CPU): records wait for batches still in flight
    and come out in input order with the same bits."""
    recs = _records()
    cfg = WindowConfig(size=256, stride=256)

    def run(depth):
        out = []
        for p in embedded_windows(((r, None) for r in recs), model=tiny_model, cfg=cfg, batch_tokens=1024,
                                  dev=torch.device("cpu"), depth=depth):
            out.append((p.id, None if p.values is None else p.values.copy()))
        return out

    a, b = run(0), run(3)
    assert [x[0] for x in a] == [x[0] for x in b] == [r.id for r in recs]
    for (_, x), (_, y) in zip(a, b):
        if x is None:
            assert y is None
        else:
            np.testing.assert_array_equal(x, y)


def test_head_runs_in_the_batch_not_per_record(tiny_model):
    """A record's stored window vectors are the head's outputs over the fixed-shape batch: equal to the
    head over the windows cut by hand (to rounding), and its vector is the length-weighted centroid."""
    rng = np.random.default_rng(0)
    rec = Record("x", "", dna.encode(random_dna(rng, 1000)), "t")
    (er,) = embed_sequences([rec], model=tiny_model,
                            options=EmbedOptions(batch_tokens=1024, save_windows=True, device="cpu"))
    pieces = [rec.tokens[s:e] for s, e in er.window_spans]
    from mrl_dna.windows import pad_windows

    tok, lens = (torch.from_numpy(a) for a in pad_windows(pieces))
    with torch.no_grad():
        direct = tiny_model.window_outputs(tiny_model.window_vectors(tok, lens)).numpy()
        seg = torch.zeros(len(pieces), dtype=torch.long)
        rv = tiny_model.record_vectors(tiny_model.window_vectors(tok, lens), lens, seg, 1)[0].numpy()
    np.testing.assert_allclose(er.window_vectors, direct, atol=1e-6)
    np.testing.assert_allclose(er.vector, rv, atol=1e-6)


def test_prefetch_raises_the_readers_error_in_the_caller(tmp_path, tiny_model):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>b\nAC1T\n")
    with pytest.raises(InputError, match="position 3"):
        list(embed_sequences(read_fasta([bad]), model=tiny_model, options=EmbedOptions(prefetch=True, device="cpu")))
    assert not [t for t in threading.enumerate() if t.name == "mrl-dna-prefetch"]


@pytest.fixture
def two_torch_threads(monkeypatch):
    """torch's thread count 2 (what --threads 2 sets) on any machine: the pipeline then runs batches in two
    worker threads, every op on one thread (no OpenMP region runs at 2, so no spinning on a busy machine)."""
    from mrl_dna import runtime

    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _batch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mrl-dna-batch")]


def test_worker_threads_give_the_same_vectors_and_leave_torch_as_it_was(tiny_model, two_torch_threads, monkeypatch):
    recs = _records()
    seen = []
    real = tiny_model.window_vectors

    def spy(tokens, lengths):
        seen.append((threading.current_thread().name, torch.get_num_threads()))
        return real(tokens, lengths)

    monkeypatch.setattr(tiny_model, "window_vectors", spy)
    two = _rows(tiny_model, recs)
    monkeypatch.undo()
    assert {name.startswith("mrl-dna-batch") for name, _ in seen} == {True} and {n for _, n in seen} == {1}
    assert torch.get_num_threads() == 2 and not _batch_threads()  # restored, workers gone
    torch.set_num_threads(1)
    _same(_rows(tiny_model, recs), two)


def test_an_error_in_a_worker_thread_is_raised_in_the_caller(tiny_model, two_torch_threads, monkeypatch):
    def boom(tokens, lengths):
        raise RuntimeError("boom in a batch")

    monkeypatch.setattr(tiny_model, "window_vectors", boom)
    with pytest.raises(RuntimeError, match="boom in a batch"):
        _rows(tiny_model, _records())
    assert torch.get_num_threads() == 2 and not _batch_threads()


def test_prefetched_stops_its_worker_when_closed():
    seen = []

    def items():
        for i in range(10_000):
            seen.append(i)
            yield i

    it = prefetched(items(), depth=4)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert not [t for t in threading.enumerate() if t.name == "mrl-dna-prefetch"]
    assert len(seen) < 100


def test_stage_times_of_embed_fasta(tmp_path, tiny_model, small_fasta):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: every batch runs on this thread (batch workers time the model elsewhere)
    try:
        s = embed_fasta([small_fasta], model=tiny_model, output=tmp_path / "o.h5", options=EmbedOptions(device="cpu"))
    finally:
        torch.set_num_threads(threads)
    st = s.stages
    assert isinstance(st, StageTimes) and st.seconds["model"] > 0 and st.seconds["scan"] > 0
    lines = st.report(s.bp, s.seconds)
    assert lines[0].split()[:2] == ["stage", "seconds"] and lines[-1].startswith("wall")
    assert [ln.split()[0] for ln in lines[1:-1]] == ["scan", "read", "windows", "batch", "model", "wait", "pool",
                                                     "write", "other"]


def test_embed_profile_prints_the_stage_table(tmp_path, cli, tiny_model_dir, small_fasta):
    code, out, err = cli("embed", small_fasta, "-o", tmp_path / "o.h5", "-m", tiny_model_dir, "--profile",
                         "--threads", "1")
    assert code == 0 and out == ""
    assert "stage" in err and "\nmodel " in err and "\nwall " in err


def test_bench_pipeline_null_model_runs(tmp_path, capsys):
    mod = script_module("scripts/bench/pipeline.py")
    import sys

    argv = sys.argv
    sys.argv = ["scripts/bench/pipeline.py", str(REPO / "data" / "sample.fa"), "--model", "null", "--threads", "1"]
    try:
        mod.main()
    finally:
        sys.argv = argv
    out = capsys.readouterr().out
    assert "| read |" in out and "| model |" in out and "8 records, 171,408 bp" in out


def test_bench_gpu_script_smoke_on_cpu(tmp_path, capsys):
    mod = script_module("scripts/gpu/bench.py")
    mod.main(["--device", "cpu", "--quick", "--no-compile", "--no-torchrun", "--models", "default",
              "--out", str(tmp_path)])
    md = (tmp_path / "bench_gpu.md").read_text()
    assert "## model alone" in md and "## whole pipeline" in md and "150 bp reads" in md
