"""Shards of one input: `--shard I/N` (1-based), balanced by bases; the spec is parsed and written here only.

Merging the shards of one run in order gives the input order back (`store.merge`), and torchrun gives rank r
shard r+1 of WORLD_SIZE (`embed_distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mrl_dna.errors import ConfigError


def parse_shard(spec: str | None) -> tuple[int, int] | None:
    """'I/N' (1-based, 1 <= I <= N) -> (I, N); None or '' -> None (not a shard). ConfigError otherwise."""
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {spec!r} is not I/N (e.g. 3/10 for the 3rd of 10 shards)") from None
    if n < 1:
        raise ConfigError(f"--shard {spec}: the number of shards N must be at least 1 (I/N is shard I of N); e.g. "
                          "--shard 1/4")
    if not (1 <= i <= n):
        raise ConfigError(f"--shard {spec}: shard index {i} must be between 1 and {n}; e.g. --shard 1/{n}")
    return i, n


def format_shard(shard: str | tuple[int, int] | list | None) -> str:
    """'I/N' from 'I/N', (I, N) or None ('' = not a shard)."""
    if shard is None or shard == "":
        return ""
    if isinstance(shard, (tuple, list)) and len(shard) == 2:
        return f"{int(shard[0])}/{int(shard[1])}"
    return str(shard)


def shard_records(lengths: Sequence[int], shard: tuple[int, int]) -> range:
    """Record indices of shard I of N: contiguous slices balanced by bases (a record belongs to the shard
    in which its first base falls), so merging shards in order gives the input order back."""
    i, n = shard
    starts = np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64))[:-1]]) if len(lengths) else np.zeros(0)
    total = int(np.sum(lengths)) if len(lengths) else 0
    bounds = [(total * k) // n for k in range(n + 1)]
    first = int(np.searchsorted(starts, bounds[i - 1], side="left"))
    last = int(np.searchsorted(starts, bounds[i], side="left")) if i < n else len(lengths)
    return range(first, last)
