"""Everything a training run sets up before its first step: the data, the model (new, --init, or a checkpoint's;
its frozen parts; `build_model`), the losses, the whitened head start (`start_model`), the optimizer and its
schedule.

Order matters for exactness: the model is built right after torch.manual_seed(seed), so a run's initial
weights depend on the seed alone (build_model keeps that order).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from mrl_dna import console
from mrl_dna.model.config import KmerTransform, ModelConfig, Pooling
from mrl_dna.errors import ConfigError
from mrl_dna.inputs.genomes import expand_inputs, read_groups
from mrl_dna.model import CaduceusMrlModel, MrlDnaModel, load_model, model_from_config, model_type
from mrl_dna.model.caduceus import CaduceusEmbedder
from mrl_dna.train.checkpoints import check_checkpoint
from mrl_dna.train.config import HeadInit, TrainConfig, lr_factor
from mrl_dna.train.losses import MatryoshkaLoss
from mrl_dna.train.sampler import PairData, SamplerConfig, load_pairs
from mrl_dna.train.sources import Source, load_genomes, load_labelled
from mrl_dna.train.whiten import WhitenConfig, whiten_head


# ------------------------------------------------------------------------------------------------- data
@dataclass
class TrainData:
    train_paths: list[Path]
    val_paths: list[Path]
    sources: list[Source]  # what the sampler draws from (empty with --pairs alone)
    val_sources: list[Source]  # held-out genomes of the validation
    pairs: PairData | None  # --pairs


def load_data(*, genomes, val_genomes, groups, labels, pairs, warn: bool) -> TrainData:
    """Genome files (or labelled records) and held-out genomes -> Sources; `warn`: say what was decided."""
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
            if warn:
                console.warn(
                    f"one genome file given: treating its {len(sources[0].seqs)} records as separate genomes "
                    "(give several files for one genome per file)"
                )
            sources = [Source(f"{sources[0].name}#{i}", i, [s]) for i, s in enumerate(sources[0].seqs)]
    pair_data = load_pairs(pairs) if pairs else None
    if not sources and pair_data is None:
        raise ConfigError("nothing to train on: give genome FASTA files, or --pairs TSV")
    val_sources = load_genomes(val_paths, group_map) if val_paths else []
    return TrainData(train_paths, val_paths, sources, val_sources, pair_data)


# ------------------------------------------------------------------------------------------------ model
@dataclass(frozen=True)
class HeadSpec:
    """A fresh pooling + Matryoshka head on an --init model (None = keep the model's / the class default).

    On an official Caduceus checkpoint: dims, pooling, head_hidden, window, name shape the new head. On an
    mrl-dna model with --head-init whiten: dims, kmer_transform and name; its encoder and pooling are kept
    and the head becomes one linear layer."""

    dims: tuple[int, ...] | None = None
    pooling: Pooling | None = None
    head_hidden: int | None = None
    window: int | None = None
    kmer_transform: KmerTransform | None = None
    name: str | None = None


def build_model(checkpoint: Path | None, *, model_config: ModelConfig | None, init: str | Path | None,
                init_head: HeadSpec | None, tc: TrainConfig, sc: SamplerConfig | None) -> tuple[torch.nn.Module, dict | None]:
    """The model a run trains, on the CPU, and the checkpoint's dict (None for a new run) that `restore` then
    reads: a checkpoint's model (--resume), the --init model (`init_model`), or a new one (`head_from_kmer_model`
    with --head-from); then what stays frozen (--freeze-backbone; --freeze-kmer-head and --encoder-dims-from: `restrict_head`). Built right after
    torch.manual_seed(seed), so a new model's initial weights depend on the seed alone."""
    torch.manual_seed(tc.seed)
    state = None
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        check_checkpoint(state, checkpoint, tc, sc)
        model = model_from_config(state["model_config"])
        model.load_state_dict(state["model"])
    elif init is not None:
        model = init_model(Path(init), head=init_head)
    else:
        model = MrlDnaModel(model_config or ModelConfig())
        if tc.head_from is not None:
            head_from_kmer_model(model, tc.head_from)
    if tc.freeze_backbone:
        for p in model.backbone_module.parameters():
            p.requires_grad_(False)
    restrict_head(model, tc, new_run=checkpoint is None)
    return model, state


