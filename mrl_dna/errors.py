"""Domain errors. Every user mistake is one of these; the CLI turns them into one line on stderr.

Exit codes (documented in the README):
    0  success
    1  user error: bad input, missing/incompatible model or file (MrlDnaError and subclasses)
    2  usage error: bad option or argument (typer/click; OptionError for a value judged against the data)
    3+ internal error (a bug: please report it with the traceback printed by MRL_DNA_DEBUG=1)

Messages name the value, the limit and the fix, e.g.
    "matryoshka dim 1024 exceeds the model's width 256; pick dims <= 256".
"""

import errno
import shutil
from pathlib import Path


class MrlDnaError(Exception):
    """Base class: a problem with the user's input, files or options (exit code 1)."""

    exit_code = 1


class InputError(MrlDnaError):
    """A FASTA input that cannot be read: malformed, truncated, not DNA, duplicate ids, ..."""


class ModelError(MrlDnaError):
    """A model directory that is missing, incomplete, corrupt or inconsistent."""


class StoreError(MrlDnaError):
    """An HDF5 embedding file that is missing, incomplete, from another model or tool."""


class ConfigError(MrlDnaError):
    """An option value that is out of range or inconsistent with the model or data."""


class OptionError(ConfigError):
    """An option value that can be judged bad only once the data is open (e.g. more IVF lists than rows):
    exit 2, as the values click refuses while parsing; one line, without click's usage lines."""

    exit_code = 2


class DiskFullError(StoreError):
    """A write to an embedding file failed for want of space (or quota). The rows committed before it stay
    in PATH.partial: rerunning the same command after freeing space resumes from them."""


# Writes that fail for want of space: the C errno and the text HDF5 puts in its messages.
_NO_SPACE = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}


def disk_full_reason(e: BaseException | None) -> str | None:
    """'no space left on device' or 'disk quota exceeded' when `e` (or an exception that led to it) is a
    write that failed for want of space, else None. h5py raises such failures as OSError or RuntimeError
    ("Can't decrement id ref count (file write failed: ... errno = 28 ...)"), so the text is checked too."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            return _NO_SPACE[e.errno].lower()
        text = str(e)
        for code, message in _NO_SPACE.items():
            if f"errno = {code}," in text or message in text:
                return message.lower()
        e = e.__cause__ or e.__context__
    return None


def disk_where(directory: str | Path) -> str:
    """The mount point of the filesystem that holds `directory` (what `df` names) and its free space, e.g.
    '/scratch, 12.0 KiB free', for the messages of a full disk."""
    d = Path(directory) if str(directory) else Path(".")
    try:
        p = d.resolve()
        dev = p.stat().st_dev
        while p.parent != p and p.parent.stat().st_dev == dev:
            p = p.parent
        where = str(p)
    except OSError:
        where = str(d)
    try:
        return f"{where}, {human_size(shutil.disk_usage(d).free)} free"
    except OSError:
        return where


def human_size(n: float) -> str:
    """Bytes as '512 B', '3.2 MiB', '1.5 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def disk_full_error(path: str | Path, why: str,
                    fix: str = "free some space or choose -o on another disk, then rerun the same command") -> DiskFullError:
    """The one line of a write to `path` that failed for want of space (`why` from disk_full_reason): the
    disk, its free space and what to do, e.g. 'no space left on device on the disk that holds x.npy
    (/scratch, 4.0 KiB free); free some space or choose -o on another disk, then rerun the same command'."""
    return DiskFullError(f"{why} on the disk that holds {path} ({disk_where(Path(path).parent)}); {fix}")
