"""How much choosing the checkpoint by validation costs: the test accuracy at the best-*test* checkpoint beside the
reported one (at the best-validation checkpoint), for runs that tested at every validation (trainer.test_every_eval).

It is an upper bound no honest selection reaches, shown so a reader can tell a gap to the paper that selection could
explain from one it cannot. It never enters a choice: the tables choose and report by validation only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from antisym.results.paper import COLUMNS
from antisym.results.rows import RowResult, Run
from antisym.training.rundir import TEST_PROBE


def best_test(run: Run) -> tuple[float, int] | None:
    """(accuracy, step) of a run's best test pass: its test passes at validations and the reported test
    at the best-validation checkpoint; None for a run without test passes (the key off, or a run before it)."""
    probes = run.curve(TEST_PROBE)
    if not probes:
        return None
    if run.get("test_acc") is not None and run.get("best_step") is not None:
        probes.setdefault(int(run.get("best_step")), float(run.get("test_acc")))
    step = max(probes, key=lambda s: (probes[s], -s))
    return probes[step], step


def sensitivity_lines(rows: Sequence[RowResult]) -> list[str]:
    """The tables' sensitivity section: per row whose chosen runs tested at every validation, the
    mean best-test accuracy against the reported mean; nothing where no chosen run did."""
    lines = []
    for row in rows:
        runs = row.chosen.results if row.chosen else []
        probed = [(r, b) for r in runs if (b := best_test(r)) is not None]
        if not probed:
            continue
        reported = statistics.fmean(float(r.get("test_acc")) for r, _ in probed)  # the same seeds on both sides
        at_best = statistics.fmean(acc for _, (acc, _) in probed)
        steps = ", ".join(f"{step:,}" for _, (_, step) in probed)
        lines.append(
            f"| {row.method} | {COLUMNS[row.dataset]} | {100 * reported:.1f} | {100 * at_best:.1f} | "
            f"{100 * (at_best - reported):+.1f} | {steps} | {len(probed)} of {len(runs)} |"
        )
    if not lines:
        return []
    return [
        "",
        "## Sensitivity: test accuracy at the best-test checkpoint (never used to choose)",
        "",
        "Runs trained with `trainer.test_every_eval=true` also test at every validation. The best of those passes",
        "is what choosing the checkpoint on the test set would report: an upper bound, shown only to tell how much",
        "of a gap to the paper the choice of checkpoint could explain. The rows above report the best-validation",
        "checkpoint; both columns here are over the seeds with test passes.",
        "",
        "| method | task | ours (best val) | at best test | difference | steps of best test | seeds with test passes |",
        "|---|---|---|---|---|---|---|",
        *lines,
    ]
