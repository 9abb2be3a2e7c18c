"""The GPU check's pieces on a CPU: parity under the Triton interpreter at tiny shapes, the verdict on a hand-made
result, the report files, and the no-Hydra imports the GPU machine (torch + triton only) relies on."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict

import pytest
import torch

if "antisym.kernels.euler" not in sys.modules:  # as tests/test_kernels.py: before the kernels are first defined
    os.environ["TRITON_INTERPRET"] = "1"

from antisym.benchmark.report import Report  # noqa: E402
from antisym.benchmark.timing import (  # noqa: E402
    TINY_SHAPES,
    PackedRow,
    Variant,
    bmm_forward,
    make_model,
    packed_step_fn,
    random_batches,
    recommended_pack,
    run_packed,
)
from antisym.kernels import (  # noqa: E402
    DEFAULT_PRECISION,  # noqa: E402
    PRECISIONS,
    interpreting,
)
from campaign.gpu_check.parity import Tolerances, check_parity, judge, parity_lines  # noqa: E402
from campaign.gpu_check.training_curves import REFERENCE  # noqa: E402
from campaign.gpu_check.verdict import LOSS_GAP, PACK_OF_16, SPEED_TARGETS, verdict, verdict_lines  # noqa: E402
from tests.conftest import REPO  # noqa: E402

CASES = [("asym", 5, 1, 8), ("gated", 4, 2, 8)]
FUSED_OK = importlib.util.find_spec("triton") is not None and interpreting()


def test_parity_passes_at_a_tiny_shape():
    variants = [("eager", DEFAULT_PRECISION)] + ([("fused", "ieee")] if FUSED_OK else [])
    result = check_parity(CASES, "cpu", batch=3, variants=variants)
    assert len(result.rows) == len(CASES) * len(variants)
    assert result.passed and not result.failures(), result.failures()
    for row in result.rows:
        assert row["passed"] and 0 <= max(row["grad_rel_err"].values()) <= row["bound"]
        if row["impl"] == "eager":  # the reference check: held to grad_rel_err alone
            assert row["bound"] == Tolerances().grad_rel_err
        assert row["loss_err"] < 1e-5 and row["h_err"] < 1e-5  # fp32 against float64 at 5 steps
    if FUSED_OK:
        assert {(r["impl"], r["precision"]) for r in result.rows if r["passed"]} >= {("fused", "ieee")}
    assert "All rows pass: **yes**" in parity_lines(result, batch=3)


def test_parity_fails_under_impossible_tolerances_and_on_errors():
    impossible = Tolerances(grad_rel_err=0.0, floor_factor=0.0)
    result = check_parity(CASES[:1], "cpu", batch=3, variants=[("eager", DEFAULT_PRECISION)], tolerances=impossible)
    assert not result.passed and result.failures(impl="eager")
    assert "grad err" in result.failures()[0] and "All rows pass: **NO**" in parity_lines(result, batch=3)
    # a variant that raises is a failed row with its error, and the others are still measured
    broken = check_parity(CASES[:1], "cpu", batch=3, variants=[("eager", "no-such-precision"), ("eager", "ieee")])
    assert [r["passed"] for r in broken.rows] == [False, True] and "error" in broken.rows[0]
    assert not broken.passed and "failed" in broken.failures()[0]


def parity_row(cell, n, impl, precision, worst):
    return {"cell": cell, "T": 784, "m": 1, "n": n, "impl": impl, "precision": precision,
            "plan": {"fwd": "resident", "bwd": "resident"}, "loss_err": 0.0, "h_err": 0.0,
            "grad_rel_err": {"cell.w_upper": worst / 2, "readout.weight": worst}}  # fmt: skip


def test_parity_bound_allows_amplified_rounding_up_to_the_fp32_floor():
    rows = judge(
        [
            parity_row("ablation", 196, "eager", "ieee", 0.02),  # fp32 itself is 2e-2 off: over grad_rel_err
            parity_row("ablation", 196, "fused", "ieee", 0.15),  # within 10 x the floor
            parity_row("ablation", 196, "fused", "bf16", 0.25),  # beyond it
            parity_row("asym", 128, "fused", "ieee", 0.009),  # no eager row at this n: grad_rel_err alone
        ]
    )
    assert [r["passed"] for r in rows] == [False, True, False, True]
    assert [r["bound"] for r in rows] == pytest.approx([0.01, 0.2, 0.2, 0.01])


def speed_rows(ms: dict) -> list[dict]:
    return [{"shape": s, "model": m, "variant": v, "ms_median": t} for (s, m, v), t in ms.items()]


def hand_made_result(ms: dict) -> dict:
    """ieee and tf32x3 train as well as eager (tf32x3 faster: chosen); tf32 drifts in training; bf16 fails parity."""
    eager = {"loss": [2.0, 1.5, 1.2], "test_acc": 0.60, "seconds": 1.0}
    close = {"loss": [2.0, 1.51, 1.21], "test_acc": 0.605, "seconds": 1.0}
    drift = {"loss": [2.0, 1.5 + 2 * LOSS_GAP, 1.2], "test_acc": 0.60, "seconds": 1.0}
    curves = {"eager": eager, "fused[ieee]": close, "fused[tf32x3]": close, "fused[tf32]": drift, "fused[bf16]": close}
    parity = [parity_row("asym", 128, "eager", "ieee", 1e-4)]
    parity += [parity_row("asym", 128, "fused", p, 0.5 if p == "bf16" else 1e-3) for p in PRECISIONS]
    return {"parity": parity, "training": {"asym": curves, "gated": curves}, "speed_pmnist": speed_rows(ms)}


def test_verdict_picks_the_fastest_passing_precision_and_judges_every_target():
    ms = {  # chosen tf32x3: every target passes; default ieee: every target fails; CIFAR measured for ieee only
        ("pmnist", "asym", "eager"): 100.0,
        ("pmnist", "lstm", "torch LSTM"): 5.0,  # the LSTM row of a shape is found whatever its label
        ("pmnist", "asym", "fused[tf32x3]"): 4.0,  # 0.8 x LSTM; eager / fused = 25
        ("pmnist", "gated", "fused[tf32x3]"): 6.0,  # 1.2 x LSTM
        ("pmnist", "asym", "fused[ieee]"): 6.0,  # 1.2 x LSTM; eager / fused = 16.7
        ("pmnist", "gated", "fused[ieee]"): 7.0,  # 1.4 x LSTM
        ("pmnist", "asym", "fused[tf32]"): 1.0,  # fastest, but it fails the training criterion
        ("cifar10", "asym", "fused[ieee]"): 12.0,
        ("cifar10", "lstm", "cuDNN LSTM"): 10.0,  # 1.2
    }
    v = verdict(hand_made_result(ms))
    assert v["precisions"]["ieee"] == v["precisions"]["tf32x3"] == "ok"
    assert "loss gap" in v["precisions"]["tf32"] and "grad err" in v["precisions"]["bf16"]
    assert v["chosen"] == "tf32x3"
    got = {(t["precision"], t["target"]): t["passed"] for t in v["targets"]}
    assert len(got) == 2 * len(SPEED_TARGETS)
    for target in SPEED_TARGETS:
        if target.den == PACK_OF_16:  # no packed rows here: see test_pack_target_and_pack_size
            assert got[("tf32x3", target.label("fused[tf32x3]"))] is got[("ieee", target.label("fused[ieee]"))] is None
            continue
        assert got[("tf32x3", target.label("fused[tf32x3]"))] is (True if "CIFAR" not in target.name else None)
        assert got[("ieee", target.label("fused[ieee]"))] is False, target.name
    text = "\n".join(verdict_lines(v))
    assert "Recommended default precision: **tf32x3**" in text and "not measured" in text


def test_verdict_without_a_passing_precision_keeps_eager():
    raw = hand_made_result({("pmnist", "asym", "fused[ieee]"): 5.0})
    raw["training"] = {}
    v = verdict(raw)
    assert v["chosen"] is None and all("no training curves" in why for why in v["precisions"].values())
    assert all(t["passed"] is None for t in v["targets"])  # nothing to compare with: not measured
    assert "none passes: keep impl=eager" in "\n".join(verdict_lines(v))


def test_curve_gap_is_judged_against_the_fp64_rounding_floor():
    """Where fp32 eager itself is 0.3 from fp64 eager, a fused curve 0.5 from fp32 eager is within 2x that floor; one
    0.7 away is not; without the reference curve the fixed LOSS_GAP alone applies."""
    raw = hand_made_result({("pmnist", "asym", "fused[ieee]"): 5.0})
    eager = {"loss": [2.0, 1.5, 1.2], "test_acc": 0.60, "seconds": 1.0}
    ref = {"loss": [2.0, 1.8, 1.2], "test_acc": 0.60, "seconds": 1.0}
    near = {"loss": [2.0, 2.0, 1.2], "test_acc": 0.60, "seconds": 1.0}
    far = {"loss": [2.0, 2.2, 1.2], "test_acc": 0.60, "seconds": 1.0}
    curves = {REFERENCE: ref, "eager": eager, "fused[ieee]": near, "fused[tf32x3]": far}
    raw["training"] = {"asym": curves, "gated": curves}
    ok = verdict(raw)["precisions"]
    assert ok["ieee"] == "ok"
    assert "loss gap 0.700 > 0.600" in ok["tf32x3"]
    del curves[REFERENCE]
    assert "loss gap 0.500 > 0.050" in verdict(raw)["precisions"]["ieee"]


def packed_rows(ms_by_r: dict[int, float], variant: str = "eager packed") -> list[dict]:
    """Section 5b's raw rows (asdict of PackedRow): pMNIST asym, ms per iteration of the whole pack of R."""
    rows = [
        PackedRow(
            "pmnist", "asym", variant, 128, 784, 1, 128, 9674, ms, ms, None, [ms], R=R, packed="packed" in variant
        )
        for R, ms in ms_by_r.items()
    ]
    return [asdict(r) for r in rows]


