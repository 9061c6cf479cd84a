"""Vectors do not depend on batch composition, bit for bit, at 2 threads (issue 12, item 9): a record embedded
alone, among other records in any order, in a shard that is then merged, or in a resumed run gets exactly
the vector of one plain run. (Before fixed-shape batches a short record alone in a batch differed from the
same record in a full batch in the last bits: shard + merge was not the single run.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mrl_dna import dna
from mrl_dna.embed import bucket_length, embed_fasta, embed_sequences
from mrl_dna.fasta import Record, read_fasta
from mrl_dna.store import EmbeddingStore, merge_stores

from conftest import random_dna

# a mix that puts records in different batches and buckets: full windows (tiny model: 256 bp), short
# records of many lengths (1-3 bp included), an all-N and an empty record
LENGTHS = [3000, 100, 2, 700, 5000, 40, 256, 1500, 90, 257, 10, 600, 1, 3, 130, 900]
BATCH = 1024  # bases per batch: small batches keep the test fast (a lone short record still fills one)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def mixed_fasta(tmp_path):
    rng = np.random.default_rng(12)
    seqs = [random_dna(rng, n) for n in LENGTHS]
    seqs.insert(5, "N" * 400)
    seqs.insert(9, "")
    p = tmp_path / "mixed.fa"
    p.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    return p


def _vectors(recs, model, **kw) -> dict[str, np.ndarray]:
    return {r.id: r.vector for r in embed_sequences(recs, model=model, batch_tokens=BATCH, **kw)}


def _assert_bitwise(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    for rid, v in got.items():
        assert np.array_equal(v, ref[rid]), (rid, float(np.abs(v - ref[rid]).max()))


def test_record_alone_or_in_any_batch_is_bitwise_the_same(tiny_model, mixed_fasta, two_threads):
    recs = list(read_fasta([mixed_fasta]))
    ref = _vectors(recs, tiny_model)
    for rec in recs:
        _assert_bitwise(_vectors([rec], tiny_model), ref)
    _assert_bitwise(_vectors(recs[::-1], tiny_model), ref)
    order = np.random.default_rng(0).permutation(len(recs))
    _assert_bitwise(_vectors([recs[i] for i in order], tiny_model), ref)


def _single_and_merged_shards(tmp_path, model, fasta: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    single = tmp_path / f"{fasta.stem}.h5"
    if not single.exists():
        embed_fasta([fasta], model=model, output=single, device="cpu", batch_tokens=BATCH)
    parts = []
    for i in range(1, n + 1):
        parts.append(tmp_path / f"{fasta.stem}.part{i}of{n}.h5")
        embed_fasta([fasta], model=model, output=parts[-1], device="cpu", shard=(i, n), batch_tokens=BATCH)
    merged = tmp_path / f"{fasta.stem}.merged{n}.h5"
    merge_stores(parts, merged)
    with EmbeddingStore.open(single) as s, EmbeddingStore.open(merged) as m:
        return s.read(normalize=False), m.read(normalize=False)


def test_shards_merged_and_a_resumed_run_equal_one_run_bitwise(tmp_path, tiny_model, mixed_fasta, two_threads,
                                                               monkeypatch):
    for n in (2, 3):
        one, merged = _single_and_merged_shards(tmp_path, tiny_model, mixed_fasta, n)
        assert np.array_equal(merged, one), n
    # a shard of only tiny records: in one run they share a batch with the long record's windows
    rng = np.random.default_rng(5)
    tail = tmp_path / "tail.fa"
    tail.write_text(f">long\n{random_dna(rng, 1500)}\n>t2\nAC\n>t3\nGTA\n>t40\n{random_dna(rng, 40)}\n")
    one, merged = _single_and_merged_shards(tmp_path, tiny_model, tail, 2)
    assert np.array_equal(merged, one)

    ref = _single_and_merged_shards(tmp_path, tiny_model, mixed_fasta, 1)[0]
    import mrl_dna.embed as embed_mod
    import mrl_dna.store as store_mod

    real_append, calls = store_mod.EmbeddingWriter.append, {"n": 0}

    def dies_after_two_flushes(self, recs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real_append(self, recs)

    monkeypatch.setattr(embed_mod, "_FLUSH_RECORDS", 3)
    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", dies_after_two_flushes)
    resumed = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        embed_fasta([mixed_fasta], model=tiny_model, output=resumed, device="cpu", batch_tokens=BATCH)
    monkeypatch.setattr(store_mod.EmbeddingWriter, "append", real_append)
    s = embed_fasta([mixed_fasta], model=tiny_model, output=resumed, device="cpu", batch_tokens=BATCH)
    assert s.resumed == 6
    with EmbeddingStore.open(resumed) as r:
        assert np.array_equal(r.read(normalize=False), ref)


def test_batches_have_one_shape_per_window_length(tiny_model, mixed_fasta, monkeypatch):
    """What makes the above hold: every batch the encoder sees has the shape (batch_tokens // L, L) for its
    bucket L, whatever the records around it (the last batch of a bucket is filled up)."""
    shapes = []
    real = tiny_model.window_vectors

    def spy(tokens, lengths):
        shapes.append(tuple(tokens.shape))
        return real(tokens, lengths)

    monkeypatch.setattr(tiny_model, "window_vectors", spy)
    list(embed_sequences(read_fasta([mixed_fasta]), model=tiny_model, batch_tokens=BATCH))
    assert shapes and all(rows == BATCH // L for rows, L in shapes), shapes
    assert {L for _, L in shapes} == {bucket_length(min(n, 256), 256) for n in LENGTHS}


def test_bucket_lengths():
    assert [bucket_length(n, 2048) for n in (1, 64, 65, 96, 97, 128, 129, 200, 1500, 1537, 2047, 2048, 5000)] == [
        64, 64, 96, 96, 128, 128, 192, 256, 1536, 2048, 2048, 2048, 2048]
    assert bucket_length(100, 80) == 80  # never longer than the window
    for n in range(1, 3000, 7):  # holds the window, wastes at most a third of the bucket (or pads to 64)
        b = bucket_length(n, 2048)
        assert min(n, 2048) <= b and (b <= 64 or b <= 1.5 * n)


def test_a_record_waiting_in_a_part_filled_batch_does_not_hold_all_later_records(tiny_model):
    """Output keeps input order, so records wait behind a short one whose bucket rarely fills; once they hold
    a few batches' worth of bases its batch runs filled up, and the first records come out long before
    the input ends (memory stays bounded)."""
    rng = np.random.default_rng(3)
    recs = [Record("short", "", dna.encode(random_dna(rng, 30)), "t")]
    recs += [Record(f"long{i}", "", dna.encode(random_dna(rng, 2000)), "t") for i in range(40)]
    read = []

    def source():
        for r in recs:
            read.append(r.id)
            yield r

    it = embed_sequences(source(), model=tiny_model, batch_tokens=1024)
    first = next(it)
    assert first.id == "short" and len(read) < 10
