"""mrl-dna train end to end: a tiny model on data/sample.fa, exact resume, errors, torchrun on 2 CPU processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_train
from mrl_dna.model import load_model
from mrl_dna.train.config import TrainConfig, lr_factor

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample.fa"
TINY = ["--d-model", "16", "--n-layer", "1", "--window", "256", "--dims", "8,16", "--head-hidden", "0",
        "--batch-size", "8", "--warmup", "1", "--device", "cpu", "-q"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 cores shared by everyone; also keeps runs bitwise equal
    yield
    torch.set_num_threads(n)


def _split_sample(tmp_path):
    """sample.fa's 8 records as 8 genome files (one genome per file, the normal layout)."""
    d = tmp_path / "genomes"
    d.mkdir()
    chunks = SAMPLE.read_text().split(">")[1:]
    for i, c in enumerate(chunks):
        (d / f"g{i}.fa").write_text(">" + c)
    return d


def test_train_end_to_end_writes_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "model"
    val = ROOT / "data" / "sample.fa"
    d = _split_sample(tmp_path)
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(out), "--steps", "3", "--eval-every", "3",
                     "--val-genomes", str(d / "g6.fa"), "--val-genomes", str(d / "g7.fa"), *TINY], capsys)
    assert code == 0, err
    model = load_model(out)
    assert model.config.matryoshka_dims == (8, 16) and model.config.window == 256
    z = model(torch.randint(7, 11, (2, 1, 256)), torch.full((2, 1), 256))
    assert z.shape == (2, 16)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "loss" in x]
    assert [x["step"] for x in steps] == [1, 2, 3]
    assert {"infonce@8", "infonce@16", "cosent@8", "cosent@16", "lr", "step_s"} <= set(steps[0])
    val_lines = [x for x in lines if "val" in x]
    assert val_lines and set(val_lines[-1]["val"]["genome_top1"]) == {"8", "16"}
    card = (out / "README.md").read_text()
    assert "genome_top1" in card and "held out for validation: g6, g7" in card
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003.pt"]
    assert val.exists()


def test_train_writes_an_identity_calibration_of_the_saved_model(tmp_path, capsys):
    """issue 20: the run's end builds calibration.json (homology/build.py) for the model it saved, on the
    held-out genomes first; --calibration-genomes 0 skips it. (A k-mer-only model: the BiMamba one embeds the
    simulation's ~100 sequences ~10x slower.)"""
    from mrl_dna.homology import load_calibration

    d = _split_sample(tmp_path)
    args = [str(d / "g[0-5].fa"), "--val-genomes", str(d / "g6.fa"), "--val-genomes", str(d / "g7.fa"), *KMER_TINY]
    code, err = run_train([*args, "--calibration-genomes", "2", "-o", str(tmp_path / "m")], capsys)
    assert code == 0, err
    cal = load_calibration(tmp_path / "m")
    assert cal is not None and cal.model_hash == load_model(tmp_path / "m").info.weights_hash
    assert cal.build["genomes"] == ["g6", "g7"] and sorted(cal.tables) == [250]  # the strides <= the 256 bp window
    assert all(np.all(np.diff(t.score) > 0) for t in cal.tables.values())  # invertible
    code, err = run_train([*args, "--calibration-genomes", "0", "-o", str(tmp_path / "n")], capsys)
    assert code == 0, err
    assert load_calibration(tmp_path / "n") is None


def test_single_file_records_become_genomes(tmp_path, capsys):
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "m"), "--steps", "1", *TINY[:-1]], capsys)
    assert code == 0, err
    assert "treating its 8 records as separate genomes" in err
    assert load_model(tmp_path / "m").config.dim == 16


