"""mrl_dna/embed/distributed.py: shard file names, refusals, reuse of a finished shard of this run only."""

from __future__ import annotations

from pathlib import Path

import pytest

from mrl_dna.embed.distributed import embed_distributed, shard_output
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.errors import ConfigError, StoreError

from conftest import assert_same_datasets


_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "TORCHELASTIC_RUN_ID")


def test_shard_output_names():
    assert shard_output(Path("d/out.h5"), 0, 4) == Path("d/out.h5.rank0of4")


def test_embed_distributed_refuses_stdin_and_shard(tmp_path, tiny_model):
    with pytest.raises(ConfigError, match="stdin '-' cannot be split"):
        embed_distributed(["-"], output=tmp_path / "o.h5", model=tiny_model)
    with pytest.raises(ConfigError, match="--shard and torchrun both split the input"):
        embed_distributed(["x.fa"], output=tmp_path / "o.h5", model=tiny_model, options=EmbedOptions(shard=(1, 2)))


def test_embed_distributed_reuses_a_finished_shard_file(tmp_path, tiny_model, small_fasta, monkeypatch, capsys):
    """A job killed after a rank finished its shard, before the merge: the rerun keeps that shard file.
    (World of 1 here, in-process; the 2-process path is the torchrun test above.)"""
    for k in _TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    ref = tmp_path / "ref.h5"
    embed_fasta([small_fasta], model=tiny_model, output=ref, options=EmbedOptions(device="cpu"))
    out = tmp_path / "out.h5"
    part = shard_output(out, 0, 1)
    embed_fasta([small_fasta], model=tiny_model, output=part, options=EmbedOptions(device="cpu", shard=(1, 1)))
    s = embed_distributed([small_fasta], output=out, model=tiny_model, options=EmbedOptions(device="cpu"))
    assert "out.h5.rank0of1 is already complete (5 records): reusing it" in capsys.readouterr().err
    assert s.records == 5 and s.empty == 0 and not part.exists()
    assert_same_datasets(ref, out)
    # the finished output is not overwritten without --force, and that is said before any work
    with pytest.raises(StoreError, match="already exists .* pass --force"):
        embed_distributed([small_fasta], output=out, model=tiny_model, options=EmbedOptions(device="cpu"))
    assert not part.exists()
    s = embed_distributed([small_fasta], output=out, model=tiny_model,
                          options=EmbedOptions(device="cpu", overwrite=True))
    assert s.records == 5
    assert_same_datasets(ref, out)


def test_embed_distributed_refuses_a_finished_shard_of_another_run(tmp_path, tiny_model, small_fasta, monkeypatch):
    for k in _TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    out = tmp_path / "out.h5"
    part = shard_output(out, 0, 1)
    embed_fasta([small_fasta], model=tiny_model, output=part,
                options=EmbedOptions(device="cpu", shard=(1, 1), window=128))
    with pytest.raises(StoreError, match=r"rank0of1 is a finished shard of another run \(window 128 vs 256, stride 128 vs 256\)"):
        embed_distributed([small_fasta], output=out, model=tiny_model, options=EmbedOptions(device="cpu"))
    assert part.exists() and not out.exists()


def test_the_shard_attributes_a_rank_expects_are_those_embed_fasta_writes(tmp_path, tiny_model, small_fasta):
    """embed_distributed reuses a finished shard only when its attributes are the run's: both come from one
    place (run.run_attrs + store.file_attributes), so they cannot drift apart."""
    from mrl_dna.embed.distributed import _shard_attrs
    from mrl_dna.store import RESUME_KEYS, EmbeddingStore
    from mrl_dna.store.format import same_attr

    opts = EmbedOptions(device="cpu", shard=(1, 2), window=200, stride=100, save_windows=True, dtype="float16")
    part = tmp_path / "p.h5"
    embed_fasta([small_fasta], model=tiny_model, output=part, options=opts)
    want = _shard_attrs(tiny_model, opts, [small_fasta])
    with EmbeddingStore.open(part) as st:
        assert all(same_attr(st.attrs.get(k), want.get(k)) for k in ("inputs", *RESUME_KEYS))
