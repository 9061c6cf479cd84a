"""The training loop: Matryoshka InfoNCE (+ CoSENT) on genome windows, read top to bottom.

One step = `grad_accum` micro-batches -> clip -> AdamW -> LR schedule (linear warmup, cosine decay to
min_lr_ratio * lr). Micro-batch (step, micro) of rank r is drawn by the sampler from (seed + r, step, micro),
so the data never depends on the history and a resumed run is the uninterrupted run, bitwise on CPU.

Under `torchrun` (WORLD_SIZE > 1) every rank samples its own batches (seed + rank), gradients are averaged
by DDP (gloo on CPU, nccl on CUDA), in-batch negatives stay per rank, and rank 0 alone writes metrics,
checkpoints, validation and the final model.

Where the pieces live: settings train/config.py; data, model, losses, optimizer train/setup.py; the loss of a
micro-batch train/objective.py; batches ahead of the model train/prefetch.py; validation train/validation.py;
checkpoints train/checkpoints.py; metrics.jsonl train/metrics.py; the model card train/card.py.

Files in the output directory:
    config.json, model.safetensors, README.md   the final model (what `load_model` reads) + its model card
    metrics.jsonl                               one JSON object per step; {"step", "val": ...} per evaluation
    checkpoints/step-NNNNNNN.pt                 self-describing dict: model, optimizer, scheduler, step, RNG
                                                (+ the negative queue and key encoder with --queue-size)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrl_dna import console, distributed, runtime
from mrl_dna.model.config import ModelConfig
from mrl_dna.errors import ConfigError, OptionError, disk_full_error, human_size
from mrl_dna.homology.build import STRIDES, build_calibration
from mrl_dna.model import MrlDnaModel
from mrl_dna.train.card import model_card
from mrl_dna.train.checkpoints import checkpoint_bytes, latest_checkpoint, restore, save_checkpoint
from mrl_dna.train.config import Recipe, TrainConfig, ValidationConfig
from mrl_dna.train.metrics import Metrics, progress_line
from mrl_dna.train.objective import FeatureTap, micro_step
from mrl_dna.train.prefetch import Prefetcher, default_workers
from mrl_dna.train.sampler import GenomeSampler, SamplerConfig
from mrl_dna.train.queue import KeyEncoder, NegativeQueue
from mrl_dna.train.setup import HeadSpec, build_model, load_data, make_losses, make_optimizer, sampler_for, start_model
from mrl_dna.train.validation import Validator, val_line

LOG_EVERY = 50  # steps between progress lines when stderr is not a terminal


@dataclass
class TrainSummary:
    output: Path
    steps: int
    wall_s: float
    final_loss: float
    validation: dict | None


def train(
    *,
    genomes: Sequence[str | Path],
    output: str | Path,
    model_config: ModelConfig | None = None,
    init: str | Path | None = None,
    init_head: HeadSpec | None = None,
    sampler_config: SamplerConfig | None = None,
    train_config: TrainConfig | None = None,
    groups: str | Path | None = None,
    labels: str | Path | None = None,
    pairs: str | Path | None = None,
    val_genomes: Sequence[str | Path] = (),
    validation: ValidationConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    stop_at: int | None = None,
    workers: int | None = None,
    quiet: bool = False,
    recipe: Recipe | None = None,
) -> TrainSummary:
    """Train (or continue training) a model and write it to `output`. See the module docstring."""
    was_quiet = console.is_quiet()
    console.set_quiet(quiet or was_quiet)
    dist = distributed.init(device)
    try:
        return _train(
            genomes=genomes, out=Path(output), model_config=model_config, init=init, init_head=init_head,
            sc=sampler_config, tc=train_config or TrainConfig(), groups=groups, labels=labels, pairs=pairs,
            val_genomes=val_genomes, vc=validation or ValidationConfig(), dist=dist, resume=resume, overwrite=overwrite,
            stop_at=stop_at, workers=default_workers(dist.world) if workers is None else workers, recipe=recipe,
        )
    finally:
        distributed.cleanup(dist)
        console.set_quiet(was_quiet)


def _train(*, genomes, out, model_config, init, init_head, sc, tc, groups, labels, pairs, val_genomes, vc, dist, resume,
           overwrite, stop_at, workers, recipe) -> TrainSummary:
    timer = console.Timer()
    # freed activations stay in the process instead of being unmapped and faulted in again every step: an encoder
    # step on the CPU spent a third of its time in the kernel without it (issue 21); the numbers do not change
    runtime.tune_allocator()
    ckpt_dir = out / "checkpoints"
    ckpt = _check_output(out, ckpt_dir, resume, overwrite=overwrite, main=dist.is_main)
    data = load_data(genomes=genomes, val_genomes=val_genomes, groups=groups, labels=labels, pairs=pairs,
                     warn=dist.is_main)

    # ---- model, losses, optimizer (train/setup.py)
    model, state = build_model(ckpt, model_config=model_config, init=init, init_head=init_head, tc=tc, sc=sc)
    mcfg = model.config
    sc = sampler_for(sc, mcfg.window, tc)
    losses = make_losses(tc, mcfg.dim, mcfg.matryoshka_dims, sc)
    if dist.is_main:
        _check_room(out, model)  # before the whitened start, which reads the genomes
    start_model(model, data.sources, tc, dist.device, new_run=ckpt is None, say=dist.is_main)
    opt, sched = make_optimizer(model, tc)
    queue, key_encoder = None, None
    if tc.queue_size:
        if losses.locus is None:
            raise ConfigError("--queue-size adds negatives to the locus loss; give --locus-dims too")
        queue = NegativeQueue(tc.queue_size, mcfg.dim, dist.device)
        key_encoder = KeyEncoder(model, tc.queue_momentum, dist.device)
    start = restore(state, opt, sched, dist.device, dist.world, queue, key_encoder) if state is not None else 0
    features = None
    if tc.feature_variance:
        if not isinstance(model, MrlDnaModel) or not mcfg.encoder.learned:
            raise ConfigError("--feature-variance acts on the learned features of an encoder: drop --kmer-only")
        features = FeatureTap(model.encoder, mcfg.encoder.learned_dim)
    del state
    ddp_model = dist.wrap(model)

    sampler = GenomeSampler(data.sources, sc, seed=tc.seed + dist.rank) if data.sources else None
    validator = (Validator(data.val_sources, mcfg.window, vc, locus=losses.locus is not None)
                 if data.val_sources and dist.is_main else None)
    metrics = Metrics(out / "metrics.jsonl", start, enabled=dist.is_main)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is None:
            console.info(
                f"train: {len(data.sources)} genome(s)/group(s), {sum(s.n_bases for s in data.sources) / 1e6:.1f} Mbp; "
                f"held out {len(data.val_sources)}; model {sum(p.numel() for p in model.parameters()):,} params; "
                f"dims {list(losses.dims)}; device {dist.device}; world {dist.world}"
            )
        else:
            console.info(f"train: resuming {ckpt} at step {start}")

    # ---- the loop
    use_bf16 = tc.bf16 and dist.device.type == "cuda"
    trunk_dtype = torch.bfloat16 if tc.cpu_bf16 and dist.device.type == "cpu" else None
    gather = dist.all_gather_rows if dist.world > 1 else None
    if 0 < tc.steps <= tc.warmup and dist.is_main and start == 0:
        console.warn(f"--warmup {tc.warmup} >= --steps {tc.steps}: the LR never reaches its peak; lower --warmup")
    last_stop = min(tc.steps, stop_at) if stop_at else tc.steps
    loss_val, last_val = float("nan"), None

    def validate(step: int) -> dict:
        val = validator.evaluate(model, dist.device, dims=mcfg.matryoshka_dims, bf16=use_bf16)
        metrics.write({"step": step, "val": val})
        console.info(f"step {step}: {val_line(val)}")
        return val

    keys = ((s, m) for s in range(start, last_stop) for m in range(tc.grad_accum))
    prefetch = Prefetcher((sampler, data.pairs, sc, tc, dist.rank), keys, workers)  # starts drawing now
    if validator is not None and start == 0:  # the untrained model: the baseline every later row improves on
        last_val = validate(0)  # also what the model card shows if no step runs (--steps 0)
    try:
        with console.progress("train", total=tc.steps, unit="steps") as bar:
            bar.advance(start)
            for step in range(start, last_stop):
                t0 = time.perf_counter()
                logs: dict[str, float] = {}
                n_bp = 0
                for micro in range(tc.grad_accum):
                    with dist.no_sync(ddp_model, micro < tc.grad_accum - 1):  # sync gradients on the last one
                        loss, parts, bp = micro_step(ddp_model, prefetch.next(), losses.genome, losses.locus, tc,
                                                     dist.device, use_bf16, queue, key_encoder, trunk_dtype,
                                                     gather, features)
                        (loss / tc.grad_accum).backward()
                    n_bp += bp
                    for key, v in parts.items():
                        logs[key] = logs.get(key, 0.0) + v / tc.grad_accum
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip if tc.clip > 0 else float("inf"))
                opt.step()
                if key_encoder is not None:
                    key_encoder.update(model)
                sched.step()
                opt.zero_grad(set_to_none=True)
                done, dt, loss_val = step + 1, time.perf_counter() - t0, logs["loss"]
                rec = {"step": done, **{k: round(v, 6) for k, v in logs.items()}, "lr": sched.get_last_lr()[0],
                       "grad_norm": round(float(grad_norm), 6), "step_s": round(dt, 4),
                       "bp_per_s": round(n_bp * dist.world / dt), "wall_s": round(timer.seconds, 2)}
                metrics.write(rec)
                bar_line = progress_line(done, logs, losses.dims, rec["lr"])
                bar.update(description=bar_line)
                bar.advance(1)
                if validator is not None and (done % tc.eval_every == 0 or done == tc.steps):
                    last_val = validate(done)
                if dist.is_main and (done % tc.checkpoint_every == 0 or done == last_stop):
                    save_checkpoint(ckpt_dir, done, model, opt, sched, tc, sc, dist, data.train_paths, data.val_paths,
                                    queue, key_encoder)
                if not sys.stderr.isatty() and (done % LOG_EVERY == 0 or done == last_stop):
                    # a log file (nohup, batch job) gets no live bar: one line every LOG_EVERY steps instead
                    console.info(f"step {done}/{tc.steps}: {bar_line}; {dt:.3f} s/step; {rec['bp_per_s']:,} bp/s")
    finally:
        prefetch.close()  # also on Ctrl-C: no sampler process is left behind

    # ---- the model
    finished = last_stop >= tc.steps
    if dist.is_main and finished:
        if last_val is None and validator is not None:
            last_val = validator.evaluate(model, dist.device, dims=mcfg.matryoshka_dims, bf16=use_bf16)
        card = model_card(
            model=model, sources=data.sources, val_sources=data.val_sources, tc=tc, sc=sc, dims=losses.dims, dist=dist,
            wall_s=timer.seconds, validation=last_val, metrics_path=out / "metrics.jsonl", init=init, recipe=recipe,
        )
        model.cpu().eval().save_pretrained(out, model_card=card)
        if tc.calibration_genomes:
            _calibrate(model, data, tc.calibration_genomes, out)
    dist.barrier()
    if dist.is_main:
        what = (f"trained {last_stop:,} of {console.count(tc.steps, 'step')} -> {out}"
                + ("" if finished else " (stopped; continue with --resume)"))
        console.footer(what, timer)
    return TrainSummary(out, last_stop, timer.seconds, loss_val, last_val)


# bp of each genome the end-of-run calibration simulates on: enough windows (1,200 at stride 250) per genome
# and rate, few enough that 8 genomes take minutes.
CALIBRATION_MAX_BP = 300_000


def _calibrate(model, data, n: int, out: Path) -> None:
    """calibration.json for the saved model (homology/build.py), on the first n genomes (held-out first), each
    cut to CALIBRATION_MAX_BP; a warning instead when they are too few or too short to fit one."""
    picked = [s for s in (*data.val_sources, *data.sources) if s.n_bases >= 2 * model.info.window][:n]
    genomes = [(s.name, np.concatenate(s.seqs)[:CALIBRATION_MAX_BP]) for s in picked]
    fix = f"build one with `mrl-dna calibrate {out} GENOMES...`"
    if len(genomes) < 2:
        console.warn(f"no identity calibration written: fewer than 2 genomes of >= {2 * model.info.window:,} bp; {fix}")
        return
    try:
        strides = tuple(s for s in STRIDES if s <= model.info.window) or (model.info.window,)
        cal = build_calibration(model, genomes, strides=strides, progress=console.info)
    except ConfigError as e:
        console.warn(f"no identity calibration written ({e}); {fix}")
        return
    console.info(f"identity calibration on {console.count(len(genomes), 'genome')} -> {cal.save(out)}")


def _check_output(out: Path, ckpt_dir: Path, resume: bool, *, overwrite: bool = False, main: bool = True) -> Path | None:
    """The checkpoint to resume from (None for a new run); ConfigError for an output that does not fit. With
    overwrite (--force) a new run replaces the one OUTPUT holds: its checkpoints and metrics are deleted now
    (by the main process), its model files when the new model is saved."""
    if overwrite and resume:
        raise ConfigError("--force starts a new run over the one in -o and --resume continues it; pass only one")
    if out.name.endswith(".gz"):  # every other output named .gz is gzip; a directory cannot be
        raise OptionError(f"-o {out}: a model is a directory (config.json, model.safetensors, ...), which cannot be "
                          f"gzip-compressed; drop the .gz (-o {out.with_name(out.name[:-3])})")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file, but a model is a directory (config.json, model.safetensors, "
                          "README.md, checkpoints/); choose a new name for -o")
    if main:
        _check_writable(out)
    ckpt = latest_checkpoint(ckpt_dir) if resume else None
    if resume and ckpt is None:
        raise ConfigError(f"--resume: {ckpt_dir} holds no checkpoint; start without --resume")
    if not resume and (ckpt_dir.is_dir() and any(ckpt_dir.glob("step-*.pt")) or (out / "model.safetensors").exists()):
        if not overwrite:
            raise ConfigError(f"output {out} already holds a training run; pass --resume to continue it, --force to "
                              "replace it, or pick a new -o")
        if main:
            for old in [*ckpt_dir.glob("step-*.pt"), out / "metrics.jsonl"]:
                old.unlink(missing_ok=True)
    return ckpt


def _check_writable(out: Path) -> None:
    """-o can be written: a file is created and removed in it (or in its nearest existing parent, where it will
    be made), so a read-only file system or a directory without write permission is one line before any data
    is read or any step runs. A probe, not os.access: access(2) ignores ACLs and some network file systems."""
    d = _nearest_existing(out)
    if not d.is_dir():
        raise ConfigError(f"-o {out}: {d} is a file, not a directory; choose another -o")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mrl-dna-write-test-", dir=d)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(f"-o {out} cannot be written ({e.strerror.lower() if e.strerror else e} in {d}); choose a "
                          "writable directory for -o") from None


def _nearest_existing(out: Path) -> Path:
    """out, or the nearest of its parents that exists (where out will be made)."""
    d = out.absolute()
    while not d.exists() and d.parent != d:
        d = d.parent
    return d


def _check_room(out: Path, model: torch.nn.Module) -> None:
    """Room on -o's disk for one checkpoint and the final model, before any step runs: on a full disk the
    first checkpoint failed only after the steps before it had run (every step, with the default
    --checkpoint-every). Later checkpoints are kept too, so a long run needs more; those fail in one line."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    need = checkpoint_bytes(model) + weights
    try:
        free = shutil.disk_usage(_nearest_existing(out)).free
    except OSError:
        return
    if free < need:
        raise disk_full_error(out, f"not enough space for a checkpoint and the model (~{human_size(need)})")
