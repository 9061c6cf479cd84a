"""mrl-dna eval (being written; see the issue tracker)."""

import typer


def command(path: str = typer.Argument(..., help="placeholder")) -> None:
    """Not yet available."""
    raise typer.Exit(3)
