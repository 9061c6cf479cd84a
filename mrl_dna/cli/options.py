"""Parsing shared by the CLI files: comma-separated number lists (typer has no list-in-one-option type), and
the options every command spells the same way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from mrl_dna import runtime
from mrl_dna.device import check_device
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.store.writer import check_hdf5_name
from mrl_dna.vectors import check_cosine


def number_list(text: str | None, option: str, kind: Callable[[str], float] = int, example: str = "8,16,64"):
    """'8,16,64' -> (8, 16, 64); None stays None; a bad or empty list is a ConfigError naming the option."""
    if text is None:
        return None
    try:
        vals = tuple(kind(x) for x in text.split(",") if x.strip())
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ConfigError(f"{option} {text!r} is not a comma-separated list of {what}; e.g. {option} {example}") from None
    if not vals:
        raise ConfigError(f"{option} is empty; give at least one value, e.g. {option} {example}")
    return vals


# ---- the grammar every command shares (tests/test_cli_grammar.py checks it over all commands) ------------
# -f/--force: every command that writes (and no other option is -f); -o/--output: every command that writes a
# file; --threads and --device: every command that computes with torch (checked while options are parsed,
# before any work); -k: hits only; -q/--quiet everywhere; a missing input file is exit 1 with one line.


def force_option(what: str = "an existing OUTPUT"):
    return typer.Option(False, "-f", "--force", help=f"Replace {what} (without it, an existing output is an error).")


def quiet_option(help: str = "No progress or summary on stderr (warnings and errors still print)."):
    return typer.Option(False, "-q", "--quiet", help=help)


def threads_option(what: str = "CPU threads (0 = auto: the cores other processes leave free, measured at the "
                   "start; oversubscribed threads run several times slower"):
    return typer.Option(0, "--threads", min=0, help=f"{what}; more than the CPUs is clamped to them, with a warning).")


def device_option(help: str = "auto | cpu | cuda | cuda:N (auto: a GPU when torch sees one, else the CPU; bf16 "
                  "autocast on CUDA)."):
    return typer.Option("auto", "--device", callback=_checked_device, help=help)


def model_option(help: str):
    """-m/--model DIR: the model a command embeds with (embed, search's FASTA queries, eval)."""
    return typer.Option(None, "-m", "--model", help=help)


def batch_tokens_option(help: str = "Bases per model batch [default: embed's]."):
    return typer.Option(None, "--batch-tokens", min=1, help=help)


def dim_option(help: str = "Matryoshka prefix width compared (re-normalised). Default: the full width.", default: int | None = None):
    """--dim K: the Matryoshka prefix a command reads (dist, cluster, export, search, index)."""
    return typer.Option(default, "--dim", min=1, help=help)


def min_sim_option(help: str):
    """--min-sim S: a cosine cut-off (dist, cluster), -1..1, checked while the options are parsed (cosine_cutoff)."""
    return typer.Option(None, "--min-sim", callback=cosine_cutoff("--min-sim"), help=help)


def text_output_option(help: str = "Write here instead of stdout (gzip when the name ends in .gz; written as NAME.partial "
                       "until complete)."):
    """-o/--output of a text result (dist, cluster, eval's report), written through store.textout."""
    return typer.Option(None, "-o", "--output", help=help)


def no_header_option(header: str, where: str = ""):
    """--no-header of a command whose TSV starts with a '#...' header line (`header`, e.g. '#query...')."""
    return typer.Option(False, "--no-header", help=f"Omit the '{header}' header line{where}.")


def embedding_file_argument(metavar: str, default=..., help: str = "An embedding file (mrl-dna embed, merge)."):
    """An embedding file read as a whole (dist, cluster): it must exist (exit 1 with one line otherwise)."""
    return typer.Argument(default, callback=existing(what="embedding file"), metavar=metavar, help=help)


def blas_threads_option():
    """--threads of the commands that compute with numpy (dist, cluster)."""
    return threads_option("BLAS threads for the products (0 = all cores; on a machine shared with other jobs give 1 "
                          "or 2: oversubscribed threads run several times slower")


def products_device_option():
    """--device of the commands that compute with numpy, and with torch only on a GPU (dist, cluster)."""
    return device_option("auto | cpu | cuda | cuda:N: where the products run (auto: the CPU, in numpy without "
                         "loading torch, unless an NVIDIA GPU is visible).")


def parsed_by(parse: Callable):
    """A typer callback: the option's value through `parse`, whose ConfigError becomes click's usage error (exit
    2 with the usage line: a bad option value, README's exit codes)."""

    def check(value):
        try:
            return parse(value)
        except ConfigError as e:
            raise typer.BadParameter(str(e)) from None

    return check


def _checked_device(value: str) -> str:
    return check_device(value) if value is not None else value


def set_threads(threads: int, auto: bool = True) -> None:
    """--threads N: torch's intra-op threads (and FAISS's, when it is loaded); 0 = auto (runtime.set_threads:
    the cores not busy with other processes), or with auto=False torch's default (all cores)."""
    if threads or auto:
        runtime.set_threads(threads)


def hdf5_output(value):
    """A typer callback for -o of an HDF5 embedding file (embed, merge): a .gz name is refused while the options
    are parsed (exit 2), before a model is loaded (store.check_hdf5_name)."""
    if value is not None:
        check_hdf5_name(value)
    return value


def cosine_cutoff(option: str):
    """A typer callback for a cosine cut-off (search --min-score, dist and cluster --min-sim): -1..1, else one
    OptionError line (exit 2) while the options are parsed (vectors.check_cosine, which the library runs too)."""
    return lambda value: check_cosine(value, option)


def existing(kind: str = "file", what: str = "input"):
    """A typer callback: every path given must exist (a file, or a directory for kind='dir'), else one
    InputError line (exit 1, as every missing input in every command). '-' (stdin) passes."""

    def check(value):
        if value is None:
            return value
        for p in value if isinstance(value, (list, tuple)) else [value]:
            path = Path(p)
            if str(p) == "-":
                continue
            if not path.exists():
                raise InputError(f"{what} {p}: no such {'directory' if kind == 'dir' else 'file'}; check the path")
            if kind == "file" and path.is_dir():
                raise InputError(f"{what} {p} is a directory; give a file")
            if kind == "dir" and not path.is_dir():
                raise InputError(f"{what} {p} is not a directory; give a directory")
        return value

    return check
