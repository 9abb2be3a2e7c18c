#!/usr/bin/env python
"""Compile the fused kernels for H100 (sm_90) and A100 (sm_80) on this machine, no GPU needed, and report what each
launch asks of the chip: shared memory per block, registers and spills per thread, and whether A can stay resident.

    .venv/bin/python scripts/kernel_report.py                  # -> results/kernel_resources.md (+ .json)
    .venv/bin/python scripts/kernel_report.py --quick --out /tmp/k.md   # the pMNIST shape, sm_90 only

Every hidden size the presets use (128, 196 = the ablation model, 256), every precision, both directions, A
resident and streamed. `chosen` is what `antisym.kernels.euler` launches: resident when A fits its budget and the
compiled kernel fits the GPU's shared memory, else streamed. These are the compiler's numbers, not timings
(`scripts/bench.py --device cuda` times the kernels on a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.pop("TRITON_INTERPRET", None)  # the interpreter compiles nothing
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from antisym.benchmark.report import header  # noqa: E402
from antisym.kernels import PRECISIONS  # noqa: E402
from antisym.kernels.euler import launch_plan  # noqa: E402
from antisym.kernels.resources import SHARED_PER_BLOCK, compile_resources  # noqa: E402
from antisym.provenance import provenance  # noqa: E402

# (label, n, gated, T): the Euler-cell shapes of the Table 1 and Table 2 presets (batch 128).
CELLS = [
    ("asym, pMNIST", 128, False, 784),
    ("gated, pMNIST", 128, True, 784),
    ("asym, CIFAR-10", 256, False, 1024),
    ("gated, CIFAR-10", 256, True, 1024),
    ("ablation, CIFAR-10", 196, True, 1024),
]


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/kernel_resources.md")
    ap.add_argument("--arch", default="90,80", help="compute capabilities, comma-separated")
    ap.add_argument("--quick", action="store_true", help="the two pMNIST cells on the first --arch only")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.time()
    archs = [int(a) for a in args.arch.split(",")][: 1 if args.quick else None]
    cells = CELLS[:2] if args.quick else CELLS
    rows = []
    for arch in archs:
        for label, n, gated, steps in cells:
            for precision in PRECISIONS:
                plan = launch_plan(n, precision, gated)
                for direction in ("fwd", "bwd"):
                    found = {}
                    for resident in (True, False):
                        r = compile_resources(direction, n, precision, gated, resident, arch, steps=steps)
                        found[resident] = r
                    chosen = plan[direction] == "resident" and found[True].fits
                    for resident, r in found.items():
                        rows.append({"cell": label, **r.as_dict(), "chosen": resident == chosen})
                        print(
                            f"sm_{arch} {label:18s} {precision:7s} {direction} "
                            f"{'resident' if resident else 'streamed':8s} shared {r.shared_bytes / 1024:6.1f} KB "
                            f"regs {r.registers:3d} spills {r.spill_store_bytes}/{r.spill_load_bytes} B"
                            f"{'  <- chosen' if resident == chosen else ''}",
                            flush=True,
                        )
    meta = provenance("scripts/kernel_report.py", vars(args), started, device="cpu")
    meta["device"] += f" (compiling for {', '.join(f'sm_{a}' for a in archs)}; nothing runs on a GPU)"
    lines = header(meta, "Fused kernels: on-chip resources, from Triton's compiler")
    lines += [
        "Batch 128, block_b 16, default num_warps. `shared` is the shared memory one program (block) needs; the "
        f"most a block may use is {', '.join(f'{v // 1024} KB on sm_{k}' for k, v in SHARED_PER_BLOCK.items())}. "
        "Registers and spills are per thread, as ptxas reports them (spills inside the step loop cost a local-memory "
        "round trip every step). `chosen` marks the variant the launcher runs.",
        "",
        "| arch | cell | precision | direction | A | shared KB | fits | registers | spill st/ld B | chosen |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| sm_{r['arch']} | {r['cell']} (n={r['n']}) | {r['precision']} | {r['direction']} | "
            f"{'resident' if r['resident'] else 'streamed'} | {r['shared_bytes'] / 1024:.1f} | "
            f"{'yes' if r['fits'] else 'NO'} | {r['registers']} | {r['spill_store_bytes']}/{r['spill_load_bytes']} | "
            f"{'**yes**' if r['chosen'] else ''} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
