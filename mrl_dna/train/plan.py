"""`mrl-dna train`'s options -> a typed plan: which model (new, --init, or a Caduceus backbone with a fresh head),
which losses, which sampler. The decisions live here, not in the CLI file, so they are testable without it.

Model options left at None mean "not given": the dataclass default for a new model, the --init model's own
value otherwise (giving one that --init brings is an error).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from mrl_dna.model.config import Backbone, EncoderConfig, KmerTransform, Mixer, ModelConfig, Patch, Pooling, PoolNorm
from mrl_dna.errors import ConfigError
from mrl_dna.model import model_type
from mrl_dna.model.caduceus import CaduceusEmbedder
from mrl_dna.train.config import HeadInit, TrainConfig
from mrl_dna.train.sampler import SamplerConfig
from mrl_dna.train.setup import HeadSpec


@dataclass(frozen=True)
class ModelOptions:
    """The model options of `mrl-dna train` as given (None = not given)."""

    d_model: int | None = None
    n_layer: int | None = None
    stride: int | None = None
    kmer_features: int | None = None
    kmer_transform: KmerTransform | None = None
    mixer: Mixer | None = None
    pooling: Pooling | None = None
    pool_features: int | None = None
    pool_norm: PoolNorm | None = None
    backbone: Backbone | None = None
    patch: Patch | None = None
    learned: bool | None = None  # False with --kmer-only
    head_hidden: int | None = None
    window: int | None = None

    def given(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


_ENCODER_FIELDS = {f.name for f in dataclasses.fields(EncoderConfig)}


@dataclass(frozen=True)
class TrainPlan:
    model_config: ModelConfig | None  # a new model; None with --init
    init: Path | None
    init_head: HeadSpec | None  # a fresh head on the --init model
    train_config: TrainConfig
    sampler_config: SamplerConfig


def plan_training(*, model: ModelOptions, dims: tuple[int, ...] | None, name: str, init: Path | None,
                  train_config: TrainConfig, sampler_config: SamplerConfig) -> TrainPlan:
    """Check the model options against --init and --head-init and decide the model, its head and the loss
    dims. `dims` is --dims: the new model's Matryoshka dims, or with --init those of the loss."""
    whiten = train_config.head_init == HeadInit.whiten
    if whiten and model.head_hidden not in (None, 0):
        raise ConfigError(f"--head-init whiten starts a linear head; drop --head-hidden {model.head_hidden} (or give 0)")
    if init is not None and train_config.head_from is not None:
        raise ConfigError("--head-from starts a new model's head; with --init the model brings its own: drop one")
    caduceus_init = init is not None and model_type(init) == CaduceusEmbedder.model_type
    # a Caduceus backbone gets a new pooling + head (these options shape it); an mrl-dna model brings its own
    # (and an mrl-dna model given a fresh whitened head may switch its k-mer scaling, which only the head sees)
    allowed = {"pooling", "head_hidden", "window"} if caduceus_init else {"head_hidden", "kmer_transform"} if whiten else set()
    given = model.given()
    clash = [k for k in given if k not in allowed]
    if init is not None and clash:
        raise ConfigError(f"--{clash[0].replace('_', '-')} conflicts with --init: the model brings its own; drop it")
    own_name = name if name != ModelConfig.name else None
    init_head, model_config = None, None
    if caduceus_init:
        init_head = HeadSpec(dims=dims or ModelConfig().matryoshka_dims, pooling=model.pooling,
                             head_hidden=0 if whiten else model.head_hidden, window=model.window, name=own_name)
    elif init is not None and whiten:
        init_head = HeadSpec(dims=dims, kmer_transform=model.kmer_transform, name=own_name)
    if init is None:
        encoder = EncoderConfig(**{k: v for k, v in given.items() if k in _ENCODER_FIELDS})
        fields = {k: v for k, v in given.items() if k in ("pooling", "head_hidden")}
        if whiten:
            fields["head_hidden"] = 0
        if model.window is not None:
            fields.update(window=model.window, window_stride=model.window)
        if dims is not None:
            fields["matryoshka_dims"] = dims
        model_config = ModelConfig(encoder=encoder, name=name, **fields)
    if train_config.dims is None and init is not None and not caduceus_init and dims:
        train_config = dataclasses.replace(train_config, dims=dims)  # --dims with --init: the loss's dims
    window = model.window or (model_config.window if model_config else ModelConfig.window)
    sampler_config = dataclasses.replace(sampler_config, window=window, mutant_view=train_config.cosent_weight > 0)
    return TrainPlan(model_config, Path(init) if init is not None else None, init_head, train_config, sampler_config)
