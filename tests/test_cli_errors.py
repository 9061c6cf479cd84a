"""Bad input at the command line: each case exits 1 (2 for usage), prints exactly one line on stderr naming
the problem, never a traceback, and leaves no output file that looks complete.

Most cases call `mrl_dna.cli.main([...])` in-process (fast); the ones marked "end to end" run `python -m
mrl_dna` in a subprocess, so exit code and stderr are exactly what a shell pipeline sees.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mrl_dna.model import MrlDnaModel
from mrl_dna.store import STATUS_CODES, EmbeddingStore, partial_path

from conftest import random_dna, run_cli, tiny_config

ERR = "mrl-dna: error: "


# ------------------------------------------------------------------------------------------ helpers


def run_sub(args, stdin: bytes | None = None) -> tuple[int, str, str]:
    """End to end: `python -m mrl_dna ARGS` in a subprocess -> (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MRL_DNA_DEBUG", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    r = subprocess.run([sys.executable, "-m", "mrl_dna", *map(str, args)], input=stdin, capture_output=True,
                       env=env, timeout=120)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert "Traceback" not in err
    return r.returncode, out, err


def one_error(err: str, *fragments: str) -> str:
    """stderr is exactly one line, an mrl-dna error that contains every fragment."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERR), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def nothing_complete(out: Path) -> None:
    """No OUT.h5; a leftover OUT.h5.partial (if any) is refused by readers."""
    assert not out.exists()
    if partial_path(out).exists():
        with pytest.raises(Exception, match="incomplete|cannot be opened|does not exist"):
            EmbeddingStore.open(out)


@pytest.fixture
def good_fa(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    p = tmp_path / "good.fa"
    p.write_text("".join(f">g{i}\n{random_dna(rng, 300 + 50 * i)}\n" for i in range(4)))
    return p


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """A tiny model with other weights (another model_hash) than conftest's tiny_model_dir."""
    torch.manual_seed(1)
    d = tmp_path_factory.mktemp("other_model")
    MrlDnaModel(tiny_config()).eval().save_pretrained(d)
    return d


def embed_args(inputs, out, model_dir, *extra):
    return ["embed", *inputs, "-o", out, "-m", model_dir, "-q", *extra]


# ------------------------------------------------------------------------------------------ FASTA input


def test_text_that_is_not_fasta_end_to_end(tmp_path, tiny_model_dir):
    fa = tmp_path / "notes.txt"
    fa.write_text("hello world\nthis is a text\n")
    out = tmp_path / "out.h5"
    code, stdout, err = run_sub(embed_args([fa], out, tiny_model_dir))
    assert code == 1 and stdout == ""
    one_error(err, "notes.txt, line 1", "this is not a FASTA file")
    nothing_complete(out)


def test_binary_garbage(tmp_path, tiny_model_dir, capsys):
    fa = tmp_path / "garbage.fa"
    fa.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)))
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "garbage.fa", "not a FASTA file")
    nothing_complete(out)


def test_truncated_gzip_end_to_end(tmp_path, tiny_model_dir, good_fa):
    data = gzip.compress(good_fa.read_bytes())
    fa = tmp_path / "cut.fa.gz"
    fa.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.h5"
    code, _, err = run_sub(embed_args([fa], out, tiny_model_dir))
    assert code == 1
    one_error(err, "cut.fa.gz is truncated or corrupt gzip", "re-download or re-compress it")
    nothing_complete(out)
    assert not partial_path(out).exists()  # the whole input is checked before the output is opened


def test_empty_record_is_accepted_and_reported(tmp_path, tiny_model_dir, capsys):
    fa = tmp_path / "e.fa"
    fa.write_text(">a\n" + "ACGT" * 100 + "\n>b no sequence\n>c\n" + "GATTACA" * 50 + "\n")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([fa], out, tiny_model_dir), capsys)
    assert code == 0
    assert err.splitlines() == ["mrl-dna: warning: record 'b' is empty: stored with status empty and a zero vector"]
    with EmbeddingStore.open(out) as s:
        assert s.ids == ["a", "b", "c"]
        assert list(s.status) == [STATUS_CODES["ok"], STATUS_CODES["empty"], STATUS_CODES["ok"]]
        assert not s.read()[1].any() and list(s.lengths) == [400, 0, 350]


