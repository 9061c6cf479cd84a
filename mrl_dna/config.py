"""Typed, frozen configuration of a model. Written to and read from a model directory's config.json.

Each default says why it is what it is; derived values live in properties, so a config never holds two
numbers that can disagree.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from mrl_dna.errors import ConfigError, ModelError
from mrl_dna.kmer import n_canonical
from mrl_dna.windows import WindowConfig


class Mixer(str, enum.Enum):
    """Sequence mixer inside each BiMamba layer."""

    ssd = "ssd"  # Mamba-2 style: scalar decay per head, chunked matmul scan (~7x faster on CPU than mamba1)
    mamba1 = "mamba1"  # Mamba-1 selective scan: per-channel diagonal decay (what Caduceus uses)


def check_matryoshka_dims(dims) -> tuple[int, ...]:
    """Nested Matryoshka prefix sizes as a tuple: non-empty, positive, strictly increasing (ConfigError)."""
    dims = tuple(int(d) for d in dims)
    if not dims:
        raise ConfigError("matryoshka_dims is empty; give at least one dim, e.g. 8,16,32,64")
    if list(dims) != sorted(set(dims)) or dims[0] < 1:
        raise ConfigError(f"matryoshka_dims {list(dims)} must be positive, strictly increasing; e.g. 8,16,32,64")
    return dims


class Pooling(str, enum.Enum):
    """How window vectors merge into one vector per record."""

    mean = "mean"  # length-weighted mean of the window vectors
    attention = "attention"  # learned attention over windows (plus a log-length prior)

class Patch(str, enum.Enum):
    """How the stem turns base-level k-mer features into one token per `stride` bases."""

    conv = "conv"  # a learned patch conv (kernel = stride): each base of a patch has its own weights (v1)
    # the mean of the patch's base-level features, then one linear map: a 1 bp shift or an indel changes a token
    # by 1/stride of its input instead of moving every base onto other weights, so the same locus read at another
    # phase (a fragment vs the stored windows) gives nearly the same tokens
    mean = "mean"


class PoolNorm(str, enum.Enum):
    """How the averaged learned features of a window are normalised before the head (EncoderConfig.pool_norm)."""

    none = "none"  # as they come (models before v2; config.json `false`)
    # batch statistics in training, running statistics at inference (config.json `true`): the running mean lags
    # features that move during training, and a window's vector depends on its batch-mates in training
    batch = "batch"
    # each window's features standardised over their own e values (LayerNorm without affine; the linear head
    # supplies the affine part): the same function in training and inference, no state, no batch coupling, and
    # a window's learned block always has norm sqrt(e), so it cannot fade below an epsilon as batch-normalised
    # features did (bench/RESULTS.md, "The encoder candidates")
    layer = "layer"


class Backbone(str, enum.Enum):
    """What computes the learned part of a window vector (EncoderConfig.backbone; with learned=True)."""

    bimamba = "bimamba"  # the Caduceus-style encoder: stem over the bases + BiMamba layers (every model before 0.2)
    # one GELU layer of pool_features units on the window's k-mer profile: the cheapest nonlinear function of
    # what the k-mer head already reads, the control a sequence encoder has to beat (issue 21)
    kmer_mlp = "kmer-mlp"


class KmerTransform(str, enum.Enum):
    """How k-mer frequencies f of K canonical k-mers are scaled (both give 0 for a uniform composition)."""

    sqrt = "sqrt"  # sqrt(K * f) - 1, the Hellinger embedding (new models)
    centered = "centered"  # K * f - 1 (models saved before kmer_transform existed)


@dataclass(frozen=True)
class EncoderConfig:
    """RC-equivariant (parameter-shared) BiMamba encoder over a strided k-mer stem."""

    # Stem: one-hot bases -> conv(kernel=stem_kernel, stride 1) -> GELU -> patch conv (kernel=stride, stride=stride).
    # A stride of 16 means one token per 16 bp: the mixer is the costly part and this is what makes
    # >= 250 kbp/s on two CPU cores possible (PERF_NOTES: one token per base tops out near 7 kbp/s).
    stride: int = 16
    patch: Patch = Patch.conv  # see Patch; conv for models saved before the field existed
    stem_kernel: int = 9  # covers 9-mers at single-base resolution before patching
    stem_channels: int = 64
    d_model: int = 64  # hidden width per strand
    n_layer: int = 2
    mixer: Mixer = Mixer.ssd
    d_state: int = 16  # SSM state size N (Mamba default)
    expand: int = 2  # d_inner = expand * d_model (Mamba default)
    headdim: int = 16  # ssd only: channels per head sharing one scalar decay
    d_conv: int = 4  # depthwise causal conv before the scan (Mamba default)
    norm_eps: float = 1e-5
    # Canonical k-mer composition of the window, appended to the learned window vector (0 = off). Genome
    # composition (tetranucleotide frequency) is the strongest known signal for telling genomes apart from
    # a 2 kb fragment; giving it to the head exactly, instead of hoping the stem relearns it from a few dozen
    # training species, is what lets the trained head beat a plain k-mer profile on unseen species.
    kmer_features: int = 4
    # How the frequencies f are scaled (K canonical k-mers; both give 0 for a uniform composition):
    #   "sqrt"     sqrt(K * f) - 1, the Hellinger embedding: the square root makes the sampling noise of a
    #              count about equally large for rare and common k-mers, so a linear head can whiten it.
    #   "centered" K * f - 1 (models saved before kmer_transform existed; their config.json lacks the field).
    kmer_transform: KmerTransform = KmerTransform.sqrt
    # What is averaged over a window's tokens (per strand, then the two strands are added):
    #   0  the final hidden states themselves (d_model values; models before v2);
    #   E  a GELU projection of each hidden state to E features. The mean of a nonlinear feature is a learned
    #      bag of local sequence features (like a k-mer profile, but of learned, mutation-tolerant words); the
    #      mean of the hidden states is only d_model numbers, which a linear head can merely rotate.
    pool_features: int = 0
    # Normalise the averaged learned features (PoolNorm; config.json files before 0.2 hold true = batch, false =
    # none). An average over a window's ~128 tokens barely moves from window to window (std ~1e-3 against ~0.15
    # for the k-mer block, measured), so without a norm the head ignores the learned part and the encoder gets
    # no gradient; `layer` is the one that is the same function in training and inference.
    pool_norm: PoolNorm = PoolNorm.none
    # What computes the learned part (Backbone): the stem + BiMamba encoder, or an MLP layer on the k-mer
    # profile (needs kmer_features and pool_features), the nonlinear control the encoder is measured against.
    backbone: Backbone = Backbone.bimamba
    # False: no stem and no mixer at all; the window vector is the k-mer profile alone. This is the ablation
    # every v2 claim is measured against (the same head and training on k-mer input only).
    learned: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.kmer_features <= 6:
            raise ConfigError(f"encoder kmer_features={self.kmer_features} must be 0 (off) or 1..6")
        if self.pool_features < 0:
            raise ConfigError(f"encoder pool_features={self.pool_features} must be >= 0 (0 = pool the hidden states)")
        if not self.learned and not self.kmer_features:
            raise ConfigError("an encoder with learned=False needs kmer_features (e.g. 4): it would output nothing")
        try:
            object.__setattr__(self, "kmer_transform", KmerTransform(self.kmer_transform))
        except ValueError:
            raise ConfigError(f"encoder kmer_transform={self.kmer_transform!r} must be one of "
                              f"{', '.join(t.value for t in KmerTransform)}") from None
        for name in ("stride", "stem_kernel", "stem_channels", "d_model", "n_layer", "d_state", "expand", "headdim", "d_conv"):
            if getattr(self, name) < 1:
                raise ConfigError(f"encoder {name}={getattr(self, name)} must be >= 1")
        if self.mixer == Mixer.ssd and self.d_inner % self.headdim:
            raise ConfigError(
                f"encoder d_inner={self.d_inner} is not a multiple of headdim={self.headdim}; pick headdim dividing it"
            )
        object.__setattr__(self, "mixer", Mixer(self.mixer))
        object.__setattr__(self, "patch", Patch(self.patch))
        norm = self.pool_norm
        if isinstance(norm, bool):  # config.json before PoolNorm: true = batch norm, false = none
            norm = PoolNorm.batch if norm else PoolNorm.none
        try:
            object.__setattr__(self, "pool_norm", PoolNorm(norm))
            object.__setattr__(self, "backbone", Backbone(self.backbone))
        except ValueError as e:
            raise ConfigError(f"encoder {e}; pool_norm is one of {', '.join(n.value for n in PoolNorm)}, backbone one "
                              f"of {', '.join(b.value for b in Backbone)}") from None
        if self.learned and self.backbone == Backbone.kmer_mlp and not (self.kmer_features and self.pool_features):
            raise ConfigError("the kmer-mlp backbone is a layer of --pool-features units on the --kmer-features profile: "
                              "give both (e.g. --kmer-features 6 --pool-features 1024)")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def n_heads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def n_kmer_features(self) -> int:
        """Number of canonical k-mers (136 for k=4); 0 when kmer_features is off."""
        return n_canonical(self.kmer_features) if self.kmer_features else 0

    @property
    def learned_dim(self) -> int:
        """Width of the learned part of a window vector: pooled features (or d_model); 0 without it."""
        return (self.pool_features or self.d_model) if self.learned else 0

    @property
    def out_dim(self) -> int:
        """Width of a window vector: learned features + canonical k-mer frequencies."""
        return self.learned_dim + self.n_kmer_features

    @property
    def dt_rank(self) -> int:  # mamba1 only, as Mamba's "auto": ceil(d_model / 16)
        return -(-self.d_model // 16)


# Keys of a config.json that describe the file, not the model: the writer's version, and what transformers'
# save_pretrained adds (mrl_dna/hf/config.py), so that a directory saved through transformers loads here too.
_FILE_KEYS = ("mrl_dna_version", "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: encoder, pooling, Matryoshka head, and embed defaults."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pooling: Pooling = Pooling.mean
    # Nested prefix sizes; the last is the output width D. Powers of two as in the Matryoshka paper.
    matryoshka_dims: tuple[int, ...] = (8, 16, 32, 64, 128)
    head_hidden: int = 256  # width of the projection MLP (0 = a single linear layer)
    # Embed defaults stored with the model, so a model is used as it was trained.
    window: int = WindowConfig.size
    window_stride: int = WindowConfig.stride
    name: str = "mrl-dna"

    def __post_init__(self) -> None:
        object.__setattr__(self, "matryoshka_dims", check_matryoshka_dims(self.matryoshka_dims))
        object.__setattr__(self, "pooling", Pooling(self.pooling))
        if self.window < 1 or self.window_stride < 1:
            raise ConfigError(f"window={self.window} and stride={self.window_stride} must be >= 1")

    @property
    def dim(self) -> int:
        """Output width D (the largest Matryoshka dim)."""
        return self.matryoshka_dims[-1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder"]["mixer"] = self.encoder.mixer.value
        d["encoder"]["kmer_transform"] = self.encoder.kmer_transform.value
        d["encoder"]["patch"] = self.encoder.patch.value
        d["encoder"]["pool_norm"] = self.encoder.pool_norm.value
        d["encoder"]["backbone"] = self.encoder.backbone.value
        d["pooling"] = self.pooling.value
        d["matryoshka_dims"] = list(self.matryoshka_dims)
        return {"model_type": "mrl-dna", **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        if d.pop("model_type", "mrl-dna") != "mrl-dna":
            raise ModelError("config.json is not an mrl-dna model (model_type differs)")
        for key in _FILE_KEYS:  # about the file, not the model
            d.pop(key, None)
        try:
            enc = d.pop("encoder", {})
            enc = EncoderConfig(**{"kmer_transform": "centered", **enc})  # files from before the field: centered
            return cls(encoder=enc, **d)
        except TypeError as e:  # unknown or missing field
            raise ModelError(f"config.json has a field this version does not know: {e}; upgrade mrl-dna") from e
