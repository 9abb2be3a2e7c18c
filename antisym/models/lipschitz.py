"""Lipschitz RNN (Erichson et al., ICLR 2021), a successor of AntisymmetricRNN built as a baseline beside it.

h' = A h + tanh(W h + U x + b) with A = (1 - beta)(M_A + M_A^T) + beta (M_A - M_A^T) - gamma_A I and W built the same
way from M_W with gamma_W. beta = 1, M_A = 0, gamma_A = 0 and Euler steps give back AntisymmetricRNN's Eq. 12.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from antisym.errors import ConfigError
from antisym.models.ensemble import register_settings, vmap_forward

SCHEMES = ("euler", "rk2", "heun")


def skew_mix(m: Tensor, beta: Tensor | float, gamma: Tensor | float) -> Tensor:
    """(1 - beta)(M + M^T) + beta (M - M^T) - gamma I: beta sets how much of M's symmetric part survives."""
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    return (1.0 - beta) * (m + m.T) + beta * (m - m.T) - gamma * eye


class LipschitzRNNClassifier(nn.Module):
    """Lipschitz RNN with h_0 = 0 and a Linear readout on h_T; one step of size eps per input, x_t held fixed.

    With f(h) = A h + tanh(W h + U x_t + b):
      - "euler": h + eps f(h), the paper's main model (the official code's `--model LipschitzRNN`);
      - "rk2": h + eps f(h + eps/2 f(h)), explicit midpoint. The official code's RK2 model (`LipschitzRNN_ODE`) calls
        torchdiffeq's odeint over [0, eps] with `--solver` defaulting to "midpoint" (commit "add midpoint"), which is
        exactly this one step;
      - "heun": h + eps/2 (f(h) + f(h + eps f(h))), the other two-stage RK2 (torchdiffeq "heun2").

    Init as the official code: M_A, M_W ~ N(0, (init_std / n)^2) (std init_std/n, not /sqrt(n)); U, b and the readout
    keep PyTorch's nn.Linear defaults. The official code multiplies `h @ A`, i.e. applies A^T; we apply A as the paper
    writes, which is the same model under M -> M^T (same init distribution).
    """

    member_settings = ("eps", "beta", "gamma_a", "gamma_w", "init_std")  # may differ within a pack
    packed_forward = staticmethod(vmap_forward)  # packs by torch.func (antisym.models.ensemble)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_classes: int,
        eps: float = 0.03,
        beta: float = 0.75,
        gamma_a: float = 0.001,
        gamma_w: float = 0.001,
        init_std: float = 0.1,
        scheme: str = "euler",
    ) -> None:
        super().__init__()
        if float(eps) <= 0:
            raise ConfigError(f"model.eps (step size) must be > 0, got {eps}; the official README uses 0.03.")
        if not 0.0 <= float(beta) <= 1.0:
            raise ConfigError(f"model.beta must lie in [0, 1], got {beta}; the official README uses 0.75.")
        for key, value in (("gamma_a", gamma_a), ("gamma_w", gamma_w)):
            if float(value) < 0:
                raise ConfigError(f"model.{key} (diagonal shift) must be >= 0, got {value}; the README uses 0.001.")
        if float(init_std) < 0:
            raise ConfigError(f"model.init_std must be >= 0, got {init_std}; the official code's default is 0.1.")
        if scheme not in SCHEMES:
            raise ConfigError(f"model.scheme={scheme!r}; choose one of {', '.join(SCHEMES)}.")
        self.input_size = input_size
        self.hidden_size = self.state_size = hidden_size
        # Buffers, not floats: members of a pack may differ in them (antisym.models.ensemble).
        register_settings(self, eps=eps, beta=beta, gamma_a=gamma_a, gamma_w=gamma_w)
        self.scheme = scheme
        n = hidden_size
        self.input_proj = nn.Linear(input_size, n)  # U x + b
        self.m_a = nn.Parameter(torch.randn(n, n) * (float(init_std) / n))
        self.m_w = nn.Parameter(torch.randn(n, n) * (float(init_std) / n))
        self.readout = nn.Linear(n, num_classes)

    def matrices(self) -> tuple[Tensor, Tensor]:
        """(A, W), each n x n."""
        return skew_mix(self.m_a, self.beta, self.gamma_a), skew_mix(self.m_w, self.beta, self.gamma_w)

    def final_state(self, x: Tensor, h0: Tensor | None = None) -> Tensor:
        """h_T (B, n) for inputs x (B, T, m); h0 defaults to zeros."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0
        a, w = self.matrices()
        eps = self.eps.to(x.dtype)  # a no-op once the model was moved to x's dtype

        def f(h: Tensor, u_t: Tensor) -> Tensor:
            return h @ a.T + torch.tanh(h @ w.T + u_t)

        # unbind, not u[:, t]: indexing makes backward O(T^2) (see antisym.models.classifier.euler_recurrence).
        for u_t in self.input_proj(x).unbind(1):
            k1 = f(h, u_t)
            if self.scheme == "euler":
                h = h + eps * k1
            elif self.scheme == "rk2":
                h = h + eps * f(h + 0.5 * eps * k1, u_t)
            else:
                h = h + 0.5 * eps * (k1 + f(h + eps * k1, u_t))
        return h

    def forward(self, x: Tensor) -> Tensor:
        return self.readout(self.final_state(x))