def test_header_only_file_is_a_user_error(tmp_path, tiny_model_dir, capsys):
    """A file whose every record is empty holds nothing to embed: one line, exit 1, no output at all.
    (An empty record among others is accepted and reported: test_empty_record_is_accepted_and_reported.)"""
    fa = tmp_path / "h.fa"
    fa.write_text(">only a header\n")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "no sequence in ", "h.fa", "every record is empty")
    assert not out.exists() and not (tmp_path / "out.h5.partial").exists()


def test_duplicate_ids_across_files(tmp_path, tiny_model_dir, good_fa, capsys):
    dup = tmp_path / "dup.fa"
    dup.write_text(">x\nACGT\n>g2 again\nACGT\n")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([good_fa, dup], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "duplicate id 'g2' in ", "dup.fa line 3", "good.fa line 5", "rename one of the records")
    nothing_complete(out)


def test_protein_sequence(tmp_path, tiny_model_dir, capsys):
    fa = tmp_path / "prot.fa"
    fa.write_text(">p1 kinase\nMKVLAAGIVELLQRW\n")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "prot.fa, line 2, record 'p1', position 4", "is this a protein FASTA?")
    nothing_complete(out)


def test_bad_record_deep_in_the_last_file_fails_before_any_output(tmp_path, tiny_model_dir, good_fa, capsys):
    """A bad record in the last of several files: one line naming it, and no output at all (the input is
    checked in the length pass, before the first record is embedded)."""
    rng = np.random.default_rng(2)
    late = tmp_path / "late.fa"
    late.write_text("".join(f">l{i}\n{random_dna(rng, 200)}\n" for i in range(50)) + ">bad\nACGT-ACGT\n")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([good_fa, late], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "late.fa, line 102, record 'bad', position 5")
    assert not out.exists() and not partial_path(out).exists()


def test_empty_file_end_to_end(tmp_path, tiny_model_dir):
    fa = tmp_path / "empty.fa"
    fa.write_bytes(b"")
    out = tmp_path / "out.h5"
    code, _, err = run_sub(embed_args([fa], out, tiny_model_dir))
    assert code == 1
    one_error(err, "no FASTA records in ", "empty.fa (it is empty)")
    nothing_complete(out)


def test_empty_stdin_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "out.h5"
    code, _, err = run_sub(embed_args(["-"], out, tiny_model_dir), stdin=b"")
    assert code == 1
    one_error(err, "no FASTA records in stdin")
    nothing_complete(out)


def test_input_path_does_not_exist(tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([tmp_path / "nope.fa"], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "nope.fa: no such file")
    nothing_complete(out)


# ------------------------------------------------------------------------------------------ output


def test_output_directory_does_not_exist(tmp_path, tiny_model_dir, good_fa, capsys):
    out = tmp_path / "no" / "such" / "out.h5"
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, "output directory", "does not exist", "mkdir -p")
    assert not out.parent.exists()


