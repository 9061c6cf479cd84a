"""mrl-dna train: train a Matryoshka DNA embedding model on genome FASTA files (no labels needed)."""

from __future__ import annotations

from pathlib import Path

import typer

from mrl_dna import console
from mrl_dna.cli.options import (config_file, config_option, device_option, existing, force_option, number_list,
                                 quiet_option, set_threads, threads_option)
from mrl_dna.model.config import Backbone, EncoderConfig, KmerTransform, Mixer, ModelConfig, Patch, Pooling, PoolNorm
from mrl_dna.errors import ConfigError
from mrl_dna.train.config import HeadInit, Recipe, TrainConfig, ValidationConfig
from mrl_dna.train.plan import ModelOptions, plan_training
from mrl_dna.train.sampler import SamplerConfig
from mrl_dna.train.trainer import train

_M = "Model (ignored with --init/--resume: the model brings its own)"
_T = "Training"
_D = "Data"
# defaults shown by --help come from the dataclasses that hold them
E, MC, TC, SC = EncoderConfig, ModelConfig, TrainConfig, SamplerConfig
_DIMS = ",".join(map(str, ModelConfig().matryoshka_dims))


def command(
    ctx: typer.Context,
    genomes: list[str] = typer.Argument(None, help="Genome FASTA files (.fa/.fna/.fasta, gzip ok), directories (searched recursively) or quoted globs. One genome per file."),
    output: Path = typer.Option(..., "-o", "--output", help="Model directory to write (config.json, model.safetensors, README.md, metrics.jsonl, checkpoints/)."),
    config: Path = config_option("A recipe: a TOML file of these options, keyed by their long names as written here without the dashes (batch-size = 768, kmer-only = true, dims = [8, 16, 32]); options on the command line override it. The model card quotes it. The shipped models' recipes are in recipes/."),
    val_genomes: list[str] = typer.Option(None, "--val-genomes", help="Held-out genomes (files, dirs or globs; repeatable): fragment->genome top-1 per dim every --eval-every steps.", rich_help_panel=_D),
    groups: Path = typer.Option(None, "--groups", callback=existing(what="--groups"), help="TSV file-or-record-id -> species/group (e.g. MANIFEST.tsv): same-group genomes are not negatives; validation reports species top-1.", rich_help_panel=_D),
    labels: Path = typer.Option(None, "--labels", callback=existing(what="--labels"), help="TSV record id -> group: train on your labelled FASTA records (same group = positives) instead of one class per file.", rich_help_panel=_D),
    pairs: Path = typer.Option(None, "--pairs", callback=existing(what="--pairs"), help="TSV seq_a, seq_b, score: scored pairs for CoSENT (alone, or added to genome training at --cosent-weight).", rich_help_panel=_D),
    d_model: int = typer.Option(None, "--d-model", min=1, help=f"Encoder width per strand [default {E.d_model}].", rich_help_panel=_M),
    n_layer: int = typer.Option(None, "--n-layer", min=1, help=f"BiMamba layers [default {E.n_layer}].", rich_help_panel=_M),
    token_bp: int = typer.Option(None, "--token-bp", min=1, help=f"bp per token of the patching stem (the encoder's stride; not embed's window --stride) [default {E.stride}].", rich_help_panel=_M),
    old_stride: int = typer.Option(None, "--stride", min=1, hidden=True, help="Old name of --token-bp."),
    kmer_features: int = typer.Option(None, "--kmer-features", min=0, max=6, help=f"k of the canonical k-mer frequencies appended to each window vector, 0 = off [default {E.kmer_features}].", rich_help_panel=_M),
    kmer_transform: KmerTransform = typer.Option(None, "--kmer-transform", help=f"Scaling of the k-mer frequencies f: sqrt = Hellinger sqrt(K f) - 1, centered = K f - 1 (models before 0.2) [default {E.kmer_transform.value}]. With --init: only together with --head-init whiten.", rich_help_panel=_M),
    mixer: Mixer = typer.Option(None, "--mixer", help=f"Sequence mixer [default {E.mixer.value}].", rich_help_panel=_M),
    pooling: Pooling = typer.Option(None, "--pooling", help=f"Window pooling [default {MC.pooling.value}].", rich_help_panel=_M),
    pool_features: int = typer.Option(None, "--pool-features", min=0, help=f"Learned features per token averaged into the window vector (a GELU projection of each token state; a learned bag of local features); 0 = average the token states themselves [default {E.pool_features}].", rich_help_panel=_M),
    pool_norm: PoolNorm = typer.Option(None, "--pool-norm", help=f"Normalise the averaged learned features: batch = batch statistics (running ones at inference), layer = each window over its own features (the same in training and inference; no state); without a norm their tiny window-to-window spread lets the head ignore them [default {E.pool_norm.value}].", rich_help_panel=_M),
    backbone: Backbone = typer.Option(None, "--backbone", help=f"What computes the learned features: bimamba = the stem + BiMamba encoder over the bases, kmer-mlp = one GELU layer of --pool-features units on the --kmer-features profile (the nonlinear control) [default {E.backbone.value}].", rich_help_panel=_M),
    patch: Patch = typer.Option(None, "--patch", help=f"How the stem makes one token per --token-bp bases: conv = a learned patch conv, mean = the mean of the bases' k-mer features then one linear map (robust to the phase of a fragment) [default {E.patch.value}].", rich_help_panel=_M),
    kmer_only: bool = typer.Option(False, "--kmer-only", help="No stem and no mixer: the window vector is the k-mer profile alone (the ablation a learned encoder is measured against).", rich_help_panel=_M),
    head_hidden: int = typer.Option(None, "--head-hidden", min=0, help=f"Projection MLP width, 0 = linear [default {MC.head_hidden}].", rich_help_panel=_M),
    window: int = typer.Option(None, "--window", min=16, help=f"Window bp (also the model's embed window) [default {MC.window}].", rich_help_panel=_M),
    dims: str = typer.Option(None, "--dims", help=f"Matryoshka dims, increasing; the last is the model width [default {_DIMS}]. With --init: the dims of the loss.", rich_help_panel=_M),
    name: str = typer.Option(MC.name, "--name", help="Model name written into config.json.", rich_help_panel=_M),
    init: Path = typer.Option(None, "--init", callback=existing("dir", what="--init"), help="Start from this model directory: an mrl-dna model, or an official Caduceus checkpoint (its backbone gets a new pooling + Matryoshka head shaped by --dims/--pooling/--head-hidden/--window).", rich_help_panel=_M),
    head_init: HeadInit = typer.Option(TC.head_init, "--head-init", help="random, or whiten: start a linear head (--head-hidden 0, the default then) at the whitened, PCA-ordered k-mer profile of the training genomes, then train. With --init: keeps that model's encoder, new head.", rich_help_panel=_T),
    head_from: Path = typer.Option(None, "--head-from", callback=existing("dir", what="--head-from"), help="A --kmer-only model (same --dims, --kmer-features): the new model's head starts as its head on the k-mer columns and 0 on the learned ones, so step 0 embeds exactly as that model and the encoder's gain is measured against it.", rich_help_panel=_T),
    freeze_kmer_head: bool = typer.Option(False, "--freeze-kmer-head", help="With --head-from: keep the head's k-mer columns and bias as copied for the whole run; only the encoder and the head's learned columns train, so every change of the loss is the encoder's.", rich_help_panel=_T),
    encoder_dims_from: int = typer.Option(TC.encoder_dims_from, "--encoder-dims-from", min=0, help="The learned features feed only output dims >= this (their head entries above it stay 0): e.g. 128 with --genome-dims up to 128 leaves every genome prefix the --head-from model's and puts the encoder into the locus dims. 0 = all dims.", rich_help_panel=_T),
    queue_size: int = typer.Option(TC.queue_size, "--queue-size", min=0, help="Keep the last N anchor and positive embeddings of earlier batches as extra negatives of the locus loss (MoCo-style queue, saved in checkpoints); 0 = off.", rich_help_panel=_T),
    queue_momentum: float = typer.Option(TC.queue_momentum, "--queue-momentum", min=0.0, max=0.9999, help="With --queue-size: momentum of the key encoder (an exponential moving average of the model) whose outputs are the locus loss's positives and queued negatives (MoCo).", rich_help_panel=_T),
    feature_variance: float = typer.Option(TC.feature_variance, "--feature-variance", min=0.0, help="Weight of a variance term (VICReg) on the learned features of each batch's windows: every feature must vary across windows, so the encoder cannot switch itself off by giving all windows the same features; 0 = off.", rich_help_panel=_T),
    cpu_bf16: bool = typer.Option(False, "--cpu-bf16", help="On a CPU, run the encoder's stem and mixer layers under bf16 autocast (faster on CPUs with native bf16); pooled features, loss and validation stay fp32, and the saved model embeds in fp32.", rich_help_panel=_T),
    whiten_shrinkage: float = typer.Option(TC.whiten_shrinkage, "--whiten-shrinkage", min=0.0, help="Ridge of --head-init whiten, relative to the mean noise eigenvalue.", rich_help_panel=_T),
    whiten_windows: int = typer.Option(TC.whiten_windows, "--whiten-windows", min=2, help="Windows per training genome that --head-init whiten measures (plus as many evolved copies).", rich_help_panel=_T),
    freeze_backbone: bool = typer.Option(False, "--freeze-backbone", help="Train pooling + head only (keep the encoder/Caduceus backbone as it is).", rich_help_panel=_T),
    no_matryoshka: bool = typer.Option(False, "--no-matryoshka", help="Train the full dim only (the baseline for Matryoshka comparisons).", rich_help_panel=_T),
    dim_weights: str = typer.Option(None, "--dim-weights", help="Loss weight per Matryoshka dim, comma-separated [default all 1].", rich_help_panel=_T),
    genome_dims: str = typer.Option(None, "--genome-dims", help="Dims of the genome loss (another window of the same genome is the positive) [default: all Matryoshka dims].", rich_help_panel=_T),
    locus_dims: str = typer.Option(None, "--locus-dims", help="Dims of the locus loss: a window must find its own evolved, shifted copy among all windows of the batch, those of its own genome included (needs --windows-per-genome >= 2) [default: none].", rich_help_panel=_T),
    locus_weight: float = typer.Option(TC.locus_weight, "--locus-weight", min=0.0, help="Weight of each locus dim's loss.", rich_help_panel=_T),
    windows_per_genome: int = typer.Option(SC.windows_per_genome, "--windows-per-genome", min=1, help="Genome blocks: draw --batch-size / this many genomes and this many windows of each; positives are the windows' own evolved, shifted copies (1 = independent items).", rich_help_panel=_T),
    max_shift: float = typer.Option(SC.max_shift_fraction, "--max-shift", min=0.0, max=1.0, help="Largest shift of a positive's window against its anchor's, as a fraction of the window.", rich_help_panel=_T),
    steps: int = typer.Option(TC.steps, "--steps", min=0, help="Optimizer steps (0: save the initial model, e.g. the --head-init whiten start).", rich_help_panel=_T),
    batch_size: int = typer.Option(SC.batch_size, "--batch-size", min=2, help="Items per micro-batch (in-batch negatives).", rich_help_panel=_T),
    grad_accum: int = typer.Option(TC.grad_accum, "--grad-accum", min=1, help="Micro-batches per optimizer step.", rich_help_panel=_T),
    lr: float = typer.Option(TC.lr, "--lr", min=0.0, help="Peak learning rate (AdamW).", rich_help_panel=_T),
    warmup: int = typer.Option(TC.warmup, "--warmup", min=0, help="Linear warmup steps, then cosine decay to lr/10.", rich_help_panel=_T),
    weight_decay: float = typer.Option(TC.weight_decay, "--weight-decay", min=0.0, help="AdamW weight decay (matrices only).", rich_help_panel=_T),
    clip: float = typer.Option(TC.clip, "--clip", min=0.0, help="Gradient-norm clip, 0 = off.", rich_help_panel=_T),
    cosent_weight: float = typer.Option(TC.cosent_weight, "--cosent-weight", min=0.0, help="Weight of CoSENT on evolved anchors (identity targets); 0 = InfoNCE only (faster).", rich_help_panel=_T),
    scale: float = typer.Option(TC.scale, "--scale", min=0.0, help="Similarity scale (1/temperature) of InfoNCE and CoSENT.", rich_help_panel=_T),
    max_mutation_rate: float = typer.Option(SC.max_mutation_rate, "--max-mutation-rate", min=0.0, max=0.75, help="Simulated evolution rate r ~ U[0, this].", rich_help_panel=_T),
    max_windows: int = typer.Option(SC.max_windows, "--max-windows", min=1, help="Longest run of consecutive windows per item.", rich_help_panel=_T),
    multi_window_prob: float = typer.Option(SC.multi_window_prob, "--multi-window-prob", min=0.0, max=1.0, help="Share of items that are runs of >1 window.", rich_help_panel=_T),
    seed: int = typer.Option(TC.seed, "--seed", help="Seed of init and data (rank r samples with seed + r).", rich_help_panel=_T),
    device: str = device_option("auto | cpu | cuda | cuda:N (auto = CUDA when visible, else CPU; bf16 autocast on CUDA)."),
    threads: int = threads_option("CPU threads (0 = torch's default: all cores; on a machine shared with other jobs give 1 or 2: oversubscribed threads run several times slower"),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="Train in fp32 on CUDA too.", rich_help_panel=_T),
    checkpoint_every: int = typer.Option(TC.checkpoint_every, "--checkpoint-every", min=1, help="Steps between checkpoints (and at the end).", rich_help_panel=_T),
    eval_every: int = typer.Option(TC.eval_every, "--eval-every", min=1, help="Steps between validations on --val-genomes.", rich_help_panel=_T),
    calibration_genomes: int = typer.Option(TC.calibration_genomes, "--calibration-genomes", min=0, help="When the run ends, build the model's identity calibration (calibration.json, for dist/cluster --level windows) by simulation on this many genomes (--val-genomes first, then training genomes; the first 300 kb of each). 0: none; `mrl-dna calibrate MODEL_DIR GENOMES` builds or rebuilds one on genomes of your choice.", rich_help_panel=_T),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in OUTPUT/checkpoints (same options), exactly.", rich_help_panel=_T),
    force: bool = force_option("the run OUTPUT holds (its checkpoints and metrics are deleted at the start, its model files replaced at the end)"),
    stop_at: int = typer.Option(None, "--stop-at", min=1, help="Stop after this step (checkpoint written); continue later with --resume.", rich_help_panel=_T),
    workers: int = typer.Option(None, "--workers", min=0, help="Sampler processes (0 = one thread) [default: 0 on <= 4 cores, else cores/2 up to 6].", rich_help_panel=_T),
    quiet: bool = quiet_option(),
) -> None:
    """Train a Matryoshka DNA embedding model on genomes; no labels needed.

    One genome per FASTA file (a single multi-record file: one genome per record). Positives are other
    windows of the same genome (evolved, reverse-complemented, shifted); other genomes are negatives.

    \b
    Example:
      mrl-dna train ../shared/data/genomes --groups ../shared/data/MANIFEST.tsv \\
          --val-genomes ../shared/data/small/Shew_baltica_OS185_first500k.fa.gz \\
          --val-genomes ../shared/data/small/Shew_baltica_OS223_first500k.fa.gz \\
          --steps 200 --eval-every 50 -o my_model
      mrl-dna embed genome.fa --model my_model -o genome.h5

    \b
    From a recipe file (recipes/v2.1/stage1.toml: the shipped model's first stage):
      mrl-dna train data/corpus/v2/train.fa --config recipes/v2.1/stage1.toml -o stage1

    \b
    Writes my_model/: config.json, model.safetensors, README.md (model card with the
    validation table), metrics.jsonl (one line per step), checkpoints/step-NNNNNNN.pt.
    Stopped runs continue exactly with the same command plus --resume.
    Several GPUs or CPU processes: torchrun --standalone --nproc_per_node 4 -m mrl_dna train ...
    """
    console.set_quiet(quiet)
    set_threads(threads, auto=False)  # a fixed count: training's bits follow the thread count
    if old_stride is not None:
        if token_bp is not None:
            raise ConfigError("--stride is the old name of --token-bp; give only --token-bp")
        console.warn("train --stride is now --token-bp (bp per token; embed's --stride is the window stride)")
        token_bp = old_stride
    tc = TrainConfig(
        steps=steps, lr=lr, warmup=warmup, weight_decay=weight_decay, clip=clip, grad_accum=grad_accum, seed=seed,
        dims=number_list(genome_dims, "--genome-dims", example="8,16,32,64"), freeze_backbone=freeze_backbone,
        dim_weights=number_list(dim_weights, "--dim-weights", float, "1,1,1,1,1"), matryoshka=not no_matryoshka,
        scale=scale, cosent_weight=cosent_weight, locus_dims=number_list(locus_dims, "--locus-dims", example="128,256") or (),
        locus_weight=locus_weight, head_init=head_init, head_from=head_from, freeze_kmer_head=freeze_kmer_head,
        encoder_dims_from=encoder_dims_from, queue_size=queue_size, queue_momentum=queue_momentum, feature_variance=feature_variance, cpu_bf16=cpu_bf16, whiten_shrinkage=whiten_shrinkage, whiten_windows=whiten_windows,
        checkpoint_every=checkpoint_every, eval_every=eval_every, calibration_genomes=calibration_genomes, bf16=not no_bf16,
    )
    sc = SamplerConfig(
        batch_size=batch_size, max_windows=max_windows, multi_window_prob=multi_window_prob,
        max_mutation_rate=max_mutation_rate, windows_per_genome=windows_per_genome, max_shift_fraction=max_shift,
    )
    model = ModelOptions(
        d_model=d_model, n_layer=n_layer, stride=token_bp, kmer_features=kmer_features, kmer_transform=kmer_transform,
        mixer=mixer, pooling=pooling, pool_features=pool_features, pool_norm=pool_norm, backbone=backbone, patch=patch,
        learned=False if kmer_only else None,
        head_hidden=head_hidden, window=window,
    )
    plan = plan_training(model=model, dims=number_list(dims, "--dims", example=_DIMS), name=name, init=init,
                         train_config=tc, sampler_config=sc)
    train(
        genomes=genomes or [], output=output, model_config=plan.model_config, init=plan.init, init_head=plan.init_head,
        sampler_config=plan.sampler_config, train_config=plan.train_config, groups=groups, labels=labels, pairs=pairs,
        val_genomes=val_genomes or [], validation=ValidationConfig(), device=device, resume=resume, overwrite=force,
        stop_at=stop_at, workers=workers, quiet=quiet, recipe=Recipe(*recipe) if (recipe := config_file(ctx)) else None,
    )
