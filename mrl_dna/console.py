"""stderr talk: progress bars, warnings and the one-line run footer. stdout is reserved for data.

Every command uses these helpers so that `--quiet` silences all progress in one place and the footer reads
the same everywhere (lh3-style: version, wall time, peak memory, command line).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import resource
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from mrl_dna.version import __version__

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


# Seconds between plain progress lines when stderr is not a terminal (a SLURM or nohup log): often enough
# that a log shows a run is alive and how far it got, rare enough that a day-long run logs ~3,000 lines.
# $MRL_DNA_PROGRESS_SECONDS overrides it (tests set 0: a line at every advance).
PROGRESS_SECONDS = 30.0


@contextlib.contextmanager
def progress(description: str, total: float | None, unit: str = "bp") -> Iterator["_Bar | _LineBar | _NullBar"]:
    """Progress on stderr; yields an object with `advance(n)` and `update(description=...)`.

    A terminal gets a live rich bar with ETA; anything else (a file, a pipe: batch logs) gets one plain line
    every PROGRESS_SECONDS and a last line at the end; --quiet gets nothing. `total` may be None (stdin: the
    size is unknown): the bar then shows the amount done and the elapsed time only."""
    if _quiet:
        yield _NullBar()
        return
    if not err.is_terminal:
        bar = _LineBar(description, total, unit, _progress_seconds())
        yield bar
        bar.line()
        return
    cols = [
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _Amount(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    with Progress(*cols, console=err, transient=False, redirect_stdout=False, redirect_stderr=False) as p:
        task = p.add_task(description, total=total)
        yield _Bar(p, task)


def _progress_seconds() -> float:
    env = os.environ.get("MRL_DNA_PROGRESS_SECONDS", "")
    try:
        return max(0.0, float(env)) if env else PROGRESS_SECONDS
    except ValueError:
        return PROGRESS_SECONDS  # a bad value only changes how often a log line appears


def _amount(done: float, total: float | None, unit: str) -> str:
    """'1,234/5,000 bp' or, with an unknown total, '1,234 bp'."""
    return f"{done:,.0f}/{total:,.0f} {unit}" if total is not None else f"{done:,.0f} {unit}"


class _Amount(ProgressColumn):
    """done/total with the unit; done alone when the total is unknown (rich's columns format None and fail)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        return Text(_amount(task.completed, task.total, self.unit))


class _Bar:
    def __init__(self, p: Progress, task) -> None:
        self._p, self._task = p, task

    def advance(self, n: float) -> None:
        self._p.advance(self._task, n)

    def update(self, **kw) -> None:
        self._p.update(self._task, **kw)


class _LineBar:
    """Progress as plain lines for logs: 'embedding: 1,234,567/4,000,000 bp (31%), 0:00:12 elapsed, eta 0:00:26'.

    A line is written (in one write, see `say`) at the first advance after every `every` seconds."""

    def __init__(self, description: str, total: float | None, unit: str, every: float) -> None:
        self.description, self.total, self.unit, self.every = description, total, unit, every
        self.done = 0.0
        self.start = self._last = time.perf_counter()

    def advance(self, n: float) -> None:
        self.done += n
        if time.perf_counter() - self._last >= self.every:
            self.line()

    def update(self, **kw) -> None:
        self.description = kw.get("description", self.description)

    def line(self) -> None:
        now = time.perf_counter()
        self._last = now
        elapsed = now - self.start
        text = f"{self.description}: {_amount(self.done, self.total, self.unit)}"
        if self.total:
            text += f" ({100 * self.done / self.total:.0f}%)"
        text += f", {_clock(elapsed)} elapsed"
        if self.total and self.done and self.done < self.total:
            text += f", eta {_clock(elapsed * (self.total - self.done) / self.done)}"
        say(text)


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(seconds)))


class _NullBar:
    def advance(self, n: float) -> None:
        pass

    def update(self, **kw) -> None:
        pass


def say(line: str) -> None:
    """One line on stderr in ONE write, so that the lines of several processes (torchrun ranks, a log that
    several jobs append to) never interleave mid-line."""
    sys.stderr.write(line + "\n")  # print() writes the text and the newline separately
    sys.stderr.flush()


def process_seconds() -> float:
    """Seconds since this process started, interpreter start-up and imports included (what `time` calls real):
    Linux's /proc/self/stat start time against CLOCK_BOOTTIME, the clock it is counted on. Elsewhere (or if
    unreadable) the seconds since this module was imported, which leaves out only Python's own start."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time after boot, in clock ticks
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()
_run_start: float | None = None  # perf_counter() at the start of the run (start_run), for Timer


def start_run(*, whole_process: bool) -> None:
    """Where the run footer's `real` time starts: the start of the process (the `mrl-dna` command), or now (a
    command run in-process by another program, e.g. cli.main(argv) in a test)."""
    global _run_start
    _run_start = time.perf_counter() - (process_seconds() if whole_process else 0.0)


class Timer:
    """Wall-clock timer for the run footer: from the start of the run (start_run: for the `mrl-dna` command
    the start of the process, not of the command's own code; issue 22: the ~2 s of Python, torch and model
    start-up were left out, 0.2 s printed for a 2.4 s run), else from its creation."""

    def __init__(self) -> None:
        self.start = _run_start if _run_start is not None else time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def count(n: int, noun: str, plural: str | None = None) -> str:
    """A count and its noun, as every line of talk writes them: '1 record', '3,000 queries' (noun + 's'
    unless `plural` says otherwise)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


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
