"""Fused Triton kernels for the Euler recurrences of `antisym.models.cells`.

Importing this package does not import Triton: `fused_unsupported_reason` only inspects the device and the shape, and
`fused_euler_recurrence` imports the kernels (`antisym.kernels.euler`) on first use. Set `TRITON_INTERPRET=1` before
the first use to run the kernels on CPU tensors with Triton's interpreter (slow; the tests do this).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

    from antisym.models.cells import EulerCell

# Matmul precision of the fused recurrence (the input projection and the dA GEMM stay in PyTorch, fp32):
#   ieee   - fp32 FMA dots; the default until a GPU run's training curves (campaign/gpu_check) show tf32x3 trains
#            as well as fp32 eager. A CPU probe, h_T after 784 pMNIST steps vs fp32: 0.002 (ieee), 0.004
#            (tf32x3), 6.0 (tf32).
#   tf32x3 - three tf32 tensor-core passes (split-precision); close to fp32, about 10x faster than ieee there.
#   tf32   - one tf32 pass (10-bit mantissa); the recurrence amplifies its rounding, so outputs drift from eager.
#   bf16   - A and h rounded to bf16 for the dot, fp32 accumulation and state; halves A's on-chip footprint.
PRECISIONS = ("ieee", "tf32x3", "tf32", "bf16")
IMPLS = ("auto", "eager", "fused")
# The precision the fused path uses unless told otherwise: keep equal to the model.precision default (conf/model/).
DEFAULT_PRECISION = "ieee"
# Largest hidden size the kernels take: the hidden state tile (block_b x next_pow2(n)) lives in registers.
MAX_HIDDEN = 512


def interpreting() -> bool:
    """True when the kernels run in Triton's CPU interpreter: they were built (or, not imported yet, will be built)
    while TRITON_INTERPRET=1 was set. Triton reads the variable when a kernel is defined, so it must be set before
    `antisym.kernels.euler` is first imported."""
    euler = sys.modules.get("antisym.kernels.euler")
    if euler is not None:
        return euler.INTERPRETED
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def fused_unsupported_reason(
    device: torch.device, hidden_size: int, dtype: torch.dtype, allow_interpreter: bool = False
) -> str | None:
    """Why the fused path cannot run here, or None when it can. CPU tensors run only in Triton's interpreter, and
    only when `allow_interpreter` (an explicit model.impl=fused; auto never picks the slow interpreter)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if hidden_size > MAX_HIDDEN:
        return f"hidden size {hidden_size} > {MAX_HIDDEN}"
    if dtype != torch.float32:
        return f"dtype {dtype} (the kernels take float32)"
    if device.type == "cuda":
        if torch.cuda.get_device_capability(device) < (8, 0):
            return "GPU older than sm_80"
        return None
    if device.type == "cpu" and allow_interpreter and interpreting():
        return None
    return f"device {device.type} (the kernels need CUDA; CPU tensors only with TRITON_INTERPRET=1 and impl=fused)"


def fused_euler_recurrence(cell: EulerCell, u: Tensor, h0: Tensor, precision: str = "ieee", **tuning) -> Tensor:
    """h_T of `cell` over projected inputs u (B, T, k) from h0 (B, n), in one forward and one backward launch."""
    from antisym.kernels.euler import fused_euler_recurrence as impl

    return impl(cell, u, h0, precision=precision, **tuning)


def fused_packed_recurrence(cells: list[EulerCell], u: Tensor, h0: Tensor, precision: str = "ieee", **tuning) -> Tensor:
    """h_T (R, B, n) of a pack of R cells over their inputs u (R, B, T, k): one launch per direction for all."""
    from antisym.kernels.euler import fused_packed_recurrence as impl

    return impl(cells, u, h0, precision=precision, **tuning)


__all__ = [
    "IMPLS",
    "MAX_HIDDEN",
    "PRECISIONS",
    "fused_euler_recurrence",
    "fused_packed_recurrence",
    "fused_unsupported_reason",
    "interpreting",
]
