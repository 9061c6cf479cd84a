"""Parsing shared by the CLI files: comma-separated number lists (typer has no list-in-one-option type)."""

from __future__ import annotations

from collections.abc import Callable

from mrl_dna.errors import ConfigError


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
