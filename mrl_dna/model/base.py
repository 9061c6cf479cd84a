"""What every model class shares: its identity (ModelInfo), its files on disk (SavedWeights, read_config),
and the calls the pipeline makes (EmbeddingModel).

A model directory follows the transformers layout (config.json + model.safetensors + README.md), so it
loads offline from a local path. Nothing here downloads anything; `mrl_dna.model.loader` picks the class
from config.json's model_type.

Axis letters (docs/INTERNALS.md has the project-wide glossary): n windows (flattened), L bases per window,
r records, b items, w windows per item, d window-vector width, D output width.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from mrl_dna.errors import ModelError
from mrl_dna.version import __version__

if TYPE_CHECKING:  # torch is imported where the weights are read or written: ModelInfo and read_config need none
    from torch import Tensor

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"


@dataclass(frozen=True)
class ModelInfo:
    """What an embedding file records about the model that made it (a reader never needs the model)."""

    name: str
    kind: str  # the config.json model_type: "mrl-dna", "caduceus" or "caduceus-mrl"
    weights_hash: str  # sha256 of the safetensors serialisation of the weights
    dim: int
    matryoshka_dims: tuple[int, ...]
    window: int
    window_stride: int
    pooling: str


@runtime_checkable
class EmbeddingModel(Protocol):
    """The calls every model class provides; embed, search, evaluate and train use nothing else."""

    info: ModelInfo

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) Caduceus ids right-padded with PAD, (n,) valid lengths -> (n, d) RC-invariant window vectors."""

    def record_vectors(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """(n, d) window vectors of r records (segment (n,) = record index) -> (r, D), L2-normalised."""

    def window_outputs(self, win: Tensor) -> Tensor:
        """(n, d) -> (n, D): each window on its own, L2-normalised (what --save-windows stores)."""

    def window_embeddings(self, win: Tensor) -> tuple[Tensor, Tensor | None]:
        """(n, d) -> ((n, D) embeddings before normalisation, (n,) pooling logits or None): the per-window
        half of record_vectors, which embed computes inside its fixed-shape batches."""

    def pool_embeddings(self, values: Tensor, lengths: Tensor, logits: Tensor | None) -> Tensor:
        """One record's (k, D) window embeddings, (k,) bp, logits -> (D,) L2-normalised: the per-record half."""

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Training: tokens (b, w, L), lengths (b, w) (0 = no window) -> (b, D), not normalised."""


def read_weights(directory: Path, load_file) -> tuple[Path, dict]:
    """(path, tensors) of a model directory's model.safetensors, read by `load_file` (safetensors.torch's, or
    safetensors.numpy's for the torch-free k-mer model); ModelError naming the fix when it is missing or damaged."""
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(f"model directory {directory} has no model.safetensors; re-save or re-download the model")
    try:
        return weights, load_file(str(weights))
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ModelError(f"{weights} is corrupt or truncated ({e}); re-save or re-download the model") from e


def read_config(directory: Path) -> dict:
    """config.json of a model directory as a dict; ModelError naming the problem and the fix."""
    if not directory.exists():
        raise ModelError(f"model directory {directory} does not exist; pass --model DIR of a saved model")
    if not directory.is_dir():
        raise ModelError(f"model path {directory} is not a directory; a model is a directory with config.json and model.safetensors")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise ModelError(f"model directory {directory} has no config.json; it is not a saved model")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON ({e}); re-save the model") from e
    if not isinstance(config, dict):
        raise ModelError(f"{path} holds a JSON {type(config).__name__}, not an object of model settings; re-save the model")
    return config


class SavedWeights:
    """Identity (info, weights hash) and the model-directory files (config.json + model.safetensors + README.md),
    shared by every trainable model class (mix in before nn.Module; the class has `model_type` and `config`, an
    instance of `config_class` with name, dim, matryoshka_dims, window, window_stride, pooling, to_dict())."""

    _hash: str | None = None
    model_type: str  # config.json's model_type (model/loader.py maps it to the class)
    config_class: type  # the config dataclass, with from_dict(dict) and to_dict()

    @classmethod
    def from_config(cls, config: dict):
        """A model with fresh weights from a config.json dict (a training checkpoint's model_config)."""
        return cls(cls.config_class.from_dict(config))

    @classmethod
    def from_pretrained(cls, directory: str | Path):
        """The model a directory holds, in eval mode; ModelError naming the problem and the fix when config.json
        (read_config's checks, then config_class.from_dict's) or model.safetensors (missing, damaged, or not the
        tensors of that config) does not hold one."""
        directory = Path(directory)
        config = cls.config_class.from_dict(read_config(directory))
        from safetensors.torch import load_file

        weights, state = read_weights(directory, load_file)
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

    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(name=c.name, kind=self.model_type, weights_hash=self.weights_hash(), dim=c.dim,
                         matryoshka_dims=c.matryoshka_dims, window=c.window, window_stride=c.window_stride,
                         pooling=c.pooling.value)

    def weights_hash(self) -> str:
        """sha256 of the weights as model.safetensors stores them (cached; reset by load_state_dict)."""
        if self._hash is None:
            from safetensors.torch import save as safetensors_bytes

            self._hash = hashlib.sha256(safetensors_bytes(self._state_for_disk())).hexdigest()
        return self._hash

    def load_state_dict(self, *args, **kwargs):
        self._hash = None
        return super().load_state_dict(*args, **kwargs)

    def _state_for_disk(self) -> dict[str, Tensor]:
        import torch

        return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}

    def save_pretrained(self, directory: str | Path, model_card: str | None = None) -> None:
        """Write config.json, model.safetensors and README.md (model card) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {**self.config.to_dict(), "mrl_dna_version": __version__}
        (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
        # safetensors' save_file writes through a private temporary file (mode 0600): write the bytes
        # ourselves, so the weights get the same mode as config.json (0644 under the usual umask), under a
        # temporary name renamed when complete
        from safetensors.torch import save as safetensors_bytes

        weights, tmp = directory / WEIGHTS_FILE, directory / (WEIGHTS_FILE + ".partial")
        try:
            tmp.write_bytes(safetensors_bytes(self._state_for_disk(), metadata={"format": "pt"}))  # transformers' mark
            tmp.replace(weights)
        finally:
            tmp.unlink(missing_ok=True)  # a failed write (full disk, Ctrl-C) leaves no .partial behind
        if model_card is not None or not (directory / CARD_FILE).exists():
            (directory / CARD_FILE).write_text(model_card or self._default_card())

    def _default_card(self) -> str:
        return f"# {self.config.name}\n"
