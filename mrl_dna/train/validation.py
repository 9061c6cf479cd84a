"""Held-out genomes during training: fragment -> genome top-1 per Matryoshka dim (and species and locus
top-1), every --eval-every steps, on rank 0.

Genome vectors here are the mean of the L2-normalised k-prefixes of evenly spaced windows, renormalised
(each window through model.forward as a one-window run): a per-dim centroid of window embeddings, the same
quantity embed's head-then-pool record vector approximates, computed per prefix. It is kept as it is so that
validation numbers stay comparable with every earlier run's metrics.jsonl.

Axis letters: g genomes, q queries, m locus queries, n windows of one genome, D model width, k a Matryoshka dim.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mrl_dna import dna
from mrl_dna.evolve import mutate
from mrl_dna.train.config import ValidationConfig
from mrl_dna.train.losses import truncate_normalize
from mrl_dna.train.sampler import pack
from mrl_dna.train.sources import Source


class Validator:
    """Fragment -> genome top-1 retrieval on held-out genomes, per Matryoshka dim.

    Database: one vector per genome = mean of the L2-normalised k-prefixes of `db_windows` evenly spaced
    window vectors (each from model.forward on a one-window run), renormalised. Queries: `queries` random
    windows per genome, evolved at `mutation_rate`, half reverse-complemented. Reports genome top-1 and,
    when every held-out genome has a group, species (group) top-1.
    """

    def __init__(self, sources: Sequence[Source], window: int, cfg: ValidationConfig, locus: bool = False) -> None:
        rng = np.random.default_rng(cfg.seed)
        self.names = [s.name for s in sources]
        self.groups = [s.group for s in sources]
        self.db: list[list[np.ndarray]] = []  # per genome: windows
        self.queries: list[np.ndarray] = []
        self.query_genome: list[int] = []
        self.locus_db: list[np.ndarray] = []  # clean source windows of the locus queries (with --locus-dims)
        self.locus_queries: list[np.ndarray] = []
        for gi, src in enumerate(sources):
            seq = np.concatenate(src.seqs)
            n = seq.size
            starts = np.linspace(0, max(0, n - window), cfg.db_windows).astype(np.int64)
            self.db.append([seq[s : s + window] for s in np.unique(starts)])
            for _ in range(cfg.queries):
                s = int(rng.integers(0, max(1, n - window + 1)))
                q, _ = mutate(seq[s : s + window], cfg.mutation_rate, rng)
                self.queries.append(dna.revcomp(q) if rng.random() < 0.5 else q)
                self.query_genome.append(gi)
        lrng = np.random.default_rng([cfg.seed, 1])  # its own stream: the genome queries stay as they were
        for src in sources if locus else ():
            seq = np.concatenate(src.seqs)
            n = seq.size
            for _ in range(cfg.queries):
                s = int(lrng.integers(0, max(1, n - window + 1)))
                self.locus_db.append(seq[s : s + window])
                t = min(max(0, s + int(lrng.integers(-(window // 4), window // 4 + 1))), max(0, n - window))
                q, _ = mutate(seq[t : t + window], cfg.locus_rate, lrng)
                self.locus_queries.append(dna.revcomp(q) if lrng.random() < 0.5 else q)

    @torch.no_grad()
    def evaluate(self, model, device, dims: Sequence[int], bf16: bool = False, batch: int = 64) -> dict:
        was_training = model.training
        model.eval()
        try:
            db_vecs = [self._embed(model, wins, device, bf16, batch) for wins in self.db]  # each (n_i, D)
            q = self._embed(model, self.queries, device, bf16, batch)  # (q, D)
            if self.locus_queries:
                ldb = self._embed(model, self.locus_db, device, bf16, batch)  # (m, D)
                lq = self._embed(model, self.locus_queries, device, bf16, batch)  # (m, D)
        finally:
            model.train(was_training)
        truth = torch.tensor(self.query_genome)
        res: dict = {"genome_top1": {}}
        species = all(self.groups) and len(set(self.groups)) > 1
        if species:
            res["species_top1"] = {}
            gid = {g: i for i, g in enumerate(dict.fromkeys(self.groups))}
            group_of = torch.tensor([gid[g] for g in self.groups])
        for k in dims:
            genome_vecs = torch.stack([F.normalize(truncate_normalize(v, k).mean(0), dim=-1) for v in db_vecs])  # (g, k)
            pred = (truncate_normalize(q, k) @ genome_vecs.T).argmax(1)  # (q,)
            res["genome_top1"][k] = round(float((pred == truth).float().mean()), 4)
            if species:
                res["species_top1"][k] = round(float((group_of[pred] == group_of[truth]).float().mean()), 4)
            if self.locus_queries:
                hit = (truncate_normalize(lq, k) @ truncate_normalize(ldb, k).T).argmax(1)  # (m,)
                res.setdefault("locus_top1", {})[k] = round(float((hit == torch.arange(len(hit))).float().mean()), 4)
        res["n_genomes"], res["n_queries"] = len(self.db), len(self.queries)
        return res

    @staticmethod
    def _embed(model, windows: Sequence[np.ndarray], device, bf16: bool, batch: int) -> torch.Tensor:
        outs = []
        for i in range(0, len(windows), batch):
            tokens, lengths = pack([[w] for w in windows[i : i + batch]])  # (b, 1, l), (b, 1)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                z = model(torch.from_numpy(tokens).to(device, torch.long), torch.from_numpy(lengths).to(device))
            outs.append(z.float().cpu())
        return torch.cat(outs)




def val_line(val: dict) -> str:
    parts = []
    for name, per in val.items():
        if isinstance(per, dict):
            parts.append(f"{name} " + " ".join(f"{k}:{v:.3f}" for k, v in per.items()))
    return "; ".join(parts)
