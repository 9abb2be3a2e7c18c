"""The order training examples are drawn in: seeded, resumable to the batch."""

from __future__ import annotations

from typing import Any

import torch


class BatchSampler:
    """Shuffled epochs of training indices from a seeded generator. A checkpoint holds the generator's state at the
    start of the epoch and the position in it (a few kB, not the 55,000-index order): the order is drawn again."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.epoch_state: torch.Tensor | None = self.generator.get_state()
        self.order = torch.randperm(self.n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:  # drop the ragged tail, start a new epoch
            self._new_epoch()
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        if self.epoch_state is None:  # resumed from an order-holding checkpoint, until its epoch ends
            return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}
        return {"epoch_generator": self.epoch_state, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "order" in state:  # older checkpoints hold the epoch's order itself
            self.generator.set_state(state["generator"])
            self.order, self.pos, self.epoch_state = state["order"], state["pos"], None
            return
        self.generator.set_state(state["epoch_generator"])
        self._new_epoch()
        self.pos = state["pos"]
