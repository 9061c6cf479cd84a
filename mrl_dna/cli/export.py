"""mrl-dna export: embeddings as TSV, .npy or Parquet for tools that do not read HDF5.

Example:
    $ mrl-dna export sample.h5 --dim 16 | head -1 | cut -f1-4
    NC_001416.1	0.0412341	-0.291841	0.180143
"""

from __future__ import annotations

import os
import sys

import typer

from mrl_dna import console
from mrl_dna.cli.options import dim_option, force_option, quiet_option
from mrl_dna.store import ExportFormat, export_store


def command(
    path: str = typer.Argument(..., metavar="FILE.h5", help="An embedding file written by `mrl-dna embed`."),
    dim: int = dim_option("Matryoshka prefix to export, re-normalised [default: all D]."),
    fmt: ExportFormat = typer.Option(
        ExportFormat.tsv, "--format",
        help="tsv: id then k floats per line; npy: (n, k) float32 .npy plus NAME.ids.txt; parquet: a table with "
        "an id column and a fixed-size float32 list column 'embedding' (needs pyarrow: pip install 'mrl-dna[parquet]').",
    ),
    output: str = typer.Option("-", "-o", "--output", help="Output file; '-' is stdout (tsv only); a tsv name ending in .gz is gzip-compressed."),
    force: bool = force_option("existing output files"),
    quiet: bool = quiet_option("No summary line on stderr (warnings still print)."),
) -> None:
    """Write one embedding prefix per record as TSV (stdout by default), a .npy matrix plus an ids file, or Parquet.

    Rows keep the file's order; records without a vector (empty or all-N) are zero rows, with a warning.

    Example:  mrl-dna export sample.h5 --dim 64 --format npy -o sample64.npy
    """
    console.set_quiet(quiet)
    try:
        s = export_store(path, dim=dim, fmt=fmt, output=output, force=force, warn=console.warn)
    except BrokenPipeError:  # `mrl-dna export x.h5 | head`: the reader left, which is fine (click would exit 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    if s.n_zero:
        console.warn(f"{s.n_zero:,} of {console.count(s.n_records, 'record')} "
                     f"{'has' if s.n_zero == 1 else 'have'} no vector (empty or all-N) and "
                     f"{'was' if s.n_zero == 1 else 'were'} exported as {'a zero row' if s.n_zero == 1 else 'zero rows'}")
    if output != "-":
        console.info(f"exported {console.count(s.n_records, 'record')} x {s.dim} dims -> {', '.join(s.outputs)}")
