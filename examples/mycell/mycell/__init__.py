"""An Elman RNN written outside the antisym package: the template for bringing your own cell.

The suite builds whatever class `model._target_` names, so this file only has to meet the interface of
antisym/models/__init__.py: the constructor takes (input_size, hidden_size, num_classes) plus typed keyword settings
(every other key of conf/model/mycell.yaml), `final_state(x, h0=None)` returns the last state and `forward(x)` the
logits. Annotated settings are type-checked and unknown keys refused before any data is read.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from antisym.errors import ConfigError  # the CLI prints a ConfigError as one paragraph and exits 2
from antisym.models.ensemble import vmap_forward


class ElmanRNN(nn.Module):
    """h_t = phi(W h_{t-1} + V x_t + b), h_0 = 0, logits = Linear(h_T): the plainest cell to adapt."""

    # Optional, for packed sweeps (hydra/launcher=packed): runs that differ only in these settings (and seeds,
    # optimizer settings, data seeds) train as one vmapped pack. A setting the forward uses must then be a buffer
    # (antisym.models.ensemble.register_settings), not a Python float; init_std is only used by the constructor.
    member_settings = ("init_std",)
    packed_forward = staticmethod(vmap_forward)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        if init_std < 0:
            raise ConfigError(f"model.init_std must be >= 0, got {init_std}; 1.0 is a common choice.")
        self.hidden_size = hidden_size  # the suite reads it (and `state_size`, which defaults to it)
        self.phi = torch.tanh if nonlinearity == "tanh" else torch.relu
        self.input_proj = nn.Linear(input_size, hidden_size)  # V x + b
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)  # W, N(0, init_std^2 / n)
        nn.init.normal_(self.recurrent.weight, std=init_std / hidden_size**0.5)
        self.readout = nn.Linear(hidden_size, num_classes)

    def final_state(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """h_T (B, n) for inputs x (B, T, m); the suite's Jacobian analysis passes its own h0."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0
        for u_t in self.input_proj(x).unbind(1):  # one matmul for all T inputs; unbind keeps backward O(T)
            h = self.phi(self.recurrent(h) + u_t)
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_state(x))
