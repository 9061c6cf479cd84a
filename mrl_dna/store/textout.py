"""A text result (a table, a matrix) written to stdout or to a file: the file checks every command makes
(its directory exists and is writable, an existing file needs --force, never an input) before any work, then
NAME.partial renamed onto NAME only when complete, gzip-compressed when NAME ends in .gz. A device or a pipe
(-o /dev/null) is written in place: a rename onto /dev/null replaced the device with a file (found by
scripts/bench/dist.py; tests/test_dist.py keeps it from coming back).

`replace_when_done` is that NAME.partial -> NAME step for any file written whole (text results, export, the
FAISS index and its .json, training checkpoints).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from mrl_dna.errors import StoreError, disk_full_error, disk_full_reason
from mrl_dna.store.writer import _check_output_dir, check_output_not_input, is_special_file


def check_text_output(output: str | Path | None, *, inputs: Sequence[str | Path], force: bool,
                      example: str = "out.tsv") -> Path | None:
    """The output path after the checks (None for stdout: None or '-'); StoreError naming the fix otherwise
    (a directory given as -o is told to add `example`, e.g. 'clusters.tsv'). A device or a pipe
    (`-o /dev/null`) passes as it is: it is written in place, so there is nothing to replace."""
    if output is None or str(output) == "-":
        return None
    out = Path(output)
    if is_special_file(out):
        return out
    _check_output_dir(out, example)
    check_output_not_input(out, inputs)
    if out.exists() and not force:
        raise StoreError(f"{out} already exists; pass --force to overwrite it or choose another -o")
    return out


@contextlib.contextmanager
def text_output(output: str | Path | None, *, inputs: Sequence[str | Path], force: bool,
                example: str = "out.tsv") -> Iterator[BinaryIO]:
    """A binary stream for the result: stdout, or OUTPUT written as OUTPUT.partial (gzip when OUTPUT ends in
    .gz) and renamed onto OUTPUT when the block ends without an error (removed when it fails)."""
    out = check_text_output(output, inputs=inputs, force=force, example=example)
    if out is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if is_special_file(out):  # never OUT.partial renamed onto a device: that would replace /dev/null itself
        with open(out, "wb") as fh:
            yield fh
        return
    with replace_when_done([out]) as (tmp,):
        # gzip level 6 (gzip's own default): level 9 costs ~3x the time for a few % on these tables
        fh = gzip.open(tmp, "wb", compresslevel=6) if out.name.endswith(".gz") else open(tmp, "wb")
        with fh:
            yield fh


@contextlib.contextmanager
def replace_when_done(targets: Sequence[str | Path], fix: str | None = None) -> Iterator[list[Path]]:
    """Temporary names NAME.partial for the targets (a device or a pipe, e.g. /dev/null, is written in place),
    renamed onto them when the block ends without an error and removed when it fails (Ctrl-C too), so a reader
    never sees a half-written output under its final name. A write that failed for want of space becomes one
    DiskFullError naming the first target's disk and `fix` (disk_full_error's when None), raised once the
    partial files are gone, so the free space it names is what the disk has."""
    targets = [Path(t) for t in targets]
    tmps = [t if is_special_file(t) else t.with_name(t.name + ".partial") for t in targets]
    full = None
    try:
        yield tmps
        for tmp, t in zip(tmps, targets):
            if tmp != t:
                os.replace(tmp, t)
    except (OSError, RuntimeError) as e:
        full = disk_full_reason(e)
        if full is None:
            raise
    finally:
        for tmp, t in zip(tmps, targets):
            if tmp != t:
                with contextlib.suppress(OSError):
                    tmp.unlink()
    if full:
        raise disk_full_error(targets[0], full, *([fix] if fix else []))
