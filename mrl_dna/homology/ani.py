"""Genome-vs-genome ANI and aligned fractions from saved windows (exact: every scored query window against
every target window).

Per direction A -> B (`directional`; `pair_ani` for both):
1. the best hit of every query_step-th window of A among all of B's windows, full width (hits.best_hits);
2. s = (best - mu) / (1 - mu), mu = max(target background, A's own background) (score.py);
3. identity = the calibration's inverse of s (calibration.StrideCalibration for B's saved-window stride);
4. homologous = colinear (the best hit of the nearest non-overlapping neighbour window on either side lands
   within `tol` bp of where a colinear match predicts it, same target contig, either strand) AND reciprocal (B's
   window has its own best hit among A's windows near the query window); a homologous window whose score is
   below the table reads as the table's lowest identity (dropping it would bias diverged pairs upward);
5. ANI = mean identity of the homologous windows; near the species line the mean over *interior* windows (both
   neighbours colinear: block edges are half unrelated and read low) is blended in linearly from ANI 90 to 95;
   NA when < min_windows are homologous or the ANI is below the table's valid_min;
6. af = bp owned by homologous windows (WindowSet.owned_bp) / A's length.
The pair's `ani` is the mean of the two directions (the one that exists when the other is NA).

Glossary: n query windows (scored), m target windows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mrl_dna.homology.calibration import StrideCalibration
from mrl_dna.homology.hits import best_hits
from mrl_dna.homology.score import background, neighbourhood_radius, normalized_score, self_background
from mrl_dna.homology.windowset import WindowSet


@dataclass(frozen=True)
class HomologyConfig:
    """How windows are compared (the defaults are the research memo's choices, issue 20)."""

    # Query windows scored: every query_step-th. The target's saved-window density sets the offset error, the
    # query side only the sample size: stride-250 targets scored every 4th query window give the errors of
    # 250/250 in the simulation, at a quarter of the products.
    query_step: int = 4
    min_windows: int = 5  # fewer homologous windows: NA
    colinear_tol: int = 1024  # bp a neighbour's best hit may lie from the colinear prediction (half a window)
    blend_from: float = 90.0  # ANI (percent) where the interior-window mean starts to be blended in ...
    blend_to: float = 95.0  # ... and where it has all the weight
    reciprocal: bool = True  # homologous windows must also be reciprocal best hits


@dataclass(frozen=True)
class Direction:
    """One direction (query windows -> target) of a genome comparison."""

    ani: float  # percent; nan = NA
    af: float  # fraction of the query's bp owned by homologous windows
    n_windows: int  # query windows scored
    n_homologous: int  # of them homologous
    identity: np.ndarray  # (n,) calibrated identity of every scored query window (nan below the table)
    homologous: np.ndarray  # (n,) bool


@dataclass(frozen=True)
class PairResult:
    """Both directions of a genome pair and the symmetric value."""

    query: str
    target: str
    ani: float  # mean of ani_qt and ani_tq (the one that exists when the other is NA); percent, nan = NA
    ani_qt: float  # query -> target
    ani_tq: float  # target -> query
    af_query: float  # query's bp in homologous windows / its length
    af_target: float
    windows_query: int  # query windows scored
    windows_target: int
    homologous_query: int  # of them homologous
    homologous_target: int


def colinear(qset: WindowSet, tset: WindowSet, arg: np.ndarray, tol: int) -> tuple[np.ndarray, np.ndarray]:
    """((n,) bool either neighbour colinear, (n,) bool both): the best hit of the query window's nearest
    non-overlapping neighbour on that side lands, on the same target contig, within tol bp of where a colinear
    match on either strand predicts it. Windows without such a neighbour are False on that side. Unrelated
    genomes pass by chance with probability ~ 4 * tol / target length per window."""
    n = len(qset)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    c40 = qset.contig.astype(np.int64) << 40  # sort key (contig, bp) in one int64
    key = c40 + qset.start
    tmid = (tset.start[arg] + tset.end[arg]) / 2.0
    tcon = tset.contig[arg]
    qmid = (qset.start + qset.end) / 2.0
    right = np.searchsorted(key, c40 + qset.end, side="left")  # first window starting at or after my end
    left = np.searchsorted(c40 + qset.end, c40 + qset.start, side="right") - 1  # last ending at or before my start
    either, both = np.zeros(n, bool), np.ones(n, bool)
    for nb in (right, left):
        j = np.clip(nb, 0, n - 1)
        valid = (nb >= 0) & (nb < n) & (qset.contig[j] == qset.contig) & (tcon[j] == tcon)
        d = qmid[j] - qmid
        ok = valid & ((np.abs(tmid[j] - (tmid + d)) <= tol) | (np.abs(tmid[j] - (tmid - d)) <= tol))
        either |= ok
        both &= ok
    return either, both


def directional(qset: WindowSet, tset: WindowSet, cal: StrideCalibration, config: HomologyConfig = HomologyConfig(),
                *, device: str = "cpu", q_self: np.ndarray | None = None) -> Direction:
    """Query -> target (module docstring). cal: the table of the target's saved-window stride
    (StrideCalibration.uncalibrated: ANI NA, af still measured). q_self: the
    query's own background (score.self_background over all its windows) when the caller keeps it."""
    rows = np.arange(0, len(qset), max(1, config.query_step))
    sub = qset.take(rows) if config.query_step > 1 else qset
    n = len(sub)
    if n == 0 or len(tset) == 0:
        return Direction(math.nan, 0.0, n, 0, np.full(n, np.nan), np.zeros(n, bool))
    best, arg = best_hits(sub.vecs, tset.vecs, device=device)
    radius = neighbourhood_radius(cal.window, cal.stride)
    mu = background(sub.vecs, tset.vecs, arg, tset.contig, radius)
    own = self_background(qset.vecs, qset.contig, radius) if q_self is None else q_self
    mu = np.fmax(mu, own[rows])
    ident = cal.identity_of(normalized_score(best, mu))
    col_any, col_both = colinear(sub, tset, arg, config.colinear_tol)
    hom = col_any.copy()
    if config.reciprocal:  # the best query window (over ALL the query's windows) of each hit target window
        uniq, inv = np.unique(arg, return_inverse=True)
        back = best_hits(tset.vecs[uniq], qset.vecs, device=device)[1][inv]
        hom &= (np.abs(back - rows) <= radius * max(1, config.query_step)) & (qset.contig[back] == sub.contig)
    if cal.calibrated:  # below the table: its lowest identity
        ident = np.where(np.isnan(ident) & hom, float(cal.identity[0]), ident)
    af = float(sub.owned_bp()[hom].sum() / max(sub.length, 1))
    ani = math.nan
    if cal.calibrated and hom.sum() >= config.min_windows:
        ani = 100.0 * float(ident[hom].mean())
        inner = hom & col_both
        if inner.sum() >= config.min_windows:
            w = min(max((ani - config.blend_from) / (config.blend_to - config.blend_from), 0.0), 1.0)
            ani = w * 100.0 * float(ident[inner].mean()) + (1 - w) * ani
        if ani < 100.0 * cal.valid_min:
            ani = math.nan
    return Direction(ani, af, n, int(hom.sum()), ident, hom)


def pair_ani(a: WindowSet, b: WindowSet, cal_a: StrideCalibration, cal_b: StrideCalibration,
             config: HomologyConfig = HomologyConfig(), *, device: str = "cpu",
             self_a: np.ndarray | None = None, self_b: np.ndarray | None = None) -> PairResult:
    """Both directions of a pair: a -> b scored with cal_b (b's saved-window stride), b -> a with cal_a."""
    ab = directional(a, b, cal_b, config, device=device, q_self=self_a)
    ba = directional(b, a, cal_a, config, device=device, q_self=self_b)
    vals = [v for v in (ab.ani, ba.ani) if not math.isnan(v)]
    ani = float(np.mean(vals)) if vals else math.nan
    return PairResult(a.name, b.name, ani, ab.ani, ba.ani, ab.af, ba.af, ab.n_windows, ba.n_windows,
                      ab.n_homologous, ba.n_homologous)
