"""Model directories -> model objects. The one table from config.json's model_type to a class.

    load_model(None)          the bundled default model (mrl_dna/default_model)
    load_model("my_model")    a local directory: mrl-dna, official Caduceus, or caduceus-mrl
    load_model("org/name")    a hub name only when it is ALREADY in the local Hugging Face cache

Nothing is ever downloaded. embed, search, evaluate, train and the CLI all load through here.
"""

from __future__ import annotations

import os
from pathlib import Path

from mrl_dna.errors import ModelError
from mrl_dna.model.base import WEIGHTS_FILE, read_config
from mrl_dna.model.config import CaduceusMrlConfig, ModelConfig

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"


def model_classes() -> dict[str, type]:
    """config.json model_type -> class. Every class has from_pretrained(dir); the trainable ones also
    from_config(dict) (a training checkpoint's model_config). A config without model_type is mrl-dna's.
    (A function: the classes import torch, which load_embedder's k-mer-only path never needs.)"""
    from mrl_dna.model.caduceus import CaduceusEmbedder
    from mrl_dna.model.caduceus_mrl import CaduceusMrlModel
    from mrl_dna.model.mrl import MrlDnaModel

    return {cls.model_type: cls for cls in (MrlDnaModel, CaduceusEmbedder, CaduceusMrlModel)}


def trainable_classes() -> dict[str, type]:
    """The model_types that `train` can make and train -> their class."""
    classes = model_classes()
    return {kind: classes[kind] for kind in (ModelConfig.model_type, CaduceusMrlConfig.model_type)}


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


def model_type(path: str | Path) -> str:
    """The model_type of a model directory (or cached hub name): 'mrl-dna', 'caduceus', 'caduceus-mrl', or
    what an unknown file says. ModelError when the directory or its config.json is missing or unreadable."""
    return str(read_config(resolve_model_dir(path)).get("model_type", ModelConfig.model_type))


def load_model(path: str | Path | None = None):
    """A model directory (mrl-dna, official Caduceus, caduceus-mrl), or a hub name already in the local cache
    -> a model in eval mode; None -> the bundled default."""
    directory = _model_dir(path)
    # an unknown model_type goes to MrlDnaModel, whose config reader names the problem
    classes = model_classes()
    cls = classes.get(model_type(directory), classes[ModelConfig.model_type])
    model = cls.from_pretrained(directory).eval()
    model.directory = directory.resolve()  # where it came from (search looks for a DB's model there)
    return model


def load_embedder(path: str | Path | None = None, *, save_windows: bool = False):
    """What `embed` loads: load_model's model, except for a k-mer-only model with a linear head and mean pooling
    (the bundled default) when no window vectors are saved: then its torch-free KmerLinearModel, which embeds a
    record by one head call on its pooled profile (the same maths as the model's, issue 24) and starts without
    importing torch."""
    directory = _model_dir(path)
    if not save_windows and model_type(directory) == ModelConfig.model_type:
        from mrl_dna.model.kmer_linear import KmerLinearModel

        config = ModelConfig.from_dict(read_config(directory))
        if KmerLinearModel.applies(config):
            return KmerLinearModel.from_pretrained(directory)
    return load_model(directory)


def _model_dir(path: str | Path | None) -> Path:
    """load_model's directory: the given one (resolve_model_dir), or the bundled default for None."""
    if path is None:
        if not (DEFAULT_MODEL_DIR / WEIGHTS_FILE).is_file():
            raise ModelError(
                "no --model given and the bundled default model is missing from this install; "
                "pass --model DIR or reinstall mrl-dna"
            )
        path = DEFAULT_MODEL_DIR
    return resolve_model_dir(path)


def model_from_config(config: dict):
    """A trainable model with fresh weights from a config.json dict (a training checkpoint's model_config)."""
    kind = config.get("model_type", ModelConfig.model_type)
    trainable = trainable_classes()
    if kind not in trainable:
        raise ModelError(f"model_type {kind!r} cannot be trained here; pick one of {', '.join(trainable)}")
    return trainable[kind].from_config(config)
