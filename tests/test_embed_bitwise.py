"""Vectors do not depend on batch composition, bit for bit, at 2 threads (issue 12, item 9): a record embedded
alone, among other records in any order, in a shard that is then merged, or in a resumed run gets exactly
the vector of one plain run; nor on the thread count (issue 16 between 1 and 2 with the tiny model; issue 22
with the default model at 1, 2 and 3 threads, where its head's GEMM over a batch of 9 windows had given other
last bits at 2 threads: records, --per-file, --save-windows, encode, shards and a resume at other counts).
(Before fixed-shape batches a short record alone in a batch differed from the same record in a full batch in
the last bits: shard + merge was not the single run.)

The 2-thread runs happen in one subprocess started with OMP_WAIT_POLICY=PASSIVE (this file run as a script):
on a shared 2-core machine whose other core is busy, two spinning OpenMP threads made the same work 50x
slower (20 s instead of 0.4 s), and the wait policy must be set before torch loads OpenMP. The tests then
compare what it wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dataclasses import replace

import numpy as np
import pytest

from mrl_dna import dna, runtime
from mrl_dna.embed import EmbedOptions, embed_fasta, embed_sequences
from mrl_dna.embed.pipeline import bucket_length
from mrl_dna.embed.pipeline import _HOLD_BATCHES
from mrl_dna.inputs.fasta import Record, read_fasta
from mrl_dna.store import EmbeddingStore, merge_stores

from conftest import SAMPLE_FA, random_dna

# a mix that puts records in different batches and buckets: full windows (tiny model: 256 bp), short
# records of many lengths (1-3 bp included), an all-N and an empty record
LENGTHS = [3000, 100, 2, 700, 5000, 40, 256, 1500, 90, 257, 10, 600, 1, 3, 130, 900]
BATCH = 1024  # bases per batch: 4 full windows of the tiny model, so records spread over many batches


def mixed_fasta(path: Path) -> Path:
    rng = np.random.default_rng(12)
    seqs = [random_dna(rng, n) for n in LENGTHS]
    seqs.insert(5, "N" * 400)
    seqs.insert(9, "")
    path.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


def tail_fasta(path: Path) -> Path:
    """A long record, then tiny ones: with 2 shards the second holds only the tiny ones, which in one run
    share a batch with the long record's last windows."""
    rng = np.random.default_rng(5)
    path.write_text(f">long\n{random_dna(rng, 1500)}\n>t2\nAC\n>t3\nGTA\n>t40\n{random_dna(rng, 40)}\n")
    return path


# Bases per batch of the thread-count runs: 9 windows of the default model's 2,048 bp, a GEMM shape whose last
# bits followed the thread count (MKL on the project's AMD EPYC: 5 to 11 rows at 2 threads), and whose short
# buckets give other row counts (1,664 bp: 11 rows, 1,024 bp: 18, ...).
NINE_WINDOWS = 9 * 2048
THREADS = (1, 2, 3)


# ------------------------------------------------------------------------------ the 2-thread runs (subprocess)


