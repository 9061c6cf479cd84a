"""The fragment-retrieval report of `mrl-dna eval` and scripts/bench/retrieval.py: the markdown tables, the
plot, and the checks that -o and --plot can be written before a benchmark starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrl_dna.errors import ConfigError
from mrl_dna.evaluate.retrieval import Report
from mrl_dna.store import check_output_not_input


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def format_markdown(report: Report, *, title: str = "Fragment retrieval") -> str:
    """Markdown: per fragment length, one table of species/genome top-1 per divergence with retention and
    search cost, then one table of genome recall@k."""
    cfg = report.config
    n_sp = len(set(report.species))
    divs = sorted({s.divergence for s in report.scores})
    lines = [
        f"### {title}",
        "",
        f"{len(report.genomes)} genomes ({n_sp} species) in the database; {cfg.per_genome} fragments per genome, "
        f"length and divergence (half reverse-complemented; substitutions + {cfg.indel_fraction:.0%} indels of "
        f"1-{cfg.max_indel} bp); seed {cfg.seed}. Values are % of queries; ties count as misses. "
        "Retention = mean species top-1 at this dim / at the method's full width. "
        "Cost = multiply-adds per query for brute force (dims x database rows).",
        "",
    ]
    if report.identity:
        lines += ["Mean identity of the fragments to their source: " + ", ".join(
            f"{d:.0%} divergence -> {100 * i:.1f}%" for d, i in sorted(report.identity.items())) + ".", ""]
    for length in sorted({s.fragment_length for s in report.scores}):
        dl = [f"{d:.0%}" for d in divs]
        head = (["method", "dims", "cost"] + [f"species top-1 @{d}" for d in dl]
                + [f"genome top-1 @{d}" for d in dl] + ["species retention"])
        lines += [f"**{length} bp fragments**", "", "| " + " | ".join(head) + " |",
                  "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        for m in report.methods():
            full = _mean_species(report, m, report.full_dims.get(m, max(report.dims(m))), length, divs)
            for k in report.dims(m):
                cells = [report.get(m, k, length, d) for d in divs]
                ret = _mean_species(report, m, k, length, divs) / full if full > 0 else float("nan")
                dim_txt = str(k) if k else "-"
                lines.append("| " + " | ".join(
                    [m, dim_txt, f"{cells[0].cost:,}" if k else "-"] + [_pct(c.species_top1) for c in cells]
                    + [_pct(c.genome_top1) for c in cells] + [_pct(ret) if len(report.dims(m)) > 1 else "-"]) + " |")
        lines.append("")
        if report.recall_k:
            head = ["method", "dims"] + [f"recall@{k} @{d}" for k in report.recall_k for d in dl]
            lines += ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
            for m in report.methods():
                for k in report.dims(m):
                    cells = [report.get(m, k, length, d) for d in divs]
                    vals = [_pct(dict(c.recall)[r]) for r in report.recall_k for c in cells]
                    lines.append("| " + " | ".join([m, str(k) if k else "-"] + vals) + " |")
            lines.append("")
    return "\n".join(lines)


def _mean_species(report: Report, method: str, dim: int, length: int, divs: Sequence[float]) -> float:
    return float(np.mean([report.get(method, dim, length, d).species_top1 for d in divs]))


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend; ConfigError naming the install when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ConfigError("--plot needs matplotlib; pip install matplotlib (or pip install 'mrl-dna[plot]')") from e
    return plt


def check_outputs(*, output: Path | None, plot: Path | None, inputs: Sequence[str | Path], force: bool) -> None:
    """Before any work (a benchmark runs for minutes): the report (-o) and the plot (--plot) can be written.
    Their directory exists, neither is one of the input genomes, an existing file is replaced only with
    force, and --plot has matplotlib and a file type it can write. ConfigError naming the fix otherwise."""
    named = [(output, "-o"), (plot, "--plot")]
    if output is not None and plot is not None and Path(output).resolve() == Path(plot).resolve():
        raise ConfigError(f"-o and --plot are both {output}; give them different file names")
    for path, option in named:
        if path is None:
            continue
        path = Path(path)
        d = path.parent if str(path.parent) else Path(".")
        if not d.is_dir():
            raise ConfigError(f"{option} {path}: directory {d} does not exist; create it (mkdir -p {d}) or choose another path")
        if path.is_dir():
            raise ConfigError(f"{option} {path} is a directory; give a file name")
        check_output_not_input(path, inputs, what="input genome")
        if path.exists() and not force:
            raise ConfigError(f"{option} {path} already exists; pass --force to overwrite it or choose another path")
    if plot is not None:
        plt = _pyplot()
        kinds = plt.figure().canvas.get_supported_filetypes()
        plt.close("all")
        kind = Path(plot).suffix.lstrip(".").lower()
        if kind and kind not in kinds:
            raise ConfigError(f"--plot {plot}: matplotlib cannot write .{kind} files; use .png, .pdf or .svg")


def plot_report(report: Report, path: str | Path) -> None:
    """PNG: species top-1 vs Matryoshka dims (left) and vs search cost = dims x DB rows (right); one colour
    per method, one line style per divergence; single-width methods (k-mer profiles) are points."""
    plt = _pyplot()
    divs = sorted({s.divergence for s in report.scores})
    styles, markers = ["-", "--", "-.", ":"], ["o", "s", "^", "D", "v"]
    lengths = sorted({s.fragment_length for s in report.scores})
    fig, axes = plt.subplots(len(lengths), 2, figsize=(11, 4.2 * len(lengths)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, length in enumerate(lengths):
        for col, xkey in enumerate(("dims", "cost")):
            ax = axes[row][col]
            for mi, m in enumerate(report.methods()):
                dims = [k for k in report.dims(m) if k > 0]
                if not dims:
                    continue
                for di, d in enumerate(divs):
                    cells = [report.get(m, k, length, d) for k in dims]
                    xs = [c.dim if xkey == "dims" else c.cost for c in cells]
                    ys = [100 * c.species_top1 for c in cells]
                    ax.plot(xs, ys, styles[di % len(styles)], marker=markers[di % len(markers)], ms=4,
                            color=colours[mi % len(colours)], label=f"{m} @{d:.0%}")
            ax.set_xscale("log", base=2)
            ax.set_xlabel("dims" if xkey == "dims" else "search cost per query (dims x DB rows)")
            ax.set_ylabel("species top-1 (%)")
            ax.set_title(f"{length} bp fragments")
            ax.grid(alpha=0.3)
        axes[row][1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
