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
                                 model_option, no_header_option, products_device_option, quiet_option, refuse_options,
                                 text_output_option)
from mrl_dna.compare import DistFormat, compute_device, dist, set_blas_threads
from mrl_dna.compare.windows import MIN_AF, CompareLevel, WindowLevel, window_dist
from mrl_dna.store.textout import text_output


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
    level: CompareLevel = typer.Option(CompareLevel.records, "--level", help="records: cosines of the pooled vectors (exact, fast: composition, not identity); windows: ANI and aligned fractions from the saved windows (files embedded with --save-windows; see below)."),
    min_ani: float | None = typer.Option(None, "--min-ani", min=0.0, max=100.0, help="--level windows: print only pairs with an ANI >= this (percent), and skip pairs whose pooled vectors' 64-dim cosine is below the bound the model's calibration measured for it (pairs sharing >= 20% of both genomes are never skipped below their ANI; without a bound for the value no pair is skipped)."),
    min_af: float = typer.Option(MIN_AF, "--min-af", min=0.0, max=1.0, help="--level windows: report an ANI only when the pair shares at least this fraction of one genome (max of af_query, af_target); else NA."),
    model: Path | None = model_option("--level windows: the model directory whose calibration.json maps window scores to identity. Default: the directory embed recorded, then the bundled model, the first built for the file's model."),
) -> None:
    """Cosine similarity and angular distance of all pairs of rows of one or two embedding files.

    distance = arccos(similarity) / pi (a metric; 0.5 = orthogonal). dist A: each pair once (i < j); dist A B:
    every row of A with every row of B. --level windows: ANI and aligned fractions instead (below).

    \b
    Example (genomes embedded with embed --per-file):
      $ mrl-dna dist genomes.h5 --dim 64 | head -3
      #query	target	similarity	distance
      Blochmannia_pennsylvanicus_BPEN	Blochmannia_pennsylvanicus_BPenn7	0.999980	0.002015
      Blochmannia_pennsylvanicus_BPEN	Blochmannia_chromaiodes_640	0.999861	0.005309

    Example: mrl-dna dist genomes.h5 --dim 64 --min-sim 0.95 -o close_pairs.tsv.gz

    Example: mrl-dna dist genomes.h5 --format phylip -o genomes.phy

    \b
    --level windows (genomes embedded with embed --per-file --save-windows, or one record per genome):
      columns query, target, ani (mean of the two directions), af_query, af_target, ani_qt, ani_tq,
      windows_query/target (windows scored), homologous_query/target (of them homologous).
      Exact: every scored query window (every 4th) against every saved window of the other genome.
      Estimated: identity (the model's calibration.json, simulation-calibrated to 75% identity, unbiased to
      90% on genomes with uneven divergence; saved windows at stride 250 are the calibrated default),
      homology (colinear + reciprocal best hits), af. NA: fewer than 5 homologous windows, an ANI below the
      calibrated range, max(af) < --min-af, or a model without calibration (one warning). With a
      calibration a direction's af is NA where its ANI is (on small genomes chance passes the homology test).
    Example: mrl-dna dist genomes.h5 --level windows --min-ani 95 > species_pairs.tsv
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_blas_threads(threads)
    if level is CompareLevel.windows:
        _windows(a, b, fmt=fmt, dim=dim, min_sim=min_sim, min_ani=min_ani, min_af=min_af, model=model, output=output,
                 force=force, header=not no_header, device=device, timer=timer)
        return
    refuse_options("applies to --level windows only; add --level windows or drop it", min_ani=min_ani is not None,
                   min_af=min_af != MIN_AF, model=model is not None)
    s = dist(a, b, dim=dim, fmt=fmt, min_sim=min_sim, output=output, force=force, header=not no_header,
             device=device, warn=console.warn)
    lines = console.count(s.lines, "pair" if fmt is DistFormat.long else "row")
    where = "stdout" if output is None or str(output) == "-" else str(output)
    console.footer(f"{s.n_queries:,} x {console.count(s.n_targets, 'row')} at dim {s.dim}: "
                   f"{console.count(s.pairs_scored, 'pair')} scored, {lines} written ({fmt.value}) to {where} on "
                   f"{s.device}", timer)


def _windows(a: Path, b: Path | None, *, fmt: DistFormat, dim, min_sim, min_ani, min_af, model, output, force: bool,
             header: bool, device: str, timer) -> None:
    """dist --level windows: the ANI TSV (compare/windows.py)."""
    refuse_options("applies to --level records only (windows are compared at full width, one line per pair); drop "
                   "it, or use --min-ani", format=fmt is not DistFormat.long, dim=dim is not None,
                   min_sim=min_sim is not None)
    dev = compute_device(device)
    with WindowLevel(a, b, model_dir=model, device=dev) as level, \
            text_output(output, inputs=[p for p in (a, b) if p is not None], force=force, example="ani.tsv") as out:
        s = window_dist(level, min_ani=min_ani, min_af=min_af, write=lambda line: out.write(line.encode()),
                        header=header)
    where = "stdout" if output is None or str(output) == "-" else str(output)
    screen = (f"{console.count(s.screened_out, 'pair')} skipped by the pooled screen (64-dim cosine < {s.threshold:.4f}), "
              if s.threshold is not None else "")
    console.footer(f"{s.n_queries:,} x {console.count(s.n_targets, 'genome')}: {screen}"
                   f"{console.count(s.compared, 'pair')} compared by windows, {console.count(s.lines, 'line')} written "
                   f"to {where} on {dev}{'' if s.calibrated else ' (uncalibrated: ANI NA)'}", timer)
