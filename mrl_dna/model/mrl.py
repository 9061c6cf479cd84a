"""The mrl-dna model: encoder -> window vectors -> pooling -> Matryoshka projection; and its files on disk.

Axis glossary: b items, w windows per item, L bases per window, n windows (flattened), r records,
d window width (d_model), D output width (largest Matryoshka dim), k a Matryoshka dim.

A model directory follows the transformers layout (config.json + model.safetensors + README.md), so it
loads offline from a local path. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save as safetensors_bytes
from torch import Tensor, nn

from mrl_dna import __version__
from mrl_dna.config import ModelConfig
from mrl_dna.errors import ModelError
from mrl_dna.model.encoder import Encoder
from mrl_dna.model.pooling import WindowPooling

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"


@dataclass(frozen=True)
class ModelInfo:
    """What an embedding file records about the model that made it (a reader never needs the model)."""

    name: str
    kind: str  # "mrl-dna" or "caduceus"
    weights_hash: str  # sha256 of the safetensors serialisation of the weights
    dim: int
    matryoshka_dims: tuple[int, ...]
    window: int
    window_stride: int
    pooling: str


class SavedWeights:
    """Weights hash and the model-directory files (config.json + model.safetensors + README.md), shared by
    every trainable model class (mix in before nn.Module; the class has `config` with `to_dict()`)."""

    _hash: str | None = None

    def weights_hash(self) -> str:
        """sha256 of the weights as model.safetensors stores them (cached; reset by load_state_dict)."""
        if self._hash is None:
            self._hash = hashlib.sha256(safetensors_bytes(self._state_for_disk())).hexdigest()
        return self._hash

    def load_state_dict(self, *args, **kwargs):
        self._hash = None
        return super().load_state_dict(*args, **kwargs)

    def _state_for_disk(self) -> dict[str, Tensor]:
        return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}

    def save_pretrained(self, directory: str | Path, model_card: str | None = None) -> None:
        """Write config.json, model.safetensors and README.md (model card) into `directory`."""
        from safetensors.torch import save

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        cfg = {**self.config.to_dict(), "mrl_dna_version": __version__}
        (directory / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        # safetensors' save_file writes through a private temporary file (mode 0600): write the bytes
        # ourselves, so the weights get the same mode as config.json (0644 under the usual umask), under a
        # temporary name renamed when complete
        weights, tmp = directory / "model.safetensors", directory / "model.safetensors.partial"
        tmp.write_bytes(save(self._state_for_disk()))
        tmp.replace(weights)
        if model_card is not None or not (directory / "README.md").exists():
            (directory / "README.md").write_text(model_card or self._default_card())

    def _default_card(self) -> str:
        return f"# {self.config.name}\n"


class MrlDnaModel(SavedWeights, nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, D = config.encoder.out_dim, config.dim
        self.encoder = Encoder(config.encoder)
        self.pooling = WindowPooling(config.pooling, d)
        if config.head_hidden:
            self.head = nn.Sequential(nn.Linear(d, config.head_hidden), nn.GELU(), nn.Linear(config.head_hidden, D))
        else:
            self.head = nn.Linear(d, D)

    # ---- the four calls the pipeline uses -------------------------------------------------------------
    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """(n, L) Caduceus ids right-padded with PAD, (n,) valid lengths -> (n, d) RC-invariant window vectors."""
        return self.encoder(tokens, lengths).float()

    def record_vectors(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """(n, d) window vectors of r records -> (r, D), L2-normalised at full D.

        The head runs on each window and the pooling averages its outputs, so a record's vector is the
        (length- or attention-weighted) centroid of its windows' embeddings: a genome's vector is the centre
        of the vectors of its fragments, which is what fragment -> genome retrieval compares against."""
        return F.normalize(self._pooled(win, lengths, segment, n_records), dim=-1)

    def window_outputs(self, win: Tensor) -> Tensor:
        """(n, d) -> (n, D): each window on its own through the head, L2-normalised (for --save-windows)."""
        return F.normalize(self.head(win.float()), dim=-1)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Training: runs of w windows per item. tokens (b, w, L), lengths (b, w) (0 = no window) -> (b, D),
        not normalised (the loss slices then normalises each Matryoshka prefix)."""
        b, w, L = tokens.shape
        flat_len = lengths.reshape(b * w)
        keep = flat_len > 0
        segment = torch.arange(b, device=tokens.device).repeat_interleave(w)[keep]  # (n,)
        win = self.encoder(tokens.reshape(b * w, L)[keep], flat_len[keep]).float()  # (n, d)
        return self._pooled(win, flat_len[keep], segment, b)

    def _pooled(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """Pooling weights come from the window vectors (n, d); what is pooled is the head's output (n, D)."""
        return self.pooling(win.float(), lengths, segment, n_records, values=self.head(win.float()))

    # ---- identity --------------------------------------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(
            name=c.name,
            kind="mrl-dna",
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
        config = ModelConfig.from_dict(_read_config(directory))
        weights = directory / "model.safetensors"
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


def _read_config(directory: Path) -> dict:
    if not directory.exists():
        raise ModelError(f"model directory {directory} does not exist; pass --model DIR of a saved model")
    if not directory.is_dir():
        raise ModelError(f"model path {directory} is not a directory; a model is a directory with config.json and model.safetensors")
    path = directory / "config.json"
    if not path.is_file():
        raise ModelError(f"model directory {directory} has no config.json; it is not a saved model")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path} is not valid JSON ({e}); re-save the model") from e