@pytest.mark.parametrize(
    ("pack_ms", "passed", "size", "variant"),
    [
        (8.0, True, 16, "fused[ieee] packed"),  # 16 runs in 8 ms: 0.5 ms per run-iteration against 6 ms solo = 12x
        (16.0, False, 16, "fused[ieee] packed"),  # 1 ms per run-iteration: 6x; still the best pack size
        (None, None, 1, "eager packed"),  # no fused pack of 16 measured: not measured; the best measured is R = 1
    ],
)
def test_pack_target_and_pack_size(pack_ms, passed, size, variant):
    ms = {("pmnist", "asym", "fused[ieee]"): 6.0, ("pmnist", "asym", "fused[tf32x3]"): 4.0}
    raw = hand_made_result(ms)
    raw["packed"] = packed_rows({1: 5.0, 2: 10.5})
    raw["packed"] += packed_rows({1: 6.0} | ({16: pack_ms} if pack_ms else {}), "fused[ieee] packed")
    raw["packed"] += packed_rows({1: 6.0, 16: 96.0}, "fused[ieee] solo x R")
    v = verdict(raw)
    pack = [t for t in v["targets"] if "pack of 16" in t["target"] and t["precision"] == "ieee"]
    assert [t["passed"] for t in pack] == [passed]
    if passed is not None:
        assert pack[0]["ratio"] == pytest.approx(6.0 / (pack_ms / 16))
    assert v["pack_size"]["pack_size"] == size and v["pack_size"]["variant"] == variant
    assert f"pack_size at the pMNIST shape: **{size}**" in "\n".join(verdict_lines(v))


