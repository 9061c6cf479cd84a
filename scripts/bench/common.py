"""What the benchmark scripts (scripts/bench/{cluster,retrieval,windows}.py) score, and how a run is recorded.

Methods: every model given as `--model NAME=DIR` at each of its Matryoshka dims (and its full width), then the
baselines: canonical 4-mer and 6-mer profiles (mrl_dna.kmer), the raw 256-d TNF as DNABERT-S computes it
(mrl_dna.kmer.TnfEmbedder), and the v1 default model (bench/models/v1). A baseline model whose weights equal a
given model's is scored once, under the given name. Threads: one torch and one BLAS/OpenMP thread by default, so
a number does not depend on what else runs on the machine's cores, and K-means gives the same clusters on every
run. A run's metadata (machine, versions, commit, command, wall time) goes with its numbers into --json. Paths in
it name no machine (`portable`): relative to the repository inside it, else only their last two parts, so a
JSON kept in bench/heldout/ reads the same on any checkout.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from mrl_dna import console
from mrl_dna.evaluate import heldout as eh
from mrl_dna.evaluate import retrieval as ev
from mrl_dna.errors import ConfigError
from mrl_dna.kmer import KmerEmbedder, ProjectedKmerEmbedder, TnfEmbedder
from mrl_dna.model import load_model

REPO = Path(__file__).resolve().parents[2]
V1_DIR = REPO / "bench" / "models" / "v1"  # a source checkout's frozen copy of the first default model


@dataclass(frozen=True)
class ModelSpec:
    name: str  # row label
    path: str | None  # None = the bundled default model


def parse_model_spec(spec: str) -> ModelSpec:
    """`NAME=DIR` -> (NAME, DIR); `default` or `NAME=default` -> the bundled model; a bare `DIR` is named by
    its last path part."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = (Path(spec.rstrip("/")).name or spec), spec
    name, path = name.strip(), path.strip()
    if not name or not path:
        raise ConfigError(f"--model {spec!r} is not NAME=DIR; e.g. --model v2=runs/v2/model or --model default")
    return ModelSpec(name, None if path == "default" else path)


class Baseline(str, Enum):
    KMER4 = "4mer"
    KMER6 = "6mer"
    KMER6_RP512 = "6mer-rp512"
    TNF = "tnf"
    V1 = "v1"


ALL_BASELINES = ",".join(b.value for b in Baseline)
BASELINE_NAMES = {Baseline.KMER4: "4-mer profile", Baseline.KMER6: "6-mer profile",
                  Baseline.KMER6_RP512: "6-mer profile -> random 512-d",
                  Baseline.TNF: "TNF (DNABERT-S)", Baseline.V1: "v1"}


def parse_baselines(text: str) -> tuple[Baseline, ...]:
    """'4mer,6mer,tnf,v1' -> the Baseline members; '' or 'none' -> none."""
    items = [t.strip() for t in text.split(",") if t.strip() and t.strip() != "none"]
    bad = [t for t in items if t not in {b.value for b in Baseline}]
    if bad:
        raise ConfigError(f"--baselines {bad} unknown; pick from {ALL_BASELINES} (or none)")
    return tuple(dict.fromkeys(Baseline(t) for t in items))


@dataclass(frozen=True)
class MethodSet:
    methods: list[ev.Method]
    models: dict[str, dict]  # method name -> model identity (path, weights hash, dims, window) for the record
    notes: list[str]


def build_methods(models: Sequence[ModelSpec], baselines: Sequence[Baseline], *, device: str = "cpu",
                  batch_tokens: int | None = None, v1_dir: Path = V1_DIR) -> MethodSet:
    """Models first (each at every Matryoshka dim and its full width), then the baselines, in the order given."""
    methods: list[ev.Method] = []
    ident: dict[str, dict] = {}
    notes: list[str] = []
    specs = list(models)
    if Baseline.V1 in baselines:
        if not (Path(v1_dir) / "model.safetensors").is_file():
            raise ConfigError(f"v1 baseline model not found at {v1_dir}; run from a source checkout or "
                              "drop v1 from --baselines")
        specs.append(ModelSpec(BASELINE_NAMES[Baseline.V1], str(v1_dir)))
    for i, spec in enumerate(specs):
        model = load_model(spec.path)
        info = model.info
        twin = next((n for n, d in ident.items() if d["weights_hash"] == info.weights_hash), None)
        if twin is not None and i >= len(models):  # a baseline equal to a given model: score it once
            notes.append(f"{spec.name} has the same weights as {twin} (sha256 {info.weights_hash[:12]}); scored once")
            continue
        if spec.name in ident:
            raise ConfigError(f"two methods are named {spec.name!r}; give each --model a distinct NAME=")
        methods.append(ev.model_method(model, spec.name, device=device, batch_tokens=batch_tokens))
        ident[spec.name] = {"path": portable(spec.path) if spec.path else "default (bundled)", "model_name": info.name,
                            "weights_hash": info.weights_hash, "dim": info.dim,
                            "matryoshka_dims": list(info.matryoshka_dims), "window": info.window,
                            "pooling": info.pooling}
    for b in baselines:
        if b is Baseline.KMER4:
            methods.append(ev.Method(BASELINE_NAMES[b], KmerEmbedder(4)))
        elif b is Baseline.KMER6:
            methods.append(ev.Method(BASELINE_NAMES[b], KmerEmbedder(6)))
        elif b is Baseline.KMER6_RP512:
            methods.append(ev.Method(BASELINE_NAMES[b], ProjectedKmerEmbedder(6, 512)))
        elif b is Baseline.TNF:
            methods.append(ev.Method(BASELINE_NAMES[b], TnfEmbedder()))
    if not methods:
        raise ConfigError("nothing to score: give --model NAME=DIR or keep some --baselines")
    return MethodSet(methods, ident, notes)