def test_resume_equals_uninterrupted(tmp_path, capsys):
    common = [str(SAMPLE), "--steps", "4", "--checkpoint-every", "2", *TINY]
    assert run_train([*common, "-o", str(tmp_path / "a")], capsys)[0] == 0
    assert run_train([*common, "-o", str(tmp_path / "b"), "--stop-at", "2"], capsys)[0] == 0
    assert not (tmp_path / "b" / "model.safetensors").exists()
    assert run_train([*common, "-o", str(tmp_path / "b"), "--resume"], capsys)[0] == 0
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a == b  # bitwise
    ma = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["loss"] for x in ma] == [x["loss"] for x in mb]
    # a checkpoint is self-describing
    ck = torch.load(tmp_path / "b" / "checkpoints" / "step-0000004.pt", weights_only=False)
    assert ck["format"] == "mrl-dna-train-checkpoint" and ck["step"] == 4
    assert {"model", "optimizer", "scheduler", "rng", "model_config", "train_config", "sampler_config"} <= set(ck)


def test_sampler_processes_draw_the_same_batches(tmp_path, capsys):
    common = [str(SAMPLE), "--steps", "2", *TINY]
    assert run_train([*common, "-o", str(tmp_path / "a"), "--workers", "0"], capsys)[0] == 0
    assert run_train([*common, "-o", str(tmp_path / "b"), "--workers", "2"], capsys)[0] == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "m"
    base = [str(SAMPLE), "-o", str(out), "--steps", "2", *TINY]
    code, err = run_train([*base, "--resume"], capsys)
    assert code == 1 and "holds no checkpoint; start without --resume" in err
    assert run_train(base, capsys)[0] == 0
    code, err = run_train(base, capsys)
    assert code == 1 and "already holds a training run; pass --resume to continue it, --force to replace it" in err
    code, err = run_train([*base, "--force", "--resume"], capsys)
    assert code == 1 and "pass only one" in err
    assert run_train([*base, "-f", "--steps", "1"], capsys)[0] == 0  # a new run replaces the old one
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000001.pt"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert run_train([*base, "-f"], capsys)[0] == 0  # back to the run the lines below resume
    code, err = run_train([*base, "--resume", "--lr", "0.5"], capsys)
    assert code == 1 and "--resume: lr differs from the checkpoint (0.5 vs 0.001)" in err
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "x"), "--init", str(out), "--d-model", "8", "-q"], capsys)
    assert code == 1 and "--d-model conflicts with --init" in err
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "y"), "--dims", "16,8", *TINY[:6], "-q"], capsys)
    assert code == 1 and "strictly increasing" in err
    code, err = run_train([str(tmp_path / "nope.fa"), "-o", str(tmp_path / "z"), "-q"], capsys)
    assert code == 1 and "does not exist" in err


def test_init_from_a_model_and_no_matryoshka(tmp_path, capsys):
    first = tmp_path / "first"
    assert run_train([str(SAMPLE), "-o", str(first), "--steps", "1", *TINY], capsys)[0] == 0
    second = tmp_path / "second"
    code, err = run_train([str(SAMPLE), "-o", str(second), "--init", str(first), "--steps", "1", "--no-matryoshka",
                     "--batch-size", "8", "--warmup", "0", "--device", "cpu", "-q"], capsys)
    assert code == 0, err
    rec = json.loads((second / "metrics.jsonl").read_text().splitlines()[0])
    assert "infonce@16" in rec and "infonce@8" not in rec  # full dim only
    assert load_model(second).config == load_model(first).config


def test_pairs_only(tmp_path, capsys):
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("seq_a\tseq_b\tscore\n" + "".join(
        f"{'ACGT' * (20 + i)}\t{'ACGA' * (20 + i)}\t{i / 10}\n" for i in range(6)))
    code, err = run_train(["-o", str(tmp_path / "m"), "--pairs", str(tsv), "--steps", "2", *TINY], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "m" / "metrics.jsonl").read_text().splitlines()[0])
    assert "pairs@8" in rec


