"""The verdict of a GPU check: which fused precisions train as well as fp32 eager, the default precision they pick,
and the speed targets of the fused kernels, from the numbers of the other sections (the report's raw dict).

Criteria and targets are written here before any GPU run, so that the data cannot choose them:

- a fused precision trains as well as fp32 eager when, for both cells' training curves, the logged losses stay
  within LOSS_GAP of eager's and the test accuracy within ACC_GAP_PTS points, and every parity row of it passes
  (campaign.gpu_check.parity.Tolerances: worst gradient error within 1e-2 of float64, or within 10x fp32 eager's own);
  where fp32 rounding alone moves the curve further (fp32 eager against fp64 eager, the curves' floor), a gap
  within CURVE_FLOOR_FACTOR x that floor passes too: where the dynamics amplify rounding
  (campaign/gpu_check/training_curves.py) every precision, ieee included, would fail although its parity rows match fp32
  eager's rounding;
- of the precisions that do, the fastest at the pMNIST shape becomes the default;
- SPEED_TARGETS: a training iteration of the fused model against the cuDNN LSTM and against eager, and the
  run-iterations/s of a pack of 16 fused runs (the kernels' member axis) against one solo fused run;
- the recommended hydra.launcher.pack_size: the pack size with the most run-iterations/s at the pMNIST shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from antisym.benchmark.timing import PackedRow, recommended_pack
from antisym.kernels import DEFAULT_PRECISION, PRECISIONS
from campaign.gpu_check.parity import TOLERANCES, Tolerances, judge, why_failed
from campaign.gpu_check.training_curves import REFERENCE, loss_gap

LOSS_GAP, ACC_GAP_PTS = 0.05, 2.0
CURVE_FLOOR_FACTOR = 2.0  # a fused curve may be this many times as far from fp32 eager as fp64 eager is
SPEED_KEYS = ("speed_pmnist", "speed_cifar")  # the report's keys of sections 2 and 4
FUSED = "{fused}"  # stands for the fused variant's label, fused[<precision>], in a target's keys


@dataclass(frozen=True)
class SpeedTarget:
    """A bound on the ratio of two training-iteration times, `num` / `den`: each (shape, model, variant)."""

    name: str  # "{fused}" is replaced by the fused variant's label
    num: tuple[str, str, str]
    den: tuple[str, str, str]
    bound: float
    op: str  # "le": ratio <= bound; "ge": ratio >= bound

    def label(self, fused: str) -> str:
        return self.name.replace(FUSED, fused)

    def judge(self, ms: Mapping[tuple[str, str, str], float], fused: str) -> dict[str, Any]:
        """{target, num_ms, den_ms, ratio, bound, passed}; ratio and passed None when a time was not measured."""
        num, den = (tuple(k.replace(FUSED, fused) for k in key) for key in (self.num, self.den))
        a, b = lstm_or(ms, num), lstm_or(ms, den)
        out = {"target": self.label(fused), "num_ms": a, "den_ms": b, "ratio": None, "bound": self.bound}
        if a is None or b is None or a != a or b != b:
            return {**out, "passed": None}
        ratio = a / b
        return {**out, "ratio": ratio, "passed": bool(ratio <= self.bound if self.op == "le" else ratio >= self.bound)}


LSTM = "lstm"  # a key's variant for the LSTM row of a shape, whatever its label (cuDNN LSTM on a GPU)
PACK_OF_16 = ("pmnist", "asym", f"{FUSED} packed R=16")  # in speed_table: ms per run-iteration (ms / R)
SPEED_TARGETS = (
    SpeedTarget(
        "fused asym step ({fused}) <= cuDNN LSTM step at the pMNIST shape",
        ("pmnist", "asym", FUSED),
        ("pmnist", "lstm", LSTM),
        1.0,
        "le",
    ),
    SpeedTarget(
        "fused asym step ({fused}) >= 20x faster than eager asym at the pMNIST shape",
        ("pmnist", "asym", "eager"),
        ("pmnist", "asym", FUSED),
        20.0,
        "ge",
    ),
    SpeedTarget(
        "fused gated step ({fused}) <= 1.3x cuDNN LSTM step at the pMNIST shape",
        ("pmnist", "gated", FUSED),
        ("pmnist", "lstm", LSTM),
        1.3,
        "le",
    ),
    SpeedTarget(
        "fused asym step ({fused}) <= cuDNN LSTM step at the CIFAR-10 shape (n=256)",
        ("cifar10", "asym", FUSED),
        ("cifar10", "lstm", LSTM),
        1.0,
        "le",
    ),
    SpeedTarget(  # a ratio of ms per run-iteration: solo fused ms / (pack ms / 16) = the pack's run-iterations/s gain
        "a pack of 16 fused runs ({fused}, one launch) at >= 10x the run-iterations/s of one solo fused asym run at "
        "the pMNIST shape (ms per run-iteration)",
        ("pmnist", "asym", FUSED),
        PACK_OF_16,
        10.0,
        "ge",
    ),
)


def lstm_or(ms: Mapping[tuple[str, str, str], float], key: tuple[str, ...]) -> float | None:
    """ms[key]; for an LSTM key, the time of the shape's LSTM row whatever its variant label."""
    shape, model, variant = key
    if variant != LSTM:
        return ms.get((shape, model, variant))
    return next((v for (s, mo, _), v in ms.items() if s == shape and mo == model and v == v), None)


