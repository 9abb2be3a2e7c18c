"""Where and in what precision a run computes: trainer.device and trainer.dtype, resolved once."""

from __future__ import annotations

import torch

from antisym.errors import ConfigError

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # trainer.dtype: float64 for exactness checks


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is available; use trainer.device=auto or cpu.")
    return torch.device(name)