def test_train_to_a_read_only_output_is_one_line_before_any_data_is_read(tmp_path, capsys, monkeypatch):
    """`train -o` on a read-only file system was "internal error: OSError" (exit 3), after the genomes were
    read and the model built. Now: one line, exit 1, first. Tests run as root (chmod does not stop root), so
    the file system is read-only for the write probe here; test_train_to_a_read_only_mount is the real one."""
    import errno
    import tempfile

    import mrl_dna.train.trainer as trainer_mod

    ro = tmp_path / "ro"
    ro.mkdir()
    real = tempfile.mkstemp

    def read_only(*args, dir=None, **kw):
        if dir is not None and Path(dir).is_relative_to(ro):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kw)

    def no_reading(**kw):
        raise AssertionError("the genomes were read before -o was checked")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(trainer_mod, "load_data", no_reading)
    for out in (ro, ro / "new" / "model"):
        code, err = run_train([str(SAMPLE), "-o", str(out), "--steps", "2", *TINY], capsys)
        assert code == 1, err
        assert err.splitlines() == [f"mrl-dna: error: -o {out} cannot be written (read-only file system in {ro}); "
                                    "choose a writable directory for -o"]
    assert list(ro.iterdir()) == []


def test_train_to_a_read_only_mount(tmp_path, capsys):
    """The same on a real read-only bind mount (root only; skipped otherwise)."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", str(ro), str(ro)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount (not root)")
    try:
        if subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount read-only")
        code, err = run_train([str(SAMPLE), "-o", str(ro / "m"), "--steps", "2", *TINY], capsys)
        assert code == 1 and "cannot be written (read-only file system in" in err, err
    finally:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)


def test_train_on_a_full_disk_fails_before_the_first_step(tmp_path, capsys, monkeypatch):
    """Issue 22.17: on a full disk train ran every step and failed at the first checkpoint. Now the room for
    a checkpoint and the model is checked before any step: one line, exit 1, no metrics, no checkpoint."""
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=100 * 1024))
    out = tmp_path / "m"
    code, err = run_train([str(SAMPLE), "-o", str(out), "--steps", "2", *TINY], capsys)
    assert code == 1, err
    line = err.splitlines()[-1]
    assert line.startswith(f"mrl-dna: error: not enough space for a checkpoint and the model (~") and (
        f"KiB) on the disk that holds {out} (" in line and "100.0 KiB free); free some space or choose -o on "
        "another disk, then rerun the same command" in line), line
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists()


def test_a_checkpoint_on_a_full_disk_leaves_no_partial_and_says_resume(tmp_path, capsys, monkeypatch):
    """Issue 22.17: a checkpoint that failed for want of space was "internal error: RuntimeError: unexpected
    pos" (torch.save to a path) and left step-N.pt.partial. Now: one line naming the checkpoint to resume."""
    import errno

    import mrl_dna.train.checkpoints as ckpt_mod

    real = torch.save

    def fills_up(obj, f, *a, **kw):
        if obj["step"] == 2:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(ckpt_mod.torch, "save", fills_up)
    out = tmp_path / "m"
    code, err = run_train([str(SAMPLE), "-o", str(out), "--steps", "3", "--checkpoint-every", "1", *TINY], capsys)
    assert code == 1, err
    assert err.splitlines()[-1].startswith(f"mrl-dna: error: no space left on device on the disk that holds "
                                           f"{out / 'checkpoints' / 'step-0000002.pt'} (")
    assert err.splitlines()[-1].endswith("free some space, then rerun the same command with --resume (it continues "
                                         "from step-0000001.pt)")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000001.pt"]


