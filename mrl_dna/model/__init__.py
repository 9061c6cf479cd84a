"""Models: the mrl-dna encoder + Matryoshka head + pooling, official Caduceus checkpoints, and the loading of
model directories (`loader`, the one model_type -> class table); `config` holds every model config.

Import order inside this package (no cycles): config -> base -> scan, selective_scan, encoder, pooling, head ->
caduceus, mrl -> caduceus_mrl -> loader. Nothing here imports train/, cli/, search or evaluate.
"""

from mrl_dna.model.base import EmbeddingModel, ModelInfo, SavedWeights
from mrl_dna.model.caduceus_mrl import CaduceusMrlModel
from mrl_dna.model.loader import DEFAULT_MODEL_DIR, load_model, model_from_config, model_type
from mrl_dna.model.mrl import MrlDnaModel

__all__ = ["DEFAULT_MODEL_DIR", "CaduceusMrlModel", "EmbeddingModel", "ModelInfo", "MrlDnaModel", "SavedWeights",
           "load_model", "model_from_config", "model_type"]