def bench_parser(doc: str, *, threads: str = "torch and BLAS threads") -> argparse.ArgumentParser:
    """The options the held-out benchmarks share (cluster.py, retrieval.py, windows.py): what to score
    (--model, --no-model, --baselines), where the genomes are (--data), --seed, --threads, --device, --json.
    Each script adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], metavar="NAME=DIR",
                    help="a model to score at every Matryoshka dim; repeatable; 'default' = the bundled model [default]")
    ap.add_argument("--no-model", action="store_true", help="no --model rows, baselines only (v1 is a baseline)")
    ap.add_argument("--baselines", default=ALL_BASELINES, help="comma list of baselines, or none [all: %(default)s]")
    ap.add_argument("--data", type=Path, default=eh.shared_data_dir(), help="shared data dir with MANIFEST.tsv [%(default)s]")
    ap.add_argument("--seed", type=int, default=0, help="first fragment seed [%(default)s]")
    ap.add_argument("--threads", type=int, default=1, help=f"{threads} [%(default)s]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, help="write every number here")
    return ap


def methods_of(a: argparse.Namespace) -> tuple[list[ModelSpec], MethodSet]:
    """bench_parser's --model/--no-model/--baselines -> (the model specs, every method to score)."""
    specs = [] if a.no_model else [parse_model_spec(s) for s in (a.model or ["default"])]
    return specs, build_methods(specs, parse_baselines(a.baselines), device=a.device)


def limit_threads(n: int) -> None:
    """n torch threads and n BLAS/OpenMP threads (numpy, scikit-learn's K-means) for the rest of the run."""
    import torch

    if n < 1:
        raise ConfigError(f"--threads {n} must be >= 1")
    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no scikit-learn either; numpy then follows OMP_NUM_THREADS
        return
    threadpool_limits(n)


def run_metadata(*, threads: int, seconds: float | None = None) -> dict:
    """Machine, versions, commit and command of this run, for the table footer and --json."""
    import torch

    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "--", "mrl_dna",
                            "scripts"], capture_output=True, text=True).stdout.strip()
    try:
        import sklearn

        skl = sklearn.__version__
    except ImportError:
        skl = None
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "scikit_learn": skl, "threads": threads, "commit": commit + ("+local changes" if dirty else ""),
        "command": portable_command(sys.argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": None if seconds is None else round(seconds, 1),
    }


def portable(path: str | Path) -> str:
    """A path as a run's record keeps it: relative to the repository when inside it, as given when relative,
    else '.../' and its last two parts (a run directory or an output elsewhere on the machine that ran it)."""
    p = Path(path)
    if not p.is_absolute():
        return str(path)
    try:
        return p.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return "/".join(("...", *p.parts[-2:]))


def portable_command(argv: Sequence[str]) -> str:
    """A run's command line with `portable` paths: the script's, every absolute argument's, also after NAME=."""
    def arg(a: str) -> str:
        name, sep, value = a.partition("=")
        if sep and Path(value).is_absolute():
            return f"{name}={portable(value)}"
        return portable(a) if Path(a).is_absolute() else a

    return " ".join([portable(Path(argv[0]).resolve()) if argv[0].endswith(".py") else argv[0], *map(arg, argv[1:])])


def footer_markdown(meta: dict, timings: dict[str, float], notes: Sequence[str] = ()) -> str:
    lines = []
    for n in notes:
        lines.append(f"Note: {n}.")
    if timings:
        lines.append("Wall time per method (embedding + scoring): " + "; ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".")
    lines.append(f"Machine: {meta['host']}, {meta['cpus']} CPUs ({meta['machine']}), Python {meta['python']}, torch "
                 f"{meta['torch']}, numpy {meta['numpy']}" + (f", scikit-learn {meta['scikit_learn']}" if meta["scikit_learn"] else "")
                 + f"; {meta['threads']} thread(s); mrl-dna commit {meta['commit']}; total {meta['seconds']:.0f} s. "
                 f"Command: `{meta['command']}`.")
    return "\n\n".join(lines) + "\n"


def to_jsonable(x):
    """Dataclasses, numpy scalars/arrays, enums, paths, tuples -> plain JSON values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_jsonable(getattr(x, f.name)) for f in dataclasses.fields(x) if not callable(getattr(x, f.name))}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Enum):
        return x.value
    if isinstance(x, Path):
        return portable(x)
    if isinstance(x, float) and x != x:
        return None
    return x


def write_json(path: str | Path, payload: dict) -> None:
    Path(path).write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    console.info(f"wrote {path}")