def test_pack_size_of_fused_solo_runs_is_one_and_none_without_rows():
    raw = hand_made_result({})
    raw["packed"] = packed_rows({1: 50.0, 4: 100.0}) + packed_rows({1: 6.0, 4: 23.0}, "fused[ieee] solo x R")
    pick = verdict(raw)["pack_size"]
    assert pick["pack_size"] == 1 and (pick["variant"], pick["R"]) == ("fused[ieee] solo x R", 4)
    raw["packed"] = "RuntimeError('failed')"  # a failed section: its error's text
    v = verdict(raw)
    assert v["pack_size"] is None and "pack_size at the pMNIST shape: not measured" in "\n".join(verdict_lines(v))


def test_tiny_packed_benchmark_reports_run_iterations():
    shapes = {"pmnist": TINY_SHAPES["pmnist"]}
    rows = run_packed(shapes, [1, 2], torch.device("cpu"), iters=1, warmup=0, batch=4, log=lambda _: None)
    eager = [(r.R, r.variant) for r in rows if r.packed and r.variant.startswith("eager")]
    assert eager == [
        (1, "eager packed"),
        (2, "eager packed"),
        (1, "eager bmm packed"),
        (2, "eager bmm packed"),
    ]
    fused = [(r.R, r.variant) for r in rows if r.variant.startswith("fused")]
    if FUSED_OK:  # fused packed and fused solo x R under the interpreter where triton is installed
        assert fused == [(R, f"fused[ieee] {how}") for how in ("packed", "solo x R") for R in (1, 2)]
    assert len(rows) == len(eager) + len(fused)  # no streams or CUDA graph rows off a GPU
    for row in rows:
        assert row.run_iters_per_s > 0 and row.run_iters_per_s == pytest.approx(row.R * 1e3 / row.ms_median)
        assert (row.T, row.B, len(row.times_ms)) == (TINY_SHAPES["pmnist"][0], 4, 1)


