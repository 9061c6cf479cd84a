"""The mrl-dna model: encoder -> window vectors -> Matryoshka head -> pooling per record.

Axis glossary: b items, w windows per item, L bases per window, n windows (flattened), r records,
d window width (EncoderConfig.out_dim), D output width (largest Matryoshka dim), k a Matryoshka dim.
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor, nn

from mrl_dna.model.config import ModelConfig
from mrl_dna.errors import ModelError
from mrl_dna.model.base import WEIGHTS_FILE, ModelInfo, SavedWeights, read_config
from mrl_dna.model.encoder import Encoder
from mrl_dna.model.head import HeadThenPool, matryoshka_head
from mrl_dna.model.pooling import WindowPooling

MODEL_TYPE = ModelConfig.model_type


class MrlDnaModel(SavedWeights, HeadThenPool, nn.Module):
    model_type = MODEL_TYPE
    config_class = ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, D = config.encoder.out_dim, config.dim
        self.encoder = Encoder(config.encoder)
        self.pooling = WindowPooling(config.pooling, d)
        self.head = matryoshka_head(d, config.head_hidden, D)

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) Caduceus ids right-padded with PAD, (n,) valid lengths -> (n, d) RC-invariant window vectors."""
        return self.encoder(tokens, lengths).float()

    @property
    def backbone_module(self) -> nn.Module:
        """What --freeze-backbone freezes: the encoder (everything but pooling and the Matryoshka head)."""
        return self.encoder

    # ---- identity --------------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            name=c.name,
            kind=MODEL_TYPE,
            weights_hash=self.weights_hash(),
            dim=c.dim,
            matryoshka_dims=c.matryoshka_dims,
            window=c.window,
            window_stride=c.window_stride,
            pooling=c.pooling.value,
        )

    # ---- files -----------------------------------------------------------------------------------------
    def _default_card(self) -> str:
        c = self.config
        return (
            f"# {c.name}\n\nAn mrl-dna model (Matryoshka DNA sequence embeddings).\n\n"
            f"- output dims: {list(c.matryoshka_dims)} (nested prefixes)\n- window {c.window} bp, stride {c.window_stride} bp\n"
            f"- encoder: {c.encoder}\n- pooling: {c.pooling.value}\n"
        )

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "MrlDnaModel":
        directory = Path(directory)
        config = ModelConfig.from_dict(read_config(directory))
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"model directory {directory} has no model.safetensors; re-save or re-download the model")
        try:
            state = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
            raise ModelError(f"{weights} is corrupt or truncated ({e}); re-save or re-download the model") from e
        model = cls(config)
        missing, unexpected = set(model.state_dict()) - set(state), set(state) - set(model.state_dict())
        if missing or unexpected:
            raise ModelError(
                f"{weights} does not match its config.json (missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}); the two files come from different models"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ModelError(f"{weights} does not match its config.json (tensor shapes differ): re-save the model") from e
        return model.eval()
