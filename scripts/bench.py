#!/usr/bin/env python
"""Time one training iteration (forward + backward + optimizer step) of every model at the paper's task shapes.

    .venv/bin/python scripts/bench.py                # CPU: eager Euler loops and LSTM -> results/bench_cpu.md
    python3 scripts/bench.py --device cuda           # GPU: eager, CUDA-graph eager, fused, cuDNN LSTM, and
                                                     #      1/2/4/8 processes sharing the GPU -> results/bench.md
    .venv/bin/python scripts/bench.py --tiny --out /tmp/b.md   # quick smoke run of every code path

Needs torch (and triton for the fused rows) only: no Hydra. Inputs are random tensors of the task's shape (data loading
is not timed); the optimizer is SGD with momentum 0.9 for every model (its step is the same few elementwise kernels
for all of them and can be captured in a CUDA graph). Shapes (batch 128):

    pmnist         T=784,  m=1,  n=128
    cifar10        T=1024, m=3,  n=256 (ablation 196)   pixel-by-pixel CIFAR-10
    noisy_cifar10  T=1000, m=96, n=256 (ablation 196)   noise-padded CIFAR-10

The LSTM runs at the same n as the AntisymmetricRNN of the row (the paper's Table 2 LSTM has 128 units; the timing
question here is the recurrence at equal width). Each row is the median over --iters timed iterations after --warmup
untimed ones; on a GPU every iteration ends with a synchronize, and peak memory is torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from antisym.models import build_model, count_parameters  # noqa: E402
from antisym.provenance import provenance  # noqa: E402

BATCH = 128
SHAPES = {  # name: (T, m, n); the ablation model uses 196 units where n = 256 (Table 2)
    "pmnist": (784, 1, 128),
    "cifar10": (1024, 3, 256),
    "noisy_cifar10": (1000, 96, 256),
}
TINY_SHAPES = {"pmnist": (12, 1, 16), "cifar10": (10, 3, 24), "noisy_cifar10": (9, 96, 24)}
MODELS = ("asym", "gated", "ablation", "lstm")
GPU_PRECISIONS = ("ieee", "tf32x3", "tf32", "bf16")
EPS, GAMMA = 0.1, 0.01  # conf/model/asym.yaml; they do not change the cost


def hidden_size(model: str, n: int) -> int:
    return 196 if model == "ablation" and n == 256 else n


@dataclass
class Variant:
    """One way of running a model: the recurrence impl, the fused precision and whether the step is a CUDA graph."""

    impl: str = "eager"  # eager | fused | cudnn (the LSTM)
    precision: str = "ieee"
    graph: bool = False

    @property
    def label(self) -> str:
        if self.impl == "fused":
            return f"fused[{self.precision}]" + (" + graph" if self.graph else "")
        if self.impl == "cudnn":
            return "cuDNN LSTM" if torch.cuda.is_available() else "torch LSTM"
        return "eager + CUDA graph" if self.graph else "eager"


@dataclass
class Row:
    shape: str
    model: str
    variant: str
    B: int
    T: int
    m: int
    n: int
    params: int
    ms_median: float
    ms_min: float
    peak_mib: float | None
    times_ms: list[float] = field(default_factory=list)


def make_model(model: str, shape: tuple[int, int, int], variant: Variant, device: torch.device) -> torch.nn.Module:
    T, m, n = shape
    cfg = {"name": model, "hidden_size": hidden_size(model, n), "eps": EPS, "gamma": GAMMA, "init_std": 1.0}
    if model != "lstm":
        cfg.update(impl="fused" if variant.impl == "fused" else "eager", precision=variant.precision)
    torch.manual_seed(0)
    return build_model(cfg, m, 10).to(device)


def training_step(model, opt, x, y):
    """The timed unit: forward, cross-entropy, backward, optimizer step."""
    opt.zero_grad(set_to_none=False)  # keep .grad tensors alive: a captured graph writes into them
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def step_fn(model, x, y, graph: bool):
    """A callable that runs one training iteration; with graph=True, one replay of a captured CUDA graph."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if not graph:
        return lambda: training_step(model, opt, x, y)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up on a side stream (allocations, kernel compilation), as the docs say
        for _ in range(3):
            training_step(model, opt, x, y)
    torch.cuda.current_stream().wait_stream(stream)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        training_step(model, opt, x, y)
    return cuda_graph.replay


