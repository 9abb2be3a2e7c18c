#!/usr/bin/env python
"""Everything issue 5 needs a GPU for, in one call that fits one device run (--budget-s 500 by default):

1. parity at the real shapes: the fused recurrence in each precision against fp32 eager, both measured against a
   float64 eager reference (loss, h_T and every parameter gradient of one cross-entropy step);
2. the training-iteration benchmark of scripts/bench.py at pMNIST shape (eager, CUDA-graph eager, fused in each
   precision, cuDNN LSTM);
2b. a torch.profiler breakdown of one training iteration at pMNIST shape (fused asym / gated, cuDNN LSTM);
3. short real-MNIST (permuted) training curves: eager vs fused in each precision, same init, same batches;
4. the benchmark at the two CIFAR-10 shapes;
5. throughput of 1, 2, 4, 8 training processes sharing the GPU;
6. a sweep of the fused kernels' launch settings (block_b, num_warps, resident A, bk), to choose the defaults;
7. the verdict: each target of issue 5 against the numbers above, and the default precision picked by criteria
   fixed in this file before any GPU run.
Sections run in that order while --budget-s lasts; the report is rewritten after each one, so a cut-off run still
leaves what it measured. Output: <out>/bench.md (the text for results/bench.md) and <out>/gpu_check.json.

GPU session (from the repo root; MNIST travels gzipped in the git-ignored .devdata/, see the README):
    python3 scripts/gpu_check.py --data-root .devdata --out $OUT --commit <sha>
CPU dry run of every code path (tiny shapes, Triton interpreter, synthetic data when --data-root is not given):
    .venv/bin/python scripts/gpu_check.py --dry-run --out /tmp/gpu_check
Needs torch and triton only (no Hydra).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
sys.path.insert(0, str(HERE))  # scripts/bench.py


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="gpu_check_out", help="folder for bench.md and gpu_check.json")
    ap.add_argument("--data-root", default=None, help="folder with MNIST/raw/*-ubyte (or *-ubyte.gz)")
    ap.add_argument("--commit", default=None, help="git commit to record where the checkout has no .git")
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop starting sections after this many seconds")
    ap.add_argument("--train-steps", type=int, default=300, help="steps of each training curve")
    ap.add_argument("--iters", type=int, default=10, help="timed iterations per benchmark row")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--sharing", default="1,2,4,8", help="process counts of the sharing test")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, Triton interpreter: checks the script")
    return ap.parse_args(argv)


ARGS = parse_args()
if ARGS.dry_run:  # before triton or the kernels are imported: Triton reads it when the kernels are defined
    os.environ["TRITON_INTERPRET"] = "1"

import bench  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from antisym.kernels import PRECISIONS  # noqa: E402
from antisym.models import build_model  # noqa: E402
from antisym.provenance import provenance  # noqa: E402

DEFAULT_PRECISION = "ieee"  # keep equal to the model.precision default in antisym/models/__init__.py


class Report:
    """Sections of markdown plus raw numbers, rewritten to disk after every section."""

    def __init__(self, out: Path, started: float, device: torch.device) -> None:
        self.out, self.started, self.device = out, started, device
        self.sections: list[tuple[str, list[str]]] = []
        self.raw: dict = {}
        out.mkdir(parents=True, exist_ok=True)

    def add(self, title: str, lines: list[str], key: str, raw) -> None:
        self.sections.append((title, lines))
        self.raw[key] = raw
        self.write()

    def write(self) -> None:
        settings = dict(vars(ARGS))
        meta = provenance("scripts/gpu_check.py", settings, self.started, device=str(self.device))
        if ARGS.commit:
            meta["git_commit"], meta["git_dirty"] = ARGS.commit, None
        meta["settings"].update(iters=ARGS.iters, warmup=ARGS.warmup)
        title = "Fused GPU recurrence: parity, speed, training curves" + (" (DRY RUN on CPU)" if ARGS.dry_run else "")
        lines = bench.header(meta, title)
        for sec_title, sec_lines in self.sections:
            lines += [f"## {sec_title}", "", *sec_lines, ""]
        (self.out / "bench.md").write_text("\n".join(lines))
        (self.out / "gpu_check.json").write_text(json.dumps({"meta": meta, **self.raw}, indent=1, default=str))

    def time_left(self) -> float:
        return ARGS.budget_s - (time.time() - self.started)


def log(msg: str) -> None:
    print(msg, flush=True)


# ---- 1. parity ------------------------------------------------------------------------------------------------------


def model_cfg(name: str, n: int, impl: str, precision: str = DEFAULT_PRECISION) -> dict:
    return {
        "name": name,
        "hidden_size": n,
        "eps": bench.EPS,
        "gamma": bench.GAMMA,
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


def parity(report: Report, device: torch.device, cases) -> None:
    from antisym.kernels.euler import launch_plan

    lines = [
        "Each row: one batch of 128 (uniform [0, 1] inputs, as pixels), loss = cross-entropy of the readout. "
        "Errors are against eager in float64: |loss - ref|, max |h_T - ref|, and for each gradient "
        "max |g - ref| / max |ref| (the worst over all parameters, and that of the recurrent weight). "
        "The `eager fp32` row is the floor: the rounding of fp32 itself, amplified by the dynamics.",
        "",
        "| cell | T | m | n | impl | A in fwd / bwd | loss err | h_T max err | worst grad rel err | "
        "recurrent-weight grad rel err |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    raw = []
    for name, T, m, n in cases:
        torch.manual_seed(0)
        ref = build_model(model_cfg(name, n, "eager"), m, 10).to(device).double()
        gen = torch.Generator(device=device).manual_seed(1)
        x = torch.rand(128 if not ARGS.dry_run else 5, T, m, device=device, generator=gen)
        y = torch.randint(0, 10, (x.shape[0],), device=device, generator=gen)
        loss_ref, h_ref, g_ref = loss_and_grads(ref, x.double(), y)
        variants = [("eager", DEFAULT_PRECISION)] + [("fused", p) for p in PRECISIONS]
        for impl, precision in variants:
            model = build_model(model_cfg(name, n, impl, precision), m, 10).to(device)
            model.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
            try:
                loss, h_t, grads = loss_and_grads(model, x, y)
            except Exception as err:
                lines.append(
                    f"| {name} | {T} | {m} | {n} | {impl} {precision} | | FAILED: {type(err).__name__}: "
                    f"{str(err)[:200]} | | | |"
                )
                raw.append({"cell": name, "impl": impl, "precision": precision, "error": repr(err)})
                continue
            errs = [rel_err(g, r) for g, r in zip(grads, g_ref, strict=True)]
            names = [k for k, _ in model.named_parameters()]
            w_idx = next(i for i, k in enumerate(names) if k in ("cell.w_upper", "cell.weight_hh"))
            plan = launch_plan(n, precision, name != "asym") if impl == "fused" else {"fwd": "—", "bwd": "—"}
            label = "eager fp32" if impl == "eager" else f"fused {precision}"
            row = {
                "cell": name,
                "T": T,
                "m": m,
                "n": n,
                "impl": impl,
                "precision": precision,
                "plan": plan,
                "loss_err": abs(loss.item() - loss_ref.item()),
                "h_err": (h_t.double() - h_ref).abs().max().item(),
                "grad_rel_err": dict(zip(names, errs, strict=True)),
            }
            raw.append(row)
            worst = max(errs)
            lines.append(
                f"| {name} | {T} | {m} | {n} | {label} | {plan['fwd']} / {plan['bwd']} | "
                f"{row['loss_err']:.2e} | {row['h_err']:.2e} | {worst:.2e} | {errs[w_idx]:.2e} |"
            )
            log(lines[-1])
    report.add("1. Parity with eager at the task shapes, per precision", lines, "parity", raw)


# ---- 3. training curves ------------------------------------------------------------------------------------------


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


def load_pmnist(root: Path | None, device: torch.device):
    """Permuted-MNIST train and test tasks (real data); synthetic stand-ins in a dry run without data."""
    from antisym.data import build_task

    if root is None:
        if not ARGS.dry_run:
            raise SystemExit("--data-root is required outside --dry-run (MNIST/raw/*-ubyte or *.gz)")
        return None, None
    cfg = {"name": "pmnist", "val_size": 0, "split_seed": 0, "normalize": False, "permutation_seed": 0}
    return (
        build_task(cfg, str(root), "train", download=False).to(device),
        build_task(cfg, str(root), "test", download=False).to(device),
    )


def batches(train, steps: int, batch: int, device: torch.device):
    """The same sequence of (x, y) for every variant; in a dry run, 4x4-pooled MNIST (T=16) or random data."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        if train is None:
            yield torch.rand(batch, 16, 1, device=device), torch.randint(0, 10, (batch,), device=device)
            continue
        idx = torch.randint(0, len(train), (batch,), generator=gen)
        x, y = train.batch(idx.to(device))
        if ARGS.dry_run:
            x = F.avg_pool2d(x.reshape(batch, 1, 28, 28), 7).reshape(batch, 16, 1)
        yield x, y


