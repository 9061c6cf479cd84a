"""Where torch runs: the one device resolver (embed, search, eval, train) and the `--device` check.

`--device` takes auto | cpu | cuda | cuda:N everywhere. `check_device` validates it before any work (the CLI
calls it while parsing options): its form without importing torch, and for cuda whether this torch sees
that GPU (which imports torch: a command that asks for a GPU loads it anyway). torch is imported inside the
functions so that the CLI starts without it.
"""

from __future__ import annotations

import re

from mrl_dna.errors import ConfigError

_FORM = re.compile(r"auto|cpu|cuda(:\d+)?")
CHOICES = "auto, cpu, cuda or cuda:N"


def check_device(device: str) -> str:
    """The --device value as a string, or ConfigError when it is not a device or names a GPU torch cannot see.
    (A string, not an Enum: cuda:N is open-ended; the form is one regular expression, _FORM.)"""
    device = str(device).strip()
    if not _FORM.fullmatch(device):
        raise ConfigError(f"--device {device!r} is not a device; use {CHOICES}")
    if device.startswith("cuda"):
        import torch  # only a GPU request pays for it here

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for, but this torch sees no CUDA GPU; use --device cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                              f"numbered 0..{torch.cuda.device_count() - 1}; pick one of them or use --device cuda")
    return device


def resolve_device(device):
    """'auto' -> cuda when available, else cpu; 'cpu'; 'cuda' / 'cuda:N' (or a torch.device) -> torch.device
    (ConfigError when it is not a device or not available)."""
    import torch

    device = check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
