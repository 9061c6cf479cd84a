"""The `mrl-dna` command line: one thin file per subcommand, registered here.

Each subcommand module defines `command(...)`, a typer function that parses options, calls one library
function with explicit keyword arguments and renders the result. Errors are turned into exit codes in
`main()` only (see mrl_dna.errors for the codes).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

import typer

from mrl_dna.errors import DiskFullError, MrlDnaError, disk_full_reason
from mrl_dna.version import __version__

app = typer.Typer(
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


def _register() -> None:
    from mrl_dna.cli import embed, eval as eval_, export, index, info, merge, search, train

    app.command("embed", no_args_is_help=True)(embed.command)
    app.command("search", no_args_is_help=True)(search.command)
    app.command("info", no_args_is_help=True)(info.command)
    app.command("train", no_args_is_help=True)(train.command)
    app.command("eval", no_args_is_help=True)(eval_.command)
    app.command("index", no_args_is_help=True)(index.command)
    app.command("merge", no_args_is_help=True)(merge.command)
    app.command("export", no_args_is_help=True)(export.command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map errors to exit codes (0 ok, 1 user error, 2 usage, 3 internal).

    Typer/click handle usage errors themselves (exit 2, with the usage line); domain errors and bugs are
    caught here, so no user mistake ever ends in a traceback.
    """
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