def start_model(model, sources: list[Source], tc: TrainConfig, device: torch.device, *, new_run: bool, say: bool) -> None:
    """The model on `device`, in training mode; a new run with --head-init whiten starts its head whitened."""
    model.to(device)
    if new_run and tc.head_init == HeadInit.whiten:
        whiten_start(model, sources, tc, device, say=say)
    model.train()


def init_model(path: Path, head: HeadSpec | None = None):
    """--init: start from an existing model directory. mrl-dna (or caduceus-mrl) models bring their config
    and weights; an official Caduceus checkpoint becomes the backbone of a CaduceusMrlModel whose pooling
    and Matryoshka head start fresh (`head`)."""
    if model_type(path) == CaduceusEmbedder.model_type:
        head = head or HeadSpec()
        model = CaduceusMrlModel.from_caduceus(path, dims=head.dims, pooling=head.pooling, head_hidden=head.head_hidden,
                                               name=head.name)
        if head.window is not None:
            model.config = dataclasses.replace(model.config, window=head.window, window_stride=head.window)
        return model
    model = load_model(path)
    if head is not None and isinstance(model, MrlDnaModel):  # keep the encoder (and pooling), fresh linear head
        cfg = model.config
        enc = dataclasses.replace(cfg.encoder, kmer_transform=head.kmer_transform or cfg.encoder.kmer_transform)
        new = MrlDnaModel(dataclasses.replace(
            cfg, encoder=enc, head_hidden=0, matryoshka_dims=tuple(head.dims or cfg.matryoshka_dims),
            name=head.name or cfg.name))
        new.encoder.load_state_dict(model.encoder.state_dict())
        new.pooling.load_state_dict(model.pooling.state_dict())
        return new
    return model


def head_from_kmer_model(model, path: str | Path) -> None:
    """--head-from DIR: the linear head's k-mer columns and bias copied from DIR's head (a --kmer-only model
    of the same dims and k-mer features), the learned columns zeroed: the model then embeds exactly as DIR."""
    src = load_model(path)
    if not isinstance(src, MrlDnaModel) or src.config.encoder.learned or src.config.head_hidden:
        raise ConfigError(f"--head-from {path}: not a --kmer-only model with a linear head; train one with "
                          "`mrl-dna train ... --kmer-only --head-hidden 0`")
    if not isinstance(model, MrlDnaModel) or model.config.head_hidden:
        raise ConfigError("--head-from needs a new mrl-dna model with a linear head: add --head-hidden 0")
    enc, src_enc = model.config.encoder, src.config.encoder
    if (src.config.matryoshka_dims, src_enc.kmer_features, src_enc.kmer_transform) != (
            model.config.matryoshka_dims, enc.kmer_features, enc.kmer_transform):
        raise ConfigError(
            f"--head-from {path}: its dims {list(src.config.matryoshka_dims)}, k-mer features {src_enc.kmer_features} "
            f"({src_enc.kmer_transform.value}) differ from this model's {list(model.config.matryoshka_dims)}, "
            f"{enc.kmer_features} ({enc.kmer_transform.value}); give the same --dims/--kmer-features/--kmer-transform")
    p = enc.n_kmer_features
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.weight[:, enc.learned_dim:].copy_(src.head.weight[:, -p:])  # the k-mer block is last
        model.head.bias.copy_(src.head.bias)


