#!/usr/bin/env python
"""How long a newcomer's first look takes: `train.py debug=smoke`, end to end, as a user runs it.

    .venv/bin/python scripts/time_debug_run.py --data-root ../shared/data      # -> results/debug_run_cpu.md
    .venv/bin/python scripts/time_debug_run.py --data-root ../shared/data --repeats 5 --args dataset=pmnist

Each repeat is a fresh process (interpreter start, imports, the command's checks, data read, 20 iterations, the
evaluations on `trainer.eval_limit` examples, the summary) into a temporary run directory, timed by the wall clock.
The machine's load average before each repeat is recorded beside it: on a shared machine it says what ran alongside.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from antisym.benchmark.report import header, run_meta, write_lines  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> Path:
    started = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--args", nargs="*", default=[], help="more train.py overrides")
    ap.add_argument("--out", default="results/debug_run_cpu.md")
    ap.add_argument("--commit", default=None)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            load = os.getloadavg()[0]
            command = [sys.executable, str(REPO / "train.py"), "debug=smoke", *args.args,
                       f"data.root={Path(args.data_root).resolve()}", f"hydra.run.dir={tmp}/run{k}"]  # fmt: skip
            t0 = time.perf_counter()
            proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                sys.exit(f"the debug run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            rows.append((wall, load))
            print(f"repeat {k}: {wall:.1f} s (load average before: {load:.2f})", flush=True)
    walls = [w for w, _ in rows]
    meta = run_meta("scripts/time_debug_run.py", vars(args), started, "cpu", args.commit)
    lines = header(meta, "The debug run, end to end")
    lines += [
        f"`train.py {' '.join(['debug=smoke', *args.args])}` (20 iterations, evaluations on trainer.eval_limit "
        f"examples), {args.repeats} fresh processes on {os.cpu_count()} cores, each with the torch threads its trainer "
        "chose (auto; the device line above is this script's own process).",
        "",
        "| repeat | wall time (s) | load average (1 min) before |",
        "|---|---|---|",
        *(f"| {k} | {w:.1f} | {load:.2f} |" for k, (w, load) in enumerate(rows)),
        "",
        f"Median {statistics.median(walls):.1f} s, min {min(walls):.1f} s, max {max(walls):.1f} s.",
        "",
    ]
    return write_lines(lines, args.out)


if __name__ == "__main__":
    main()
