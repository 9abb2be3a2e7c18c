"""Triton kernels for the whole Euler recurrence of the asym, gated and ablation cells (Eq. 12 / Eq. 13).

Forward (one launch): program i owns batch rows [i*block_b, (i+1)*block_b) and walks t = 1..T with its hidden state
tile in registers and the recurrent matrix A either held on chip for the whole launch ("resident") or re-read from
L2 in k-chunks every step ("streamed": when A does not fit, e.g. fp32 at n = 196 or 256). It writes every state
h_0..h_T to a time-major buffer hs (T+1, B, n) and every recurrent pre-activation p_t = h_{t-1} A^T to ps (T, B, n);
the backward needs both.

Backward (one launch): walks t = T..1, reads p_t from ps, writes du_t (the gradient of the projected input, = the
pre-activation gradient) and carries dh_{t-1} = dh_t + dp_t A in registers; it ends with dh_0. Storing p costs one
(T, B, n) fp32 buffer (51 MB at the pMNIST shape) and an off-chain store per forward step; recomputing it instead
would put a second matmul on every backward step, the loop's bottleneck, and a second copy of A on chip. The gradient
of A, sum_t dp_t^T h_{t-1}, has no recurrence in it, so it is one cuBLAS GEMM over all (t, b) after the kernel
instead of a per-step, per-program partial in the serial loop.

Padding: n is padded to NP = next_pow2(max(n, 16)) (tl.dot needs tile dims >= 16) with masked loads; padded lanes of
A, u and h0 load as 0, so padded hidden units stay exactly 0 (tanh(0) = 0) and never touch the real ones.
"""

from __future__ import annotations

import contextlib
import threading

import torch
import triton
import triton.language as tl
from torch import Tensor
from triton.runtime.errors import OutOfResources

from antisym.kernels import PRECISIONS

try:  # Whether the kernels below are built for Triton's CPU interpreter (read when they are defined, as Triton does).
    from triton import knobs

    INTERPRETED = bool(knobs.runtime.interpret)
except ImportError:  # triton < 3.4 reads the environment directly
    import os

    INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# On-chip budget for the A tile a resident launch holds (the forward A^T, the backward A). H100/H200 have 227 KB of
# shared memory per block; fp32 A at n = 128 takes 64 KB, at n = 256 256 KB (streamed), bf16 at n = 256 128 KB.
RESIDENT_BYTES = 128 * 1024
EMULATE_BF16 = tl.constexpr(INTERPRETED)


# Only builtins of triton.language below, and helpers of this file: the library's own @jit helpers (tl.zeros,
# tl.sigmoid, ...) are plain JIT functions when triton was imported before TRITON_INTERPRET=1 was set (torchvision
# imports it), and the interpreter cannot call those.


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    # No tanh in triton.language; this form is exact at +-inf (exp overflow gives 1) and within ~1e-7 absolute
    # of torch.tanh elsewhere. libdevice's tanh would not run under TRITON_INTERPRET.
    return 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)


@triton.jit
def _mm(x, y, PRECISION: tl.constexpr):
    """x @ y with fp32 accumulation; bf16 rounds both operands to bf16 first."""
    if PRECISION == "bf16":
        if EMULATE_BF16:
            # Triton's interpreter (3.8) returns garbage for bf16 tl.dot; the same product from bf16-rounded
            # operands in fp32 (exact products, fp32 sums) stands in for it on CPU.
            return tl.dot(x.to(tl.bfloat16).to(tl.float32), y.to(tl.float32), input_precision="ieee")
        else:
            return tl.dot(x.to(tl.bfloat16), y.to(tl.bfloat16), out_dtype=tl.float32)
    else:
        return tl.dot(x, y, input_precision=PRECISION)


@triton.jit
def _load_matrix(m_ptr, stride_k, stride_j, N, NP: tl.constexpr):
    """The padded NP x NP tile M[k, j] = m_ptr[k * stride_k + j * stride_j] (0 outside n x n)."""
    r = tl.arange(0, NP)
    mask = (r < N)[:, None] & (r < N)[None, :]
    return tl.load(m_ptr + r[:, None] * stride_k + r[None, :] * stride_j, mask=mask, other=0.0)


