"""The training loop: Matryoshka InfoNCE (+ CoSENT) on genome windows, read top to bottom.

Axis letters: b items per micro-batch, v views (anchor, positive[, mutant]), w windows per item, l bases per
window, D model width, k a Matryoshka dim.

One step = `grad_accum` micro-batches -> clip -> AdamW -> LR schedule (linear warmup, cosine decay to
min_lr_ratio * lr). Micro-batch (step, micro) of rank r is drawn by the sampler from (seed + r, step, micro),
so the data never depends on the history and a resumed run is the uninterrupted run, bitwise on CPU.

Under `torchrun` (WORLD_SIZE > 1) every rank samples its own batches (seed + rank), gradients are averaged
by DDP (gloo on CPU, nccl on CUDA), in-batch negatives stay per rank, and rank 0 alone writes metrics,
checkpoints, validation and the final model.

Files in the output directory:
    config.json, model.safetensors, README.md   the final model (what `load_model` reads) + its model card
    metrics.jsonl                               one JSON object per step; {"step", "val": ...} per evaluation
    checkpoints/step-NNNNNNN.pt                 self-describing dict: model, optimizer, scheduler, step, RNG
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrl_dna import __version__, console, distributed, dna
from mrl_dna.config import ModelConfig
from mrl_dna.errors import ConfigError, ModelError
from mrl_dna.evolve import mutate
from mrl_dna.genomes import expand_inputs, read_groups
from mrl_dna.model import CaduceusMrlModel, MrlDnaModel, load_model, model_from_config, model_type
from mrl_dna.model.caduceus import CaduceusEmbedder
from mrl_dna.train.losses import MatryoshkaLoss, cosent_loss, infonce_loss, truncate_normalize
from mrl_dna.train.sampler import GenomeSampler, SamplerConfig, load_pairs, pack
from mrl_dna.train.sources import Source, load_genomes, load_labelled
from mrl_dna.train.whiten import WhitenConfig, whiten_head

CHECKPOINT_FORMAT = "mrl-dna-train-checkpoint"
CHECKPOINT_VERSION = 1
_LOG_EVERY = 50  # steps between progress lines when stderr is not a terminal


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and loss settings (the model's own settings live in ModelConfig)."""

    steps: int = 2000  # optimizer steps
    lr: float = 1e-3  # peak AdamW LR: small models (< 1M params) train well at 1e-3 (nanoGPT's small-model range)
    min_lr_ratio: float = 0.1  # cosine decays to lr/10, as nanoGPT (min_lr = lr/10), not to 0
    warmup: int = 100  # linear warmup steps: avoids early AdamW steps on noisy second moments
    weight_decay: float = 0.01  # AdamW default; applied to matrices only (not biases, norms, 1-d params)
    betas: tuple[float, float] = (0.9, 0.99)  # beta2 0.99 as nanoGPT for small batches
    clip: float = 1.0  # global grad-norm clip; 0 = off
    grad_accum: int = 1  # micro-batches per step (each of SamplerConfig.batch_size items)
    seed: int = 0
    # Matryoshka dims of the loss: None = the model's matryoshka_dims; matryoshka=False trains the full
    # dim only (the baseline every Matryoshka claim is compared with).
    dims: tuple[int, ...] | None = None
    dim_weights: tuple[float, ...] | None = None  # None = 1 per dim (sentence-transformers' default)
    matryoshka: bool = True
    # Dims of the locus loss (empty = off): anchor vs its own evolved copy, every other window of the batch a
    # negative, those of its own genome included, so these dims must tell loci of one genome apart. The genome
    # loss (`dims`) pairs an anchor with another window of its genome. Coarse to fine: small prefixes say which
    # genome, the full width which locus (DESIGN.md).
    locus_dims: tuple[int, ...] = ()
    locus_weight: float = 1.0  # weight of each locus dim's loss next to a genome dim's (both InfoNCE, same scale)
    scale: float = 20.0  # 1/temperature of InfoNCE and CoSENT (sentence-transformers' default 20 = 0.05)
    cosent_weight: float = 0.25  # CoSENT on (anchor, evolved anchor, identity); 0 skips the mutant view
    freeze_backbone: bool = False  # train pooling + head only (e.g. on a pretrained Caduceus backbone)
    # "random", or "whiten": before step 1 the (linear) head is set to the whitened, PCA-ordered k-mer profile
    # measured on the training genomes (mrl_dna/train/whiten.py); whiten_shrinkage is its ridge.
    head_init: str = "random"
    whiten_shrinkage: float = 0.3
    whiten_windows: int = 300  # clean windows per genome (+ as many evolved copies) that the whitening measures
    checkpoint_every: int = 500
    eval_every: int = 250
    bf16: bool = True  # autocast to bfloat16 on CUDA (ignored on CPU)

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ConfigError(f"--steps {self.steps} must be >= 0 (0 = save the initial model, e.g. after --head-init whiten)")
        for name in ("grad_accum", "checkpoint_every", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)} must be >= 1")
        if self.warmup < 0:
            raise ConfigError(f"--warmup {self.warmup} must be >= 0")
        if not self.lr > 0:
            raise ConfigError(f"--lr {self.lr} must be > 0; e.g. 1e-3")
        if self.head_init not in ("random", "whiten"):
            raise ConfigError(f"--head-init {self.head_init!r} must be random or whiten")
        if self.cosent_weight < 0 or self.weight_decay < 0 or self.clip < 0 or self.locus_weight < 0:
            raise ConfigError("--cosent-weight, --locus-weight, --weight-decay and --clip must be >= 0")
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "locus_dims", tuple(int(d) for d in self.locus_dims))
        if self.dims is not None:
            object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        if self.dim_weights is not None:
            object.__setattr__(self, "dim_weights", tuple(float(w) for w in self.dim_weights))


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out genomes: fragment -> genome top-1 retrieval per Matryoshka dim."""

    db_windows: int = 64  # windows per genome averaged into its vector (evenly spaced along the genome)
    queries: int = 16  # query fragments per genome (one window each, random places)
    mutation_rate: float = 0.05  # queries are evolved at this rate (and half reverse-complemented)
    # Locus top-1 (with --locus-dims): each query's clean source window, shifted by up to a quarter window and
    # evolved at this rate, must find that source among the source windows of all held-out genomes. 20% is
    # where alignment seeds start to fail (minimap2 finds ~1 in 3 such fragments).
    locus_rate: float = 0.2
    seed: int = 12345  # fixed: the same queries at every evaluation and in every run


@dataclass
class TrainSummary:
    output: Path
    steps: int
    wall_s: float
    final_loss: float
    validation: dict | None


# ------------------------------------------------------------------------------------------- the entry
def train(
    *,
    genomes: Sequence[str | Path],
    output: str | Path,
    model_config: ModelConfig | None = None,
    init: str | Path | None = None,
    init_head: dict | None = None,
    sampler_config: SamplerConfig | None = None,
    train_config: TrainConfig | None = None,
    groups: str | Path | None = None,
    labels: str | Path | None = None,
    pairs: str | Path | None = None,
    val_genomes: Sequence[str | Path] = (),
    validation: ValidationConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    stop_at: int | None = None,
    workers: int | None = None,
    quiet: bool = False,
) -> TrainSummary:
    """Train (or continue training) a model and write it to `output`. See the module docstring."""
    timer = console.Timer()
    tc = train_config or TrainConfig()
    vc = validation or ValidationConfig()
    out = Path(output)
    was_quiet = console.is_quiet()
    console.set_quiet(quiet or was_quiet)
    dist = distributed.init(device)
    try:
        return _train(
            genomes=genomes, out=out, model_config=model_config, init=init, init_head=init_head, sc=sampler_config, tc=tc,
            groups=groups, labels=labels, pairs=pairs, val_genomes=val_genomes, vc=vc, dist=dist,
            resume=resume, stop_at=stop_at, quiet=quiet, timer=timer,
            workers=default_workers(dist.world) if workers is None else workers,
        )
    finally:
        distributed.cleanup(dist)
        console.set_quiet(was_quiet)


def default_workers(world: int = 1) -> int:
    """Sampler processes per rank: none on a small machine (the 2-core CI box: a thread is enough for a
    CPU-bound model), else half of this rank's share of the cores, up to 6 -- the sampler is ~0.05-0.1 s
    of numpy per 64-item batch and must keep up with a GPU."""
    n = (os.cpu_count() or 1) // max(1, world)
    return 0 if n <= 4 else min(6, n // 2)


def _train(*, genomes, out, model_config, init, init_head, sc, tc, groups, labels, pairs, val_genomes, vc, dist, resume,
           stop_at, quiet, timer, workers) -> TrainSummary:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out} is a file, but a model is a directory (config.json, model.safetensors, "
                          "README.md, checkpoints/); choose a new name for -o")
    ckpt_dir = out / "checkpoints"
    ckpt = _latest_checkpoint(ckpt_dir) if resume else None
    if resume and ckpt is None:
        raise ConfigError(f"--resume: {ckpt_dir} holds no checkpoint; start without --resume")
    if not resume and (ckpt_dir.is_dir() and any(ckpt_dir.glob("step-*.pt")) or (out / "model.safetensors").exists()):
        raise ConfigError(f"output {out} already holds a training run; pass --resume to continue it or pick a new -o")

    # ---- data
    train_paths = expand_inputs(genomes) if genomes else []
    val_paths = expand_inputs(val_genomes) if val_genomes else []
    overlap = {p.resolve() for p in train_paths} & {p.resolve() for p in val_paths}
    if overlap:
        raise ConfigError(f"held-out genome {sorted(overlap)[0]} is also a training genome; drop it from one of the two")
    group_map = read_groups(groups) if groups else None
    if labels:
        sources = load_labelled(train_paths, read_groups(labels))
    else:
        sources = load_genomes(train_paths, group_map) if train_paths else []
        if len(sources) == 1 and len(sources[0].seqs) > 1 and not group_map:
            if dist.is_main:
                console.warn(
                    f"one genome file given: treating its {len(sources[0].seqs)} records as separate genomes "
                    "(give several files for one genome per file)"
                )
            sources = [Source(f"{sources[0].name}#{i}", i, [s]) for i, s in enumerate(sources[0].seqs)]
    pair_data = load_pairs(pairs) if pairs else None
    if not sources and pair_data is None:
        raise ConfigError("nothing to train on: give genome FASTA files, or --pairs TSV")
    val_sources = load_genomes(val_paths, group_map) if val_paths else []

    # ---- model
    torch.manual_seed(tc.seed)
    if ckpt is not None:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        _check_checkpoint(state, ckpt, tc, sc)
        model = model_from_config(state["model_config"])
        model.load_state_dict(state["model"])
    elif init is not None:
        model = _init_model(Path(init), head=init_head)
    else:
        model = MrlDnaModel(model_config or ModelConfig())
    mcfg = model.config
    if sc is None:
        sc = SamplerConfig(window=mcfg.window)
    if sc.window != mcfg.window:
        sc = dataclasses.replace(sc, window=mcfg.window)
    if tc.cosent_weight == 0 and sc.mutant_view:
        sc = dataclasses.replace(sc, mutant_view=False)
    dims = (mcfg.dim,) if not tc.matryoshka else (tc.dims or mcfg.matryoshka_dims)
    weights = tc.dim_weights if tc.matryoshka else None
    mloss = MatryoshkaLoss(dims, weights, model_dim=mcfg.dim)
    locus_dims = ((mcfg.dim,) if tc.locus_dims and not tc.matryoshka else tc.locus_dims)
    lloss = MatryoshkaLoss(locus_dims, None, model_dim=mcfg.dim) if locus_dims else None
    if lloss is not None and sc.windows_per_genome < 2:
        raise ConfigError("--locus-dims needs genome blocks (other windows of a genome are the locus negatives): "
                          "add --windows-per-genome 4")
    if tc.freeze_backbone:
        for p in model.backbone_module.parameters():
            p.requires_grad_(False)
    model.to(dist.device)
    if ckpt is None and tc.head_init == "whiten":  # every rank computes the same start (seeded, no broadcast)
        if not sources:
            raise ConfigError("--head-init whiten needs genome FASTA files: it measures the noise within each genome")
        wstats = whiten_head(model.eval(), sources, mcfg.window,
                             WhitenConfig(windows=tc.whiten_windows, mutants=tc.whiten_windows, shrinkage=tc.whiten_shrinkage, seed=tc.seed), device=dist.device)
        if dist.is_main:
            console.info(
                f"train: head starts whitened ({wstats['features']}, {wstats['width']} features, "
                f"{wstats['genomes']} genomes, {wstats['windows']:,} windows; first {mcfg.dim} axes hold "
                f"{wstats['variance_kept']:.1%} of the whitened variance)"
            )
    model.train()

    # ---- optimizer and schedule
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr, betas=tc.betas,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tc))
    start = 0
    if ckpt is not None:
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") is not None and dist.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], dist.device)
        if state.get("world_size", 1) != dist.world:
            console.warn(f"resuming a {state.get('world_size', 1)}-process run on {dist.world}; batches differ from the original run")
        del state
    ddp_model = dist.wrap(model)

    sampler = GenomeSampler(sources, sc, seed=tc.seed + dist.rank) if sources else None
    validator = Validator(val_sources, mcfg.window, vc, locus=lloss is not None) if val_sources and dist.is_main else None
    metrics = _Metrics(out / "metrics.jsonl", start, enabled=dist.is_main)
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt is None:
            console.info(
                f"train: {len(sources)} genome(s)/group(s), {sum(s.n_bases for s in sources) / 1e6:.1f} Mbp; "
                f"held out {len(val_sources)}; model {sum(p.numel() for p in model.parameters()):,} params; "
                f"dims {list(dims)}; device {dist.device}; world {dist.world}"
            )
        else:
            console.info(f"train: resuming {ckpt} at step {start}")

    use_bf16 = tc.bf16 and dist.device.type == "cuda"
    if 0 < tc.steps <= tc.warmup and dist.is_main and start == 0:
        console.warn(f"--warmup {tc.warmup} >= --steps {tc.steps}: the LR never reaches its peak; lower --warmup")
    last_stop = min(tc.steps, stop_at) if stop_at else tc.steps
    loss_val, last_val = float("nan"), None
    keys = ((s, m) for s in range(start, last_stop) for m in range(tc.grad_accum))
    prefetch = _Prefetcher((sampler, pair_data, sc, tc, dist.rank), keys, workers)
    if validator is not None and start == 0:  # the untrained model: the baseline every later row improves on
        v0 = validator.evaluate(model, dist.device, dims=mcfg.matryoshka_dims, bf16=use_bf16)
        metrics.write({"step": 0, "val": v0})
        last_val = v0  # what the model card shows if no step runs (--steps 0)
        console.info(f"step 0: {_val_line(v0)}")
    try:
        with console.progress("train", total=tc.steps, unit="steps") as bar:
            bar.advance(start)
            for step in range(start, last_stop):
                t0 = time.perf_counter()
                logs: dict[str, float] = {}
                n_bp = 0
                for micro in range(tc.grad_accum):
                    data = prefetch.next()
                    sync = micro == tc.grad_accum - 1
                    with dist.no_sync(ddp_model, not sync):
                        loss, parts, bp = _micro_step(ddp_model, data, mloss, lloss, tc, dist.device, use_bf16)
                        (loss / tc.grad_accum).backward()
                    n_bp += bp
                    for key, v in parts.items():
                        logs[key] = logs.get(key, 0.0) + v / tc.grad_accum
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip if tc.clip > 0 else float("inf"))
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                done = step + 1
                dt = time.perf_counter() - t0
                loss_val = logs["loss"]
                rec = {"step": done, **{k: round(v, 6) for k, v in logs.items()}, "lr": sched.get_last_lr()[0],
                       "grad_norm": round(float(grad_norm), 6), "step_s": round(dt, 4),
                       "bp_per_s": round(n_bp * dist.world / dt), "wall_s": round(timer.seconds, 2)}
                metrics.write(rec)
                bar_line = _progress_line(done, logs, dims, rec["lr"])
                bar.update(description=bar_line)
                bar.advance(1)
                if validator is not None and (done % tc.eval_every == 0 or done == tc.steps):
                    last_val = validator.evaluate(model, dist.device, dims=mcfg.matryoshka_dims, bf16=use_bf16)
                    metrics.write({"step": done, "val": last_val})
                    console.info(f"step {done}: {_val_line(last_val)}")
                if dist.is_main and (done % tc.checkpoint_every == 0 or done == last_stop):
                    _save_checkpoint(ckpt_dir, done, model, opt, sched, tc, sc, dist, train_paths, val_paths)
                if not sys.stderr.isatty() and (done % _LOG_EVERY == 0 or done == last_stop):
                    # a log file (nohup, batch job) gets no live bar: one line every _LOG_EVERY steps instead
                    console.info(f"step {done}/{tc.steps}: {bar_line}; {dt:.3f} s/step; {rec['bp_per_s']:,} bp/s")
    finally:
        prefetch.close()  # also on Ctrl-C: no sampler process is left behind

    finished = last_stop >= tc.steps
    if dist.is_main and finished:
        if last_val is None and validator is not None:
            last_val = validator.evaluate(model, dist.device, dims=mcfg.matryoshka_dims, bf16=use_bf16)
        card = model_card(
            model=model, sources=sources, val_sources=val_sources, tc=tc, sc=sc, dims=dims, dist=dist,
            wall_s=timer.seconds, validation=last_val, metrics_path=out / "metrics.jsonl", init=init,
        )
        model.cpu().eval().save_pretrained(out, model_card=card)
    dist.barrier()
    if dist.is_main:
        what = f"trained {last_stop} of {tc.steps} steps -> {out}" + ("" if finished else " (stopped; continue with --resume)")
        console.footer(what, timer)
    return TrainSummary(out, last_stop, timer.seconds, loss_val, last_val)


def lr_factor(step: int, tc: TrainConfig) -> float:
    """LR multiplier after `step` optimizer steps: linear warmup to 1, then cosine to min_lr_ratio."""
    if step < tc.warmup:
        return (step + 1) / (tc.warmup + 1)
    progress = min(1.0, (step - tc.warmup) / max(1, tc.steps - tc.warmup))
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------- one micro-step
class _Prefetcher:
    """Draws micro-batches ahead of the model, in order: `workers` processes (forked, so the genomes are
    shared, not copied), or one background thread when workers = 0. Batches are a function of
    (step, micro), so how many workers draw them never changes what is drawn."""

    def __init__(self, args: tuple, keys, workers: int) -> None:
        self.keys = iter(keys)
        if workers > 0:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_worker_init, initargs=args)
            self.fn, self.depth = _worker_fetch, 2 * workers
        else:
            self.pool = ThreadPoolExecutor(1)
            self.fn, self.depth = (lambda s, m: _fetch(*args, s, m)), 2
        self.queue: collections.deque = collections.deque()
        self._fill()

    def _fill(self) -> None:
        while len(self.queue) < self.depth:
            key = next(self.keys, None)
            if key is None:
                return
            self.queue.append(self.pool.submit(self.fn, *key))

    def next(self):
        data = self.queue.popleft().result()
        self._fill()
        return data

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_WORKER_ARGS: tuple = ()


def _worker_init(*args) -> None:
    global _WORKER_ARGS
    _WORKER_ARGS = args


def _worker_fetch(step: int, micro: int):
    return _fetch(*_WORKER_ARGS, step, micro)


def _fetch(sampler, pair_data, sc, tc, rank, step, micro):
    """CPU side of a micro-batch (runs in a worker thread, ahead of the GPU)."""
    batch = sampler.batch(step, micro) if sampler is not None else None
    pb = None
    if pair_data is not None:
        rng = np.random.default_rng([tc.seed, rank, step, micro, 1])
        pb = pair_data.batch(rng, sc.batch_size, sc.window, sc.max_windows)
    return batch, pb


def _micro_step(model, data, mloss: MatryoshkaLoss, lloss: MatryoshkaLoss | None, tc: TrainConfig, device, bf16: bool):
    """Loss of one micro-batch: one forward on all views concatenated (one DDP forward per backward).
    The forward runs under bf16 autocast on CUDA; the losses run in fp32 (scale-20 logits in bf16 lose
    the small differences InfoNCE ranks on)."""

    def forward(tokens, lengths):
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            return model(tokens, lengths).float()

    batch, pb = data
    parts: dict[str, float] = {}
    total = torch.zeros((), device=device)
    n_bp = 0
    if batch is not None:
        b = batch.batch_size
        tokens = torch.from_numpy(batch.tokens).to(device, torch.long, non_blocking=True)  # (v*b, w, l)
        lengths = torch.from_numpy(batch.lengths).to(device)  # (v*b, w)
        z = forward(tokens, lengths)  # (v*b, D)
        anchor, positive = z[:b], z[b : 2 * b]
        labels = torch.from_numpy(batch.labels).to(device)
        genome_pos = positive if batch.partner is None else positive[torch.from_numpy(batch.partner).to(device)]
        nce, per = mloss(infonce_loss, anchor, genome_pos, labels=labels, scale=tc.scale, symmetric=True)
        total = total + nce
        parts.update({f"infonce@{k}": v.detach() for k, v in per.items()})
        if lloss is not None:  # the anchor's own copy among all windows, its genome's other windows included
            loc, per = lloss(infonce_loss, anchor, positive, scale=tc.scale, symmetric=True)
            total = total + tc.locus_weight * loc
            parts.update({f"locus@{k}": v.detach() for k, v in per.items()})
        if batch.n_views == 3 and tc.cosent_weight > 0:
            mutant = z[2 * b :]
            scores = torch.from_numpy(batch.identity).to(device)
            cos, per = mloss(cosent_loss, anchor, mutant, scores=scores, scale=tc.scale)
            total = total + tc.cosent_weight * cos
            parts.update({f"cosent@{k}": v.detach() for k, v in per.items()})
        n_bp += batch.n_bases
    if pb is not None:
        tokens, lengths, scores = pb
        n = scores.size
        z = forward(torch.from_numpy(tokens).to(device, torch.long), torch.from_numpy(lengths).to(device))
        w = tc.cosent_weight if batch is not None else 1.0
        cos, per = mloss(cosent_loss, z[:n], z[n:], scores=torch.from_numpy(scores).to(device), scale=tc.scale)
        total = total + w * cos
        parts.update({f"pairs@{k}": v.detach() for k, v in per.items()})
        n_bp += int(lengths.sum())
    parts["loss"] = total.detach()
    keys = list(parts)
    values = torch.stack([parts[k].float() for k in keys]).cpu().tolist()  # one device sync per micro-batch
    return total, dict(zip(keys, values)), n_bp


def _progress_line(step: int, logs: dict[str, float], dims, lr: float) -> str:
    key = "infonce" if f"infonce@{dims[0]}" in logs else "pairs"
    per = " ".join(f"{k}:{logs[f'{key}@{k}']:.3f}" for k in dims if f"{key}@{k}" in logs)
    locus = " ".join(f"{name.split('@')[1]}:{v:.3f}" for name, v in logs.items() if name.startswith("locus@"))
    return f"loss {logs['loss']:.3f} | {key} {per}" + (f" | locus {locus}" if locus else "") + f" | lr {lr:.2e}"


def _val_line(val: dict) -> str:
    parts = []
    for name, per in val.items():
        if isinstance(per, dict):
            parts.append(f"{name} " + " ".join(f"{k}:{v:.3f}" for k, v in per.items()))
    return "; ".join(parts)


# ------------------------------------------------------------------------------------------ validation
class Validator:
    """Fragment -> genome top-1 retrieval on held-out genomes, per Matryoshka dim.

    Database: one vector per genome = mean of the L2-normalised k-prefixes of `db_windows` evenly spaced
    window vectors (each from model.forward on a one-window run), renormalised. Queries: `queries` random
    windows per genome, evolved at `mutation_rate`, half reverse-complemented. Reports genome top-1 and,
    when every held-out genome has a group, species (group) top-1.
    """

    def __init__(self, sources: Sequence[Source], window: int, cfg: ValidationConfig, locus: bool = False) -> None:
        rng = np.random.default_rng(cfg.seed)
        self.names = [s.name for s in sources]
        self.groups = [s.group for s in sources]
        self.db: list[list[np.ndarray]] = []  # per genome: windows
        self.queries: list[np.ndarray] = []
        self.query_genome: list[int] = []
        self.locus_db: list[np.ndarray] = []  # clean source windows of the locus queries (with --locus-dims)
        self.locus_queries: list[np.ndarray] = []
        for gi, src in enumerate(sources):
            seq = np.concatenate(src.seqs)
            n = seq.size
            starts = np.linspace(0, max(0, n - window), cfg.db_windows).astype(np.int64)
            self.db.append([seq[s : s + window] for s in np.unique(starts)])
            for _ in range(cfg.queries):
                s = int(rng.integers(0, max(1, n - window + 1)))
                q, _ = mutate(seq[s : s + window], cfg.mutation_rate, rng)
                self.queries.append(dna.revcomp(q) if rng.random() < 0.5 else q)
                self.query_genome.append(gi)
        lrng = np.random.default_rng([cfg.seed, 1])  # its own stream: the genome queries stay as they were
        for src in sources if locus else ():
            seq = np.concatenate(src.seqs)
            n = seq.size
            for _ in range(cfg.queries):
                s = int(lrng.integers(0, max(1, n - window + 1)))
                self.locus_db.append(seq[s : s + window])
                t = min(max(0, s + int(lrng.integers(-(window // 4), window // 4 + 1))), max(0, n - window))
                q, _ = mutate(seq[t : t + window], cfg.locus_rate, lrng)
                self.locus_queries.append(dna.revcomp(q) if lrng.random() < 0.5 else q)

    @torch.no_grad()
    def evaluate(self, model: MrlDnaModel, device, dims: Sequence[int], bf16: bool = False, batch: int = 64) -> dict:
        was_training = model.training
        model.eval()
        try:
            db_vecs = [self._embed(model, wins, device, bf16, batch) for wins in self.db]  # each (n_i, D)
            q = self._embed(model, self.queries, device, bf16, batch)  # (q, D)
            if self.locus_queries:
                ldb = self._embed(model, self.locus_db, device, bf16, batch)  # (m, D)
                lq = self._embed(model, self.locus_queries, device, bf16, batch)  # (m, D)
        finally:
            model.train(was_training)
        truth = torch.tensor(self.query_genome)
        res: dict = {"genome_top1": {}}
        species = all(self.groups) and len(set(self.groups)) > 1
        if species:
            res["species_top1"] = {}
            gid = {g: i for i, g in enumerate(dict.fromkeys(self.groups))}
            group_of = torch.tensor([gid[g] for g in self.groups])
        for k in dims:
            genome_vecs = torch.stack([F.normalize(truncate_normalize(v, k).mean(0), dim=-1) for v in db_vecs])  # (g, k)
            pred = (truncate_normalize(q, k) @ genome_vecs.T).argmax(1)  # (q,)
            res["genome_top1"][k] = round(float((pred == truth).float().mean()), 4)
            if species:
                res["species_top1"][k] = round(float((group_of[pred] == group_of[truth]).float().mean()), 4)
            if self.locus_queries:
                hit = (truncate_normalize(lq, k) @ truncate_normalize(ldb, k).T).argmax(1)  # (m,)
                res.setdefault("locus_top1", {})[k] = round(float((hit == torch.arange(len(hit))).float().mean()), 4)
        res["n_genomes"], res["n_queries"] = len(self.db), len(self.queries)
        return res

    @staticmethod
    def _embed(model, windows: Sequence[np.ndarray], device, bf16: bool, batch: int) -> torch.Tensor:
        outs = []
        for i in range(0, len(windows), batch):
            tokens, lengths = pack([[w] for w in windows[i : i + batch]])  # (b, 1, l), (b, 1)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                z = model(torch.from_numpy(tokens).to(device, torch.long), torch.from_numpy(lengths).to(device))
            outs.append(z.float().cpu())
        return torch.cat(outs)


# -------------------------------------------------------------------------------------------- checkpoints
def _save_checkpoint(ckpt_dir: Path, step, model, opt, sched, tc, sc, dist, train_paths, val_paths) -> Path:
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "mrl_dna_version": __version__,
        "step": step,  # optimizer steps done
        "model_config": model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "train_config": dataclasses.asdict(tc),
        "sampler_config": dataclasses.asdict(sc),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(dist.device) if dist.device.type == "cuda" else None,
        },
        "world_size": dist.world,
        "train_genomes": [str(p) for p in train_paths],
        "val_genomes": [str(p) for p in val_paths],
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = ckpt_dir / f"step-{step:07d}.pt"
    tmp = path.with_suffix(".pt.partial")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a crash never leaves a half-written checkpoint under the real name
    return path


def _latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step-*.pt")) if ckpt_dir.is_dir() else []
    return found[-1] if found else None


# Settings that may change on --resume without breaking exactness of what was already trained.
_RESUMABLE = {"steps", "checkpoint_every", "eval_every"}


def _check_checkpoint(state: dict, path: Path, tc: TrainConfig, sc: SamplerConfig | None) -> None:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an mrl-dna training checkpoint; remove it or start a new -o")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ModelError(f"{path} was written by a newer mrl-dna ({state.get('mrl_dna_version')}); upgrade mrl-dna")
    saved = state["train_config"]
    now = dataclasses.asdict(tc)
    diff = [k for k in now if k not in _RESUMABLE and _norm(now[k]) != _norm(saved.get(k))]
    if sc is not None:
        saved_sc, now_sc = state["sampler_config"], dataclasses.asdict(sc)
        diff += [k for k in now_sc if k not in ("window", "mutant_view") and now_sc[k] != saved_sc.get(k)]
    if diff:
        k = diff[0]
        raise ConfigError(
            f"--resume: {k} differs from the checkpoint ({now.get(k, sc and dataclasses.asdict(sc).get(k))!r} vs "
            f"{saved.get(k, state['sampler_config'].get(k))!r}); resume with the options of the original run, or start a new -o"
        )
    if saved["steps"] != tc.steps:
        console.warn(f"--steps {tc.steps} differs from the checkpoint's {saved['steps']}: the LR schedule changes from here on")


def _norm(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def _init_model(path: Path, head: dict | None = None):
    """--init: start from an existing model directory. mrl-dna (or caduceus-mrl) models bring their config
    and weights; an official Caduceus checkpoint becomes the backbone of a CaduceusMrlModel whose pooling
    and Matryoshka head (`head`: dims, pooling, head_hidden, window, name; None = defaults) start fresh."""
    kind = model_type(path)
    if kind == CaduceusEmbedder.model_type:
        head = {k: v for k, v in (head or {}).items() if v is not None}
        window = head.pop("window", None)
        model = CaduceusMrlModel.from_caduceus(path, **head)
        if window is not None:
            model.config = dataclasses.replace(model.config, window=window, window_stride=window)
        return model
    model = load_model(path)
    if head and isinstance(model, MrlDnaModel):  # --head-init whiten: keep the encoder (and pooling), fresh linear head
        cfg = model.config
        enc = dataclasses.replace(cfg.encoder, kmer_transform=head.get("kmer_transform") or cfg.encoder.kmer_transform)
        new = MrlDnaModel(dataclasses.replace(
            cfg, encoder=enc, head_hidden=0, matryoshka_dims=tuple(head.get("dims") or cfg.matryoshka_dims),
            name=head.get("name") or cfg.name))
        new.encoder.load_state_dict(model.encoder.state_dict())
        new.pooling.load_state_dict(model.pooling.state_dict())
        return new
    return model


# ---------------------------------------------------------------------------------------------- metrics
class _Metrics:
    """metrics.jsonl: one JSON object per line. On resume, lines past the resumed step are dropped so the
    file reads as one uninterrupted run."""

    def __init__(self, path: Path, start: int, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        if start == 0:
            if path.exists():
                path.unlink()
            return
        if path.exists():
            keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= start]
            path.write_text("".join(ln + "\n" for ln in keep))

    def write(self, rec: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(rec) + "\n")


# -------------------------------------------------------------------------------------------- model card
def _encoder_line(model) -> str:
    c = model.config
    if hasattr(c, "encoder"):
        e = c.encoder
        kmers = f" + the canonical {e.kmer_features}-mer profile ({e.n_kmer_features} values)" if e.kmer_features else ""
        if not e.learned:
            return f"- encoder: none (--kmer-only): the window vector is the canonical {e.kmer_features}-mer profile alone"
        pooled = f", {e.pool_features} GELU features per token averaged" if e.pool_features else ""
        return (f"- encoder: RC-equivariant BiMamba, d_model {e.d_model}, {e.n_layer} layer(s), mixer {e.mixer.value}, "
                f"stride {e.stride} bp per token{pooled}{kmers}")
    cad = c.caduceus
    return (f"- encoder: Caduceus backbone (d_model {cad.get('d_model')}, {cad.get('n_layer')} layers, "
            f"{'PS' if cad.get('rcps') else 'Ph'}), one token per base")


def model_card(*, model, sources, val_sources, tc, sc, dims, dist, wall_s, validation, metrics_path, init) -> str:
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    if dist.device.type == "cuda":
        hw = f"{dist.world} x {torch.cuda.get_device_name(dist.device)}"
    else:
        hw = f"{dist.world} x CPU process ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads)"
    lines = [
        f"# {c.name}",
        "",
        "An mrl-dna model: Matryoshka embeddings of long DNA (one vector per sequence; every prefix of "
        f"{list(c.matryoshka_dims)} dims is itself an embedding: `normalize(v[:k])`).",
        "",
        "## Model",
        _encoder_line(model) + f"; pooling {c.pooling.value}; {n_params:,} parameters"
        + ("; backbone frozen" if tc.freeze_backbone else ""),
        f"- window {c.window} bp, stride {c.window_stride} bp",
        "",
        "## Training",
        f"- command: `mrl-dna {' '.join(sys.argv[1:])}`",
        f"- mrl-dna {__version__}; torch {torch.__version__}; started from {init or 'random init'}"
        + ("; head started at the whitened k-mer profile of the training genomes (--head-init whiten, shrinkage "
           f"{tc.whiten_shrinkage})" if tc.head_init == "whiten" else ""),
        f"- data: {len(sources)} training genome(s)/group(s), {sum(s.n_bases for s in sources) / 1e6:.1f} Mbp: "
        + ", ".join(s.name for s in sources),
        f"- held out for validation: {', '.join(s.name for s in val_sources) or 'none'}",
        f"- loss: {'Matryoshka over dims ' + str(list(dims)) if tc.matryoshka else 'full dim only (no Matryoshka: baseline)'}; "
        f"symmetric InfoNCE (negatives of the same genome, or of the same --groups species, masked; scale {tc.scale}) + {tc.cosent_weight} x CoSENT on "
        f"evolved anchors (identity targets, mutation rate up to {sc.max_mutation_rate})"
        + (f"; locus InfoNCE at dims {list(tc.locus_dims)} (weight {tc.locus_weight}): a window vs its own evolved, shifted "
           f"copy, the {sc.windows_per_genome - 1} other windows of its genome in the batch among the negatives"
           if tc.locus_dims else ""),
        f"- {tc.steps} steps x {tc.grad_accum} x {sc.batch_size} items x {dist.world} process(es); AdamW lr {tc.lr}, "
        f"warmup {tc.warmup}, cosine to {tc.min_lr_ratio} x lr, weight decay {tc.weight_decay}, clip {tc.clip}, seed {tc.seed}",
        f"- hardware: {hw}; wall time {wall_s / 60:.1f} min",
        f"- per-step metrics: `{metrics_path.name}`",
    ]
    if validation:
        dims_v = list(validation["genome_top1"])
        lines += [
            "",
            f"## Validation (held-out genomes, {validation['n_queries']} fragments of {c.window} bp at 5% divergence, "
            f"half reverse-complemented -> {validation['n_genomes']} genome vectors)",
            "",
            "| metric | " + " | ".join(str(k) for k in dims_v) + " |",
            "| --- | " + " | ".join("---" for _ in dims_v) + " |",
        ]
        for name in ("genome_top1", "species_top1", "locus_top1"):
            if name in validation:
                lines.append(f"| {name} | " + " | ".join(f"{validation[name][k]:.3f}" for k in dims_v) + " |")
    return "\n".join(ln for ln in lines) + "\n"