def test_bmm_pack_trains_what_pack_forward_trains():
    """The two ways of batching members that the packed benchmark times compute the same thing: three SGD steps of a
    pack of 3 AntisymmetricRNNs in float64, pack_forward (torch.func vmap) against the stacked-matrix bmm loop."""
    shape, batch, R = TINY_SHAPES["pmnist"], 4, 3
    packs = {}
    for forward in (None, bmm_forward):
        torch.set_default_dtype(torch.float64)
        try:
            models = [make_model("asym", shape, Variant("eager"), torch.device("cpu"), seed=r) for r in range(R)]
            xs, ys = random_batches(shape, batch, torch.device("cpu"), count=R)
        finally:
            torch.set_default_dtype(torch.float32)
        step = packed_step_fn(models, [x.double() for x in xs], ys, forward=forward)
        packs[forward] = [step().item() for _ in range(3)]
    func, bmm = packs[None], packs[bmm_forward]
    assert func[0] != func[2]  # it trained
    assert bmm == pytest.approx(func, rel=1e-12, abs=1e-12)
    for comparison in ("eager bmm packed", "fused[ieee] streams x R", "eager + CUDA graph packed",
                       "fused[ieee] + graph packed"):  # fmt: skip
        assert recommended_pack([PackedRow(**r) for r in packed_rows({4: 1.0}, comparison)]) is None, comparison


def test_report_is_rewritten_after_every_section(tmp_path):
    report = Report(
        tmp_path, title="T", script="python -m campaign.gpu_check", settings={"x": 1}, started=0.0, device="cpu"
    )
    report.add("1. First", ["line one"], "first", {"a": 1})
    report.add("2. Second", ["line two"], "second", [1, 2])
    md = (tmp_path / "bench.md").read_text()
    assert md.startswith("# T") and md.index("## 1. First") < md.index("## 2. Second")
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["first"] == {"a": 1} and data["second"] == [1, 2] and data["meta"]["settings"]["x"] == 1


def test_gpu_modules_import_without_hydra():
    """The GPU machine has torch and triton only: the check and the benchmark must not need Hydra or OmegaConf."""
    code = (
        "import sys; sys.modules['hydra'] = None; sys.modules['omegaconf'] = None\n"
        "import antisym.benchmark.timing, antisym.benchmark.report\n"
        "import campaign.gpu_check.training_curves, campaign.gpu_check.parity, campaign.gpu_check.verdict"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def test_gpu_check_cli_starts_on_a_cpu(tmp_path):
    """`python -m campaign.gpu_check --dry-run` with no budget: every import its sections make resolves and the report
    is written with each section skipped (the full dry run, `make gpu-check-dry-run`, takes minutes)."""
    out = tmp_path / "check"
    cmd = [sys.executable, "-m", "campaign.gpu_check", "--dry-run", "--budget-s", "0", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped" in done.stdout and (out / "bench.md").is_file()
    assert json.loads((out / "gpu_check.json").read_text())["meta"]["settings"]["dry_run"] is True


def test_training_curves_load_real_pmnist(real_data_root):
    """The GPU check's curves read the real files through the training loader, with the training runs' split."""
    from campaign.gpu_check.training_curves import load_pmnist

    train, test = load_pmnist(real_data_root, torch.device("cpu"), tiny=False)
    assert (len(train), len(test)) == (55_000, 10_000) and train.permutation is not None