def test_lr_schedule_warmup_then_cosine():
    tc = TrainConfig(steps=110, warmup=10, min_lr_ratio=0.1)
    f = [lr_factor(s, tc) for s in range(110)]
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11)
    assert f[10] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(f[10:], f[11:]))
    assert lr_factor(110, tc) == pytest.approx(0.1)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mrl_dna", "train", str(SAMPLE), "-o", str(out), "--steps", "2", *TINY]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=100)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr
    assert load_model(out).config.dim == 16
    ck = torch.load(out / "checkpoints" / "step-0000002.pt", weights_only=False)
    assert ck["world_size"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # rank 0 alone writes


def _caduceus_fixture():
    for root in (ROOT.parent / "shared", Path(os.environ.get("MRL_DNA_SHARED", "/nonexistent"))):
        d = root / "fixtures" / "caduceus" / "ps_small"
        if (d / "model.safetensors").is_file():
            return d
    return None


@pytest.mark.skipif(_caduceus_fixture() is None, reason="needs ../shared/fixtures/caduceus/ps_small (or MRL_DNA_SHARED)")
def test_init_from_caduceus_frozen_backbone_and_resume(tmp_path, capsys):
    from mrl_dna.model.caduceus import CaduceusEmbedder
    from mrl_dna.model import CaduceusMrlModel

    cad = _caduceus_fixture()
    common = [str(SAMPLE), "--init", str(cad), "--window", "96", "--dims", "8,16", "--head-hidden", "0",
              "--batch-size", "4", "--max-windows", "2", "--warmup", "0", "--steps", "2", "--checkpoint-every", "1",
              "--freeze-backbone", "--device", "cpu", "-q"]
    assert run_train([*common, "-o", str(tmp_path / "a")], capsys)[0] == 0
    model = CaduceusMrlModel.from_pretrained(tmp_path / "a")
    assert model.config.window == 96 and model.config.matryoshka_dims == (8, 16)
    official = CaduceusEmbedder.from_pretrained(cad).backbone.state_dict()
    for k, v in model.embedder.backbone.state_dict().items():
        assert torch.equal(v, official[k]), k  # frozen: the backbone is the checkpoint's
    # resume from the step-1 checkpoint gives the same final weights
    b = tmp_path / "b"
    (b / "checkpoints").mkdir(parents=True)
    (b / "checkpoints" / "step-0000001.pt").write_bytes((tmp_path / "a" / "checkpoints" / "step-0000001.pt").read_bytes())
    assert run_train([*common, "-o", str(b), "--resume"], capsys)[0] == 0
    assert (b / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()
    code, err = run_train([*common[:3], "--d-model", "8", "-o", str(tmp_path / "c"), "-q"], capsys)
    assert code == 1 and "--d-model conflicts with --init" in err


def test_labelled_fasta_attention_pooling_mamba1_grad_accum(tmp_path, capsys):
    ids = [line[1:].split()[0] for line in SAMPLE.read_text().splitlines() if line.startswith(">")]
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("".join(f"{rid}\t{'virus' if i % 2 else 'other'}\n" for i, rid in enumerate(ids)))
    out = tmp_path / "m"
    code, err = run_train([str(SAMPLE), "--labels", str(tsv), "-o", str(out), "--steps", "2", "--grad-accum", "2",
                     "--pooling", "attention", "--mixer", "mamba1", "--max-windows", "3", "--multi-window-prob", "1",
                     *TINY], capsys)
    assert code == 0, err
    cfg = load_model(out).config
    assert cfg.pooling.value == "attention" and cfg.encoder.mixer.value == "mamba1"
    assert "mamba1" in (out / "README.md").read_text()


def test_genome_blocks_with_a_locus_loss_log_and_validate_locus_dims(tmp_path, capsys):
    d = _split_sample(tmp_path)
    out = tmp_path / "m"
    args = [str(d / "g[0-5].fa"), "-o", str(out), "--steps", "2", "--eval-every", "2", "--val-genomes", str(d / "g6.fa"),
            "--val-genomes", str(d / "g7.fa"), "--windows-per-genome", "2", "--genome-dims", "8", "--locus-dims", "16",
            "--pool-features", "12", "--cosent-weight", "0", *TINY]
    code, err = run_train(args, capsys)
    assert code == 0, err
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"infonce@8", "locus@16"} <= set(lines[1]) and "infonce@16" not in lines[1]
    assert set(lines[-1]["val"]["locus_top1"]) == {"8", "16"}
    assert load_model(out).config.encoder.pool_features == 12
    code, err = run_train([args[0], "-o", str(tmp_path / "m2"), "--locus-dims", "16", *TINY], capsys)
    assert code == 1 and "--windows-per-genome" in err


def test_head_from_a_kmer_only_model_starts_exactly_as_that_model(tmp_path, capsys):
    d = _split_sample(tmp_path)
    blocks = ["--windows-per-genome", "2", "--genome-dims", "8", "--locus-dims", "16", "--cosent-weight", "0"]
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "k"), "--steps", "2", "--kmer-only", *blocks, *TINY], capsys)
    assert code == 0, err
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "m"), "--steps", "0", "--head-from", str(tmp_path / "k"),
                           "--pool-features", "12", "--pool-norm", "batch", "--patch", "mean", *blocks, *TINY], capsys)
    assert code == 0, err
    kmer, full = load_model(tmp_path / "k"), load_model(tmp_path / "m")
    tok, lengths = torch.randint(7, 11, (3, 1, 256)), torch.full((3, 1), 256)
    with torch.no_grad():
        torch.testing.assert_close(full(tok, lengths), kmer(tok, lengths))
    assert "--head-from" in (tmp_path / "m" / "README.md").read_text()
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "x"), "--head-from", str(tmp_path / "m"), *blocks, *TINY],
                          capsys)
    assert code == 1 and "not a --kmer-only model" in err


