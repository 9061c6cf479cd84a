"""The loss of one micro-batch: Matryoshka InfoNCE on (anchor, positive) (+ the locus loss on genome blocks)
+ CoSENT on (anchor, evolved anchor, identity) + CoSENT on user pairs. One forward on all views concatenated
(one DDP forward per backward); bf16 autocast on CUDA for the forward, fp32 for the losses.

Axis letters: b items, v views (anchor, positive[, mutant]), w windows per item, l bases per window,
D model width, k a Matryoshka dim.
"""

from __future__ import annotations

import torch

from mrl_dna.model.encoder import trunk_autocast
from mrl_dna.train.config import TrainConfig
from mrl_dna.train.losses import MatryoshkaLoss, cosent_loss, infonce_loss, variance_loss
from mrl_dna.train.queue import KeyEncoder, NegativeQueue


class FeatureTap:
    """The learned block (first `width` columns) of the window vectors of an encoder's latest forward pass with
    gradients (a forward hook; passes without gradient, validation or the key encoder's, leave it alone)."""

    def __init__(self, encoder: torch.nn.Module, width: int) -> None:
        self.width, self.last = width, None
        encoder.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if torch.is_grad_enabled():
            self.last = output[:, : self.width]

    def take(self) -> torch.Tensor:
        x, self.last = self.last, None
        return x


def micro_step(model, data, mloss: MatryoshkaLoss, lloss: MatryoshkaLoss | None, tc: TrainConfig, device, bf16: bool,
               queue: NegativeQueue | None = None, keys: KeyEncoder | None = None, trunk_dtype: torch.dtype | None = None,
               gather=None, features=None):
    """Loss of one micro-batch: one forward on all views concatenated (one DDP forward per backward).
    The forward runs under bf16 autocast on CUDA (`bf16`), or with only the encoder's trunk in `trunk_dtype`
    (train --cpu-bf16); the losses run in fp32 (scale-20 logits in bf16 lose the small differences InfoNCE
    ranks on). With a `queue` (and its key encoder `keys`), the locus loss is MoCo's: queries from the model,
    keys from the key encoder, the queue's rows extra negatives; this micro-batch's keys then join the queue
    (`gather`: every rank's, under torchrun). train/queue.py says why. `features` (a FeatureTap, with
    --feature-variance): the learned features of this forward's windows, for VICReg's variance term."""

    def forward(tokens, lengths, net=model):
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16), trunk_autocast(trunk_dtype):
            return net(tokens, lengths).float()

    batch, pb = data
    parts: dict[str, float] = {}
    total = torch.zeros((), device=device)
    n_bp = 0
    if batch is not None:
        b = batch.batch_size
        tokens = torch.from_numpy(batch.tokens).to(device, torch.long, non_blocking=True)  # (v*b, w, l)
        lengths = torch.from_numpy(batch.lengths).to(device)  # (v*b, w)
        z = forward(tokens, lengths)  # (v*b, D)
        anchor, positive = z[:b], z[b : 2 * b]
        labels = torch.from_numpy(batch.labels).to(device)
        genome_pos = positive if batch.partner is None else positive[torch.from_numpy(batch.partner).to(device)]
        nce, per = mloss(infonce_loss, anchor, genome_pos, labels=labels, scale=tc.scale, symmetric=True)
        total = total + nce
        parts.update({f"infonce@{k}": v.detach() for k, v in per.items()})
        if lloss is not None and queue is None:  # the anchor's own copy among all windows, its genome's others included
            loc, per = lloss(infonce_loss, anchor, positive, scale=tc.scale, symmetric=True)
            total = total + tc.locus_weight * loc
            parts.update({f"locus@{k}": v.detach() for k, v in per.items()})
        elif lloss is not None:  # MoCo: each query's own copy among the batch's keys and the queue
            k = forward(tokens[: 2 * b], lengths[: 2 * b], keys)  # (2b, D): anchor keys, positive keys
            extra = {} if queue.negatives() is None else {"extra": queue.negatives()}
            loc_a, per_a = lloss(infonce_loss, anchor, k[b:], scale=tc.scale, **extra)
            loc_p, per_p = lloss(infonce_loss, positive, k[:b], scale=tc.scale, **extra)
            total = total + tc.locus_weight * (loc_a + loc_p) / 2
            parts.update({f"locus@{d}": (per_a[d] + per_p[d]).detach() / 2 for d in per_a})
            queue.push(k, gather)  # after this micro-batch's loss
        if batch.n_views == 3 and tc.cosent_weight > 0:
            mutant = z[2 * b :]
            scores = torch.from_numpy(batch.identity).to(device)
            cos, per = mloss(cosent_loss, anchor, mutant, scores=scores, scale=tc.scale)
            total = total + tc.cosent_weight * cos
            parts.update({f"cosent@{k}": v.detach() for k, v in per.items()})
        if features is not None:
            var = variance_loss(features.take())
            total = total + tc.feature_variance * var
            parts["feature_var"] = var.detach()
        n_bp += batch.n_bases
    if pb is not None:
        tokens, lengths, scores = pb
        n = scores.size
        z = forward(torch.from_numpy(tokens).to(device, torch.long), torch.from_numpy(lengths).to(device))
        w = tc.cosent_weight if batch is not None else 1.0
        cos, per = mloss(cosent_loss, z[:n], z[n:], scores=torch.from_numpy(scores).to(device), scale=tc.scale)
        total = total + w * cos
        parts.update({f"pairs@{k}": v.detach() for k, v in per.items()})
        n_bp += int(lengths.sum())
    parts["loss"] = total.detach()
    keys = list(parts)
    values = torch.stack([parts[k].float() for k in keys]).cpu().tolist()  # one device sync per micro-batch
    return total, dict(zip(keys, values)), n_bp
