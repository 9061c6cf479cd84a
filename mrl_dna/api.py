"""The Python API: `load_model(path).encode(sequences)` and `read_embeddings(path)`.

    >>> import mrl_dna
    >>> model = mrl_dna.load_model()                       # the bundled default model
    >>> X = model.encode(["ACGT" * 1000, "GATTACA" * 300], dim=64)
    >>> X.shape, X.dtype                                    # (n, dim), rows L2-normalised
    ((2, 64), dtype('float32'))
    >>> ids, Y = mrl_dna.read_embeddings("sample.h5", dim=64)   # what `mrl-dna embed` wrote

`encode` runs the very pipeline `mrl-dna embed` runs (embed.embed_sequences: the same windows, fixed-shape
batches, pooling and head), so its rows are bit for bit the rows `embed` stores for the same sequences at
the same batch size, whatever the thread count of either (tests/test_api.py, tests/test_embed_bitwise.py;
torch's thread count is the number of batches run at once, runtime.batch_threads); a prefix `dim=k` is `normalize(v[:k])`, the same
map `read_embeddings(path, dim=k)` and `mrl-dna search --dim k` apply.

Axis letters: n sequences, D the model's width, k a Matryoshka prefix width.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mrl_dna import console, dna
from mrl_dna.embed import EmbedOptions, embed_sequences
from mrl_dna.errors import ConfigError, InputError
from mrl_dna.inputs.fasta import Record
from mrl_dna.model import ModelInfo
from mrl_dna.model import load_model as _load_module
from mrl_dna.store import EmbeddingStore
from mrl_dna.store.reader import check_dim
from mrl_dna.vectors import truncate_normalize
from mrl_dna.windows import WindowConfig


@dataclass(eq=False)
class Model:
    """A loaded model (mrl-dna, official Caduceus or caduceus-mrl) with `encode`. `module` is the torch
    module itself (eval mode), for users who want the window-level calls of `mrl_dna.model.EmbeddingModel`."""

    module: object  # an EmbeddingModel (torch.nn.Module)
    directory: Path | None  # where it was loaded from

    @property
    def info(self) -> ModelInfo:
        return self.module.info

    @property
    def dim(self) -> int:
        """The full width D (the largest Matryoshka dim)."""
        return self.info.dim

    @property
    def matryoshka_dims(self) -> tuple[int, ...]:
        return self.info.matryoshka_dims

    def encode(self, sequences, dim: int | None = None, *, batch_size: int | None = None, device: str = "auto",
               show_progress: bool = False, window: int | None = None, stride: int | None = None,
               max_n_fraction: float = WindowConfig.max_n_fraction) -> np.ndarray:
        """Sequences -> (n, dim) float32, rows L2-normalised: exactly the rows `mrl-dna embed` stores.

        sequences: one str (gives n = 1) or an iterable of str, bytes, Bio.Seq or Bio.SeqRecord; A C G T U
            in any case, IUPAC codes read as N. Empty and all-N sequences give zero rows (as `embed` stores).
        dim: a prefix width k <= D (normally one of `matryoshka_dims`), returned as normalize(v[:k]);
            None = the full width D.
        batch_size: windows per batch (memory knob); None = embed's default (65,536 bases per batch, 32
            windows of 2,048 bp, on a CPU; 2^20 bases on a GPU). Bitwise equal to `embed --batch-tokens batch_size*window`.
        device: auto | cpu | cuda | cuda:N (bf16 autocast on CUDA, as embed).
        window, stride: window length and stride in bp; None = the model's (as embed without -w/-s).
        """
        D = self.info.dim
        for name, value, what in (("dim", dim, "a prefix width"), ("batch_size", batch_size, "windows per batch"),
                                  ("window", window, "bp"), ("stride", stride, "bp")):
            _check_whole(name, value, what)  # the rules of embed's options (--window 0 is refused, not the default)
        k = check_dim(dim, D, self.info.matryoshka_dims, width="the model's width")
        options = EmbedOptions(window=window, stride=stride, max_n_fraction=max_n_fraction, device=device)
        if batch_size is not None:  # else embed's default for the device
            options = replace(options, batch_tokens=batch_size * options.window_config(self.info).size)
        records = list(_records(sequences))
        out = np.zeros((len(records), D), np.float32)  # (n, D)
        total = sum(len(r) for r in records)
        with (console.progress("encoding", total) if show_progress else _no_progress()) as bar:
            for i, er in enumerate(embed_sequences(records, model=self.module, options=options, progress=bar)):
                out[i] = er.vector
        return out if k == D else truncate_normalize(out, k)

    def __repr__(self) -> str:
        i = self.info
        return (f"mrl_dna.Model({i.name!r}, kind={i.kind!r}, dims={list(i.matryoshka_dims)}, window={i.window}, "
                f"from={str(self.directory) if self.directory else None!r})")


def load_model(path: str | Path | None = None) -> Model:
    """A model directory (mrl-dna, official Caduceus or caduceus-mrl; a hub name only when it is already in
    the local Hugging Face cache) -> Model; None -> the bundled default model. Nothing is downloaded."""
    module = _load_module(path)
    return Model(module=module, directory=getattr(module, "directory", None))


def read_embeddings(path: str | Path, dim: int | None = None) -> tuple[list[str], np.ndarray]:
    """An embedding file written by `mrl-dna embed` or `merge` -> (ids, (n, dim) float32 array), rows
    L2-normalised at that prefix (records without a vector, empty or all N, are zero rows)."""
    with EmbeddingStore.open(path) as store:
        return list(store.ids), store.read(dim)


def _check_whole(name: str, value, what: str) -> None:
    """An encode argument that is a count: None (the default) or a whole number >= 1. A bool is not one
    (dim=True gave a (1, 1) array), and 0 does not mean the default (window=0 silently used the model's)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name}={value!r} is not a whole number ({what}); give an int >= 1, or None for the default")
    if value < 1:
        raise ConfigError(f"{name}={value} must be >= 1 ({what}); None gives the default")


# ------------------------------------------------------------------------------------------------ inputs


_NO_WHITESPACE = str.maketrans("", "", " \t\r\n")


def _records(sequences) -> Iterator[Record]:
    """What encode accepts -> Records named seq0, seq1, ... (a SeqRecord keeps its id)."""
    if isinstance(sequences, (str, bytes, bytearray)) or _is_bio(sequences):
        sequences = [sequences]
    if not isinstance(sequences, Iterable):
        raise InputError(f"encode takes a str or a list of str (or bytes, Bio.Seq, Bio.SeqRecord), not "
                         f"{type(sequences).__name__}")
    for i, s in enumerate(sequences):
        rid = f"seq{i}"
        if hasattr(s, "seq") and hasattr(s, "id"):  # Bio.SeqRecord
            rid, s = str(s.id), s.seq
        if not isinstance(s, (str, bytes, bytearray)):
            if not _is_bio(s):
                raise InputError(f"sequence {i} is a {type(s).__name__}, not a str; encode takes DNA text "
                                 "(str, bytes, Bio.Seq or Bio.SeqRecord)")
            s = str(s)
        if isinstance(s, str):
            s = s.translate(_NO_WHITESPACE)
            text = s.encode("ascii", "replace")  # one byte per character: positions in text are positions in s
        else:
            text = bytes(s).translate(None, b" \t\r\n")
        tokens = dna.encode(text)
        bad = dna.first_invalid(tokens)
        if bad >= 0:  # named as given: 'é', not the '?' that stood for it in `text`
            ch = repr(s[bad]) if isinstance(s, str) else (repr(chr(text[bad])) if text[bad] < 128 else
                                                            f"the byte 0x{text[bad]:02x}")
            raise InputError(f"sequence {i} ({rid}), position {bad + 1}: {ch} is not a DNA base "
                             "(A C G T U or IUPAC); remove it")
        yield Record(id=rid, description="", tokens=tokens, source="python")


def _is_bio(obj) -> bool:
    """A Bio.Seq.Seq (or MutableSeq), without importing biopython."""
    return type(obj).__module__.startswith("Bio.") and hasattr(obj, "reverse_complement")


class _no_progress:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
