"""Caduceus-style encoder: a strided k-mer stem, BiMamba layers, reverse-complement parameter sharing.

Axis glossary:
    b  windows in the batch          s  strands (2: forward, reverse complement)
    L  bases in a window             l  tokens (= ceil(L / stride))
    e  stem channels                 d  d_model
    i  d_inner (= expand * d_model)  h  heads, p  headdim (i = h * p), n  state size

How it follows Caduceus (kuleshov-group/caduceus, modeling_caduceus.py / modeling_rcps.py) and where it differs:
- RC equivariance by parameter sharing (Caduceus-PS): Caduceus keeps a forward half and an RC half of the
  channels, and every RCPS module applies the same weights to the forward half and to the (length- and
  channel-) flipped RC half. Here the RC half is a second batch entry holding revcomp(x) with the same
  weights: the same computation, laid out on the batch axis instead of the channel axis, so no module needs
  an RCPS twin. The window vector is mean_tokens(h(x)) + mean_tokens(h(revcomp x)), which is exactly
  RC-invariant by construction (float addition is commutative).
- BiMamba (Caduceus `BiMambaWrapper`, bidirectional_strategy="add", bidirectional_weight_tie=True): each layer
  runs the mixer on the sequence and on its flip and adds the results; in/out projections are shared between
  the directions, the conv, decay, dt bias and skip are per direction. The flip is per row, within each
  row's valid length, so right-padding never leaks into the reverse pass.
- Mixer: `ssd` (Mamba-2 scalar decay per head; default, fastest on CPU) or `mamba1` (Mamba-1 selective scan,
  as Caduceus). Mamba-2's gated RMSNorm is left out: the gate multiplies the summed directions, which
  lets both directions share one out_proj call.
- Stem: Caduceus embeds one token per base. Here a conv over one-hot bases (k-mer detector) is followed by
  a patch conv with kernel = stride = `stride`, giving one token per `stride` bases. This is what makes the
  encoder fast enough on a CPU (PERF_NOTES.md: one token per base tops out near 7 kbp/s).
"""

from __future__ import annotations

import contextlib
import contextvars
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrl_dna import dna
from mrl_dna.model.config import Backbone, EncoderConfig, Mixer, Patch, PoolNorm
from mrl_dna.kmer import canonical_index
from mrl_dna.model.scan import ssd_scan
from mrl_dna.model.selective_scan import selective_scan

# token id -> one-hot row over A, C, G, T (N, PAD and specials -> zeros)
_ONE_HOT = torch.zeros(256, 4)
for _j, _id in enumerate(dna.BASES):
    _ONE_HOT[_id, _j] = 1.0
# token id -> complement token id
_COMPLEMENT = torch.from_numpy(dna.COMPLEMENT.astype("int64"))


# The dtype the stem and the BiMamba layers run in under `trunk_autocast` (None: as the weights, fp32).
_TRUNK_DTYPE: contextvars.ContextVar[torch.dtype | None] = contextvars.ContextVar("trunk_dtype", default=None)


@contextlib.contextmanager
def trunk_autocast(dtype: torch.dtype | None):
    """Run the encoders' stem and mixer layers (the token-level trunk) under autocast to `dtype` inside this
    block; everything after the trunk (the pooled features, their norm, the k-mer profile, the head) stays fp32.
    Training on a CPU uses it (`train --cpu-bf16`): the trunk is most of a step's cost and bf16 halves it, while
    the pooled features keep fp32: their window-to-window differences (~1e-3 of their size) are below bf16's
    resolution (2^-8), and the k-mer part of the embedding stays exact. Inference never enters this block, so
    saved models embed in fp32 exactly as before."""
    token = _TRUNK_DTYPE.set(dtype)
    try:
        yield
    finally:
        _TRUNK_DTYPE.reset(token)


def revcomp_tokens(tokens: Tensor, lengths: Tensor) -> Tensor:
    """Reverse complement of each row within its valid length; padding stays at the right. (b, L) -> (b, L)."""
    comp = _COMPLEMENT.to(tokens.device)[tokens]
    return flip_valid(comp, lengths, dim=1)


