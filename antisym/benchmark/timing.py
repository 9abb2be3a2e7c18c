"""Time one training iteration (forward + cross-entropy + backward + optimizer step) of every model at the paper's
task shapes; profile one; run several training processes sharing a GPU; time packs of R runs trained as one
(run-iterations/s per pack size, for hydra.launcher.pack_size); sweep the fused kernels' launch settings.

Inputs are random tensors of the task's shape (data loading is not timed); the optimizer is SGD with momentum 0.9 for
every model (its step is the same few elementwise kernels for all of them and can be captured in a CUDA graph).
Shapes (batch 128):

    pmnist         T=784,  m=1,  n=128
    cifar10        T=1024, m=3,  n=256 (ablation 196)   pixel-by-pixel CIFAR-10
    noisy_cifar10  T=1000, m=96, n=256 (ablation 196)   noise-padded CIFAR-10

The LSTM runs at the same n as the AntisymmetricRNN of the row (the paper's Table 2 LSTM has 128 units; the timing
question here is the recurrence at equal width). Each row is the median over the timed iterations after untimed
warm-up ones; on a GPU every iteration ends with a synchronize, and peak memory is torch.cuda.max_memory_allocated.

scripts/bench.py is the command line of the grid, the sharing test and the packed benchmark (--packed);
campaign/gpu_check runs the sections below.
`python -m antisym.benchmark.timing --worker ...` is one process of the sharing test (started by `run_sharing`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from antisym.benchmark.report import Report, header, log
from antisym.kernels import DEFAULT_PRECISION
from antisym.models import build_model, count_parameters

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
REPO_ROOT = Path(__file__).resolve().parents[2]


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


@dataclass
class PackedRow(Row):
    """R runs' training iterations timed as one; ms_* are per iteration of all R, params per member."""

    R: int = 1
    packed: bool = True  # one batched computation (pack_forward); False: R solo iterations one after another

    @property
    def run_iters_per_s(self) -> float:
        """Training iterations of runs per second: what a sweep of R runs per pack gets through."""
        return self.R * 1e3 / self.ms_median


