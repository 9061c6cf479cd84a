"""Every model config: typed, frozen, written to and read from a model directory's config.json.

- `ModelConfig` (model_type "mrl-dna") = an `EncoderConfig` + pooling + Matryoshka head + embed defaults;
- `CaduceusConfig` (model_type "caduceus"): the network fields of an official Caduceus config.json, validated;
- `CaduceusMrlConfig` (model_type "caduceus-mrl"): an official Caduceus config kept verbatim + the same pooling,
  head and embed defaults as ModelConfig.
What the configs share is written once: `_MatryoshkaHead` (ModelConfig, CaduceusMrlConfig: dims and pooling
checked, `dim`, to_dict/from_dict) and `_MambaShape` (EncoderConfig, CaduceusConfig: d_inner, dt_rank).

Each default says why it is what it is; derived values live in properties, so a config never holds two
numbers that can disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mrl_dna import dna
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
    # features did (bench/HISTORY.md, "The encoder candidates")
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


class _MambaShape:
    """The widths that follow from a Mamba block's d_model and expand (EncoderConfig, CaduceusConfig)."""

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def auto_dt_rank(self) -> int:
        """Mamba's dt_rank "auto": ceil(d_model / 16)."""
        return math.ceil(self.d_model / 16)


@dataclass(frozen=True)
class EncoderConfig(_MambaShape):
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
    def dt_rank(self) -> int:  # mamba1 only, Mamba's "auto"
        return self.auto_dt_rank


# Keys of a config.json that describe the file, not the model: the writer's version, and what transformers'
# save_pretrained adds (mrl_dna/hf/config.py), so that a directory saved through transformers loads here too.
_FILE_KEYS = ("mrl_dna_version", "architectures", "transformers_version", "torch_dtype", "dtype", "_name_or_path")


