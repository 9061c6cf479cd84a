"""Where torch runs: the one device resolver (embed, search, eval, train) and the `--device` choice."""

from __future__ import annotations

import enum

import torch

from mrl_dna.errors import ConfigError


class Device(str, enum.Enum):
    """`--device` of train and search (embed and eval also take cuda:N, as a string)."""

    auto = "auto"  # a GPU when torch sees one, else the CPU
    cpu = "cpu"
    cuda = "cuda"


def resolve_device(device: str | Device) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cpu'; 'cuda' / 'cuda:N' (ConfigError when not available)."""
    device = device.value if isinstance(device, Device) else str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} asked for, but this torch sees no CUDA GPU; use --device cpu or auto")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return dev
