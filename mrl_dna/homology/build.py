"""Building a model's calibration.json by simulation (issue 20, item 3; `mrl-dna calibrate`, and `train` at the
end of a run).

For each calibration genome x and each mutation rate r: y = evolve.mutate(x, r) with its defaults (20% of events
indels of 1-3 bp), a random 0..window-1 bp cut from both ends of y (so the two window grids have a random phase,
as two real genomes have), both embedded exactly as `embed --save-windows --windows-stride S` places and stores
windows (embed_sequences), for every stride S. Per window of y: its true event identity to x (1 - (substitutions +
indel events) / source bases, from the mutation log) and its normalised score s against x's windows
(score.py). The table per stride = median s per identity bin, isotonic (calibration.fit_table), fitted first on
the first FIT_SHARE of the genomes to measure the genome-level error on the others (valid_min = the lowest
5-point band down from 100% whose held-out genome-level MAE stays <= VALID_MAE), then refitted on all.

The pooled screen: per genome and pair level, a relative of x with UNEVEN divergence (RELATIVE_SEGMENT bp
segments each mutated at r * gamma(4)/4, up to 20% of them replaced by another calibration genome's sequence,
the rest cut as above), compared with x by the window estimator (ani.pair_ani at the smallest stride) and by the
pooled record vectors at every Matryoshka width; per ANI level the lowest pooled cosine among pairs with
min(af) >= SCREEN_MIN_AF, minus SCREEN_MARGIN. Uneven divergence and foreign segments lower the pooled cosine
of a pair at a given ANI, so these minima sit below those of even mutation (the safe side of a screen).

Glossary: n bases, k windows.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mrl_dna.embed import EmbedOptions, embed_sequences
from mrl_dna.errors import ConfigError
from mrl_dna.evolve import mutate
from mrl_dna.homology.ani import HomologyConfig, pair_ani
from mrl_dna.homology.hits import best_hits
from mrl_dna.homology.calibration import ModelCalibration, StrideCalibration, fit_screen, fit_table
from mrl_dna.homology.score import background, neighbourhood_radius, normalized_score, self_background
from mrl_dna.homology.windowset import WindowSet, from_arrays
from mrl_dna.inputs.fasta import Record, read_fasta
from mrl_dna.inputs.genomes import expand_inputs, genome_name
from mrl_dna.version import __version__

# Mutation rates (events per base) of the simulation: identities ~100% down to ~68% (the table flattens below ~65%).
RATES = (0.0, 0.004, 0.01, 0.02, 0.03, 0.045, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16, 0.18, 0.21, 0.24, 0.28, 0.32)
STRIDES = (250, 500, 1000)  # saved-window strides a table is built for (embed's default first)
FIT_SHARE = 0.6  # genomes the cross-check fits on; valid_min is measured on the rest
VALID_MAE = 1.0  # ANI points: the genome-level error a band must stay within to be in the valid range
BANDS = (0.99, 0.95, 0.90, 0.85, 0.80, 0.75, 0.70, 0.65)  # lower ends of the cross-check's identity bands
SCREEN_LEVELS = (80.0, 85.0, 90.0, 95.0, 97.0, 99.0)  # --min-ani values the screen has a bound for
SCREEN_RATES = (0.005, 0.01, 0.02, 0.035, 0.05, 0.07, 0.1, 0.14)  # pair rates of the uneven relatives
SCREEN_MARGIN = 0.02  # subtracted from the lowest pooled cosine seen (4-10x the spread between levels' minima)
SCREEN_MIN_AF = 0.2  # the screen's promise covers pairs sharing at least this of both genomes
RELATIVE_SEGMENT = 5000  # bp per independently mutated segment of an uneven relative


def build_calibration(model, genomes: Sequence[tuple[str, np.ndarray]], *, strides: Sequence[int] = STRIDES,
                      rates: Sequence[float] = RATES, seed: int = 0, query_step: int = HomologyConfig.query_step,
                      screen: bool = True, device: str = "cpu", batch_tokens: int | None = None,
                      progress: Callable[[str], None] | None = None) -> ModelCalibration:
    """The calibration of `model` from simulated relatives of `genomes` ((name, tokens) each; >= 2 genomes).

    Deterministic for the same genomes, rates, seed and model (each draw seeded by the genome's name, the rate
    and seed). progress: called with one line per genome."""
    if len(genomes) < 2:
        raise ConfigError("a calibration needs at least 2 genomes (one to fit, one to check it)")
    info = model.info
    window = info.window
    opts = {s: EmbedOptions(save_windows=True, windows_stride=s, device=device, batch_tokens=batch_tokens)
            for s in strides}
    sims = {s: dict(g=[], ident=[], score=[], rate=[]) for s in strides}
    pairs: dict[str, list] = dict(ani=[], af=[], cos=[])
    for gi, (name, x) in enumerate(genomes):
        targets = {s: embed_windows(model, x, opts[s]) for s in strides}
        for rate in rates:
            rng = np.random.default_rng(zlib.crc32(f"{seed}:{name}:{rate}".encode()))
            y, log = mutate(x, rate, rng)
            u, v = (int(c) for c in rng.integers(0, window, size=2))
            yc = y[u: len(y) - v]
            src, sub = source_map(len(x), log, len(y))
            ins_pos = np.sort(log.ins_pos)
            dp = log.del_pos
            del_start = dp[np.r_[True, np.diff(dp) > 1]] if len(dp) else dp  # one event per run of deleted bases
            for s in strides:
                q, _ = embed_windows(model, yc, opts[s])
                if len(q) == 0:
                    continue
                t = targets[s][0]
                ident = event_identity(src, sub, q.start + u, q.end + u, ins_pos, del_start)
                score = _scores(q, t, neighbourhood_radius(window, s), device)
                o = sims[s]
                o["g"].append(np.full(len(ident), gi))
                o["rate"].append(np.full(len(ident), rate))
                o["ident"].append(ident)
                o["score"].append(score)
        if screen:
            s0 = min(strides)
            tset, tvec = targets[s0]
            other = genomes[(gi + 1) % len(genomes)][1]
            for rate in SCREEN_RATES:
                rng = np.random.default_rng(zlib.crc32(f"{seed}:{name}:relative:{rate}".encode()))
                rel = uneven_relative(x, other, rate, rng, window)
                qset, qvec = embed_windows(model, rel, opts[s0])
                if len(qset) == 0:
                    continue
                pairs["ani"].append((qset, tset))  # scored once the table of stride s0 exists
                pairs["cos"].append({d: float(_prefix(qvec, d) @ _prefix(tvec, d)) for d in info.matryoshka_dims})
        if progress is not None:
            progress(f"calibration: {gi + 1}/{len(genomes)} genomes ({name})")
    tables = {s: _table(sims[s], s, window, query_step, len(genomes)) for s in strides}
    screen_bound = None
    if screen and pairs["ani"]:
        cal0 = tables[min(strides)]
        anis, cos = [], {d: [] for d in info.matryoshka_dims}
        for (qset, tset), c in zip(pairs["ani"], pairs["cos"]):
            r = pair_ani(qset, tset, cal0, cal0, HomologyConfig(query_step=query_step), device=device)
            if math.isnan(r.ani) or min(r.af_query, r.af_target) < SCREEN_MIN_AF:
                continue
            anis.append(r.ani)
            for d in cos:
                cos[d].append(c[d])
        if anis:
            screen_bound = fit_screen(np.asarray(anis), {d: np.asarray(v) for d, v in cos.items()}, SCREEN_LEVELS,
                                      margin=SCREEN_MARGIN, min_af=SCREEN_MIN_AF)
    build = dict(how="simulation: evolve.mutate copies of each genome (defaults: 20% of events indels of 1-3 bp), "
                     "random 0..window-1 bp end cuts, windows placed by embed_sequences with --save-windows; "
                     "screen: uneven relatives (5 kb segments at rate x gamma(4)/4, up to 20% foreign segments)",
                 genomes=[n for n, _ in genomes], genome_bp=[int(len(x)) for _, x in genomes], rates=list(rates),
                 screen_rates=list(SCREEN_RATES) if screen else [], seed=seed, strides=list(strides),
                 fit_share=FIT_SHARE, valid_rule=f"lowest band down from 100% with held-out genome-level MAE <= "
                                                 f"{VALID_MAE} ANI points", mrl_dna_version=__version__)
    return ModelCalibration(model_hash=info.weights_hash, model_name=info.name, tables=tables, screen=screen_bound,
                            build=build)


def read_genomes(paths: Sequence[str | Path]) -> list[tuple[str, np.ndarray]]:
    """Calibration genomes from FASTA files (inputs.genomes.expand_inputs: files, directories, globs): one genome
    per file, named after it, its records joined end to end (a junction window is one window among many)."""
    out = []
    for p in expand_inputs([str(x) for x in paths]):
        tokens = [r.tokens for r in read_fasta(str(p))]
        if tokens and sum(len(t) for t in tokens):
            out.append((genome_name(p), np.concatenate(tokens)))
    return out


def embed_windows(model, tokens: np.ndarray, options: EmbedOptions) -> tuple[WindowSet, np.ndarray]:
    """(the saved windows of one sequence as embed stores them, its record vector (D,))."""
    er = next(embed_sequences([Record(id="x", description="", tokens=tokens, source="calibration")], model=model,
                              options=options))
    spans = np.asarray(er.window_spans if er.window_spans is not None else np.zeros((0, 2)), np.int64).reshape(-1, 2)
    vecs = (np.asarray(er.window_vectors, np.float32) if er.window_vectors is not None
            else np.zeros((0, model.info.dim), np.float32))
    return from_arrays("x", vecs, spans[:, 0], spans[:, 1], [len(tokens)]), np.asarray(er.vector, np.float32)


def _prefix(v: np.ndarray, d: int) -> np.ndarray:
    p = v[:d].astype(np.float64)
    return p / max(float(np.linalg.norm(p)), 1e-12)


def _scores(q: WindowSet, t: WindowSet, radius: int, device: str) -> np.ndarray:
    """(k,) normalised score of every query window against the target (score.py's statistic)."""
    best, arg = best_hits(q.vecs, t.vecs, device=device)
    mu = np.fmax(background(q.vecs, t.vecs, arg, t.contig, radius), self_background(q.vecs, q.contig, radius))
    return normalized_score(best, mu)


def source_map(n: int, log, ylen: int) -> tuple[np.ndarray, np.ndarray]:
    """(src (ylen,) the source position of each base of y, -1 for inserted bases; sub (n,) substituted & kept)."""
    keep = np.ones(n, bool)
    keep[log.del_pos] = False
    count = keep.astype(np.int64)
    count[log.ins_pos] += log.ins_len
    first = np.cumsum(count) - count
    src = np.full(ylen, -1, np.int64)
    src[first[keep]] = np.flatnonzero(keep)
    sub = np.zeros(n, bool)
    sub[log.sub_pos] = True
    return src, sub & keep


def event_identity(src: np.ndarray, sub: np.ndarray, start: np.ndarray, end: np.ndarray, ins_pos: np.ndarray,
                    del_start: np.ndarray) -> np.ndarray:
    """(k,) event identity of windows [start, end) of y (coordinates on the uncut y): over the source interval
    [lo, hi) they cover, 1 - (substitutions + insertion events + deletion events) / (hi - lo); 0 for a window of
    inserted bases only."""
    ylen = len(src)
    pos = np.where(src >= 0, np.arange(ylen), -1)
    prev = np.maximum.accumulate(pos)  # last source-carrying y position <= i
    nxt = np.where(src >= 0, np.arange(ylen), ylen)
    nxt = np.minimum.accumulate(nxt[::-1])[::-1]  # first source-carrying y position >= i
    a = nxt[np.minimum(start, ylen - 1)]
    b = prev[np.clip(end - 1, 0, ylen - 1)]
    ok = (a < end) & (b >= start) & (a <= b) & (a < ylen) & (b >= 0)
    lo = np.where(ok, src[np.clip(a, 0, ylen - 1)], 0)
    hi = np.where(ok, src[np.clip(b, 0, ylen - 1)] + 1, 1)
    csub = np.r_[0, np.cumsum(sub)]
    ev = (csub[hi] - csub[lo] + np.searchsorted(ins_pos, hi) - np.searchsorted(ins_pos, lo)
          + np.searchsorted(del_start, hi) - np.searchsorted(del_start, lo))
    return np.where(ok, 1.0 - ev / np.maximum(hi - lo, 1), 0.0)


def uneven_relative(x: np.ndarray, other: np.ndarray, rate: float, rng: np.random.Generator,
                     window: int) -> np.ndarray:
    """A relative of x with uneven divergence: RELATIVE_SEGMENT bp segments each mutated at rate * gamma(4)/4,
    a share (0-20%) of them replaced by `other`'s sequence, random end cuts."""
    parts = []
    foreign = rng.uniform(0.0, 0.2)
    for i in range(0, len(x), RELATIVE_SEGMENT):
        seg = x[i: i + RELATIVE_SEGMENT]
        if rng.random() < foreign and len(other) > len(seg):
            j = int(rng.integers(0, len(other) - len(seg)))
            parts.append(other[j: j + len(seg)])
        else:
            parts.append(mutate(seg, min(rate * rng.gamma(4.0) / 4.0, 0.5), rng)[0])
    y = np.concatenate(parts)
    u, v = (int(c) for c in rng.integers(0, window, size=2))
    return y[u: len(y) - v]


def _table(o: dict, stride: int, window: int, query_step: int, n_genomes: int) -> StrideCalibration:
    """Fit, cross-check (first FIT_SHARE of the genomes vs the rest), valid range, refit on all."""
    g, ident, score, rate = (np.concatenate(o[k]) for k in ("g", "ident", "score", "rate"))
    n_fit = max(1, min(n_genomes - 1, int(round(FIT_SHARE * n_genomes))))
    fit, test = g < n_fit, g >= n_fit
    grid, val = fit_table(ident[fit], score[fit])
    est = StrideCalibration(stride, window, query_step, grid, val, 0.0).identity_of(score)
    rows = []  # (true mean identity, estimated mean) per held-out (genome, rate), query side every query_step-th
    for gi in np.unique(g[test]):
        for r in np.unique(rate):
            idx = np.flatnonzero(test & (g == gi) & (rate == r))[::query_step]
            if len(idx) >= 5:
                e = est[idx]
                rows.append((ident[idx].mean(), np.nanmean(e) if np.isfinite(e).any() else np.nan,
                             float(np.mean(np.isnan(e)))))
    R = np.asarray(rows, float).reshape(-1, 3)
    bands, valid, trusted = [], 1.0, True
    for lo, hi in zip(BANDS, (1.01,) + BANDS[:-1]):
        m = (R[:, 0] >= lo) & (R[:, 0] < hi)
        err = (R[m, 1] - R[m, 0]) * 100
        mae = float(np.nanmean(np.abs(err))) if m.any() and np.isfinite(err).any() else math.nan
        na = float(np.mean(np.isnan(R[m, 1]))) if m.any() else 1.0
        bands.append(dict(band=[lo, min(hi, 1.0)], n=int(m.sum()), mae=mae,
                          bias=float(np.nanmean(err)) if np.isfinite(err).any() else math.nan, na=na))
        trusted = trusted and not math.isnan(mae) and mae <= VALID_MAE and na < 0.5
        if trusted:
            valid = lo
    grid, val = fit_table(ident, score)
    meta = dict(windows=int(len(ident)), genomes=n_genomes, fit_genomes=n_fit,
                cross_check_genome_level=[{k: (None if isinstance(v, float) and math.isnan(v) else v)
                                           for k, v in b.items()} for b in bands])
    return StrideCalibration(stride, window, query_step, grid, val, valid, meta)