def make_model(
    model: str, shape: tuple[int, int, int], variant: Variant, device: torch.device, seed: int = 0
) -> torch.nn.Module:
    T, m, n = shape
    cfg = {"name": model, "hidden_size": hidden_size(model, n), "init_std": 1.0}
    if model != "lstm":  # the LSTM takes none of these
        impl = "fused" if variant.impl == "fused" else "eager"
        cfg.update(eps=EPS, gamma=GAMMA, impl=impl, precision=variant.precision)
    torch.manual_seed(seed)
    return build_model(cfg, m, 10).to(device)


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def training_step(model, opt, x, y):
    """The timed unit: forward, cross-entropy, backward, optimizer step."""
    opt.zero_grad(set_to_none=False)  # keep .grad tensors alive: a captured graph writes into them
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def graphed(step):
    """One replay of a CUDA graph captured from step() (a whole training iteration: no launch overhead left)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up on a side stream (allocations, kernel compilation), as the docs say
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    cuda_graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cuda_graph):
        step()
    return cuda_graph.replay


def step_fn(model, x, y, graph: bool):
    """A callable that runs one training iteration; with graph=True, one replay of a captured CUDA graph."""
    opt = sgd(model)
    step = lambda: training_step(model, opt, x, y)  # noqa: E731 - the unit both paths run
    return graphed(step) if graph else step


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


def random_batches(shape: tuple[int, int, int], batch: int, device: torch.device, count: int = 1):
    """`count` (x, y) batches of random inputs of the task's shape; seeded, so every row times the same numbers."""
    T, m, _ = shape
    gen = torch.Generator(device=device).manual_seed(0)
    pairs = [
        (
            torch.rand(batch, T, m, device=device, generator=gen),
            torch.randint(0, 10, (batch,), device=device, generator=gen),
        )
        for _ in range(count)
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


def measure(build_step, device: torch.device, iters: int, warmup: int) -> dict:
    """Row fields of the step `build_step()` returns: median / min / all ms, and the peak memory from its building on
    (a CUDA graph's capture counts)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(build_step(), device, iters, warmup)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "ms_median": statistics.median(times),
        "ms_min": min(times),
        "peak_mib": peak,
        "times_ms": [round(t, 3) for t in times],
    }


def bench_one(shape_name, shape, model_name, variant, device, iters, warmup, batch=BATCH) -> Row:
    T, m, n = shape
    model = make_model(model_name, shape, variant, device)
    (x,), (y,) = random_batches(shape, batch, device)
    timing = measure(lambda: step_fn(model, x, y, variant.graph), device, iters, warmup)
    n_model, params = hidden_size(model_name, n), count_parameters(model)
    return Row(shape_name, model_name, variant.label, batch, T, m, n_model, params, **timing)


def failed_row(cls: type[Row], shape_name, shape, model, label: str, batch, err: Exception, **extra) -> Row:
    """The row of a variant (its label) that raised: its error in the variant column, times NaN (left out of every
    comparison)."""
    label = f"{label} (failed: {type(err).__name__})"
    return cls(shape_name, model, label, batch, *shape, 0, math.nan, math.nan, None, **extra)


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
                    rows.append(failed_row(Row, shape_name, shape, model, variant.label, batch, err))
                    continue
                rows.append(row)
                peak = f"{row.peak_mib:8.1f} MiB" if row.peak_mib is not None else ""
                log(f"  {shape_name:14s} {model:9s} {variant.label:22s} {row.ms_median:10.2f} ms/iter {peak}")
    return rows


# ---- several runs trained as one pack (hydra/launcher=packed) ------------------------------------------------------


def packed_step_fn(
    models: list[torch.nn.Module], xs: list[torch.Tensor], ys: list[torch.Tensor], graph: bool = False, forward=None
):
    """One training iteration of a pack as the trainer runs it: each member's batch through `forward`
    (antisym.models.pack_forward unless given), one backward of the summed losses, each member's own optimizer step;
    with graph=True, one replay of that iteration captured as a CUDA graph."""
    from antisym.models import pack_forward

    forward = forward or pack_forward
    opts = [sgd(model) for model in models]

    def step():
        for opt in opts:
            opt.zero_grad(set_to_none=False)
        logits = forward(models, xs)
        loss = sum(F.cross_entropy(out, y) for out, y in zip(logits, ys, strict=True))
        loss.backward()
        for opt in opts:
            opt.step()
        return loss

    return graphed(step) if graph else step


def bmm_forward(models: list[torch.nn.Module], xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Logits of a pack of Euler models batched by hand: the members' recurrent matrices stacked, one bmm per step.
    The alternative to pack_forward's torch.func vmap, timed to choose between them."""
    from antisym.models.cells import euler_step
    from antisym.models.ensemble import settings_of

    cells = [m.cell for m in models]
    u = torch.stack([c.project(x) for c, x in zip(cells, xs, strict=True)])  # (R, B, T, k)
    a = torch.stack([c.recurrent_matrix() for c in cells])  # (R, n, n)
    # Shared eps by the float, as vmap_forward shares it: a (R, 1, 1) tensor would cost a kernel and, saved for the
    # backward, one more (R, B, n) tensor a step (4 GiB more at pixel CIFAR, R = 32).
    shared = {settings_of(c)["eps"] for c in cells}
    eps = shared.pop() if len(shared) == 1 else torch.stack([c.eps for c in cells]).to(u.dtype).view(-1, 1, 1)
    h = u.new_zeros(len(cells), u.shape[1], cells[0].hidden_size)
    for u_t in u.unbind(2):
        h = euler_step(u_t, h, a, eps, cells[0].gated)
    return [m.readout(h_r) for m, h_r in zip(models, h, strict=True)]


def solo_steps_fn(models: list[torch.nn.Module], xs: list[torch.Tensor], ys: list[torch.Tensor]):
    """R solo training iterations one after another: what R fused runs cost without packing (the baseline)."""
    steps = [step_fn(model, x, y, graph=False) for model, x, y in zip(models, xs, ys, strict=True)]
    return lambda: [step() for step in steps]


def streams_steps_fn(models: list[torch.nn.Module], xs: list[torch.Tensor], ys: list[torch.Tensor]):
    """R solo training iterations issued together, each on a CUDA stream of its own, so their kernels overlap: the
    design the member axis competes with (and what the campaign's concurrent packs do with packs of one). GPU only."""
    steps = [step_fn(model, x, y, graph=False) for model, x, y in zip(models, xs, ys, strict=True)]
    streams = [torch.cuda.Stream(xs[0].device) for _ in steps]

    def step():
        main = torch.cuda.current_stream()
        for stream, run_step in zip(streams, steps, strict=True):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                run_step()
        for stream in streams:
            main.wait_stream(stream)

    return step


COMPARISONS = ("bmm", "streams x R", "graph")  # timed beside the launcher's way, never recommended


def packed_label(variant: Variant, how: str) -> str:
    return f"{variant.label} {'bmm packed' if how == 'bmm' else how}"


def bench_packed(
    shape_name, shape, model_name, variant: Variant, R: int, device, iters, warmup, batch=BATCH, how="packed"
) -> PackedRow:
    """R members, each built as make_model builds one with its own seed (r) and its own random batch, trained
    together: `how` "packed" as the trainer does (pack_forward: eager by torch.func vmap, or the fused kernels'
    member axis; with variant.graph the iteration captured as a CUDA graph), "bmm" (bmm_forward), "solo x R" (one
    after another, the baseline) or "streams x R" (solo iterations issued together on R CUDA streams)."""
    T, m, n = shape
    models = [make_model(model_name, shape, variant, device, seed=r) for r in range(R)]
    xs, ys = random_batches(shape, batch, device, count=R)
    build = {
        "packed": lambda *a: packed_step_fn(*a, graph=variant.graph),
        "bmm": lambda *a: packed_step_fn(*a, forward=bmm_forward),
        "solo x R": solo_steps_fn,
        "streams x R": streams_steps_fn,
    }[how]
    timing = measure(lambda: build(models, xs, ys), device, iters, warmup)
    n_model, params = hidden_size(model_name, n), count_parameters(models[0])
    label = packed_label(variant, how)
    packed = how in ("packed", "bmm")
    return PackedRow(shape_name, model_name, label, batch, T, m, n_model, params, **timing, R=R, packed=packed)


def packed_variants(device: torch.device, precision: str = DEFAULT_PRECISION) -> list[tuple[Variant, str]]:
    """(variant, how): eager packed; where the kernels run (CUDA, or the interpreter in smoke runs) fused packed
    (one launch for the pack) and fused solo x R (the baseline); then the comparisons: eager batched by hand (bmm)
    and, on a GPU, fused solo runs on R streams and the eager and the fused pack captured as a CUDA graph."""
    cuda = device.type == "cuda"
    fused = Variant("fused", precision)
    rows = [(Variant("eager"), "packed")]
    if cuda or os.environ.get("TRITON_INTERPRET") == "1":
        rows += [(fused, "packed"), (fused, "solo x R")]
    rows.append((Variant("eager"), "bmm"))
    if cuda:
        graphed_fused = Variant("fused", precision, graph=True)  # would capturing the trainer's step close the gap?
        rows += [(fused, "streams x R"), (Variant("eager", graph=True), "packed"), (graphed_fused, "packed")]
    return rows


def run_packed(
    shapes: dict,
    counts,
    device,
    iters,
    warmup,
    batch=BATCH,
    model="asym",
    log=print,
    time_left=lambda: math.inf,
    on_row=lambda rows: None,
) -> list[PackedRow]:
    """bench_packed for every shape, impl and pack size R; rows left out once time_left() (seconds) runs out.
    on_row(rows so far) after every row, so that a report can keep what a process killed later (the kernel's OOM
    killer, a CPU pack of 32 at pixel CIFAR) had measured."""
    rows = []
    for shape_name, shape in shapes.items():
        for variant, how in packed_variants(device):
            label = packed_label(variant, how)
            for R in counts:
                if time_left() < 15:
                    log(f"  {shape_name:14s} {label:22s} R={R:<3d} skipped: budget spent")
                    continue
                try:
                    row = bench_packed(shape_name, shape, model, variant, R, device, iters, warmup, batch, how)
                except Exception as err:  # out of memory, say: the smaller packs are kept, the larger ones skipped
                    log(f"  {shape_name:14s} {label:22s} R={R:<3d} FAILED: {type(err).__name__}: {err}")
                    rows.append(failed_row(PackedRow, shape_name, shape, model, label, batch, err, R=R))
                    on_row(rows)
                    break
                rows.append(row)
                on_row(rows)
                log(
                    f"  {shape_name:14s} {row.variant:22s} R={R:<3d} {row.ms_median:10.1f} ms/iter "
                    f"{row.run_iters_per_s:9.2f} run-iterations/s"
                )
    return rows


# ---- several training processes sharing one GPU ------------------------------------------------------------------


def worker(argv: list[str] | None = None) -> None:
    """One process of the sharing test: warm up, print READY, wait for GO on stdin, run timed steps, print JSON."""
    ap = argparse.ArgumentParser(description="one process of the sharing test (started by run_sharing)")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--shape", default="pmnist")
    ap.add_argument("--model", default="asym")
    ap.add_argument("--impl", default="fused")
    ap.add_argument("--precision", default=DEFAULT_PRECISION)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    shape = SHAPES[args.shape] if not args.tiny else TINY_SHAPES[args.shape]
    model = make_model(args.model, shape, Variant(args.impl, args.precision), device)
    x = torch.rand(args.batch, shape[0], shape[1], device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    step = step_fn(model, x, y, graph=False)
    time_steps(step, device, 0, args.warmup)
    print("READY", flush=True)
    sys.stdin.readline()
    start = time.time()
    times = time_steps(step, device, args.iters, 0)
    print(json.dumps({"start": start, "end": time.time(), "iters": args.iters, "times_ms": times}), flush=True)


def worker_command(model, impl, precision, shape, device, iters, warmup, tiny, batch) -> list[str]:
    cmd = [sys.executable, "-m", "antisym.benchmark.timing", "--worker", "--device", str(device), "--shape", shape]
    cmd += ["--model", model, "--impl", impl, "--precision", precision, "--iters", str(iters)]
    return cmd + ["--warmup", str(warmup), "--batch", str(batch)] + (["--tiny"] if tiny else [])


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker: it imports antisym from this checkout, installed or not."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_workers(cmd: list[str], env: dict[str, str], nprocs: int) -> list[dict]:
    """Start nprocs workers, let them warm up, time them together; each one's JSON line."""
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(nprocs)]  # fmt: skip
    try:
        for p in procs:  # all warmed up (compiled, allocated) before anyone is timed
            line = p.stdout.readline()
            if line.strip() != "READY":
                raise RuntimeError(f"worker did not get ready (exit {p.poll()})")
        for p in procs:
            p.stdin.write("GO\n")
            p.stdin.flush()
        return [json.loads(p.stdout.readline()) for p in procs]
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=600)


