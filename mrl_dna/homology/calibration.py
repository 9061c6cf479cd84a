"""A model's identity calibration: `calibration.json` in the model directory.

Per saved-window stride S (the stride of the target's saved windows: what sets the offset error), a table
identity -> median normalised score s (score.py) of simulated windows at that identity, isotonic and strictly
increasing so it inverts; `valid_min`, the lowest identity where a genome-level estimate stayed within 1 point on
held-out simulated genomes (below it: NA); the query step it was measured with. Beside the tables, the pooled
screen (`ScreenBound`): per prefix width and ANI level T, the lowest pooled-vector cosine seen among simulated
pairs whose window ANI >= T (and min(af) >= min_af), so `dist --level windows --min-ani T` can skip pairs below it
minus a margin. Identity is the event identity 1 - (substitutions + indel events) / bases: the scale of fastANI,
skani and mash (an indel of any length is one event for a k-mer profile too). build.py makes the file.

Glossary: g grid points.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrl_dna.errors import ConfigError

CALIBRATION_FILE = "calibration.json"
FORMAT = "mrl-dna-calibration"
FORMAT_VERSION = 1


@dataclass
class StrideCalibration:
    """Window score -> identity for one saved-window stride (the target's)."""

    stride: int  # bp between saved windows of the target
    window: int  # bp per window
    query_step: int  # query windows scored: every query_step-th (the simulation measured it so)
    identity: np.ndarray  # (g,) ascending identity grid (fraction)
    score: np.ndarray  # (g,) median normalised score at each identity, strictly increasing
    valid_min: float  # lowest identity (fraction) of a trusted genome-level estimate; 1.0 = none trusted
    meta: dict = field(default_factory=dict)  # how it was measured: cross-check errors per band, counts

    def to_json(self) -> dict:
        return dict(stride=self.stride, window=self.window, query_step=self.query_step, valid_min=self.valid_min,
                    identity=[round(float(v), 4) for v in self.identity],
                    score=[round(float(v), 6) for v in self.score], meta=self.meta)

    @classmethod
    def from_json(cls, d: dict) -> StrideCalibration:
        return cls(stride=int(d["stride"]), window=int(d["window"]), query_step=int(d.get("query_step", 1)),
                   identity=np.asarray(d["identity"], float), score=np.asarray(d["score"], float),
                   valid_min=float(d["valid_min"]), meta=d.get("meta", {}))

    @classmethod
    def uncalibrated(cls, stride: int, window: int) -> StrideCalibration:
        """No table (a model without calibration.json): every identity and ANI is NA; windows are still tested
        for homology, so the aligned fractions stand."""
        return cls(stride, window, 1, np.zeros(0), np.zeros(0), 1.0, {"uncalibrated": True})

    @property
    def calibrated(self) -> bool:
        return len(self.identity) > 0

    def identity_of(self, s: np.ndarray) -> np.ndarray:
        """Calibrated identity (fraction) of each score; nan below the table's lowest score, capped at the top."""
        if not self.calibrated:
            return np.full(np.shape(s), np.nan)
        return np.interp(s, self.score, self.identity, left=np.nan, right=float(self.identity[-1]))


@dataclass
class ScreenBound:
    """The pooled screen of `dist --level windows --min-ani T`: per prefix width, the lowest pooled cosine seen
    among measured pairs at window ANI >= each level (ani, percent); a pair below threshold(T) is skipped."""

    ani: np.ndarray  # (l,) ascending ANI levels, percent
    min_cos: dict[int, np.ndarray]  # prefix width -> (l,) lowest pooled cosine at ANI >= each level
    margin: float  # subtracted from the measured minimum
    min_af: float  # the bound covers pairs with min(af_query, af_target) >= this
    n_pairs: list[int] = field(default_factory=list)  # (l,) measured pairs behind each level

    def threshold(self, min_ani: float, dim: int) -> float | None:
        """Pooled cosine at prefix `dim` below which no measured pair reached min_ani, minus the margin; None
        when nothing was measured for that width or at or below min_ani (then no pair may be skipped)."""
        if dim not in self.min_cos or not len(self.ani) or min_ani < self.ani[0]:
            return None
        i = int(np.searchsorted(self.ani, min_ani, side="right") - 1)
        v = float(self.min_cos[dim][i])
        return None if math.isnan(v) else v - self.margin

    def to_json(self) -> dict:
        return dict(ani=[float(a) for a in self.ani], margin=self.margin, min_af=self.min_af, n_pairs=self.n_pairs,
                    min_cos={str(k): [None if math.isnan(x) else round(float(x), 6) for x in v]
                             for k, v in self.min_cos.items()})

    @classmethod
    def from_json(cls, d: dict) -> ScreenBound:
        return cls(ani=np.asarray(d["ani"], float), margin=float(d["margin"]), min_af=float(d["min_af"]),
                   n_pairs=list(d.get("n_pairs", [])),
                   min_cos={int(k): np.asarray([math.nan if x is None else x for x in v], float)
                            for k, v in d["min_cos"].items()})


@dataclass
class ModelCalibration:
    """What calibration.json holds: the model it was built for, the per-stride tables, the screen, the build."""

    model_hash: str
    model_name: str
    tables: dict[int, StrideCalibration]  # saved-window stride -> table
    screen: ScreenBound | None
    build: dict  # how it was built: genomes, rates, seed, simulation, mrl-dna version

    def table(self, stride: int) -> StrideCalibration | None:
        return self.tables.get(int(stride))

    def to_json(self) -> dict:
        return dict(format=FORMAT, format_version=FORMAT_VERSION, model_hash=self.model_hash,
                    model_name=self.model_name,
                    statistic="s = (best - mu) / (1 - mu), best = best full-width cosine among the target's saved "
                              "windows, mu = max(target background, query genome's own background), both "
                              "outside the neighbourhood",
                    identity_scale="event identity 1 - (substitutions + indel events) / bases",
                    tables=[self.tables[s].to_json() for s in sorted(self.tables)],
                    screen=None if self.screen is None else self.screen.to_json(), build=self.build)

    @classmethod
    def from_json(cls, d: dict) -> ModelCalibration:
        if d.get("format") != FORMAT or int(d.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"not a {FORMAT} file of version <= {FORMAT_VERSION}")
        tables = {int(t["stride"]): StrideCalibration.from_json(t) for t in d["tables"]}
        screen = ScreenBound.from_json(d["screen"]) if d.get("screen") else None
        return cls(model_hash=str(d["model_hash"]), model_name=str(d.get("model_name", "")), tables=tables,
                   screen=screen, build=d.get("build", {}))

    def save(self, directory: str | Path) -> Path:
        """Write DIRECTORY/calibration.json (through a .partial, renamed when complete)."""
        path = Path(directory) / CALIBRATION_FILE
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        tmp.replace(path)
        return path


def load_calibration(directory: str | Path) -> ModelCalibration | None:
    """DIRECTORY/calibration.json, or None when the model has none. ConfigError (one line) when it is damaged."""
    path = Path(directory) / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        return ModelCalibration.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is damaged ({e}); rebuild it with `mrl-dna calibrate {directory}`") from None


def fit_table(identity: np.ndarray, score: np.ndarray, grid: np.ndarray | None = None, *,
              min_count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Simulated windows' (true identity, score) -> (grid, median score at each grid identity): medians per bin
    (width = grid step), made increasing by isotonic regression (weights = bin counts), then strictly
    increasing (+1e-6 per step) so it inverts. Bins with < min_count windows are interpolated. The map is
    identity -> score (the classical calibration curve): its inverse does not depend on the identities drawn."""
    grid = np.round(np.arange(0.60, 1.00001, 0.005), 4) if grid is None else np.asarray(grid, float)
    half = (grid[1] - grid[0]) / 2
    xs, vs, ws = [], [], []
    for g in grid:
        sel = np.abs(identity - g) <= half
        if sel.sum() >= min_count:
            xs.append(g)
            vs.append(np.median(score[sel]))
            ws.append(sel.sum())
    if not xs:
        raise ConfigError(f"too few simulated windows to fit a calibration (need >= {min_count} in one identity bin)")
    v = _pava(np.asarray(vs, float), np.asarray(ws, float))
    return grid, np.interp(grid, xs, v) + np.arange(len(grid)) * 1e-6


def _pava(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Increasing isotonic regression (pool adjacent violators)."""
    blocks = [[y[0] * w[0], w[0], 1]]
    for yi, wi in zip(y[1:], w[1:]):
        blocks.append([yi * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, ww, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += ww
            blocks[-1][2] += c
    return np.concatenate([np.full(c, s / ww) for s, ww, c in blocks])


def fit_screen(ani: np.ndarray, pooled_cos: dict[int, np.ndarray], levels, *, margin: float,
               min_af: float) -> ScreenBound:
    """Per level T and width: the minimum pooled cosine over pairs with ani >= T (pairs already filtered by af),
    nan where no pair reached T; monotone (a lower level never gets a higher bound)."""
    levels = np.asarray(levels, float)
    ani = np.asarray(ani, float)
    mins = {}
    for dim, cos in pooled_cos.items():
        m = np.array([np.min(cos[ani >= t]) if (ani >= t).any() else math.nan for t in levels])
        mins[dim] = np.fmin.accumulate(m[::-1])[::-1]
    return ScreenBound(ani=levels, min_cos=mins, margin=margin, min_af=min_af,
                       n_pairs=[int((ani >= t).sum()) for t in levels])
