"""mrl-dna merge: combine the shard files of an `embed --shard I/N` run into one file.

Example:
    $ mrl-dna merge part1.h5 part2.h5 part3.h5 -o genomes.h5
    merged 3 files -> genomes.h5: 1,000 records (rows ordered by record index)
"""

from __future__ import annotations

import typer

from mrl_dna import console
from mrl_dna.store import merge_stores


def command(
    inputs: list[str] = typer.Argument(..., metavar="SHARD.h5...", help="Embedding files to combine, in any order."),
    output: str = typer.Option(..., "-o", "--output", metavar="OUT.h5", help="The merged file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite OUT.h5 if it already exists."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress talk on stderr."),
) -> None:
    """Merge embedding files from one model and options (typically all shards of one run) into one file.

    Model, window, stride, dims, dtype and pooling must agree; a complete set of shards gives the same rows,
    in the same order, with bitwise-equal vectors as an unsharded run.

    Example:  mrl-dna merge shard_*.h5 -o genomes.h5
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    s = merge_stores(inputs, output, force=force)
    how = {"order": "record index", "shard": "shard index", "arguments": "argument order"}[s.ordered_by]
    console.footer(f"merged {s.n_inputs} files -> {s.output}: {s.n_records:,} records (rows ordered by {how})", timer)
