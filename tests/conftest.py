"""Shared fixtures: a tiny random model saved to disk, small FASTA files made in the test, shared data paths."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrl_dna import dna
from mrl_dna.model.config import EncoderConfig, ModelConfig
from mrl_dna.model import MrlDnaModel
from mrl_dna.store import EmbeddedRecord, EmbeddingWriter

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FA = REPO / "data" / "sample.fa"


def script_module(relpath: str):
    """A script of the checkout as a module, e.g. script_module("scripts/bench/cluster.py"); its folder goes on
    sys.path first, as when it runs (the bench scripts import their shared `common` from there)."""
    path = REPO / relpath
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    name = f"{path.parent.name}_{path.stem}"  # e.g. bench_cluster: never a top-level name of its own
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up there
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


def shared_dir() -> Path:
    """../shared beside the checkout (CI clones next to it), or $MRL_DNA_SHARED."""
    env = os.environ.get("MRL_DNA_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def tiny_config(**kw) -> ModelConfig:
    enc = EncoderConfig(stride=8, stem_channels=8, d_model=16, n_layer=2, d_state=8, headdim=8, kmer_features=2)
    base = dict(encoder=enc, matryoshka_dims=(4, 8, 16), head_hidden=0, window=256, window_stride=256, name="tiny")
    base.update(kw)
    return ModelConfig(**base)


def run_cli(args, capsys) -> tuple[int, str, str]:
    """`mrl-dna ARGS` in-process -> (exit code, stdout, stderr); a user error never prints a traceback."""
    from mrl_dna.cli import main

    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return e.value.code, out, err


def run_train(args, capsys):
    """`mrl-dna train ARGS` in-process -> (exit code, stderr). Without the end-of-run identity calibration unless
    ARGS ask for one (tens of seconds even on tiny genomes; test_train.py's calibration test covers it)."""
    extra = [] if "--calibration-genomes" in map(str, args) else ["--calibration-genomes", "0"]
    code, _, err = run_cli(["train", *args, *extra], capsys)
    return code, err


@pytest.fixture
def cli(capsys):
    """The CLI runner as a fixture: cli("embed", "x.fa", "-o", "x.h5") -> (exit code, stdout, stderr)."""
    return lambda *args: run_cli(args, capsys)


DATASETS = ("embeddings", "ids", "lengths", "n_windows", "n_skipped", "status", "order")  # one row per record


def assert_same_datasets(a: Path, b: Path) -> None:
    """Every record dataset bitwise equal, same dtype (attributes such as created/command may differ)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in DATASETS:
            assert fa[name].dtype == fb[name].dtype, name
            assert np.array_equal(fa[name][()], fb[name][()]), name


def assert_same_file(a: Path, b: Path) -> None:
    """Every dataset bitwise equal (attributes such as `created` and `command` may differ)."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b)
        for name in names_a:
            if isinstance(fa[name], h5py.Dataset):
                assert fa[name].dtype == fb[name].dtype, name
                assert np.array_equal(fa[name][()], fb[name][()]), name


def write_store(path: Path, vecs: np.ndarray, *, dims=None, status=None, model_hash: str = "a" * 64, windows=None,
                ids=None, lengths=None, model_name: str = "test") -> Path:
    """An embedding file of the given (n, D) vectors, written with the store's writer. windows: per record
    (spans (w, 2), vectors (w, D)); status: per record, non-ok records get zero rows."""
    n, D = np.shape(vecs)
    status = status or ["ok"] * n
    recs = []
    for i in range(n):
        spans, wv = windows[i] if windows else (None, None)
        ok = status[i] == "ok"
        recs.append(EmbeddedRecord(
            id=ids[i] if ids else f"t{i}", length=int(lengths[i]) if lengths is not None else 1000,
            n_windows=len(spans) if spans is not None else 1, n_skipped=0, status=status[i],
            vector=vecs[i] if ok else np.zeros(D, np.float32), window_spans=spans, window_vectors=wv))
    attrs = {"model_name": model_name, "model_hash": model_hash, "model_kind": "mrl-dna",
             "matryoshka_dims": list(dims or (D,)), "window": 512, "stride": 512, "pooling": "mean"}
    with EmbeddingWriter(path, attrs=attrs, dim=D, save_windows=windows is not None) as w:
        if recs:
            w.append(recs)
        w.finish()
    return path


def random_windows(rng, lengths, L=None):
    """(n, L) token ids right-padded with PAD (4% N) and their lengths, as torch tensors."""
    L = L or max(lengths)
    tok = np.full((len(lengths), L), dna.PAD, dtype=np.int64)
    for i, n in enumerate(lengths):
        tok[i, :n] = rng.choice([7, 8, 9, 10, 11], size=n, p=[0.24, 0.24, 0.24, 0.24, 0.04])
    return torch.from_numpy(tok), torch.tensor(lengths)


def rel_err(a, b):
    """Norm-wise relative error ||a - b|| / ||b|| (element-wise relative error is meaningless near zero)."""
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


def random_dna(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), size=n))


@contextlib.contextmanager
def named_pipe(path: Path, data: bytes, *, unblock_after: float = 15.0):
    """A named pipe at `path` that a writer thread fills with `data` once, as `mkfifo p; cat x > p &` does.

    A program that opens it a second time would wait for a writer forever (the bug of issue 22); so that a
    test of it fails instead of hanging the suite, every `unblock_after` seconds the thread opens the pipe
    for writing again without writing (the second reader sees an empty input and ends)."""
    os.mkfifo(path)
    done = threading.Event()

    def write() -> None:
        with open(path, "wb") as f:  # blocks until the program opens the pipe for reading
            f.write(data)
        while not done.wait(unblock_after):
            with contextlib.suppress(OSError):  # ENXIO: nobody is waiting to read
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield path
    finally:
        done.set()
        if writer.is_alive():  # never opened by the program: release the writer's open
            with contextlib.suppress(OSError):
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                writer.join(1)
                os.close(fd)
        writer.join(5)


@pytest.fixture(scope="session")
def tiny_model() -> MrlDnaModel:
    torch.manual_seed(0)
    return MrlDnaModel(tiny_config()).eval()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model) -> Path:
    d = tmp_path_factory.mktemp("model")
    tiny_model.save_pretrained(d)
    return d


@pytest.fixture
def small_fasta(tmp_path) -> Path:
    """Five records of different lengths (one shorter than a tiny-model window, one with an N run)."""
    rng = np.random.default_rng(1)
    seqs = {"a": random_dna(rng, 1000), "b": random_dna(rng, 100), "c": random_dna(rng, 700), "d": random_dna(rng, 513),
            "e": random_dna(rng, 300) + "N" * 600 + random_dna(rng, 300)}
    p = tmp_path / "small.fa"
    p.write_text("".join(f">{k} test\n{v}\n" for k, v in seqs.items()))
    return p


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tests use small tensors: one torch thread is fastest, and on a shared 2-core machine two OpenMP
    threads can run 5-30x slower than one (measured). Subprocess tests set their own threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _reset_quiet():
    """`--quiet` is process-wide state in mrl_dna.console; a CLI test that sets it must not silence the next."""
    from mrl_dna import console

    console.set_quiet(False)
    yield
    console.set_quiet(False)
