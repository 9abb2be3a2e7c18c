#!/usr/bin/env python
"""Does torch.set_flush_denormal(True) speed up CPU training at paper settings? Real iterations, real data.

    .venv/bin/python scripts/bench_denormal.py --data-root ../shared/data        # -> results/bench_denormal_cpu.md
    .venv/bin/python scripts/bench_denormal.py --preset table2/asym_noisy_cifar10 --blocks 10 --block-iters 10

A 1,000-step backward can push gradients into subnormal floats, which x86 CPUs compute on a slow path. One model of
the preset trains on its real task; flushing alternates on and off every `--block-iters` iterations (ABAB..., so a
drift in the machine's load falls on both alike), and every iteration is timed. Also counted: the share of
subnormal values in the gradients at the end of each block. One run, one thread unless --threads says otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from antisym.benchmark.report import header, run_meta, write_lines  # noqa: E402
from antisym.config import RunConfig  # noqa: E402
from antisym.data import build_task  # noqa: E402
from antisym.models import build_model  # noqa: E402
from antisym.training.optim import build_optimizer  # noqa: E402
from antisym.training.runs import compose  # noqa: E402


def subnormal_share(model: torch.nn.Module) -> float:
    """The share of the gradients' entries that are subnormal (non-zero, below float32's smallest normal)."""
    tiny = torch.finfo(torch.float32).tiny
    grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
    g = torch.cat(grads).abs()
    return ((g > 0) & (g < tiny)).float().mean().item()


def main(argv=None) -> Path:
    started = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--preset", default="table2/asym_noisy_cifar10")
    ap.add_argument("--overrides", nargs="*", default=[], help="extra train.py overrides (e.g. model.hidden_size=8)")
    ap.add_argument("--blocks", type=int, default=10, help="blocks of iterations, flushing on in every other one")
    ap.add_argument("--block-iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/bench_denormal_cpu.md")
    ap.add_argument("--commit", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = compose(args.preset, [f"data.root={args.data_root}", "data.download=false", *args.overrides])
    settings = RunConfig.from_cfg(cfg)
    task = build_task(settings.task, args.data_root, "train", False, settings.data.allow_subset)
    torch.manual_seed(settings.trainer.seed)
    model = build_model(settings.model, task.spec.input_size, task.spec.num_classes)
    opt = build_optimizer(settings.optimizer, model)
    gen = torch.Generator().manual_seed(0)
    noise = torch.Generator().manual_seed(1)
    times: dict[bool, list[float]] = {False: [], True: []}
    shares: dict[bool, list[float]] = {False: [], True: []}
    for block in range(args.blocks):
        flush = block % 2 == 1
        torch.set_flush_denormal(flush)
        for _ in range(args.block_iters):
            idx = torch.randint(0, len(task), (settings.trainer.batch_size,), generator=gen)
            x, y = task.batch(idx, noise)
            start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
            times[flush].append(time.perf_counter() - start)
        shares[flush].append(subnormal_share(model))
        block_mean = statistics.mean(times[flush][-args.block_iters :])
        print(f"block {block} flush={flush}: {block_mean:.3f} s/iter", flush=True)
    torch.set_flush_denormal(False)
    mean = {k: statistics.mean(v) for k, v in times.items()}
    meta = run_meta("scripts/bench_denormal.py", vars(args), started, "cpu", args.commit)
    lines = header(meta, "Flush-denormal benchmark")
    lines += [
        f"Preset {args.preset} (overrides: {' '.join(args.overrides) or 'none'}), real data, {args.threads} torch "
        f"thread(s), one model trained from initialisation for {args.blocks * args.block_iters} iterations; "
        f"torch.set_flush_denormal alternating off/on every {args.block_iters} iterations (off first).",
        "",
        "| flush denormal | iterations | s/iter (mean) | s/iter (median) | subnormal share of gradients (max) |",
        "|---|---|---|---|---|",
        *(
            f"| {'on' if k else 'off'} | {len(v)} | {mean[k]:.3f} | {statistics.median(v):.3f} | {max(shares[k]):.2e} |"
            for k, v in times.items()
        ),
        "",
        f"Ratio off / on: {mean[False] / mean[True]:.3f} (> 1: flushing is faster).",
        "",
        "Raw seconds per iteration:",
        "",
        "```json",
        json.dumps({"off": [round(t, 4) for t in times[False]], "on": [round(t, 4) for t in times[True]]}),
        "```",
        "",
    ]
    return write_lines(lines, args.out)


if __name__ == "__main__":
    main()
