#!/usr/bin/env python
"""The fused kernels' GPU check in one call that fits one device run (--budget-s 500 by default):

1. parity at the task shapes: the fused recurrence in each precision against fp32 eager, both measured against a
   float64 eager reference (loss, h_T and every parameter gradient of one cross-entropy step), each row passing or
   failing under fixed tolerances (campaign/gpu_check/parity.py);
2. the training-iteration benchmark at the pMNIST shape (eager, CUDA-graph eager, fused in each precision, cuDNN
   LSTM; antisym/benchmark/timing.py);
2b. a torch.profiler breakdown of one training iteration at the pMNIST shape (fused asym / gated, cuDNN LSTM);
3. short real-MNIST (permuted) training curves: eager vs fused in each precision, same init, same batches
   (campaign/gpu_check/training_curves.py);
4. the benchmark at the two CIFAR-10 shapes;
5. throughput of 1, 2, 4, 8 training processes sharing the GPU;
5b. packs of R = 1..32 runs trained as one at the pMNIST shape (antisym.models.pack_forward: eager packed by
   torch.func vmap and fused packed, one launch for the pack; fused solo x R as the baseline): run-iterations/s per
   pack size; beside them the designs those compete with: the eager pack batched by hand (bmm), fused solo runs on
   R CUDA streams, the eager and the fused pack each captured as a CUDA graph;
6. a sweep of the fused kernels' launch settings (block_b, num_warps, resident A, bk), to choose the defaults;
7. the verdict (campaign/gpu_check/verdict.py): the speed targets (fused asym step <= cuDNN LSTM step and >= 20x faster
   than eager at the pMNIST shape, fused gated step <= 1.3x cuDNN LSTM there, fused asym step <= cuDNN LSTM at the
   CIFAR-10 shape, a fused pack of 16 at >= 10x the run-iterations/s of one solo fused run) against the numbers above,
   the default precision picked by criteria fixed before any GPU run, and the pack_size with the most
   run-iterations/s.
Sections run while --budget-s lasts, in the order 1, 2, 5b, 2b, 3, 4, 5, 6, 7 (the packed rows early: a campaign lease
that runs this check first takes its launcher from them, python -m campaign run --gpu-check); the report is
rewritten after each one, so a cut-off run still leaves what it measured. Output: <out>/bench.md (the text for
results/bench.md) and <out>/gpu_check.json.

GPU session (from the repo root; MNIST travels as a checked part, see "Data on the GPU machine" in docs/kernels.md):
    python3 -m campaign.devdata receive --part .devdata/p0 --dest /tmp/antisym-data && \
    python3 -m campaign.devdata assemble --dest /tmp/antisym-data --root /tmp/antisym-data/root && \
    python3 -m campaign.gpu_check --data-root /tmp/antisym-data/root --out $OUT --commit <sha>
CPU dry run of every code path (tiny shapes, Triton interpreter, synthetic data when --data-root is not given):
    .venv/bin/python -m campaign.gpu_check --dry-run --out /tmp/gpu_check
Needs torch and triton only (no Hydra).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2])
)  # the repository root: `python -m campaign...` from anywhere


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
    ap.add_argument("--packed-r", default="1,2,4,8,16,32", help="pack sizes R of the packed section")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes, Triton interpreter: checks the script")
    return ap.parse_args(argv)


def counts(spec: str) -> list[int]:
    return [int(k) for k in spec.split(",") if k]


def main(argv=None) -> Path:
    args = parse_args(argv)
    if args.dry_run:  # before triton or the kernels are imported: Triton reads it when the kernels are defined
        os.environ["TRITON_INTERPRET"] = "1"
        args.train_steps, args.iters, args.warmup, args.sharing = min(args.train_steps, 4), 1, 0, "1,2"
        args.packed_r = "1,2"

    import torch

    from antisym.benchmark import timing as benchmark
    from antisym.benchmark.report import Report, log
    from antisym.kernels import PRECISIONS
    from campaign.gpu_check import parity, verdict
    from campaign.gpu_check import training_curves as curves

    started = time.time()
    tiny = args.dry_run
    device = torch.device("cpu" if tiny else "cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no GPU visible to torch; use --dry-run on a CPU")
    title = "Fused GPU recurrence: parity, speed, training curves" + (" (DRY RUN on CPU)" if tiny else "")
    report = Report(
        Path(args.out),
        title=title,
        script="python -m campaign.gpu_check",
        settings=vars(args),
        started=started,
        device=device,
        budget_s=args.budget_s,
        commit=args.commit,
    )
    root = curves.mnist_root(args.data_root)
    shapes = benchmark.TINY_SHAPES if tiny else benchmark.SHAPES
    batch = 128 if not tiny else 8

    def speed(names, title, key):
        shape_set = {k: shapes[k] for k in names}
        benchmark.speed_section(report, device, shape_set, title, key, args.iters, args.warmup, PRECISIONS, batch)

    sections = [
        (
            "parity",
            0,
            lambda: parity.parity_section(
                report, device, parity.TINY_CASES if tiny else parity.TASK_CASES, batch=128 if not tiny else 5
            ),
        ),
        ("speed pmnist", 30, lambda: speed(["pmnist"], "2. Training-iteration time, pMNIST shape", "speed_pmnist")),
        (
            "packed",
            60,
            lambda: benchmark.packed_section(
                report, device, {"pmnist": shapes["pmnist"]}, counts(args.packed_r), args.iters, args.warmup, batch
            ),
        ),
        ("profile", 20, lambda: benchmark.profile_section(report, device, shapes["pmnist"], batch)),
        ("training curves", 60, lambda: curves.curves_section(report, device, root, args.train_steps, tiny)),
        (
            "speed cifar",
            60,
            lambda: speed(["cifar10", "noisy_cifar10"], "4. Training-iteration time, CIFAR-10 shapes", "speed_cifar"),
        ),
        (
            "sharing",
            60,
            lambda: benchmark.sharing_section(
                report, device, counts(args.sharing), args.iters, args.warmup, tiny, batch
            ),
        ),
        ("tuning", 30, lambda: benchmark.tuning_section(report, device, tiny)),
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
    verdict.verdict_section(report)
    log(f"wrote {report.out / 'bench.md'} in {time.time() - started:.0f} s")
    return report.out


if __name__ == "__main__":
    main()
