#!/usr/bin/env python
"""Time one training iteration (forward + backward + optimizer step) of every model at the paper's task shapes.

    .venv/bin/python scripts/bench.py                # CPU: eager Euler loops and LSTM -> results/bench_cpu.md
    python3 scripts/bench.py --device cuda           # GPU: eager, CUDA-graph eager, fused, cuDNN LSTM, and
                                                     #      1/2/4/8 processes sharing the GPU -> results/bench.md
    .venv/bin/python scripts/bench.py --tiny --out /tmp/b.md   # quick smoke run of every code path

Needs torch (and triton for the fused rows) only: no Hydra. What is timed, at which shapes, and how: see
antisym/gpu/benchmark.py, which this script runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from antisym.gpu.benchmark import (  # noqa: E402
    BATCH,
    GPU_PRECISIONS,
    MODELS,
    SHAPES,
    TINY_SHAPES,
    run_grid,
    run_sharing,
    sharing_table,
    write_report,
)
from antisym.gpu.report import run_meta  # noqa: E402


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
    args = ap.parse_args(argv)
    cuda = args.device.startswith("cuda")
    args.iters = args.iters if args.iters is not None else (10 if cuda else 2)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    return args


def main(argv=None) -> Path:
    started = time.time()
    args = parse_args(argv)
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
        counts = [int(k) for k in sharing_spec.split(",")]
        sharing = run_sharing(
            counts, "asym", impl, precisions[0], "pmnist", device, args.iters, args.warmup, args.tiny, args.batch
        )
        print("\n".join(sharing_table(sharing)))
    out = Path(args.out or ("results/bench.md" if device.type == "cuda" else "results/bench_cpu.md"))
    meta = run_meta("scripts/bench.py", vars(args), started, device, args.commit)
    title = "Training-iteration benchmark" + (" (tiny smoke shapes, not a measurement)" if args.tiny else "")
    write_report(out, meta, rows, sharing, title)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
