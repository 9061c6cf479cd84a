"""stderr talk: progress bars, warnings and the one-line run footer. stdout is reserved for data.

Every command uses these helpers so that `--quiet` silences all progress in one place and the footer reads
the same everywhere (lh3-style: version, wall time, peak memory, command line).
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from mrl_dna import __version__

err = Console(stderr=True, highlight=False, soft_wrap=True)

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


def info(msg: str) -> None:
    """A progress/diagnostic line on stderr (silenced by --quiet)."""
    if not _quiet:
        err.print(msg, markup=False)


def warn(msg: str) -> None:
    """A warning on stderr; never silenced (a warning is about the data, not progress)."""
    err.print(f"mrl-dna: warning: {msg}", markup=False, style="yellow")


def peak_memory_mb() -> float:
    """Peak resident memory of this process (MiB), from getrusage."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


@contextlib.contextmanager
def progress(description: str, total: float | None, unit: str = "bp") -> Iterator["_Bar | _NullBar"]:
    """A rich progress bar on stderr with ETA; a no-op under --quiet or when stderr is not a terminal
    and total is unknown. Yields an object with `advance(n)` and `update(description=...)`."""
    if _quiet:
        yield _NullBar()
        return
    cols = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn() if unit != "bp" else TextColumn("{task.completed:,.0f}/{task.total:,.0f} bp"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*cols, console=err, transient=False, redirect_stdout=False, redirect_stderr=False) as p:
        task = p.add_task(description, total=total)
        yield _Bar(p, task)


class _Bar:
    def __init__(self, p: Progress, task) -> None:
        self._p, self._task = p, task

    def advance(self, n: float) -> None:
        self._p.advance(self._task, n)

    def update(self, **kw) -> None:
        self._p.update(self._task, **kw)


class _NullBar:
    def advance(self, n: float) -> None:
        pass

    def update(self, **kw) -> None:
        pass


class Timer:
    """Wall-clock timer for the run footer."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def footer(summary: str, timer: Timer) -> None:
    """The one-line run summary on stderr: what was done, then version, wall time, peak memory, command line.
    Printed even under --quiet? No: --quiet silences it too (errors and warnings still print)."""
    if _quiet:
        return
    cmd = " ".join(["mrl-dna", *sys.argv[1:]])  # the same whether run as mrl-dna, python -m or torchrun
    err.print(
        f"[mrl-dna {__version__}] {summary}; real {timer.seconds:.1f} s; peak RSS {peak_memory_mb():.0f} MiB; cmd: {cmd}",
        markup=False,
    )