def rows_of(raw: Mapping[str, Any], key: str) -> list:
    """A section's rows; none where it was skipped (None) or failed (its error's text)."""
    rows = raw.get(key)
    return rows if isinstance(rows, list) else []


def speed_table(raw: Mapping[str, Any]) -> dict[tuple[str, str, str], float]:
    """(shape, model, variant) -> median ms of every measured training-iteration row (sections 2 and 4), and of every
    packed row (section 5b) as (shape, model, "<variant> R=<R>") -> ms per run-iteration (median ms / R)."""
    table = {(r["shape"], r["model"], r["variant"]): r["ms_median"] for key in SPEED_KEYS for r in rows_of(raw, key)}
    for r in rows_of(raw, "packed"):
        table[(r["shape"], r["model"], f"{r['variant']} R={r['R']}")] = r["ms_median"] / r["R"]
    return table


def pack_size(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """The recommended pack_size at the pMNIST shape (benchmark.recommended_pack) and the row it comes from."""
    pick = recommended_pack([PackedRow(**r) for r in rows_of(raw, "packed") if r["shape"] == "pmnist"])
    if pick is None:
        return None
    size, row = pick
    return {"pack_size": size, "variant": row.variant, "R": row.R, "run_iters_per_s": row.run_iters_per_s}


def precision_verdicts(raw: Mapping[str, Any], tolerances: Tolerances = TOLERANCES) -> dict[str, str]:
    """Each fused precision -> "ok", or why it fails the criteria (training curves and parity rows)."""
    verdicts = {}
    parity_rows = judge(raw.get("parity") or [], tolerances)
    for precision in PRECISIONS:
        label, why = f"fused[{precision}]", []
        for cell, curves in (raw.get("training") or {}).items():
            eager, fused, ref = curves.get("eager"), curves.get(label), curves.get(REFERENCE)
            if eager is None or fused is None:
                why.append(f"no {cell} curve")
                continue
            gap, allowed = loss_gap(fused, eager), LOSS_GAP
            if ref is not None:
                allowed = max(allowed, CURVE_FLOOR_FACTOR * loss_gap(eager, ref))
            if gap > allowed:
                why.append(f"{cell} loss gap {gap:.3f} > {allowed:.3f}")
            if eager["test_acc"] is not None:
                acc_gap, acc_allowed = abs(fused["test_acc"] - eager["test_acc"]) * 100, ACC_GAP_PTS
                if ref is not None:
                    acc_allowed = max(acc_allowed, CURVE_FLOOR_FACTOR * abs(eager["test_acc"] - ref["test_acc"]) * 100)
                if acc_gap > acc_allowed:
                    why.append(
                        f"{cell} test acc {100 * fused['test_acc']:.1f}% vs {100 * eager['test_acc']:.1f}% "
                        f"(> {acc_allowed:.1f} points)"
                    )
        if not raw.get("training"):
            why.append("no training curves")
        rows = [r for r in parity_rows if r.get("impl") == "fused" and r.get("precision") == precision]
        why += [why_failed(r) for r in rows if not r["passed"]]
        if not rows:
            why.append("no parity rows")
        verdicts[precision] = "ok" if not why else "; ".join(why)
    return verdicts


def verdict(raw: Mapping[str, Any], tolerances: Tolerances = TOLERANCES) -> dict[str, Any]:
    """{precisions: {p: "ok" | why not}, chosen: the default precision or None, targets: [SpeedTarget.judge ...],
    pack_size: pack_size(raw)}.

    The targets are judged for the chosen precision and for the current default (DEFAULT_PRECISION)."""
    ok = precision_verdicts(raw, tolerances)
    ms = speed_table(raw)
    passing = [p for p in PRECISIONS if ok[p] == "ok"]
    chosen = min(passing, key=lambda p: ms.get(("pmnist", "asym", f"fused[{p}]"), float("inf")), default=None)
    targets = [
        {**target.judge(ms, f"fused[{precision}]"), "precision": precision}
        for precision in dict.fromkeys(p for p in (chosen, DEFAULT_PRECISION) if p)
        for target in SPEED_TARGETS
    ]
    return {"precisions": ok, "chosen": chosen, "targets": targets, "pack_size": pack_size(raw)}


def verdict_lines(v: Mapping[str, Any]) -> list[str]:
    tol = TOLERANCES
    lines = [
        f"Criteria (campaign/gpu_check/verdict.py): logged training losses within {LOSS_GAP} of fp32 eager's, test "
        f"accuracy within {ACC_GAP_PTS} points (or within {CURVE_FLOOR_FACTOR:g}x fp64 eager's distance from fp32 "
        f"eager, the rounding floor), worst parity gradient error within {tol.grad_rel_err:g} (or "
        f"{tol.floor_factor:g}x fp32 eager's own); of the precisions that pass, the fastest at the pMNIST shape "
        "becomes the default.",
        "",
        "| precision | trains as well as fp32 eager? |",
        "|---|---|",
        *(f"| {p} | {why} |" for p, why in v["precisions"].items()),
        "",
        f"Recommended default precision: **{v['chosen'] or 'none passes: keep impl=eager'}**",
        "",
        "| target | measured | pass |",
        "|---|---|---|",
    ]
    for t in v["targets"]:
        if t["passed"] is None:
            lines.append(f"| {t['target']} | not measured | — |")
        else:
            lines.append(
                f"| {t['target']} | {t['num_ms']:.2f} / {t['den_ms']:.2f} ms = {t['ratio']:.2f} | "
                f"{'yes' if t['passed'] else 'NO'} |"
            )
    return lines + ["", pack_size_line(v.get("pack_size"))]


def pack_size_line(pick: Mapping[str, Any] | None) -> str:
    if pick is None:
        return "Recommended hydra.launcher.pack_size at the pMNIST shape: not measured (no packed rows)."
    return (
        f"Recommended hydra.launcher.pack_size at the pMNIST shape: **{pick['pack_size']}** (the most "
        f"run-iterations/s: {pick['run_iters_per_s']:.2f}, {pick['variant']} R={pick['R']})."
    )


def verdict_section(report) -> dict[str, Any]:
    """Section 7 of the GPU check: the verdict on the report's numbers so far, into the report."""
    v = verdict(report.raw)
    report.add("7. Verdict: speed targets, default precision, pack size", verdict_lines(v), "verdict", v)
    return v
