"""The fused Triton recurrence (antisym.kernels) against a direct loop of Eq. 12 / Eq. 13, on the CPU.

The kernels run in Triton's interpreter: TRITON_INTERPRET=1 is set here before the kernels are first defined.
Shapes are tiny because the interpreter is slow. Tolerances: fp32 kernels against a float64 reference, so about
1e-5; bf16 rounds the operands of every matmul to 8 bits, so about 5e-2.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed: the fused kernels cannot be tested", allow_module_level=True)

if "antisym.kernels.euler" not in sys.modules:
    # Stays set for the process: Triton imports parts of itself lazily and checks the variable then. Other tests
    # are unaffected by it: model.impl=auto never picks the interpreter (only an explicit impl=fused does).
    os.environ["TRITON_INTERPRET"] = "1"

from antisym.kernels import (  # noqa: E402
    PRECISIONS,
    fused_euler_recurrence,
    fused_packed_recurrence,
    fused_unsupported_reason,
    interpreting,
)
from antisym.models import build_model  # noqa: E402
from antisym.models.cells import AblationCell, AntisymmetricCell, GatedAntisymmetricCell  # noqa: E402

if not interpreting():
    pytest.skip(
        "antisym.kernels.euler was imported without TRITON_INTERPRET=1 before this module; the CPU tests "
        "need the interpreted kernels",
        allow_module_level=True,
    )

CELLS = {"asym": AntisymmetricCell, "gated": GatedAntisymmetricCell, "ablation": AblationCell}


def reference_final_state(cell, x: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """h_T by Eq. 12 / Eq. 13 written out directly, in float64, from the cell's parameters (not its methods)."""
    n = cell.hidden_size
    if isinstance(cell, AblationCell):
        w = cell.weight_hh.double()
        a = w - cell.gamma * torch.eye(n, dtype=torch.float64)
    else:
        rows, cols = torch.triu_indices(n, n, offset=1)
        w = torch.zeros(n, n, dtype=torch.float64).index_put((rows, cols), cell.w_upper.double())
        a = w - w.T - cell.gamma * torch.eye(n, dtype=torch.float64)
    v, b = cell.input_proj.weight.double(), cell.input_proj.bias.double()
    v_h, b_h = v[:n], b[:n]
    h = h0.double()
    for t in range(x.shape[1]):
        x_t = x[:, t].double()
        pre_h = h @ a.T + x_t @ v_h.T + b_h
        if cell.gated:  # Eq. 13: z_t = sigmoid(A h + V_z x + b_z) with the same A
            z = torch.sigmoid(h @ a.T + x_t @ v[n:].T + b[n:])
            h = h + cell.eps * z * torch.tanh(pre_h)
        else:  # Eq. 12
            h = h + cell.eps * torch.tanh(pre_h)
    return h


def make_cell(kind: str, n: int, m: int, eps: float, gamma: float, seed: int = 0):
    torch.manual_seed(seed)
    cell = CELLS[kind](m, n, eps=eps, gamma=gamma, init_std=2.0)
    with torch.no_grad():  # nonzero biases, so that a lost bias gradient shows
        cell.input_proj.bias.normal_(std=0.5)
    return cell


def grads_of(h_t: torch.Tensor, inputs: list[torch.Tensor], cotangent: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad((h_t * cotangent).sum(), inputs))


def check_against_reference(kind, n, B, T, eps, gamma, precision="ieee", tol=2e-5, **tuning):
    m = 3
    cell = make_cell(kind, n, m, eps, gamma)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, m, generator=gen, requires_grad=True)
    h0 = (0.5 * torch.randn(B, n, generator=gen)).requires_grad_()
    cotangent = torch.randn(B, n, generator=gen)
    inputs = [x, h0, *cell.parameters()]
    names = ["x", "h0", *(name for name, _ in cell.named_parameters())]

    h_ref = reference_final_state(cell, x, h0)
    g_ref = grads_of(h_ref, inputs, cotangent.double())
    h_fused = fused_euler_recurrence(cell, cell.project(x), h0, precision=precision, **tuning)
    g_fused = grads_of(h_fused, inputs, cotangent)

    def close(got, want, what):
        scale = want.abs().max().item() + 1.0
        err = (got.double() - want).abs().max().item()
        assert err <= tol * scale, (
            f"{kind} n={n} B={B} T={T} eps={eps} gamma={gamma} {precision} {tuning}: "
            f"{what} off by {err:.2e} (scale {scale:.2f})"
        )

    assert h_fused.shape == (B, n) and h_fused.dtype == torch.float32
    close(h_fused, h_ref, "h_T")
    for name, got, want in zip(names, g_fused, g_ref, strict=True):
        close(got, want, f"grad of {name}")


