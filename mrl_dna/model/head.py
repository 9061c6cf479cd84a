"""The Matryoshka head and record pooling, shared by every trainable model class (MrlDnaModel,
CaduceusMrlModel): window vectors (n, d) -> head -> (n, D) -> pooling per record -> (r, D).

The order is head THEN pool, for every model and every call (embed, --save-windows, training):
- a record's vector is then the (length- or attention-weighted) centroid of its windows' embeddings, so a
  genome's vector is the centre of the vectors of its fragments, which is what fragment -> genome search
  compares against, and a record of one window gets exactly that window's --save-windows vector;
- with an MLP head, pool-then-head would put the record through the nonlinearity at a point no window
  occupies; with a linear head and mean pooling both orders agree up to float rounding.
The attention scores are computed from the window vectors (n, d), not from the head's outputs.
CaduceusMrlModel pooled then ran the head before this module existed (mrl-dna 0.1.0 before issue 13): its
saved models load unchanged, and their record vectors now follow this order (window vectors and
--save-windows vectors are unchanged; docs/INTERNALS.md).

Axis letters: b items, w windows per item, L bases per window, n windows (flattened), r records,
d window-vector width, D output width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrl_dna.model.pooling import WindowPooling


def matryoshka_head(d: int, hidden: int, D: int) -> nn.Module:
    """d -> D projection: one linear layer (hidden = 0) or Linear -> GELU -> Linear (hidden units)."""
    if hidden:
        return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, D))
    return nn.Linear(d, D)


class HeadThenPool:
    """The pipeline's calls on top of `window_vectors`, `self.head` and `self.pooling` (mix in before
    nn.Module, as MrlDnaModel and CaduceusMrlModel do)."""

    head: nn.Module
    pooling: nn.Module

    def add_head(self, d: int) -> None:
        """The pooling and the d -> D Matryoshka head that `self.config` (pooling, head_hidden, dim) asks for; called
        after the backbone is made, so their initial weights follow the backbone's in the seeded random stream."""
        self.pooling = WindowPooling(self.config.pooling, d)
        self.head = matryoshka_head(d, self.config.head_hidden, self.config.dim)

    def record_vectors(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """(n, d) window vectors of r records -> (r, D), L2-normalised at full D: the weighted centroid of the
        records' window embeddings (module docstring)."""
        return F.normalize(self._pooled(win, lengths, segment, n_records), dim=-1)

    def window_outputs(self, win: Tensor) -> Tensor:
        """(n, d) -> (n, D): each window on its own through the head, L2-normalised (for --save-windows)."""
        return F.normalize(self.head(win.float()), dim=-1)

    def window_embeddings(self, win: Tensor) -> tuple[Tensor, Tensor | None]:
        """The per-window half of record_vectors: (n, d) -> (n, D) head outputs (not normalised) and (n,)
        attention logits (None for mean pooling). embed runs it inside its fixed-shape batches, so a window's
        outputs never depend on how many windows its record has (a GEMM's last bits follow its row count)."""
        win = win.float()
        return self.head(win), self.pooling.logits(win)

    def pool_embeddings(self, values: Tensor, lengths: Tensor, logits: Tensor | None) -> Tensor:
        """The per-record half: one record's (k, D) window embeddings, (k,) bp and logits -> (D,),
        L2-normalised; record_vectors' pooling. One window is its own vector (the weighted mean of one row)."""
        if len(values) == 1:
            return F.normalize(values[0].float(), dim=-1)
        segment = torch.zeros(len(values), dtype=torch.long, device=values.device)
        return F.normalize(self.pooling.pool(values.float(), lengths, segment, 1, logits)[0], dim=-1)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Training: runs of w windows per item. tokens (b, w, L), lengths (b, w) (0 = no window) -> (b, D),
        not normalised (the loss slices then normalises each Matryoshka prefix)."""
        b, w, L = tokens.shape
        flat_len = lengths.reshape(b * w)
        keep = flat_len > 0
        segment = torch.arange(b, device=tokens.device).repeat_interleave(w)[keep]  # (n,)
        win = self.window_vectors(tokens.reshape(b * w, L)[keep], flat_len[keep])  # (n, d)
        return self._pooled(win, flat_len[keep], segment, b)

    def _pooled(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """Pooling weights come from the window vectors (n, d); what is pooled is the head's output (n, D)."""
        return self.pooling(win.float(), lengths, segment, n_records, values=self.head(win.float()))
