"""mrl-dna eval: fragment-retrieval accuracy of a model at every Matryoshka dim, beside k-mer profiles."""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.evaluate import retrieval as ev
from mrl_dna.evaluate import report as er
from mrl_dna.cli.options import (batch_tokens_option, device_option, existing, force_option, model_option, number_list,
                                 quiet_option, set_threads, text_output_option, threads_option)
from mrl_dna.errors import ConfigError
from mrl_dna.inputs.genomes import read_groups
from mrl_dna.kmer import KmerEmbedder
from mrl_dna.model import load_model
from mrl_dna.store.textout import text_output

FC = ev.FragmentConfig  # defaults shown by --help come from the dataclass

def command(
    genomes: list[Path] = typer.Argument(
        ..., callback=existing(what="genome"), help="Genome FASTA files, one genome per file (the database)."
    ),
    model: str = model_option("Model directory [default: the bundled default model]."),
    no_model: bool = typer.Option(False, "--no-model", help="Score only the k-mer baselines (no model needed)."),
    baseline: str = typer.Option(
        None, "--baseline", help="A second model directory scored beside it (e.g. a --no-matryoshka model)."
    ),
    dims: str = typer.Option(
        None, "--dims", help="Matryoshka dims to score, comma-separated [default: all of the model's]."
    ),
    kmer: str = typer.Option("4,6", "--kmer", help="k-mer profile baselines to score beside the model ('' for none)."),
    fragments: str = typer.Option(",".join(map(str, FC.lengths)), "--fragments", help="Fragment lengths in bp, comma-separated."),
    divergence: str = typer.Option(",".join(f"{d:g}" for d in FC.divergences), "--divergence", help="Per-base mutation rates, comma-separated."),
    per_genome: int = typer.Option(FC.per_genome, "--per-genome", min=1, help="Fragments per genome, length and divergence."),
    seed: int = typer.Option(FC.seed, "--seed", help="Seed for fragment positions and mutations."),
    species: Path = typer.Option(
        None, "--species", callback=existing(what="--species"),
        help="TSV genome<TAB>species [default: MANIFEST.tsv next to the files, else the file name up to '_'].",
    ),
    recall_k: str = typer.Option("5", "--recall-k", help="k for genome recall@k, comma-separated."),
    output: Path = text_output_option("Also write the markdown report here (gzip when the name ends in .gz; written as NAME.partial until complete)."),
    plot: Path = typer.Option(None, "--plot", help="Write a PNG of accuracy vs dims and vs search cost (needs matplotlib)."),
    device: str = device_option(),
    threads: int = threads_option(),
    batch_tokens: int = batch_tokens_option(),
    force: bool = force_option("existing -o and --plot files"),
    quiet: bool = quiet_option(),
) -> None:
    """Fragment-retrieval benchmark: species/genome top-1 and recall@k at every Matryoshka dim.

    Fragments of each genome (mutated at each divergence, half reverse-complemented) are searched against
    one vector per genome. The markdown table goes to stdout (and -o); progress to stderr.

    Example:  mrl-dna eval ../shared/data/genomes/C*.fa.gz --model my_model --kmer 4,6 -o report.md --plot report.png
    """
    console.set_quiet(quiet)
    timer = console.Timer()
    # every check that can fail comes before the benchmark, which runs for minutes
    er.check_outputs(output=output, plot=plot, inputs=genomes, force=force)
    set_threads(threads)
    cfg = ev.FragmentConfig(lengths=number_list(fragments, "--fragments", example="2000,5000"), divergences=number_list(divergence, "--divergence", float, "0,0.05,0.1,0.2"),
                            per_genome=per_genome, seed=seed)
    ks = number_list(recall_k, "--recall-k", example="5,10")
    methods: list[ev.Method] = []
    if not no_model:
        main = load_model(model)
        info = main.info
        use = ev.check_dims(number_list(dims, "--dims"), info.matryoshka_dims, info.name) if dims else None
        methods.append(ev.model_method(main, f"mrl-dna {info.name}", use, device=device, batch_tokens=batch_tokens))
        if baseline:
            base = load_model(baseline)
            name = f"baseline {base.info.name}"
            methods.append(ev.model_method(base, name, methods[0].dims, device=device, batch_tokens=batch_tokens))
    elif model or baseline or dims:
        raise ConfigError("--no-model cannot be combined with --model, --baseline or --dims; drop one of them")
    for k in number_list(kmer, "--kmer", example="4,6") if kmer.strip() else ():
        methods.append(ev.Method(f"{k}-mer profile", KmerEmbedder(k)))
    if not methods:
        raise ConfigError("nothing to score: --no-model with --kmer ''; give a model or k-mer sizes, e.g. --kmer 4,6")

    table = ev.load_genomes([str(p) for p in genomes], species=read_groups(species) if species else None)
    report = ev.run_benchmark(table, methods, cfg, recall_k=ks)
    md = er.format_markdown(report)
    typer.echo(md)
    if output:  # OUTPUT.partial renamed when complete; gzip when the name ends in .gz
        with text_output(output, inputs=genomes, force=force, example="report.md") as fh:
            fh.write((md + "\n").encode())
    if plot:
        er.plot_report(report, plot)
        console.info(f"eval: wrote plot {plot}")
    console.footer(f"eval: {console.count(len(table), 'genome')}, {console.count(len(methods), 'method')}", timer)