def restrict_head(model, tc: TrainConfig, *, new_run: bool) -> None:
    """What of the linear head may train. --freeze-kmer-head: its k-mer columns and bias get no gradient (with no
    weight decay on the head, make_optimizer, AdamW then leaves them exactly as --head-from set them: a zero
    gradient keeps both Adam moments, hence the update, at 0). --encoder-dims-from K: the learned columns' rows
    < K start at 0 (a new run) and get no gradient, so the encoder writes only to output dims >= K. One hook
    zeroes those entries of every gradient; called on every start, resumes included (hooks are not saved)."""
    k = tc.encoder_dims_from
    if not (tc.freeze_kmer_head or k):
        return
    what = "--freeze-kmer-head" if tc.freeze_kmer_head else f"--encoder-dims-from {k}"
    if not isinstance(model, MrlDnaModel) or model.config.head_hidden or not model.config.encoder.learned:
        raise ConfigError(f"{what} needs a new mrl-dna model with an encoder and a linear head "
                          "(no --kmer-only, --head-hidden 0)")
    if k >= model.config.dim:
        raise ConfigError(f"--encoder-dims-from {k} leaves the encoder no output dim (the model has {model.config.dim}); "
                          f"give a value below {model.config.dim}, e.g. the largest --genome-dims")
    learned = model.config.encoder.learned_dim  # the learned block comes first, the k-mer block last (head_from_kmer_model)
    freeze = tc.freeze_kmer_head
    if new_run and k:
        with torch.no_grad():
            model.head.weight[:k, :learned] = 0

    def trainable_only(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        if freeze:
            grad[:, learned:] = 0
        if k:
            grad[:k, :learned] = 0
        return grad

    model.head.weight.register_hook(trainable_only)
    if freeze:
        model.head.bias.requires_grad_(False)


def whiten_start(model, sources: list[Source], tc: TrainConfig, device: torch.device, *, say: bool) -> None:
    """--head-init whiten: the linear head starts at the whitened k-mer profile. Every rank computes the same
    start (seeded, no broadcast)."""
    if not sources:
        raise ConfigError("--head-init whiten needs genome FASTA files: it measures the noise within each genome")
    mcfg = model.config
    wstats = whiten_head(model.eval(), sources, mcfg.window,
                         WhitenConfig(windows=tc.whiten_windows, mutants=tc.whiten_windows, shrinkage=tc.whiten_shrinkage,
                                      seed=tc.seed), device=device)
    if say:
        console.info(
            f"train: head starts whitened ({wstats['features']}, {wstats['width']} features, "
            f"{wstats['genomes']} genomes, {wstats['windows']:,} windows; first {mcfg.dim} axes hold "
            f"{wstats['variance_kept']:.1%} of the whitened variance)"
        )


# ----------------------------------------------------------------------------------------------- losses
@dataclass(frozen=True)
class Losses:
    genome: MatryoshkaLoss  # anchor vs another window of its genome (or the positive of an independent item)
    locus: MatryoshkaLoss | None  # anchor vs its own evolved copy, its genome's other windows negatives

    @property
    def dims(self) -> tuple[int, ...]:
        return self.genome.dims


def make_losses(tc: TrainConfig, model_dim: int, matryoshka_dims: tuple[int, ...], sc: SamplerConfig) -> Losses:
    """The Matryoshka dims of each loss: the model's (or --genome-dims), the full width only with --no-matryoshka."""
    dims = (model_dim,) if not tc.matryoshka else (tc.dims or matryoshka_dims)
    genome = MatryoshkaLoss(dims, tc.dim_weights if tc.matryoshka else None, model_dim=model_dim)
    locus_dims = (model_dim,) if tc.locus_dims and not tc.matryoshka else tc.locus_dims
    locus = MatryoshkaLoss(locus_dims, None, model_dim=model_dim) if locus_dims else None
    if locus is not None and sc.windows_per_genome < 2:
        raise ConfigError("--locus-dims needs genome blocks (other windows of a genome are the locus negatives): "
                          "add --windows-per-genome 4")
    return Losses(genome, locus)


def sampler_for(sc: SamplerConfig | None, window: int, tc: TrainConfig) -> SamplerConfig:
    """The sampler settings the run uses: the model's window; no CoSENT view when its weight is 0."""
    sc = sc or SamplerConfig(window=window)
    if sc.window != window:
        sc = dataclasses.replace(sc, window=window)
    if tc.cosent_weight == 0 and sc.mutant_view:
        sc = dataclasses.replace(sc, mutant_view=False)
    return sc


# -------------------------------------------------------------------------------------------- optimizer
def make_optimizer(model, tc: TrainConfig):
    """AdamW (weight decay on matrices only; not on the head under --freeze-kmer-head, whose frozen columns decay
    would shrink) and the warmup + cosine schedule of train/config.py."""
    exempt = {id(model.head.weight)} if tc.freeze_kmer_head else set()
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2 and id(p) not in exempt]
    no_decay = [p for p in model.parameters() if p.requires_grad and (p.dim() < 2 or id(p) in exempt)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=tc.lr, betas=tc.betas,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, tc))
    return opt, sched


__all__ = ["HeadInit", "HeadSpec", "Losses", "TrainData", "build_model", "head_from_kmer_model", "init_model",
           "load_data", "make_losses", "make_optimizer", "restrict_head", "sampler_for", "start_model", "whiten_start"]
