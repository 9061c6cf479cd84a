"""mrl_dna/distributed.py: the process-group context outside torchrun, and its one-line errors."""

from __future__ import annotations


import pytest
import torch

from mrl_dna import distributed
from mrl_dna.errors import ConfigError



_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                 "GROUP_RANK", "TORCHELASTIC_RUN_ID")


def test_single_process_context_is_a_no_op(monkeypatch):
    for k in _TORCHRUN_ENV:
        monkeypatch.delenv(k, raising=False)
    assert (distributed.world_size(), distributed.rank(), distributed.local_rank()) == (1, 0, 0)
    assert not distributed.is_distributed()
    with distributed.session("cpu") as ctx:
        assert (ctx.rank, ctx.world, ctx.is_main, ctx.initialised) == (0, 1, True, False)
        assert ctx.device == torch.device("cpu")
        ctx.barrier()
        assert ctx.all_sum([3, 4]) == [3, 4]


def test_env_errors_are_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match=r"\$WORLD_SIZE='two' is not a whole number"):
        distributed.world_size()
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ConfigError, match="start multi-process runs with torchrun"):
        distributed.init("cpu")