def flip_valid(x: Tensor, lengths: Tensor, dim: int = 1) -> Tensor:
    """Flip along `dim` within each row's first `lengths[row]` positions; positions past it stay in place."""
    size = x.shape[dim]
    # the plain flip when every row is full (a CPU test); on a GPU always the gather, the same values without
    # the host sync the test would cost in every batch
    if not x.is_cuda and bool((lengths == size).all()):
        return x.flip(dim)
    pos = torch.arange(size, device=x.device)
    idx = torch.where(pos[None, :] < lengths[:, None], lengths[:, None] - 1 - pos[None, :], pos[None, :])  # (b, l)
    shape = [idx.shape[0], size] + [1] * (x.dim() - 2)
    idx = idx.view(shape).expand_as(x) if dim == 1 else idx  # only dim=1 is used
    return x.gather(dim, idx)


class KmerProfile(nn.Module):
    """Canonical k-mer frequencies of each window: (b, L) ids + lengths -> (b, n_canonical).

    Exactly RC-invariant (a k-mer and its reverse complement count as one) and independent of padding
    (k-mers that touch N, PAD or the row end are not counted). K canonical k-mers with frequencies f are
    scaled as sqrt(K * f) - 1 (`transform="sqrt"`, the Hellinger embedding) or K * f - 1 ("centered"), so
    a uniform composition is 0 and the head sees values of order one."""

    def __init__(self, k: int, transform: str = "sqrt") -> None:
        super().__init__()
        self.k = k
        self.transform = transform
        self.register_buffer("canon", torch.from_numpy(canonical_index(k).copy()), persistent=False)
        self.n = int(self.canon.max()) + 1
        base = torch.full((256,), -1, dtype=torch.long)
        for j, tok in enumerate(dna.BASES):
            base[tok] = j
        self.register_buffer("base", base, persistent=False)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        b, L = tokens.shape
        k = self.k
        if L < k:
            return tokens.new_zeros(b, self.n, dtype=torch.float32)
        x = self.base[tokens]  # (b, L): 0..3, or -1 for N / PAD / other
        n = L - k + 1
        # the 2-bit code of the k-mer at each start, built by k shifted adds over (b, n) (no (b, n, k) tensor)
        bits = x.clamp(min=0)
        code = bits[:, :n].clone()
        for j in range(1, k):
            code.mul_(4).add_(bits[:, j : j + n])
        # a k-mer counts when none of its k tokens is a non-base (PAD past the row end is -1): windowed sum of bad
        bad = F.pad((x < 0).to(torch.int32).cumsum(1), (1, 0))  # (b, L + 1): bad tokens before each position
        valid = bad[:, k:] == bad[:, :n]  # (b, n)
        idx = self.canon[code]  # (b, n)
        counts = torch.zeros(b, self.n, device=x.device).scatter_add_(1, idx, valid.float())
        total = counts.sum(1, keepdim=True)
        scaled = counts / total.clamp(min=1.0) * self.n
        if self.transform == "sqrt":
            scaled = scaled.sqrt()
        return scaled - (total > 0).float()  # a window without any k-mer stays all 0


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def _conv1d_channels_last(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """`conv` (stride 1, its own padding and groups) on a channels-last input, first l outputs kept:
    (b, l, c) -> (b, l, c'). That is Mamba's causal conv (padding = kernel - 1) and a centred k-mer conv
    (padding = kernel // 2; an even kernel gives one output too many). Run as a 2-D conv over a (b, c, 1, l)
    channels-last view, which oneDNN computes without the transposes a Conv1d needs here (bench/HISTORY.md)."""
    l = x.shape[1]
    y = F.conv2d(x[:, None].permute(0, 3, 1, 2), conv.weight[:, :, None], conv.bias, padding=(0, conv.padding[0]),
                 groups=conv.groups)  # (b, c', 1, l + 2 * padding - kernel + 1), channels-last in memory
    return y.permute(0, 2, 3, 1)[:, 0, :l]


class Stem(nn.Module):
    """One-hot bases -> k-mer conv -> GELU -> patch conv: (b, L) token ids -> (b, l, d) with l = ceil(L/stride).

    The two convs keep their nn.Conv1d parameters (checkpoints and Caduceus-style state dicts), but forward
    lays the work out channels-last, which a CPU runs ~1.7x faster (bench/HISTORY.md): the one-hot bases
    (b, L, 4) go through the k-mer conv channels-last (`_conv1d_channels_last`, out as (b, L, e)), and the
    patch conv, whose kernel equals its stride, is one matmul of (b, l, stride * e) rows. Same function as the Conv1d calls up to float summation order.
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.stride = cfg.stride
        self.mode = cfg.patch
        self.kmer = nn.Conv1d(4, cfg.stem_channels, cfg.stem_kernel, padding=cfg.stem_kernel // 2)
        if self.mode == Patch.conv:
            self.patch = nn.Conv1d(cfg.stem_channels, cfg.d_model, cfg.stride, stride=cfg.stride)
        else:  # Patch.mean: the patch's mean feature, then one linear map
            self.patch = nn.Linear(cfg.stem_channels, cfg.d_model)

    def forward(self, tokens: Tensor) -> Tensor:
        b, L = tokens.shape
        pad = (-L) % self.stride
        # past a row's end the one-hot input is zero whether the row is padded in a batch or alone,
        # so every valid token sees exactly the same inputs in both cases
        x = _ONE_HOT.to(device=tokens.device, dtype=self.kmer.weight.dtype)[F.pad(tokens, (0, pad), value=dna.PAD)]  # (b, L', 4)
        x = F.gelu(_conv1d_channels_last(self.kmer, x))  # (b, L', e)
        if self.mode == Patch.mean:
            return self.patch(x.reshape(b, (L + pad) // self.stride, self.stride, -1).mean(2))  # (b, l, e) -> (b, l, d)
        w = self.patch.weight.permute(2, 1, 0).reshape(-1, self.patch.out_channels)  # (stride * e, d): row j*e + c
        return x.reshape(b, (L + pad) // self.stride, -1) @ w + self.patch.bias  # (b, l, d)


class BiSSD(nn.Module):
    """Bidirectional scalar-decay mixer with tied in/out projections: (b, l, d) -> (b, l, d)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        i, n, h = cfg.d_inner, cfg.d_state, cfg.n_heads
        self.d_inner, self.d_state, self.n_heads, self.headdim = i, n, h, cfg.headdim
        self.in_proj = nn.Linear(cfg.d_model, 2 * i + 2 * n + h, bias=False)  # -> z, x, B, C, dt
        conv_ch = i + 2 * n
        # per direction (index 0 forward, 1 reverse): depthwise causal conv, dt bias, decay, skip
        self.conv = nn.Conv1d(2 * conv_ch, 2 * conv_ch, cfg.d_conv, groups=2 * conv_ch, padding=cfg.d_conv - 1)
        dt = torch.exp(torch.rand(2, h) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus, as Mamba-2
        self.A_log = nn.Parameter(torch.log(torch.empty(2, h).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(2, h))
        self.out_proj = nn.Linear(i, cfg.d_model, bias=False)

    def forward(self, u: Tensor, lengths: Tensor) -> Tensor:
        b, l, _ = u.shape
        i, n, h, p = self.d_inner, self.d_state, self.n_heads, self.headdim
        z, xbc, dt = self.in_proj(u).split([i, i + 2 * n, h], dim=-1)
        xbc2 = torch.cat([xbc, flip_valid(xbc, lengths)], dim=-1)  # (b, l, 2(i+2n)): both directions
        xbc2 = F.silu(_conv1d_channels_last(self.conv, xbc2))  # (b, l, 2(i+2n))
        xbc2 = xbc2.reshape(b, l, 2, i + 2 * n).permute(2, 0, 1, 3).reshape(2 * b, l, i + 2 * n)  # (2b, l, .)
        x, B, C = xbc2.split([i, n, n], dim=-1)
        dt2 = torch.stack([dt, flip_valid(dt, lengths)])  # (2, b, l, h)
        dt2 = F.softplus(dt2.float() + self.dt_bias[:, None, None, :])
        log_a = (dt2 * -self.A_log.float().exp()[:, None, None, :]).reshape(2 * b, l, h)
        x = x.reshape(2 * b, l, h, p)
        y = ssd_scan(x * dt2.reshape(2 * b, l, h, 1).to(x.dtype), log_a, B, C)
        y = y + x * self.D.repeat_interleave(b, dim=0)[:, None, :, None]  # (2b, l, h, p)
        y = y.reshape(2, b, l, i)
        y = y[0] + flip_valid(y[1], lengths)  # directions added back in forward order
        return self.out_proj(y * F.silu(z))


class BiMamba1(nn.Module):
    """Bidirectional Mamba-1 mixer (Caduceus' BiMambaWrapper with weight tie): (b, l, d) -> (b, l, d).

    Mirrors mamba-ssm's `Mamba.forward` (mamba_simple.py) without its fused fast path: in_proj -> causal
    depthwise conv -> x_proj -> dt_proj -> selective scan -> gate -> out_proj. The two directions share
    in_proj/out_proj; their conv, x_proj, dt_proj, A_log and D are separate, and both run in one scan call
    (directions stacked on the channel axis, B/C as two groups).
    """

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        i, n, r = cfg.d_inner, cfg.d_state, cfg.dt_rank
        self.d_inner, self.d_state, self.dt_rank = i, n, r
        self.in_proj = nn.Linear(cfg.d_model, 2 * i, bias=False)  # -> x, z
        self.conv = nn.Conv1d(2 * i, 2 * i, cfg.d_conv, groups=2 * i, padding=cfg.d_conv - 1)
        self.x_proj = nn.ModuleList(nn.Linear(i, r + 2 * n, bias=False) for _ in range(2))
        self.dt_proj = nn.ModuleList(nn.Linear(r, i) for _ in range(2))
        for proj in self.dt_proj:  # Mamba's dt init: softplus(bias) log-uniform in [1e-3, 1e-1]
            dt = torch.exp(torch.rand(i) * (math.log(0.1) - math.log(0.001)) + math.log(0.001))
            with torch.no_grad():
                proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1, dtype=torch.float32)).repeat(2 * i, 1))  # (2i, n)
        self.D = nn.Parameter(torch.ones(2 * i))
        self.out_proj = nn.Linear(i, cfg.d_model, bias=False)

    def forward(self, u: Tensor, lengths: Tensor) -> Tensor:
        b, l, _ = u.shape
        i, n, r = self.d_inner, self.d_state, self.dt_rank
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (b, l, i) each
        x2 = torch.cat([x, flip_valid(x, lengths)], dim=-1)  # (b, l, 2i): forward | reverse direction
        x2 = F.silu(self.conv(x2.transpose(1, 2))[..., :l])  # (b, 2i, l)
        deltas, Bs, Cs = [], [], []
        for k, xk in enumerate(x2.split(i, dim=1)):
            dbc = self.x_proj[k](xk.transpose(1, 2))  # (b, l, r + 2n)
            dt, B, C = dbc.split([r, n, n], dim=-1)
            deltas.append(F.linear(dt, self.dt_proj[k].weight).transpose(1, 2))  # (b, i, l), bias added in the scan
            Bs.append(B.transpose(1, 2))
            Cs.append(C.transpose(1, 2))
        bias = torch.cat([self.dt_proj[0].bias, self.dt_proj[1].bias])
        y = selective_scan(
            x2, torch.cat(deltas, dim=1), -self.A_log.float().exp(), torch.stack(Bs, 1), torch.stack(Cs, 1),
            D=self.D, delta_bias=bias, delta_softplus=True,
        )  # (b, 2i, l)
        y = y.transpose(1, 2)  # (b, l, 2i)
        y = y[..., :i] + flip_valid(y[..., i:], lengths)
        return self.out_proj(y * F.silu(z))


