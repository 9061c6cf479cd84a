"""mrl-dna dist: cosine similarity and angular distance of all pairs of rows of one or two embedding files.

Example (six genomes of ../shared/data embedded with `embed --per-file`; README, "Genome collections"):

    $ mrl-dna dist genomes.h5 --dim 64 | head -4
    #query	target	similarity	distance
    Blochmannia_pennsylvanicus_BPEN	Blochmannia_pennsylvanicus_BPenn7	0.999980	0.002015
    Blochmannia_pennsylvanicus_BPEN	Blochmannia_chromaiodes_640	0.999861	0.005309
    Blochmannia_pennsylvanicus_BPEN	Blochmannia_floridanus	0.969433	0.078905

Columns: query id, target id, similarity = cosine of the two normalised prefixes (what `mrl-dna search`
reports), distance = arccos(similarity) / pi, the angle between them as a fraction of a half turn (0 = same
direction, 0.5 = orthogonal): a metric, which 1 - cosine is not, so tree and linkage methods can add it; pairs
keep the order of the similarities. `dist A` prints each pair of A once (row i < row j, no self pairs, as
mash triangle's lower triangle); `dist A B` prints every row of A with every row of B (as mash dist).
--format matrix: a square (or n x m) TSV of similarities with a '#query<TAB>ids...' header; --format phylip:
the distance matrix of one file in relaxed PHYLIP (names padded to 10, of any length) for tree tools.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import (blas_threads_option, dim_option, embedding_file_argument, force_option, min_sim_option,
                                 no_header_option, products_device_option, quiet_option, text_output_option)
from mrl_dna.compare import DistFormat, dist, set_blas_threads


def command(
    a: Path = embedding_file_argument("A.h5"),
    b: Path | None = embedding_file_argument("[B.h5]", None, help="A second file of the same model and embed options (window, stride, --max-n): every row of A with every row of B. Without it: every pair of rows of A, once."),
    dim: int | None = dim_option(),
    fmt: DistFormat = typer.Option(DistFormat.long, "--format", help="long: one line per pair (query, target, similarity, distance); matrix: square TSV of similarities; phylip: distance matrix of one file for tree tools (neighbor, FastME, rapidnj)."),
    min_sim: float | None = min_sim_option("long format: print only pairs with a similarity >= this (e.g. 0.95); every pair is still scored."),
    output: Path | None = text_output_option(),
    force: bool = force_option("an existing OUTPUT"),
    no_header: bool = no_header_option("#...", " (long and matrix formats)"),
    threads: int = blas_threads_option(),
    device: str = products_device_option(),
    quiet: bool = quiet_option("No summary on stderr (warnings and errors still print)."),
) -> None:
    """Cosine similarity and angular distance of all pairs of rows of one or two embedding files.

    distance = arccos(similarity) / pi (a metric; 0.5 = orthogonal). dist A: each pair once (i < j); dist A B:
    every row of A with every row of B.

    \b
    Example (genomes embedded with embed --per-file):
      $ mrl-dna dist genomes.h5 --dim 64 | head -3
      #query	target	similarity	distance
      Blochmannia_pennsylvanicus_BPEN	Blochmannia_pennsylvanicus_BPenn7	0.999980	0.002015
      Blochmannia_pennsylvanicus_BPEN	Blochmannia_chromaiodes_640	0.999861	0.005309

    Example: mrl-dna dist genomes.h5 --dim 64 --min-sim 0.95 -o close_pairs.tsv.gz

    Example: mrl-dna dist genomes.h5 --format phylip -o genomes.phy
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_blas_threads(threads)
    s = dist(a, b, dim=dim, fmt=fmt, min_sim=min_sim, output=output, force=force, header=not no_header,
             device=device, warn=console.warn)
    lines = console.count(s.lines, "pair" if fmt is DistFormat.long else "row")
    where = "stdout" if output is None or str(output) == "-" else str(output)
    console.footer(f"{s.n_queries:,} x {console.count(s.n_targets, 'row')} at dim {s.dim}: "
                   f"{console.count(s.pairs_scored, 'pair')} scored, {lines} written ({fmt.value}) to {where} on "
                   f"{s.device}", timer)
