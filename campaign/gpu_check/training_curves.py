"""Short real permuted-MNIST training curves: fp32 eager against the fused recurrence in each precision, from the
same initial weights on the same batches, so that the curves differ only by the recurrence's arithmetic; and fp64
eager, whose gap to fp32 eager is the floor: how far fp32 rounding alone moves the curve at these settings.

The settings are the Table 1 presets' (eps = gamma = 0.01, sigma_w = 1, Adagrad lr 0.1), what the campaign trains.
At eps = 0.1, T = 784 Euler steps amplify every rounding difference (exp(T (eps^2 lambda^2 - 2 eps gamma) / 2) ~
e^15 for lambda = 2; losses of 9-15): there fp32 and fp64 eager part as far as eager and fused do
(results/curve_floor_cpu.md, results/bench.md), and the comparison says nothing.

In a dry run (tiny=True) the images are 4x4-pooled to T=16, or replaced by random data when no MNIST is given.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from antisym.benchmark.report import Report, log
from antisym.kernels import DEFAULT_PRECISION, PRECISIONS
from antisym.models import build_model
from campaign.gpu_check.parity import model_cfg

CURVE_EPS, CURVE_GAMMA = 0.01, 0.01  # conf/experiment/table1/asym_pmnist.yaml (and the gated preset)
REFERENCE = "eager fp64"  # the floor's reference curve


def mnist_root(data_root: str | None) -> Path | None:
    """A folder with MNIST/raw/*-ubyte: data_root itself, or a temporary one with its *.gz files unpacked."""
    if data_root is None:
        return None
    raw = Path(data_root) / "MNIST" / "raw"
    if (raw / "train-images-idx3-ubyte").is_file():
        return Path(data_root)
    tmp = Path(tempfile.mkdtemp(prefix="mnist_")) / "MNIST" / "raw"
    tmp.mkdir(parents=True)
    for gz in raw.glob("*-ubyte.gz"):
        with gzip.open(gz, "rb") as src, open(tmp / gz.name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return tmp.parents[1]


def load_pmnist(root: Path | None, device: torch.device, tiny: bool):
    """Permuted-MNIST train and test tasks (real data); (None, None) in a dry run without data."""
    from antisym.data import build_task

    if root is None:
        if not tiny:
            raise SystemExit("--data-root is required outside --dry-run (MNIST/raw/*-ubyte or *.gz)")
        return None, None
    # The training runs' split (5,000 held out): the curves train on the same 55,000 images and evaluate on test.
    cfg = {"name": "pmnist", "val_size": 5000, "split_seed": 0, "normalize": False, "permutation_seed": 0}
    return (
        build_task(cfg, str(root), "train", download=False).to(device),
        build_task(cfg, str(root), "test", download=False).to(device),
    )


def _pool(x: torch.Tensor) -> torch.Tensor:
    """784 pixels -> 16 (4x4 average pooling): the dry run's short sequences."""
    return F.avg_pool2d(x.reshape(len(x), 1, 28, 28), 7).reshape(len(x), 16, 1)


def batches(train, steps: int, batch: int, device: torch.device, tiny: bool):
    """The same sequence of (x, y) for every variant; in a dry run, pooled MNIST (T=16) or random data."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        if train is None:
            yield torch.rand(batch, 16, 1, device=device), torch.randint(0, 10, (batch,), device=device)
            continue
        idx = torch.randint(0, len(train), (batch,), generator=gen)
        x, y = train.batch(idx.to(device))
        yield (_pool(x) if tiny else x), y


def evaluate(model, test, device, count: int, tiny: bool) -> float | None:
    if test is None:
        return None
    correct = 0
    with torch.no_grad():
        for start in range(0, count, 500):
            idx = torch.arange(start, min(start + 500, count), device=device)
            x, y = test.batch(idx)
            x = _pool(x) if tiny else x
            correct += (model(x.to(next(model.parameters()).dtype)).argmax(-1) == y).sum().item()
    return correct / count


def loss_gap(curve: dict, eager: dict) -> float:
    """Largest |loss - eager loss| over the logged points of two training curves."""
    return max(abs(a - b) for a, b in zip(curve["loss"], eager["loss"], strict=False))


def fmt_acc(acc) -> str:
    return "—" if acc is None else f"{100 * acc:.2f}%"


def train_curve(
    name: str,
    impl: str,
    precision: str,
    train,
    test,
    device,
    steps: int,
    n: int,
    batch: int,
    tiny: bool,
    dtype: torch.dtype = torch.float32,
    eps: float = CURVE_EPS,
):
    """One variant's curve: mean training loss every steps/10 steps, test accuracy after the last, wall time."""
    every = max(1, steps // 10)
    torch.manual_seed(0)
    cfg = model_cfg(name, n, impl, precision, eps=eps, gamma=CURVE_GAMMA)
    model = build_model(cfg, 1, 10).to(device=device, dtype=dtype)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
    losses, window, t0 = [], [], time.time()
    for step, (x, y) in enumerate(batches(train, steps, batch, device, tiny), 1):
        opt.zero_grad()
        loss = F.cross_entropy(model(x.to(dtype)), y)
        loss.backward()
        opt.step()
        window.append(loss.detach())
        if step % every == 0:
            losses.append(torch.stack(window).mean().item())
            window = []
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - t0
    acc = evaluate(model, test, device, 2000 if not tiny else 40, tiny)
    return {"loss": losses, "test_acc": acc, "seconds": seconds}


def curves_section(report: Report, device: torch.device, root: Path | None, steps: int, tiny: bool) -> dict:
    """Section 3 of the GPU check: eager vs fused training curves of both cells, into the report."""
    train, test = load_pmnist(root, device, tiny)
    n, batch = (128, 128) if not tiny else (16, 8)
    every = max(1, steps // 10)
    n_test = 2000 if not tiny else 40
    lines = [
        f"Permuted MNIST (real data), n={n}, batch {batch}, Adagrad lr 0.1 (conf/optimizer/adagrad.yaml), "
        f"eps={CURVE_EPS}, gamma={CURVE_GAMMA}, sigma_w=1 (the Table 1 presets), {steps} steps; the same initial "
        f"weights and the same batches for every variant. Loss = mean training cross-entropy over the last {every} "
        f"steps; test accuracy on the first {n_test} test images after the last step. `{REFERENCE}` is the floor: "
        "its gap to fp32 eager is what fp32 rounding alone does to the curve.",
        "",
    ]
    raw = {}
    for name in ("asym", "gated"):
        curves = {}
        variants = [
            (REFERENCE, "eager", DEFAULT_PRECISION, torch.float64),
            ("eager", "eager", DEFAULT_PRECISION, torch.float32),
            *((f"fused[{p}]", "fused", p, torch.float32) for p in PRECISIONS),
        ]
        for label, impl, precision, dtype in variants:
            if report.time_left() < 20:
                log(f"  training {name} {label}: skipped, budget spent")
                continue
            c = train_curve(name, impl, precision, train, test, device, steps, n, batch, tiny, dtype)
            curves[label] = c
            log(f"  training {name} {label}: {c['seconds']:.1f} s, final loss {c['loss'][-1]:.4f}, acc {c['test_acc']}")
        raw[name] = curves
        if curves:
            lines += curve_table(name, curves, every)
    report.add("3. Short training curves: eager vs fused", lines, "training", raw)
    return raw


def curve_table(name: str, curves: dict, every: int) -> list[str]:
    labels = list(curves)
    lines = [f"**{name}**", "", "| step | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for i in range(max(len(c["loss"]) for c in curves.values())):
        cells = [f"{c['loss'][i]:.4f}" if i < len(c["loss"]) else "" for c in curves.values()]
        lines.append(f"| {(i + 1) * every} | " + " | ".join(cells) + " |")
    lines.append("| test acc | " + " | ".join(fmt_acc(c["test_acc"]) for c in curves.values()) + " |")
    lines.append("| wall s | " + " | ".join(f"{c['seconds']:.1f}" for c in curves.values()) + " |")
    if "eager" in curves:
        for label in labels:
            if label != "eager":
                gap = loss_gap(curves[label], curves["eager"])
                lines.append(f"\nmax |loss({label}) - loss(eager)| over the logged points: {gap:.4f}")
    lines.append("")
    return lines
