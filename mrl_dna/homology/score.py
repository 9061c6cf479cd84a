"""The background-normalised window score s = (best - mu) / (1 - mu).

mu = max(mean cosine of the query window to the target's windows outside the best hit's neighbourhood, mean
cosine of it to its own genome's windows outside its own neighbourhood). The raw best cosine carries a
per-genome offset (the composition both genomes share: a genome whose windows all look alike keeps a high best
cosine at any divergence); removing it cuts the per-genome error of the calibrated identity ~3x at 80-95%
identity (research memo of issue 20, section 1). The query's own background stops composition hubs: a window
unlike most of the target but like a few of its windows (an AT-rich genome against a GC-average plasmid) has a
low target background and would otherwise look homologous.

Glossary: n query windows, m target windows, D full width.
"""

from __future__ import annotations

import numpy as np

# Genomes (query sides) with fewer windows have no own background (a contig: too few windows to say).
SELF_BACKGROUND_MIN_WINDOWS = 20


def neighbourhood_radius(window: int, stride: int) -> int:
    """Windows on each side of a window that overlap it: ceil(window / stride)."""
    return max(1, -(-window // stride))


def background(q: np.ndarray, t: np.ndarray, arg: np.ndarray, t_contig: np.ndarray, radius: int,
               t_sum: np.ndarray | None = None) -> np.ndarray:
    """(n,) float64 mean cosine of each query row to the target rows outside its best hit's neighbourhood
    (|index - arg| <= radius on the same contig): (q . sum(t) - the neighbourhood's cosines) / count, so one
    dot product per window, no pass over the target. t_sum: t.sum(0) in float64 when the caller keeps it.
    nan where nothing is left."""
    n, m = len(q), len(t)
    q = np.asarray(q, np.float32)
    tot = q.astype(np.float64) @ (t_sum if t_sum is not None else np.asarray(t, np.float64).sum(0))  # (n,)
    cnt = np.full(n, float(m))
    for o in range(-radius, radius + 1):
        j = arg + o
        ok = (j >= 0) & (j < m)
        jj = np.clip(j, 0, m - 1)
        ok &= t_contig[jj] == t_contig[arg]
        tot -= np.where(ok, np.einsum("nd,nd->n", q, np.asarray(t[jj], np.float32)), 0.0)
        cnt -= ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / cnt, np.nan)


def self_background(vecs: np.ndarray, contig: np.ndarray, radius: int) -> np.ndarray:
    """(n,) mean cosine of each window of a genome to its own windows outside its neighbourhood; nan for
    genomes of fewer than SELF_BACKGROUND_MIN_WINDOWS windows."""
    n = len(vecs)
    if n < SELF_BACKGROUND_MIN_WINDOWS:
        return np.full(n, np.nan)
    return background(vecs, vecs, np.arange(n), contig, radius)


def normalized_score(best: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """s = (best - mu) / (1 - mu); mu nan (no background) counts as 0 (s = best)."""
    mu = np.where(np.isnan(mu), 0.0, mu)
    return (best - mu) / np.maximum(1.0 - mu, 1e-6)
