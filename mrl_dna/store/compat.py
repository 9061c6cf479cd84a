"""Which embedding files may be used together: files whose vectors are comparable (search ranks the rows of
several DB files and a query file together, dist scores two files, merge --concat appends databases), and
lists of files that name each file once. Every command that reads several files checks them here, so they
all refuse the same mixes with the same one line.

Comparable (COMPARABLE_KEYS agree): one model (its weights hash; the name alone proves nothing, and two names
of one set of weights are one model) and the embed options that change what a vector is: window, stride,
max N fraction, pooling, width and Matryoshka dims. A vector of a 32 bp window and one of a 2,048 bp window
from the same model lie in one space but do not mean the same thing: their cosine is not the cosine of two
sequences, and ranking them together puts whichever file suits the query first.

Allowed to differ: dtype (float16 rows are rounded float32 rows), save_windows (only --level windows and
--windows need them, and they say so), the shard, and per_file. When the rows are saved windows (search --level
windows) also the stride and max N fraction: they choose which windows exist, not what a window's vector is
(a window's vector is the model's output for its bases alone), so only the window length must agree. Why per_file may differ: a per-file row is
the weighted centroid of all the windows of a file, computed exactly as a record's vector is from its own
windows (a file of one record gets that record's vector bit for bit, embed.embed_files), so a contig
searched against per-file genome rows, or records against files in dist, compare like with like. Only
merge --concat requires one per_file value, because its output is one layout (rows of files have contigs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mrl_dna.errors import StoreError
from mrl_dna.store.format import COMPARABLE_KEYS, same_attr, show_attr

# Options that choose which windows a file has, not what a window's vector is (see the module docstring).
WINDOW_LAYOUT_KEYS = ("stride", "max_n_fraction")

# What differs, in the user's words, and the embed option that sets it (None: it comes with the model).
_WHAT = {"window": ("windows", "--window"), "stride": ("strides", "--stride"),
         "max_n_fraction": ("N cut-offs", "--max-n"), "pooling": ("poolings", None),
         "dim": ("widths", None), "matryoshka_dims": ("Matryoshka dims", None)}


def check_comparable(files: Sequence[tuple[str, Mapping[str, Any]]], *, windows: bool = False) -> None:
    """StoreError (one line naming the two files and what differs) unless every file's vectors are comparable
    with the first's. files: (label, attributes) pairs, e.g. ("db.h5", store.attrs) or ("query file q.h5", ...).
    windows: the rows compared are saved windows (search --level windows): stride and max N may differ."""
    if not files:
        return
    keys = [k for k in COMPARABLE_KEYS if not (windows and k in WINDOW_LAYOUT_KEYS)]
    first, ref = files[0]
    for label, attrs in files[1:]:
        for key in keys:
            a, b = ref.get(key), attrs.get(key)
            if same_attr(a, b):
                continue
            if key == "model_hash":
                raise StoreError(
                    f"{first} and {label} were embedded with two models ({str(a or '?')[:12]} "
                    f"{show_attr(ref.get('model_name'))} vs {str(b or '?')[:12]} {show_attr(attrs.get('model_name'))}): "
                    "their vectors are not comparable; embed both with one --model")
            what, option = _WHAT[key]
            fix = (f"re-embed one of them with the other's {option}" if option else
                   "re-embed one of them with the other's model")
            raise StoreError(f"{first} and {label} were embedded with different {what} ({key} {show_attr(a)} vs "
                             f"{show_attr(b)}): their vectors are not comparable; {fix}")


def check_distinct(paths: Sequence[str | Path], *, what: str = "file") -> None:
    """StoreError when one file is named twice (the same path, or the same file through a symlink or a hard
    link): its rows would count twice (every search hit doubled). '-' (stdin) is never a file here."""
    seen: list[Path] = []
    for p in (Path(x) for x in paths if str(x) != "-"):
        for q in seen:
            if same_file(p, q) or os.path.abspath(p) == os.path.abspath(q):
                alias = "" if os.path.abspath(p) == os.path.abspath(q) else f" (as {q} and as {p}: the same file)"
                raise StoreError(f"{p if not alias else q} is given twice{alias}; give each {what} once")
        seen.append(p)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (the same inode: also through symlinks and hard links)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False
