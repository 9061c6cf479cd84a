"""No lost data, no internal errors (issue 12): what a new user hits with pipes, full disks, two runs on one
output, an output that is the input, stale indexes, huge -k, existing files, Ctrl-C and batch logs. Each test
is named after the situation; each failed (lost data, exit 3, or a silent overwrite) before the fix.

End-to-end cases run `python -m mrl_dna` in a subprocess (what a shell sees); the rest call cli.main in-process.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrl_dna import console
from mrl_dna.embed import EmbedOptions, embed_fasta
from mrl_dna.errors import OptionError
from mrl_dna.model import load_model
from mrl_dna.store import EmbeddingStore, EmbeddingWriter, partial_path

from conftest import SAMPLE_FA, random_dna, run_cli, tiny_config
from test_cli_errors import ERR, embed_args, good_fa, one_error, run_sub  # noqa: F401 (fixture)

DATASETS = ("embeddings", "ids", "lengths", "n_windows", "n_skipped", "status", "order")


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MRL_DNA_DEBUG", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update({"OMP_NUM_THREADS": "1", **extra})
    return env


def _fasta(path: Path, n: int, length: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("".join(f">r{i}\n{random_dna(rng, length)}\n" for i in range(n)))
    return path


def _same_datasets(a: Path, b: Path, names=DATASETS) -> bool:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        return all(np.array_equal(fa[k][()], fb[k][()]) for k in names)


def _reference(fa: Path, model_dir: Path, out: Path, **kw) -> Path:
    """The file an uninterrupted run writes, made in this process at the subprocesses' thread count (1)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        embed_fasta([fa], model=load_model(model_dir), output=out, options=EmbedOptions(device="cpu", **kw))
    finally:
        torch.set_num_threads(prev)
    return out


# ------------------------------------------------------------------------------------- 1. pipes and progress


def test_piped_input_without_quiet_end_to_end(tmp_path, tiny_model_dir):
    """`cat x.fa | mrl-dna embed - -o y.h5` (the README's pipe example, no -q) ended in exit 3: the progress
    bar formatted its unknown total (None)."""
    out = tmp_path / "y.h5"
    code, _, err = run_sub(["embed", "-", "-o", out, "-m", tiny_model_dir], stdin=SAMPLE_FA.read_bytes())
    assert code == 0, err
    assert "embedding: 171,408 bp" in err and "-> " + str(out) in err
    with EmbeddingStore.open(out) as s:
        assert s.n == 8


def test_empty_stdin_without_quiet_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "y.h5"
    code, _, err = run_sub(["embed", "-", "-o", out, "-m", tiny_model_dir], stdin=b">only a header\n")
    assert code == 1
    one_error(err, "no sequence in stdin")
    assert not out.exists() and not partial_path(out).exists()


def test_progress_lines_while_running_when_stderr_is_a_log_file(tmp_path, tiny_model_dir, capsys, monkeypatch):
    """stderr redirected to a file (SLURM): the log stayed empty until the run ended. Now a plain line comes
    every MRL_DNA_PROGRESS_SECONDS (30 s by default; 0 here: at every advance)."""
    monkeypatch.setenv("MRL_DNA_PROGRESS_SECONDS", "0")
    fa = _fasta(tmp_path / "x.fa", 6, 900)
    code, _, err = run_cli(["embed", fa, "-o", tmp_path / "x.h5", "-m", tiny_model_dir, "--batch-tokens", "512"], capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("embedding: ")]
    assert len(lines) >= 6, err
    assert lines[0].endswith("elapsed") or "eta" in lines[0]
    assert lines[-1].startswith("embedding: 5,400/5,400 bp (100%)")
    assert "\x1b" not in err  # plain text, no terminal codes


def test_progress_bar_on_a_terminal_with_unknown_total(monkeypatch):
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    monkeypatch.setattr(console, "err", Console(file=buf, force_terminal=True, width=100))
    with console.progress("embedding", None) as bar:
        bar.advance(1234)
    assert "1,234 bp" in buf.getvalue()


