"""A task from outside the suite, as a user would write one (tests/test_new_task.py trains it through train.py).

The marker task: every sequence is zeros but for one step, at a random position, whose first feature is +1 or -1
and whose second is 1 (a flag that says "here"); the label is the marker's sign. Its examples are generated from a
seed, so it reads no files, and a recurrent model learns it in a few dozen steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from antisym.data import Task, TaskConfig, TaskSpec
from antisym.errors import ConfigError


@dataclass(frozen=True)
class MarkerConfig(TaskConfig):
    seq_len: int = 12
    train_size: int = 256  # examples of the training file, val_size of them held out
    test_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.seq_len < 1 or self.test_size < 1:
            raise ConfigError("dataset.seq_len and dataset.test_size must be positive integers.")


class MarkerTask(Task):
    """Sign of the one marked step of a sequence: 2 classes, 2 features a step."""

    Config = MarkerConfig
    files = ()

    def load(self, root: str, train: bool, download: bool = True, allow_subset: bool = False) -> tuple[Tensor, Tensor]:
        """Examples (N, 2): each one's marker position and label; the same for every call with the same config."""
        cfg = self.cfg
        n = cfg.train_size if train else cfg.test_size
        gen = torch.Generator().manual_seed(cfg.seed * 2 + int(not train))
        labels = torch.randint(2, (n,), generator=gen)
        return torch.stack([torch.randint(cfg.seq_len, (n,), generator=gen), labels], dim=1), labels

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(self.cfg.seq_len, 2, num_classes=2)

    def sequences(self, examples: Tensor, index: Tensor, split: str, generator: torch.Generator | None) -> Tensor:
        x = torch.zeros(len(examples), self.cfg.seq_len, 2, device=examples.device)
        rows, steps = torch.arange(len(examples), device=examples.device), examples[:, 0]
        x[rows, steps, 0] = 2.0 * examples[:, 1] - 1.0
        x[rows, steps, 1] = 1.0
        return x