# Each case: cell, n, B, T, eps, gamma, tuning. n = 24 and 12 pad to 32 / 16 with masked lanes (like n = 196 -> 256);
# resident=False forces the streamed-A path (what fp32 n = 196 / 256 use on a GPU), in k-chunks of bk (default 16).
CASES = [
    ("asym", 16, 4, 1, 0.1, 0.01, {}),
    ("asym", 32, 5, 6, 1.0, 0.001, {}),
    ("asym", 24, 3, 5, 0.5, 1.0, {"resident": False, "bk": 16}),
    ("asym", 12, 18, 3, 0.01, 0.1, {}),  # 18 rows: two programs, the second one partly masked
    ("gated", 16, 4, 1, 1.0, 0.1, {"resident": False}),
    ("gated", 24, 5, 6, 0.1, 0.01, {}),
    ("gated", 32, 3, 4, 0.5, 1.0, {"resident": False, "bk": 16}),
    ("ablation", 24, 4, 5, 1.0, 0.001, {"resident": False, "bk": 16}),
    ("ablation", 16, 6, 1, 0.01, 1.0, {}),
    ("ablation", 32, 2, 3, 0.1, 0.1, {"block_b": 32}),
    ("gated", 40, 3, 3, 0.1, 0.1, {"resident": False, "bk": 32}),  # NP = 64: two chunks of 32, the second masked
]


@pytest.mark.parametrize(("kind", "n", "B", "T", "eps", "gamma", "tuning"), CASES)
def test_fused_matches_direct_loop(kind, n, B, T, eps, gamma, tuning):
    check_against_reference(kind, n, B, T, eps, gamma, **tuning)


# A pack of R = 3 members, each with its own weights, eps and gamma, in one launch per direction (grid axis 1);
# n not a power of two (masked lanes), T small, both A placements.
PACKED_CASES = [
    ("asym", 12, 5, 3, {}),
    ("gated", 20, 3, 4, {"resident": False, "bk": 16}),
    ("ablation", 24, 18, 2, {}),
]


@pytest.mark.parametrize(("kind", "n", "B", "T", "tuning"), PACKED_CASES)
def test_packed_members_match_separate_direct_loops(kind, n, B, T, tuning):
    m, R = 3, 3
    cells = [
        make_cell(kind, n, m, eps, gamma, seed=r)
        for r, (eps, gamma) in enumerate([(0.1, 0.01), (0.5, 1.0), (1.0, 0.1)])
    ]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(R, B, T, m, generator=gen, requires_grad=True)
    h0 = (0.5 * torch.randn(R, B, n, generator=gen)).requires_grad_()
    cotangent = torch.randn(R, B, n, generator=gen)
    params = [p for c in cells for p in c.parameters()]
    u = torch.stack([c.project(x[r]) for r, c in enumerate(cells)])
    h_fused = fused_packed_recurrence(cells, u, h0, **tuning)
    assert h_fused.shape == (R, B, n)
    h_ref = torch.stack([reference_final_state(c, x[r], h0[r]) for r, c in enumerate(cells)])
    g_fused = grads_of(h_fused, [x, h0, *params], cotangent)
    g_ref = grads_of(h_ref, [x, h0, *params], cotangent.double())
    for got, want in zip([h_fused, *g_fused], [h_ref, *g_ref], strict=True):
        scale = want.abs().max().item() + 1.0
        assert (got.double() - want).abs().max().item() <= 2e-5 * scale


def fused_nodes(out: torch.Tensor) -> set:
    """The FusedEulerRecurrence nodes of out's autograd graph."""
    found, seen, stack = set(), set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if "FusedEulerRecurrence" in type(fn).__name__:
            found.add(fn)
        stack.extend(f for f, _ in fn.next_functions)
    return found