def test_output_directory_read_only(tmp_path, tiny_model_dir, good_fa, capsys, monkeypatch):
    """We may run as root, whom chmod does not stop: the store's os.access check is made to say "not writable"
    for this directory (the real chmod case follows, for non-root users)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == ro else real_access(p, mode, *a, **k))
    out = ro / "out.h5"
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)
    assert code == 1
    one_error(err, f"output directory {ro} is not writable")
    assert list(ro.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_directory_read_only_for_real(tmp_path, tiny_model_dir, good_fa, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = run_cli(embed_args([good_fa], ro / "out.h5", tiny_model_dir), capsys)
    finally:
        ro.chmod(0o755)
    assert code == 1
    one_error(err, "is not writable")


def test_existing_complete_output_of_another_model_or_window_needs_force(tmp_path, tiny_model_dir, other_model_dir,
                                                                          good_fa, capsys):
    out = tmp_path / "out.h5"
    assert run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)[0] == 0
    before = out.read_bytes()
    for args in (embed_args([good_fa], out, other_model_dir), embed_args([good_fa], out, tiny_model_dir, "-w", "128")):
        code, _, err = run_cli(args, capsys)
        assert code == 1
        one_error(err, "out.h5 already exists (complete, 4 records, model tiny", "pass --force to overwrite it")
        assert out.read_bytes() == before  # untouched
    code, _, err = run_cli(embed_args([good_fa], out, other_model_dir, "--force"), capsys)
    assert code == 0, err
    with EmbeddingStore.open(out) as s:
        assert s.model_hash == MrlDnaModel.from_pretrained(other_model_dir).info.weights_hash


def test_partial_output_of_another_model_or_window_is_a_clear_error(tmp_path, tiny_model_dir, other_model_dir,
                                                                    good_fa, capsys):
    out = tmp_path / "out.h5"
    assert run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)[0] == 0
    partial = partial_path(out)
    out.rename(partial)  # stands for an interrupted run of tiny_model_dir
    with h5py.File(partial, "r+") as f:
        f.attrs["complete"] = False
    code, _, err = run_cli(embed_args([good_fa], out, other_model_dir), capsys)
    assert code == 1
    one_error(err, "out.h5.partial was written with model_hash=", "delete")
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir, "-w", "128"), capsys)
    assert code == 1
    one_error(err, "out.h5.partial was written with window=256 but this run has window=128")
    assert not out.exists() and partial.exists()
    code, _, err = run_cli(embed_args([good_fa], out, other_model_dir, "--restart"), capsys)  # the way out
    assert code == 0, err
    assert out.exists() and not partial.exists()


# ------------------------------------------------------------------------------------------ model


@pytest.mark.parametrize("damage,fragments", [
    ("no_weights", ("has no model.safetensors",)),
    ("no_config", ("has no config.json",)),
    ("cut_weights", ("model.safetensors is corrupt or truncated",)),
    ("bad_json", ("config.json is not valid JSON",)),
    ("missing_dir", ("does not exist", "--model DIR")),
])
def test_model_directory_missing_or_corrupt(tmp_path, tiny_model_dir, good_fa, capsys, damage, fragments):
    m = tmp_path / "model"
    if damage != "missing_dir":
        shutil.copytree(tiny_model_dir, m)
    if damage == "no_weights":
        (m / "model.safetensors").unlink()
    elif damage == "no_config":
        (m / "config.json").unlink()
    elif damage == "cut_weights":
        w = m / "model.safetensors"
        w.write_bytes(w.read_bytes()[:100])
    elif damage == "bad_json":
        (m / "config.json").write_text("{not json")
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([good_fa], out, m), capsys)
    assert code == 1
    one_error(err, *fragments)
    nothing_complete(out)


# ------------------------------------------------------------------------------------------ other commands


@pytest.fixture
def foreign_h5(tmp_path) -> Path:
    """An HDF5 file written by another tool."""
    p = tmp_path / "foreign.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.zeros((3, 4))
    return p


@pytest.mark.parametrize("cmd", ["info", "search", "merge", "export"])
def test_hdf5_file_from_another_tool(tmp_path, foreign_h5, good_fa, capsys, cmd):
    args = {"info": ["info", foreign_h5], "search": ["search", good_fa, foreign_h5, "-q"],
            "merge": ["merge", foreign_h5, "-o", tmp_path / "m.h5", "-q"], "export": ["export", foreign_h5]}[cmd]
    code, out, err = run_cli(args, capsys)
    assert code == 1 and out == ""
    one_error(err, "foreign.h5 was not written by mrl-dna")
    assert not (tmp_path / "m.h5").exists()


@pytest.mark.parametrize("spec,fragment", [
    ("3/2", "--shard 3/2: shard index 3 must be between 1 and 2"),
    ("0/4", "shard index 0 must be between 1 and 4"),
    ("0/0", "--shard 0/0: the number of shards N must be at least 1"),  # said "between 1 and 0", exit 1
    ("two", "--shard 'two' is not I/N"),
])
def test_bad_shard_spec_is_a_usage_error(tmp_path, tiny_model_dir, good_fa, capsys, spec, fragment):
    """A bad option value: exit 2 with the usage line (README's exit codes), before any work."""
    out = tmp_path / "out.h5"
    code, _, err = run_cli(embed_args([good_fa], out, tiny_model_dir, "--shard", spec), capsys)
    assert code == 2 and "Usage: mrl-dna embed" in err and "Invalid value for '--shard'" in err, err
    assert fragment in err, err
    nothing_complete(out)


def test_export_dim_the_model_lacks(tmp_path, tiny_model_dir, good_fa, capsys):
    out = tmp_path / "out.h5"
    assert run_cli(embed_args([good_fa], out, tiny_model_dir), capsys)[0] == 0
    code, stdout, err = run_cli(["export", out, "--dim", "1024"], capsys)
    assert code == 1 and stdout == ""
    one_error(err, "dim 1024 is outside 1..16", "4, 8, 16")


def test_usage_errors_exit_2_with_the_usage_line(tmp_path, tiny_model_dir, good_fa, capsys):
    out = tmp_path / "out.h5"
    for args in (embed_args([good_fa], out, tiny_model_dir, "--window", "0"),
                 embed_args([good_fa], out, tiny_model_dir, "--no-such-option"),
                 ["embed", good_fa]):  # -o missing
        code, _, err = run_cli(args, capsys)
        assert code == 2 and "Usage: mrl-dna embed" in err, err
    nothing_complete(out)


def test_cosine_cutoffs_outside_minus_one_to_one_are_refused(tmp_path, capsys):
    """Issue 22.15: `search --min-score 2` printed no hit, `--min-score nan` was ignored and `dist --min-sim 2`
    printed nothing, all with exit 0. Now every cosine cut-off is checked as cluster's (vectors.check_cosine):
    one line, exit 2 (a bad option value), before anything is read; the library refuses it too."""
    from conftest import write_store
    from mrl_dna.errors import OptionError
    from mrl_dna.search import search

    db = write_store(tmp_path / "db.h5", np.eye(4, 8, dtype=np.float32), dims=(4, 8))
    for cmd, option in (["search", db, db], "--min-score"), (["dist", db], "--min-sim"), (["cluster", db], "--min-sim"):
        for bad in ("2", "nan", "-1.5", "inf"):
            code, out, err = run_cli([*cmd, option, bad], capsys)
            assert code == 2 and out == "", (cmd, bad, err)
            one_error(err, f"{option} {float(bad):g} is not a cosine; give a value in -1..1 (e.g. 0.95)")
        assert run_cli([*cmd, option, "-1", "-q"], capsys)[0] == 0
    with pytest.raises(OptionError, match="--min-score nan is not a cosine"):
        search(db, [db], min_score=float("nan"))


def test_messages_name_the_right_file_width_and_dim(tmp_path, tiny_model_dir, good_fa, capsys):
    """Issue 22.18: `dist -o DIR` suggested DIR/embeddings.h5 for a TSV (issue 23: export's own copy of the output
    checks said it in other words; it now runs store.textout's); `encode(dim=1024)` spoke of "this
    file's width" (it is the model's); `export --dim 7` gave no "not a trained Matryoshka dim" warning, which
    search and dist give (now all from vectors.warn_untrained_dim)."""
    import mrl_dna
    from mrl_dna.errors import ConfigError

    db = tmp_path / "db.h5"
    assert run_cli(embed_args([good_fa], db, tiny_model_dir), capsys)[0] == 0
    d = tmp_path / "outdir"
    d.mkdir()
    for args, name in ((["dist", db], "dist.tsv"), (["dist", db, "--format", "phylip"], "dist.phy"),
                       (["cluster", db, "--min-sim", "0.9"], "clusters.tsv"), (embed_args([good_fa], d, tiny_model_dir), "embeddings.h5"),
                       (["export", db], "embeddings.tsv"), (["export", db, "--format", "parquet"], "embeddings.parquet")):
        code, _, err = run_cli([*args, "-o", d], capsys)
        assert code == 1
        one_error(err, f"output {d} is a directory; give a file name such as {d / name}")
    with pytest.raises(ConfigError, match=r"dim 1024 is outside 1..16 \(the model's width\)"):
        mrl_dna.load_model(tiny_model_dir).encode("ACGT" * 100, dim=1024)
    warning = "mrl-dna: warning: --dim 7 is not one of the model's trained Matryoshka dims [4, 8, 16]"
    for args in (["export", db], ["dist", db], ["search", db, db], ["cluster", db, "--min-sim", "0.9"]):
        code, _, err = run_cli([*args, "--dim", "7"], capsys)
        assert code == 0 and err.splitlines()[0] == warning, (args, err)
    code, _, err = run_cli(["export", db, "--dim", "8"], capsys)
    assert code == 0 and "warning" not in err