def time_steps(step, device: torch.device, iters: int, warmup: int) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def bench_one(shape_name, shape, model_name, variant, device, iters, warmup, batch=BATCH) -> Row:
    T, m, n = shape
    model = make_model(model_name, shape, variant, device)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, T, m, device=device, generator=gen)
    y = torch.randint(0, 10, (batch,), device=device, generator=gen)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step = step_fn(model, x, y, variant.graph)
    times = time_steps(step, device, iters, warmup)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return Row(
        shape_name,
        model_name,
        variant.label,
        batch,
        T,
        m,
        hidden_size(model_name, n),
        count_parameters(model),
        statistics.median(times),
        min(times),
        peak,
        [round(t, 3) for t in times],
    )


def variants_for(model: str, device: torch.device, precisions) -> list[Variant]:
    if model == "lstm":
        return [Variant("cudnn")]
    out = [Variant("eager")]
    if device.type == "cuda":
        out.append(Variant("eager", graph=True))
        out += [Variant("fused", p) for p in precisions]
    elif os.environ.get("TRITON_INTERPRET") == "1":  # CPU smoke runs of the fused path (interpreter: slow)
        out += [Variant("fused", p) for p in precisions]
    return out


def run_grid(shapes: dict, models, device, iters, warmup, precisions, batch=BATCH, log=print) -> list[Row]:
    rows = []
    for shape_name, shape in shapes.items():
        for model in models:
            for variant in variants_for(model, device, precisions):
                try:
                    row = bench_one(shape_name, shape, model, variant, device, iters, warmup, batch)
                except Exception as err:  # report and go on: one failing variant must not lose the others
                    log(f"  {shape_name:14s} {model:9s} {variant.label:22s} FAILED: {type(err).__name__}: {err}")
                    rows.append(
                        Row(
                            shape_name,
                            model,
                            f"{variant.label} (failed: {type(err).__name__})",
                            batch,
                            *shape,
                            0,
                            float("nan"),
                            float("nan"),
                            None,
                        )
                    )
                    continue
                rows.append(row)
                peak = f"{row.peak_mib:8.1f} MiB" if row.peak_mib is not None else ""
                log(f"  {shape_name:14s} {model:9s} {variant.label:22s} {row.ms_median:10.2f} ms/iter {peak}")
    return rows


# ---- several training processes sharing one GPU ------------------------------------------------------------------


def worker(args) -> None:
    """One process of the sharing test: warm up, print READY, wait for GO on stdin, run timed steps, print JSON."""
    device = torch.device(args.device)
    shape = SHAPES[args.shape] if not args.tiny else TINY_SHAPES[args.shape]
    variant = Variant(args.worker_impl, args.worker_precision)
    model = make_model(args.worker_model, shape, variant, device)
    x = torch.rand(args.batch, shape[0], shape[1], device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    step = step_fn(model, x, y, graph=False)
    time_steps(step, device, 0, args.warmup)
    print("READY", flush=True)
    sys.stdin.readline()
    start = time.time()
    time_steps(step, device, args.iters, 0)
    print(json.dumps({"start": start, "end": time.time(), "iters": args.iters}), flush=True)


def run_sharing(nprocs_list, model, impl, precision, shape, device, iters, warmup, tiny, batch) -> list[dict]:
    """Aggregate training throughput (sequences/s) of N processes stepping concurrently on one device."""
    results = []
    for nprocs in nprocs_list:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--device",
            str(device),
            "--shape",
            shape,
            "--worker-model",
            model,
            "--worker-impl",
            impl,
            "--worker-precision",
            precision,
            "--iters",
            str(iters),
            "--warmup",
            str(warmup),
            "--batch",
            str(batch),
        ] + (["--tiny"] if tiny else [])
        procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(nprocs)]
        try:
            for p in procs:  # all warmed up (compiled, allocated) before anyone is timed
                line = p.stdout.readline()
                if line.strip() != "READY":
                    raise RuntimeError(f"worker did not get ready (exit {p.poll()})")
            for p in procs:
                p.stdin.write("GO\n")
                p.stdin.flush()
            outs = [json.loads(p.stdout.readline()) for p in procs]
        finally:
            for p in procs:
                p.stdin.close()
                p.wait(timeout=600)
        span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
        seqs = sum(o["iters"] for o in outs) * batch
        results.append(
            {
                "procs": nprocs,
                "model": model,
                "impl": impl if impl != "fused" else f"fused[{precision}]",
                "shape": shape,
                "seq_per_s": seqs / span,
                "iters_per_s": seqs / batch / span,
                "span_s": span,
            }
        )
    return results


# ---- report --------------------------------------------------------------------------------------------------------


def fmt(v, digits=2) -> str:
    return "—" if v is None or v != v else f"{v:.{digits}f}"


