"""A queue of recent window embeddings: extra negatives for the locus loss (`train --queue-size N`).

The locus loss asks a window to find its own evolved copy among every other window of the batch; v2.1 needed
768 windows per batch to see enough negatives (bench/RESULTS.md, "Default model v2.1"). The queue keeps the
last N anchor and positive embeddings (full width, detached) of earlier micro-batches and adds them to every
row's negatives (`infonce_loss(extra=...)`), so a batch of 64 sees thousands (MoCo, He et al. 2020, and
Cross-Batch Memory, Wang et al. 2020).

Consistency (MoCo's momentum encoder). Queued rows are several dozen steps old. If they were the trained model's
own outputs (Cross-Batch Memory), a batch's anchor and its positive would come from today's model and every
queued negative from an older one, and the cheapest way to lower the loss would be to move today's outputs
away from yesterday's: measured on issue 21's k-mer MLP (batch 64, queue 4096), the locus loss rose from 2.5 at
step 50 to 6.0 at step 350 while held-out locus top-1 fell from 0.830 to 0.769. So, as in MoCo (He et al.
2020), the keys come from a `KeyEncoder`, an exponential moving average of the model (`--queue-momentum`):
anchors and positives go through the trained model (queries) and through the key encoder (keys); each
query's positive key and all its negatives (the batch's other keys and the queue) come from the same slowly
moving function, so moving the queries as a whole gains nothing. The locus loss is then
(InfoNCE(anchor queries -> positive keys + queue) + InfoNCE(positive queries -> anchor keys + queue)) / 2,
and the keys of each micro-batch join the queue. The key encoder costs one forward pass without gradient.

Exactness. The rows, the write position, the fill and the key encoder's weights are part of a checkpoint, so
`--resume` continues with the very queue the uninterrupted run had. Under torchrun every rank pushes the rows of all ranks (gathered in
rank order), so all ranks hold the same queue and rank 0's checkpoint is every rank's.

Axis letters: m rows pushed at once, N queue length, D model width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mrl_dna.model import model_from_config


class NegativeQueue:
    """A ring buffer of N rows of width D (float32, on the training device)."""

    def __init__(self, size: int, dim: int, device: torch.device) -> None:
        self.size = size
        self.rows = torch.zeros(size, dim, device=device)  # (N, D)
        self.filled = 0  # valid rows: the first `filled` (the ring has not wrapped) or all N
        self.pos = 0  # where the next row goes

    def negatives(self) -> torch.Tensor | None:
        """The queued rows (filled, D), or None while empty."""
        return self.rows[: self.filled] if self.filled else None

    def push(self, z: torch.Tensor, gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Append (m, D) rows (detached; under torchrun `gather` first collects every rank's, in rank order),
        overwriting the oldest once full."""
        z = z.detach().float()
        if gather is not None:
            z = gather(z)
        z = z[-self.size :]  # more rows than the queue holds: the newest
        m = z.shape[0]
        idx = (self.pos + torch.arange(m, device=self.rows.device)) % self.size
        self.rows[idx] = z
        self.pos = (self.pos + m) % self.size
        self.filled = min(self.size, self.filled + m)

    def state_dict(self) -> dict:
        return {"rows": self.rows.detach().cpu().clone(), "filled": self.filled, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["rows"].shape) != tuple(self.rows.shape):
            raise ValueError(f"queue of shape {tuple(state['rows'].shape)} in the checkpoint, {tuple(self.rows.shape)} now")
        self.rows.copy_(state["rows"].to(self.rows.device))
        self.filled, self.pos = int(state["filled"]), int(state["pos"])


class KeyEncoder:
    """MoCo's momentum encoder: a copy of the model whose weights follow the trained model's as an exponential
    moving average, w_key <- m w_key + (1 - m) w after every optimizer step (as torch.lerp, so a weight that does
    not train, e.g. a frozen k-mer column, stays bitwise equal). It computes the keys of the locus loss; it never
    gets a gradient and is never saved as the model."""

    def __init__(self, model: nn.Module, momentum: float, device: torch.device) -> None:
        self.momentum = momentum
        with torch.random.fork_rng(devices=[]):  # building it draws init weights: leave the run's RNG alone
            self.model = model_from_config(model.config.to_dict())
        self.model.load_state_dict(model.state_dict())
        self.model.to(device).train(model.training)  # the same forward as the trained model's
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, lengths)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for pk, p in zip(self.model.parameters(), model.parameters()):
            pk.lerp_(p.detach(), 1.0 - self.momentum)
        for bk, b in zip(self.model.buffers(), model.buffers()):
            bk.copy_(b)

    def state_dict(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