def resolve_model_dir(path: str | Path) -> Path:
    """A local directory as given; else a hub name ('org/name') that is ALREADY in the local Hugging Face
    cache (snapshots of $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub). Nothing is downloaded."""
    directory = Path(path).expanduser()
    text = str(path)
    if directory.exists() or text.count("/") != 1 or text.startswith((".", "/", "~")):
        return directory
    caches = [os.environ.get("HF_HUB_CACHE"), os.environ.get("HF_HOME") and os.path.join(os.environ["HF_HOME"], "hub"),
              os.path.expanduser("~/.cache/huggingface/hub")]
    for cache in filter(None, caches):
        repo = Path(cache) / ("models--" + text.replace("/", "--"))
        snapshots = sorted((repo / "snapshots").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
        if snapshots:
            main_ref = repo / "refs" / "main"
            if main_ref.is_file() and (repo / "snapshots" / main_ref.read_text().strip() / "config.json").is_file():
                return repo / "snapshots" / main_ref.read_text().strip()
            return snapshots[-1].parent  # the newest snapshot
    raise ModelError(
        f"model {text!r} is not a local directory and not in the local Hugging Face cache; mrl-dna never downloads: "
        f"fetch it once (e.g. `huggingface-cli download {text} --local-dir DIR`) and pass --model DIR"
    )


def load_model(path: str | Path | None = None):
    """A model directory (mrl-dna or official Caduceus), or a hub name already in the local cache -> a model
    in eval mode; None -> the bundled default."""
    if path is None:
        if not (DEFAULT_MODEL_DIR / "model.safetensors").is_file():
            raise ModelError(
                "no --model given and the bundled default model is missing from this install; "
                "pass --model DIR or reinstall mrl-dna"
            )
        path = DEFAULT_MODEL_DIR
    directory = resolve_model_dir(path)
    model_type = _read_config(directory).get("model_type")
    if model_type == "caduceus":  # an official Caduceus checkpoint: RC-invariant mean of its hidden states
        from mrl_dna.model.caduceus import CaduceusEmbedder

        return CaduceusEmbedder.from_pretrained(directory).eval()
    if model_type == "caduceus-mrl":  # a Caduceus backbone fine-tuned with a Matryoshka head (train --init)
        from mrl_dna.train.caduceus_mrl import CaduceusMrlModel

        return CaduceusMrlModel.from_pretrained(directory).eval()
    return MrlDnaModel.from_pretrained(directory)