def rows_table(rows: list[Row]) -> list[str]:
    lines = [
        "| shape | model | variant | B | T | m | n | params | ms/iter (median) | ms/iter (min) | peak MiB | all ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        every = ", ".join(f"{t:.1f}" for t in r.times_ms)
        lines.append(
            f"| {r.shape} | {r.model} | {r.variant} | {r.B} | {r.T} | {r.m} | {r.n} | {r.params:,} | "
            f"{fmt(r.ms_median)} | {fmt(r.ms_min)} | {fmt(r.peak_mib, 1)} | {every} |"
        )
    return lines


def sharing_table(results: list[dict]) -> list[str]:
    lines = [
        "| processes | model | impl | shape | sequences/s (all processes) | iterations/s | span s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['procs']} | {r['model']} | {r['impl']} | {r['shape']} | {r['seq_per_s']:.1f} | "
            f"{r['iters_per_s']:.2f} | {r['span_s']:.2f} |"
        )
    return lines


def header(meta: dict, title: str) -> list[str]:
    commit = (meta.get("git_commit") or "unknown") + (" (uncommitted changes)" if meta.get("git_dirty") else "")
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    return [
        f"# {title}",
        "",
        f"- device: {meta['device']}",
        f"- date (UTC): {meta['date_utc']}",
        f"- git commit: {commit}",
        f"- torch {meta['versions']['torch']}, triton {triton_version}, python {meta['versions']['python']}",
        f"- command: `{' '.join(meta['argv'])}`",
        f"- wall time of the run: {meta['wall_time_s']:.0f} s",
        f"- load average (1/5/15 min) at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs (other processes share this machine)",
        "",
    ]


def write_report(path: Path, meta: dict, rows: list[Row], sharing: list[dict], title: str) -> None:
    lines = header(meta, title)
    lines += [
        "One training iteration = forward + cross-entropy + backward + SGD-momentum step, batch "
        f"{rows[0].B if rows else BATCH}, random inputs of the task's shape; median of the timed iterations "
        f"({meta['settings']['iters']} after {meta['settings']['warmup']} warm-up).",
        "",
    ]
    lines += rows_table(rows)
    if sharing:
        lines += ["", "## Several training processes sharing one device", ""] + sharing_table(sharing)
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda[:k])")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {', '.join(SHAPES)}")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    ap.add_argument("--precisions", default=",".join(GPU_PRECISIONS), help="fused precisions to time (GPU)")
    ap.add_argument("--iters", type=int, default=None, help="timed iterations per row (default: cpu 2, cuda 10)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default: cpu 1, cuda 3)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument(
        "--sharing",
        default=None,
        help="process counts for the sharing test, e.g. 1,2,4,8 (default: 1,2,4,8 on cuda, none on cpu)",
    )
    ap.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke test of every code path")
    ap.add_argument("--out", default=None, help="report path (default results/bench_cpu.md or results/bench.md)")
    ap.add_argument("--commit", default=None, help="git commit to record where the checkout has no .git")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 keeps a shared, busy CPU from oversubscription",
    )
    # internal: one process of the sharing test
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="pmnist", help=argparse.SUPPRESS)
    ap.add_argument("--worker-model", default="asym", help=argparse.SUPPRESS)
    ap.add_argument("--worker-impl", default="fused", help=argparse.SUPPRESS)
    ap.add_argument("--worker-precision", default="ieee", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.iters = args.iters if args.iters is not None else (10 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    return args


def main(argv=None) -> Path | None:
    started = time.time()
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return None
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU")
    table = TINY_SHAPES if args.tiny else SHAPES
    shapes = {s: table[s] for s in args.shapes.split(",")}
    models = args.models.split(",")
    precisions = args.precisions.split(",")
    print(f"bench on {device}: shapes {list(shapes)}, models {models}, {args.iters} iters after {args.warmup} warm-up")
    rows = run_grid(shapes, models, device, args.iters, args.warmup, precisions, args.batch)
    sharing_spec = args.sharing if args.sharing is not None else ("1,2,4,8" if device.type == "cuda" else "")
    sharing = []
    if sharing_spec:
        impl = "fused" if device.type == "cuda" else "eager"
        sharing = run_sharing(
            [int(k) for k in sharing_spec.split(",")],
            "asym",
            impl,
            precisions[0],
            "pmnist",
            device,
            args.iters,
            args.warmup,
            args.tiny,
            args.batch,
        )
        print("\n".join(sharing_table(sharing)))
    out = Path(args.out or ("results/bench.md" if device.type == "cuda" else "results/bench_cpu.md"))
    settings = {k: v for k, v in vars(args).items() if not k.startswith("worker")}
    meta = provenance("scripts/bench.py", settings, started, device=str(device))
    if args.commit:
        meta["git_commit"], meta["git_dirty"] = args.commit, None
    title = "Training-iteration benchmark" + (" (tiny smoke shapes, not a measurement)" if args.tiny else "")
    write_report(out, meta, rows, sharing, title)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
