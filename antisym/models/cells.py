"""Recurrent cells of the paper: AntisymmetricRNN (Eq. 12), its gated variant (Eq. 13) and the ablation cell.

All three share one shape: a recurrent matrix A (n x n), an input projection computed for every step at once, and an
Euler step h_t = h_{t-1} + eps * f(A h_{t-1}, u_t). Keeping the projection separate from the step lets the sequence
loop do one big matmul for all T steps and lets fused kernels take (u, A) directly.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from antisym.models.ensemble import register_settings


def euler_step(u_t: Tensor, h: Tensor, a: Tensor, eps: float | Tensor, gated: bool) -> Tensor:
    """h + eps f(A h, u_t) for a state h (B, n) and matrix a (n, n), or R members batched by hand: h (R, B, n),
    a (R, n, n), eps (R, 1, 1) (the comparison row of the packed benchmark; packs train by vmap of the solo step)."""
    ah = h @ a.transpose(-1, -2)
    if not gated:
        return h + eps * torch.tanh(ah + u_t)
    u_h, u_z = u_t.chunk(2, dim=-1)
    return h + eps * torch.sigmoid(ah + u_z) * torch.tanh(ah + u_h)


class EulerCell(nn.Module):
    """Base class: input projection V x + b for all steps, then Euler steps on the recurrent matrix.

    Subclasses define `make_hidden_weight()`, `hidden_weight`, `recurrent_matrix()` and `gated`. Rows are batch
    elements, so the paper's A h is `h @ A.T`.
    """

    gated: bool = False
    eps: Tensor  # 0-d buffers
    gamma: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        eps: float,
        gamma: float,
        init_std: float = 1.0,
        reading: str = "variance",
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        # Buffers, not floats: members of a pack may differ in them (antisym.models.ensemble).
        register_settings(self, eps=eps, gamma=gamma)
        # Candidate (and, when gated, gate) input weights V_h, V_z and biases b_h, b_z in one Linear; created before
        # the recurrent weights, an order that checkpoints' optimizer states and seeded inits depend on.
        self.input_proj = nn.Linear(input_size, hidden_size * (2 if self.gated else 1))
        self.make_hidden_weight()
        self.init_weights(init_std, reading)

    def make_hidden_weight(self) -> None:
        """Create the recurrent parameters (uninitialised: init_weights draws them)."""
        raise NotImplementedError

    def init_weights(self, init_std: float, reading: str = "variance") -> None:
        """Appendix C: input-to-hidden N(0, 1/m), hidden-to-hidden N(0, sigma_w^2/n), biases 0. The paper writes
        N(mean, variance); `reading="std"` takes the second argument as a standard deviation (1/m, sigma_w/n), as
        three public re-implementations do."""
        m, n = self.input_size, self.hidden_size
        scale = (1.0 / m, init_std / n) if reading == "std" else (1.0 / math.sqrt(m), init_std / math.sqrt(n))
        nn.init.normal_(self.input_proj.weight, std=scale[0])
        nn.init.zeros_(self.input_proj.bias)
        nn.init.normal_(self.hidden_weight, std=scale[1])

    @property
    def hidden_weight(self) -> nn.Parameter:
        raise NotImplementedError

    def recurrent_matrix(self) -> Tensor:
        """The effective n x n matrix A that multiplies h_{t-1}."""
        raise NotImplementedError

    def project(self, x: Tensor) -> Tensor:
        """V x + b for any leading shape; (..., n) or, gated, (..., 2n) as [candidate | gate]."""
        return self.input_proj(x)

    def step(self, u_t: Tensor, h: Tensor, a: Tensor) -> Tensor:
        """One Euler step from the projected input u_t, the state h (B, n) and the recurrent matrix a."""
        return euler_step(u_t, h, a, self.eps, self.gated)

    def forward(self, x_t: Tensor, h: Tensor | None = None) -> Tensor:
        """One step like `torch.nn.RNNCell`: x_t (B, m), h (B, n) -> h (B, n)."""
        if h is None:
            h = x_t.new_zeros(x_t.shape[0], self.hidden_size)
        return self.step(self.project(x_t), h, self.recurrent_matrix())


class AntisymmetricCell(EulerCell):
    """Eq. 12: h_t = h_{t-1} + eps tanh((W - W^T - gamma I) h_{t-1} + V x_t + b).

    W is stored as its strictly upper-triangular entries only (n(n-1)/2 parameters), which is what makes the
    parameter counts equal the paper's (9,674 at n=128, m=1).
    """

    def make_hidden_weight(self) -> None:
        n = self.hidden_size
        self.register_buffer("triu_index", torch.triu_indices(n, n, offset=1), persistent=False)
        self.w_upper = nn.Parameter(torch.empty(n * (n - 1) // 2))

    @property
    def hidden_weight(self) -> nn.Parameter:
        return self.w_upper

    def recurrent_matrix(self) -> Tensor:
        n = self.hidden_size
        w = self.w_upper.new_zeros(n, n).index_put((self.triu_index[0], self.triu_index[1]), self.w_upper)
        return w - w.T - self.gamma * torch.eye(n, dtype=w.dtype, device=w.device)


class GatedAntisymmetricCell(AntisymmetricCell):
    """Eq. 13: the gate z_t = sigmoid(A h + V_z x + b_z) shares A = W - W^T - gamma I with the candidate."""

    gated = True


class AblationCell(EulerCell):
    """Sec. 5.4: the gated cell with one unstructured n x n matrix (minus gamma I) shared by gate and candidate.

    196 units and m=3 give 41,954 parameters, the paper's "42k"; two separate matrices would give about 80k.
    """

    gated = True

    def make_hidden_weight(self) -> None:
        self.weight_hh = nn.Parameter(torch.empty(self.hidden_size, self.hidden_size))

    @property
    def hidden_weight(self) -> nn.Parameter:
        return self.weight_hh

    def recurrent_matrix(self) -> Tensor:
        n = self.hidden_size
        return self.weight_hh - self.gamma * torch.eye(n, dtype=self.weight_hh.dtype, device=self.weight_hh.device)
