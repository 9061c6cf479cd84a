"""The model card (README.md) written beside a trained model: what it is, how it was trained, its validation."""

from __future__ import annotations

import os
import platform
import sys

import torch

from mrl_dna.version import __version__


def _encoder_line(model) -> str:
    c = model.config
    if hasattr(c, "encoder"):
        e = c.encoder
        kmers = f" + the canonical {e.kmer_features}-mer profile ({e.n_kmer_features} values)" if e.kmer_features else ""
        if not e.learned:
            return f"- encoder: none (--kmer-only): the window vector is the canonical {e.kmer_features}-mer profile alone"
        norm = {"batch": " and batch-normalised", "layer": " and layer-normalised per window"}.get(e.pool_norm.value, "")
        if e.backbone.value == "kmer-mlp":
            return (f"- encoder: none; learned features = one layer of {e.pool_features} GELU units on the k-mer profile"
                    f"{norm} (--backbone kmer-mlp){kmers}")
        pooled = f", {e.pool_features} GELU features per token averaged" if e.pool_features else ""
        pooled += norm
        return (f"- encoder: RC-equivariant BiMamba, d_model {e.d_model}, {e.n_layer} layer(s), mixer {e.mixer.value}, "
                f"stride {e.stride} bp per token ({e.patch.value} patch){pooled}{kmers}")
    cad = c.caduceus
    return (f"- encoder: Caduceus backbone (d_model {cad.get('d_model')}, {cad.get('n_layer')} layers, "
            f"{'PS' if cad.get('rcps') else 'Ph'}), one token per base")


def _names(sources, first: int = 12) -> str:
    """Source names, the first `first` of them and a count of the rest (a corpus has thousands)."""
    names = [s.name for s in sources]
    return ", ".join(names[:first]) + (f" and {len(names) - first:,} more" if len(names) > first else "")


def model_card(*, model, sources, val_sources, tc, sc, dims, dist, wall_s, validation, metrics_path, init, recipe=None) -> str:
    """README.md of a trained model; `recipe` (train.config.Recipe, from --config) is named and quoted whole."""
    c = model.config
    n_params = sum(p.numel() for p in model.parameters())
    if dist.device.type == "cuda":
        hw = f"{dist.world} x {torch.cuda.get_device_name(dist.device)}"
    else:
        hw = f"{dist.world} x CPU process ({platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads)"
    lines = [
        f"# {c.name}",
        "",
        "An mrl-dna model: Matryoshka embeddings of long DNA (one vector per sequence; every prefix of "
        f"{list(c.matryoshka_dims)} dims is itself an embedding: `normalize(v[:k])`).",
        "",
        "## Model",
        _encoder_line(model) + f"; pooling {c.pooling.value}; {n_params:,} parameters"
        + ("; backbone frozen" if tc.freeze_backbone else "")
        + ("; head k-mer columns frozen (--freeze-kmer-head)" if tc.freeze_kmer_head else "")
        + (f"; learned features feed output dims >= {tc.encoder_dims_from} only (--encoder-dims-from)"
           if tc.encoder_dims_from else "")
        + (f"; locus loss with a queue of {tc.queue_size:,} earlier keys as extra negatives (MoCo key encoder, "
           f"momentum {tc.queue_momentum})" if tc.queue_size else "")
        + (f"; variance term on the learned features (--feature-variance {tc.feature_variance})" if tc.feature_variance else ""),
        f"- window {c.window} bp, stride {c.window_stride} bp",
        "",
        "## Training",
        f"- command: `mrl-dna {' '.join(sys.argv[1:])}`",
        *([f"- recipe: `{recipe.path}` (quoted below; options on the command line override it)"] if recipe else []),
        f"- mrl-dna {__version__}; torch {torch.__version__}; started from {init or 'random init'}"
        + ("; head started at the whitened k-mer profile of the training genomes (--head-init whiten, shrinkage "
           f"{tc.whiten_shrinkage})" if tc.head_init == "whiten" else "")
        + (f"; head started as the --kmer-only model {tc.head_from} on the k-mer columns, 0 on the learned ones "
           "(--head-from)" if tc.head_from else ""),
        f"- data: {len(sources)} training genome(s)/group(s), {sum(s.n_bases for s in sources) / 1e6:.1f} Mbp: "
        + _names(sources),
        f"- held out for validation: {_names(val_sources) or 'none'}",
        f"- loss: {'Matryoshka over dims ' + str(list(dims)) if tc.matryoshka else 'full dim only (no Matryoshka: baseline)'}; "
        f"symmetric InfoNCE (negatives of the same genome, or of the same --groups species, masked; scale {tc.scale}) + {tc.cosent_weight} x CoSENT on "
        f"evolved anchors (identity targets, mutation rate up to {sc.max_mutation_rate})"
        + (f"; locus InfoNCE at dims {list(tc.locus_dims)} (weight {tc.locus_weight}): a window vs its own evolved, shifted "
           f"copy, the {sc.windows_per_genome - 1} other windows of its genome in the batch among the negatives"
           if tc.locus_dims else ""),
        f"- {tc.steps} steps x {tc.grad_accum} x {sc.batch_size} items x {dist.world} process(es); AdamW lr {tc.lr}, "
        f"warmup {tc.warmup}, cosine to {tc.min_lr_ratio} x lr, weight decay {tc.weight_decay}, clip {tc.clip}, seed {tc.seed}",
        f"- hardware: {hw}; wall time {wall_s / 60:.1f} min",
        f"- per-step metrics: `{metrics_path.name}`",
    ]
    if validation:
        dims_v = list(validation["genome_top1"])
        lines += [
            "",
            f"## Validation (held-out genomes, {validation['n_queries']} fragments of {c.window} bp at 5% divergence, "
            f"half reverse-complemented -> {validation['n_genomes']} genome vectors)",
            "",
            "| metric | " + " | ".join(str(k) for k in dims_v) + " |",
            "| --- | " + " | ".join("---" for _ in dims_v) + " |",
        ]
        for name in ("genome_top1", "species_top1", "locus_top1"):
            if name in validation:
                lines.append(f"| {name} | " + " | ".join(f"{validation[name][k]:.3f}" for k in dims_v) + " |")
    if recipe:
        lines += ["", f"## Recipe (`{recipe.path}`)", "", "```toml", recipe.text.rstrip("\n"), "```"]
    return "\n".join(ln for ln in lines) + "\n"