def evaluate(model, test, device, count: int) -> float | None:
    if test is None:
        return None
    correct = 0
    with torch.no_grad():
        for start in range(0, count, 500):
            idx = torch.arange(start, min(start + 500, count), device=device)
            x, y = test.batch(idx)
            if ARGS.dry_run:
                x = F.avg_pool2d(x.reshape(len(idx), 1, 28, 28), 7).reshape(len(idx), 16, 1)
            correct += (model(x).argmax(-1) == y).sum().item()
    return correct / count


def training_curves(report: Report, device: torch.device, root: Path | None) -> None:
    train, test = load_pmnist(root, device)
    steps, n, batch = ARGS.train_steps, (128 if not ARGS.dry_run else 16), (128 if not ARGS.dry_run else 8)
    every = max(1, steps // 10)
    n_test = 2000 if not ARGS.dry_run else 40
    lines = [
        f"Permuted MNIST (real data), n={n}, batch {batch}, Adagrad lr 0.1 (conf/optimizer/adagrad.yaml), "
        f"eps={bench.EPS}, gamma={bench.GAMMA}, {steps} steps; the same initial weights and the same batches for "
        f"every variant. Loss = mean training cross-entropy over the last {every} steps; test accuracy on the "
        f"first {n_test} test images after the last step.",
        "",
    ]
    raw = {}
    for name in ("asym", "gated"):
        curves = {}
        for impl, precision in (("eager", DEFAULT_PRECISION), *(("fused", p) for p in PRECISIONS)):
            label = "eager" if impl == "eager" else f"fused[{precision}]"
            if report.time_left() < 20:
                log(f"  training {name} {label}: skipped, budget spent")
                continue
            torch.manual_seed(0)
            model = build_model(model_cfg(name, n, impl, precision), 1, 10).to(device)
            opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
            losses, window, t0 = [], [], time.time()
            for step, (x, y) in enumerate(batches(train, steps, batch, device), 1):
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                window.append(loss.detach())
                if step % every == 0:
                    losses.append(torch.stack(window).mean().item())
                    window = []
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.time() - t0
            acc = evaluate(model, test, device, n_test)
            curves[label] = {"loss": losses, "test_acc": acc, "seconds": seconds}
            log(f"  training {name} {label}: {seconds:.1f} s, final loss {losses[-1]:.4f}, test acc {acc}")
        raw[name] = curves
        if not curves:
            continue
        labels = list(curves)
        lines += [f"**{name}**", "", "| step | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for i in range(max(len(c["loss"]) for c in curves.values())):
            cells = [f"{c['loss'][i]:.4f}" if i < len(c["loss"]) else "" for c in curves.values()]
            lines.append(f"| {(i + 1) * every} | " + " | ".join(cells) + " |")
        accs = [fmt_acc(c["test_acc"]) for c in curves.values()]
        lines.append("| test acc | " + " | ".join(accs) + " |")
        lines.append("| wall s | " + " | ".join(f"{c['seconds']:.1f}" for c in curves.values()) + " |")
        if "eager" in curves:
            for label in labels[1:]:
                gap = loss_gap(curves[label], curves["eager"])
                lines.append(f"\nmax |loss({label}) - loss(eager)| over the logged points: {gap:.4f}")
        lines.append("")
    report.add("3. Short training curves: eager vs fused", lines, "training", raw)


def profile(report: Report, device: torch.device, shape: tuple[int, int, int]) -> None:
    """Where one training iteration's GPU time goes, kernel by kernel (torch.profiler): what bounds the fused path."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    T, m, n = shape
    batch = 128 if not ARGS.dry_run else 8
    on_gpu = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
    lines = [
        f"One training iteration (as in section 2) at T={T}, m={m}, n={n}, batch {batch}, after 3 warm-up "
        f"iterations; torch.profiler's table sorted by {sort_by}, top 10 rows.",
        "",
    ]
    raw = {}
    variants = [
        ("asym", bench.Variant("fused", "tf32x3")),
        ("asym", bench.Variant("fused", DEFAULT_PRECISION)),
        ("gated", bench.Variant("fused", "tf32x3")),
        ("lstm", bench.Variant("cudnn")),
    ]
    for name, variant in variants:
        model = bench.make_model(name, (T, m, n), variant, device)
        x = torch.rand(batch, T, m, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        step = bench.step_fn(model, x, y, graph=False)
        bench.time_steps(step, device, 0, 3)
        with torch_profile(activities=activities) as prof:
            step()
            if on_gpu:
                torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by=sort_by, row_limit=10)
        raw[f"{name} {variant.label}"] = table
        lines += [f"**{name} {variant.label}**", "", "```", table.strip(), "```", ""]
        log(f"  profiled {name} {variant.label}")
    report.add("2b. Profile of one training iteration, pMNIST shape", lines, "profile", raw)


def loss_gap(curve: dict, eager: dict) -> float:
    """Largest |loss - eager loss| over the logged points of two training curves (section 3)."""
    return max(abs(a - b) for a, b in zip(curve["loss"], eager["loss"], strict=False))


def fmt_acc(acc) -> str:
    return "—" if acc is None else f"{100 * acc:.2f}%"


# ---- 2, 4, 5, 6. speed ------------------------------------------------------------------------------------------


def speed(report: Report, device: torch.device, shapes: dict, title: str, key: str) -> None:
    rows = bench.run_grid(
        shapes, bench.MODELS, device, ARGS.iters, ARGS.warmup, PRECISIONS, log=log, batch=128 if not ARGS.dry_run else 8
    )
    lines = [
        "One training iteration = forward + cross-entropy + backward + SGD-momentum step on random inputs of "
        f"the task's shape; median of {ARGS.iters} timed iterations after {ARGS.warmup} warm-up "
        "(scripts/bench.py).",
        "",
        *bench.rows_table(rows),
    ]
    by = {(r.shape, r.model, r.variant): r.ms_median for r in rows}
    for shape in shapes:
        lstm = by.get((shape, "lstm", bench.Variant("cudnn").label))
        if lstm is None or lstm != lstm:
            continue
        for model in ("asym", "gated"):
            fused = by.get((shape, model, f"fused[{DEFAULT_PRECISION}]"))
            best = min(
                (v for (s, mo, var), v in by.items() if s == shape and mo == model and "fused" in var and v == v),
                default=float("nan"),
            )
            if fused is not None:
                lines.append(
                    f"\n{shape}: {model} fused[{DEFAULT_PRECISION}] / LSTM = {fused / lstm:.2f}x; "
                    f"fastest fused precision / LSTM = {best / lstm:.2f}x"
                )
    report.add(title, lines, key, [asdict(r) for r in rows])


def sharing(report: Report, device: torch.device) -> None:
    counts = [int(k) for k in ARGS.sharing.split(",") if k]
    results = []
    for impl, precision in (("fused", DEFAULT_PRECISION), ("eager", DEFAULT_PRECISION), ("fused", "tf32x3")):
        for count in counts:
            if report.time_left() < 30:
                log(f"  sharing {impl}[{precision}] x{count}: skipped, budget spent")
                continue
            results += bench.run_sharing(
                [count],
                "asym",
                impl,
                precision,
                "pmnist",
                device,
                ARGS.iters,
                ARGS.warmup,
                tiny=ARGS.dry_run,
                batch=128 if not ARGS.dry_run else 8,
            )
            log(bench.sharing_table(results[-1:])[-1])
    lines = [
        f"asym at pMNIST shape; each process runs {ARGS.iters} timed training iterations after warming up, "
        "all starting together; throughput = all sequences / (last end - first start).",
        "",
        *bench.sharing_table(results),
    ]
    report.add("5. Training processes sharing one GPU", lines, "sharing", results)


def tuning_sweep(report: Report, device: torch.device) -> None:
    """Forward + backward time of the fused recurrence alone under each launch setting, to choose the defaults."""
    from antisym.kernels import fused_euler_recurrence
    from antisym.kernels.euler import DEFAULT_TUNING
    from antisym.models.cells import AntisymmetricCell, GatedAntisymmetricCell

    B = 128 if not ARGS.dry_run else 8
    shapes = [(784, 128), (1024, 256)] if not ARGS.dry_run else [(6, 16)]
    settings = [dict(block_b=bb, num_warps=w, resident=None, bk=16) for bb in (16, 32) for w in (4, 8)]
    # streamed A where it would be resident, in k-chunks of 16 and 32 (the wider chunk spills at n = 196)
    settings += [dict(block_b=16, num_warps=8, resident=False, bk=bk) for bk in (16, 32)]
    lines = [
        f"Fused recurrence only (u and h0 given, batch {B}): forward + backward ms, median of 5 after 2 "
        f"warm-up. Defaults: {DEFAULT_TUNING} (num_warps None = 4 up to NP 64, else 8; resident None = by the "
        "on-chip budget RESIDENT_BYTES).",
        "",
        "| cell | T | n | precision | block_b | num_warps | resident | bk | ms fwd+bwd |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    raw = []
    for T, n in shapes:
        for cls in (AntisymmetricCell, GatedAntisymmetricCell):
            cell = cls(1, n, eps=bench.EPS, gamma=bench.GAMMA).to(device)
            k = n * (2 if cell.gated else 1)
            u = torch.randn(B, T, k, device=device, requires_grad=True)
            h0 = torch.zeros(B, n, device=device)
            for precision in ("ieee", "tf32x3"):
                for setting in settings:
                    if report.time_left() < 15:
                        continue

                    def step(cell=cell, u=u, h0=h0, precision=precision, setting=setting):
                        h = fused_euler_recurrence(cell, u, h0, precision=precision, **setting)
                        torch.autograd.grad(h.sum(), [u, cell.w_upper])

                    try:
                        times = bench.time_steps(step, device, 5, 2)
                        ms = f"{statistics.median(times):.3f}"
                    except Exception as err:
                        ms, times = f"failed: {type(err).__name__}", None
                    raw.append({"cell": cls.__name__, "T": T, "n": n, "precision": precision, **setting, "ms": times})
                    lines.append(
                        f"| {cls.__name__} | {T} | {n} | {precision} | {setting['block_b']} | "
                        f"{setting['num_warps']} | {setting['resident']} | {setting['bk']} | {ms} |"
                    )
                    log(lines[-1])
    report.add("6. Launch settings of the fused kernels", lines, "tuning", raw)


# Written before any GPU run, so that the data cannot choose them: a fused precision trains as well as fp32 eager
# when, for both cells' curves, the logged losses stay within LOSS_GAP of eager's and the test accuracy within
# ACC_GAP_PTS points, and its worst parity gradient error (against float64) is within GRAD_REL_ERR, or within 10x
# fp32 eager's own error where the dynamics amplify rounding beyond that, at every shape.
LOSS_GAP, ACC_GAP_PTS, GRAD_REL_ERR = 0.05, 2.0, 1e-2


def passing_precisions(raw: dict) -> dict[str, str]:
    """Each fused precision -> "ok" or why it fails the criteria above (from sections 1 and 3)."""
    verdicts = {}
    parity_rows = raw.get("parity") or []
    for precision in PRECISIONS:
        label, why = f"fused[{precision}]", []
        for cell, curves in (raw.get("training") or {}).items():
            eager, fused = curves.get("eager"), curves.get(label)
            if eager is None or fused is None:
                why.append(f"no {cell} curve")
                continue
            gap = loss_gap(fused, eager)
            if gap > LOSS_GAP:
                why.append(f"{cell} loss gap {gap:.3f}")
            if eager["test_acc"] is not None and abs(fused["test_acc"] - eager["test_acc"]) * 100 > ACC_GAP_PTS:
                why.append(f"{cell} test acc {100 * fused['test_acc']:.1f}% vs {100 * eager['test_acc']:.1f}%")
        if not raw.get("training"):
            why.append("no training curves")
        rows = [r for r in parity_rows if r.get("impl") == "fused" and r.get("precision") == precision]
        for r in rows:
            if "error" in r:
                why.append(f"{r['cell']} failed")
                continue
            floor = max(
                (
                    max(e["grad_rel_err"].values())
                    for e in parity_rows
                    if e.get("impl") == "eager" and "grad_rel_err" in e and e["n"] == r["n"] and e["cell"] == r["cell"]
                ),
                default=0.0,
            )
            worst = max(r["grad_rel_err"].values())
            if not worst <= max(GRAD_REL_ERR, 10 * floor):
                why.append(f"{r['cell']} n={r['n']} grad err {worst:.1e} (fp32 eager {floor:.1e})")
        if not rows:
            why.append("no parity rows")
        verdicts[precision] = "ok" if not why else "; ".join(why)
    return verdicts


def verdict(report: Report) -> None:
    """Issue 5's targets against this run's numbers, and the default precision the criteria above pick."""
    raw = report.raw
    ok = passing_precisions(raw)
    speed_rows = (raw.get("speed_pmnist") or []) + (raw.get("speed_cifar") or [])
    ms = {(r["shape"], r["model"], r["variant"]): r["ms_median"] for r in speed_rows}
    passing = [p for p in PRECISIONS if ok[p] == "ok"]
    chosen = min(passing, key=lambda p: ms.get(("pmnist", "asym", f"fused[{p}]"), float("inf")), default=None)
    lines = [
        f"Criteria fixed before any GPU run (scripts/gpu_check.py): logged training losses within {LOSS_GAP} of "
        f"fp32 eager's, test accuracy within {ACC_GAP_PTS} points, worst parity gradient error within "
        f"{GRAD_REL_ERR} (or 10x fp32 eager's own); of the precisions that pass, the fastest at the pMNIST shape "
        "becomes the default.",
        "",
        "| precision | trains as well as fp32 eager? |",
        "|---|---|",
        *(f"| {p} | {ok[p]} |" for p in PRECISIONS),
        "",
        f"Recommended default precision: **{chosen or 'none passes: keep impl=eager'}**",
        "",
        "| target | measured | pass |",
        "|---|---|---|",
    ]
    lstm = bench.Variant("cudnn").label
    targets = []
    for precision in dict.fromkeys([p for p in (chosen, DEFAULT_PRECISION) if p]):
        fused = f"fused[{precision}]"
        targets += [
            (f"pMNIST: asym {fused} <= cuDNN LSTM", ("pmnist", "asym", fused), ("pmnist", "lstm", lstm), 1.0, "le"),
            (f"pMNIST: eager / asym {fused} >= 20", ("pmnist", "asym", "eager"), ("pmnist", "asym", fused), 20.0, "ge"),
            (f"pMNIST: gated {fused} <= 1.3 x LSTM", ("pmnist", "gated", fused), ("pmnist", "lstm", lstm), 1.3, "le"),
            (f"CIFAR n=256: asym {fused} <= LSTM", ("cifar10", "asym", fused), ("cifar10", "lstm", lstm), 1.0, "le"),
        ]
    for name, num, den, bound, op in targets:
        a, b = ms.get(num), ms.get(den)
        if a is None or b is None or a != a or b != b:
            lines.append(f"| {name} | not measured | — |")
            continue
        ratio = a / b
        passed = ratio <= bound if op == "le" else ratio >= bound
        lines.append(f"| {name} | {a:.2f} / {b:.2f} ms = {ratio:.2f} | {'yes' if passed else 'NO'} |")
    report.add("7. Verdict: issue 5's targets and the default precision", lines, "verdict", {"precisions": ok})


def main() -> None:
    started = time.time()
    device = torch.device("cpu" if ARGS.dry_run else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no GPU visible to torch; use --dry-run on a CPU")
    if ARGS.dry_run:
        ARGS.train_steps, ARGS.iters, ARGS.warmup, ARGS.sharing = min(ARGS.train_steps, 4), 1, 0, "1,2"
    report = Report(Path(ARGS.out), started, device)
    root = mnist_root(ARGS.data_root)
    shapes = bench.TINY_SHAPES if ARGS.dry_run else bench.SHAPES
    if ARGS.dry_run:
        cases = [("asym", 6, 1, 16), ("gated", 5, 3, 24), ("ablation", 4, 3, 12)]
    else:
        cases = [
            ("asym", 784, 1, 128),
            ("gated", 784, 1, 128),
            ("asym", 1024, 3, 256),
            ("gated", 1024, 3, 256),
            ("ablation", 1024, 3, 196),
        ]
    sections = [
        ("parity", 0, lambda: parity(report, device, cases)),
        (
            "speed pmnist",
            30,
            lambda: speed(
                report, device, {"pmnist": shapes["pmnist"]}, "2. Training-iteration time, pMNIST shape", "speed_pmnist"
            ),
        ),
        ("profile", 20, lambda: profile(report, device, shapes["pmnist"])),
        ("training curves", 60, lambda: training_curves(report, device, root)),
        (
            "speed cifar",
            60,
            lambda: speed(
                report,
                device,
                {k: shapes[k] for k in ("cifar10", "noisy_cifar10")},
                "4. Training-iteration time, CIFAR-10 shapes",
                "speed_cifar",
            ),
        ),
        ("sharing", 60, lambda: sharing(report, device)),
        ("tuning", 30, lambda: tuning_sweep(report, device)),
    ]
    for name, needs_s, run in sections:
        if report.time_left() < needs_s:
            log(f"== {name}: skipped, {report.time_left():.0f} s of the budget left")
            report.add(f"{name} (skipped)", ["Not run: the time budget of this call was spent."], name, None)
            continue
        log(f"== {name} ({report.time_left():.0f} s of the budget left)")
        try:
            run()
        except Exception as err:  # keep the other sections
            log(f"== {name} FAILED: {type(err).__name__}: {err}")
            report.add(f"{name} (failed)", [f"`{type(err).__name__}: {err}`"], name, repr(err))
    verdict(report)
    log(f"wrote {report.out / 'bench.md'} in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
