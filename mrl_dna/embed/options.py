"""`EmbedOptions`: the options of `mrl-dna embed`, in one place for every function that embeds.

embed_sequences and embed_files read the ones that shape a vector (window, stride, max N, batch_tokens, device,
compile, save_windows, prefetch); embed_fasta and embed_distributed read them all. `window_config` is the one
place where the window and stride defaults (the model's own) are resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrl_dna.model import ModelInfo
from mrl_dna.windows import WindowConfig

# The stride of the windows `--save-windows` stores when no --windows-stride is given (never more than the
# record stride). Window-level ANI needs dense target windows: a query window lies up to stride/2 from the
# nearest saved window, and that offset is the error at the top (simulated genome-level error at >= 95%
# identity: 0.2-0.3 ANI points at 250 bp, ~1.0 at 1,000, 2.5 at 2,048; research memo of issue 20, section 1).
SAVED_WINDOWS_STRIDE = 250


@dataclass(frozen=True)
class EmbedOptions:
    # What shapes a vector (each is a file attribute that resume and merge compare).
    window: int | None = None  # bp; None = the model's own window (the one it was trained on)
    stride: int | None = None  # bp; None = the window when one is given, else the model's stride
    max_n_fraction: float = WindowConfig.max_n_fraction  # windows with more N are skipped
    # Bases per batch; None = by device (pipeline.default_batch_tokens). Vectors are the same bit for bit for
    # one value whatever the records around them; another value may move their last bits.
    batch_tokens: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N (device.resolve_device)
    compile: bool = False  # torch.compile each batch's computation (pipeline.compiled_forward): last bits move
    # What is stored.
    save_windows: bool = False  # also each window's vector and coordinates (search --level windows)
    # bp between saved windows; None = SAVED_WINDOWS_STRIDE or the record stride when that is smaller. Record
    # vectors are pooled from the stride's windows whatever this is (saved_windows_config).
    windows_stride: int | None = None
    dtype: str = "float32"  # stored precision: float32 | float16
    per_file: bool = False  # one row per input file (embed_files) instead of one per record
    # What is read.
    regions: str | Path | None = None  # a BED file: its intervals of the one input FASTA are the records
    shard: tuple[int, int] | None = None  # (I, N): only shard I of N, balanced by bases (store.shards)
    # The output.
    resume: bool = True  # continue an interrupted OUTPUT.partial of the same input and options
    overwrite: bool = False  # replace a complete OUTPUT (--force)
    # The engine: read and window records in a worker thread (None: on a GPU only; on a CPU the model's
    # threads use the cores).
    prefetch: bool | None = None

    def window_config(self, info: ModelInfo) -> WindowConfig:
        """The windows this run cuts for a model: the given window and stride, else the model's (a given
        window without a stride gets stride = window). Checked here (ConfigError), before any work."""
        size = self.window or info.window
        stride = self.stride or (self.window if self.window else info.window_stride)
        return WindowConfig(size=size, stride=stride, max_n_fraction=self.max_n_fraction)

    def saved_windows_config(self, info: ModelInfo) -> WindowConfig:
        """The windows --save-windows stores: window_config's, cut at the saved-window stride."""
        cfg = self.window_config(info)
        stride = self.windows_stride or min(SAVED_WINDOWS_STRIDE, cfg.stride)
        return WindowConfig(size=cfg.size, stride=stride, max_n_fraction=cfg.max_n_fraction)
