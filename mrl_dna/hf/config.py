"""`MrlDnaConfig`: mrl-dna's ModelConfig as a transformers config (model_type "mrl-dna").

The fields are ModelConfig's, with its defaults (model/config.py holds them once). What transformers writes is
mrl-dna's own config.json plus `architectures` and `transformers_version`: every field in full (never
transformers' "only what differs from the defaults", because a missing `encoder.kmer_transform` means
"centered" to mrl-dna, for files from before the field) and none of transformers' generic keys, so
`mrl_dna.load_model` reads a directory saved by transformers and AutoModel one saved by mrl-dna.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig
from transformers import __version__ as transformers_version

from mrl_dna.model.config import ModelConfig
from mrl_dna.version import __version__

_DEFAULTS = ModelConfig().to_dict()
MODEL_TYPE = _DEFAULTS.pop("model_type")  # "mrl-dna"


class MrlDnaConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(self, **kwargs: Any) -> None:
        fields = {k: kwargs.pop(k, v) for k, v in _DEFAULTS.items()}
        self.model_config = ModelConfig.from_dict(fields)  # validates; ModelError names a bad field
        for k, v in self.model_config.to_dict().items():
            if k != "model_type":
                setattr(self, k, v)
        for key in ("mrl_dna_version", "transformers_version"):  # rewritten on save
            kwargs.pop(key, None)
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(cls, config: ModelConfig) -> MrlDnaConfig:
        return cls(**{k: v for k, v in config.to_dict().items() if k != "model_type"})

    def to_dict(self) -> dict[str, Any]:
        out = self.model_config.to_dict()  # model_type first, as mrl-dna writes it
        if self.architectures:
            out["architectures"] = list(self.architectures)
        return {**out, "transformers_version": transformers_version, "mrl_dna_version": __version__}

    def to_diff_dict(self) -> dict[str, Any]:  # every field, always (module docstring)
        return self.to_dict()
