"""embed's pooled k-mer path (issue 24): a k-mer-only model with a linear head and mean pooling (the bundled
default) embeds a record by one head call on its pooled profile when no window vectors are saved.

Its vectors must be those of the per-window path to float rounding (< 1e-6, against mrl-dna 0.1.0's own vectors
of data/sample.fa kept in tests/data), and the same bits whatever the threads, the chunks the records are counted
in, the records beside them, a shard or a resume.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrl_dna import runtime
from mrl_dna.embed import EmbedOptions, embed_fasta, embed_files, embed_sequences
from mrl_dna.embed import pooled
from mrl_dna.inputs.fasta import read_fasta
from mrl_dna.model import KmerLinearModel, load_embedder, load_model
from mrl_dna.model.loader import DEFAULT_MODEL_DIR
from mrl_dna.store import EmbeddingStore, merge_stores

from conftest import REPO, SAMPLE_FA, random_dna
from test_embed import _interrupt_after

# mrl-dna 0.1.0's vectors of data/sample.fa (main before issue 24: head per 2 kb window, then pooled)
SAMPLE_VECTORS_0_1_0 = Path(__file__).parent / "data" / "sample_vectors_0.1.0.npy"
# 64 bp windows: a 20 kb record has ~310, more than one GROUP_WINDOWS group, cheaply
SMALL = EmbedOptions(window=64, device="cpu")


@pytest.fixture(scope="module")
def kmer_model() -> KmerLinearModel:
    return load_embedder(None)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Long records (several groups of windows at --window 64), short ones, 1-3 bp, an N-rich, an empty one."""
    rng = np.random.default_rng(24)
    seqs = [random_dna(rng, n) for n in (20000, 700, 2, 130, 9000, 64, 65, 1, 3000, 12000)]
    seqs.insert(4, "N" * 300)
    seqs.insert(6, "")
    seqs.insert(8, random_dna(rng, 500) + "N" * 200 + random_dna(rng, 9000))
    path = tmp_path_factory.mktemp("pooled") / "mixed.fa"
    path.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    return path


def _vectors(model, records, options=SMALL) -> dict[str, np.ndarray]:
    return {r.id: r.vector for r in embed_sequences(records, model=model, options=options)}


def _rows(path: Path) -> np.ndarray:
    with EmbeddingStore.open(path) as s:
        return s.read(normalize=False)


def test_default_model_loads_for_embed_as_its_kmer_linear_form_with_the_same_identity():
    light, full = load_embedder(None), load_model(None)
    assert isinstance(light, KmerLinearModel)
    assert light.info == full.info  # the weights hash too: resume and merge see one model
    assert load_embedder(None, save_windows=True).__class__ is full.__class__


def test_pooled_vectors_are_within_1e6_of_mrl_dna_0_1_0_on_sample_fa(kmer_model):
    """The README's statement: the pooled path moves vectors only in their last bits (float rounding)."""
    got = np.stack(list(_vectors(kmer_model, read_fasta([SAMPLE_FA]), EmbedOptions(device="cpu")).values()))
    before = np.load(SAMPLE_VECTORS_0_1_0)
    assert got.shape == before.shape
    assert np.abs(got - before).max() < 1e-6


def test_pooled_and_per_window_paths_agree_on_records_with_many_window_groups(kmer_model, mixed):
    per_window = _vectors(load_model(None), read_fasta([mixed]), SMALL)
    for rid, v in _vectors(kmer_model, read_fasta([mixed])).items():
        assert np.abs(v - per_window[rid]).max() < 1e-6, rid


def test_pooled_vectors_are_the_same_bits_alone_in_any_order_chunking_and_thread_count(kmer_model, mixed, monkeypatch):
    recs = list(read_fasta([mixed]))
    one = _vectors(kmer_model, recs)
    layouts = {"alone": [v for r in recs for v in _vectors(kmer_model, [r]).items()],
               "reversed": list(_vectors(kmer_model, recs[::-1]).items())}
    monkeypatch.setattr(pooled, "CHUNK_BASES", 100)  # a chunk per piece: other neighbours in every count
    monkeypatch.setattr(pooled, "CHUNK_WINDOWS", 3)
    layouts["small chunks"] = list(_vectors(kmer_model, recs).items())
    monkeypatch.setattr(runtime, "chosen_threads", lambda: 2)
    layouts["2 threads, small chunks"] = list(_vectors(kmer_model, recs).items())
    monkeypatch.undo()
    monkeypatch.setattr(runtime, "chosen_threads", lambda: 3)
    layouts["3 threads"] = list(_vectors(kmer_model, recs).items())
    for name, items in layouts.items():
        assert len(items) == len(one)
        for rid, v in items:
            assert np.array_equal(v, one[rid]), (name, rid, float(np.abs(v - one[rid]).max()))


