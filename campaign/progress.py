"""How far the campaign is: per block, runs finished / planned and iterations done / planned; and a lease's report."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from antisym.provenance import cpu_name
from antisym.training.rundir import METRICS_FILE, read_metrics, read_summary
from campaign.plan import Plan, planned_state, resolve

RATE_ROWS = 200  # the latest logged training intervals of a block that its rate is measured over


def blocks(plan: Plan, records: Path, planned: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per block: run counts by state and the iterations done (capped at each run's plan) and planned."""
    plan = resolve(plan, records)
    rows = []
    for block in plan.blocks:
        runs = plan.block_runs(block)
        states = {r.rel_dir: planned_state(records, r) for r in runs}
        rows.append(
            {
                "block": block,
                "runs": len(runs),
                "states": dict(Counter(s.status for s in states.values())),
                "completed": sum(s.status == "completed" for s in states.values()),
                "steps_done": sum(min(s.steps, planned[d]) for d, s in states.items()),
                "steps_planned": sum(planned[r.rel_dir] for r in runs),
            }
        )
    return rows


def _intervals(run_dir: Path) -> list[tuple[int, float]]:
    """(iterations, seconds) between consecutive logged training rows of one run, evaluations and checkpoints
    included; none across a resume (the steps since the last checkpoint are trained again)."""
    rows = [r for r in read_metrics(run_dir / METRICS_FILE) if r.get("split") == "train" and "time_s" in r]
    return [
        (b["step"] - a["step"], b["time_s"] - a["time_s"])
        for a, b in zip(rows, rows[1:], strict=False)
        if b["step"] > a["step"] and b["time_s"] > a["time_s"]
    ]


def rates_here(plan: Plan, records: Path, machine: str | None = None) -> dict[str, tuple[float, str]]:
    """Per block, the iterations per second its runs trained at on this machine (its CPU model; `machine` names
    another), over its latest RATE_ROWS logged intervals, and the block it was measured on: a block with no run
    trained here takes the rate of a block whose runs share its task (the CPU lane trains one run at a time)."""
    machine = machine or f"cpu: {cpu_name()}"
    measured: dict[str, float] = {}
    task_of: dict[str, str] = {}
    for block in plan.blocks:
        intervals = []
        for run in plan.block_runs(block):
            task_of.setdefault(block, run.preset.split("/")[-1].split("_", 1)[-1])  # <model>_<task>
            summary = read_summary(records / run.rel_dir) or {}
            if str(summary.get("device", "")).startswith(machine):
                intervals += _intervals(records / run.rel_dir)
        steps, seconds = (sum(x) for x in zip(*intervals[-RATE_ROWS:], strict=True)) if intervals else (0, 0.0)
        if seconds > 0:
            measured[block] = steps / seconds
    rates = {block: (rate, block) for block, rate in measured.items()}
    for block in plan.blocks:
        if block not in rates:
            alike = [b for b in measured if task_of.get(b) == task_of.get(block)]
            if alike:
                rates[block] = (measured[alike[0]], alike[0])
    return rates


def rate_lines(
    rows: Sequence[Mapping[str, Any]], rates: Mapping[str, tuple[float, str]], machine: str, lanes: int = 1
) -> list[str]:
    """A markdown table: per block, one run's rate measured on this machine and the time left at that rate with
    `lanes` runs training side by side (a lane trains one run at a time; a block with fewer runs left uses fewer)."""
    lines = [f"Rate of one run on this machine ({machine}); time left with {lanes} lane{'s' * (lanes > 1)}:", "",
             "| block | it/s | measured on | time left |", "|---|---|---|---|"]  # fmt: skip
    for row in rows:
        left = row["steps_planned"] - row["steps_done"]
        if row["block"] not in rates:
            lines.append(f"| {row['block']} | — | no run trained here | — |")
            continue
        rate, source = rates[row["block"]]
        side_by_side = max(1, min(lanes, row["runs"] - row["completed"]))
        lines.append(f"| {row['block']} | {rate:.2f} | {source} | {left / rate / side_by_side / 3600:,.1f} h |")
    return lines


