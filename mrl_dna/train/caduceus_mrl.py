"""`mrl-dna train --init CADUCEUS_DIR`: an official Caduceus backbone + mrl-dna pooling + Matryoshka head.

Axis letters: b items, w windows per item, L bases per window, n windows (flattened), r records,
d the backbone's width (d_model), D the output width (largest Matryoshka dim).

The backbone is `mrl_dna.model.caduceus.CaduceusEmbedder` (RC-invariant mean of the final hidden state
per window); on top sit the same `WindowPooling` and projection head as `MrlDnaModel`, so the four calls
of the pipeline (window_vectors, record_vectors, window_outputs, forward) behave the same way.
`--freeze-backbone` trains only pooling + head (`backbone_module` is what it freezes).

On disk: config.json with model_type "caduceus-mrl" (the official Caduceus config kept verbatim under
"caduceus", plus pooling, matryoshka_dims, head_hidden, window, window_stride, name) + model.safetensors
(this module's state dict) + README.md. `mrl_dna.model.load_model` must dispatch model_type
"caduceus-mrl" to `CaduceusMrlModel.from_pretrained` (a one-line change in mrl_dna/model/mrl.py, owned by
the lead) for `mrl-dna embed --model` to read such a directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from mrl_dna.config import Pooling
from mrl_dna.errors import ConfigError, ModelError
from mrl_dna.model.caduceus import CaduceusConfig, CaduceusEmbedder
from mrl_dna.model.mrl import ModelInfo, SavedWeights
from mrl_dna.model.pooling import WindowPooling

MODEL_TYPE = "caduceus-mrl"


@dataclass(frozen=True)
class CaduceusMrlConfig:
    caduceus: dict[str, Any] = field(default_factory=dict)  # the official config.json, verbatim
    pooling: Pooling = Pooling.mean
    matryoshka_dims: tuple[int, ...] = (8, 16, 32, 64, 128)  # as ModelConfig: powers of two, last = D
    head_hidden: int = 256  # as ModelConfig
    window: int = 1024  # the 1k checkpoints' context; one token per base makes longer windows costly
    window_stride: int = 1024
    name: str = "mrl-dna-caduceus"

    def __post_init__(self) -> None:
        dims = tuple(int(d) for d in self.matryoshka_dims)
        if not dims or dims[0] < 1 or list(dims) != sorted(set(dims)):
            raise ConfigError(f"matryoshka_dims {list(dims)} must be positive, strictly increasing; e.g. 8,16,32,64")
        object.__setattr__(self, "matryoshka_dims", dims)
        object.__setattr__(self, "pooling", Pooling(self.pooling))

    @property
    def dim(self) -> int:
        return self.matryoshka_dims[-1]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["pooling"] = self.pooling.value
        d["matryoshka_dims"] = list(self.matryoshka_dims)
        return {"model_type": MODEL_TYPE, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CaduceusMrlConfig":
        d = dict(d)
        if d.pop("model_type", None) != MODEL_TYPE:
            raise ModelError(f"config.json is not a {MODEL_TYPE} model")
        d.pop("mrl_dna_version", None)
        try:
            return cls(**d)
        except TypeError as e:
            raise ModelError(f"config.json has a field this version does not know: {e}; upgrade mrl-dna") from e


class CaduceusMrlModel(SavedWeights, nn.Module):
    def __init__(self, config: CaduceusMrlConfig) -> None:
        super().__init__()
        self.config = config
        self.embedder = CaduceusEmbedder(CaduceusConfig.from_dict(config.caduceus))
        d, D = self.embedder.cfg.d_model, config.dim
        self.pooling = WindowPooling(config.pooling, d)
        if config.head_hidden:
            self.head = nn.Sequential(nn.Linear(d, config.head_hidden), nn.GELU(), nn.Linear(config.head_hidden, D))
        else:
            self.head = nn.Linear(d, D)

    @classmethod
    def from_caduceus(cls, directory: str | Path, *, dims, pooling=Pooling.mean, head_hidden=256, name=None) -> "CaduceusMrlModel":
        """A new model whose backbone holds the official Caduceus weights of `directory` (head: random init)."""
        directory = Path(directory)
        raw = json.loads((directory / "config.json").read_text())
        official = CaduceusEmbedder.from_pretrained(directory)
        cad = official.cfg
        cfg = CaduceusMrlConfig(
            caduceus=raw, pooling=pooling, matryoshka_dims=tuple(dims), head_hidden=head_hidden,
            window=cad.window, window_stride=cad.window_stride, name=name or f"mrl-dna-{directory.resolve().name}",
        )
        model = cls(cfg)
        state = {k: v for k, v in official.state_dict().items() if not k.startswith("lm_head_weight")}
        missing, unexpected = model.embedder.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("lm_head_weight")]:
            raise ModelError(f"{directory}: Caduceus weights do not fit (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model

    @property
    def backbone_module(self) -> nn.Module:
        return self.embedder.backbone_module

    # ---- the four calls the pipeline uses (as MrlDnaModel) ----------------------------------------------
    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) ids right-padded with PAD, (n,) lengths -> (n, d) RC-invariant window vectors."""
        return self.embedder.window_vectors(tokens, lengths).float()

    def record_vectors(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """(n, d) -> (r, D), L2-normalised."""
        return F.normalize(self.head(self.pooling(win, lengths, segment, n_records)), dim=-1)

    def window_outputs(self, win: Tensor) -> Tensor:
        """(n, d) -> (n, D), each window through the head, L2-normalised."""
        return F.normalize(self.head(win.float()), dim=-1)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens (b, w, L), lengths (b, w) (0 = no window) -> (b, D), not normalised."""
        b, w, L = tokens.shape
        flat_len = lengths.reshape(b * w)
        keep = flat_len > 0
        segment = torch.arange(b, device=tokens.device).repeat_interleave(w)[keep]  # (n,)
        win = self.window_vectors(tokens.reshape(b * w, L)[keep], flat_len[keep])  # (n, d)
        return self.head(self.pooling(win, flat_len[keep], segment, b))

    # ---- identity and files -------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            name=c.name, kind=MODEL_TYPE, weights_hash=self.weights_hash(), dim=c.dim,
            matryoshka_dims=c.matryoshka_dims, window=c.window, window_stride=c.window_stride, pooling=c.pooling.value,
        )

    def _default_card(self) -> str:
        return f"# {self.config.name}\n\nCaduceus backbone + mrl-dna Matryoshka head.\n"

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "CaduceusMrlModel":
        directory = Path(directory)
        try:
            raw = json.loads((directory / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise ModelError(f"{directory}/config.json cannot be read ({e}); re-save the model") from e
        model = cls(CaduceusMrlConfig.from_dict(raw))
        try:
            state = load_file(str(directory / "model.safetensors"))
            model.load_state_dict(state)
        except Exception as e:
            raise ModelError(f"{directory}/model.safetensors does not fit its config.json ({e}); re-save the model") from e
        return model.eval()
