"""coRNN (Rusch & Mishra, ICLR 2021), a successor of AntisymmetricRNN built as a baseline beside it.

A network of damped, driven oscillators y'' = tanh(W y + Wz y' + V u + b) - gamma y - eps y', written as a first-order
system in (y, z = y') and stepped with size dt. The state is [y | z] (2n numbers); the readout sees only y_T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from antisym.errors import ConfigError
from antisym.models.ensemble import register_settings, vmap_forward

SCHEMES = ("imex", "explicit")


class CoRNNClassifier(nn.Module):
    """coRNN with y_0 = z_0 = 0 and a Linear readout on y_T.

    `scheme="imex"` (default) is the paper's Eq. 3, damping implicit:
        z_n = (z_{n-1} + dt (tanh(W y_{n-1} + Wz z_{n-1} + V u_n + b) - gamma y_{n-1})) / (1 + dt eps)
    `scheme="explicit"` is what the public code (tk-rusch/coRNN) runs, damping explicit:
        z_n = z_{n-1} + dt (tanh(...) - gamma y_{n-1} - eps z_{n-1})
    Both then take y_n = y_{n-1} + dt z_n.

    Parameters and init follow the public code: one nn.Linear(m + 2n, n) over [u | z | y] with PyTorch's default init
    (U(-k, k), k = 1/sqrt(m + 2n), bias included), and a default nn.Linear readout. Keeping that single Linear keeps
    both the init and the parameter count (134,154 at n=256, m=1) equal to the authors'.
    """

    member_settings = ("dt", "gamma", "eps")  # what members of one pack may differ in (antisym.training.runs)
    packed_forward = staticmethod(vmap_forward)  # packs by torch.func (antisym.models.ensemble)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        dt: float = 0.042,
        gamma: float = 2.7,
        eps: float = 4.7,
        scheme: str = "imex",
    ) -> None:
        super().__init__()
        if float(dt) <= 0:
            raise ConfigError(f"model.dt (time step) must be > 0, got {dt}; the authors' code uses 0.034-0.076.")
        if float(gamma) < 0:
            raise ConfigError(f"model.gamma (stiffness) must be >= 0, got {gamma}; the authors' code uses 0.4-2.7.")
        if float(eps) < 0:
            raise ConfigError(f"model.eps (damping) must be >= 0, got {eps}; the authors' code uses 4.7-12.7.")
        if scheme not in SCHEMES:
            raise ConfigError(f"model.scheme={scheme!r}; choose one of {', '.join(SCHEMES)}.")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = 2 * hidden_size
        register_settings(self, dt=dt, gamma=gamma, eps=eps)  # buffers: members of a pack may differ in them
        self.scheme = scheme
        # Columns [V | Wz | W] in the public code's order cat((u, z, y)); bias b.
        self.i2h = nn.Linear(input_size + 2 * hidden_size, hidden_size)
        self.readout = nn.Linear(hidden_size, num_classes)

    def final_state(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """[y_T | z_T] (B, 2n) for inputs x (B, T, m); h0 = [y_0 | z_0] defaults to zeros."""
        m, n = self.input_size, self.hidden_size
        if h0 is None:
            h0 = x.new_zeros(x.shape[0], 2 * n)
        elif h0.shape[-1] != 2 * n:
            raise ValueError(
                f"coRNN's state is [y | z], so h0 must be (B, {2 * n}) (state_size), got {tuple(h0.shape)}."
            )
        y, z = h0[:, :n], h0[:, n:]
        weight = self.i2h.weight
        v, w_z, w_y = weight[:, :m], weight[:, m : m + n], weight[:, m + n :]
        u = F.linear(x, v, self.i2h.bias)  # V u + b for all T steps in one matmul
        dt, gamma, eps = (s.to(x.dtype) for s in (self.dt, self.gamma, self.eps))  # no-ops once moved to x's dtype
        imex = self.scheme == "imex"
        # unbind, not u[:, t]: indexing makes backward O(T^2) (see antisym.models.classifier.euler_recurrence).
        for u_t in u.unbind(1):
            drive = torch.tanh(u_t + y @ w_y.T + z @ w_z.T) - gamma * y
            # IMEX: damping on the new z, solved in closed form; explicit: damping on the old z.
            z = (z + dt * drive) / (1.0 + dt * eps) if imex else z + dt * (drive - eps * z)
            y = y + dt * z
        return torch.cat((y, z), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_state(x)[:, : self.hidden_size])