def _pct(row: Mapping[str, Any]) -> str:
    """The block's iterations done, as a percentage of those planned."""
    return f"{100 * row['steps_done'] / max(1, row['steps_planned']):.1f}%"


def block_lines(rows: Sequence[Mapping[str, Any]], before: Sequence[Mapping[str, Any]] | None = None) -> list[str]:
    """A markdown table of `blocks` rows; with `before`, each cell shows before -> after where it moved."""
    lines = ["| block | completed / runs | iterations done / planned | states |", "|---|---|---|---|"]
    for i, row in enumerate(rows):
        old = before[i] if before else row

        def cell(key: str, old: Mapping[str, Any] = old, row: Mapping[str, Any] = row) -> str:
            return f"{old[key]:,} -> {row[key]:,}" if old[key] != row[key] else f"{row[key]:,}"

        states = ", ".join(f"{n} {s}" for s, n in sorted(row["states"].items()))
        lines.append(
            f"| {row['block']} | {cell('completed')} / {row['runs']} | {cell('steps_done')} / "
            f"{row['steps_planned']:,} ({_pct(row)}) | {states} |"
        )
    return lines


def moved_line(rows: Sequence[Mapping[str, Any]], before: Sequence[Mapping[str, Any]]) -> str:
    """The blocks that moved, for a commit message: "table1 20.6% -> 41.3% (+123,870 iterations, 0 -> 6 completed)"."""
    moved = [
        f"{a['block']} {_pct(b)} -> {_pct(a)} (+{a['steps_done'] - b['steps_done']:,} iterations"
        + (
            f", {b['completed']} -> {a['completed']} of {a['runs']} completed)"
            if a["completed"] != b["completed"]
            else ")"
        )
        for a, b in zip(rows, before, strict=True)
        if (a["steps_done"], a["completed"]) != (b["steps_done"], b["completed"])
    ]
    return "; ".join(moved) or "no block moved"


def run_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """One row per run; `it/s` is the run's iterations over its pack's wall time (setup and evaluations included),
    so a pack's members show the same number and run-iterations/s is that times the pack size."""
    lines = ["| run | status | steps | pack | it/s | outcome |", "|---|---|---|---|---|---|"]
    for r in runs:
        b, a = r["before"], r["after"]
        note = r["outcome"] + (f": {r['error']}" if r.get("error") else "")
        rate = f"{(a['steps'] - b['steps']) / r['wall_s']:.1f}" if r.get("wall_s") else "—"
        lines.append(
            f"| {r['run']} | {b['status']} -> {a['status']} | {b['steps']:,} -> {a['steps']:,} / {r['max_steps']:,} "
            f"| {r.get('pack_size', '—')} | {rate} | {note[:200]} |"
        )
    return lines


def write_report(report: Mapping[str, Any], out: Path) -> None:
    """progress.json (everything) and progress.md (what moved) in out."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "progress.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    par = report["parity"]
    text = [
        f"# Campaign lease: plan {report['plan']}",
        "",
        f"- commit {report['commit'] or 'from git'}, device {report['device']}, budget {report['budget_s']:g} s, "
        f"wall {report.get('wall_s', 0):g} s",
        f"- launcher: {report.get('launcher', '?')}",
        f"- parity: {par['status']}"
        + (f" ({par.get('reason') or par.get('key')})" if par["status"] != "failed" else ""),
        *(f"  - {why}" for why in par.get("why", [])),
        f"- stopped: {report.get('stopped', '?')}",
        f"- archives: {', '.join(report['archives']) or 'none'}",
        "",
        "## Blocks",
        "",
        *block_lines(report["blocks_after"], report["blocks_before"]),
        "",
        "## Runs of this lease",
        "",
        *run_lines(report["runs"]),
    ]
    (out / "progress.md").write_text("\n".join(text) + "\n")
