"""`MrlDnaHFModel`: an mrl-dna model as a transformers `PreTrainedModel` (what AutoModel returns for a
directory whose config.json says model_type "mrl-dna").

It holds the very submodules of `mrl_dna.model.MrlDnaModel` (encoder, pooling, head) under the same names,
so model.safetensors loads and saves with the same keys either way, and `encode` is mrl-dna's: the same
rows as `mrl-dna embed` and `mrl_dna.load_model(dir).encode`, bit for bit.

forward(input_ids, attention_mask) takes one batch of windows (Caduceus token ids, as `mrl_dna.dna.encode`
gives: A=7 C=8 G=9 T=10 N=11, right-padded with 4) and returns per-window embeddings; a long sequence
wants `encode`, which cuts windows, batches them and pools them per sequence as `embed` does.
Axis letters: n windows, L bases per window, d window width, D output width.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mrl_dna import dna
from mrl_dna.api import Model
from mrl_dna.hf.config import MrlDnaConfig
from mrl_dna.model import MrlDnaModel
from mrl_dna.model.base import CARD_FILE
from mrl_dna.model.loader import resolve_model_dir

# from_pretrained options of transformers that mrl-dna's loader does not implement
_UNSUPPORTED = ("device_map", "dtype", "torch_dtype", "quantization_config", "load_in_8bit", "load_in_4bit", "tp_plan")

HUB_CARD = """---
library_name: mrl-dna
tags:
- mrl-dna
- dna
- genomics
- matryoshka
- feature-extraction
pipeline_tag: feature-extraction
---
"""


class MrlDnaHFModel(PreTrainedModel):
    config_class = MrlDnaConfig
    base_model_prefix = "mrl_dna"
    main_input_name = "input_ids"

    def __init__(self, config: MrlDnaConfig, core: MrlDnaModel | None = None) -> None:
        super().__init__(config)
        core = core if core is not None else MrlDnaModel(config.model_config)
        self.encoder, self.pooling, self.head = core.encoder, core.pooling, core.head  # same names, same keys
        self._core = [core]  # a list: not a registered submodule (its parameters are the ones above)
        self.post_init()

    @property
    def mrl_dna_model(self) -> MrlDnaModel:
        """The mrl-dna model sharing these weights (what mrl-dna's embed, search and train use)."""
        core = self._core[0]
        core.train(self.training)
        return core

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config: MrlDnaConfig | None = None,
                        **kwargs) -> MrlDnaHFModel:
        """A local mrl-dna model directory (or a hub name already in the local cache: nothing is downloaded),
        read by mrl-dna's own loader, whose checks and messages apply; transformers' loading options
        (device_map, dtype, quantization, ...) are not supported: move the model with `.to(...)`.

        Not transformers' loader: it builds the model on the meta device, which leaves the encoder's
        non-persistent k-mer tables (model/encoder.py) uninitialised."""
        unsupported = sorted(k for k, v in kwargs.items() if k in _UNSUPPORTED and v is not None)
        if unsupported:
            raise ValueError(f"mrl-dna models load on the CPU in float32; {', '.join(unsupported)} is not "
                             "supported: load, then model.to(device)")
        directory = resolve_model_dir(pretrained_model_name_or_path)
        core = MrlDnaModel.from_pretrained(directory)
        core.directory = directory.resolve()  # its model card goes along on save_pretrained
        if config is None or config.model_config != core.config:
            config = MrlDnaConfig.from_model_config(core.config)
        model = cls(config, core=core)
        model.config.name_or_path = str(pretrained_model_name_or_path)
        return model.eval()

    def _init_weights(self, module) -> None:
        """Weights come from model.safetensors, or from MrlDnaModel's own init when built from a config."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool | None = None, **_) -> BaseModelOutputWithPooling | tuple:
        """input_ids (n, L) window token ids, attention_mask (n, L) 1 on bases (default: ids != PAD) ->
        last_hidden_state (n, d) window vectors, pooler_output (n, D) L2-normalised window embeddings
        (what `embed --save-windows` stores for a window)."""
        if attention_mask is None:
            attention_mask = input_ids != dna.PAD
        lengths = attention_mask.long().sum(dim=1)  # (n,)
        core = self.mrl_dna_model
        win = core.window_vectors(input_ids, lengths)  # (n, d)
        out = core.window_outputs(win)  # (n, D)
        if return_dict is False:
            return win, out
        return BaseModelOutputWithPooling(last_hidden_state=win, pooler_output=out)

    def encode(self, sequences, dim: int | None = None, **kwargs) -> np.ndarray:
        """mrl_dna's `Model.encode` (same arguments): (n, dim) float32, L2-normalised, what embed stores."""
        was = self.training
        try:
            return Model(module=self.mrl_dna_model.eval(), directory=None).encode(sequences, dim, **kwargs)
        finally:
            self.train(was)

    def save_pretrained(self, save_directory, *args, **kwargs) -> None:
        """transformers' save_pretrained, plus a model card README.md (with the hub's metadata header) when
        the directory has none: config.json + model.safetensors + README.md, the layout mrl-dna loads."""
        super().save_pretrained(save_directory, *args, **kwargs)
        card = Path(save_directory) / CARD_FILE
        if not card.exists():
            core = self.mrl_dna_model
            source = Path(getattr(core, "directory", "") or "/nonexistent") / CARD_FILE
            text = source.read_text() if source.is_file() else core._default_card()
            if text.startswith("---\n"):  # it has a metadata header already
                card.write_text(text)
            else:
                card.write_text(HUB_CARD + "\n" + text)
