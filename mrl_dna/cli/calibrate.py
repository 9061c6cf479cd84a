"""mrl-dna calibrate: build (or rebuild) a model directory's identity calibration, calibration.json, by
simulation (homology/build.py): the map from window score to sequence identity that `dist --level windows` and
`cluster --level windows` read, per saved-window stride, with its valid range and the pooled screen's bounds.

Example: mrl-dna calibrate my_model/ calibration_genomes/ --threads 1
"""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import device_option, force_option, number_list, quiet_option, set_threads, threads_option
from mrl_dna.device import resolve_device
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.homology.build import RATES, STRIDES, build_calibration, read_genomes
from mrl_dna.homology.calibration import CALIBRATION_FILE
from mrl_dna.model import load_model


def command(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR", help="The model directory to calibrate (calibration.json is written into it)."),
    genomes: list[str] = typer.Argument(..., metavar="GENOMES...", help="Calibration genomes: FASTA files, directories or quoted globs, one genome per file (>= 2; the shipped model used 100 corpus genomes of 40-330 kb spanning GC 0.25-0.69). Use genomes you will not benchmark on."),
    strides: str = typer.Option(",".join(str(s) for s in STRIDES), "--strides", help="Saved-window strides (bp) to build a table for: each --windows-stride your embedding files use needs one."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated mutations and end cuts."),
    screen: bool = typer.Option(True, "--screen/--no-screen", help="Also measure the pooled screen's bounds (dist --level windows --min-ani skips pairs only with them)."),
    device: str = device_option(),
    force: bool = force_option("an existing calibration.json"),
    threads: int = threads_option(),
    quiet: bool = quiet_option(),
) -> None:
    """Build a model's identity calibration (calibration.json) by simulation with evolve.mutate.

    Each genome is copied at 17 mutation rates (identity ~100% to ~68%), the copy's ends cut at random so the
    window grids have a random phase, both embedded as embed --save-windows --windows-stride S places windows;
    the table per stride maps the median background-normalised window score to event identity (isotonic), its
    valid range is where held-out genomes' estimates stay within 1 ANI point. Takes ~20 s per 150 kb genome
    and 3 strides on one busy CPU thread.

    Example: mrl-dna calibrate my_model/ calibration_genomes/ --threads 1
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    set_threads(threads)
    target = Path(model_dir) / CALIBRATION_FILE
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; add --force to rebuild it")
    stride_list = number_list(strides, "--strides", example="250,500,1000")
    gs = read_genomes(genomes)
    if len(gs) < 2:
        raise InputError(f"calibrate needs at least 2 genomes with bases; got {len(gs)}")
    model = load_model(model_dir)
    cal = build_calibration(model, gs, strides=tuple(stride_list), seed=seed, screen=screen,
                            device=str(resolve_device(device)),
                            progress=console.info)
    path = cal.save(model_dir)
    for s, t in sorted(cal.tables.items()):
        valid = "none" if t.valid_min >= 1.0 else f"{100 * t.valid_min:.0f}%"
        console.info(f"stride {s}: valid from {valid} identity")
    console.footer(f"{console.count(len(gs), 'genome')} -> {path}", timer)