def test_a_torch_model_and_its_kmer_linear_form_embed_the_same_bits(kmer_model, mixed):
    """One code path for the maths: a loaded MrlDnaModel passed to embed takes the pooled path too."""
    a, b = _vectors(kmer_model, read_fasta([mixed])), _vectors(load_model(None), read_fasta([mixed]), SMALL)
    b = _vectors(load_model(None), read_fasta([mixed]))
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_pooled_shards_merged_and_a_resumed_run_equal_one_run_bitwise(kmer_model, mixed, tmp_path, monkeypatch):
    one = tmp_path / "one.h5"
    embed_fasta([mixed], model=kmer_model, output=one, options=SMALL)
    parts = [tmp_path / f"part{i}.h5" for i in (1, 2, 3)]
    for i, part in enumerate(parts, 1):
        monkeypatch.setattr(runtime, "chosen_threads", lambda i=i: i)  # shard i at i threads
        embed_fasta([mixed], model=kmer_model, output=part, options=EmbedOptions(window=64, device="cpu", shard=(i, 3)))
    merge_stores(parts, tmp_path / "merged.h5")
    assert np.array_equal(_rows(tmp_path / "merged.h5"), _rows(one))

    _interrupt_after(2, monkeypatch, lambda: embed_fasta([mixed], model=kmer_model, output=tmp_path / "resumed.h5",
                                                         options=SMALL), records_per_flush=3, error=KeyboardInterrupt)
    s = embed_fasta([mixed], model=kmer_model, output=tmp_path / "resumed.h5", options=SMALL)
    assert s.resumed == 6
    assert np.array_equal(_rows(tmp_path / "resumed.h5"), _rows(one))


def test_pooled_per_file_row_of_one_record_is_that_records_vector(kmer_model, mixed):
    recs = list(read_fasta([mixed]))
    alone = _vectors(kmer_model, recs)
    files = [(r.id, [r]) for r in recs] + [("all", recs), ("none", [])]
    rows = {er.id: er for er in embed_files(files, model=kmer_model, options=SMALL)}
    for r in recs:
        assert np.array_equal(rows[r.id].vector, alone[r.id]), r.id
    assert rows["none"].status == "empty"
    per_window = {er.id: er.vector for er in embed_files(files, model=load_model(None),
                                                         options=EmbedOptions(window=64, device="cpu", save_windows=True))}
    assert np.abs(rows["all"].vector - per_window["all"]).max() < 1e-6
    assert rows["all"].n_windows == sum(rows[r.id].n_windows for r in recs)


def test_save_windows_keeps_the_pooled_record_vectors_and_saves_the_per_window_ones(kmer_model, mixed):
    """Merging issues 20 and 24: with --save-windows the records had gone back to the per-window path, so a
    genome's vector differed (~1e-7) with and without saved windows. The record vectors stay the pooled path's
    bit for bit; the saved windows (at their own stride) are the per-window path's, per record and per file."""
    import torch

    from mrl_dna.embed import records
    from mrl_dna.embed.stages import StageTimes

    recs = list(read_fasta([mixed]))[:9]
    opts = EmbedOptions(window=64, device="cpu", save_windows=True, windows_stride=16)
    got = list(embed_sequences(recs, model=kmer_model, options=opts))
    plain = list(embed_sequences(recs, model=kmer_model, options=SMALL))
    with torch.inference_mode():
        batched = list(records._batched_sequences(recs, kmer_model.torch_model(), opts, None, StageTimes(), 0))
    assert any(b.window_vectors is not None and len(b.window_vectors) for b in batched)
    for a, p, b in zip(got, plain, batched, strict=True):
        assert np.array_equal(a.vector, p.vector) and a.status == p.status
        if b.window_vectors is None:
            assert a.window_vectors is None
        else:
            assert np.array_equal(a.window_vectors, b.window_vectors) and np.array_equal(a.window_spans, b.window_spans)
    files = [("f0", recs[:4]), ("empty", []), ("f1", recs[4:])]
    got = list(embed_files(files, model=kmer_model, options=opts))
    plain = list(embed_files(files, model=kmer_model, options=SMALL))
    with torch.inference_mode():
        batched = list(records._batched_files(files, kmer_model.torch_model(), opts, None, StageTimes(), 0))
    for a, p, b in zip(got, plain, batched, strict=True):
        assert np.array_equal(a.vector, p.vector)
        if b.window_vectors is not None:
            assert np.array_equal(a.window_vectors, b.window_vectors)
            assert np.array_equal(a.window_contigs, b.window_contigs)


def test_pooled_profile_counts_the_worker_threads_model_seconds(kmer_model, mixed, monkeypatch):
    """embed --profile at --threads 2 had put the workers' model time under `wait` (model ~0)."""
    from mrl_dna.embed.stages import StageTimes

    monkeypatch.setattr(runtime, "chosen_threads", lambda: 2)
    times = StageTimes()
    list(embed_sequences(read_fasta([mixed]), model=kmer_model, options=SMALL, times=times))
    assert times.worker.get("model", 0.0) > 0.0
    assert any(line.startswith("model (worker threads") for line in times.report(1))


def test_embed_with_the_default_model_never_imports_torch(tmp_path):
    """Start-up (issue 24): torch's import was ~2 s of every `mrl-dna embed` call."""
    code = ("import sys\nfrom mrl_dna.cli import main\n"
            f"try:\n    main(['embed', {str(SAMPLE_FA)!r}, '-o', {str(tmp_path / 'e.h5')!r}, '-q', '--threads', '1'])\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"
    with EmbeddingStore.open(tmp_path / "e.h5") as s:
        assert "pooled" in str(s.attrs["numerics"])
        assert s.attrs["model_hash"] == load_model(None).info.weights_hash


def test_a_damaged_kmer_linear_model_is_one_clear_error(tmp_path):
    from mrl_dna.errors import ModelError

    bad = tmp_path / "m"
    bad.mkdir()
    (bad / "config.json").write_text((DEFAULT_MODEL_DIR / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ModelError, match="corrupt or truncated"):
        load_embedder(bad)
