"""The `mrl-dna` command line: one thin file per subcommand, registered here.

Each subcommand module defines `command(...)`, a typer function that parses options, calls one library
function with explicit keyword arguments and renders the result. Errors are turned into exit codes in
`main()` only (see mrl_dna.errors for the codes).

Start-up: a command's module is imported only when that command runs (`COMMANDS` below names each module
and its one-line help), so `mrl-dna --version`, `--help`, `info` and `export` never import torch (~0.3 s
instead of ~2.7 s). tests/test_cli_grammar.py checks that the one-line helps match the commands' docstrings.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback

import click
import typer
from typer.core import TyperGroup
from typer.main import get_command_from_info
from typer.models import CommandInfo

from mrl_dna import console
from mrl_dna.errors import DiskFullError, MrlDnaError, disk_full_reason
from mrl_dna.version import __version__

# command -> (module, the first line of its docstring, shown by `mrl-dna --help` without importing it)
COMMANDS: dict[str, tuple[str, str]] = {
    "embed": ("mrl_dna.cli.embed", "Embed every record of FASTA, GenBank or EMBL files into OUTPUT (HDF5): one L2-normalised vector per record."),
    "search": ("mrl_dna.cli.search", "Search embedding files for the nearest sequences of each query; TSV hits on stdout."),
    "info": ("mrl_dna.cli.info", "Print what an embedding file holds: records, dims, dtype, model, window/stride, pooling, completeness."),
    "train": ("mrl_dna.cli.train", "Train a Matryoshka DNA embedding model on genomes; no labels needed."),
    "eval": ("mrl_dna.cli.eval", "Fragment-retrieval benchmark: species/genome top-1 and recall@k at every Matryoshka dim."),
    "index": ("mrl_dna.cli.index", "Build a FAISS index over the first DIM dims of an embedding file, for `mrl-dna search`."),
    "merge": ("mrl_dna.cli.merge", "Merge embedding files from one model and options (typically all shards of one run) into one file."),
    "export": ("mrl_dna.cli.export", "Write one embedding prefix per record as TSV (stdout by default), a .npy matrix plus an ids file, or Parquet."),
    "dist": ("mrl_dna.cli.dist", "Cosine similarity and angular distance of all pairs of rows of one or two embedding files."),
    "cluster": ("mrl_dna.cli.cluster", "Cluster the rows of an embedding file: dereplication at a cosine cut-off or K-means binning."),
    "calibrate": ("mrl_dna.cli.calibrate", "Build a model's identity calibration (calibration.json) by simulation with evolve.mutate."),
}


class _LazyGroup(TyperGroup):
    """Commands from COMMANDS, each built from its module on first use (plus any registered eagerly)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(n for n in self.commands if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            module = importlib.import_module(COMMANDS[name][0])
            info = CommandInfo(name=name, callback=module.command, no_args_is_help=True)
            self.commands[name] = get_command_from_info(info, pretty_exceptions_short=False, rich_markup_mode=None)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1] if name in COMMANDS else self.commands[name].get_short_help_str(80))
                for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=_LazyGroup,
    name="mrl-dna",
    help="Matryoshka embeddings of long DNA sequences: one vector per sequence, every prefix usable.\n\n"
    "Example:  mrl-dna embed data/sample.fa -o sample.h5 && mrl-dna search data/sample.fa sample.h5",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mrl-dna {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Matryoshka embeddings of long DNA sequences."""


def load_commands() -> dict[str, click.Command]:
    """Every command, built (imports every command module: for tests and tools, never at start-up)."""
    group = typer.main.get_command(app)
    ctx = click.Context(group)
    return {name: group.get_command(ctx, name) for name in group.list_commands(ctx)}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map errors to exit codes (0 ok, 1 user error, 2 usage, 3 internal).

    Typer/click handle usage errors themselves (exit 2, with the usage line); domain errors and bugs are
    caught here, so no user mistake ever ends in a traceback.
    """
    console.start_run(whole_process=argv is None)  # the footer's `real`: what `time mrl-dna ...` says
    if hasattr(signal, "SIGPIPE"):  # `mrl-dna search ... | head`: end quietly when the reader leaves, like cat
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    hook = sys.unraisablehook
    if not os.environ.get("MRL_DNA_DEBUG"):
        # h5py reports a failed close of an object (a full disk, Ctrl-C mid-write) as "Exception ignored in
        # ...__dealloc__" with a traceback, on top of the one-line error that says what happened
        sys.unraisablehook = lambda unraisable: None
    args = sys.argv[1:] if argv is None else argv
    try:
        app(args=argv, prog_name="mrl-dna")  # standalone: raises SystemExit with click's code
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code == 130 and _caused_by(e, KeyboardInterrupt):  # typer turns Ctrl-C into a silent exit 130
            _say(f"mrl-dna: interrupted; {_after_interrupt(args)}")
    except KeyboardInterrupt:
        _say(f"mrl-dna: interrupted; {_after_interrupt(args)}")
        code = 130
    except MrlDnaError as e:
        _say(f"mrl-dna: error: {e}")
        code = e.exit_code
        if isinstance(e, DiskFullError) and argv is None:
            # HDF5 cannot close a file on a full disk: its teardown at exit prints tracebacks or crashes.
            # End now, as a kill would: the rows committed before the failure are on disk, and the rerun
            # resumes from them (tests/test_cli_data_safety.py checks that the file is then bitwise right).
            sys.stdout.flush()
            os._exit(code)
    except BrokenPipeError:  # `mrl-dna search ... | head`: the reader left, which is fine
        _silence_stdout()
        code = 0
    except Exception as e:  # a bug: say so in one line, traceback on request
        if os.environ.get("MRL_DNA_DEBUG"):
            traceback.print_exc()
        full = disk_full_reason(e)
        if full:  # not a bug: a write failed for want of space
            _say(f"mrl-dna: error: {full}; free some space (or write to another disk) and rerun the same command")
            code = 1
        else:
            _say(
                f"mrl-dna: internal error: {type(e).__name__}: {e} "
                "(a bug; rerun with MRL_DNA_DEBUG=1 for the traceback and report it)"
            )
            code = 3
    finally:
        if argv is not None:  # called in-process (tests): leave the interpreter as it was
            sys.unraisablehook = hook
    sys.exit(code)


def _say(line: str) -> None:
    """One line on stderr in ONE write, so lines of several processes (torchrun ranks) never interleave."""
    sys.stderr.write(line + "\n")  # print() would write the text and the newline separately
    sys.stderr.flush()


def _caused_by(e: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, kind):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _after_interrupt(args: list[str]) -> str:
    """What to do after Ctrl-C, by command: embed keeps what it flushed, train its last checkpoint."""
    cmd = next((a for a in args if not a.startswith("-")), "")
    if cmd == "embed":
        return "rerun the same command to resume"
    if cmd == "train":
        return "rerun the same command with --resume to continue from the last checkpoint"
    return "rerun the same command"


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
