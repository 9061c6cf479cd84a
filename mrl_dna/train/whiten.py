"""`mrl-dna train --head-init whiten`: start a linear Matryoshka head at the whitened, PCA-ordered k-mer profile.

Why: a fragment is told apart from other genomes by its composition, but the raw profile of a 2 kb window is
noisy in a structured way: sampling noise of the counts, local variation along the genome (genes, islands,
rRNA) and, for a diverged query, the mutations themselves. All three are properties of *any* genome, not of
the species trained on, so their average covariance (the within-genome covariance S_w, pooled over the
training genomes) is what a metric has to discount to generalise to unseen species. This module estimates it
from windows of the training genomes and their simulated-evolution copies (`mrl_dna.evolve.mutate`), and writes into
the head the map

    y = P^T (x - mu),   P = S^-1/2 V,   S = S_w + shrinkage * mean_eigenvalue(S_w) * I

restricted to the k-mer block of the window vector (the learned encoder features get weight 0 and the
Matryoshka training that follows decides how much of them to mix in). V holds the principal axes of the
whitened windows, largest variance first, so every Matryoshka prefix starts as the best low-rank
approximation of the whitened space. mu is the mean of the genomes' centroids. The shrinkage toward the
identity keeps directions that barely vary within the training genomes from being blown up.

Measured on the shared genomes (bench/HISTORY.md, "Session 2: the whitened head"): in a leave-species-out
cross-validation (5 folds, 2 kb fragments vs all 28 genomes) this start point alone beats cosine of the raw
4-mer and 6-mer profiles by 7-17 points of species top-1 at every divergence, and on the held-out species it
beats the session-1 default model's trained MLP head. The Matryoshka training that follows moved held-out
accuracy by less than the benchmark's noise.

Axis glossary: n windows, d window-vector width, p whitened width (k-mer block), D head width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mrl_dna import console
from mrl_dna.dna import N
from mrl_dna.errors import ConfigError
from mrl_dna.evolve import mutate
from mrl_dna.train.sources import Source
from mrl_dna.windows import WindowConfig, pad_windows


@dataclass(frozen=True)
class WhitenConfig:
    windows: int = 300  # clean windows per training genome (centroid and local variation), at most its length / window
    mutants: int = 300  # evolved copies per genome at a rate ~ U[0, max_rate] (the mutation noise), scaled alike
    max_rate: float = 0.2
    shrinkage: float = 0.3  # ridge toward the identity, relative to the mean eigenvalue of S_w
    max_n_fraction: float = WindowConfig.max_n_fraction  # windows with more N than this are redrawn
    seed: int = 0
    batch: int = 64  # windows per encoder call

    def __post_init__(self) -> None:
        if self.windows < 2:
            raise ConfigError(f"--head-init whiten needs >= 2 windows per genome, not {self.windows}")
        if self.mutants < 0 or not 0.0 <= self.max_rate <= 0.75:
            raise ConfigError(f"whitening: mutants {self.mutants} must be >= 0 and max_rate {self.max_rate} in [0, 0.75]")
        if self.shrinkage <= 0:
            raise ConfigError(f"--whiten-shrinkage {self.shrinkage} must be > 0 (e.g. 0.3); 0 can divide by a zero eigenvalue")


def sample_views(sources: list[Source], window: int, cfg: WhitenConfig) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Clean windows and evolved copies of each source -> (token arrays, source index (n,), clean mask (n,)).

    A pure function of (sources, window, cfg): the same views on every run and every rank."""
    seqs: list[np.ndarray] = []
    src: list[int] = []
    clean: list[bool] = []
    for si, s in enumerate(sources):
        rng = np.random.default_rng([cfg.seed, si])
        n_win, n_mut = views_per_source(s, window, cfg)
        wins = [_draw_window(s, window, cfg.max_n_fraction, rng) for _ in range(n_win)]
        seqs += wins
        src += [si] * len(wins)
        clean += [True] * len(wins)
        for j in range(n_mut):
            y, _ = mutate(wins[j % len(wins)], float(rng.uniform(0.0, cfg.max_rate)), rng)
            seqs.append(y[: window])
            src.append(si)
            clean.append(False)
    return seqs, np.asarray(src, dtype=np.int64), np.asarray(clean, dtype=bool)


