"""Training checkpoints: checkpoints/step-NNNNNNN.pt, a self-describing dict (nanoGPT style).

    format "mrl-dna-train-checkpoint", version 1, mrl_dna_version, step (optimizer steps done),
    model_config (config.json dict), model, optimizer, scheduler (state dicts), train_config,
    sampler_config (dicts of the dataclass fields), rng {torch, cuda}, world_size, train_genomes,
    val_genomes, saved (UTC time); with --queue-size also queue (train/queue.py's rows, filled, pos) and
    key_encoder (its state dict)

Only plain Python values, tensors and state dicts are pickled (enums are stored as their values), so a
checkpoint never depends on where a class lives. --resume checks that the settings match the checkpoint's
(those in RESUMABLE may change) and continues exactly: batches are a function of (seed, rank, step, micro).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from pathlib import Path

import torch

from mrl_dna import console
from mrl_dna.errors import ConfigError, ModelError
from mrl_dna.store.textout import replace_when_done
from mrl_dna.train.config import TrainConfig
from mrl_dna.train.sampler import SamplerConfig
from mrl_dna.version import __version__

CHECKPOINT_FORMAT = "mrl-dna-train-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(ckpt_dir: Path, step, model, opt, sched, tc, sc, dist, train_paths, val_paths, queue=None,
                    keys=None) -> Path:
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
        "train_config": plain(tc),
        "sampler_config": plain(sc),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(dist.device) if dist.device.type == "cuda" else None,
        },
        "world_size": dist.world,
        "train_genomes": [str(p) for p in train_paths],
        "val_genomes": [str(p) for p in val_paths],
        "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if queue is not None:
        state["queue"] = queue.state_dict()
    if keys is not None:
        state["key_encoder"] = keys.state_dict()
    path = ckpt_dir / f"step-{step:07d}.pt"
    before = latest_checkpoint(ckpt_dir)
    then = (f"then rerun the same command with --resume (it continues from {before.name})" if before else
            "or choose -o on another disk, then rerun the same command")
    # a crash never leaves a half-written checkpoint under the real name, a failed save nothing at all
    with replace_when_done([path], f"free some space, {then}") as (tmp,):
        # through our own file: torch.save to a path reports a full disk as "unexpected pos", without errno
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
    return path


# Bytes a checkpoint holds beyond its tensors (pickled configs, names, zip headers); measured ~25 KiB.
CHECKPOINT_OVERHEAD = 64 * 2**10


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """About the size of one checkpoint of `model`: its state dict plus AdamW's two moments of every
    trainable parameter (fp32), plus CHECKPOINT_OVERHEAD (within ~10% on the tiny and default models)."""
    state = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    moments = sum(2 * 4 * p.numel() for p in model.parameters() if p.requires_grad)
    return state + moments + CHECKPOINT_OVERHEAD


def export_checkpoint(path: Path, out: Path) -> int:
    """A checkpoint's model as a model directory (config.json, model.safetensors, README.md naming the
    checkpoint), to benchmark or ship a run before it ends; returns the checkpoint's step."""
    from mrl_dna.model.loader import model_from_config

    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an mrl-dna training checkpoint")
    model = model_from_config(state["model_config"])
    model.load_state_dict(state["model"])
    card = (f"# {model.config.name}\n\nStep {state['step']} of a training run, exported from its checkpoint "
            f"`{path.name}` (saved {state.get('saved', '?')}); the run's own model card is written when it ends.\n")
    model.eval().save_pretrained(out, model_card=card)
    return int(state["step"])


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    found = sorted(ckpt_dir.glob("step-*.pt")) if ckpt_dir.is_dir() else []
    return found[-1] if found else None


# Settings that may change on --resume without breaking exactness of what was already trained.
RESUMABLE = {"steps", "checkpoint_every", "eval_every"}


def check_checkpoint(state: dict, path: Path, tc: TrainConfig, sc: SamplerConfig | None) -> None:
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not an mrl-dna training checkpoint; remove it or start a new -o")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise ModelError(f"{path} was written by a newer mrl-dna ({state.get('mrl_dna_version')}); upgrade mrl-dna")
    # a field the checkpoint lacks was added to the config after it was written: the run used its default
    saved = {**plain(type(tc)()), **state["train_config"]}
    now = plain(tc)
    diff = [k for k in now if k not in RESUMABLE and _norm(now[k]) != _norm(saved.get(k))]
    if sc is not None:
        saved_sc, now_sc = {**plain(type(sc)()), **state["sampler_config"]}, plain(sc)
        diff += [k for k in now_sc if k not in ("window", "mutant_view") and now_sc[k] != saved_sc.get(k)]
    if diff:
        k = diff[0]
        raise ConfigError(
            f"--resume: {k} differs from the checkpoint ({now.get(k, sc and plain(sc).get(k))!r} vs "
            f"{saved.get(k, state['sampler_config'].get(k))!r}); resume with the options of the original run, or start a new -o"
        )
    if saved["steps"] != tc.steps:
        console.warn(f"--steps {tc.steps} differs from the checkpoint's {saved['steps']}: the LR schedule changes from here on")


def _norm(v):
    return list(v) if isinstance(v, (tuple, list)) else v


def plain(config) -> dict:
    """A config dataclass as a dict of plain values (enums as their values), as checkpoints store it."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in dataclasses.asdict(config).items()}


def restore(state: dict, opt, sched, device: torch.device, world: int, queue=None, keys=None) -> int:
    """Optimizer, schedule, RNG, negative queue and key encoder of a checkpoint (the model's weights are loaded
    by the caller); returns the step to continue from."""
    opt.load_state_dict(state["optimizer"])
    if queue is not None and state.get("queue") is not None:
        queue.load_state_dict(state["queue"])
    if keys is not None and state.get("key_encoder") is not None:
        keys.load_state_dict(state["key_encoder"])
    sched.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"].get("cuda") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if state.get("world_size", 1) != world:
        console.warn(f"resuming a {state.get('world_size', 1)}-process run on {world}; batches differ from the original run")
    return int(state["step"])
