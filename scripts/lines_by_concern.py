#!/usr/bin/env python
"""Lines of Python and make code per concern at one or more commits, as a markdown table (docs/layout.md); each cell
is "all (of which inside the antisym package)":

    python scripts/lines_by_concern.py 9aa3886 HEAD

A file belongs to the first concern with a matching path prefix; both the current layout and the one before the lease
tooling left the package are listed, so that any commit can be counted. Tests and examples are counted apart.
"""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter

CONCERNS = (
    ("GPU check", ("campaign/gpu_check/", "antisym/gpu/parity.py", "antisym/gpu/verdict.py",
                   "antisym/gpu/training_curves.py", "antisym/gpu/curves.py", "antisym/gpu/__init__.py",
                   "scripts/gpu_check.py", "scripts/curve_floor.py", "mk/gpu.mk", "campaign/mk/gpu.mk")),
    ("campaign and lease tooling", ("campaign/", "antisym/campaign/", "scripts/devdata.py", "mk/campaign.mk",
                                    "mk/devdata.mk")),
    ("benchmark", ("antisym/benchmark/", "antisym/gpu/", "scripts/bench", "scripts/kernel_report.py",
                   "scripts/time_debug_run.py")),
    ("results and figures", ("antisym/results/", "antisym/plan.py", "antisym/analysis/", "scripts/fig",
                             "mk/reproduce.mk", "mk/figures.mk")),
    ("launcher", ("hydra_plugins/",)),
    ("core training path", ("antisym/", "train.py", "Makefile")),
    ("tests", ("tests/",)),
    ("examples", ("examples/",)),
)  # fmt: skip


def concern(path: str) -> str | None:
    return next((name for name, prefixes in CONCERNS if path.startswith(prefixes)), None)


def count(commit: str) -> tuple[Counter, Counter]:
    """Lines per concern, all and inside antisym/."""
    names = subprocess.run(["git", "ls-tree", "-r", "--name-only", commit], capture_output=True, text=True, check=True)
    lines: Counter = Counter()
    inside: Counter = Counter()
    for path in names.stdout.split("\n"):
        if not (path.endswith((".py", ".mk")) or path == "Makefile") or concern(path) is None:
            continue
        text = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True).stdout
        lines[concern(path)] += text.count("\n")
        if path.startswith("antisym/"):
            inside[concern(path)] += text.count("\n")
    return lines, inside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("commits", nargs="+")
    commits = ap.parse_args().commits
    counts = [count(c) for c in commits]
    print("| concern | " + " | ".join(f"`{c}`" for c in commits) + " |")
    print("|---|" + "---:|" * len(commits))
    for name, _ in CONCERNS:
        print(f"| {name} | " + " | ".join(f"{c[name]:,} ({i[name]:,})" for c, i in counts) + " |")


if __name__ == "__main__":
    main()
