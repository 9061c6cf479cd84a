"""torch.distributed glue for `torchrun ... -m mrl_dna CMD`: one process per rank, rank 0 speaks and merges.

torchrun starts N copies of the same command and tells each which one it is through the environment
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Nothing here is a cluster layer of our own
(DESIGN.md "Scale"): it only reads that environment, opens torch's process group (gloo on CPU, nccl on CUDA,
device cuda:LOCAL_RANK) and offers the few collectives the commands need (barrier, a sum of counters, "did
every rank succeed?").

    with distributed.session("auto") as ctx:      # ctx.world == 1 outside torchrun: every call is a no-op
        ...ctx.rank, ctx.device...
        ctx.barrier()

`embed_distributed` is `mrl-dna embed` under torchrun: rank r embeds shard (r+1)/N of the input (the same
base-balanced partition as `--shard`) into OUT.h5.rank{r}of{N} (an ordinary, resumable embed output), every
rank waits for the others, then rank 0 merges the shard files into OUT.h5 with `store.merge_stores` (the
file a single process writes) and removes them. A killed job rerun with the same command resumes every
rank's shard file; shard files that are already complete are reused as they are.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mrl_dna import console
from mrl_dna.errors import ConfigError, MrlDnaError, StoreError

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

    def all_sum(self, values: Sequence[int]) -> list[int]:
        """Element-wise sum of integer counters over all ranks (the values themselves in one process)."""
        if not self.initialised:
            return [int(v) for v in values]
        import torch.distributed as td

        t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=self.device)  # nccl needs the GPU
        td.all_reduce(t, op=td.ReduceOp.SUM)
        return [int(v) for v in t.cpu().tolist()]


def init(device: str = "auto") -> DistContext:
    """Open the process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA with device cuda:LOCAL_RANK);
    in a single process only resolve the device. Ranks > 0 are made quiet (one progress bar per job)."""
    from mrl_dna.embed import resolve_device

    world, r, local = world_size(), rank(), local_rank()
    dev = resolve_device(device)
    if world <= 1:
        return DistContext(0, 1, 0, dev, False)
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start multi-process runs with "
                          "torchrun (e.g. torchrun --nproc_per_node 2 -m mrl_dna embed IN.fa -o OUT.h5), or unset "
                          "WORLD_SIZE")
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


def shard_output(output: str | Path, rank_: int, world: int) -> Path:
    """The file rank r writes before the merge: OUT.h5.rank{r}of{N} (0-based r, as torch's ranks)."""
    output = Path(output)
    return output.with_name(f"{output.name}.rank{rank_}of{world}")


# ------------------------------------------------------------------------------------------------ embed


def embed_distributed(inputs: Sequence[str | Path], *, output: Path, overwrite: bool = False, device: str = "auto",
                      **embed_kw):
    """`embed_fasta` over the ranks of a torchrun job; returns an EmbedSummary with the whole job's counts
    (on every rank). embed_kw: the other keyword arguments of embed_fasta (model, window, stride, ...).

    Errors: a rank that fails raises its own error; the other ranks learn of it at the next collective and
    raise one line saying so, so no rank hangs and rank 0 never merges an incomplete set."""
    from mrl_dna.embed import EmbedSummary, embed_fasta

    if any(str(p) == "-" for p in inputs):
        raise ConfigError("torchrun splits the input by records, which needs files: stdin '-' cannot be split; "
                          "save it to a file first, or run one process")
    if embed_kw.pop("shard", None):
        raise ConfigError("--shard and torchrun both split the input; use one of them (torchrun gives rank r "
                          "shard r+1 of WORLD_SIZE)")
    output = Path(output)
    t0 = time.perf_counter()
    with session(device) as ctx:
        shard = (ctx.rank + 1, ctx.world)
        part = shard_output(output, ctx.rank, ctx.world)
        summary, error = None, None
        try:
            if output.exists() and not overwrite:  # fail before any work, not after hours at the merge
                from mrl_dna.store import _check_existing_output

                _check_existing_output(output, overwrite=False)
            summary = _reuse_complete(part, inputs, shard, embed_kw, overwrite)
            if summary is None:
                summary = embed_fasta(inputs, output=part, device=str(ctx.device), shard=shard, overwrite=overwrite,
                                      **embed_kw)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks know
            error = e
        failed = ctx.all_sum([error is not None])[0]
        if error is not None:
            raise error
        if failed:
            raise MrlDnaError(f"{failed} of {ctx.world} torchrun ranks failed (their errors are above); fix the cause "
                              "and rerun the same command: finished shards are kept and reused")
        counts = ctx.all_sum([summary.records, summary.bp, summary.empty, summary.all_n, summary.windows,
                              summary.skipped_windows])
        merge_error = None
        if ctx.is_main:
            try:
                from mrl_dna.store import merge_stores

                parts = [shard_output(output, r, ctx.world) for r in range(ctx.world)]
                merge_stores(parts, output, force=overwrite)
                for p in parts:
                    p.unlink()
            except Exception as e:  # noqa: BLE001 - re-raised after the barrier so ranks > 0 do not hang
                merge_error = e
        failed = ctx.all_sum([merge_error is not None])[0]  # doubles as the barrier after the merge
        if merge_error is not None:
            raise merge_error
        if failed:
            raise MrlDnaError("rank 0 could not merge the shard files (its error is above)")
        records, bp, empty, all_n, windows, skipped = counts
        return EmbedSummary(records=records, bp=bp, empty=empty, all_n=all_n, windows=windows, skipped_windows=skipped,
                            seconds=time.perf_counter() - t0, device=f"{ctx.world} x {ctx.device.type}", output=output)


def _reuse_complete(part: Path, inputs: Sequence[str | Path], shard: tuple[int, int], embed_kw: dict, overwrite: bool):
    """An EmbedSummary of `part` when it is a complete shard file of this very run (a job killed after this
    rank finished, before the merge), else None (embed it, or resume its .partial)."""
    if overwrite or not part.exists():
        return None
    from mrl_dna.embed import EmbedSummary
    from mrl_dna.store import EmbeddingStore

    model = embed_kw["model"]
    info = model.info
    want = {"model_hash": info.weights_hash, "shard": f"{shard[0]}/{shard[1]}", "inputs": " ".join(map(str, inputs)),
            "window": embed_kw.get("window") or info.window,
            "dtype": embed_kw.get("dtype", "float32"), "save_windows": bool(embed_kw.get("save_windows", False)),
            "max_n_fraction": embed_kw.get("max_n_fraction", 0.5)}
    try:
        store = EmbeddingStore.open(part)
    except StoreError:
        return None  # not ours: embed_fasta then says why (exists, not an mrl-dna file, ...)
    with store:
        got = {k: store.attrs.get(k) for k in want}
        stride = embed_kw.get("stride") or (embed_kw.get("window") or info.window_stride)
        if got != want or store.attrs.get("stride") != stride:
            raise StoreError(f"{part} is a finished shard of another run ({_diff(got, want)}); delete it or pass "
                             "--force")
        console.info(f"{part} is already complete ({store.n:,} records): reusing it")
        st = store.status_counts()
        return EmbedSummary(records=store.n, bp=int(store.lengths.sum()), empty=st["empty"], all_n=st["all_n"],
                            windows=int(store.n_windows.sum()), skipped_windows=int(store.n_skipped.sum()),
                            seconds=0.0, device="", output=part)


def _diff(got: dict, want: dict) -> str:
    return ", ".join(f"{k} {got[k]!r} vs {want[k]!r}" for k in want if got[k] != want[k]) or "stride"


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        return int(v)
    except ValueError:
        raise ConfigError(f"${name}={v!r} is not a whole number (torchrun sets it); unset it or start with torchrun") from None


__all__ = ["DistContext", "cleanup", "embed_distributed", "init", "is_distributed", "local_rank", "rank", "session",
           "shard_output", "world_size"]
