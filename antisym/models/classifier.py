"""Sequence classifiers: a recurrence over (B, T, m) inputs, then a Linear readout of the last hidden state."""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from torch import Tensor, nn

from antisym.errors import ConfigError
from antisym.models.cells import AblationCell, AntisymmetricCell, EulerCell, GatedAntisymmetricCell, euler_step
from antisym.models.ensemble import vmap_forward

log = logging.getLogger("antisym")


def euler_recurrence(cell: EulerCell, u: Tensor, h0: Tensor) -> Tensor:
    """Euler steps of the cell over projected inputs u (B, T, k) from h0 (B, n); returns h_T.

    `unbind` gives every step its own view; indexing `u[:, t]` instead makes autograd materialise a full-size
    zero gradient per step, so backward would cost O(T^2). eps is cast to the inputs' dtype once (a no-op once the
    model was moved to its dtype), not mixed into every step's multiply.
    """
    a, eps = cell.recurrent_matrix(), cell.eps.to(u.dtype)
    h = h0
    for u_t in u.unbind(1):
        h = euler_step(u_t, h, a, eps, cell.gated)
    return h


class EulerClassifier(nn.Module):
    """AntisymmetricRNN, its gated variant or the ablation model, with h_0 = 0 and a Linear readout on h_T.

    `impl` picks how the recurrence runs: "eager" (`euler_recurrence`, a PyTorch loop), "fused" (the Triton kernels
    of `antisym.kernels`, one launch forward and one backward) or "auto" (fused where it can run: CUDA, triton
    importable, float32, hidden size supported; else eager). `precision` is the fused path's matmul precision,
    one of `antisym.kernels.PRECISIONS`; the eager path ignores it.
    """

    member_settings = ("eps", "gamma", "init_std")  # what members of one pack may differ in (antisym.training.runs)

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

    def final_state(self, x: Tensor, h0: Tensor | None = None, *, impl: str | None = None) -> Tensor:
        """h_T for inputs x (B, T, m); h0 defaults to zeros (the paper does not say; zeros is the usual choice).
        `impl="eager"` forces the PyTorch loop (a pack that cannot run fused runs it under vmap)."""
        if h0 is None:
            h0 = x.new_zeros(x.shape[0], self.hidden_size)
        u = self.cell.project(x)
        if (impl or self.resolve_impl(u)) == "fused":
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

    def forward(self, x: Tensor, *, impl: str | None = None) -> Tensor:
        return self.readout(self.final_state(x, impl=impl))

    @staticmethod
    def packed_forward(models: list[EulerClassifier], x: Tensor) -> list[Tensor]:
        """Logits of R models of one class and size on their own inputs x (R, B, T, m), as one batched recurrence.

        Where every member runs fused (model.impl, device, dtype), the fused kernels take the pack as a grid axis,
        each member with its own A and eps (one launch per direction); otherwise the eager loop runs under vmap
        (antisym.models.ensemble), each member's eps and gamma its own buffers. Either way autograd returns each
        member's gradient to its own parameters.
        """
        precisions = {m.precision for m in models}
        if len(precisions) > 1 or not all(m.resolve_impl(x) == "fused" for m in models):
            return vmap_forward(models, x, impl="eager")
        from antisym.kernels import fused_packed_recurrence

        cells = [m.cell for m in models]
        u = torch.stack([c.project(x_r) for c, x_r in zip(cells, x, strict=True)])  # (R, B, T, k)
        h0 = x.new_zeros(len(models), x.shape[1], cells[0].hidden_size)
        h = fused_packed_recurrence(cells, u, h0, precision=precisions.pop())
        return [m.readout(h_r) for m, h_r in zip(models, h, strict=True)]


def check_recurrence_args(hidden_size: int, eps: float, gamma: float, init_std: float) -> None:
    """Reject values the equations do not admit, with a message that says what to change."""
    if hidden_size <= 0:
        raise ConfigError(
            f"model.hidden_size must be a positive integer, got {hidden_size!r}; the paper uses 128 or 256."
        )
    if init_std < 0:
        raise ConfigError(f"model.init_std (sigma_w) must be >= 0, got {init_std}; the paper's grid is 0-16.")
    if eps <= 0:
        raise ConfigError(f"model.eps (Euler step size) must be > 0, got {eps}; the paper's grid is 0.01, 0.1, 1.")
    if gamma < 0:
        raise ConfigError(f"model.gamma (diffusion) must be >= 0, got {gamma}; the paper's grid is 0.001-1.")


class EulerModel(EulerClassifier):
    """An EulerClassifier built from keyword settings (what a model config's `_target_` names). `gate_bias` is the
    input gate's bias b_z at init, for the gated cells only: the paper says biases 0 (the gate starts near 0.5,
    halving the effective eps); one public re-implementation opens it at 1."""

    cell_class: type[EulerCell]

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        eps: float,
        gamma: float,
        init_std: float = 1.0,
        init_reading: Literal["variance", "std"] = "variance",
        gate_bias: float = 0.0,
        impl: Literal["eager", "fused", "auto"] = "eager",
        precision: Literal["ieee", "tf32x3", "tf32", "bf16"] = "ieee",
    ) -> None:
        check_recurrence_args(hidden_size, eps, gamma, init_std)
        if gate_bias and not self.cell_class.gated:
            raise ConfigError(
                f"model.gate_bias={gate_bias} sets an input gate's bias, and {type(self).__name__} has no gate; "
                "drop the key, or use the gated model (model=gated) or the ablation model (model=ablation)."
            )
        cell = self.cell_class(input_size, hidden_size, eps=eps, gamma=gamma, init_std=init_std, reading=init_reading)
        super().__init__(cell, num_classes, impl=impl, precision=precision)
        with torch.no_grad():  # the projection's bias is [b_h | b_z] (antisym.models.cells.EulerCell)
            self.cell.input_proj.bias[hidden_size:].fill_(gate_bias)


class AntisymmetricRNN(EulerModel):
    """Eq. 12: h_t = h_{t-1} + eps tanh((W - W^T - gamma I) h_{t-1} + V x_t + b), readout on h_T."""

    cell_class = AntisymmetricCell


class GatedAntisymmetricRNN(EulerModel):
    """Eq. 13: the gated cell, gate and candidate sharing W - W^T - gamma I."""

    cell_class = GatedAntisymmetricCell


class AblationRNN(EulerModel):
    """Sec. 5.4: the gated cell with one unstructured matrix (minus gamma I) shared by gate and candidate."""

    cell_class = AblationCell


class LSTMClassifier(nn.Module):
    """torch.nn.LSTM (cuDNN on a GPU) with the paper's init: N(0, 1/m), N(0, sigma_w^2/n), forget-gate bias 1."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int, init_std: float = 1.0) -> None:
        if hidden_size <= 0:
            raise ConfigError(f"model.hidden_size must be a positive integer, got {hidden_size!r}.")
        if init_std < 0:
            raise ConfigError(f"model.init_std (sigma_w) must be >= 0, got {init_std}; the paper's grid is 0-16.")
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
