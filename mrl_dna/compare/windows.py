"""`dist --level windows` and `cluster --level windows`: genome-vs-genome ANI and aligned fractions from saved
windows (homology/), with the pooled-prefix screen, for all pairs of one file or of two.

Coarse to fine: with --min-ani T, a pair whose pooled vectors' cosine at SCREEN_DIM is below the calibration's
measured bound for T (ScreenBound.threshold: the lowest pooled cosine seen among simulated pairs at window ANI
>= T sharing >= min_af of both genomes, minus a margin) is not compared window by window. Without --min-ani, or
without a bound for T, every pair is compared. Then each pair is compared exactly (homology.pair_ani).

NA rules (the TSV prints NA): ani when fewer than HomologyConfig.min_windows windows are homologous in both
directions, when it is below the calibration's valid range, when max(af_query, af_target) < --min-af, and for
every pair when the model has no calibration (one warning names the fix).

Glossary: n rows of A, m rows of B, p pairs, c clusters.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrl_dna import console
from mrl_dna.errors import ConfigError, StoreError
from mrl_dna.homology import (HomologyConfig, ModelCalibration, PairResult, StrideCalibration, WindowReader, WindowSet,
                              pair_ani, saved_windows_stride)
from mrl_dna.homology.model import calibration_for
from mrl_dna.homology.score import neighbourhood_radius, self_background
from mrl_dna.store import EmbeddingStore, check_comparable, check_distinct
from mrl_dna.store.format import STATUS_CODES

# Report an ANI only when the pair shares at least this much of one genome (max of the two aligned fractions):
# unrelated corpus genomes of 40-330 kb got a chance ANI on 3% of pairs, all with af <= 0.09 (research memo of
# issue 20, section 2); skani filters on its aligned fraction likewise.
MIN_AF = 0.1
# Prefix width of the pooled screen: the cheapest width whose measured minima are stable across --min-ani.
SCREEN_DIM = 64
# Window sets kept in memory between pairs (least recently used dropped first).
CACHE_BYTES = 2 << 30



class CompareLevel(str, enum.Enum):
    """What dist and cluster compare: the pooled record vectors, or the saved windows (ANI)."""

    records = "records"
    windows = "windows"


COLUMNS = ("query", "target", "ani", "af_query", "af_target", "ani_qt", "ani_tq", "windows_query", "windows_target",
           "homologous_query", "homologous_target")


@dataclass(frozen=True)
class WindowDistSummary:
    n_queries: int
    n_targets: int
    pairs: int  # pairs of rows with windows
    screened_out: int  # skipped by the pooled screen
    compared: int  # compared window by window
    lines: int  # written
    calibrated: bool
    threshold: float | None  # the pooled cosine bound used (None: no screen)
    seconds: float


class WindowLevel:
    """One or two embedding files with saved windows, their calibration tables and a cache of window sets."""

    def __init__(self, a: str | Path, b: str | Path | None = None, *, model_dir: str | Path | None = None,
                 config: HomologyConfig = HomologyConfig(), device: str = "cpu",
                 warn: Callable[[str], None] = console.warn) -> None:
        if b is not None:
            check_distinct([a, b])
        self.stores = [EmbeddingStore.open(a)] + ([EmbeddingStore.open(b)] if b is not None else [])
        self.config, self.device = config, device
        try:
            self._check()
            self.calibration, where = calibration_for(self.stores[0].attrs, model_dir)
            if self.calibration is None:
                warn(f"the model {self.stores[0].attrs.get('model_name', '?')} has no identity calibration "
                     f"(looked for calibration.json in {where}): every ANI is NA (the aligned fractions stand); "
                     "build one with `mrl-dna calibrate MODEL_DIR GENOMES...` or pass --model DIR of a model that has one")
            self.tables = [self._table(s) for s in self.stores]
            self.readers = [WindowReader(s) for s in self.stores]
        except BaseException:
            self.close()
            raise
        self._cache: OrderedDict = OrderedDict()
        self._cached_bytes = 0

    def _check(self) -> None:
        for s in self.stores:
            if s.windows() is None:
                raise StoreError(f"{s.path} has no saved windows; embed it again with `mrl-dna embed --save-windows` "
                                 "(window-level comparison needs them)")
        if len(self.stores) == 2:
            check_comparable([(str(s.path), s.attrs) for s in self.stores])

    def _table(self, store: EmbeddingStore) -> StrideCalibration:
        stride, window = saved_windows_stride(store), int(store.attrs["window"])
        if self.calibration is None:
            return StrideCalibration.uncalibrated(stride, window)
        table = self.calibration.table(stride)
        if table is None:
            have = ", ".join(str(s) for s in sorted(self.calibration.tables))
            raise ConfigError(f"{store.path} saved its windows at stride {stride} bp, and the model's calibration has "
                              f"tables for strides {have} only; re-embed with `--save-windows --windows-stride "
                              f"{min(self.calibration.tables)}` or rebuild the calibration with `mrl-dna calibrate "
                              f"--strides {stride}`")
        return table

    def rows(self, f: int) -> np.ndarray:
        """Rows of file f that have windows (status ok)."""
        st = self.stores[f]
        return np.flatnonzero(np.asarray(st.status) == STATUS_CODES["ok"])

    def ids(self, f: int) -> list[str]:
        return self.stores[f].ids

    def lengths(self, f: int) -> np.ndarray:
        return np.asarray(self.stores[f].lengths)

    def pooled(self, f: int, dim: int) -> np.ndarray | None:
        """(n, dim) re-normalised pooled prefixes, or None when dim is not a width of the file."""
        st = self.stores[f]
        return st.read(dim) if dim in st.matryoshka_dims else None

    def screen_threshold(self, min_ani: float | None) -> float | None:
        """The pooled cosine under which a pair cannot reach min_ani (measured bound), or None: no screen."""
        cal: ModelCalibration | None = self.calibration
        if min_ani is None or cal is None or cal.screen is None:
            return None
        if any(SCREEN_DIM not in s.matryoshka_dims for s in self.stores):
            return None
        return cal.screen.threshold(min_ani, SCREEN_DIM)

    def window_set(self, f: int, row: int) -> tuple[WindowSet | None, np.ndarray | None]:
        """(the row's windows, their own background at the radius of the other side's table) from the cache."""
        key = (f, int(row))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        ws = self.readers[f](int(row))
        own = None
        if ws is not None:
            t = self.tables[f]  # radius: the window over the stride, as the simulation measured it
            own = self_background(ws.vecs, ws.contig, neighbourhood_radius(t.window, t.stride))
        size = 0 if ws is None else ws.vecs.nbytes + own.nbytes
        self._cache[key] = (ws, own)
        self._cached_bytes += size
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, (old, o) = self._cache.popitem(last=False)
            self._cached_bytes -= 0 if old is None else old.vecs.nbytes + o.nbytes
        return ws, own

    def compare(self, fa: int, i: int, fb: int, j: int) -> PairResult | None:
        a, own_a = self.window_set(fa, i)
        b, own_b = self.window_set(fb, j)
        if a is None or b is None:
            return None
        return pair_ani(a, b, self.tables[fa], self.tables[fb], self.config, device=self.device, self_a=own_a,
                        self_b=own_b)

    def close(self) -> None:
        for s in self.stores:
            s.close()

    def __enter__(self) -> WindowLevel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reported(r: PairResult, min_af: float, calibrated: bool = True) -> PairResult:
    """The pair as printed: with a calibration, a direction's af is NA where its ANI is (too few homologous
    windows, or their scores below the calibrated range: on genomes of 15-60 windows the homology test passes by
    chance, and unrelated phage/mtDNA pairs read af 0.05-0.21); every ANI NA when max(af) < min_af. Without a
    calibration af is the homology test's alone (the ANI is NA for lack of a table, not of homology)."""
    nan = math.nan
    af_q = r.af_query if not calibrated or not math.isnan(r.ani_qt) else nan
    af_t = r.af_target if not calibrated or not math.isnan(r.ani_tq) else nan
    shown = [a for a in (af_q, af_t) if not math.isnan(a)]
    if shown and max(shown) >= min_af:
        return dataclasses.replace(r, af_query=af_q, af_target=af_t)
    return PairResult(r.query, r.target, nan, nan, nan, af_q, af_t, r.windows_query, r.windows_target,
                      r.homologous_query, r.homologous_target)