@triton.jit
def _streamed_mm(
    x_ptr,
    x_stride,
    x_second,
    rb,
    mb,
    m_ptr,
    stride_k,
    stride_j,
    N,
    BLOCK_B: tl.constexpr,
    NP: tl.constexpr,
    BK: tl.constexpr,
    SUM_HALVES: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """X[rb, :n] @ M from memory in k-chunks of BK: X rows at x_ptr + b * x_stride (plus, with SUM_HALVES, the
    row segment at x_second further on, added to X), M as in `_load_matrix`. Returns (BLOCK_B, NP) fp32.

    A loop, not `tl.static_range`: unrolled, the compiler hoists every chunk's loads at once and spills (ptxas:
    0.2-3.5 KB per thread at n = 196 / 256, see results/kernel_resources.md); looped with BK = 16 it spills none."""
    rn = tl.arange(0, NP)
    acc = tl.full((BLOCK_B, NP), 0.0, tl.float32)
    for k0 in range(0, NP, BK):
        rk = k0 + tl.arange(0, BK)
        mk = rk < N
        x_off = x_ptr + rb[:, None] * x_stride + rk[None, :]
        x_mask = mb[:, None] & mk[None, :]
        xk = tl.load(x_off, mask=x_mask, other=0.0)
        if SUM_HALVES:
            xk += tl.load(x_off + x_second, mask=x_mask, other=0.0)
        mkj = tl.load(
            m_ptr + rk[:, None] * stride_k + rn[None, :] * stride_j, mask=mk[:, None] & (rn < N)[None, :], other=0.0
        )
        acc += _mm(xk, mkj, PRECISION)
    return acc


@triton.jit
def _load_inputs(u_tile, t, stride_ut, N, mask, GATED: tl.constexpr):
    """Step t's projected inputs (u_h, u_z): the candidate's and the gate's ([candidate | gate] in u); the asym
    cell has no gate, and u_z is u_h there (unused)."""
    u_h = tl.load(u_tile + t * stride_ut, mask=mask, other=0.0)
    u_z = tl.load(u_tile + t * stride_ut + N, mask=mask, other=0.0) if GATED else u_h
    return u_h, u_z


@triton.jit
def _batch_tile(B, N, BLOCK_B: tl.constexpr, NP: tl.constexpr):
    """This program's batch rows rb, the hidden lanes rn, their masks, and the offsets of its tile in a (B, n) slab."""
    rb = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    rn = tl.arange(0, NP)
    mb = rb < B
    m2 = mb[:, None] & (rn < N)[None, :]
    return rb, rn, mb, m2, rb[:, None] * N + rn[None, :]


@triton.jit
def _euler_fwd_kernel(
    u_ptr,
    a_ptr,
    h0_ptr,
    hs_ptr,
    ps_ptr,
    B,
    T,
    N,
    stride_ub,
    stride_ut,
    stride_ur,
    eps_ptr,
    GATED: tl.constexpr,
    BLOCK_B: tl.constexpr,
    NP: tl.constexpr,
    BK: tl.constexpr,
    RESIDENT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    rb, rn, mb, m2, tile = _batch_tile(B, N, BLOCK_B, NP)
    slab = B * N
    # Grid axis 1: the member of a pack (R independent recurrences, each with its own u, A, h0, eps and buffers).
    r = tl.program_id(1)
    u_ptr += r * stride_ur
    a_ptr += r * N * N
    h0_ptr += r * slab
    hs_ptr += r * (T + 1) * slab
    ps_ptr += r * T * slab
    eps = tl.load(eps_ptr + r)
    h = tl.load(h0_ptr + tile, mask=m2, other=0.0)
    tl.store(hs_ptr + tile, h, mask=m2)
    if RESIDENT:
        at = _load_matrix(a_ptr, 1, N, N, NP)  # at[k, j] = A[j, k], so h @ at = h A^T
    u_tile = u_ptr + rb[:, None] * stride_ub + rn[None, :]
    u_h, u_z = _load_inputs(u_tile, 0, stride_ut, N, m2, GATED)
    for t in range(T):
        # Step t+1's inputs do not depend on the recurrence: requested now, their latency hides behind this step.
        u_h_next, u_z_next = _load_inputs(u_tile, t + 1, stride_ut, N, m2 & (t + 1 < T), GATED)
        if RESIDENT:
            p = _mm(h, at, PRECISION)
        else:
            tl.debug_barrier()  # h_{t-1}, stored by every thread of the program, is re-read in k-chunks
            p = _streamed_mm(hs_ptr + t * slab, N, 0, rb, mb, a_ptr, 1, N, N, BLOCK_B, NP, BK, False, PRECISION)
        tl.store(ps_ptr + t * slab + tile, p, mask=m2)
        h = h + eps * (_sigmoid(p + u_z) if GATED else 1.0) * _tanh(p + u_h)
        tl.store(hs_ptr + (t + 1) * slab + tile, h, mask=m2)
        u_h, u_z = u_h_next, u_z_next


@triton.jit
def _euler_bwd_kernel(
    u_ptr,
    a_ptr,
    ps_ptr,
    dht_ptr,
    du_ptr,
    dh0_ptr,
    B,
    T,
    N,
    stride_ub,
    stride_ut,
    stride_ur,
    eps_ptr,
    GATED: tl.constexpr,
    BLOCK_B: tl.constexpr,
    NP: tl.constexpr,
    BK: tl.constexpr,
    RESIDENT: tl.constexpr,
    PRECISION: tl.constexpr,
):
    rb, rn, mb, m2, tile = _batch_tile(B, N, BLOCK_B, NP)
    slab = B * N
    K = 2 * N if GATED else N
    r = tl.program_id(1)  # the member of a pack, as in the forward
    u_ptr += r * stride_ur
    a_ptr += r * N * N
    ps_ptr += r * T * slab
    dht_ptr += r * slab
    du_ptr += r * T * B * K
    dh0_ptr += r * slab
    eps = tl.load(eps_ptr + r)
    du_tile = rb[:, None] * K + rn[None, :]  # du is (T, B, K) contiguous, K = n or 2n = [candidate | gate]
    dh = tl.load(dht_ptr + tile, mask=m2, other=0.0)
    if RESIDENT:
        a = _load_matrix(a_ptr, N, 1, N, NP)  # A, for dh += dp A
    u_tile = u_ptr + rb[:, None] * stride_ub + rn[None, :]
    p = tl.load(ps_ptr + (T - 1) * slab + tile, mask=m2, other=0.0)
    u_h, u_z = _load_inputs(u_tile, T - 1, stride_ut, N, m2, GATED)
    for i in range(T):
        t = T - 1 - i
        # Step t-1's p and inputs, requested a step ahead as in the forward (nothing is loaded at t = 0).
        prev = m2 & (t > 0)
        p_prev = tl.load(ps_ptr + (t - 1) * slab + tile, mask=prev, other=0.0)
        u_h_prev, u_z_prev = _load_inputs(u_tile, t - 1, stride_ut, N, prev, GATED)
        g = eps * dh
        du_t = du_ptr + t * B * K + du_tile
        s = _tanh(p + u_h)
        if GATED:
            z = _sigmoid(p + u_z)
            da_h = g * z * (1.0 - s * s)
            da_z = g * s * z * (1.0 - z)
            tl.store(du_t, da_h, mask=m2)
            tl.store(du_t + N, da_z, mask=m2)
            dp = da_h + da_z  # gate and candidate share p = h A^T
        else:
            dp = g * (1.0 - s * s)
            tl.store(du_t, dp, mask=m2)
        if RESIDENT:
            dh = dh + _mm(dp, a, PRECISION)
        else:
            tl.debug_barrier()  # dp_t, just stored by every thread, is re-read in k-chunks
            dh = dh + _streamed_mm(du_ptr + t * B * K, K, N, rb, mb, a_ptr, N, 1, N, BLOCK_B, NP, BK, GATED, PRECISION)
        p, u_h, u_z = p_prev, u_h_prev, u_z_prev
    tl.store(dh0_ptr + tile, dh, mask=m2)


def padded_size(n: int) -> int:
    return max(16, triton.next_power_of_2(n))


# (direction, NP, precision, gated, block_b, num_warps) -> False once a resident launch ran out of shared memory.
_RESIDENT_FITS: dict[tuple, bool] = {}


def _a_dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


def _fit_key(direction: str, n: int, precision: str, gated: bool, tuning: dict) -> tuple:
    return (direction, padded_size(n), precision, gated, tuning["block_b"], tuning["num_warps"])


def _wants_resident(direction: str, n: int, precision: str, gated: bool, tuning: dict) -> bool:
    """Resident when asked (tuning["resident"]) or, by default, when A fits RESIDENT_BYTES; never once such a
    launch ran out of shared memory."""
    wanted = tuning["resident"]
    if wanted is None:
        itemsize = torch.empty((), dtype=_a_dtype(precision)).element_size()
        wanted = padded_size(n) ** 2 * itemsize <= RESIDENT_BYTES
    return wanted and _RESIDENT_FITS.get(_fit_key(direction, n, precision, gated, tuning), True)


def launch_options(n: int, gated: bool, precision: str, tuning: dict, resident: bool) -> dict:
    """The constexprs and compile options of one launch (shared with `antisym.kernels.resources`)."""
    NP = padded_size(n)
    options = dict(
        GATED=gated,
        BLOCK_B=tuning["block_b"],
        NP=NP,
        BK=min(tuning["bk"], NP),
        RESIDENT=resident,
        PRECISION=precision,
        num_warps=tuning["num_warps"],
    )
    if not resident:  # no software pipelining that could hoist the k-chunk loads above the loop's barrier
        options["num_stages"] = 1
    return options


KERNELS = {"fwd": _euler_fwd_kernel, "bwd": _euler_bwd_kernel}
# Held around every launch: Triton's JIT runtime (compile on first use, its caches) is not safe to enter from several
# threads at once, and the campaign trains packs side by side in threads (and autograd runs backward in its own).
# A launch only queues work on the caller's stream, so the kernels themselves still overlap.
_LAUNCH = threading.Lock()


def _launch(direction: str, args: tuple, R: int, B: int, n: int, gated: bool, precision: str, tuning: dict) -> None:
    """One launch over batch tiles x members; resident A when planned, streamed after an OutOfResources."""
    kernel = KERNELS[direction]
    grid = (triton.cdiv(B, tuning["block_b"]), R)
    with _LAUNCH, torch.cuda.device(args[0].device) if args[0].is_cuda else contextlib.nullcontext():
        if _wants_resident(direction, n, precision, gated, tuning):
            try:
                kernel[grid](*args, **launch_options(n, gated, precision, tuning, resident=True))
                return
            except OutOfResources:  # raised when compiling, before anything runs
                _RESIDENT_FITS[_fit_key(direction, n, precision, gated, tuning)] = False
        kernel[grid](*args, **launch_options(n, gated, precision, tuning, resident=False))


def launch_plan(n: int, precision: str = "ieee", gated: bool = False, **tuning) -> dict[str, str]:
    """Where A lives in each direction for this shape ("resident" or "streamed"), as the next launch would do it."""
    cfg = resolve_tuning(n, tuning)
    return {d: "resident" if _wants_resident(d, n, precision, gated, cfg) else "streamed" for d in ("fwd", "bwd")}


class FusedEulerRecurrence(torch.autograd.Function):
    """A pack of R recurrences: (u (R, B, T, k), A (R, n, n), h0 (R, B, n), eps (R,)) -> h_T (R, B, n); all float32,
    u with unit stride in its last dim. A solo run is R = 1."""

    @staticmethod
    def forward(ctx, u: Tensor, a: Tensor, h0: Tensor, eps: Tensor, gated: bool, precision: str, tuning: dict):
        R, B, T, _ = u.shape
        n = a.shape[-1]
        a_k = a.detach().to(_a_dtype(precision)).contiguous()
        hs = torch.empty(R, T + 1, B, n, device=u.device, dtype=torch.float32)  # h_0..h_T, time-major per member
        ps = torch.empty(R, T, B, n, device=u.device, dtype=torch.float32)  # p_1..p_T = h_{t-1} A^T
        args = (u, a_k, h0, hs, ps, B, T, n, u.stride(1), u.stride(2), u.stride(0), eps)
        _launch("fwd", args, R, B, n, gated, precision, tuning)
        ctx.save_for_backward(u, a_k, hs, ps, eps)
        ctx.gated, ctx.precision, ctx.tuning, ctx.a_dtype = gated, precision, tuning, a.dtype
        return hs[:, T].clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_t: Tensor):
        u, a_k, hs, ps, eps = ctx.saved_tensors
        R, B, T, k = u.shape
        n = a_k.shape[-1]
        du = torch.empty(R, T, B, k, device=u.device, dtype=torch.float32)  # time-major, see dA below
        dh0 = torch.empty(R, B, n, device=u.device, dtype=torch.float32)
        args = (u, a_k, ps, dh_t.contiguous(), du, dh0, B, T, n, u.stride(1), u.stride(2), u.stride(0), eps)
        _launch("bwd", args, R, B, n, ctx.gated, ctx.precision, ctx.tuning)
        da = None
        if ctx.needs_input_grad[1]:
            dp = du[..., :n] + du[..., n:] if ctx.gated else du
            # dA_r = sum_{t,b} dp_t[b]^T h_{t-1}[b]: time-major hs[:, :-1] and dp flatten to (R, T*B, n) for one bmm.
            da = (dp.reshape(R, T * B, n).transpose(1, 2) @ hs[:, :T].reshape(R, T * B, n)).to(ctx.a_dtype)
        return du.transpose(1, 2), da, dh0, None, None, None, None


DEFAULT_TUNING = {"block_b": 16, "bk": 16, "num_warps": None, "resident": None}


def resolve_tuning(n: int, tuning: dict) -> dict:
    """DEFAULT_TUNING updated by `tuning`, checked, with num_warps filled in (4 up to NP = 64, else 8)."""
    unknown = set(tuning) - set(DEFAULT_TUNING)
    if unknown:
        raise TypeError(f"unknown tuning options {sorted(unknown)}; known: {sorted(DEFAULT_TUNING)}")
    cfg = {**DEFAULT_TUNING, **tuning}
    for name in ("block_b", "bk"):
        if cfg[name] < 16 or cfg[name] & (cfg[name] - 1):
            raise ValueError(f"{name}={cfg[name]} must be a power of two >= 16 (tl.dot tile)")
    if cfg["num_warps"] is None:
        cfg["num_warps"] = 4 if padded_size(n) <= 64 else 8
    return cfg


def fused_euler_recurrence(cell, u: Tensor, h0: Tensor, precision: str = "ieee", **tuning) -> Tensor:
    """h_T of an `EulerCell` over projected inputs u (B, T, k) from h0 (B, n), through the fused kernels.

    `tuning`: block_b (batch rows per program, a power of two >= 16), bk (k-chunk of a streamed A), num_warps,
    resident (True / False / None = by RESIDENT_BYTES). The triangular parameterisation stays in PyTorch: the
    gradient reaches w_upper through `cell.recurrent_matrix()`. A solo run is a pack of one.
    """
    return fused_packed_recurrence([cell], u[None], h0[None], precision, **tuning)[0]


def fused_packed_recurrence(cells: list, u: Tensor, h0: Tensor, precision: str = "ieee", **tuning) -> Tensor:
    """h_T (R, B, n) of R `EulerCell`s of one kind and size, each over its own projected inputs u[r] (u: R, B, T, k)
    from h0[r] (R, B, n), with its own A and eps: one forward and one backward launch for the whole pack."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if u.device.type != "cuda" and not INTERPRETED:
        raise RuntimeError("the fused recurrence needs CUDA tensors, or TRITON_INTERPRET=1 for CPU tensors")
    n = cells[0].hidden_size
    cfg = resolve_tuning(n, tuning)
    a = torch.stack([c.recurrent_matrix() for c in cells])
    eps = torch.stack([c.eps for c in cells]).to(u.device, torch.float32)
    u = u.float()
    if u.stride(-1) != 1:
        u = u.contiguous()
    R, B, T, _ = u.shape
    if R * (T + 1) * B * 2 * n >= 2**31:
        raise ValueError(f"R={R}, B={B}, T={T}, n={n}: buffers exceed int32 indexing of the kernels")
    if T == 0:
        return h0
    return FusedEulerRecurrence.apply(u, a.float(), h0.float().contiguous(), eps, cells[0].gated, precision, cfg)
