"""Domain errors. Every user mistake is one of these; the CLI turns them into one line on stderr.

Exit codes (documented in the README):
    0  success
    1  user error: bad input, missing/incompatible model or file (MrlDnaError and subclasses)
    2  usage error: bad option or argument (typer/click)
    3+ internal error (a bug: please report it with the traceback printed by MRL_DNA_DEBUG=1)

Messages name the value, the limit and the fix, e.g.
    "matryoshka dim 1024 exceeds the model's width 256; pick dims <= 256".
"""


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