def pair_line(r: PairResult) -> str:
    def pct(v: float) -> str:
        return "NA" if math.isnan(v) else f"{v:.3f}"

    def frac(v: float) -> str:
        return "NA" if math.isnan(v) else f"{v:.4f}"

    return (f"{r.query}\t{r.target}\t{pct(r.ani)}\t{frac(r.af_query)}\t{frac(r.af_target)}\t{pct(r.ani_qt)}\t"
            f"{pct(r.ani_tq)}\t{r.windows_query}\t{r.windows_target}\t{r.homologous_query}\t{r.homologous_target}\n")


def header_line() -> str:
    return "#" + "\t".join(COLUMNS) + "\n"


def window_dist(level: WindowLevel, *, min_ani: float | None = None, min_af: float = MIN_AF,
                write: Callable[[str], None], header: bool = True) -> WindowDistSummary:
    """Every pair (one file: i < j; two files: A x B), screened, compared, written as TSV lines (header first)."""
    t0 = time.perf_counter()
    two = len(level.stores) == 2
    fb = 1 if two else 0
    rows_a, rows_b = level.rows(0), level.rows(fb)
    threshold = level.screen_threshold(min_ani)
    pa = pb = None
    if threshold is not None:
        pa, pb = level.pooled(0, SCREEN_DIM), level.pooled(fb, SCREEN_DIM)
    total = len(rows_a) * len(rows_b) if two else len(rows_a) * (len(rows_a) - 1) // 2
    if header:
        write(header_line())
    screened = compared = lines = 0
    with console.progress("comparing windows", total, unit="pair") as bar:
        for i in rows_a:
            js = rows_b if two else rows_a[rows_a > i]
            if not len(js):
                continue
            keep = js
            if threshold is not None:
                keep = js[pb[js] @ pa[i] >= threshold]
                screened += len(js) - len(keep)
            for j in keep:
                r = level.compare(0, i, fb, j)
                compared += 1
                if r is None:
                    continue
                r = reported(r, min_af, level.calibration is not None)
                if min_ani is None or (not math.isnan(r.ani) and r.ani >= min_ani):
                    write(pair_line(r))
                    lines += 1
            bar.advance(len(js))
    return WindowDistSummary(len(rows_a), len(rows_b), total, screened, compared, lines,
                             level.calibration is not None, threshold, time.perf_counter() - t0)


