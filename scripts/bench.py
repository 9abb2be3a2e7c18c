#!/usr/bin/env python
"""Time one training iteration (forward + backward + optimizer step) of every model at the paper's task shapes.

    .venv/bin/python scripts/bench.py                # CPU: eager Euler loops and LSTM -> results/bench_cpu.md
    python3 scripts/bench.py --device cuda           # GPU: eager, CUDA-graph eager, fused, cuDNN LSTM, and
                                                     #      1/2/4/8 processes sharing the GPU -> results/bench.md
    .venv/bin/python scripts/bench.py --tiny --out /tmp/b.md   # quick smoke run of every code path
    .venv/bin/python scripts/bench.py --packed --threads 2     # packs of R = 1..32 runs trained as one (asym,
                                                     #      pMNIST, pixel CIFAR) -> results/bench_packed_cpu.md
    .venv/bin/python scripts/bench.py --threads-table 1,2      # torch threads, quiet and beside a busy process
                                                     #      (noise-padded CIFAR, pMNIST) -> results/bench_threads_cpu.md

Needs torch (and triton for the fused rows) only, no Hydra; --packed times antisym.models.pack_forward.
What is timed, at which shapes, and how: see antisym/benchmark/timing.py, which this script runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from antisym.benchmark.report import header, run_meta, write_lines  # noqa: E402
from antisym.benchmark.timing import (  # noqa: E402
    BATCH,
    GPU_PRECISIONS,
    MODELS,
    SHAPES,
    TINY_SHAPES,
    run_grid,
    run_packed,
    run_sharing,
    sharing_table,
    write_packed_report,
    write_report,
)

TINY_TITLE = " (tiny smoke shapes, not a measurement)"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda[:k])")
    ap.add_argument("--shapes", default=None, help=f"comma-separated subset of {', '.join(SHAPES)} (default: all)")
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
    ap.add_argument(
        "--packed",
        action="store_true",
        help="time packs of R runs trained as one instead of the grid (asym; --shapes default pmnist,cifar10)",
    )
    ap.add_argument("--packed-r", default="1,2,4,8,16,32", help="pack sizes R of --packed")
    ap.add_argument("--packed-iters", type=int, default=None, help="timed iterations per packed row (default: --iters)")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes: a smoke test of every code path")
    ap.add_argument(
        "--threads-table",
        default=None,
        help="torch thread counts to time, quiet and beside --competitors busy processes (shapes default "
        "noisy_cifar10,pmnist); what trainer.threads=0 chooses is read from it",
    )
    ap.add_argument("--competitors", default="0,1", help="busy processes beside each --threads-table row")
    ap.add_argument(
        "--out",
        default=None,
        help="report path (default results/bench[_packed]_cpu.md on cpu, results/bench[_packed].md on cuda)",
    )
    ap.add_argument("--commit", default=None, help="git commit to record where the checkout has no .git")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's); 1 keeps a shared, busy CPU from oversubscription",
    )
    ap.add_argument(
        "--no-flush-denormal",
        action="store_true",
        help="compute subnormal floats in full on the CPU (training flushes them: trainer.flush_denormal)",
    )
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.iters = args.iters if args.iters is not None else (10 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    args.packed_iters = args.packed_iters if args.packed_iters is not None else args.iters
    default_shapes = "noisy_cifar10,pmnist" if args.threads_table else ",".join(SHAPES)
    args.shapes = args.shapes or ("pmnist,cifar10" if args.packed else default_shapes)
    return args


def main(argv=None) -> Path:
    started = time.time()
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(not args.no_flush_denormal)  # as the trainer does by default
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU")
    table = TINY_SHAPES if args.tiny else SHAPES
    shapes = {s: table[s] for s in args.shapes.split(",")}
    out = Path(args.out or default_out(device, args.packed, bool(args.threads_table)))
    if args.packed:
        return main_packed(args, device, shapes, out, started)
    if args.threads_table:
        return main_threads(args, out, started)
    models = args.models.split(",")
    precisions = args.precisions.split(",")
    print(f"bench on {device}: shapes {list(shapes)}, models {models}, {args.iters} iters after {args.warmup} warm-up")
    rows = run_grid(shapes, models, device, args.iters, args.warmup, precisions, args.batch)
    sharing_spec = args.sharing if args.sharing is not None else ("1,2,4,8" if device.type == "cuda" else "")
    sharing = []
    if sharing_spec:
        impl = "fused" if device.type == "cuda" else "eager"
        counts = [int(k) for k in sharing_spec.split(",")]
        sharing = run_sharing(
            counts, "asym", impl, precisions[0], "pmnist", device, args.iters, args.warmup, args.tiny, args.batch
        )
        print("\n".join(sharing_table(sharing)))
    meta = run_meta("scripts/bench.py", vars(args), started, device, args.commit)
    write_report(out, meta, rows, sharing, "Training-iteration benchmark" + TINY_TITLE * args.tiny)
    print(f"wrote {out}")
    return out


def main_packed(args, device: torch.device, shapes: dict, out: Path, started: float) -> Path:
    counts = [int(k) for k in args.packed_r.split(",")]
    iters, warmup = args.packed_iters, args.warmup
    print(f"packed bench on {device}: shapes {list(shapes)}, R {counts}, {iters} iters after {warmup} warm-up")
    title = "Packed-runs benchmark" + TINY_TITLE * args.tiny

    def write(rows: list, final: bool = False) -> None:
        meta = run_meta("scripts/bench.py", vars(args), started, device, args.commit)
        write_packed_report(out, meta, rows, title + ("" if final else f" (incomplete: {len(rows)} rows so far)"))

    write(run_packed(shapes, counts, device, iters, warmup, args.batch, on_row=write), final=True)
    print(f"wrote {out}")
    return out


THREADS_EXPLAINED = (
    "One eager AntisymmetricRNN training iteration (forward, cross-entropy, backward, SGD-momentum step; batch "
    "{batch}, random inputs of the task's shape) in a fresh process whose torch threads are set by OMP_NUM_THREADS, "
    "with 0 or more `python -c 'while True: pass'` processes beside it, each keeping one core busy (as a test "
    "suite or another run's main loop does). Mean of {iters} timed iterations after {warmup} warm-up. Nothing else "
    "ran on the machine during the measurement (the campaign's CPU lane was paused)."
)


def main_threads(args, out: Path, started: float) -> Path:
    from antisym.benchmark.timing import run_threads, threads_table
    from antisym.training.threads import available_cores

    threads = [int(k) for k in args.threads_table.split(",")]
    competitors = [int(k) for k in args.competitors.split(",")]
    rows = run_threads(args.shapes.split(","), threads, competitors, args.iters, args.warmup, args.tiny, args.batch)
    meta = run_meta("scripts/bench.py", vars(args), started, "cpu", args.commit)
    explained = THREADS_EXPLAINED.format(batch=args.batch, iters=args.iters, warmup=args.warmup)
    lines = header(meta, "CPU threads benchmark" + TINY_TITLE * args.tiny)
    lines += [f"Cores this process may use (affinity, cgroup quota): {available_cores()}.", "", explained, ""]
    lines += [*threads_table(rows), "", "Raw rows:", "", "```json", json.dumps(rows), "```", ""]
    return write_lines(lines, out)


def default_out(device: torch.device, packed: bool, threads: bool = False) -> str:
    if threads:
        return "results/bench_threads_cpu.md"
    return f"results/bench{'_packed' * packed}{'_cpu' * (device.type != 'cuda')}.md"


if __name__ == "__main__":
    main()
