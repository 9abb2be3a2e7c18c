"""Optimizer and learning-rate schedule from the checked config (antisym.config)."""

from __future__ import annotations

import math

import torch
from torch import nn

from antisym.checks import ClassConfig
from antisym.config import TrainerConfig


def build_optimizer(cfg: ClassConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer class `_target_` names, with the config's (checked) keywords."""
    return cfg.target(model.parameters(), **cfg.kwargs)


def lr_factor(trainer: TrainerConfig, step: int) -> float:
    """Multiplier of the base learning rate at `step` (0-based)."""
    if trainer.lr_schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / trainer.max_steps))
    if trainer.lr_schedule == "step":
        return trainer.lr_decay_factor ** sum(step >= s for s in trainer.lr_decay_steps)
    return 1.0
