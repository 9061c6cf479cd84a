"""mrl-dna info: what an embedding file holds (records, dims, model, window, completeness).

Example:
    $ mrl-dna info sample.h5
    file:          sample.h5
    records:       8 (170,412 bp)
    status:        8 ok, 0 empty, 0 all_n
    dim:           128 (Matryoshka dims 8, 16, 32, 64, 128)
    ...
    complete:      yes
"""

from __future__ import annotations

import json

import typer

from mrl_dna.cli.options import quiet_option
from mrl_dna.store import EmbeddingStore


def command(
    # A plain str, not typer's exists=True: EmbeddingStore.open says more (e.g. that a .partial exists).
    path: str = typer.Argument(..., metavar="FILE.h5", help="An embedding file written by `mrl-dna embed` or `merge`."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the human summary."),
    check: bool = typer.Option(False, "--check", help="Also read every stored vector and check it (finite; unit length where the status is ok, zero elsewhere; windows in order): as long as reading the whole file. Without it, info checks only the structure (datasets and their lengths)."),
    quiet: bool = quiet_option("Accepted for symmetry with the other commands (info writes only data)."),
) -> None:
    """Print what an embedding file holds: records, dims, dtype, model, window/stride, pooling, completeness.

    A damaged file (a dataset missing or shorter than the others) is one error line; --check also reads every
    vector (NaN rows, wrong norms), which every command reading the vectors checks as it goes.

    Example:  mrl-dna info sample.h5 --check
    """
    with EmbeddingStore.open(path, allow_incomplete=True) as store:  # the structure is checked on opening
        s = store.summary()
        if check:
            s["checked"] = store.check()
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    typer.echo(render(s))


def render(s: dict) -> str:
    """The human summary: one 'key: value' per line, aligned."""
    status = ", ".join(f"{v:,} {k}" for k, v in s["status"].items())
    complete = "yes" if s["complete"] else "NO (interrupted run: rerun the same `mrl-dna embed` command to resume)"
    hash_ = s["model_hash"][:16] + ("..." if len(s["model_hash"]) > 16 else "")
    rows = [
        ("file", s["path"]),
        ("records", f"{s['n_records']:,} ({s['total_bp']:,} bp)") if not s.get("per_file") else
        ("files", f"{s['n_records']:,} (embed --per-file: {s['n_contigs']:,} records, {s['total_bp']:,} bp)"),
        ("status", status),
        ("dim", f"{s['dim']} (Matryoshka dims {', '.join(map(str, s['matryoshka_dims']))})"),
        ("dtype", s["dtype"]),
        ("model", f"{s['model_name'] or '?'} ({s['model_kind'] or '?'}, sha256 {hash_ or '?'})"),
        ("window", f"{s['window']} bp, stride {s['stride']} bp"),
        ("pooling", s["pooling"] or "?"),
        ("shard", s["shard"] or "none (whole input)"),
        ("windows saved", f"yes ({s['n_saved_windows']:,} windows, stride {s['windows_stride']} bp)" if s["windows_saved"] else "no"),
        ("complete", complete),
        ("created", f"{s['created']} by mrl-dna {s['mrl_dna_version']}"),
        ("command", s["command"]),
    ]
    if "merged_from" in s:
        rows.append(("merged from", ", ".join(s["merged_from"])))
    if "checked" in s:
        c = s["checked"]
        rows.append(("integrity", f"ok ({c['rows']:,} rows" + (f" and {c['windows']:,} windows" if c["windows"] else "")
                                  + " read: finite, unit length where ok, zero elsewhere)"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in rows)