def test_packed_models_run_the_pack_through_the_fused_kernels():
    """EulerClassifier.packed_forward with impl=fused: one fused launch for the whole pack, equal to the eager pack."""
    from antisym.models import pack_forward

    cfgs = [{"name": "gated", "hidden_size": 12, "eps": e, "gamma": 0.1, "impl": "fused"} for e in (0.1, 0.7)]
    torch.manual_seed(0)
    fused = [build_model(c, 3, 4) for c in cfgs]
    eager = [build_model({**c, "impl": "eager"}, 3, 4) for c in cfgs]
    for f, e in zip(fused, eager, strict=True):
        e.load_state_dict(f.state_dict())
    xs = list(torch.randn(2, 5, 4, 3))
    out_fused, out_eager = pack_forward(fused, xs), pack_forward(eager, xs)
    nodes = [fused_nodes(out) for out in out_fused]
    assert len(nodes[0]) == 1 and nodes[0] == nodes[1]  # both members hang off one launch
    assert not fused_nodes(out_eager[0])
    for a, b in zip(out_fused, out_eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", list(CELLS))
def test_bf16_precision_is_close(kind):
    # bf16 operands, fp32 state and accumulation: an explicit, less exact option.
    check_against_reference(kind, 24, 4, 4, 0.5, 0.01, precision="bf16", tol=5e-2)
    check_against_reference(kind, 16, 3, 3, 0.5, 0.01, precision="bf16", tol=5e-2, resident=False)


@pytest.mark.parametrize("precision", ["tf32", "tf32x3"])
def test_tf32_precisions_run(precision):
    # The interpreter computes tf32 dots in fp32, so this checks the plumbing, not tf32's error (gpu_check does).
    check_against_reference("gated", 16, 3, 3, 0.5, 0.01, precision=precision)


def _model_pair(name: str, n: int, impl: str):
    cfg = {"name": name, "hidden_size": n, "eps": 0.5, "gamma": 0.1, "init_std": 2.0}
    torch.manual_seed(0)
    eager = build_model({**cfg, "impl": "eager"}, 3, 10)
    other = build_model({**cfg, "impl": impl}, 3, 10)
    other.load_state_dict(eager.state_dict())
    return eager, other


@pytest.mark.parametrize("name", list(CELLS))
def test_model_impl_fused_matches_eager(name, caplog):
    eager, fused = _model_pair(name, 24, "fused")
    x = torch.randn(5, 4, 3)
    y = torch.randint(0, 10, (5,))
    grads = []
    with caplog.at_level(logging.INFO, logger="antisym"):
        for model in (eager, fused):
            loss = torch.nn.functional.cross_entropy(model(x), y)
            grads.append((loss.detach(), torch.autograd.grad(loss, list(model.parameters()))))
    assert "model.impl=fused -> fused on cpu" in caplog.text
    assert "model.impl=eager -> eager on cpu" in caplog.text
    (loss_e, g_e), (loss_f, g_f) = grads
    torch.testing.assert_close(loss_f, loss_e, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_f, g_e, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_auto_is_eager_on_cpu_and_says_so(caplog):
    eager, auto = _model_pair("asym", 16, "auto")
    x = torch.randn(2, 3, 3)
    with caplog.at_level(logging.INFO, logger="antisym"):
        torch.testing.assert_close(auto(x), eager(x), rtol=0, atol=0)  # same code path, bit for bit
    assert "model.impl=auto -> eager on cpu" in caplog.text
    assert auto.resolve_impl(x) == "eager"


def test_unsupported_settings_are_refused():
    with pytest.raises(ValueError, match="model.impl"):
        build_model({"name": "asym", "hidden_size": 16, "eps": 0.1, "gamma": 0.1, "impl": "cuda"}, 1, 10)
    with pytest.raises(ValueError, match="model.precision"):
        build_model({"name": "asym", "hidden_size": 16, "eps": 0.1, "gamma": 0.1, "precision": "fp8"}, 1, 10)
    cpu = torch.device("cpu")
    assert fused_unsupported_reason(cpu, 16, torch.float32) is not None  # auto never picks the interpreter
    assert fused_unsupported_reason(cpu, 16, torch.float32, allow_interpreter=True) is None
    assert "dtype" in fused_unsupported_reason(cpu, 16, torch.float64, allow_interpreter=True)
    assert "hidden size" in fused_unsupported_reason(cpu, 4096, torch.float32, allow_interpreter=True)
    cell = make_cell("asym", 16, 3, 0.1, 0.1)
    u, h0 = torch.randn(2, 3, 16), torch.zeros(2, 16)
    with pytest.raises(ValueError, match="block_b"):
        fused_euler_recurrence(cell, u, h0, block_b=8)
    with pytest.raises(TypeError, match="tuning"):
        fused_euler_recurrence(cell, u, h0, warps=4)
    assert set(PRECISIONS) == {"ieee", "tf32x3", "tf32", "bf16"}
