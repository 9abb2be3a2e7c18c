"""Parity of the fused recurrence: fused (each precision) and fp32 eager, both measured against eager in float64.

For each case (cell, T, m, n) one batch of uniform [0, 1] inputs (as pixels) goes through one cross-entropy step of
the readout; the errors are |loss - ref|, max |h_T - ref| and, for every parameter gradient, max |g - ref| / max |ref|.
`check_parity` returns every row with its pass/fail under `Tolerances`: the call a kernel campaign makes once per
kernel version. The fp32 eager row is the floor: the rounding of fp32 itself, amplified by the dynamics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from antisym.kernels import DEFAULT_PRECISION, PRECISIONS
from antisym.models import build_model

EPS, GAMMA = 0.1, 0.01  # conf/model/asym.yaml
# (cell, T, m, n): the task shapes (pMNIST; pixel CIFAR-10 at 256 units, 196 for the ablation) and a tiny stand-in
TASK_CASES = (
    ("asym", 784, 1, 128),
    ("gated", 784, 1, 128),
    ("asym", 1024, 3, 256),
    ("gated", 1024, 3, 256),
    ("ablation", 1024, 3, 196),
)
TINY_CASES = (("asym", 6, 1, 16), ("gated", 5, 3, 24), ("ablation", 4, 3, 12))


@dataclass(frozen=True)
class Tolerances:
    """When a parity row passes, fixed before any GPU run so that the data cannot choose them.

    The worst parameter-gradient error against float64 (max |g - ref| / max |ref|, worst parameter) must be within
    `grad_rel_err`; a fused row also passes within `floor_factor` x fp32 eager's own error at the same cell and n,
    where the dynamics amplify fp32 rounding beyond `grad_rel_err`. The fp32 eager row itself is held to
    `grad_rel_err` alone (a check of the reference).
    """

    grad_rel_err: float = 1e-2
    floor_factor: float = 10.0


TOLERANCES = Tolerances()


def default_variants() -> list[tuple[str, str]]:
    """(impl, precision): fp32 eager, then the fused recurrence in each precision."""
    return [("eager", DEFAULT_PRECISION)] + [("fused", p) for p in PRECISIONS]


def model_cfg(
    name: str, n: int, impl: str, precision: str = DEFAULT_PRECISION, eps: float = EPS, gamma: float = GAMMA
) -> dict:
    return {
        "name": name,
        "hidden_size": n,
        "eps": eps,
        "gamma": gamma,
        "init_std": 1.0,
        "impl": impl,
        "precision": precision,
    }


def loss_and_grads(model, x, y):
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    with torch.no_grad():
        h_t = model.final_state(x)
    return loss.detach(), h_t, grads


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def worst_grad(row: Mapping[str, Any]) -> float:
    return max(row["grad_rel_err"].values())


def judge(rows: Iterable[Mapping[str, Any]], tol: Tolerances = TOLERANCES) -> list[dict]:
    """The rows again, each with `bound` (the gradient error it is held to) and `passed`.

    A row that raised (`error`) fails; a fused row's bound is max(grad_rel_err, floor_factor x the worst gradient
    error of fp32 eager at the same cell and n); eager rows are held to grad_rel_err."""
    rows = [dict(r) for r in rows]
    floors: dict[tuple, float] = {}
    for r in rows:
        if r.get("impl") == "eager" and "grad_rel_err" in r and "error" not in r:
            key = (r["cell"], r["n"])
            floors[key] = max(floors.get(key, 0.0), worst_grad(r))
    for r in rows:
        if "error" in r or "grad_rel_err" not in r:
            r.update(bound=None, passed=False)
            continue
        bound = tol.grad_rel_err
        if r["impl"] != "eager":
            bound = max(bound, tol.floor_factor * floors.get((r["cell"], r["n"]), 0.0))
        r.update(bound=bound, passed=bool(worst_grad(r) <= bound))
    return rows


def row_label(r: Mapping[str, Any]) -> str:
    return "eager fp32" if r["impl"] == "eager" else f"{r['impl']} {r['precision']}"


def why_failed(r: Mapping[str, Any]) -> str:
    where = f"{row_label(r)} {r['cell']} T={r['T']} n={r['n']}"
    if "error" in r:
        return f"{where} failed: {r['error']}"
    return f"{where}: grad err {worst_grad(r):.1e} > {r['bound']:.1e}"


@dataclass
class ParityResult:
    """Every row of one parity check, judged (`judge`): the errors, the bound each is held to and pass/fail."""

    rows: list[dict]
    tolerances: Tolerances = TOLERANCES

    @property
    def passed(self) -> bool:
        """Every row (fp32 eager and each fused precision) within its bound, and at least one row."""
        return bool(self.rows) and all(r["passed"] for r in self.rows)

    def failures(self, impl: str | None = None, precision: str | None = None) -> list[str]:
        """Why the rows of this impl / precision (all rows by default) fail; empty when they all pass."""
        return [
            why_failed(r)
            for r in self.rows
            if not r["passed"]
            and (impl is None or r["impl"] == impl)
            and (precision is None or r["precision"] == precision)
        ]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "tolerances": asdict(self.tolerances), "rows": self.rows}


def check_parity(
    cases: Sequence[tuple[str, int, int, int]],
    device: torch.device | str = "cpu",
    *,
    batch: int = 128,
    variants: Sequence[tuple[str, str]] | None = None,
    tolerances: Tolerances = TOLERANCES,
    log: Callable[[dict], None] | None = None,
) -> ParityResult:
    """Measure each variant (impl, precision) at each case against float64 eager and judge it under `tolerances`.

    The same initial weights (seed 0) and the same batch (seed 1) for every variant of a case. A variant that raises
    becomes a failed row with its error, so one broken precision does not hide the others."""
    device = torch.device(device)
    variants = list(variants if variants is not None else default_variants())
    rows: list[dict] = []
    for name, T, m, n in cases:
        torch.manual_seed(0)
        ref = build_model(model_cfg(name, n, "eager"), m, 10).to(device).double()
        gen = torch.Generator(device=device).manual_seed(1)
        x = torch.rand(batch, T, m, device=device, generator=gen)
        y = torch.randint(0, 10, (batch,), device=device, generator=gen)
        loss_ref, h_ref, g_ref = loss_and_grads(ref, x.double(), y)
        for impl, precision in variants:
            base = {"cell": name, "T": T, "m": m, "n": n, "impl": impl, "precision": precision}
            try:
                model = build_model(model_cfg(name, n, impl, precision), m, 10).to(device)
                model.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
                loss, h_t, grads = loss_and_grads(model, x, y)
            except Exception as err:
                rows.append({**base, "error": f"{type(err).__name__}: {str(err)[:200]}"})
                continue
            names = [k for k, _ in model.named_parameters()]
            errs = [rel_err(g, r) for g, r in zip(grads, g_ref, strict=True)]
            rows.append(
                {
                    **base,
                    "plan": launch_plan_of(name, n, impl, precision),
                    "loss_err": abs(loss.item() - loss_ref.item()),
                    "h_err": (h_t.double() - h_ref).abs().max().item(),
                    "grad_rel_err": dict(zip(names, errs, strict=True)),
                }
            )
            if log is not None:
                log(rows[-1])
    return ParityResult(judge(rows, tolerances), tolerances)


def launch_plan_of(name: str, n: int, impl: str, precision: str) -> dict[str, str]:
    """Where the fused kernels keep A in the forward and backward pass (resident or streamed); — for eager."""
    if impl != "fused":
        return {"fwd": "—", "bwd": "—"}
    from antisym.kernels.euler import launch_plan  # imports triton: only for fused rows

    return launch_plan(n, precision, name != "asym")


def recurrent_weight_err(r: Mapping[str, Any]) -> float | None:
    return next((v for k, v in r["grad_rel_err"].items() if k in ("cell.w_upper", "cell.weight_hh")), None)


def parity_lines(result: ParityResult, batch: int) -> list[str]:
    """The markdown of the parity section: one table row per (case, variant) with its pass/fail."""
    tol = result.tolerances
    lines = [
        f"Each row: one batch of {batch} (uniform [0, 1] inputs, as pixels), loss = cross-entropy of the readout. "
        "Errors are against eager in float64: |loss - ref|, max |h_T - ref|, and for each gradient "
        "max |g - ref| / max |ref| (the worst over all parameters, and that of the recurrent weight). "
        "The `eager fp32` row is the floor: the rounding of fp32 itself, amplified by the dynamics. "
        f"Pass: worst gradient error <= {tol.grad_rel_err:g}, or for a fused row <= {tol.floor_factor:g} x fp32 "
        "eager's at the same cell and n (campaign/gpu_check/parity.py, Tolerances).",
        "",
        "| cell | T | m | n | impl | A in fwd / bwd | loss err | h_T max err | worst grad rel err | "
        "recurrent-weight grad rel err | pass |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        lines.append(row_line(r))
    lines += ["", f"All rows pass: **{'yes' if result.passed else 'NO'}**"]
    return lines


def row_line(r: Mapping[str, Any]) -> str:
    start = f"| {r['cell']} | {r['T']} | {r['m']} | {r['n']} | {row_label(r)} |"
    if "error" in r:
        return f"{start} | FAILED: {r['error']} | | | | NO |"
    plan, w = r["plan"], recurrent_weight_err(r)
    verdict = "yes" if r.get("passed") else "NO" if "passed" in r else "—"
    return (
        f"{start} {plan['fwd']} / {plan['bwd']} | {r['loss_err']:.2e} | {r['h_err']:.2e} | {worst_grad(r):.2e} | "
        f"{'—' if w is None else f'{w:.2e}'} | {verdict} |"
    )


def parity_section(report, device, cases, batch: int, tolerances: Tolerances = TOLERANCES) -> ParityResult:
    """Section 1 of the GPU check: `check_parity` at the task shapes, every variant, into the report."""
    from antisym.benchmark.report import log

    result = check_parity(cases, device, batch=batch, tolerances=tolerances, log=lambda r: log(row_line(r)))
    report.add(
        "1. Parity with eager at the task shapes, per precision", parity_lines(result, batch), "parity", result.rows
    )
    return result