def run_sharing(nprocs_list, model, impl, precision, shape, device, iters, warmup, tiny, batch) -> list[dict]:
    """Aggregate training throughput (sequences/s) of N processes stepping concurrently on one device."""
    cmd = worker_command(model, impl, precision, shape, device, iters, warmup, tiny, batch)
    results = []
    for nprocs in nprocs_list:
        outs = run_workers(cmd, worker_env(), nprocs)
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


COMPETITOR = "while True: pass"  # one core kept busy by another process (a test suite, another run's main thread)


def run_threads(shapes: list[str], threads: list[int], competitors: list[int], iters: int, warmup: int,
                tiny: bool = False, batch: int = BATCH, log=print) -> list[dict]:  # fmt: skip
    """One eager AntisymmetricRNN training iteration per shape x torch threads (OMP_NUM_THREADS of a fresh worker)
    x competing busy processes started beside it; per row the mean and every iteration's seconds."""
    rows = []
    for shape in shapes:
        for busy in competitors:
            for n in threads:
                cmd = worker_command("asym", "eager", DEFAULT_PRECISION, shape, "cpu", iters, warmup, tiny, batch)
                hogs = [subprocess.Popen([sys.executable, "-c", COMPETITOR]) for _ in range(busy)]
                try:
                    (out,) = run_workers(cmd, worker_env(OMP_NUM_THREADS=str(n)), 1)
                finally:
                    for hog in hogs:
                        hog.kill()
                        hog.wait()
                times = [t / 1e3 for t in out["times_ms"]]
                rows.append({"shape": shape, "threads": n, "competitors": busy, "s_mean": statistics.mean(times),
                             "s_min": min(times), "times_s": [round(t, 3) for t in times]})  # fmt: skip
                log(f"threads: {shape} {n} thread(s) beside {busy} busy process(es): {rows[-1]['s_mean']:.3f} s/iter")
    return rows


