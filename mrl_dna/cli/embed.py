"""mrl-dna embed: FASTA -> one Matryoshka vector per record, in an HDF5 file.

    $ mrl-dna embed data/sample.fa -o sample.h5
    embedding ━━━━━━━━━━━━━━━━━━━━━━━━ 171,408/171,408 bp 0:00:00
    [mrl-dna 0.1.0] 8 records, 171,408 bp, 87 windows -> sample.h5; 310 kbp/s on cpu; ...
"""

from __future__ import annotations

import enum
from pathlib import Path

import typer

from mrl_dna import console, distributed
from mrl_dna.cli.options import (batch_tokens_option, device_option, existing, force_option, hdf5_output, model_option,
                                 parsed_by, quiet_option, set_threads, threads_option)
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.embed.distributed import embed_distributed
from mrl_dna.model import load_model
from mrl_dna.runtime import thread_note
from mrl_dna.store.shards import parse_shard
from mrl_dna.embed.options import SAVED_WINDOWS_STRIDE
from mrl_dna.errors import OptionError
from mrl_dna.windows import WindowConfig


class Dtype(str, enum.Enum):
    float32 = "float32"
    float16 = "float16"


def command(
    inputs: list[str] = typer.Argument(..., help="FASTA, GenBank or EMBL files (plain, gzip or bgzip; the format is read from the content); '-' reads stdin.", metavar="FILE...", callback=existing()),
    output: Path = typer.Option(..., "-o", "--output", callback=hdf5_output, help="HDF5 file to write (written as OUTPUT.partial until complete; not .gz: HDF5 is read in place)."),
    model: Path = model_option("Model directory (mrl-dna or Caduceus). Default: the bundled model."),
    window: int = typer.Option(None, "-w", "--window", min=1, help="Window length in bp. Default: the model's (2048 for the bundled model)."),
    stride: int = typer.Option(None, "-s", "--stride", min=1, help="Window stride in bp (<= window). Default: = window."),
    batch_tokens: int = batch_tokens_option("Bases per batch (memory knob). Default: 65,536 on a CPU, 1,048,576 on a GPU; vectors are bit for bit the same for one value."),
    device: str = device_option(),
    dtype: Dtype = typer.Option(Dtype.float32, "--dtype", help="Stored vector precision."),
    save_windows: bool = typer.Option(False, "--save-windows", help="Also store per-window vectors and coordinates (for search --level windows and dist/cluster --level windows), cut every --windows-stride bp."),
    windows_stride: int = typer.Option(None, "--windows-stride", min=1, help=f"Stride in bp of the windows --save-windows stores. Default: {SAVED_WINDOWS_STRIDE} (or --stride when smaller): window-level ANI needs dense target windows (simulated error at >= 95% identity: 0.2-0.3 ANI points at 250, ~1 at 1,000, 2.5 at 2,048); 4x the windows of 1,000, so 8 MB per Mbp at 512 dims in float32, 4 in float16. Record vectors are pooled from the --stride windows whatever this is."),
    regions: Path = typer.Option(None, "--regions", callback=existing(what="--regions"), help="A BED file (chrom, start, end[, name]; 0-based, half-open): embed each interval of the one FASTA (plain or bgzip; its .fai/.gzi index is built beside it when missing or stale) as a record named by the name column, else chrom:start-end."),
    per_file: bool = typer.Option(False, "--per-file", help="One row per input FASTA (a genome or MAG of many contigs), named after the file without .fa/.gz: the weighted centroid of all its windows; record ids may repeat across files."),
    shard: str = typer.Option(None, "--shard", callback=parsed_by(parse_shard), help="I/N: embed only shard I of N (balanced by bases); combine with `mrl-dna merge`."),
    max_n: float = typer.Option(WindowConfig.max_n_fraction, "--max-n", min=0.0, max=1.0, help="Skip windows with a larger fraction of N."),
    restart: bool = typer.Option(False, "--restart", help="Ignore an interrupted OUTPUT.partial and start over (default: resume it)."),
    force: bool = force_option("a complete OUTPUT"),
    threads: int = threads_option(),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model's batches (on a GPU with CUDA graphs): about a minute of compiling per batch shape, then faster on long runs; vectors move in their last bits."),
    profile: bool = typer.Option(False, "--profile", help="Print the seconds each pipeline stage took (read, windows, batch, model, wait, pool, write) on stderr."),
    quiet: bool = quiet_option(),
) -> None:
    """Embed every record of FASTA, GenBank or EMBL files into OUTPUT (HDF5): one L2-normalised vector per record.

    Example: mrl-dna embed data/sample.fa -o sample.h5

    Regions of an indexed FASTA: mrl-dna embed genome.fa --regions genes.bed -o genes.h5

    Genome collections, one vector per file: mrl-dna embed genomes/*.fa.gz --per-file -o genomes.h5

    Several GPUs or CPU processes: torchrun --standalone --nproc_per_node 4 -m mrl_dna embed IN.fa -o OUT.h5
    (rank r embeds shard r+1 of 4, rank 0 merges them into OUT.h5).
    """
    console.set_quiet(quiet)
    if windows_stride is not None and not save_windows:
        raise OptionError("--windows-stride sets the stride of saved windows; add --save-windows (or drop it)")
    timer = console.Timer()
    set_threads(threads)
    # torchrun: each rank embeds its shard, rank 0 merges (the same arguments as one process)
    run = embed_distributed if distributed.is_distributed() else embed_fasta
    options = EmbedOptions(window=window, stride=stride, max_n_fraction=max_n, batch_tokens=batch_tokens, device=device,
                           compile=compile, save_windows=save_windows, windows_stride=windows_stride, dtype=dtype.value, per_file=per_file,
                           regions=regions, shard=shard, resume=not restart, overwrite=force)
    s = run(inputs, model=load_model(model), output=output, options=options)
    if profile and s.stages is not None:
        for line in s.stages.report(s.bp, s.seconds):
            console.info(line)
    rows = (f"{console.count(s.records, 'file')} ({console.count(s.contigs, 'record')})" if per_file
            else console.count(s.records, "record"))
    extra = (f", {s.empty:,} empty" if s.empty else "") + (f", {s.all_n:,} all-N" if s.all_n else "")
    extra += f" ({s.resumed:,} kept from the interrupted run; figures below are this run's)" if s.resumed else ""
    # the rate over the whole process, start-up included, as `real` (what a loop of embeds gets)
    console.footer(
        f"{rows}{extra}, {s.bp:,} bp, {console.count(s.windows, 'window')} ({s.skipped_windows:,} mostly-N skipped) "
        f"-> {s.output}; {s.bp / max(timer.seconds, 1e-9) / 1e3:,.0f} kbp/s on {s.device}"
        + (f" ({note})" if (note := thread_note()) else ""),
        timer,
    )