def _json_values(x):
    """dataclasses.asdict's output as config.json holds it: enums as their values, tuples as lists."""
    if isinstance(x, dict):
        return {k: _json_values(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_values(v) for v in x]
    return x.value if isinstance(x, enum.Enum) else x


class _MatryoshkaHead:
    """What the two trainable model configs share (ModelConfig, CaduceusMrlConfig): window vectors -> pooling +
    a Matryoshka head, and the embed defaults stored with the model. A mixin of the two frozen dataclasses, not
    a dataclass itself, so each keeps its own fields in its own order (config.json's order)."""

    model_type: ClassVar[str]  # config.json's "model_type" (the loader's table maps it to the model class)

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
        return {"model_type": self.model_type, **_json_values(dataclasses.asdict(self))}

    @classmethod
    def _fields(cls, d: dict[str, Any]) -> dict[str, Any]:
        """A config.json dict without model_type and the keys about the file (_FILE_KEYS); ModelError when it
        is another model_type (absent: this one)."""
        d = dict(d)
        got = d.pop("model_type", cls.model_type)
        if got != cls.model_type:
            raise ModelError(f"config.json holds model_type {got!r}, not {cls.model_type!r}")
        for key in _FILE_KEYS:  # about the file, not the model
            d.pop(key, None)
        return d


def _unknown_field(e: TypeError) -> ModelError:
    return ModelError(f"config.json has a field this version does not know: {e}; upgrade mrl-dna")


@dataclass(frozen=True)
class ModelConfig(_MatryoshkaHead):
    """Everything needed to rebuild a model: encoder, pooling, Matryoshka head, and embed defaults."""

    model_type: ClassVar[str] = "mrl-dna"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pooling: Pooling = Pooling.mean
    # Nested prefix sizes; the last is the output width D. Powers of two as in the Matryoshka paper.
    matryoshka_dims: tuple[int, ...] = (8, 16, 32, 64, 128)
    head_hidden: int = 256  # width of the projection MLP (0 = a single linear layer)
    # Embed defaults stored with the model, so a model is used as it was trained.
    window: int = WindowConfig.size
    window_stride: int = WindowConfig.stride
    name: str = "mrl-dna"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = cls._fields(d)
        try:
            enc = d.pop("encoder", {})
            enc = EncoderConfig(**{"kmer_transform": "centered", **enc})  # files from before the field: centered
            return cls(encoder=enc, **d)
        except TypeError as e:  # unknown or missing field
            raise _unknown_field(e) from e


# ------------------------------------------------------------------------------------- official Caduceus


# config.json fields that transformers' PretrainedConfig writes for every model; they do not change the network.
_HF_GENERIC_FIELDS = frozenset(
    """architectures auto_map transformers_version torch_dtype name_or_path return_dict output_hidden_states
    output_attentions torchscript use_bfloat16 tf_legacy_loss pruned_heads tie_word_embeddings
    chunk_size_feed_forward is_encoder_decoder is_decoder cross_attention_hidden_size add_cross_attention
    tie_encoder_decoder max_length min_length do_sample early_stopping num_beams num_beam_groups
    diversity_penalty temperature top_k top_p typical_p repetition_penalty length_penalty no_repeat_ngram_size
    encoder_no_repeat_ngram_size bad_words_ids num_return_sequences output_scores return_dict_in_generate
    forced_bos_token_id forced_eos_token_id remove_invalid_values exponential_decay_length_penalty
    suppress_tokens begin_suppress_tokens finetuning_task id2label label2id num_labels tokenizer_class prefix
    bos_token_id pad_token_id eos_token_id sep_token_id decoder_start_token_id task_specific_params
    problem_type use_return_dict""".split()
)
# Caduceus fields that only matter for initialisation or for code paths that give the same numbers here.
_INIT_ONLY_FIELDS = frozenset({"initializer_cfg", "residual_in_fp32"})
# Mamba(...) keyword arguments (mamba_ssm.modules.mamba_simple.Mamba) that only shape the initial values.
_SSM_INIT_ONLY = frozenset(
    {"dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor", "use_fast_path", "layer_idx", "device", "dtype"}
)
_SSM_FIELDS = frozenset({"d_state", "d_conv", "expand", "dt_rank", "conv_bias", "bias"}) | _SSM_INIT_ONLY

CADUCEUS_WINDOW = 1024  # the context length of the 1k checkpoints; a 131k model is still cheap to run per 1 kb


@dataclass(frozen=True)
class CaduceusConfig(_MambaShape):
    """The fields of a Caduceus config.json that define the network, validated; defaults as CaduceusConfig's."""

    model_type: ClassVar[str] = "caduceus"

    d_model: int
    n_layer: int
    vocab_size: int  # padded to a multiple of pad_vocab_size_multiple, as Caduceus.__init__ does
    complement_map: tuple[int, ...]  # token id -> complement id, length vocab_size (identity past the given map)
    rcps: bool = False  # PS (parameter-shared RC equivariance) when true, Ph otherwise
    fused_add_norm: bool = True  # the published checkpoints use the fused path (its RCPS half swap included)
    bidirectional_strategy: str = "add"  # how the forward and flipped Mamba outputs combine: add | ew_multiply
    d_state: int = 16  # Mamba default
    d_conv: int = 4  # Mamba default
    expand: int = 2  # Mamba default
    dt_rank: int = 0  # 0 = Mamba's "auto": ceil(d_model / 16)
    conv_bias: bool = True  # Mamba default
    bias: bool = False  # in_proj/out_proj bias, Mamba default
    norm_epsilon: float = 1e-5
    tie_word_embeddings: bool = True  # Ph: lm_head tied to the embedding (PS always ties, RCPSLMHead)
    window: int = CADUCEUS_WINDOW  # embed defaults, optional fields "window"/"window_stride" in config.json
    window_stride: int = CADUCEUS_WINDOW

    @property
    def rank(self) -> int:
        return self.dt_rank or self.auto_dt_rank

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> "CaduceusConfig":
        """Validate a parsed config.json; ModelError names the offending field and the fix."""
        if cfg.get("model_type") != cls.model_type:
            raise ModelError(f"config.json model_type={cfg.get('model_type')!r} is not 'caduceus'; not a Caduceus model")
        known = {
            "model_type", "d_model", "n_layer", "vocab_size", "ssm_cfg", "rms_norm", "fused_add_norm",
            "pad_vocab_size_multiple", "norm_epsilon", "bidirectional", "bidirectional_strategy",
            "bidirectional_weight_tie", "rcps", "complement_map", "window", "window_stride",
        }
        for key in cfg:
            if key not in known and key not in _HF_GENERIC_FIELDS and key not in _INIT_ONLY_FIELDS and not key.startswith("_"):
                raise ModelError(f"config.json field {key!r} is unknown to this Caduceus loader; remove it or upgrade mrl-dna")
        for key in ("d_model", "n_layer", "vocab_size"):
            if key not in cfg:
                raise ModelError(f"config.json lacks {key!r}; a Caduceus config must give d_model, n_layer and vocab_size")
        d_model = _int_field(cfg, "d_model", 1)
        n_layer = _int_field(cfg, "n_layer", 1)
        vocab = _int_field(cfg, "vocab_size", dna.N + 1)
        multiple = _int_field(cfg, "pad_vocab_size_multiple", 1, default=8)
        vocab = -(-vocab // multiple) * multiple

        # Supported structure: every published checkpoint is bidirectional, weight-tied, RMSNorm.
        for key, want in (("bidirectional", True), ("bidirectional_weight_tie", True), ("rms_norm", True)):
            if _bool_field(cfg, key, True) is not want:
                raise ModelError(
                    f"config.json {key}={cfg[key]!r} is not supported (published Caduceus checkpoints use {key}=true)"
                )
        strategy = cfg.get("bidirectional_strategy", "add")
        strategy = "add" if strategy is None else strategy  # BiMambaWrapper's default when None
        if strategy not in ("add", "ew_multiply"):
            raise ModelError(f"config.json bidirectional_strategy={strategy!r} is unknown; Caduceus knows 'add' and 'ew_multiply'")
        rcps = _bool_field(cfg, "rcps", False)

        ssm = cfg.get("ssm_cfg") or {}
        if not isinstance(ssm, dict):
            raise ModelError(f"config.json ssm_cfg={ssm!r} must be an object")
        for key in ssm:
            if key not in _SSM_FIELDS:
                raise ModelError(f"config.json ssm_cfg field {key!r} is unknown to this Caduceus loader (Mamba-1 only)")
        dt_rank = ssm.get("dt_rank", "auto")
        if dt_rank != "auto":
            dt_rank = _int_field(ssm, "dt_rank", 1, where="ssm_cfg.")

        comp = _complement_map(cfg.get("complement_map"), vocab, rcps)
        eps = cfg.get("norm_epsilon", 1e-5)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ModelError(f"config.json norm_epsilon={eps!r} must be a number in (0, 1)")
        window = _int_field(cfg, "window", 1, default=CADUCEUS_WINDOW)
        return cls(
            d_model=d_model,
            n_layer=n_layer,
            vocab_size=vocab,
            complement_map=comp,
            rcps=rcps,
            fused_add_norm=_bool_field(cfg, "fused_add_norm", True),
            bidirectional_strategy=strategy,
            d_state=_int_field(ssm, "d_state", 1, default=16, where="ssm_cfg."),
            d_conv=_int_field(ssm, "d_conv", 1, default=4, where="ssm_cfg."),
            expand=_int_field(ssm, "expand", 1, default=2, where="ssm_cfg."),
            dt_rank=0 if dt_rank == "auto" else dt_rank,
            conv_bias=_bool_field(ssm, "conv_bias", True, where="ssm_cfg."),
            bias=_bool_field(ssm, "bias", False, where="ssm_cfg."),
            norm_epsilon=float(eps),
            tie_word_embeddings=_bool_field(cfg, "tie_word_embeddings", True),
            window=window,
            window_stride=_int_field(cfg, "window_stride", 1, default=window),
        )


def _int_field(cfg: dict, key: str, minimum: int, *, default: int | None = None, where: str = "") -> int:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ModelError(f"config.json {where}{key}={value!r} must be an integer >= {minimum}")
    return value


def _bool_field(cfg: dict, key: str, default: bool, *, where: str = "") -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ModelError(f"config.json {where}{key}={value!r} must be true or false")
    return value


def _complement_map(raw: Any, vocab: int, rcps: bool) -> tuple[int, ...]:
    """config complement_map {"id": id} -> a tuple over the padded vocabulary (identity past the given ids).

    Caduceus.__init__ pads the map the same way. It must agree with mrl-dna's ids (A<->T, C<->G, N, PAD fixed),
    since windows are tokenised and reverse-complemented by mrl_dna.dna.
    """
    if raw is None:
        if rcps:
            raise ModelError("config.json has rcps=true but no complement_map; an RC-equivariant model needs it")
        return tuple(int(c) for c in dna.COMPLEMENT[:vocab])
    if not isinstance(raw, dict):
        raise ModelError(f"config.json complement_map must be an object {{id: complement id}}, got {type(raw).__name__}")
    comp = list(range(vocab))
    try:
        items = [(int(k), v) for k, v in raw.items()]
    except ValueError as e:
        raise ModelError(f"config.json complement_map has a key that is not a token id ({e})") from e
    if sorted(k for k, _ in items) != list(range(len(items))) or len(items) > vocab:
        raise ModelError(f"config.json complement_map keys must be the ids 0..n-1 with n <= vocab_size={vocab}")
    for k, v in items:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab:
            raise ModelError(f"config.json complement_map[{k}]={v!r} is not a token id below vocab_size={vocab}")
        comp[k] = v
    for tok in (dna.A, dna.C, dna.G, dna.T, dna.N, dna.PAD):
        if comp[tok] != int(dna.COMPLEMENT[tok]):
            raise ModelError(
                f"config.json complement_map maps id {tok} to {comp[tok]}, expected {int(dna.COMPLEMENT[tok])}; "
                "this checkpoint does not use Caduceus' character ids (A=7 C=8 G=9 T=10 N=11)"
            )
    return tuple(comp)


# ---------------------------------------------------------------------------------- Caduceus + mrl-dna head


@dataclass(frozen=True)
class CaduceusMrlConfig(_MatryoshkaHead):
    """`train --init CADUCEUS_DIR`: an official Caduceus backbone + ModelConfig's pooling and Matryoshka head."""

    model_type: ClassVar[str] = "caduceus-mrl"
    caduceus: dict[str, Any] = field(default_factory=dict)  # the official config.json, verbatim
    pooling: Pooling = ModelConfig.pooling
    matryoshka_dims: tuple[int, ...] = ModelConfig.matryoshka_dims
    head_hidden: int = ModelConfig.head_hidden
    window: int = CADUCEUS_WINDOW  # the 1k checkpoints' context; one token per base makes longer windows costly
    window_stride: int = CADUCEUS_WINDOW
    name: str = "mrl-dna-caduceus"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaduceusMrlConfig":
        try:
            return cls(**cls._fields(d))
        except TypeError as e:
            raise _unknown_field(e) from e
