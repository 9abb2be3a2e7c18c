"""How far the campaign is: per block, runs finished / planned and iterations done / planned; and a lease's report."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from antisym.plan import Plan, planned_state, resolve
from antisym.provenance import cpu_name
from antisym.training.rundir import RunDir, Status, recorded_segments

RATE_ROWS = 200  # the latest logged training intervals of a block that its rate is measured over


def blocks(plan: Plan, records: Path, planned: Mapping[str, int]) -> list[dict[str, Any]]:
    """One row per block: run counts by state, the iterations done (capped at each run's plan) and planned, and the
    iterations left per preset (what the time left is computed from: runs of one block train at different rates)."""
    plan = resolve(plan, records)
    rows = []
    for block in plan.blocks:
        runs = plan.block_runs(block)
        states = {r.rel_dir: planned_state(records, r) for r in runs}
        left: Counter[str] = Counter()
        for r in runs:
            left[r.preset] += planned[r.rel_dir] - min(states[r.rel_dir].steps, planned[r.rel_dir])
        rows.append(
            {
                "block": block,
                "runs": len(runs),
                "states": dict(Counter(s.status for s in states.values())),
                "completed": sum(s.status == Status.COMPLETED for s in states.values()),
                "steps_done": sum(min(s.steps, planned[d]) for d, s in states.items()),
                "steps_planned": sum(planned[r.rel_dir] for r in runs),
                "left_by_preset": dict(left),
            }
        )
    return rows


def _intervals(run_dir: Path, machine: str) -> list[tuple[int, float]]:
    """(iterations, seconds) between consecutive logged training rows of one run, evaluations and checkpoints
    included, over the steps its segments trained on `machine` (a run resumed on another device counts only its
    steps here; a record without segments counts whole when its device line names the machine); none across a
    resume (the steps since the last checkpoint are trained again)."""
    run = RunDir(run_dir)
    segments = recorded_segments(run.summary() or {})
    ends = [s.get("from_step") or 0 for s in segments[1:]] + [math.inf]
    here = [(s.get("from_step") or 0, end) for s, end in zip(segments, ends, strict=True)
            if str(s.get("device") or "").startswith(machine)]  # fmt: skip
    rows = [r for r in run.metrics() if r.get("split") == "train" and "time_s" in r]
    return [
        (b["step"] - a["step"], b["time_s"] - a["time_s"])
        for a, b in zip(rows, rows[1:], strict=False)
        if b["step"] > a["step"] and b["time_s"] > a["time_s"] and any(lo < b["step"] <= hi for lo, hi in here)
    ]


def _rate(intervals: list[tuple[int, float]]) -> float | None:
    """Iterations per second over the latest RATE_ROWS intervals, or None when there are none."""
    steps, seconds = (sum(x) for x in zip(*intervals[-RATE_ROWS:], strict=True)) if intervals else (0, 0.0)
    return steps / seconds if seconds > 0 else None


def rates_here(plan: Plan, records: Path, machine: str | None = None) -> dict[str, Any]:
    """The iterations per second runs trained at on this machine (its CPU model; `machine` names another), over
    the latest RATE_ROWS logged intervals: per block, with what it was measured on (a block with no run trained here
    takes the rate of one of its presets trained here in another block, else that of a block sharing one of its
    tasks), and per preset (`presets`), wherever it trained."""
    machine = machine or f"cpu: {cpu_name()}"
    by_block: dict[str, list] = {}
    by_preset: dict[str, list] = {}
    tasks: dict[str, set[str]] = {}
    for block in plan.blocks:
        for run in plan.block_runs(block):
            tasks.setdefault(block, set()).add(run.preset.split("/")[-1].split("_", 1)[-1])  # <model>_<task>
            intervals = _intervals(records / run.rel_dir, machine)
            by_block.setdefault(block, []).extend(intervals)
            by_preset.setdefault(run.preset, []).extend(intervals)
    measured = {b: r for b, i in by_block.items() if (r := _rate(i)) is not None}
    presets = {p: r for p, i in by_preset.items() if (r := _rate(i)) is not None}
    rates: dict[str, Any] = {block: (rate, block) for block, rate in measured.items()}
    for block in plan.blocks:
        if block in rates:
            continue
        own = [p for p in dict.fromkeys(r.preset for r in plan.block_runs(block)) if p in presets]
        alike = [b for b in measured if tasks[b] & tasks[block]]
        if own:
            rates[block] = (presets[own[0]], own[0])
        elif alike:
            rates[block] = (measured[alike[0]], alike[0])
    rates["presets"] = presets
    return rates


def _run_rate(rates: Mapping[str, Any], preset: str, block: str) -> float | None:
    """A run's iterations per second here: its preset's rate wherever it trained, else its block's (a guess: another
    model can train several-fold slower or faster); None where neither has trained here."""
    return rates.get("presets", {}).get(preset) or (rates.get(block) or (None,))[0]


def rate_lines(rows: Sequence[Mapping[str, Any]], rates: Mapping[str, Any], machine: str, lanes: int = 1) -> list[str]:
    """A markdown table: per block, one run's rate measured on this machine and the time left with `lanes` runs
    training side by side (a lane trains one run at a time; a block with fewer runs left uses fewer): each preset's
    iterations left at that preset's rate here, or the block's where the preset has not trained here: such a time
    is marked, and a footnote names those presets (an LSTM trains several times slower than the other cells)."""
    lines = [f"Rate of one run on this machine ({machine}); time left with {lanes} lane{'s' * (lanes > 1)}:", "",
             "| block | it/s | measured on | time left |", "|---|---|---|---|"]  # fmt: skip
    presets = rates.get("presets", {})
    untimed: Counter[str] = Counter()
    for row in rows:
        if row["block"] not in rates:
            lines.append(f"| {row['block']} | — | no run trained here | — |")
            continue
        rate, source = rates[row["block"]]
        left = row.get("left_by_preset") or {"": row["steps_planned"] - row["steps_done"]}
        seconds = sum(steps / _run_rate(rates, preset, row["block"]) for preset, steps in left.items())
        guessed = {p: n for p, n in left.items() if p and n > 0 and p not in presets}
        untimed.update(guessed)
        side_by_side = max(1, min(lanes, row["runs"] - row["completed"]))
        mark = " *" if guessed else ""
        lines.append(f"| {row['block']} | {rate:.2f} | {source} | {seconds / side_by_side / 3600:,.1f} h{mark} |")
    if any(row["block"] not in rates for row in rows):
        lines += ["", "Rates are per machine (another CPU or GPU trains at another speed): a block shows one once a "
                  "run of it, of one of its presets or of a block with its task, has logged training here "
                  "(`make cpu-campaign` does within minutes); results/bench_threads_cpu.md times one "
                  "iteration."]  # fmt: skip
    if untimed:
        named = ", ".join(f"{p} ({n:,} iterations)" for p, n in sorted(untimed.items()))
        lines += ["", f"\\* includes presets not yet timed on this machine, counted at their block's rate (set by its "
                  f"other presets; another model can differ several-fold): {named}."]  # fmt: skip
    return lines


def lane_schedule(
    plan: Plan, records: Path, planned: Mapping[str, int], rates: Mapping[str, Any], lane: str, lanes: int
) -> list[dict[str, Any]]:
    """The lane's items in order: runs and iterations left, their lane-hours at each preset's rate here (else its
    block's: `guessed`), and in how many hours the last of them finishes with `lanes` lanes, each taking the next run
    in order as it frees (the runs training now hold their lanes first; a run waiting for its screen's choice counts
    where it stands: its screen comes earlier in the lane); `done_h` is None from a run with no rate on."""
    plan = resolve(plan, records)
    presets = rates.get("presets", {})
    items, todo = [], []
    for label, runs in plan.lane_items(lane):
        item = {"item": label, "runs": 0, "steps": 0, "lane_h": 0.0, "guessed": False, "ends": []}
        for run in runs:
            state = planned_state(records, run)
            if state.todo() or state.status in (Status.RUNNING, Status.WAITING):
                left = planned[run.rel_dir] - min(state.steps, planned[run.rel_dir])
                rate = _run_rate(rates, run.preset, run.block)
                item["runs"] += 1
                item["steps"] += left
                item["guessed"] |= run.preset not in presets
                item["lane_h"] += left / rate / 3600 if rate else 0.0
                todo.append((state.status != Status.RUNNING, len(todo), item, left / rate if rate else None))
        items.append(item)
    free = [0.0] * max(1, lanes)
    unknown = False
    for _, _, item, seconds in sorted(todo, key=lambda t: t[:2]):  # the runs training now first, then lane order
        unknown |= seconds is None
        lane_at = free.index(min(free))
        free[lane_at] += seconds or 0.0
        item["ends"].append(None if unknown else free[lane_at] / 3600)
    for item in items:
        ends = item.pop("ends")
        item["done_h"] = max(ends) if ends and None not in ends else None
    return items


def schedule_lines(items: Sequence[Mapping[str, Any]], lane: str, lanes: int) -> list[str]:
    """A markdown table of `lane_schedule` items with work left (how many earlier ones are done, in one line)."""
    left = [i for i in items if i["runs"]]
    lines = [f"Lane `{lane}` in its order, with {lanes} lane{'s' * (lanes > 1)} each taking the next run as it frees "
             f"({len(items) - len(left)} of its {len(items)} items done):", "",
             "| item | runs left | iterations left | lane-hours | finished in |", "|---|---|---|---|---|"]  # fmt: skip
    for i in left:
        mark = " *" if i["guessed"] else ""
        done = f"{i['done_h']:,.1f} h" if i["done_h"] is not None else "—"
        lines.append(f"| {i['item']} | {i['runs']} | {i['steps']:,} | {i['lane_h']:,.1f}{mark} | {done} |")
    return lines


def training_lines(plan: Plan, records: Path, planned: Mapping[str, int]) -> list[str]:
    """A markdown table of the runs a lane or launcher trains now: how far each is (its metrics' latest step) and
    its validation so far, latest and best (what a note on a long row quotes); no lines while none trains."""
    lines = []
    for run in resolve(plan, records).runs:
        state = planned_state(records, run)
        if state.status != Status.RUNNING:
            continue
        rows = RunDir(records / run.rel_dir).metrics()
        val = [(int(r["step"]), 100 * float(r["acc"])) for r in rows if r.get("split") == "val" and "acc" in r]
        step = max([state.steps, *(int(r["step"]) for r in rows if "step" in r)])
        shown = [f"{acc:.1f} at {at:,}" for at, acc in (val[-1], max(val, key=lambda v: v[1]))] if val else ["—"] * 2
        lines.append(f"| {run.rel_dir} | {step:,} / {planned[run.rel_dir]:,} | {shown[0]} | {shown[1]} |")
    if not lines:
        return []
    return ["Training now:", "", "| run | steps | validation, latest (%) | best (%) |", "|---|---|---|---|", *lines]


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
