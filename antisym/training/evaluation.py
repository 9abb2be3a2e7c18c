"""Accuracy and loss of a model over a split: what validation, the test set and verify all read."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from antisym.data import SequenceTask


def eval_size(task: SequenceTask, limit: int) -> int:
    """The examples an evaluation of `task` reads: all of them, or its first `limit` (trainer.eval_limit; 0: all)."""
    return min(limit, len(task)) if limit else len(task)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: SequenceTask,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    limit: int = 0,
) -> dict[str, float]:
    """Mean loss and accuracy over a split, or its first `limit` examples (summed on the device: one transfer at
    the end, no sync a batch)."""
    n = eval_size(task, limit)
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, n, batch_size):
        x, y = task.batch(torch.arange(start, min(start + batch_size, n)))
        logits = model(x.to(device, dtype))
        y = y.to(device)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(-1) == y).sum()
    model.train()
    return {"loss": loss_sum.item() / max(1, n), "acc": correct.item() / max(1, n)}
