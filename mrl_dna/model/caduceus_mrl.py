"""`mrl-dna train --init CADUCEUS_DIR`: an official Caduceus backbone + mrl-dna pooling + Matryoshka head.

Axis letters: b items, w windows per item, L bases per window, n windows (flattened), r records,
d the backbone's width (d_model), D the output width (largest Matryoshka dim).

The backbone is `mrl_dna.model.caduceus.CaduceusEmbedder` (RC-invariant mean of the final hidden state
per window); on top sit the same `WindowPooling` and Matryoshka head as `MrlDnaModel`, in the same order
(`mrl_dna.model.head`: head then pool), so the calls of the pipeline (window_vectors, record_vectors,
window_outputs, forward) behave the same way. `--freeze-backbone` trains only pooling + head
(`backbone_module` is what it freezes).

Changed in issue 13: before it, this class pooled the window vectors and then ran the head. Saved models
load unchanged; window vectors and per-window outputs (--save-windows) are as before; record vectors and
the training forward now are the head's outputs pooled (with a linear head and mean pooling the two agree
to float rounding; with an MLP head they differ).

On disk: config.json with model_type "caduceus-mrl" (the official Caduceus config kept verbatim under
"caduceus", plus pooling, matryoshka_dims, head_hidden, window, window_stride, name) + model.safetensors
(this module's state dict) + README.md; `mrl_dna.model.loader` maps the model_type to this class.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from mrl_dna.model.config import CaduceusConfig, CaduceusMrlConfig, Pooling
from mrl_dna.errors import ModelError
from mrl_dna.model.base import SavedWeights, read_config
from mrl_dna.model.caduceus import CaduceusEmbedder
from mrl_dna.model.head import HeadThenPool

MODEL_TYPE = CaduceusMrlConfig.model_type


class CaduceusMrlModel(SavedWeights, HeadThenPool, nn.Module):
    model_type = MODEL_TYPE
    config_class = CaduceusMrlConfig

    def __init__(self, config: CaduceusMrlConfig) -> None:
        super().__init__()
        self.config = config
        self.embedder = CaduceusEmbedder(CaduceusConfig.from_dict(config.caduceus))
        self.add_head(self.embedder.cfg.d_model)

    @classmethod
    def from_caduceus(cls, directory: str | Path, *, dims, pooling: Pooling | None = None, head_hidden: int | None = None,
                      name: str | None = None) -> "CaduceusMrlModel":
        """A new model whose backbone holds the official Caduceus weights of `directory` (head: random init);
        pooling and head_hidden default to CaduceusMrlConfig's."""
        pooling = CaduceusMrlConfig.pooling if pooling is None else pooling
        head_hidden = CaduceusMrlConfig.head_hidden if head_hidden is None else head_hidden
        directory = Path(directory)
        raw = read_config(directory)
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

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) ids right-padded with PAD, (n,) lengths -> (n, d) RC-invariant window vectors."""
        return self.embedder.window_vectors(tokens, lengths).float()

    # ---- files -------------------------------------------------------------------------------------------
    def _default_card(self) -> str:
        return f"# {self.config.name}\n\nCaduceus backbone + mrl-dna Matryoshka head.\n"
