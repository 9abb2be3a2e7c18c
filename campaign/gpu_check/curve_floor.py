#!/usr/bin/env python
"""How far fp32 rounding alone moves a short training curve: fp32 eager against fp64 eager, same initial weights,
same batches, at each Euler step size eps. This is the floor under the GPU check's eager-vs-fused curves
(campaign/gpu_check/training_curves.py): a fused curve cannot be held closer to fp32 eager than fp32 eager is to fp64.

    .venv/bin/python -m campaign.gpu_check.curve_floor --data-root ../shared/data --eps 0.1,0.01 \
        --out results/curve_floor_cpu
Writes <out>.md and <out>.json (real permuted MNIST; ~4 min per eps on 2 CPU cores at 150 steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parents[2])
)  # the repository root: `python -m campaign...` from anywhere

from antisym.provenance import provenance  # noqa: E402
from campaign.gpu_check import training_curves as curves  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, help="folder with MNIST/raw/*")
    ap.add_argument("--eps", default="0.1,0.01", help="Euler step sizes to compare at (gamma 0.01, sigma_w 1)")
    ap.add_argument("--cell", default="asym", choices=("asym", "gated"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--out", default="results/curve_floor_cpu", help="path stem of the .md and .json")
    args = ap.parse_args(argv)
    started, device = time.time(), torch.device("cpu")
    train, test = curves.load_pmnist(curves.mnist_root(args.data_root), device, tiny=False)
    rows = {}
    for eps in (float(e) for e in args.eps.split(",")):
        pair = {
            name: curves.train_curve(
                args.cell, "eager", "ieee", train, test, device, args.steps, 128, 128, False, dt, eps=eps
            )
            for name, dt in (("fp32", torch.float32), ("fp64", torch.float64))
        }
        gap = curves.loss_gap(pair["fp32"], pair["fp64"])
        rows[eps] = {
            **pair,
            "loss_gap": gap,
            "acc_gap_pts": 100 * abs(pair["fp32"]["test_acc"] - pair["fp64"]["test_acc"]),
        }
        print(
            f"eps {eps}: loss gap {gap:.4f}, test acc {pair['fp32']['test_acc']:.4f} vs {pair['fp64']['test_acc']:.4f}"
        )
    meta = provenance("campaign/gpu_check/curve_floor.py", vars(args), started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    every = max(1, args.steps // 10)
    lines = [
        f"# fp32 rounding floor of a short training curve ({args.cell}, real permuted MNIST)",
        "",
        f"- {meta['date_utc']}, commit {meta['git_commit']}{' (dirty)' if meta['git_dirty'] else ''}, "
        f"{meta['device']}, wall {meta['wall_time_s']:.0f} s",
        f"- `{' '.join(meta['argv'])}`",
        f"- n=128, batch 128, Adagrad lr 0.1, gamma {0.01}, sigma_w 1, {args.steps} steps; fp32 and fp64 eager from "
        "the same initial weights on the same batches. Loss = mean training cross-entropy over the last "
        f"{every} steps.",
        "",
        "| eps | step | " + " | ".join(str(every * (i + 1)) for i in range(args.steps // every)) + " | test acc |",
        "|---|---|" + "---|" * (args.steps // every) + "---|",
    ]
    for eps, r in rows.items():
        for name in ("fp32", "fp64"):
            c = r[name]
            lines.append(
                f"| {eps:g} | {name} | "
                + " | ".join(f"{v:.4f}" for v in c["loss"])
                + f" | {100 * c['test_acc']:.2f}% |"
            )
    lines += ["", "| eps | max loss gap fp32 vs fp64 | test-accuracy gap (points) |", "|---|---|---|"]
    lines += [f"| {eps:g} | {r['loss_gap']:.4f} | {r['acc_gap_pts']:.2f} |" for eps, r in rows.items()]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