# ------------------------------------------------------------------------------------- 2. two runs, one output


def test_second_embed_to_an_output_being_written_refuses_and_keeps_the_first(tmp_path, tiny_model_dir, good_fa,
                                                                             capsys):
    """A second run on the same output truncated the first run's .partial ("starting over"), and the first
    then published a corrupt file. Now the second stops with one line; the first finishes intact. (flock
    locks belong to an open file, so the second run conflicts even in this same process.)"""
    out = tmp_path / "out.h5"
    attrs = {"model_hash": "x", "matryoshka_dims": [4, 8, 16]}
    first = EmbeddingWriter(out, attrs=attrs, dim=16)  # "the first run", holding out.h5 while it writes
    before = partial_path(out).read_bytes()
    for extra in ((), ("--restart",), ("-f",)):
        code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir, *extra), capsys)
        assert code == 1
        one_error(err, f"another mrl-dna run (pid {os.getpid()} on ", f"is writing {out} right now",
                  "wait for it to finish or choose another -o")
        assert partial_path(out).read_bytes() == before and not out.exists()
    first.finish()
    with EmbeddingStore.open(out) as s:
        assert s.complete and s.n == 0
    assert not Path(str(out) + ".lock").exists()  # the lock file goes with the run
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir, "-f"), capsys)  # the output is free again
    assert code == 0, err


# ------------------------------------------------------------------------------------- 3. output = input


@pytest.mark.parametrize("how", ["same path", "symlink", "hard link"])
def test_embed_output_that_is_the_input_fasta_is_refused(tmp_path, tiny_model_dir, good_fa, capsys, how):
    """`embed in.fa -o in.fa -f` replaced the input FASTA with the HDF5."""
    before = good_fa.read_bytes()
    out = good_fa
    if how == "symlink":
        out = tmp_path / "link.h5"
        out.symlink_to(good_fa)
    elif how == "hard link":
        out = tmp_path / "hard.h5"
        os.link(good_fa, out)
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir, "-f"), capsys)
    assert code == 1
    one_error(err, f"output {out} is the input FASTA {good_fa}", "choose another -o")
    assert good_fa.read_bytes() == before and not partial_path(out).exists()


def test_export_and_merge_outputs_that_are_their_input_are_refused(tmp_path, tiny_model_dir, good_fa, capsys):
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    before = db.read_bytes()
    code, _, err = run_cli(["export", db, "-o", db, "--force"], capsys)
    assert code == 1
    one_error(err, f"output {db} is the input {db}")
    link = tmp_path / "alias.h5"
    os.link(db, link)
    code, _, err = run_cli(["merge", db, "-o", link, "--force"], capsys)
    assert code == 1
    one_error(err, f"output {link} is the input {db} (the same file)")
    assert db.read_bytes() == before


# ------------------------------------------------------------------------------------- 4. a full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 1.5 MiB tmpfs at tmp_path/disk (needs root, as on the CI machine; skipped otherwise)."""
    d = tmp_path / "disk"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(d)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill ({r.stderr.decode().strip() or 'not root'})")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


