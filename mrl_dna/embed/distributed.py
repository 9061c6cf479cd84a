"""`mrl-dna embed` under torchrun: rank r embeds shard (r+1)/N of the input (the same base-balanced partition
as `--shard`) into OUT.h5.rank{r}of{N} (an ordinary, resumable embed output), every rank waits for the others,
then rank 0 merges the shard files into OUT.h5 with `store.merge_stores` (the file a single process writes)
and removes them. A killed job rerun with the same command resumes every rank's shard file; shard files that
are already complete are reused as they are.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mrl_dna import console, distributed
from mrl_dna.device import resolve_device
from mrl_dna.embed.options import EmbedOptions
from mrl_dna.embed.run import EmbedSummary, embed_fasta, run_attrs
from mrl_dna.errors import ConfigError, MrlDnaError, StoreError
from mrl_dna.inputs.fasta import is_stream, stream_name
from mrl_dna.store import RESUME_KEYS, EmbeddingStore, check_existing_output, file_attributes, merge_stores
from mrl_dna.store.format import same_attr, show_attr


def shard_output(output: str | Path, rank_: int, world: int) -> Path:
    """The file rank r writes before the merge: OUT.h5.rank{r}of{N} (0-based r, as torch's ranks)."""
    output = Path(output)
    return output.with_name(f"{output.name}.rank{rank_}of{world}")


def embed_distributed(inputs: Sequence[str | Path], *, model, output: Path,
                      options: EmbedOptions = EmbedOptions()) -> EmbedSummary:
    """`embed_fasta` (same arguments) over the ranks of a torchrun job; returns an EmbedSummary with the whole
    job's counts (on every rank).

    Errors: a rank that fails raises its own error; the other ranks learn of it at the next collective and
    raise one line saying so, so no rank hangs and rank 0 never merges an incomplete set."""
    streams = [p for p in inputs if is_stream(p)]
    if streams:
        raise ConfigError(f"torchrun splits the input by records, which needs files: {stream_name(streams[0])} cannot "
                          "be split; save it to a file first, or run one process")
    if options.shard:
        raise ConfigError("--shard and torchrun both split the input; use one of them (torchrun gives rank r "
                          "shard r+1 of WORLD_SIZE)")
    output = Path(output)
    t0 = time.perf_counter()
    with distributed.session(options.device) as ctx:
        options = replace(options, device=str(ctx.device), shard=(ctx.rank + 1, ctx.world))
        part = shard_output(output, ctx.rank, ctx.world)
        summary, error = None, None
        try:
            if output.exists() and not options.overwrite:  # fail before any work, not after hours at the merge
                check_existing_output(output, overwrite=False)
            summary = None if options.overwrite else _reuse_complete(part, _shard_attrs(model, options, inputs))
            if summary is None:
                summary = embed_fasta(inputs, model=model, output=part, options=options)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks know
            error = e
        failed = ctx.all_sum([error is not None])[0]
        if error is not None:
            raise error
        if failed:
            raise MrlDnaError(f"{failed} of {ctx.world} torchrun ranks failed (their errors are above); fix the cause "
                              "and rerun the same command: finished shards are kept and reused")
        counts = ctx.all_sum([summary.records, summary.bp, summary.empty, summary.all_n, summary.windows,
                              summary.skipped_windows, summary.contigs])
        merge_error = None
        if ctx.is_main:
            try:
                parts = [shard_output(output, r, ctx.world) for r in range(ctx.world)]
                merge_stores(parts, output, force=options.overwrite)
                for p in parts:
                    p.unlink()
            except Exception as e:  # noqa: BLE001 - re-raised after the barrier so ranks > 0 do not hang
                merge_error = e
        failed = ctx.all_sum([merge_error is not None])[0]  # doubles as the barrier after the merge
        if merge_error is not None:
            raise merge_error
        if failed:
            raise MrlDnaError("rank 0 could not merge the shard files (its error is above)")
        records, bp, empty, all_n, windows, skipped, contigs = counts
        return EmbedSummary(records=records, bp=bp, empty=empty, all_n=all_n, windows=windows, skipped_windows=skipped,
                            seconds=time.perf_counter() - t0, device=f"{ctx.world} x {ctx.device.type}", output=output,
                            contigs=contigs)


def _shard_attrs(model, options: EmbedOptions, inputs: Sequence[str | Path]) -> dict:
    """The attributes embed_fasta would give this rank's shard file (the input's identity aside)."""
    return file_attributes(run_attrs(model, options, options.window_config(model.info), resolve_device(options.device), inputs),
                           dim=model.info.dim, dtype=options.dtype, save_windows=options.save_windows,
                           per_file=options.per_file)


def _reuse_complete(part: Path, want: dict):
    """An EmbedSummary of `part` when it is a complete shard file of this very run (a job killed after this
    rank finished, before the merge: the inputs and RESUME_KEYS of its attributes are `want`'s), else None
    (embed it, or resume its .partial)."""
    if not part.exists():
        return None
    try:
        store = EmbeddingStore.open(part)
    except StoreError:
        return None  # not ours: embed_fasta then says why (exists, not an mrl-dna file, ...)
    with store:
        differ = [k for k in ("inputs", *RESUME_KEYS) if not same_attr(store.attrs.get(k), want.get(k))]
        if differ:
            what = ", ".join(f"{k} {show_attr(store.attrs.get(k))} vs {show_attr(want.get(k))}" for k in differ)
            raise StoreError(f"{part} is a finished shard of another run ({what}); delete it or pass --force")
        console.info(f"{part} is already complete ({console.count(store.n, 'record')}): reusing it")
        st = store.status_counts()
        return EmbedSummary(records=store.n, bp=int(store.lengths.sum()), empty=st["empty"], all_n=st["all_n"],
                            windows=int(store.n_windows.sum()), skipped_windows=int(store.n_skipped.sum()),
                            seconds=0.0, device="", output=part,
                            contigs=len(store.contigs()) if store.per_file else 0)
