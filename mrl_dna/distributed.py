"""torch.distributed glue for `torchrun ... -m mrl_dna CMD`: one process per rank, rank 0 speaks.

torchrun starts N copies of the same command and tells each which one it is through the environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Nothing here is a cluster layer of our own
(DESIGN.md "Scale"): it only reads that environment, opens torch's process group (gloo on CPU, nccl on CUDA,
device cuda:LOCAL_RANK) and offers what the commands need: the collectives (barrier, a sum of counters, "did
every rank succeed?") and, for training, DDP wrapping and gradient-sync control. One context for embed
(`embed/distributed.py`) and train (`train/trainer.py`).

    with distributed.session("auto") as ctx:      # ctx.world == 1 outside torchrun: every call is a no-op
        ...ctx.rank, ctx.device...
        ctx.barrier()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mrl_dna import console
from mrl_dna.device import resolve_device
from mrl_dna.errors import ConfigError

if TYPE_CHECKING:  # torch is imported where a process group is used: `embed` with a k-mer-only model needs none
    import torch

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def world_size() -> int:
    """Processes in this job: $WORLD_SIZE under torchrun, else 1."""
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's rank (0-based): $RANK under torchrun, else 0."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its node (picks the GPU): $LOCAL_RANK under torchrun, else 0."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """True when started by torchrun with more than one process."""
    return world_size() > 1


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank r of world processes, on device. world == 1: single process."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    initialised: bool  # True when this process opened the torch.distributed process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op in a single process)."""
        if self.initialised:
            import torch.distributed as td

            td.barrier(**({"device_ids": [self.device.index]} if self.device.type == "cuda" else {}))

    def wrap(self, model):
        """The model as DDP sees it under torchrun (gradients averaged over ranks); the model itself alone."""
        if not self.initialised:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def no_sync(self, model, skip: bool):
        """DDP's no_sync() when skip (a micro-batch before the last of a step), else a no-op context."""
        return model.no_sync() if (self.initialised and skip) else contextlib.nullcontext()

    def all_sum(self, values: Sequence[int]) -> list[int]:
        """Element-wise sum of integer counters over all ranks (the values themselves in one process)."""
        if not self.initialised:
            return [int(v) for v in values]
        import torch
        import torch.distributed as td

        t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=self.device)  # nccl needs the GPU
        td.all_reduce(t, op=td.ReduceOp.SUM)
        return [int(v) for v in t.cpu().tolist()]

    def all_gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every rank's (m, D) rows stacked in rank order: (world * m, D); the rows themselves in one process.
        (Every rank must pass the same shape.)"""
        if not self.initialised:
            return rows
        import torch
        import torch.distributed as td

        out = [torch.empty_like(rows) for _ in range(self.world)]
        td.all_gather(out, rows.contiguous())
        return torch.cat(out)


def init(device: str = "auto") -> DistContext:
    """Open the process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA with device cuda:LOCAL_RANK);
    in a single process only resolve the device. Ranks > 0 are made quiet (one progress bar per job)."""
    world, r, local = world_size(), rank(), local_rank()
    dev = resolve_device(device)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start multi-process runs with "
                          "torchrun (e.g. torchrun --nproc_per_node 2 -m mrl_dna embed IN.fa -o OUT.h5), or unset "
                          "WORLD_SIZE")
    import torch

    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                              "start at most one process per GPU (torchrun --nproc_per_node)")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    import torch.distributed as td

    if not td.is_available():
        raise ConfigError("this torch build has no torch.distributed; run one process, or use --shard I/N + merge")
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    if r != 0:
        console.set_quiet(True)
    return DistContext(td.get_rank(), td.get_world_size(), local, dev, True)


def cleanup(ctx: DistContext) -> None:
    """Close the process group opened by init() (no-op in a single process)."""
    if ctx.initialised:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[DistContext]:
    """init() ... cleanup(), also when the block raises."""
    ctx = init(device)
    try:
        yield ctx
    finally:
        cleanup(ctx)


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise ConfigError(f"${name}={v!r} is not a whole number (torchrun sets it); unset it or start with torchrun") from None


__all__ = ["DistContext", "cleanup", "init", "is_distributed", "local_rank", "rank", "session", "world_size"]