def test_freeze_kmer_head_trains_the_encoder_and_keeps_the_kmer_columns_exactly(tmp_path, capsys):
    d = _split_sample(tmp_path)
    blocks = ["--windows-per-genome", "2", "--genome-dims", "8", "--locus-dims", "16", "--cosent-weight", "0"]
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "k"), "--steps", "2", "--kmer-only", *blocks, *TINY], capsys)
    assert code == 0, err
    enc = ["--pool-features", "12", "--pool-norm", "batch", "--patch", "mean", "--weight-decay", "0.1", "--lr", "1e-2"]
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "f"), "--steps", "3", "--head-from", str(tmp_path / "k"),
                           "--freeze-kmer-head", *enc, *blocks, *TINY], capsys)
    assert code == 0, err
    kmer, frozen = load_model(tmp_path / "k"), load_model(tmp_path / "f")
    assert torch.equal(frozen.head.weight[:, 12:], kmer.head.weight) and torch.equal(frozen.head.bias, kmer.head.bias)
    assert frozen.head.weight[:, :12].abs().sum() > 0  # the learned columns did train from their zero start
    assert "--freeze-kmer-head" in (tmp_path / "f" / "README.md").read_text()
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "x"), "--freeze-kmer-head", *enc, *blocks, *TINY], capsys)
    assert code == 1 and "give --head-from" in err


def test_resume_of_a_checkpoint_written_before_a_config_field_existed(tmp_path, capsys):
    """A field added to TrainConfig/SamplerConfig later: an older checkpoint lacks it and ran with its default."""
    common = [str(SAMPLE), "--steps", "3", "--checkpoint-every", "2", *TINY]
    assert run_train([*common, "-o", str(tmp_path / "a")], capsys)[0] == 0
    assert run_train([*common, "-o", str(tmp_path / "b"), "--stop-at", "2"], capsys)[0] == 0
    path = tmp_path / "b" / "checkpoints" / "step-0000002.pt"
    ck = torch.load(path, weights_only=False)
    del ck["train_config"]["head_from"], ck["sampler_config"]["windows_per_genome"]
    torch.save(ck, path)
    code, err = run_train([*common, "-o", str(tmp_path / "b"), "--resume"], capsys)
    assert code == 0, err
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    code, err = run_train([*common, "-o", str(tmp_path / "c"), "--stop-at", "2"], capsys)
    code, err = run_train([*common, "-o", str(tmp_path / "c"), "--resume", "--lr", "0.5"], capsys)
    assert code == 1 and "lr differs from the checkpoint" in err