@dataclass(frozen=True, eq=False)
class WindowClusters:
    """Species-level clusters (file order of the rows with windows)."""

    ids: list[str]
    cluster: np.ndarray  # (n,) int64, 0 = the largest
    representative: np.ndarray  # (n,) int64 index into ids
    ani: np.ndarray  # (n,) float64 ANI to the representative (100 for itself)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.cluster) if len(self.cluster) else np.zeros(0, np.int64)


def window_clusters(level: WindowLevel, *, min_ani: float, min_af: float = MIN_AF,
                    progress: bool = True) -> tuple[WindowClusters, int]:
    """Greedy leader clustering at --min-ani (dRep's and galah's scheme for species dereplication): rows
    visited longest first (ties: file order); each is compared with the representatives so far (those the
    pooled screen lets through) and joins the one of highest ANI >= min_ani (ANI reported, max(af) >= min_af),
    else founds a cluster. Every member is within min_ani of a real genome, its representative (no chaining of
    single linkage, which merges species through intermediate strains), and only n x clusters pairs are
    compared, not all n^2. Returns (clusters, pairs compared)."""
    if level.calibration is None:
        raise ConfigError("cluster --level windows needs an identity calibration (every ANI would be NA); build one "
                          "with `mrl-dna calibrate MODEL_DIR GENOMES...` or pass --model DIR of a model that has one")
    rows = level.rows(0)
    if not len(rows):
        raise ConfigError(f"{level.stores[0].path} has no row with windows; nothing to cluster")
    ids_all = level.ids(0)
    lengths = level.lengths(0)[rows]
    order = rows[np.lexsort((rows, -lengths))]
    threshold = level.screen_threshold(min_ani)
    pooled = level.pooled(0, SCREEN_DIM) if threshold is not None else None
    reps: list[int] = []  # file rows of the representatives
    label = {}
    best_ani = {}
    compared = 0
    with console.progress("clustering", len(order), unit="genome") as bar:
        for r in order:
            cands = np.asarray(reps, np.int64)
            if pooled is not None and len(cands):
                cands = cands[pooled[cands] @ pooled[r] >= threshold]
            best, who = -math.inf, -1
            for c in cands:
                res = level.compare(0, int(r), 0, int(c))
                compared += 1
                if res is None:
                    continue
                res = reported(res, min_af, level.calibration is not None)
                if not math.isnan(res.ani) and res.ani >= min_ani and res.ani > best:
                    best, who = res.ani, int(c)
            if who < 0:
                reps.append(int(r))
                label[int(r)], best_ani[int(r)] = int(r), 100.0
            else:
                label[int(r)], best_ani[int(r)] = who, best
            bar.advance(1)
    index = {int(r): k for k, r in enumerate(rows)}
    rep = np.array([index[label[int(r)]] for r in rows], np.int64)
    uniq, first, inverse, counts = np.unique(rep, return_index=True, return_inverse=True, return_counts=True)
    rank = np.lexsort((first, -counts))
    number = np.empty(len(uniq), np.int64)
    number[rank] = np.arange(len(uniq))
    return WindowClusters([ids_all[int(r)] for r in rows], number[inverse], rep,
                          np.array([best_ani[int(r)] for r in rows])), compared


def window_cluster_lines(c: WindowClusters, *, header: bool = True) -> Iterator[str]:
    """'#id cluster representative ani', one line per row in file order (ANI percent to the representative)."""
    if header:
        yield "#id\tcluster\trepresentative\tani\n"
    for i, rid in enumerate(c.ids):
        yield f"{rid}\t{c.cluster[i]}\t{c.ids[c.representative[i]]}\t{c.ani[i]:.3f}\n"
