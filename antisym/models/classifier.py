"""Sequence classifiers: a recurrence over (B, T, m) inputs, then a Linear readout of the last hidden state."""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

from antisym.errors import ConfigError
from antisym.models.cells import EulerCell

log = logging.getLogger("antisym")


def euler_recurrence(cell: EulerCell, u: Tensor, h0: Tensor) -> Tensor:
    """Run `cell.step` over projected inputs u (B, T, k) from h0 (B, n); returns h_T.

    `unbind` gives every step its own view; indexing `u[:, t]` instead makes autograd materialise a full-size
    zero gradient per step, so backward would cost O(T^2).
    """
    a = cell.recurrent_matrix()
    h = h0
    for u_t in u.unbind(1):
        h = cell.step(u_t, h, a)
    return h


class EulerClassifier(nn.Module):
    """AntisymmetricRNN, its gated variant or the ablation model, with h_0 = 0 and a Linear readout on h_T.

    `impl` picks how the recurrence runs: "eager" (`euler_recurrence`, a PyTorch loop), "fused" (the Triton kernels
    of `antisym.kernels`, one launch forward and one backward) or "auto" (fused where it can run: CUDA, triton
    importable, float32, hidden size supported; else eager). `precision` is the fused path's matmul precision,
    one of `antisym.kernels.PRECISIONS`; the eager path ignores it.
    """

    def __init__(self, cell: EulerCell, num_classes: int, impl: str = "eager", precision: str = "ieee") -> None:
        super().__init__()
        from antisym.kernels import IMPLS, PRECISIONS  # no triton import

        if impl not in IMPLS:
            raise ConfigError(f"model.impl={impl!r}; choose one of {', '.join(IMPLS)}.")
        if precision not in PRECISIONS:
            raise ConfigError(f"model.precision={precision!r}; choose one of {', '.join(PRECISIONS)}.")
        self.impl = impl
        self.precision = precision
        self._chosen: dict[tuple, str] = {}  # (device type, dtype) -> impl, logged once each
        self.cell = cell
        self.readout = nn.Linear(cell.hidden_size, num_classes)
        nn.init.normal_(self.readout.weight, std=1.0 / math.sqrt(cell.hidden_size))
        nn.init.zeros_(self.readout.bias)

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def final_state(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """h_T for inputs x (B, T, m); h0 defaults to zeros (the paper does not say; zeros is the usual choice)."""
        if h0 is None:
            h0 = x.new_zeros(x.shape[0], self.hidden_size)
        u = self.cell.project(x)
        if self.resolve_impl(u) == "fused":
            from antisym.kernels import fused_euler_recurrence

            return fused_euler_recurrence(self.cell, u, h0, precision=self.precision)
        return euler_recurrence(self.cell, u, h0)

    def resolve_impl(self, u: Tensor) -> str:
        """The impl ("eager" or "fused") for inputs like u; logged (logger "antisym") once per device and dtype."""
        key = (u.device.type, u.dtype)
        if key not in self._chosen:
            from antisym.kernels import fused_unsupported_reason

            reason = None
            if self.impl != "eager":
                explicit = self.impl == "fused"
                reason = fused_unsupported_reason(u.device, self.hidden_size, u.dtype, allow_interpreter=explicit)
            if self.impl == "fused" and reason is not None:
                raise ConfigError(f"model.impl=fused cannot run here: {reason}. Use model.impl=auto or eager.")
            chosen = "fused" if self.impl != "eager" and reason is None else "eager"
            why = f" ({reason})" if self.impl == "auto" and reason else ""
            extra = f", precision={self.precision}" if chosen == "fused" else ""
            log.info("recurrence: model.impl=%s -> %s on %s%s%s", self.impl, chosen, u.device.type, extra, why)
            self._chosen[key] = chosen
        return self._chosen[key]

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_state(x))


class LSTMClassifier(nn.Module):
    """torch.nn.LSTM (cuDNN on a GPU) with the paper's init: N(0, 1/m), N(0, sigma_w^2/n), forget-gate bias 1."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_classes)
        n = hidden_size
        with torch.no_grad():
            nn.init.normal_(self.lstm.weight_ih_l0, std=1.0 / math.sqrt(input_size))
            nn.init.normal_(self.lstm.weight_hh_l0, std=init_std / math.sqrt(n))
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_ih_l0[n : 2 * n] = 1.0  # PyTorch gate order: input, forget, cell, output.
            nn.init.normal_(self.readout.weight, std=1.0 / math.sqrt(n))
            nn.init.zeros_(self.readout.bias)

    @property
    def hidden_size(self) -> int:
        return self.lstm.hidden_size

    def final_state(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """h_T for inputs x (B, T, m), from (h0, c0 = 0)."""
        if h0 is None:
            out, _ = self.lstm(x)
        else:
            state = (h0.unsqueeze(0), torch.zeros_like(h0).unsqueeze(0))
            out, _ = self.lstm(x, state)
        return out[:, -1]

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_state(x))
