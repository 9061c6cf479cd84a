"""Models: the mrl-dna encoder + pooling + Matryoshka head, and loading of model directories."""

from mrl_dna.model.mrl import DEFAULT_MODEL_DIR, ModelInfo, MrlDnaModel, load_model

__all__ = ["DEFAULT_MODEL_DIR", "ModelInfo", "MrlDnaModel", "load_model"]