@pytest.mark.slow
def test_full_disk_is_one_clear_error_and_the_rerun_after_freeing_space_is_bitwise_identical(
        tmp_path, tiny_model_dir, small_disk):
    """A full disk was "internal error: RuntimeError: Can't destroy cache"; a rerun while the disk was still
    full could start over and truncate the saved rows. Now: one line naming the disk and the resume, the
    .partial untouched by a rerun on the still-full disk, and the rerun after freeing space resumes to a
    file bitwise equal to an uninterrupted run."""
    fa = _fasta(tmp_path / "many.fa", 1500, 1000, seed=4)
    out = small_disk / "out.h5"
    args = ["embed", fa, "-o", out, "-m", tiny_model_dir, "-w", "100", "--save-windows", "--threads", "1", "-q"]
    env = _env(MRL_DNA_FLUSH_RECORDS="50")
    r = subprocess.run([sys.executable, "-m", "mrl_dna", *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 1, r.stderr
    line = one_error(r.stderr, f"no space left on device on the disk that holds {partial_path(out)} ({small_disk}, ",
                     "free some space or choose -o on another disk, then rerun the same command, which resumes")
    assert "Traceback" not in line and not out.exists()
    saved = partial_path(out).read_bytes()
    r = subprocess.run([sys.executable, "-m", "mrl_dna", *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 1 and "no space left on device" in r.stderr
    assert partial_path(out).read_bytes() == saved  # the still-full rerun touched nothing
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    r = subprocess.run([sys.executable, "-m", "mrl_dna", *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    ref = _reference(fa, tiny_model_dir, tmp_path / "ref.h5", window=100, save_windows=True)
    assert _same_datasets(ref, out, DATASETS + ("windows/record", "windows/start", "windows/end", "windows/embeddings"))


def test_disk_full_during_a_write_is_a_user_error_in_process(tmp_path, tiny_model_dir, good_fa, capsys, monkeypatch):
    """The mapping itself, without a real full disk: h5py's RuntimeError carrying errno 28 -> exit 1, one line."""
    import mrl_dna.store as store_mod

    def no_space(self, **kw):
        raise RuntimeError("Can't decrement id ref count (file write failed: time = now, filename = 'x', "
                           "file descriptor = 3, errno = 28, error message = 'No space left on device')")

    monkeypatch.setattr(store_mod.EmbeddingWriter, "_write_rows", no_space)
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "no space left on device on the disk that holds", "rerun the same command")
    assert not out.exists() and partial_path(out).exists()


def _wide_db(path: Path, n: int = 2000, D: int = 128) -> Path:
    """An embedding file of n random rows (1 MiB of float32 at the defaults), no model needed."""
    from conftest import write_store

    return write_store(path, np.random.default_rng(0).standard_normal((n, D)).astype(np.float32), dims=(16, D))


def test_export_npy_to_a_full_disk_is_one_clear_error_and_leaves_no_partial(tmp_path, capsys, monkeypatch):
    """`export --format npy` to a full disk died with "Bus error" (exit 135: np.lib.format.open_memmap writes a
    sparse file, and the first page stored without room is SIGBUS) and left x.npy.partial. Now the .npy is
    reserved (posix_fallocate) and written front to back: one DiskFullError line, exit 1, no partial. Without
    root, the disk is full for posix_fallocate; then for a write in the middle of every format."""
    import errno

    import mrl_dna.store.export as export_mod

    db = _wide_db(tmp_path / "db.h5")

    def no_room(fd, offset, size):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_room)
    code, _, err = run_cli(["export", db, "--format", "npy", "-o", tmp_path / "x.npy"], capsys)
    assert code == 1
    one_error(err, f"no space left on device on the disk that holds {tmp_path / 'x.npy'} (",
              "free some space or choose -o on another disk, then rerun the same command")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.h5"]
    monkeypatch.undo()

    blocks = export_mod.EmbeddingStore.iter_blocks

    def fills_up(self, k, block_rows):  # the disk fills up once half the rows are written
        for start, b in blocks(self, k, block_rows):
            yield start, b[: len(b) // 2]
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(export_mod.EmbeddingStore, "iter_blocks", fills_up)
    monkeypatch.setattr(export_mod, "_reserve", lambda fh, size: None)  # a filesystem without fallocate
    pytest.importorskip("pyarrow")
    for fmt, name in (("npy", "x.npy"), ("tsv", "x.tsv"), ("tsv", "x.tsv.gz"), ("parquet", "x.parquet")):
        code, _, err = run_cli(["export", db, "--format", fmt, "-o", tmp_path / name, "--dim", "16"], capsys)
        assert code == 1, (fmt, err)
        one_error(err, f"no space left on device on the disk that holds {tmp_path / name} (")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["db.h5"], fmt


def test_export_npy_to_a_real_full_disk_end_to_end(tmp_path, small_disk):
    """The same on a real 1.5 MiB tmpfs (root only): before the fix the process died of SIGBUS (exit -7)."""
    db = _wide_db(tmp_path / "db.h5", n=4000)  # a 2 MiB .npy
    code, _, err = run_sub(["export", db, "--format", "npy", "-o", small_disk / "x.npy"])
    assert code == 1, err
    one_error(err, f"no space left on device on the disk that holds {small_disk / 'x.npy'} ({small_disk}, ")
    assert list(small_disk.iterdir()) == []
# A writer that fills a disk: records of D = 512 with 3 saved windows each (a flush of 20 records starts a 1 MiB
# chunk row of /embeddings and one of /windows/embeddings), appended until the disk is full, then the process
# ends as the CLI does after a DiskFullError (os._exit, no close).
_FILL = """
import os, sys
import numpy as np
from mrl_dna.errors import DiskFullError
from mrl_dna.store import EmbeddedRecord, EmbeddingWriter
D = 512
attrs = dict(model_name="t", model_hash="a" * 64, matryoshka_dims=[D], window=100, stride=100, pooling="mean")
def records(first, n):
    rng = np.random.default_rng(first)
    for i in range(first, first + n):
        v = rng.standard_normal(D).astype(np.float32)
        yield EmbeddedRecord(f"record_{i}", 300, 3, 0, "ok", v / np.linalg.norm(v),
                             window_spans=np.array([[0, 100], [100, 200], [200, 300]]),
                             window_vectors=rng.standard_normal((3, D)).astype(np.float32), order=i)
w = EmbeddingWriter(sys.argv[1], attrs=attrs, dim=D, save_windows=True, resume=True)
try:
    while w.n_done < int(sys.argv[2]):
        w.append(list(records(w.n_done, 20)))
    w.finish()
except DiskFullError as e:
    print(w.n_done, e)
    sys.stdout.flush()
    os._exit(1)
"""


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1200k", "1536k", "2m", "2560k", "3m", "4m"])
def test_full_disk_mid_append_leaves_every_committed_row_resumable(tmp_path, small_disk, size):
    """A write that failed for want of space inside an HDF5 flush left object headers and B-trees pointing past
    the end of the file: `embed --save-windows` on 5 of these 6 disk sizes ended in "cannot resume (addr
    overflow); starting over" although the message had promised a resume. Now the space of each append is reserved
    before anything is written: the error comes first, the file keeps every committed row, the rerun resumes."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(small_disk)], check=True)
    out = small_disk / "out.h5"
    r = subprocess.run([sys.executable, "-c", _FILL, str(out), "1000"], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    n_saved, message = r.stdout.split(" ", 1)
    then = (f", which resumes from the {int(n_saved):,} record{'s' * (int(n_saved) != 1)} saved in out.h5.partial" if int(n_saved) else
            " (nothing was saved yet: it starts over)")
    assert message.strip().endswith(f"then rerun the same command{then}"), message
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    r = subprocess.run([sys.executable, "-c", _FILL, str(out), "1000"], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert r.returncode == 0 and "cannot resume" not in r.stderr and "starting over" not in r.stderr, r.stderr
    ref = tmp_path / "ref.h5"
    r = subprocess.run([sys.executable, "-c", _FILL, str(ref), "1000"], capture_output=True, env=_env(), timeout=120)
    assert r.returncode == 0
    assert _same_datasets(ref, out, DATASETS + ("windows/record", "windows/start", "windows/end", "windows/embeddings"))


@pytest.mark.parametrize("fallocate", [True, False])
def test_a_full_disk_is_found_before_the_append_writes_anything_and_the_rerun_resumes(tmp_path, tiny_model_dir,
                                                                                     capsys, monkeypatch, fallocate):
    """The same without root: a disk of a given size (fallocate refuses past it, as a full one does; or, where
    fallocate is not supported, the free space says so) stops the run with the promise of a resume from the
    rows saved so far, and the rerun on a larger disk keeps it."""
    import errno
    import types

    import mrl_dna.store.writer as writer_mod

    fa = _fasta(tmp_path / "many.fa", 1200, 400, seed=5)
    ref = _reference(fa, tiny_model_dir, tmp_path / "ref.h5", window=100, save_windows=True)
    real = writer_mod._fallocate_keep_size
    room = {"bytes": ref.stat().st_size * 2 // 3}  # the disk fills two thirds of the way
    capsys.readouterr()  # the reference run's progress line

    def small_disk_fallocate(fd, offset, length):
        return errno.ENOSPC if offset + length > room["bytes"] else real(fd, offset, length)

    out = tmp_path / "out.h5"

    def small_disk_usage(path):  # what is left of the room beside the file being written
        used = partial_path(out).stat().st_size if partial_path(out).exists() else 0
        return types.SimpleNamespace(total=room["bytes"], used=used, free=max(0, room["bytes"] - used))

    if fallocate:
        monkeypatch.setattr(writer_mod, "_fallocate_keep_size", small_disk_fallocate)
    else:
        monkeypatch.setattr(writer_mod, "_fallocate_keep_size", lambda fd, offset, length: errno.EOPNOTSUPP)
        monkeypatch.setattr(writer_mod.shutil, "disk_usage", small_disk_usage)
        monkeypatch.setattr(writer_mod, "MIN_FREE_BYTES", 0)  # this disk is smaller than the start's minimum
    monkeypatch.setenv("MRL_DNA_FLUSH_RECORDS", "40")
    args = ["embed", fa, "-o", out, "-m", tiny_model_dir, "-w", "100", "--save-windows", "--threads", "1", "-q"]
    code, _, err = run_cli(args, capsys)
    line = one_error(err, "no space left on device on the disk that holds", "the next write needs")
    with EmbeddingStore.open(partial_path(out), allow_incomplete=True) as s:
        n_saved = s.n
        assert 0 < n_saved < 1200 and s.windows() is not None
    assert code == 1 and line.endswith(f"then rerun the same command, which resumes from the {n_saved:,} records "
                                       "saved in out.h5.partial"), line
    room["bytes"] = 2**40
    code, _, err = run_cli(args, capsys)
    assert code == 0 and err == "", err
    assert _same_datasets(ref, out, DATASETS + ("windows/record", "windows/start", "windows/end", "windows/embeddings"))


# ------------------------------------------------------------------------------------- 5. a stale .fai


def test_stale_fai_does_not_make_embed_skip_records(tmp_path, tiny_model_dir, capsys):
    """A .fai listing 2 of the file's 4 records (newer mtime) was trusted: 2 records embedded, exit 0."""
    fa = tmp_path / "x.fa"
    fa.write_text(">a\nACGTACGTAA\n>b\nACGTTT\n")
    fai = Path(str(fa) + ".fai")
    fai.write_text("a\t10\t3\t10\t11\nb\t6\t17\t6\t7\n")
    with open(fa, "a") as f:
        f.write(">c\nGGGATTACA\n>d\nTTTTACGT\n")
    os.utime(fai, (time.time() + 60, time.time() + 60))
    out = tmp_path / "x.h5"
    code, _, err = run_cli(["embed", fa, "-o", out, "-m", tiny_model_dir], capsys)
    assert code == 0, err
    with EmbeddingStore.open(out) as s:
        assert s.ids == ["a", "b", "c", "d"]


# ------------------------------------------------------------------------------------- 6. search -k


def test_search_k_larger_than_the_database_returns_every_row(tmp_path, tiny_model_dir, good_fa, capsys):
    """`search -k 1000000000` on a small DB tried to allocate (queries x 1e9) scores and crashed."""
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    code, out, err = run_cli(["search", good_fa, db, "-m", tiny_model_dir, "-k", "1000000000", "-q"], capsys)
    assert code == 0, err
    hits = [line.split("\t") for line in out.splitlines()[1:]]
    assert len(hits) == 4 * 4 and {h[2] for h in hits} == {"1", "2", "3", "4"}


# ------------------------------------------------------------------------------------- 7. overwrites, --force


def test_export_over_existing_files_needs_force(tmp_path, tiny_model_dir, good_fa, capsys):
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    for fmt, target, other in (("tsv", "x.tsv", None), ("npy", "x.npy", "x.ids.txt"), ("npy", "y.npy", None)):
        path = tmp_path / target
        victim = tmp_path / (other or target)
        victim.write_bytes(b"precious\n")
        code, _, err = run_cli(["export", db, "--format", fmt, "-o", path], capsys)
        assert code == 1
        one_error(err, f"{victim} already exists; pass --force to overwrite it")
        assert victim.read_bytes() == b"precious\n"
        assert run_cli(["export", db, "--format", fmt, "-o", path, "--force", "-q"], capsys)[0] == 0
        assert victim.read_bytes() != b"precious\n"
    assert not list(tmp_path.glob("*.partial"))


def test_export_to_a_gz_name_writes_gzip(tmp_path, tiny_model_dir, good_fa, capsys):
    """`export -o x.tsv.gz` wrote plain text under a .gz name."""
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    code, stdout, _ = run_cli(["export", db, "--dim", "8"], capsys)  # stdout: plain TSV
    assert code == 0 and stdout.count("\n") == 4
    assert run_cli(["export", db, "--dim", "8", "-o", tmp_path / "x.tsv.gz", "-q"], capsys)[0] == 0
    with gzip.open(tmp_path / "x.tsv.gz", "rt") as f:
        assert f.read() == stdout
    code, _, err = run_cli(["export", db, "--format", "npy", "-o", tmp_path / "x.npy.gz"], capsys)
    assert code == 2  # a bad option value, as an HDF5 -o named .gz (issue 22.13)
    one_error(err, "--format npy writes an uncompressed .npy")


def test_outputs_named_gz_are_gzip_or_refused(tmp_path, tiny_model_dir, good_fa, capsys):
    """Issue 22.13: `embed`/`merge -o x.gz` wrote plain HDF5 and `eval -o x.gz` a plain report under a .gz
    name, while the README says a .gz name writes gzip. An HDF5 file (or a model directory) cannot be gzip:
    refused while the options are parsed (exit 2, one line, nothing written); eval's report is gzip."""
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    cases = [
        (embed_args([good_fa], tmp_path / "x.h5.gz", tiny_model_dir),
         f"-o {tmp_path / 'x.h5.gz'}: an HDF5 embedding file cannot be gzip-compressed; drop the .gz (-o {tmp_path / 'x.h5'})"),
        (["merge", db, "-o", tmp_path / "m.gz"], "an HDF5 embedding file cannot be gzip-compressed; drop the .gz"),
        (["train", good_fa, "-o", tmp_path / "model.gz", "--steps", "1"],
         f"-o {tmp_path / 'model.gz'}: a model is a directory (config.json, model.safetensors, ...), which cannot be "
         f"gzip-compressed; drop the .gz (-o {tmp_path / 'model'})"),
    ]
    for args, message in cases:
        code, _, err = run_cli(args, capsys)
        assert code == 2, (args, err)
        one_error(err, message)
    with pytest.raises(OptionError, match="cannot be gzip-compressed"):  # the library refuses it too (API)
        EmbeddingWriter(tmp_path / "api.h5.gz", attrs={}, dim=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.h5", "good.fa"]
    genomes = []
    for i, rec in enumerate(SAMPLE_FA.read_text().split(">")[1:4]):
        genomes.append(tmp_path / f"g{i}.fa")
        genomes[-1].write_text(">" + rec)
    args = ["eval", *genomes, "--no-model", "--kmer", "2", "--per-genome", "2", "--fragments", "500",
            "--divergence", "0", "-q"]
    code, stdout, err = run_cli([*args, "-o", tmp_path / "report.md.gz"], capsys)
    assert code == 0, err
    with gzip.open(tmp_path / "report.md.gz", "rt") as f:
        assert f.read() == stdout


def test_eval_report_and_plot_over_existing_files_need_force_before_any_work(tmp_path, good_fa, capsys, monkeypatch):
    """`eval -o` replaced an existing file; --plot and --device were checked only after minutes of work."""
    import mrl_dna.evaluate.retrieval as ev

    def no_work(*a, **k):
        raise AssertionError("the benchmark started before the options were checked")

    monkeypatch.setattr(ev, "load_genomes", no_work)
    report = tmp_path / "report.md"
    report.write_text("precious\n")
    cases = [
        (["-o", report], f"-o {report} already exists; pass --force to overwrite it"),
        (["-o", good_fa, "--force"], f"output {good_fa} is the input genome {good_fa}"),
        (["--plot", tmp_path / "nodir" / "p.png"], "directory " + str(tmp_path / "nodir") + " does not exist"),
        (["--device", "bogus"], "--device 'bogus' is not a device"),
    ]
    try:
        import matplotlib  # noqa: F401 (an optional extra)

        cases.append((["--plot", tmp_path / "p.xyz"], "matplotlib cannot write .xyz files"))
    except ImportError:
        cases.append((["--plot", tmp_path / "p.png"], "--plot needs matplotlib; pip install matplotlib"))
    for extra, message in cases:
        code, _, err = run_cli(["eval", good_fa, "--kmer", "4", *extra], capsys)
        assert code == 1, (extra, err)
        one_error(err, message)
    assert report.read_text() == "precious\n"


def test_index_over_an_existing_index_needs_force(tmp_path, tiny_model_dir, good_fa, capsys):
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    existing = tmp_path / "db.h5.faiss"
    existing.write_bytes(b"an index built with other options")
    code, _, err = run_cli(["index", db, "--dim", "8"], capsys)
    assert code == 1
    one_error(err, f"{existing} already exists (an index of {db}); pass --force to rebuild it")
    assert existing.read_bytes() == b"an index built with other options"


# ------------------------------------------------------------------------------------- 8. train -o a file


def test_train_output_that_is_an_existing_file(tmp_path, capsys):
    """`train -o FILE` was an internal error (FileExistsError)."""
    out = tmp_path / "model.txt"
    out.write_text("not a model directory\n")
    code, _, err = run_cli(["train", SAMPLE_FA, "-o", out, "--steps", "1", "--d-model", "8"], capsys)
    assert code == 1
    one_error(err, f"-o {out} is a file, but a model is a directory", "choose a new name for -o")
    assert out.read_text() == "not a model directory\n"


# ------------------------------------------------------------------------------------- smaller items


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_the_rerun_is_bitwise_identical(tmp_path, tiny_model_dir):
    """Ctrl-C gave exit 130 and "mrl-dna: interrupted" with no word on what to do next."""
    fa = _fasta(tmp_path / "many.fa", 1000, 300, seed=9)
    out = tmp_path / "out.h5"
    cmd = [sys.executable, "-m", "mrl_dna", "embed", str(fa), "-o", str(out), "-m", str(tiny_model_dir), "--threads",
           "1", "-q"]
    env = _env(MRL_DNA_FLUSH_RECORDS="50")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t_end = time.monotonic() + 60
    while time.monotonic() < t_end and proc.poll() is None and not partial_path(out).exists():
        time.sleep(0.005)
    time.sleep(0.2)
    assert proc.poll() is None, "the run ended before Ctrl-C; make the input bigger"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.decode().splitlines() == ["mrl-dna: interrupted; rerun the same command to resume"]
    assert not out.exists() and partial_path(out).exists()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert _same_datasets(_reference(fa, tiny_model_dir, tmp_path / "ref.h5"), out)


def test_ctrl_c_message_by_command():
    from mrl_dna.cli import _after_interrupt

    assert _after_interrupt(["embed", "x.fa", "-o", "y.h5"]) == "rerun the same command to resume"
    assert "--resume" in _after_interrupt(["train", "g/", "-o", "m"])
    assert _after_interrupt(["search", "q.fa", "db.h5"]) == "rerun the same command"


def test_records_of_1_to_3_bp_and_a_1_bp_window_are_warned_about(tmp_path, tiny_model_dir, capsys):
    """1-3 bp records and `-w 1` gave "ok" vectors with no word of warning."""
    fa = tmp_path / "tiny.fa"
    fa.write_text(">a\nA\n>b\nAC\n>c\nACG\n>long\n" + "ACGT" * 100 + "\n")
    code, _, err = run_cli(["embed", fa, "-o", tmp_path / "t.h5", "-m", tiny_model_dir, "-q"], capsys)
    assert code == 0
    for rid, n in (("a", 1), ("b", 2), ("c", 3)):
        assert f"mrl-dna: warning: record '{rid}' is only {n} bp" in err
    assert "'long'" not in err
    code, _, err = run_cli(["embed", fa, "-o", tmp_path / "w.h5", "-m", tiny_model_dir, "-q", "-w", "1",
                            "--batch-tokens", "64"], capsys)
    assert code == 0
    assert "mrl-dna: warning: --window 1 bp is very short" in err


def test_many_short_records_give_a_few_warnings_and_a_count(tmp_path, tiny_model_dir, capsys):
    fa = tmp_path / "reads.fa"
    fa.write_text("".join(f">r{i}\nACG\n" for i in range(40)))
    code, _, err = run_cli(["embed", fa, "-o", tmp_path / "t.h5", "-m", tiny_model_dir, "-q"], capsys)
    assert code == 0
    assert err.count("is only 3 bp") == 5 and "35 more records are shorter than 16 bp (40 in all)" in err


def test_a_query_shorter_than_16_bp_is_searched_with_embeds_warning(tmp_path, tiny_model_dir, good_fa, capsys):
    """Issue 22.16: a 1 bp query got a hit with no word, while embed warns below 16 bp. Now search warns the same
    way (embed.records.ShortRecords: the first five named, then a count) and still searches them."""
    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    q = tmp_path / "q.fa"
    q.write_text(">one\nA\n>fifteen\nACGTACGTACGTACG\n>sixteen\nACGTACGTACGTACGT\n"
                 + "".join(f">r{i}\nACG\n" for i in range(6)))
    code, out, err = run_cli(["search", q, db, "-m", tiny_model_dir, "-k", "1", "-q"], capsys)
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines()[1:]] == ["one", "fifteen", "sixteen",
                                                                       *(f"r{i}" for i in range(6))]
    assert err.splitlines() == [
        "mrl-dna: warning: query 'one' is only 1 bp: a vector of fewer than 16 bp carries almost no signal "
        "(searched anyway)",
        "mrl-dna: warning: query 'fifteen' is only 15 bp: a vector of fewer than 16 bp carries almost no signal "
        "(searched anyway)",
        *(f"mrl-dna: warning: query 'r{i}' is only 3 bp: a vector of fewer than 16 bp carries almost no signal "
          "(searched anyway)" for i in range(3)),
        "mrl-dna: warning: 3 more queries are shorter than 16 bp (8 in all)",
    ]


def test_saved_model_weights_are_readable_like_the_other_files(tmp_path):
    """model.safetensors was written mode 0600 (safetensors' temporary file), config.json 0644."""
    from mrl_dna.model import MrlDnaModel

    MrlDnaModel(tiny_config()).save_pretrained(tmp_path / "m")
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes
    assert load_model(tmp_path / "m").info.dim == 16


def test_latin1_header_names_the_encoding_and_the_fix(tmp_path, tiny_model_dir, capsys):
    """Latin-1 bytes in a header were called "binary data", with no fix offered."""
    fa = tmp_path / "latin1.fa"
    fa.write_bytes(">r1 Salmonella enterica S\xe3o Paulo\nACGTACGT\n".encode("latin-1"))
    code, _, err = run_cli(embed_args([fa], tmp_path / "x.h5", tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "the header is not UTF-8 text (byte 0xe3", f"iconv -f latin1 -t utf8 {fa} > fixed.fa")
    assert ERR + "internal" not in err