def _embed_all_ways(out: Path) -> None:
    """Run as `python tests/test_embed_bitwise.py OUT`: every layout at torch.set_num_threads(2)."""
    import torch

    import mrl_dna.embed.run as embed_mod
    import mrl_dna.store as store_mod
    from conftest import tiny_config
    from mrl_dna.model import MrlDnaModel

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = MrlDnaModel(tiny_config()).eval()
    fa = mixed_fasta(out / "mixed.fa")
    recs = list(read_fasta([fa]))
    vectors = {}
    for layout, batches in (("together", [recs]), ("alone", [[r] for r in recs]), ("reversed", [recs[::-1]]),
                            ("shuffled", [[recs[i] for i in np.random.default_rng(0).permutation(len(recs))]])):
        for batch in batches:
            for r in embed_sequences(batch, model=model, options=EmbedOptions(batch_tokens=BATCH, device="cpu")):
                vectors[f"{layout}/{r.id}"] = r.vector
    torch.set_num_threads(1)  # --threads auto picks 1 or 2 on a 2-core machine: the same bits (issue 16)
    for r in embed_sequences(recs, model=model,
                             options=EmbedOptions(batch_tokens=BATCH, save_windows=True, device="cpu")):
        vectors[f"one_thread/{r.id}"] = r.vector
    torch.set_num_threads(2)
    np.savez(out / "vectors.npz", **vectors)

    for src in (fa, tail_fasta(out / "tail.fa")):
        embed_fasta([src], model=model, output=out / f"{src.stem}.h5",
                    options=EmbedOptions(device="cpu", batch_tokens=BATCH))
        for n in (2, 3):
            parts = [out / f"{src.stem}.{i}of{n}.h5" for i in range(1, n + 1)]
            for i, part in enumerate(parts, 1):
                embed_fasta([src], model=model, output=part,
                            options=EmbedOptions(device="cpu", shard=(i, n), batch_tokens=BATCH))
            merge_stores(parts, out / f"{src.stem}.merged{n}.h5")

    real_append, calls = store_mod.EmbeddingWriter.append, {"n": 0}

    def dies_after_two_flushes(self, recs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real_append(self, recs)

    embed_mod._FLUSH_RECORDS = 3
    store_mod.EmbeddingWriter.append = dies_after_two_flushes
    try:
        embed_fasta([fa], model=model, output=out / "resumed.h5",
                    options=EmbedOptions(device="cpu", batch_tokens=BATCH))
    except KeyboardInterrupt:
        pass
    store_mod.EmbeddingWriter.append = real_append
    s = embed_fasta([fa], model=model, output=out / "resumed.h5",
                    options=EmbedOptions(device="cpu", batch_tokens=BATCH))
    assert s.resumed == 6, s


def _default_model_at_each_thread_count(out: Path) -> None:
    """Run as part of `python tests/test_embed_bitwise.py OUT`: the default model at 1, 2 and 3 threads (embed
    rows, --save-windows, --per-file, encode), shard i of 3 at i threads, and a run interrupted at one count and
    resumed at another."""
    import torch

    import mrl_dna
    import mrl_dna.embed.run as embed_mod
    import mrl_dna.store as store_mod

    runtime.available_cpus = lambda: max(THREADS)  # 3 threads are 3 batch workers even on a 2-core machine
    model = mrl_dna.load_model()
    rng = np.random.default_rng(22)
    seqs = [random_dna(rng, n) for n in (30000, 1700, 900, 5000, 2048, 12000, 100, 4100)]
    fa = out / "threads.fa"
    fa.write_text(SAMPLE_FA.read_text() + "".join(f">s{i}\n{q}\n" for i, q in enumerate(seqs)))
    files = []
    for i in range(3):  # --per-file: genomes of several contigs
        files.append(out / f"genome{i}.fa")
        files[-1].write_text("".join(f">c{j}\n{q}\n" for j, q in enumerate(seqs[i::3])))
    m, opts = model.module, EmbedOptions(device="cpu", batch_tokens=NINE_WINDOWS)
    for t in THREADS:
        torch.set_num_threads(t)
        embed_fasta([fa], model=m, output=out / f"records.t{t}.h5", options=replace(opts, save_windows=True))
        embed_fasta(files, model=m, output=out / f"files.t{t}.h5",
                    options=replace(opts, save_windows=True, per_file=True))
        embed_fasta([fa], model=m, output=out / f"default.t{t}.h5",
                    options=EmbedOptions(device="cpu"))  # 32 windows a batch
        np.save(out / f"encode.t{t}.npy", model.encode(_sequences(fa), batch_size=9))
        embed_fasta([fa], model=m, output=out / f"shard{t}of3.h5", options=replace(opts, shard=(t, 3)))
    merge_stores([out / f"shard{t}of3.h5" for t in THREADS], out / "shards.merged.h5")

    real_append, calls = store_mod.EmbeddingWriter.append, {"n": 0}

    def dies_after_two_flushes(self, recs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real_append(self, recs)

    # a batch worker's first op a GEMM (no torch op before it to set the thread's MKL count): one thread?
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((9, 2080)).astype(np.float32))
    torch.set_num_threads(1)
    gemms = {"one thread": model.module.head(x).detach().numpy()}
    torch.set_num_threads(2)
    with runtime.batch_threads(), ThreadPoolExecutor(1, initializer=runtime.one_op_thread) as pool:
        gemms["batch worker"] = pool.submit(lambda: model.module.head(x).detach().numpy()).result()
    np.savez(out / "gemms.npz", **gemms)

    embed_mod._FLUSH_RECORDS = 3
    store_mod.EmbeddingWriter.append = dies_after_two_flushes
    torch.set_num_threads(1)
    try:
        embed_fasta([fa], model=m, output=out / "resumed.threads.h5", options=replace(opts, save_windows=True))
    except KeyboardInterrupt:
        pass
    store_mod.EmbeddingWriter.append = real_append
    torch.set_num_threads(2)
    s = embed_fasta([fa], model=m, output=out / "resumed.threads.h5", options=replace(opts, save_windows=True))
    assert s.resumed == 6, s


def _sequences(fa: Path) -> list[str]:
    return [dna.decode(r.tokens) for r in read_fasta([fa])]


@pytest.fixture(scope="module")
def two_thread_runs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bitwise")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def _rows(path: Path) -> np.ndarray:
    with EmbeddingStore.open(path) as s:
        return s.read(normalize=False)


def test_record_alone_or_in_any_batch_is_bitwise_the_same(two_thread_runs):
    v = np.load(two_thread_runs / "vectors.npz")
    ids = [k.split("/", 1)[1] for k in v.files if k.startswith("together/")]
    assert len(ids) == len(LENGTHS) + 2
    for layout in ("alone", "reversed", "shuffled"):
        for rid in ids:
            a, b = v[f"{layout}/{rid}"], v[f"together/{rid}"]
            assert np.array_equal(a, b), (layout, rid, float(np.abs(a - b).max()))


def test_one_and_two_threads_give_the_same_bits(two_thread_runs):
    """The head runs inside the fixed-shape batch (pipeline.py), so no GEMM's shape follows a record's window
    count; with it the thread count (1 or 2) no longer moves the last bits."""
    v = np.load(two_thread_runs / "vectors.npz")
    for key in (k for k in v.files if k.startswith("together/")):
        a, b = v[key], v[key.replace("together/", "one_thread/")]
        assert np.array_equal(a, b), (key, float(np.abs(a - b).max()))


@pytest.mark.parametrize("name", ["mixed", "tail"])
def test_shards_merged_equal_one_run_bitwise(two_thread_runs, name):
    one = _rows(two_thread_runs / f"{name}.h5")
    for n in (2, 3):
        assert np.array_equal(_rows(two_thread_runs / f"{name}.merged{n}.h5"), one), n


def test_a_resumed_run_equals_one_run_bitwise(two_thread_runs):
    assert np.array_equal(_rows(two_thread_runs / "resumed.h5"), _rows(two_thread_runs / "mixed.h5"))


def _windows(path: Path) -> np.ndarray:
    with EmbeddingStore.open(path) as s:
        return s.windows().read(normalize=False)


@pytest.mark.parametrize("run", ["records", "files", "default"])
def test_vectors_are_the_same_bits_at_1_2_and_3_threads(two_thread_runs, run):
    """Issue 22: at 2 threads the default model's vectors had moved by up to 3e-8 (its head's GEMM over a
    batch of 9 windows summed in another order). Every op now runs on one thread, the threads run batches."""
    one = _rows(two_thread_runs / f"{run}.t1.h5")
    for t in THREADS[1:]:
        other = _rows(two_thread_runs / f"{run}.t{t}.h5")
        assert np.array_equal(other, one), (run, t, float(np.abs(other - one).max()))
        if run != "default":  # --save-windows
            assert np.array_equal(_windows(two_thread_runs / f"{run}.t{t}.h5"), _windows(two_thread_runs / f"{run}.t1.h5"))


def test_encode_is_embed_bit_for_bit_at_every_thread_count(two_thread_runs):
    """encode is embed without --save-windows: for the default (k-mer-only) model, the pooled path (issue 24)."""
    rows = _rows(two_thread_runs / "default.t1.h5")
    for t in THREADS:
        assert np.array_equal(np.load(two_thread_runs / f"encode.t{t}.npy"), rows), t


def test_a_batch_worker_multiplies_on_one_thread(two_thread_runs):
    """torch keeps MKL's thread count per thread: a new thread whose first op was a GEMM ran it on all cores
    (other bits at 9 rows) although torch.get_num_threads() said 1; runtime.one_op_thread sets it first."""
    g = np.load(two_thread_runs / "gemms.npz")
    assert np.array_equal(g["batch worker"], g["one thread"])


def test_shards_at_other_thread_counts_merge_to_one_run(two_thread_runs):
    """Shard i of 3 embedded at i threads, merged: the file of one run (at any count; without --save-windows the
    default model takes the pooled path, whose bits follow neither the batch size nor the threads)."""
    assert np.array_equal(_rows(two_thread_runs / "shards.merged.h5"), _rows(two_thread_runs / "default.t2.h5"))


def test_pooled_and_per_window_paths_agree_to_float_rounding(two_thread_runs):
    """The default model's rows without --save-windows (head once per record on the pooled profile, issue 24)
    and with it (head per window, then pooled): the same maths, other rounding."""
    pooled, per_window = _rows(two_thread_runs / "default.t1.h5"), _rows(two_thread_runs / "records.t1.h5")
    assert np.abs(pooled - per_window).max() < 1e-6


def test_a_run_resumed_at_another_thread_count_equals_one_run(two_thread_runs):
    """Interrupted at 1 thread, resumed at 2 (--threads 0 picks by the machine's load): no mix of two roundings."""
    resumed, one = two_thread_runs / "resumed.threads.h5", two_thread_runs / "records.t1.h5"
    assert np.array_equal(_rows(resumed), _rows(one))
    assert np.array_equal(_windows(resumed), _windows(one))


# ------------------------------------------------------------------------------ how: fixed batch shapes


def test_batches_have_one_shape_per_window_length(tiny_model, tmp_path, monkeypatch):
    """What makes the above hold: every batch the encoder sees has the shape (batch_tokens // L, L) for its
    bucket L, whatever the records around it (the last batch of a bucket is filled up)."""
    shapes = []
    real = tiny_model.window_vectors

    def spy(tokens, lengths):
        shapes.append(tuple(tokens.shape))
        return real(tokens, lengths)

    monkeypatch.setattr(tiny_model, "window_vectors", spy)
    list(embed_sequences(read_fasta([mixed_fasta(tmp_path / "m.fa")]), model=tiny_model,
                         options=EmbedOptions(batch_tokens=BATCH, device="cpu")))
    assert shapes and all(rows == BATCH // L for rows, L in shapes), shapes
    assert {L for _, L in shapes} == {bucket_length(min(n, 256), 256) for n in LENGTHS}


def test_bucket_lengths():
    assert [bucket_length(n, 2048) for n in (1, 64, 65, 96, 97, 128, 129, 200, 257, 600, 1500, 1537, 2047, 2048,
                                             5000)] == [64, 64, 80, 96, 112, 128, 144, 208, 288, 640, 1536, 1664,
                                                        2048, 2048, 2048]
    assert bucket_length(100, 80) == 80  # never longer than the window
    for n in range(65, 3000, 7):  # holds the window, a multiple of 16, wastes less than 1/8 (plus a 16 bp step)
        b = bucket_length(n, 2048)
        assert min(n, 2048) <= b and b % 16 == 0 and (b == 2048 or b < n * 1.125 + 16)
    assert len({bucket_length(n, 2048) for n in range(1, 2049)}) == 37  # 8 shapes per octave above 128


def test_a_record_waiting_in_a_part_filled_batch_does_not_hold_all_later_records(tiny_model):
    """Output keeps input order, so records wait behind a short one whose bucket rarely fills; once they hold
    enough bases its batch runs filled up, and the first record comes out long before the input ends
    (memory stays bounded)."""
    rng = np.random.default_rng(3)
    recs = [Record("short", "", dna.encode(random_dna(rng, 30)), "t")]
    recs += [Record(f"long{i}", "", dna.encode(random_dna(rng, 2000)), "t") for i in range(120)]
    read = []

    def source():
        for r in recs:
            read.append(r.id)
            yield r

    first = next(embed_sequences(source(), model=tiny_model, options=EmbedOptions(batch_tokens=BATCH, device="cpu")))
    held = _HOLD_BATCHES * BATCH // 2000 + 2  # records of 2,000 bp held behind it: 128 batches of 1,024 bases
    assert first.id == "short" and len(read) <= held < len(recs)


if __name__ == "__main__":
    _embed_all_ways(Path(sys.argv[1]))
    _default_model_at_each_thread_count(Path(sys.argv[1]))
