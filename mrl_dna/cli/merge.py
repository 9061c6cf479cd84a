"""mrl-dna merge: combine the shard files of an `embed --shard I/N` run into one file, or (--concat) separate
databases of one model.

Example:
    $ mrl-dna merge part1.h5 part2.h5 part3.h5 -o genomes.h5
    [mrl-dna 0.1.0] merged 3 files -> genomes.h5: 1,000 records (rows ordered by record index); real 0.4 s; ...
    $ mrl-dna merge --concat refseq.h5 my_mags.h5 -o all.h5
    [mrl-dna 0.1.0] concatenated 2 files -> all.h5: 1,459 records (rows in argument order); real 0.3 s; ...
"""

from __future__ import annotations

import typer

from mrl_dna import console
from mrl_dna.cli.options import force_option, hdf5_output, quiet_option
from mrl_dna.store import merge_stores


def command(
    inputs: list[str] = typer.Argument(..., metavar="FILE.h5...", help="Embedding files to combine (shards in any order; --concat: in output order)."),
    output: str = typer.Option(..., "-o", "--output", metavar="OUT.h5", callback=hdf5_output, help="The merged file to write (HDF5, so not .gz)."),
    concat: bool = typer.Option(False, "--concat", help="Combine separate databases of one model (same model, dims, window, stride, --max-n, pooling, per-file or not) with distinct ids, rows in argument order; windows are kept when every input has them."),
    force: bool = force_option("OUT.h5 if it already exists"),
    quiet: bool = quiet_option("No progress talk on stderr."),
) -> None:
    """Merge embedding files from one model and options (typically all shards of one run) into one file.

    Model, window, stride, dims, dtype and pooling must agree, and the shards must be cut from one input (the
    records, lengths and order each shard file records; together they hold each of its records once); a
    complete set of shards gives the same rows,
    in the same order, with bitwise-equal vectors as an unsharded run. With --concat, databases embedded
    separately (other genomes, another day) are appended one after the other; their ids must be distinct.

    Example:  mrl-dna merge shard_*.h5 -o genomes.h5

    Example:  mrl-dna merge --concat refseq.h5 my_mags.h5 -o all.h5
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    s = merge_stores(inputs, output, force=force, concat=concat)
    for path in s.windows_dropped:
        console.warn(f"{path} has no saved windows, so {s.output} keeps none (embed every input with --save-windows "
                     "to keep them)")
    if concat:
        console.footer(f"concatenated {console.count(s.n_inputs, 'file')} -> {s.output}: "
                       f"{console.count(s.n_records, 'record')} (rows in argument order)", timer)
        return
    how = {"order": "record index", "shard": "shard index", "arguments": "argument order"}[s.ordered_by]
    console.footer(f"merged {console.count(s.n_inputs, 'file')} -> {s.output}: {console.count(s.n_records, 'record')} "
                   f"(rows ordered by {how})", timer)
