"""One CLI grammar across every command (issue 15), checked by walking every registered command:

- `-f` is `--force` and nothing else; every command that writes has `-f/--force`;
- every command that writes a file has `-o/--output`, and every command with `-o` has `--force`
  (index writes DB.h5.faiss beside its DB, where search finds it: it has --force but no -o);
- every command that computes with torch has `--threads` and `--device` (auto|cpu|cuda[:N], checked before any
  work); index (FAISS, CPU) has `--threads`;
- `-k` means a number of hits, nowhere else;
- a short option means the same long option in every command; every command has -q/--quiet and -h/--help;
- a missing input file is exit 1 with one line naming it, in every command (README's exit-code table);
- `mrl-dna --help` lists each command with its docstring's first line without importing it.

A new command must be classified below (WRITES_FILE, COMPUTES, ...), or the first test fails.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from mrl_dna.cli import COMMANDS, load_commands

from conftest import REPO

WRITES_FILE = {"embed", "merge", "export", "train", "eval", "dist", "cluster"}  # -o and -f
WRITES_BESIDE = {"index", "calibrate"}  # -f, the output's name is fixed by the input (calibrate: MODEL_DIR/calibration.json)
READS_ONLY = {"search", "info"}
COMPUTES = {"embed", "search", "eval", "train", "dist", "cluster", "calibrate"}  # --threads and --device (dist, cluster: numpy, torch on a GPU)
COMPUTES_CPU = {"index"}  # --threads
HITS = {"search"}  # -k = hits per query


@pytest.fixture(scope="module")
def commands() -> dict[str, click.Command]:
    return load_commands()


def options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]  # typer vendors click


def names(cmd: click.Command) -> set[str]:
    return {n for p in options(cmd) for n in p.opts + p.secondary_opts}


def test_every_command_is_classified(commands):
    classified = WRITES_FILE | WRITES_BESIDE | READS_ONLY
    assert set(commands) == classified, f"classify {set(commands) ^ classified} in tests/test_cli_grammar.py"
    assert COMPUTES | COMPUTES_CPU | HITS <= set(commands)


def test_force_is_f_and_f_is_force(commands):
    for name, cmd in commands.items():
        for p in options(cmd):
            if "--force" in p.opts:
                assert "-f" in p.opts, f"{name}: --force without -f"
            elif "-f" in p.opts:
                raise AssertionError(f"{name}: -f means {p.opts}, not --force")
        writes = name in WRITES_FILE | WRITES_BESIDE
        assert ("--force" in names(cmd)) == writes, f"{name}: --force on exactly the commands that write"


def test_output_on_every_command_that_writes_a_file(commands):
    for name, cmd in commands.items():
        has_o = {"-o", "--output"} <= names(cmd)
        assert has_o == (name in WRITES_FILE), f"{name}: -o/--output on exactly the commands that write a file"
        if "-o" in names(cmd):
            assert "--force" in names(cmd), f"{name}: -o without --force"


def test_threads_and_device_on_every_command_that_computes(commands):
    for name, cmd in commands.items():
        n = names(cmd)
        assert ("--device" in n) == (name in COMPUTES), f"{name}: --device on exactly the torch commands"
        assert ("--threads" in n) == (name in COMPUTES | COMPUTES_CPU), f"{name}: --threads where it computes"
        device = next((p for p in options(cmd) if "--device" in p.opts), None)
        if device is not None:
            assert device.default == "auto" and "cuda:N" in (device.help or ""), f"{name}: --device auto|cpu|cuda[:N]"


def test_k_means_hits_only(commands):
    for name, cmd in commands.items():
        for p in options(cmd):
            if "-k" in p.opts:
                assert name in HITS and "hits" in (p.help or "").lower(), f"{name}: -k is {p.opts}, not hits"


def test_short_options_mean_the_same_everywhere(commands):
    meaning: dict[str, set[str]] = {}
    for cmd in commands.values():
        for p in options(cmd):
            longs = tuple(o for o in p.opts if o.startswith("--"))
            for short in (o for o in p.opts if not o.startswith("--")):
                meaning.setdefault(short, set()).update(longs)
    assert all(len(v) == 1 for v in meaning.values()), {k: v for k, v in meaning.items() if len(v) > 1}
    for name, cmd in commands.items():
        assert {"-q", "--quiet"} <= names(cmd), f"{name}: -q/--quiet"


# options that several commands share, declared once in cli/options.py (sourmash's add_ksize_arg habit)
SHARED_OPTIONS = ("--dim", "--no-header", "--min-sim", "--model", "--batch-tokens", "--force", "--quiet", "--threads",
                  "--device")


def test_shared_options_are_declared_once_in_cli_options():
    """Issue 23: dist and cluster declared --dim, -o and --no-header each in their own words; every command now takes
    them from cli/options.py, so one spelling and one check serve all."""
    for path in sorted((REPO / "mrl_dna" / "cli").glob("*.py")):
        if path.name == "options.py":
            continue
        text = path.read_text()
        for opt in SHARED_OPTIONS:
            assert f'"{opt}"' not in text, f"{path.name} declares {opt} itself; use its helper in cli/options.py"


def test_help_lists_commands_with_their_docstrings_and_examples(commands):
    for name, cmd in commands.items():
        first = (cmd.help or "").strip().splitlines()[0]
        assert COMMANDS[name][1] == first, f"mrl_dna/cli/__init__.py COMMANDS[{name!r}] != the docstring's first line"
        assert "Example" in cmd.help, f"{name}: --help shows a real example call"


def test_version_and_help_start_without_torch():
    code = ("import sys; from mrl_dna.cli import main\n"
            "for args in (['--version'], ['--help']):\n"
            "    try:\n        main(args)\n    except SystemExit as e:\n        assert e.code == 0\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print('light')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.stdout.strip().endswith("light"), r.stderr[-2000:]


def _missing_input_cases(tmp_path, db, tiny_model_dir, small_fasta):
    gone = tmp_path / "missing.fa"
    gone_h5 = tmp_path / "missing.h5"
    out = tmp_path / "out.h5"
    return {
        "embed": ["embed", gone, "-o", out],
        "search": ["search", gone, db],
        "search-db": ["search", db, gone_h5],
        "index": ["index", gone_h5],
        "info": ["info", gone_h5],
        "merge": ["merge", db, gone_h5, "-o", out],
        "export": ["export", gone_h5],
        "train": ["train", gone, "-o", tmp_path / "m"],
        "train-groups": ["train", db, "--groups", tmp_path / "missing.tsv", "-o", tmp_path / "m"],
        "eval": ["eval", gone, "--no-model"],
        "dist": ["dist", db, gone_h5],
        "cluster": ["cluster", gone_h5, "--min-sim", "0.9"],
        "calibrate": ["calibrate", tiny_model_dir, gone, small_fasta],
    }


def test_a_missing_input_file_is_exit_1_with_one_line_in_every_command(tmp_path, cli, tiny_model_dir, small_fasta,
                                                                      commands):
    db = tmp_path / "db.h5"
    assert cli("embed", small_fasta, "-o", db, "-m", tiny_model_dir, "-q")[0] == 0
    cases = _missing_input_cases(tmp_path, db, tiny_model_dir, small_fasta)
    assert {c.split("-")[0] for c in cases} == set(commands), "a command without a missing-input case"
    for case, args in cases.items():
        code, out, err = cli(*args)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("mrl-dna: error: "), (case, code, err)
        assert "missing." in lines[0] and ("no such" in lines[0] or "does not exist" in lines[0]), (case, err)
        assert out == ""


@pytest.mark.parametrize("name", sorted(COMPUTES))
def test_a_bad_or_absent_device_is_refused_before_any_work(tmp_path, cli, name, small_fasta):
    out = [] if name in ("search", "calibrate") else ["-o", tmp_path / "o"]
    code, _, err = cli(name, small_fasta, small_fasta, *out, "--device", "gpu0")
    assert code == 1 and "--device 'gpu0' is not a device; use auto, cpu, cuda or cuda:N" in err, err
    import torch

    if not torch.cuda.is_available():
        code, _, err = cli(name, small_fasta, small_fasta, *out, "--device", "cuda:1")
        assert code == 1 and "this torch sees no CUDA GPU" in err, err
