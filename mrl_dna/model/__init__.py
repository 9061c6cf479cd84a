"""Models: the mrl-dna encoder + Matryoshka head + pooling, official Caduceus checkpoints, and the loading of
model directories (`loader`, the one model_type -> class table); `config` holds every model config.

Import order inside this package (no cycles): config -> base -> kmer_linear, scan, selective_scan, encoder,
pooling, head -> caduceus, mrl -> caduceus_mrl -> loader. Nothing here imports train/, cli/, search or evaluate.

The names below are imported on first use (PEP 562), so that `from mrl_dna.model import ModelInfo` or the
torch-free `kmer_linear` (embed's start-up with a k-mer-only model, issue 24) does not import torch.
"""

from __future__ import annotations

import importlib

_WHERE = {
    "EmbeddingModel": "base", "ModelInfo": "base", "SavedWeights": "base",
    "CaduceusMrlModel": "caduceus_mrl",
    "DEFAULT_MODEL_DIR": "loader", "load_model": "loader", "model_from_config": "loader", "model_type": "loader",
    "load_embedder": "loader",
    "KmerLinearModel": "kmer_linear",
    "MrlDnaModel": "mrl",
}

__all__ = ["DEFAULT_MODEL_DIR", "CaduceusMrlModel", "EmbeddingModel", "KmerLinearModel", "ModelInfo", "MrlDnaModel",
           "SavedWeights", "load_embedder", "load_model", "model_from_config", "model_type"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'mrl_dna.model' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mrl_dna.model.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
