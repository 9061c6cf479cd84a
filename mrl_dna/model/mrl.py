"""The mrl-dna model: encoder -> window vectors -> Matryoshka head -> pooling per record.

Axis glossary: b items, w windows per item, L bases per window, n windows (flattened), r records,
d window width (EncoderConfig.out_dim), D output width (largest Matryoshka dim), k a Matryoshka dim.
"""

from __future__ import annotations

from torch import Tensor, nn

from mrl_dna.model.config import ModelConfig
from mrl_dna.model.base import SavedWeights
from mrl_dna.model.encoder import Encoder
from mrl_dna.model.head import HeadThenPool

MODEL_TYPE = ModelConfig.model_type


class MrlDnaModel(SavedWeights, HeadThenPool, nn.Module):
    model_type = MODEL_TYPE
    config_class = ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config.encoder)
        self.add_head(config.encoder.out_dim)

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) Caduceus ids right-padded with PAD, (n,) valid lengths -> (n, d) RC-invariant window vectors."""
        return self.encoder(tokens, lengths).float()

    @property
    def backbone_module(self) -> nn.Module:
        """What --freeze-backbone freezes: the encoder (everything but pooling and the Matryoshka head)."""
        return self.encoder

    def _default_card(self) -> str:
        c = self.config
        return (
            f"# {c.name}\n\nAn mrl-dna model (Matryoshka DNA sequence embeddings).\n\n"
            f"- output dims: {list(c.matryoshka_dims)} (nested prefixes)\n- window {c.window} bp, stride {c.window_stride} bp\n"
            f"- encoder: {c.encoder}\n- pooling: {c.pooling.value}\n"
        )