def threads_table(rows: list[dict]) -> list[str]:
    """The rows, each with its slowdown against the quiet 1-thread row of its shape."""
    base = {r["shape"]: r["s_mean"] for r in rows if r["threads"] == 1 and r["competitors"] == 0}
    lines = [
        "| shape | torch threads | busy processes beside | s/iter (mean) | s/iter (min) | x quiet 1 thread | all s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r["s_mean"] / base[r["shape"]] if r["shape"] in base else None
        lines.append(
            f"| {r['shape']} | {r['threads']} | {r['competitors']} | {r['s_mean']:.3f} | {r['s_min']:.3f} | "
            f"{fmt(ratio)} | {', '.join(f'{t:.2f}' for t in r['times_s'])} |"
        )
    return lines


# ---- tables --------------------------------------------------------------------------------------------------------


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


def packed_table(rows: list[PackedRow]) -> list[str]:
    """The packed rows with run-iterations/s and its ratio to R = 1 of the same shape and impl."""
    solo = {(r.shape, r.variant): r.run_iters_per_s for r in rows if r.R == 1}
    lines = [
        "| shape | model | impl | R | B | T | m | n | ms/iter (median, all R) | run-iterations/s | x R=1 | peak MiB "
        "| all ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = r.run_iters_per_s / solo[(r.shape, r.variant)] if (r.shape, r.variant) in solo else None
        every = ", ".join(f"{t:.1f}" for t in r.times_ms)
        lines.append(
            f"| {r.shape} | {r.model} | {r.variant} | {r.R} | {r.B} | {r.T} | {r.m} | {r.n} | {fmt(r.ms_median, 1)} | "
            f"{fmt(r.run_iters_per_s)} | {fmt(ratio)} | {fmt(r.peak_mib, 1)} | {every} |"
        )
    return lines


PACKED_EXPLAINED = (
    "One iteration of a pack of R runs (antisym/benchmark/timing.py, bench_packed): R members of one shape, each "
    "built with its own seed and given its own random batch; eager members run forward as one batched recurrence "
    "(antisym.models.pack_forward, as hydra/launcher=packed trains them), then one backward of the summed "
    "cross-entropy losses and each member's own SGD-momentum step. Fused members (GPU only) run as R "
    "solo iterations one after another (solo x R, the baseline) and as one pack (the kernels' member axis, one launch "
    "per direction). Eager packs run PyTorch's model-ensembling recipe (functional_call + vmap over each member's "
    "solo forward, antisym.models.ensemble). Compared with them, never recommended: `eager bmm packed` (the Euler "
    "recurrence batched by hand: stacked recurrent matrices, one bmm per step), `fused streams x R` (the R solo "
    "iterations issued together on R CUDA streams), `eager + CUDA graph packed` and `fused[...] + graph packed` "
    "(the pack's whole iteration captured as one CUDA graph: what the trainer would gain by capturing its step). "
    "Run-iterations/s = R / seconds per iteration; x R=1 = that over R = 1 of the same shape and impl (R = 1 is the "
    "solo path)."
)


def recommended_pack(rows: list[PackedRow]) -> tuple[int, PackedRow] | None:
    """The pack_size with the most run-iterations/s, and its row (R runs one after another are pack_size 1). The
    COMPARISONS rows (bmm, streams, CUDA graph) are not what the launcher runs: they are never chosen."""
    runs = (r for r in rows if r.ms_median == r.ms_median and not any(c in r.variant for c in COMPARISONS))
    best = max(runs, key=lambda r: r.run_iters_per_s, default=None)
    return None if best is None else (best.R if best.packed else 1, best)


def recommendation_line(rows: list[PackedRow], shape: str) -> str:
    pick = recommended_pack([r for r in rows if r.shape == shape])
    if pick is None:
        return f"{shape}: no packed rows measured."
    size, row = pick
    return (
        f"{shape}: most run-iterations/s with **pack_size {size}** ({row.variant}, R = {row.R}: "
        f"{row.run_iters_per_s:.2f} run-iterations/s)."
    )


def packed_lines(rows: list[PackedRow], shapes, iters: int, warmup: int) -> list[str]:
    """What was timed, the table, and the best pack_size per shape."""
    return [
        PACKED_EXPLAINED + f" Median of {iters} timed iterations after {warmup} warm-up.",
        "",
        *packed_table(rows),
        "",
        *(recommendation_line(rows, shape) for shape in shapes),
    ]


def write_packed_report(path: Path, meta: dict, rows: list[PackedRow], title: str) -> None:
    settings = meta["settings"]
    shapes = dict.fromkeys(r.shape for r in rows)
    lines = header(meta, title) + packed_lines(rows, shapes, settings["packed_iters"], settings["warmup"]) + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


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


# ---- the GPU check's speed sections (campaign/gpu_check) --------------------------------------------------------


def speed_section(
    report: Report, device, shapes: dict, title: str, key: str, iters: int, warmup: int, precisions, batch: int
) -> list[Row]:
    """Sections 2 and 4: the training-iteration grid at the given shapes, and fused / LSTM ratios per shape."""
    rows = run_grid(shapes, MODELS, device, iters, warmup, precisions, log=log, batch=batch)
    lines = [
        "One training iteration = forward + cross-entropy + backward + SGD-momentum step on random inputs of "
        f"the task's shape; median of {iters} timed iterations after {warmup} warm-up (antisym/benchmark/timing.py).",
        "",
        *rows_table(rows),
    ]
    by = {(r.shape, r.model, r.variant): r.ms_median for r in rows}
    for shape in shapes:
        lstm = by.get((shape, "lstm", Variant("cudnn").label))
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
    return rows


def profile_section(report: Report, device, shape: tuple[int, int, int], batch: int) -> None:
    """Section 2b: where one training iteration's time goes, kernel by kernel (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    T, m, n = shape
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
        ("asym", Variant("fused", "tf32x3")),
        ("asym", Variant("fused", DEFAULT_PRECISION)),
        ("gated", Variant("fused", "tf32x3")),
        ("lstm", Variant("cudnn")),
    ]
    for name, variant in variants:
        model = make_model(name, (T, m, n), variant, device)
        x = torch.rand(batch, T, m, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        step = step_fn(model, x, y, graph=False)
        time_steps(step, device, 0, 3)
        with torch_profile(activities=activities) as prof:
            step()
            if on_gpu:
                torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by=sort_by, row_limit=10)
        raw[f"{name} {variant.label}"] = table
        lines += [f"**{name} {variant.label}**", "", "```", table.strip(), "```", ""]
        log(f"  profiled {name} {variant.label}")
    report.add("2b. Profile of one training iteration, pMNIST shape", lines, "profile", raw)


def sharing_section(
    report: Report, device, counts: list[int], iters: int, warmup: int, tiny: bool, batch: int
) -> list[dict]:
    """Section 5: throughput of 1, 2, 4, ... training processes sharing the GPU (asym at the pMNIST shape)."""
    results = []
    for impl, precision in (("fused", DEFAULT_PRECISION), ("eager", DEFAULT_PRECISION), ("fused", "tf32x3")):
        for count in counts:
            if report.time_left() < 30:
                log(f"  sharing {impl}[{precision}] x{count}: skipped, budget spent")
                continue
            results += run_sharing([count], "asym", impl, precision, "pmnist", device, iters, warmup, tiny, batch)
            log(sharing_table(results[-1:])[-1])
    lines = [
        f"asym at pMNIST shape; each process runs {iters} timed training iterations after warming up, "
        "all starting together; throughput = all sequences / (last end - first start).",
        "",
        *sharing_table(results),
    ]
    report.add("5. Training processes sharing one GPU", lines, "sharing", results)
    return results


def packed_section(report: Report, device, shapes: dict, counts: list[int], iters: int, warmup: int, batch: int):
    """Section 5b: run-iterations/s of packs of R runs (eager packed, fused solo x R), for the pack_size to use."""
    rows = run_packed(shapes, counts, device, iters, warmup, batch, log=log, time_left=report.time_left)
    lines = packed_lines(rows, shapes, iters, warmup)
    report.add("5b. Runs trained as one pack", lines, "packed", [asdict(r) for r in rows])
    return rows


def tuning_section(report: Report, device, tiny: bool) -> list[dict]:
    """Section 6: forward + backward time of the fused recurrence alone under each launch setting."""
    from antisym.kernels import fused_euler_recurrence
    from antisym.kernels.euler import DEFAULT_TUNING
    from antisym.models.cells import AntisymmetricCell, GatedAntisymmetricCell

    B = 128 if not tiny else 8
    shapes = [(784, 128), (1024, 256)] if not tiny else [(6, 16)]
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
            cell = cls(1, n, eps=EPS, gamma=GAMMA).to(device)
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
                        times = time_steps(step, device, 5, 2)
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
    return raw


if __name__ == "__main__":
    worker()
