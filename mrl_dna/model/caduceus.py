"""Official Caduceus checkpoints (PS and Ph) in plain PyTorch: load, run, embed, fine-tune.

A Caduceus directory is what `transformers` `save_pretrained` writes for the official code
(kuleshov-group/caduceus, `caduceus/modeling_caduceus.py`, `caduceus/modeling_rcps.py`): `config.json`
(model_type "caduceus") + `model.safetensors`. This module re-implements the forward pass, written from the
published equations and checked against arrays made with the official code (tests/test_caduceus.py); it
needs neither mamba-ssm nor transformers, and runs on CPU. mamba-ssm's CUDA scan is used when present
(`selective_scan(impl="auto")`). Its config.json is read and checked by `model/config.py`'s CaduceusConfig.

Glossary:
    b  batch (windows)      l  tokens (one per base)      d  d_model (width of one strand)
    H  hidden width: 2*d for PS (rcps=true: forward strand + RC strand), d for Ph
    e  d_inner = expand * d  n  d_state                     r  dt_rank
    V  vocabulary size padded to a multiple of pad_vocab_size_multiple

Layouts, as published. PS hidden states (b, l, 2d) hold the forward strand in channels [:d] and the RC
strand in [d:] stored flipped along both length and channels, so that rc(hidden) = hidden.flip(l, H)
(`RCPSWrapper.rc`). Each layer is (Mamba's "Add -> Norm -> Mixer" block, `mamba_ssm.modules.block.Block`):
    s = hidden + residual;  residual <- s;  hidden <- mixer(norm(s))
and the backbone ends with norm_f(hidden + residual).

The fused_add_norm quirk (PS only). With fused_add_norm=true (every published checkpoint), the official
`RCPSMambaBlock.forward` feeds channels [d:] to the "forward" norm and channels [:d], flipped, to the "rc"
norm, i.e. it swaps the two halves of s before normalising, in every layer (the unfused path,
`RCPSAddNormWrapper`, does not). The model stays RC-equivariant and the published weights were trained with
the swap, so it is reproduced here (`_swap_halves`); norm_f does not swap in either path.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrl_dna.errors import ModelError
from mrl_dna.model.base import CONFIG_FILE, WEIGHTS_FILE, ModelInfo, read_config
from mrl_dna.model.config import CaduceusConfig
from mrl_dna.model.pooling import weighted_segment_mean
from mrl_dna.model.selective_scan import selective_scan

MODEL_TYPE = CaduceusConfig.model_type

# --------------------------------------------------------------------------------------------- modules


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """x * rsqrt(mean(x^2) + eps) * weight over the last dim, in float32 (mamba-ssm's `rms_norm_fn` math)."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + eps) * weight.float()).to(x.dtype)


class MambaDirection(nn.Module):
    """The per-direction parameters of one Mamba-1 mixer (`mamba_ssm.modules.mamba_simple.Mamba`) whose
    in_proj/out_proj are shared between the two directions (bidirectional_weight_tie)."""

    def __init__(self, cfg: CaduceusConfig) -> None:
        super().__init__()
        e, n, r = cfg.d_inner, cfg.d_state, cfg.rank
        self.conv1d = nn.Conv1d(e, e, cfg.d_conv, groups=e, padding=cfg.d_conv - 1, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(e, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, e, bias=True)
        self.A_log = nn.Parameter(torch.zeros(e, n))
        self.D = nn.Parameter(torch.ones(e))


class BiMamba(nn.Module):
    """Caduceus' `BiMambaWrapper` with weight tying: Mamba(x) (+ or *) flip(Mamba_rev(flip(x))).

    Mirrors `Mamba.forward` (slow path: conv1d -> SiLU -> x_proj -> dt_proj -> selective_scan with
    delta_bias and softplus -> out_proj) for both directions. Deviation (speed only, same numbers): in_proj runs
    once, since in_proj(flip(x)) = flip(in_proj(x)), and the two directions run as one scan over 2e channels
    with B/C in 2 groups (PERF_NOTES: one batched scan call for both directions).
    """

    def __init__(self, cfg: CaduceusConfig, scan_impl: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.scan_impl = scan_impl
        self.in_proj = nn.Linear(cfg.d_model, 2 * cfg.d_inner, bias=cfg.bias)
        self.out_proj = nn.Linear(cfg.d_inner, cfg.d_model, bias=cfg.bias)
        self.fwd = MambaDirection(cfg)
        self.rev = MambaDirection(cfg)

    def forward(self, x: Tensor) -> Tensor:
        """x (b, l, d) -> (b, l, d)."""
        b, l, _ = x.shape
        e, n, r = self.cfg.d_inner, self.cfg.d_state, self.cfg.rank
        dirs = (self.fwd, self.rev)
        xz = self.in_proj(x)  # (b, l, 2e)
        xz = torch.cat([xz, xz.flip(1)], dim=-1)  # (b, l, 4e): [x_f, z_f, x_r, z_r], reverse stream flipped
        xs = torch.cat([xz[..., :e], xz[..., 2 * e : 3 * e]], dim=-1).transpose(1, 2)  # (b, 2e, l)
        z = torch.cat([xz[..., e : 2 * e], xz[..., 3 * e :]], dim=-1).transpose(1, 2)  # (b, 2e, l)
        conv_w = torch.cat([m.conv1d.weight for m in dirs])  # (2e, 1, k)
        conv_b = torch.cat([m.conv1d.bias for m in dirs]) if self.cfg.conv_bias else None
        u = F.silu(F.conv1d(xs, conv_w, conv_b, padding=self.cfg.d_conv - 1, groups=2 * e)[..., :l])  # (b, 2e, l)
        deltas, Bs, Cs = [], [], []
        for m, u_dir in zip(dirs, u.split(e, dim=1)):
            dbc = m.x_proj(u_dir.transpose(1, 2))  # (b, l, r + 2n)
            dt, B_, C_ = dbc.split([r, n, n], dim=-1)
            deltas.append(F.linear(dt, m.dt_proj.weight))  # (b, l, e), bias added inside the scan
            Bs.append(B_.transpose(1, 2))  # (b, n, l)
            Cs.append(C_.transpose(1, 2))
        y = selective_scan(
            u,
            torch.cat(deltas, dim=-1).transpose(1, 2),  # (b, 2e, l)
            -torch.exp(torch.cat([m.A_log for m in dirs]).float()),  # (2e, n)
            torch.stack(Bs, dim=1),  # (b, 2, n, l): group 0 = forward channels, 1 = reverse channels
            torch.stack(Cs, dim=1),
            torch.cat([m.D for m in dirs]).float(),
            z=z,
            delta_bias=torch.cat([m.dt_proj.bias for m in dirs]).float(),
            delta_softplus=True,
            impl=self.scan_impl,
        )  # (b, 2e, l)
        out_f = self.out_proj(y[:, :e].transpose(1, 2))  # (b, l, d)
        out_r = self.out_proj(y[:, e:].transpose(1, 2)).flip(1)  # (b, l, d), flipped back
        return out_f + out_r if self.cfg.bidirectional_strategy == "add" else out_f * out_r


class CaduceusLayer(nn.Module):
    """One block: s = hidden + residual -> norm -> BiMamba (mamba-ssm `Block` / Caduceus `RCPSMambaBlock`).

    For PS the mixer runs on the forward strand and on the RC strand (un-flipped) with the same weights
    (`RCPSWrapper`), batched together.
    """

    def __init__(self, cfg: CaduceusConfig, scan_impl: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.norm = nn.Module()
        self.norm.weight = nn.Parameter(torch.ones(cfg.d_model))
        self.mixer = BiMamba(cfg, scan_impl)

    def forward(self, hidden: Tensor, residual: Tensor | None) -> tuple[Tensor, Tensor]:
        """hidden, residual (b, l, H) -> (mixer output, new residual), both (b, l, H)."""
        s = hidden if residual is None else hidden + residual
        if not self.cfg.rcps:
            return self.mixer(rms_norm(s, self.norm.weight, self.cfg.norm_epsilon)), s
        if self.cfg.fused_add_norm:
            s = _swap_halves(s)  # the published fused path (RCPSMambaBlock.forward), see the module docstring
        h = _rcps_norm(s, self.norm.weight, self.cfg.norm_epsilon)  # (b, l, 2d)
        b, d = h.shape[0], self.cfg.d_model
        strands = torch.cat([h[..., :d], h[..., d:].flip(1, 2)], dim=0)  # (2b, l, d): forward, RC in its own order
        o = self.mixer(strands)  # (2b, l, d)
        return torch.cat([o[:b], o[b:].flip(1, 2)], dim=-1), s


def _swap_halves(x: Tensor) -> Tensor:
    """(…, 2d) -> channels [d:] then [:d]."""
    d = x.shape[-1] // 2
    return torch.cat([x[..., d:], x[..., :d]], dim=-1)


def _rcps_norm(s: Tensor, weight: Tensor, eps: float) -> Tensor:
    """RCPS RMSNorm of (…, 2d): the forward half with `weight`, the stored-flipped RC half through
    flip -> norm -> flip (`RCPSAddNormWrapper`), which for a per-token norm is the norm with `weight.flip(0)`."""
    d = s.shape[-1] // 2
    return torch.cat([rms_norm(s[..., :d], weight, eps), rms_norm(s[..., d:], weight.flip(0), eps)], dim=-1)


class CaduceusBackbone(nn.Module):
    """Caduceus' `CaduceusMixerModel`: embedding -> n_layer blocks -> norm_f(hidden + residual).

    Parameters: `embedding` (V, d) (RCPSEmbedding's for PS), `layers`, `norm_f`. `--freeze-backbone` freezes
    all of them.
    """

    def __init__(self, cfg: CaduceusConfig, scan_impl: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(CaduceusLayer(cfg, scan_impl) for _ in range(cfg.n_layer))
        self.norm_f = nn.Module()
        self.norm_f.weight = nn.Parameter(torch.ones(cfg.d_model))
        self.register_buffer("complement", torch.tensor(cfg.complement_map, dtype=torch.long), persistent=False)

    def forward(self, input_ids: Tensor) -> Tensor:
        """input_ids (b, l) long -> final hidden state (b, l, H) after norm_f (`last_hidden_state`)."""
        hidden = self.embedding(input_ids)  # (b, l, d)
        if self.cfg.rcps:
            # RCPSEmbedding: flip(embed(rc(ids)), l and channels) = embed(complement(ids)) with channels flipped
            hidden = torch.cat([hidden, self.embedding(self.complement[input_ids]).flip(-1)], dim=-1)  # (b, l, 2d)
        residual = None
        for layer in self.layers:
            hidden, residual = layer(hidden, residual)
        s = hidden + residual
        eps = self.cfg.norm_epsilon
        return _rcps_norm(s, self.norm_f.weight, eps) if self.cfg.rcps else rms_norm(s, self.norm_f.weight, eps)

    def lm_logits(self, hidden: Tensor, lm_weight: Tensor | None = None) -> Tensor:
        """Final hidden (b, l, H) -> MLM logits (b, l, V) in float32 (`CaduceusForMaskedLM.forward`).

        PS mirrors `RCPSLMHead.forward`: W h_fwd + W[complement] flip_channels(h_rc), W tied to the embedding.
        """
        w = self.embedding.weight if lm_weight is None else lm_weight  # (V, d)
        if not self.cfg.rcps:
            return F.linear(hidden, w).float()
        d = self.cfg.d_model
        return (F.linear(hidden[..., :d], w) + F.linear(hidden[..., d:].flip(-1), w[self.complement])).float()


# ------------------------------------------------------------------------------------------- embedder


class CaduceusEmbedder(nn.Module):
    """An official Caduceus checkpoint used as an mrl-dna embedder: the window vector is the RC-invariant mean
    of the final hidden state over the window's tokens, with no projection head.

    PS:  mean over tokens of (forward half + channel-flipped RC half) / 2  (exact, by construction)
    Ph:  (mean of h(x) + mean of h(revcomp(x))) / 2                        (exact, by construction)
    """

    model_type = MODEL_TYPE

    def __init__(self, cfg: CaduceusConfig, *, name: str = "caduceus", weights_hash: str = "", scan_impl: str = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = CaduceusBackbone(cfg, scan_impl)
        self.lm_head_weight: nn.Parameter | None = None  # set only for an untied Ph head (tie_word_embeddings=false)
        self.info = ModelInfo(
            name=name,
            kind=MODEL_TYPE,
            weights_hash=weights_hash,  # sha256 of the model.safetensors bytes
            dim=cfg.d_model,
            matryoshka_dims=(cfg.d_model,),  # no projection head: one dim, the backbone's width
            window=cfg.window,
            window_stride=cfg.window_stride,
            pooling="mean",
        )

    @property
    def backbone_module(self) -> nn.Module:
        """The module whose parameters `--freeze-backbone` freezes (everything but heads added on top)."""
        return self.backbone

    @classmethod
    def from_pretrained(cls, path: str | Path, *, scan_impl: str = "auto") -> "CaduceusEmbedder":
        """Load a local Caduceus directory (config.json + model.safetensors). ModelError when it does not fit."""
        directory = Path(path)
        cfg = CaduceusConfig.from_dict(read_config(directory))
        weights_path = directory / WEIGHTS_FILE
        if not weights_path.is_file():
            raise ModelError(f"{directory} is not a Caduceus model directory: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
        data = weights_path.read_bytes()
        try:
            from safetensors.torch import load as load_safetensors

            tensors = load_safetensors(data)
        except Exception as e:  # safetensors raises its own error types for a corrupt header or truncated data
            raise ModelError(f"{weights_path} cannot be read as safetensors ({e}); re-download the checkpoint") from e
        model = cls(cfg, name=directory.resolve().name, weights_hash=hashlib.sha256(data).hexdigest(), scan_impl=scan_impl)
        model._load_official(tensors, weights_path)
        return model.eval()

    def _load_official(self, tensors: dict[str, Tensor], source: Path) -> None:
        """Map official tensor names onto this module; tie what the file omits; check every shape."""
        cfg = self.cfg
        prefix = _backbone_prefix(tensors, source)
        mix = "mixer.submodule." if cfg.rcps else "mixer."  # RCPSWrapper adds ".submodule"
        wrapped = cfg.rcps and not cfg.fused_add_norm  # RCPSAddNormWrapper adds ".submodule" to norms
        norm = "norm.submodule.weight" if wrapped else "norm.weight"
        names = {  # official name (after the prefix) -> our parameter
            ("embeddings.word_embeddings.embedding.weight" if cfg.rcps else "embeddings.word_embeddings.weight"):
                self.backbone.embedding.weight,
            ("norm_f.submodule.weight" if wrapped else "norm_f.weight"): self.backbone.norm_f.weight,
        }
        for i, layer in enumerate(self.backbone.layers):
            p = f"layers.{i}."
            names[p + norm] = layer.norm.weight
            for proj in ("in_proj", "out_proj"):
                names[f"{p}{mix}mamba_fwd.{proj}.weight"] = getattr(layer.mixer, proj).weight
                if cfg.bias:
                    names[f"{p}{mix}mamba_fwd.{proj}.bias"] = getattr(layer.mixer, proj).bias
            for official, mine in (("mamba_fwd", layer.mixer.fwd), ("mamba_rev", layer.mixer.rev)):
                for pname, param in mine.named_parameters():
                    names[f"{p}{mix}{official}.{pname}"] = param
        missing = [prefix + k for k in names if prefix + k not in tensors]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise ModelError(
                f"{source} lacks tensors {', '.join(missing[:3])}{more}; config.json (n_layer={cfg.n_layer}, "
                f"rcps={cfg.rcps}, fused_add_norm={cfg.fused_add_norm}) does not match the weights"
            )
        with torch.no_grad():
            for key, param in names.items():
                t = tensors[prefix + key]
                if tuple(t.shape) != tuple(param.shape):
                    raise ModelError(
                        f"{source}: tensor {prefix + key} has shape {tuple(t.shape)}, config.json implies "
                        f"{tuple(param.shape)} (d_model={cfg.d_model}, vocab_size={cfg.vocab_size}, "
                        f"d_state={cfg.d_state}, expand={cfg.expand}); the config does not match the weights"
                    )
                param.copy_(t.to(param.dtype))
        # Tensors the file may hold besides those: tied copies (must equal what they are tied to), complement_map
        # buffers (must equal the config's), heads (lm_head, score) that embedding does not use.
        comp = torch.tensor(cfg.complement_map)
        for key, t in sorted(tensors.items()):  # sorted: the same tensor is named first on every run
            rest = key[len(prefix):] if key.startswith(prefix) else None
            if rest in names:
                continue
            if key.endswith("complement_map"):
                if t.shape != comp.shape or not torch.equal(t.long(), comp):
                    raise ModelError(f"{source}: {key} differs from config.json complement_map; the files do not belong together")
            elif rest is not None and ".mamba_rev.in_proj." not in rest and ".mamba_rev.out_proj." not in rest:
                raise ModelError(
                    f"{source}: tensor {key} is not part of a Caduceus backbone with this config.json "
                    f"(n_layer={cfg.n_layer}, rcps={cfg.rcps}); the config does not match the weights"
                )
        if not cfg.rcps and not cfg.tie_word_embeddings:
            head = tensors.get("lm_head.weight")
            if head is None or tuple(head.shape) != (cfg.vocab_size, cfg.d_model):
                raise ModelError(f"{source}: tie_word_embeddings=false but no lm_head.weight of shape ({cfg.vocab_size}, {cfg.d_model})")
            self.lm_head_weight = nn.Parameter(head.float().clone(), requires_grad=False)

    # ---- forward passes

    def logits(self, input_ids: Tensor) -> Tensor:
        """input_ids (b, l) -> MLM logits (b, l, V), float32 (as `CaduceusForMaskedLM(...).logits`)."""
        return self.backbone.lm_logits(self.backbone(input_ids), self.lm_head_weight)

    def pooled(self, input_ids: Tensor) -> Tensor:
        """Unpadded ids (b, l), l >= 1 -> RC-invariant mean of the final hidden state (b, d)."""
        d = self.cfg.d_model
        if self.cfg.rcps:
            h = self.backbone(input_ids).mean(dim=1)  # (b, 2d)
            return 0.5 * (h[..., :d] + h[..., d:].flip(-1))
        rc = self.backbone.complement[input_ids.flip(1)]  # (b, l) reverse complement
        h = self.backbone(torch.cat([input_ids, rc], dim=0)).mean(dim=1)  # (2b, d)
        b = input_ids.shape[0]
        return 0.5 * (h[:b] + h[b:])

    def window_vectors(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """tokens (n, L) long right-padded with PAD, lengths (n,) -> (n, d) float32, NOT normalised.

        Rows of each distinct length run together on their valid tokens only, so padding never changes a
        vector (the model is bidirectional: padding would leak into every position). Length 0 -> zeros.
        Differentiable (no no_grad here: the caller decides).
        """
        lengths = lengths.to(tokens.device)
        out = torch.zeros(tokens.shape[0], self.cfg.d_model, device=tokens.device)
        for length in torch.unique(lengths).tolist():
            if length <= 0:
                continue
            rows = torch.nonzero(lengths == length).squeeze(1)
            out = out.index_copy(0, rows, self.pooled(tokens[rows, :length].long()).float())
        return out

    def record_vectors(self, win: Tensor, lengths: Tensor, segment: Tensor, n_records: int) -> Tensor:
        """(n, d) window vectors -> (r, d): length-weighted mean of each record's windows, L2-normalised."""
        w = lengths.to(win.device, win.dtype)  # (n,)
        return F.normalize(weighted_segment_mean(win, w, segment.to(win.device), n_records), dim=-1)

    def window_outputs(self, win: Tensor) -> Tensor:
        """(n, d) -> (n, d) L2-normalised (--save-windows)."""
        return F.normalize(win.float(), dim=-1)

    def window_embeddings(self, win: Tensor) -> tuple[Tensor, None]:
        """(n, d) -> the window vectors themselves (no head) and no pooling logits (length-weighted mean)."""
        return win.float(), None

    def pool_embeddings(self, values: Tensor, lengths: Tensor, logits: None) -> Tensor:
        """One record's (k, d) window vectors and (k,) bp -> (d,): record_vectors for one record."""
        if len(values) == 1:
            return F.normalize(values[0].float(), dim=-1)
        segment = torch.zeros(len(values), dtype=torch.long, device=values.device)
        return self.record_vectors(values, lengths, segment, 1)[0]

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Same as window_vectors (so the module can be called)."""
        return self.window_vectors(tokens, lengths)


def _backbone_prefix(tensors: dict[str, Tensor], source: Path) -> str:
    """'caduceus.backbone.' for CaduceusForMaskedLM / ForSequenceClassification files, 'backbone.' for Caduceus."""
    for key in tensors:
        for tail in ("backbone.norm_f.weight", "backbone.norm_f.submodule.weight"):
            if key.endswith(tail):
                return key[: -len(tail)] + "backbone."
    raise ModelError(f"{source} holds no Caduceus backbone (no tensor named ...backbone.norm_f.weight); not a Caduceus checkpoint")
