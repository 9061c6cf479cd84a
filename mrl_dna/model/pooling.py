"""Windows -> one vector per record.

Axis glossary: n windows (of all records in a batch, flattened), r records, d window-vector width.
`segment[n]` is the record index of window n. Both poolings are weighted means inside each record; they
differ only in where the weights come from:
- mean: weight = window length in bp (a 100 bp tail counts 1/20 of a 2 kb window);
- attention: softmax over the record's windows of a learned score plus log(length), so with an untrained
  (zero) scorer attention pooling equals length-weighted mean pooling exactly.
Window vectors are RC-invariant, so the record vector is too. The model pools the head's outputs (see
MrlDnaModel.record_vectors), with the weights computed from the window vectors.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mrl_dna.model.config import Pooling


def segment_softmax(scores: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """Softmax of scores (n,) within each segment. Stable: subtracts each segment's max."""
    seg_max = torch.full((n_segments,), float("-inf"), device=scores.device, dtype=scores.dtype)
    seg_max = seg_max.scatter_reduce(0, segment, scores, reduce="amax")
    e = (scores - seg_max[segment]).exp()
    denom = torch.zeros(n_segments, device=scores.device, dtype=scores.dtype).index_add(0, segment, e)
    return e / denom[segment]


def weighted_segment_mean(x: Tensor, weights: Tensor, segment: Tensor, n_segments: int) -> Tensor:
    """sum_w weights * x / sum_w weights within each segment: x (n, d), weights (n,) -> (r, d).
    A segment with no windows gets a zero vector (the caller marks such records as empty)."""
    num = torch.zeros(n_segments, x.shape[1], device=x.device, dtype=x.dtype).index_add(0, segment, x * weights[:, None])
    den = torch.zeros(n_segments, device=x.device, dtype=x.dtype).index_add(0, segment, weights)
    return num / den.clamp(min=torch.finfo(x.dtype).tiny)[:, None]


class WindowPooling(nn.Module):
    def __init__(self, mode: Pooling, d: int) -> None:
        super().__init__()
        self.mode = Pooling(mode)
        if self.mode == Pooling.attention:
            self.norm = nn.LayerNorm(d)
            self.score = nn.Linear(d, 1)
            nn.init.zeros_(self.score.weight)  # starts as length-weighted mean pooling
            nn.init.zeros_(self.score.bias)

    def forward(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int, values: Tensor | None = None) -> Tensor:
        """win (n, d) window vectors, lengths (n,) bp, segment (n,) -> (r, e): the weighted mean of `values`
        (n, e) (default: win itself) within each record; attention scores are computed from win."""
        win = win.float()
        return self.pool(win if values is None else values.float(), lengths, segment, n_records, self.logits(win))

    def logits(self, win: Tensor) -> Tensor | None:
        """(n, d) window vectors -> (n,) learned attention scores (before the log-length prior); None for mean
        pooling. Per window, so embed computes them inside its fixed-shape batches (pipeline.py)."""
        if self.mode == Pooling.mean:
            return None
        return self.score(self.norm(win.float())).squeeze(-1)

    def pool(self, values: Tensor, lengths: Tensor, segment: Tensor, n_records: int, logits: Tensor | None) -> Tensor:
        """The weighted mean of `values` (n, e) within each record, weights from the lengths (n,) and, for
        attention, from `logits` (n,) (see `logits`) -> (r, e)."""
        lengths = lengths.to(values.dtype)
        if logits is None:
            return weighted_segment_mean(values, lengths, segment, n_records)
        weights = segment_softmax(logits.to(values.dtype) + lengths.clamp(min=1).log(), segment, n_records)
        return weighted_segment_mean(values, weights, segment, n_records)