def views_per_source(s: Source, window: int, cfg: WhitenConfig) -> tuple[int, int]:
    """(clean windows, evolved copies) drawn from one source: cfg.windows and cfg.mutants, scaled down for a
    source shorter than cfg.windows windows, so that it counts by the sequence it has. Without the cap a
    30 kb virus weighed as much as a 5 Mb genome, and the 14 phage, virus, plasmid and mtDNA files among the
    default model's 30 training files took over the leading (Matryoshka-prefix) axes: the whitened start kept
    96.6% of its accuracy at 16 dims with them at full weight and 97.6% with them capped (bench/HISTORY.md)."""
    total = sum(q.size for q in s.seqs)
    n_win = min(cfg.windows, max(2, -(-total // window)))  # >= 2: a centroid and some local variation
    return n_win, -(-cfg.mutants * n_win // cfg.windows)


def _draw_window(s: Source, window: int, max_n: float, rng: np.random.Generator) -> np.ndarray:
    for _ in range(20):  # redraw mostly-N windows (assembly gaps); give up gracefully on an all-N genome
        seq = s.seqs[rng.choice(len(s.seqs), p=s.weights)]
        start = int(rng.integers(0, seq.size - window + 1)) if seq.size > window else 0
        w = seq[start : start + window]
        if (w == N).mean() <= max_n:
            return w
    return w


@torch.inference_mode()
def window_features(model: nn.Module, seqs: list[np.ndarray], device: torch.device, batch: int) -> np.ndarray:
    """(n,) token arrays -> (n, d) float64 window vectors (model.window_vectors), with a progress bar."""
    out = []
    with console.progress("whiten: windows", total=len(seqs), unit="windows") as bar:
        for i in range(0, len(seqs), batch):
            tok, lengths = pad_windows(seqs[i : i + batch])
            out.append(model.window_vectors(torch.from_numpy(tok).to(device), torch.from_numpy(lengths).to(device))
                       .double().cpu().numpy())
            bar.advance(len(tok))
    return np.concatenate(out)


def whitening(X: np.ndarray, src: np.ndarray, clean: np.ndarray, D: int, shrinkage: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """Window features X (n, p), their source (n,) and clean mask (n,) -> (P (p, D), mu (p,), stats).

    P whitens the pooled within-source covariance (shrunk toward the identity) and orders the whitened axes by
    the variance of the clean windows around the mean centroid mu, largest first; signs are fixed so that each
    axis' largest loading is positive (deterministic)."""
    n, p = X.shape
    _check_width(D, p)
    ids = np.unique(src)
    if ids.size < 2:
        raise ConfigError("--head-init whiten needs at least 2 training genomes (the noise is measured within each)")
    centroids = np.stack([X[clean & (src == i)].mean(0) for i in ids])  # (s, p)
    row = np.searchsorted(ids, src)
    dev = X - centroids[row]  # clean windows: local variation; evolved copies: also the mutations
    Sw = dev.T @ dev / n
    ridge = shrinkage * np.trace(Sw) / p
    evals, U = np.linalg.eigh(Sw + ridge * np.eye(p))
    Wh = (U / np.sqrt(evals)) @ U.T  # (p, p) symmetric S^-1/2
    mu = centroids.mean(0)
    Z = (X[clean] - mu) @ Wh
    e2, V = np.linalg.eigh(Z.T @ Z / len(Z))
    order = np.argsort(-e2)[:D]
    V = V[:, order]
    V *= np.sign(V[np.abs(V).argmax(0), np.arange(D)])  # largest loading of each axis positive
    stats = {"genomes": int(ids.size), "windows": int(n), "width": int(p), "ridge": float(ridge),
             "variance_kept": float(e2[order].sum() / e2.sum())}
    return Wh @ V, mu, stats


def _check_width(D: int, p: int) -> None:
    if D > p:
        raise ConfigError(f"--head-init whiten: the head is {D} wide but only {p} features are whitened; use --dims up to {p}")


def linear_head(model: nn.Module) -> nn.Linear:
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear):
        raise ConfigError("--head-init whiten needs a linear head: add --head-hidden 0")
    return head


def whiten_head(model: nn.Module, sources: list[Source], window: int, cfg: WhitenConfig = WhitenConfig(),
                device: torch.device | str = "cpu") -> dict:
    """Set the model's linear head to the whitened, PCA-ordered map of its k-mer features (all features when
    the model has no k-mer block). Returns stats for the log and the model card."""
    head = linear_head(model)
    D, d = head.weight.shape
    enc = getattr(getattr(model, "config", None), "encoder", None)
    p = getattr(enc, "n_kmer_features", 0) or d
    cols = slice(d - p, d)  # the k-mer block is the last p columns of the window vector (Encoder.forward)
    _check_width(D, p)  # before the slow part
    seqs, src, clean = sample_views(sources, window, cfg)
    X = window_features(model, seqs, torch.device(device), cfg.batch)[:, cols]
    P, mu, stats = whitening(X, src, clean, D, cfg.shrinkage)
    weight = np.zeros((D, d))
    weight[:, cols] = P.T
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(-(mu @ P)))
    return {**stats, "features": "k-mer block" if p != d else "all"}
