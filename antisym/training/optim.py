"""Optimizer and learning-rate schedule from config, checked before any work starts."""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import get_class
from torch import nn

from antisym.errors import ConfigError

SCHEDULES = ("constant", "cosine", "step")


def optimizer_class(cfg: Mapping[str, Any]) -> type[torch.optim.Optimizer]:
    """Resolve `_target_` and check every other key is a keyword of that optimizer."""
    target = cfg.get("_target_")
    try:
        cls = get_class(target)
    except Exception:
        raise ConfigError(
            f"optimizer._target_={target!r} is not an importable optimizer class; use e.g. "
            "torch.optim.SGD or pick optimizer=sgd|adagrad|adam|rmsprop."
        ) from None
    accepted = set(inspect.signature(cls).parameters) - {"params"}
    unknown = sorted(k for k in cfg if k != "_target_" and k not in accepted)
    if unknown:
        raise ConfigError(
            f"optimizer field(s) {', '.join(unknown)} are not accepted by {target}; it takes "
            f"{', '.join(sorted(accepted))}. Remove them or pick another optimizer group."
        )
    return cls


def build_optimizer(cfg: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    return optimizer_class(cfg)(model.parameters(), **kwargs)


def validate_schedule(trainer_cfg: Mapping[str, Any]) -> None:
    if trainer_cfg["lr_schedule"] not in SCHEDULES:
        raise ConfigError(f"trainer.lr_schedule={trainer_cfg['lr_schedule']!r}; choose one of {', '.join(SCHEDULES)}.")


def lr_factor(trainer_cfg: Mapping[str, Any], step: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based)."""
    schedule = trainer_cfg["lr_schedule"]
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / max(1, int(trainer_cfg["max_steps"]))))
    if schedule == "step":
        passed = sum(step >= int(s) for s in trainer_cfg["lr_decay_steps"])
        return float(trainer_cfg["lr_decay_factor"]) ** passed
    return 1.0
