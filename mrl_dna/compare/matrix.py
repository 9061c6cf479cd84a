"""What `dist` and `cluster` share: the rows of an embedding file as a normalised Matryoshka prefix, where the
products run (numpy on the CPU without importing torch; torch on a GPU), and --threads for numpy's BLAS.

Axis letters: n rows of A (queries), m rows of B (targets), b rows in a block, k prefix width.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrl_dna.device import resolve_device
from mrl_dna.errors import ConfigError
from mrl_dna.runtime import clamp_threads
from mrl_dna.store import STATUS_CODES, EmbeddingStore
from mrl_dna.store.reader import check_dim
from mrl_dna.vectors import warn_untrained_dim

# Working set of one block of scores (float64 products, their float32 copy, the formatted lines): small
# enough for a shared 2-core VM, large enough that BLAS, not Python, sets the pace.
BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class Vectors:
    """The rows of one embedding file that have a vector (status ok), as normalize(v[:k])."""

    path: Path
    ids: list[str]  # (n,) of the kept rows
    x: np.ndarray  # (n, k) float32, unit rows
    lengths: np.ndarray  # (n,) int64 bp
    n_skipped: int  # rows without a vector (empty or all-N records): left out
    model_hash: str
    model_name: str
    matryoshka_dims: tuple[int, ...]
    dim: int  # the file's full width D
    attrs: dict = field(default_factory=dict)  # the file's attributes (what store.check_comparable compares)


def load_vectors(path: str | Path, dim: int | None, *, warn: Callable[[str], None] = lambda m: None) -> Vectors:
    """Read the prefix `dim` (default: the full width) of every row with a vector."""
    with EmbeddingStore.open(path) as st:
        k = check_dim(dim, st.dim, st.matryoshka_dims)
        warn_untrained_dim(k, st.matryoshka_dims, warn)
        ok = np.asarray(st.status) == STATUS_CODES["ok"]
        x = st.read(k)[ok] if st.n else np.zeros((0, k), np.float32)
        ids = [i for i, good in zip(st.ids, ok) if good]
        return Vectors(Path(path), ids, np.ascontiguousarray(x, np.float32), st.lengths[ok], int((~ok).sum()),
                       st.model_hash, str(st.attrs.get("model_name", "")), st.matryoshka_dims, st.dim, dict(st.attrs))


def compute_device(device: str) -> str:
    """--device for a numpy-first command: 'cpu' (numpy, torch is not imported) or 'cuda[:N]' (torch). auto is
    the CPU unless an NVIDIA GPU is visible (then it is resolve_device's choice)."""
    device = str(getattr(device, "value", device))
    if device == "cpu" or (device == "auto" and not _gpu_visible()):
        return "cpu"
    return str(resolve_device(device))


def _gpu_visible() -> bool:
    return os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia[0-9]*"))


def set_blas_threads(threads: int) -> None:
    """--threads N: numpy's BLAS threads (through threadpoolctl) and torch's when it is loaded, at most the CPUs
    (runtime.clamp_threads); 0 keeps the default (all cores, or OMP_NUM_THREADS)."""
    if threads < 0:
        raise ConfigError(f"--threads {threads} must be >= 0 (0 = all cores)")
    if not threads:
        return
    threads = clamp_threads(threads)
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 (small, but only a --threads run needs it)

    threadpool_limits(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


class Products:
    """Cosines of blocks of query rows with a target matrix T (m, k) that may grow (`append`, for the
    representatives of leader clustering), in float64.

    Why float64: the product of two float32 numbers is exact in float64, so a cosine a.b / (|a| |b|) is right
    to ~1e-16 whatever order BLAS sums it in. Rounded to float32 for printing, S[i, j] and S[j, i] of one file
    came out bit for bit equal in every test (0 of 54M pairs differed, similarity and distance; computed in
    float32, 5-20% differed in the last bit, which a 6-decimal print turns into asymmetric matrices), and a
    clustering does not change with the thread count. The norms matter too: a stored float32 row is unit only
    to ~6e-8, and arccos(1 - 6e-8) / pi = 1.1e-4, so without them a vector would sit at angular distance 1e-4
    from itself.
    Twice the time of float32, which the formatting of dist's results outweighs."""

    def __init__(self, targets: np.ndarray, device: str = "cpu", capacity: int | None = None) -> None:
        self.device, self.m = device, 0
        k = targets.shape[1]
        cap = max(len(targets), capacity or 0)
        if device == "cpu":
            self._t = np.empty((cap, k), np.float64)  # (cap, k): rows 0..m-1 hold the targets, unit in float64
        else:
            import torch  # noqa: PLC0415 (a GPU run only)

            self._torch = torch
            self._t = torch.empty((cap, k), dtype=torch.float64, device=device)
        self.append(targets)

    def append(self, rows: np.ndarray) -> None:
        """Add target rows (r, k) after the current ones (within the capacity given at creation)."""
        r = len(rows)
        if self.m + r > len(self._t):
            raise ValueError(f"Products holds at most {len(self._t)} targets")
        block = _unit64(rows)
        self._t[self.m : self.m + r] = block if self.device == "cpu" else self._torch.from_numpy(block).to(self.device)
        self.m += r

    def __call__(self, queries: np.ndarray, cols: slice = slice(None)) -> np.ndarray:
        """(b, m') float64 cosines of queries (b, k) with the targets `cols` (of the first m)."""
        q = _unit64(queries)
        t = self._t[: self.m][cols]  # (m', k)
        if self.device == "cpu":
            return q @ t.T
        return (self._torch.from_numpy(q).to(self.device) @ t.T).cpu().numpy()


def _unit64(x: np.ndarray) -> np.ndarray:
    """Rows in float64, divided by their float64 norms (zero rows stay zero)."""
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def block_rows(m: int, per_value: int = 48) -> int:
    """Query rows per block so that (b, m) scores and what is made of them (~per_value bytes each) fit
    BLOCK_BYTES."""
    return max(1, min(1 << 16, BLOCK_BYTES // max(1, m * per_value)))