class Block(nn.Module):
    """Pre-norm residual block: h + mixer(norm(h)) (Caduceus/Mamba block, unfused add+norm)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        if cfg.mixer == Mixer.ssd:
            self.mixer = BiSSD(cfg)
        else:
            self.mixer = BiMamba1(cfg)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return x + self.mixer(self.norm(x), lengths)


class Encoder(nn.Module):
    """Window tokens -> one RC-invariant vector per window: (b, L) ids + lengths (b,) -> (b, e [+ n_kmers]).

    e = pool_features (a GELU projection of every token state, averaged: a learned bag of local features) or
    d_model (the token states averaged). With `kmer_features` on, the window vector also holds the window's
    canonical k-mer frequencies (a deviation from Caduceus, which has no sequence-level output at all: see
    EncoderConfig.kmer_features). With `learned` off there is no stem or mixer: the k-mer block alone (the
    ablation the learned part is measured against). With backbone kmer-mlp the learned part is one GELU layer
    on the k-mer profile instead of the stem + BiMamba (the nonlinear control, issue 21)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.learned and cfg.backbone == Backbone.bimamba:
            self.stem = Stem(cfg)
            self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
            self.norm_f = RMSNorm(cfg.d_model, cfg.norm_eps)
            # token state -> pool_features GELU features, averaged over the window (EncoderConfig.pool_features)
            self.pool_proj = nn.Linear(cfg.d_model, cfg.pool_features) if cfg.pool_features else None
        elif cfg.learned:  # Backbone.kmer_mlp: k-mer profile -> pool_features GELU units (the head is the 2nd layer)
            self.kmer_mlp = nn.Linear(cfg.n_kmer_features, cfg.pool_features)
        if cfg.learned:
            # the learned features normalised (EncoderConfig.pool_norm); the linear head supplies the affine part
            self.pool_norm = (nn.BatchNorm1d(cfg.learned_dim, affine=False) if cfg.pool_norm == PoolNorm.batch
                              else nn.LayerNorm(cfg.learned_dim, eps=cfg.norm_eps, elementwise_affine=False)
                              if cfg.pool_norm == PoolNorm.layer else None)
        self.kmer = KmerProfile(cfg.kmer_features, cfg.kmer_transform) if cfg.kmer_features else None

    def token_states(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """Final hidden states of one strand: (b, L), (b,) -> (b, l, d); rows past ceil(len/stride) are junk.
        Under `trunk_autocast` in that dtype, else fp32."""
        n_tok = (lengths + self.cfg.stride - 1) // self.cfg.stride
        dtype = _TRUNK_DTYPE.get()
        # no context at all without trunk_autocast: an autocast(enabled=False) would switch off a caller's own
        # autocast (CUDA training's bf16)
        with torch.autocast(tokens.device.type, dtype) if dtype is not None else contextlib.nullcontext():
            h = self.stem(tokens)
            for layer in self.layers:
                h = layer(h, n_tok)
            return self.norm_f(h)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        kmers = self.kmer(tokens, lengths) if self.kmer is not None else None  # (b, n_kmers)
        if not self.cfg.learned:
            return kmers
        if self.cfg.backbone == Backbone.kmer_mlp:
            learned = self._normed(F.gelu(self.kmer_mlp(kmers)))  # (b, e)
        else:
            learned = self.pooled_features(tokens, lengths)  # (b, e)
        return learned if kmers is None else torch.cat([learned, kmers], dim=-1)  # (b, e + n_kmers)

    def _normed(self, vec: Tensor) -> Tensor:
        return self.pool_norm(vec) if self.pool_norm is not None else vec

    def pooled_features(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The learned part of the window vector: (b, L), (b,) -> (b, e), e = pool_features or d_model;
        the mean over each strand's valid tokens, forward + reverse-complement strand (RC-invariant)."""
        b = tokens.shape[0]
        both = torch.cat([tokens, revcomp_tokens(tokens, lengths)])  # (2b, L): strand s = 0 forward, 1 RC
        lengths2 = torch.cat([lengths, lengths])
        h = self.token_states(both, lengths2).float()  # (2b, l, d)
        if self.pool_proj is not None:
            h = F.gelu(self.pool_proj(h))  # (2b, l, e)
        n_tok = (lengths2 + self.cfg.stride - 1) // self.cfg.stride
        valid = (torch.arange(h.shape[1], device=h.device)[None, :] < n_tok[:, None]).float()  # (2b, l)
        # every window full (a training batch, most embed batches): the same sum without the mask's multiply by
        # 1.0 (exact, so the same bits) and its backward; the test is skipped on a GPU (no host sync per batch)
        full = not h.is_cuda and bool((n_tok == h.shape[1]).all())
        mean = (h if full else h * valid[..., None]).sum(1) / n_tok.clamp(min=1)[:, None].float()  # (2b, e)
        vec = mean[:b] + mean[b:]  # forward + RC strand: RC-invariant
        return self._normed(vec)  # (b, e)