def test_a_checkpoint_exports_as_a_model_that_embeds_as_the_finished_run(tmp_path, capsys):
    from mrl_dna.train.checkpoints import export_checkpoint

    code, err = run_train([str(SAMPLE), "--steps", "2", "--checkpoint-every", "2", "-o", str(tmp_path / "a"), *TINY], capsys)
    assert code == 0, err
    assert export_checkpoint(tmp_path / "a" / "checkpoints" / "step-0000002.pt", tmp_path / "x") == 2
    assert (tmp_path / "x" / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()
    assert "Step 2 of a training run" in (tmp_path / "x" / "README.md").read_text()


# ------------------------------------------------------------------------------------------ --config (recipes)
KMER_TINY = ["--kmer-only", "--kmer-features", "2", "--dims", "8,16", "--head-hidden", "0", "--window", "256",
             "--batch-size", "8", "--warmup", "1", "--steps", "3", "--device", "cpu", "-q"]
KMER_TINY_TOML = """# the options of KMER_TINY
kmer-only = true
kmer-features = 2
dims = [8, 16]
head-hidden = 0
window = 256
batch-size = 8
warmup = 1
steps = 3
device = "cpu"
"""


def test_train_config_file_is_the_options_and_the_command_line_overrides_it(tmp_path, capsys):
    """Issue 23: a recipe file (train --config) gives the same bits as its options on the command line; an option on
    the command line overrides the file's; the model card names the file and quotes it."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(KMER_TINY_TOML)
    assert run_train([str(SAMPLE), "-o", str(tmp_path / "cli"), *KMER_TINY], capsys)[0] == 0
    # --stop-at 3 (the recipe's steps): a run that ignored the file would stop there without a model, not run 2000 steps
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "file"), "--config", str(recipe), "--stop-at", "3", "-q"],
                          capsys)
    assert code == 0, err
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("cli", "file")]
    assert weights[0] == weights[1]
    card = (tmp_path / "file" / "README.md").read_text()
    assert f"- recipe: `{recipe}`" in card and "```toml\n# the options of KMER_TINY\nkmer-only = true\n" in card
    assert "- recipe:" not in (tmp_path / "cli" / "README.md").read_text()
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "two"), "--config", str(recipe), "--steps", "2", "-q"],
                          capsys)
    assert code == 0, err
    steps = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert [x["step"] for x in steps] == [1, 2]


@pytest.mark.parametrize("text,line", [
    ("batch_size = 8", "unknown key 'batch_size'; write it as on the command line: batch-size"),
    ("genomes = ['a.fa']", "unknown key 'genomes'; keys are the command's long options without their dashes"),
    ("batch-size = 'many'", 'batch-size = "many": Input should be a valid integer'),
    ("batch-size = 1", "batch-size = 1: Input should be greater than or equal to 2"),
    ("steps = 1.5", "steps = 1.5: Input should be a valid integer"),
    ("kmer-only = 'yes'", 'kmer-only = "yes": give true or false'),
    ("lr = true", "lr = true: true/false is for options without a value"),
    ("pooling = 'max'", "pooling = \"max\": Value error, 'max' is not one of 'mean', 'attention'"),
    ("dims = [[8]]", "dims = [[8]]: the option takes one value"),
    ("[dims]\nx = 1", 'dims = {"x": 1}: a table; give the option\'s value'),
    ("steps = ", "is not valid TOML"),
])
def test_train_config_refuses_unknown_keys_and_bad_values_in_one_line(tmp_path, capsys, text, line):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text + "\n")
    code, err = run_train([str(SAMPLE), "-o", str(tmp_path / "m"), "--config", str(recipe)], capsys)
    assert code == 2 and err.splitlines() == [err.splitlines()[0]] and err.startswith(f"mrl-dna: error: --config {recipe}")
    assert line in err and not (tmp_path / "m").exists()


def test_recipes_in_the_tree_are_train_options_and_train_default_sh_runs_only_those(tmp_path):
    """Every recipe under recipes/ reads as train's options (so it cannot rot unnoticed), and
    scripts/train/train_default.sh names recipe files that exist."""
    import re

    import typer

    from mrl_dna.cli import load_commands
    from mrl_dna.cli.options import read_config

    train = load_commands()["train"]
    recipes = sorted((ROOT / "recipes").rglob("*.toml"))
    assert {p.relative_to(ROOT / "recipes").as_posix() for p in recipes} >= {
        "v2.1/stage1.toml", "v2.1/model.toml", "v2.1/twin-stage1.toml", "v2.1/twin.toml", "v2/stage1.toml", "v2/model.toml"}
    for path in recipes:
        _, values = read_config(path, typer.Context(train))
        assert values["name"] and values["seed"] == 0 and "output" not in values, path
    script = (ROOT / "scripts" / "train" / "train_default.sh").read_text()
    steps = set(re.findall(r"\brecipe ([a-z0-9-]+)", script[script.rindex("case $what in"):script.rindex("esac")]))
    assert steps >= {"stage1", "model", "twin-stage1", "twin"}
    for folder in ("v2.1", "v2"):  # issue 21's locus-* steps exist for v2.1 only (they start from its head)
        missing = {s for s in steps if not (ROOT / "recipes" / folder / f"{s}.toml").is_file()
                   and not (folder == "v2" and s.startswith("locus-"))}
        assert not missing, f"train_default.sh runs steps without a recipe in recipes/{folder}: {sorted(missing)}"


def test_queue_and_encoder_dims_resume_equal_an_uninterrupted_run(tmp_path, capsys):
    """--queue-size (locus negatives from earlier batches, keys from a momentum encoder), --encoder-dims-from,
    --cpu-bf16, --feature-variance and a layer-normed encoder on a frozen k-mer head: a run stopped and resumed (queue and key encoder
    come back from the checkpoint) ends with the bytes of the uninterrupted run; the genome dims stay the
    --head-from model's exactly, and so do the key encoder's frozen k-mer columns."""
    d = _split_sample(tmp_path)
    blocks = ["--windows-per-genome", "2", "--genome-dims", "4,8", "--locus-dims", "16", "--cosent-weight", "0"]
    tiny = [x if x != "8,16" else "4,8,16" for x in TINY]
    code, err = run_train([str(d / "g[0-5].fa"), "-o", str(tmp_path / "k"), "--steps", "2", "--kmer-only", *blocks, *tiny], capsys)
    assert code == 0, err
    common = [str(d / "g[0-5].fa"), "--steps", "4", "--checkpoint-every", "2", "--head-from", str(tmp_path / "k"),
              "--freeze-kmer-head", "--encoder-dims-from", "8", "--queue-size", "40", "--cpu-bf16", "--pool-features", "12",
              "--feature-variance", "1",
              "--pool-norm", "layer", "--patch", "mean", "--lr", "1e-2", *blocks, *tiny]
    assert run_train([*common, "-o", str(tmp_path / "a")], capsys)[0] == 0
    assert run_train([*common, "-o", str(tmp_path / "b"), "--stop-at", "2"], capsys)[0] == 0
    ck = torch.load(tmp_path / "b" / "checkpoints" / "step-0000002.pt", weights_only=False)
    assert ck["queue"]["filled"] == 32 and ck["queue"]["rows"].shape == (40, 16)  # 2 steps x (8 anchors + 8 positives)
    key_head = ck["key_encoder"]["head.weight"]
    assert torch.equal(key_head[:, 12:], ck["model"]["head.weight"][:, 12:])  # frozen columns: the EMA keeps them
    assert not torch.equal(key_head[:, :12], ck["model"]["head.weight"][:, :12])  # learned ones lag the model
    assert run_train([*common, "-o", str(tmp_path / "b"), "--resume"], capsys)[0] == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    kmer, model = load_model(tmp_path / "k"), load_model(tmp_path / "a")
    assert model.head.weight[:8, :12].abs().sum() == 0 and model.head.weight[8:, :12].abs().sum() > 0
    tok, lengths = torch.randint(7, 11, (3, 1, 256)), torch.full((3, 1), 256)
    with torch.no_grad():
        assert torch.equal(model(tok, lengths)[:, :8], kmer(tok, lengths)[:, :8])
    # without the queue the run differs (the queued rows were used)
    assert run_train([*[x for x in common if x not in ("--queue-size", "40")], "-o", str(tmp_path / "c")], capsys)[0] == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() != (tmp_path / "c" / "model.safetensors").read_bytes()
    steps = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert all(0 < x["feature_var"] <= 1 for x in steps)
    card = (tmp_path / "a" / "README.md").read_text()
    assert "--feature-variance 1" in card and "queue of 40" in card and "output dims >= 8" in card and "layer-normalised" in card
    code, err = run_train([*common[:-len(blocks) - len(tiny)], "--windows-per-genome", "2", *tiny, "-o", str(tmp_path / "x")],
                          capsys)
    assert code == 1 and "--queue-size adds negatives to the locus loss; give --locus-dims" in err
