"""Typed, frozen settings of a training run: the optimisation and the loss (TrainConfig), the held-out
validation (ValidationConfig), and the learning-rate schedule they imply. The model's own settings live in
mrl_dna/model/config.py, the sampler's in train/sampler.py. A checkpoint stores TrainConfig as a dict of these
fields (train/checkpoints.py): adding or renaming a field breaks --resume of older checkpoints.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from mrl_dna.errors import ConfigError


class HeadInit(str, enum.Enum):
    """How a new head starts (`--head-init`)."""

    random = "random"  # PyTorch's default init
    whiten = "whiten"  # the whitened, PCA-ordered k-mer profile of the training genomes (train/whiten.py)


@dataclass(frozen=True)
class Recipe:
    """The file of options a run was given (`train --config FILE`): its path as given and its text, which the
    model card quotes, so a model says how it was made."""

    path: str
    text: str


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
    head_init: HeadInit = HeadInit.random
    # A --kmer-only model directory (same dims, k-mer features and scaling): the new model's linear head starts
    # with that model's head on its k-mer columns and 0 on the learned ones, so step 0 embeds exactly as that
    # model does and all the encoder adds is measured against it (scripts/train/train_default.sh: `model` and `encoder`
    # both start from stage 1).
    head_from: str | None = None
    # With head_from: the head's k-mer columns and bias stay at that model's values for the whole run; only the
    # encoder and the head's learned columns train, so every change of the loss is the encoder's (and it cannot
    # be "switched off" by the k-mer part learning around it). The learned columns then get no weight decay.
    freeze_kmer_head: bool = False
    # The first output dim the learned block's head columns write to (0 = all). With the genome loss on dims up
    # to 128 and the locus loss at 256 and 512 (v2.1's recipe), 128 keeps every genome prefix exactly the
    # --head-from model's (clustering and genome retrieval cannot lose) and puts the encoder's whole output into
    # the full-width dims where the k-mer map runs out (issue 21). Those head entries start at 0 and get no gradient.
    encoder_dims_from: int = 0
    # Embeddings of the last queue_size anchors and positives (earlier micro-batches) as extra negatives of the
    # locus loss (train/queue.py): a small batch then sees thousands of negatives, as v2.1's 768 windows did. 0 = off.
    queue_size: int = 0
    # With queue_size: the keys (positives and queued negatives of the locus loss) come from an exponential moving
    # average of the model with this momentum (MoCo's key encoder; train/queue.py says why it is needed). 0.99
    # follows the model with a time constant of ~100 steps, longer than a queue of a few dozen steps of rows is
    # old and short next to runs of thousands of steps (MoCo's 0.999 is for runs of hundreds of thousands).
    queue_momentum: float = 0.99
    # Weight of VICReg's variance term on the learned features of each micro-batch's windows (losses.variance_loss:
    # every feature must vary across windows by a standard deviation of 1, as layer-normed features can): without
    # it an encoder with a frozen k-mer head switched itself off by making its features the same for every window
    # (window-specific share 15% at init, 2% at step 100, 1% at step 200; issue 21). 0 = off.
    feature_variance: float = 0.0
    # On a CPU: the encoder's stem and mixer layers under bf16 autocast (model/encoder.trunk_autocast), the pooled
    # features, the loss and validation in fp32. ~1.4x faster per step on an AVX512-BF16 CPU (issue 21's profile).
    cpu_bf16: bool = False
    whiten_shrinkage: float = 0.3
    whiten_windows: int = 300  # clean windows per genome (+ as many evolved copies) that the whitening measures
    checkpoint_every: int = 500
    eval_every: int = 250
    # Genomes (held-out ones first, then training ones; each cut to CALIBRATION_MAX_BP) the identity calibration
    # (calibration.json, homology/build.py) is simulated on when the run ends; 0: none (`mrl-dna calibrate`
    # builds one later). 8 x 300 kb take a few minutes on one CPU thread, a small part of any real run.
    calibration_genomes: int = 8
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
        try:
            object.__setattr__(self, "head_init", HeadInit(self.head_init))
        except ValueError:
            raise ConfigError(f"--head-init {self.head_init!r} must be random or whiten") from None
        if self.head_from is not None and self.head_init != HeadInit.random:
            raise ConfigError("--head-from and --head-init whiten both set the head's start; give one of them")
        if self.head_from is not None:
            object.__setattr__(self, "head_from", str(self.head_from))
        if self.freeze_kmer_head and self.head_from is None:
            raise ConfigError("--freeze-kmer-head keeps the k-mer columns --head-from copies; give --head-from DIR too")
        if self.encoder_dims_from < 0 or self.queue_size < 0:
            raise ConfigError("--encoder-dims-from and --queue-size must be >= 0 (0 = off)")
        if self.feature_variance < 0:
            raise ConfigError(f"--feature-variance {self.feature_variance} must be >= 0 (0 = off)")
        if not 0 <= self.queue_momentum < 1:
            raise ConfigError(f"--queue-momentum {self.queue_momentum} must be in [0, 1), e.g. 0.99")
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




def lr_factor(step: int, tc: TrainConfig) -> float:
    """LR multiplier after `step` optimizer steps: linear warmup to 1, then cosine to min_lr_ratio."""
    if step < tc.warmup:
        return (step + 1) / (tc.warmup + 1)
    progress = min(1.0, (step - tc.warmup) / max(1, tc.steps - tc.warmup))
    return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
