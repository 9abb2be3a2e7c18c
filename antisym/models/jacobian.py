"""End-to-end Jacobian dh_T/dh_0 of any model from `build_model`, and the statistic of Figure 2.

The Jacobian is exact: one forward pass over the sequence, then one reverse pass with n cotangents batched through
`torch.autograd.grad(..., is_grads_batched=True)` (vmap over the backward graph). Examples in a batch do not interact,
so the cotangent e_i broadcast over the batch gives row i of every example's Jacobian at once. The cost is that of
n backward passes done as matrix products: O(T * B * n^3) flops, O(T * B * n) saved activations.

Figure 2 of the paper plots the mean and standard deviation of the eigenvalue moduli |lambda_i(J)| pooled over
examples; `jacobian_eigen_stats` returns exactly that, and the trainer can log it as a metric.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from antisym.models import euler_recurrence
from antisym.models.cells import EulerCell
from antisym.models.ensemble import cast


def _hidden_size(model: nn.Module) -> int:
    """The size of the recurrent state h (state_size where a model's state is more than its units, e.g. coRNN)."""
    n = getattr(model, "state_size", getattr(model, "hidden_size", None))
    if n is None:
        raise TypeError(
            f"{type(model).__name__} has no `hidden_size`; pass a model built by antisym.models.build_model."
        )
    return int(n)


def _final_state(model: nn.Module, x: Tensor, h0: Tensor) -> Tensor:
    """h_T through the eager PyTorch recurrence: fused (Triton) kernels, which a model may pick for float32 on CUDA,
    have no batching rule for the vmapped backward, and the eager loop is the reference definition anyway."""
    cell = getattr(model, "cell", None)
    if isinstance(cell, EulerCell):
        return euler_recurrence(cell, cell.project(x), h0)
    return model.final_state(x, h0)


def _cast(model: nn.Module, dtype: torch.dtype | None) -> nn.Module:
    """A copy of `model` in `dtype` when it differs (float64 keeps eigenvalues far below 1e-38 resolvable)."""
    if dtype is None:
        return model
    p = next(model.parameters(), None)
    if p is None or p.dtype == dtype:
        return model
    return cast(model, dtype)


def end_to_end_jacobian(
    model: nn.Module, x: Tensor, h0: Tensor | None = None, *, dtype: torch.dtype | None = None
) -> Tensor:
    """J[b] = d h_T[b] / d h_0[b] for inputs x (B, T, m); returns (B, n, n) with J[b, i, j] = d h_T[b, i] / d h_0[b, j].

    h0 defaults to zeros (as in the models' forward). For the LSTM, h_0 is the hidden state and c_0 = 0 is held
    fixed. `dtype` (e.g. torch.float64) runs the computation on a cast copy of the model; parameters' `.grad` are
    never touched, so this is safe to call in the middle of training.
    """
    model = _cast(model, dtype)
    p = next(model.parameters())
    x = x.detach().to(device=p.device, dtype=p.dtype)
    batch, n = x.shape[0], _hidden_size(model)
    h0 = x.new_zeros(batch, n) if h0 is None else h0.detach().to(device=p.device, dtype=p.dtype).clone()
    h0.requires_grad_(True)
    # cuDNN's RNN backward has no batching rule and refuses eval mode; the native LSTM kernels have neither problem.
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        h_t = _final_state(model, x, h0)
        cotangents = torch.eye(n, dtype=h_t.dtype, device=h_t.device).unsqueeze(1).expand(n, batch, n)
        try:
            (rows,) = torch.autograd.grad(h_t, h0, grad_outputs=cotangents, is_grads_batched=True)
        except RuntimeError as err:  # an op without a batching rule: fall back to n ordinary backward passes
            warnings.warn(f"batched backward failed ({err}); using {n} sequential backward passes", stacklevel=2)
            rows = torch.stack(
                [torch.autograd.grad(h_t, h0, grad_outputs=cotangents[i], retain_graph=True)[0] for i in range(n)]
            )
    return rows.transpose(0, 1)  # rows[i, b, :] = J[b, i, :]


def eigen_moduli(jac: Tensor) -> Tensor:
    """|lambda| of every eigenvalue of a batch of square matrices (..., n, n) -> (..., n), computed on the CPU."""
    return torch.linalg.eigvals(jac.detach().cpu()).abs()


def moduli_stats(moduli: Tensor, prefix: str = "jac_eig") -> dict[str, float]:
    """Mean and (population) standard deviation of eigenvalue moduli pooled over examples, as plain floats."""
    m = moduli.detach().reshape(-1).double()
    return {f"{prefix}_mean": float(m.mean()), f"{prefix}_std": float(m.std(correction=0))}


def jacobian_eigen_stats(
    model: nn.Module, x: Tensor, h0: Tensor | None = None, *, dtype: torch.dtype | None = torch.float64
) -> dict[str, float]:
    """Figure 2's statistic for one batch: {"jac_eig_mean", "jac_eig_std"} of |lambda(d h_T / d h_0)|.

    Meant to be called every `trainer.jacobian_every` steps on a small fixed validation batch (e.g. 4-8 examples).
    Computed in float64 by default (on a cast copy of the model) so that LSTM eigenvalues below float32's range are
    not flushed to zero; pass dtype=None to use the model's own dtype.
    """
    return moduli_stats(eigen_moduli(end_to_end_jacobian(model, x, h0, dtype=dtype)))


__all__ = ["eigen_moduli", "end_to_end_jacobian", "jacobian_eigen_stats", "moduli_stats"]
