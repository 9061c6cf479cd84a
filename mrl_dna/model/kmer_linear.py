"""A k-mer-only model with a linear head and mean pooling, in numpy: what `embed` runs for such a model (the
bundled default) when no window vectors are saved (issue 24).

For these models a record's vector is, in exact arithmetic, the head applied ONCE to the record's pooled
profile: with x_w the transformed k-mer profile of window w (KmerProfile: sqrt(K * f) - 1) and l_w its length,

    normalise(sum_w l_w (W x_w + b) / sum_w l_w)  =  normalise(W (sum_w l_w x_w / sum_w l_w) + b),

so instead of a (2,080 x 512) product per 2 kb window there is one per record, and what is left per base is
counting canonical k-mers (kmer.window_kmer_counts). The two orders agree to float rounding (~1e-7); the bits
differ from the per-window path (MrlDnaModel through embed's batches, still used for --save-windows' window vectors).

Bits independent of threads, batches and shards, by the order of operations:
- window profiles in float64, summed per record in groups of GROUP_WINDOWS windows counted from the record's
  first window (each group's rows added in order, then the groups in order): a record's sum never depends on
  which other records were counted with it or on which thread counted it; one window is its own profile;
- the head as a float32 product of a FIXED shape (HEAD_ROWS pooled profiles, zero rows filling the last
  block) on one BLAS thread (runtime.one_blas_thread), so a row's bits do not depend on the rows beside it.
Nothing here imports torch: a `mrl-dna embed` with this model starts in a fraction of the time (`loader.
load_embedder`); `KmerLinearModel.of(model)` gives the same maths for a loaded MrlDnaModel.

Axis letters: w windows, r records, K canonical k-mers (the window-vector width), D output width.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from mrl_dna.errors import ModelError
from mrl_dna.runtime import one_blas_thread
from mrl_dna.kmer import window_kmer_counts
from mrl_dna.model.base import ModelInfo, read_config, read_weights
from mrl_dna.model.config import KmerTransform, ModelConfig, Pooling

# Windows summed together before their sum joins the record's (the order of the float64 additions); also the
# most windows counted in one call per record piece (memory: GROUP_WINDOWS x K int64 counts).
GROUP_WINDOWS = 128
# Pooled profiles per head product: every product has this shape, so a row's bits never depend on its block.
HEAD_ROWS = 64
_WEIGHTS = ("head.weight", "head.bias")


class KmerLinearModel:
    """The numpy form of an MrlDnaModel whose encoder is the k-mer profile alone (learned false), whose head is
    one linear layer (head_hidden 0) and whose pooling is length-weighted mean (`applies`)."""

    model_type = ModelConfig.model_type

    def __init__(self, config: ModelConfig, weight: np.ndarray, bias: np.ndarray, weights_hash: str,
                 directory: Path | None = None) -> None:
        if not self.applies(config):
            raise ModelError(f"model {config.name!r} is not a k-mer-only model with a linear head and mean pooling")
        self.config, self.directory, self._hash = config, directory, weights_hash
        self.k = config.encoder.kmer_features
        self.sqrt = config.encoder.kmer_transform == KmerTransform.sqrt
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)  # (D, K), as stored (no transposed copy)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)  # (D,)
        self.n_features = self.weight.shape[1]

    @staticmethod
    def applies(config) -> bool:
        """Whether a config is one whose record vector is the head of its pooled profile (module docstring)."""
        enc = getattr(config, "encoder", None)
        return (isinstance(config, ModelConfig) and not enc.learned and bool(enc.kmer_features)
                and not config.head_hidden and config.pooling == Pooling.mean)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "KmerLinearModel":
        """The model a directory holds (config.json + model.safetensors), read without torch; ModelError naming
        the problem, as SavedWeights.from_pretrained does."""
        from safetensors.numpy import load_file
        from safetensors.numpy import save as safetensors_bytes

        directory = Path(directory)
        config = ModelConfig.from_dict(read_config(directory))
        weights, state = read_weights(directory, load_file)
        K, D = config.encoder.out_dim, config.dim
        if set(state) != set(_WEIGHTS) or state["head.weight"].shape != (D, K) or state["head.bias"].shape != (D,):
            raise ModelError(f"{weights} does not match its config.json (it holds {sorted(state)[:3]}, a k-mer-only "
                             f"model with a linear head holds {list(_WEIGHTS)} of shapes ({D}, {K}), ({D},)); the "
                             "two files come from different models")
        state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
        digest = hashlib.sha256(safetensors_bytes(state)).hexdigest()  # = SavedWeights.weights_hash
        return cls(config, state["head.weight"], state["head.bias"], digest, directory.resolve())

    @classmethod
    def of(cls, model) -> "KmerLinearModel":
        """The numpy form of a loaded (torch) MrlDnaModel for which `applies` holds."""
        head = model.head
        return cls(model.config, head.weight.detach().cpu().float().numpy(), head.bias.detach().cpu().float().numpy(),
                   model.weights_hash(), getattr(model, "directory", None))

    def torch_model(self):
        """The same model as an MrlDnaModel (torch), e.g. for --save-windows' per-window vectors."""
        import torch

        from mrl_dna.model.mrl import MrlDnaModel

        model = MrlDnaModel(self.config)
        model.load_state_dict({"head.weight": torch.from_numpy(self.weight.copy()),
                               "head.bias": torch.from_numpy(self.bias.copy())})
        model.directory = self.directory
        return model.eval()

    @property
    def info(self) -> ModelInfo:
        c = self.config
        return ModelInfo(name=c.name, kind=self.model_type, weights_hash=self._hash, dim=c.dim,
                         matryoshka_dims=c.matryoshka_dims, window=c.window, window_stride=c.window_stride,
                         pooling=c.pooling.value)

    def weights_hash(self) -> str:
        return self._hash

    # ---- the maths ------------------------------------------------------------------------------------------
    def window_profiles(self, tokens: np.ndarray, spans: np.ndarray) -> np.ndarray:
        """(w, K) float32 transformed profiles of the windows [start, end) of a token array (KmerProfile's
        values: sqrt(K f) - 1 or K f - 1; 0 for a window without a k-mer)."""
        return self._profiles(window_kmer_counts(tokens, self.k, spans))

    def _profiles(self, counts: np.ndarray) -> np.ndarray:
        total = counts.sum(axis=1)  # (w,)
        scale = self.n_features / np.maximum(total, 1)  # (w,) K / t_w
        if self.sqrt:
            x = self._sqrt(counts)
            x *= np.sqrt(scale).astype(np.float32)[:, None]
        else:
            x = counts * scale.astype(np.float32)[:, None]
        x -= (total > 0).astype(np.float32)[:, None]
        return x

    @staticmethod
    def _sqrt(counts: np.ndarray) -> np.ndarray:
        top = int(counts.max(initial=0))
        return _sqrt_table(top)[counts] if top <= 1 << 16 else np.sqrt(counts, dtype=np.float32)

    def piece_sums(self, tokens: np.ndarray, spans: np.ndarray, starts: np.ndarray,
                   single: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows [start, end) of a token array, cut into pieces of consecutive windows (`starts`: each
        piece's first window; `single`: the pieces that are a one-window record) -> (pieces not single, K)
        float64 sums of l_w x_w over each such piece (its windows added in order, so a piece's sum does not
        depend on the others), and (single pieces, K) float32 profiles x_w of the single pieces' windows (a
        one-window record's vector is its window's).

        l_w x_w = a_w sqrt(c_w) - l_w with a_w = l_w sqrt(K / t_w) for a window of t_w > 0 k-mers (x_w = 0 without
        any): one pass over the (w, K) counts instead of a transformed copy of them."""
        counts = window_kmer_counts(tokens, self.k, spans)  # (w, K) int64
        starts = np.asarray(starts, dtype=np.intp)
        x = self._profiles(counts[starts[single]]) if single.any() else counts[:0].astype(np.float32)
        if single.all():
            return np.zeros((0, counts.shape[1])), x
        ends = np.append(starts[1:], len(counts))
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts[~single], ends[~single])])
        counts = counts[rows]
        lens = ends[~single] - starts[~single]
        total = counts.sum(axis=1)  # (w,)
        lengths = (spans[rows, 1] - spans[rows, 0]).astype(np.float64) * (total > 0)  # (w,) l_w, 0 without a k-mer
        scale = self.n_features / np.maximum(total, 1)  # (w,) K / t_w
        if self.sqrt:
            y = self._sqrt(counts)  # (w, K) sqrt(c)
            y *= (lengths * np.sqrt(scale)).astype(np.float32)[:, None]
        else:
            y = counts * (lengths * scale).astype(np.float32)[:, None]
        first = np.cumsum(lens) - lens
        sums = np.add.reduceat(y, first, axis=0, dtype=np.float64)  # (pieces, K), float32 terms added in float64
        sums -= np.add.reduceat(lengths, first)[:, None]
        return sums, x

    def head(self, pooled: np.ndarray) -> np.ndarray:
        """(r, K) pooled profiles -> (r, D) float32 L2-normalised record vectors: the linear head in products of
        HEAD_ROWS rows (zero rows fill the last), one BLAS thread."""
        r, K = pooled.shape
        out = np.empty((r, self.bias.shape[0]), dtype=np.float32)  # (r, D)
        block = np.zeros((HEAD_ROWS, K), dtype=np.float32)
        with one_blas_thread():  # a product split over threads may sum in another order
            for i in range(0, r, HEAD_ROWS):
                m = min(HEAD_ROWS, r - i)
                block[:m] = pooled[i : i + m]
                block[m:] = 0.0
                y = (self.weight @ block.T).T[:m]  # (m, D) float32, a (D, K) x (K, HEAD_ROWS) product
                y += self.bias
                y64 = y.astype(np.float64)
                norm = np.sqrt(np.einsum("ij,ij->i", y64, y64))[:, None]
                out[i : i + m] = y64 / np.maximum(norm, 1e-12)
        return out


@lru_cache(maxsize=8)
def _sqrt_table(top: int) -> np.ndarray:
    """sqrt(0..n) float32 for the smallest power of two n >= top (a count's square root by lookup)."""
    n = 1 << max(top, 1).bit_length()
    return np.sqrt(np.arange(n + 1, dtype=np.float64)).astype(np.float32)


