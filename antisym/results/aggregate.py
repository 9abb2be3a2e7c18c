"""Rebuild the paper's tables from run directories: python -m antisym.results [--runs DIR ...] [--out DIR].

Every directory below the given roots that holds a run (summary.json, config.yaml or Hydra's .hydra/) is read. A run
belongs to the table row of its (model, dataset); within a row, runs are grouped by configuration (every model,
dataset and optimizer key and the trainer keys that change training, i.e. all but the seed and bookkeeping), and the
configuration with the highest mean best-validation accuracy is the one reported. Test accuracy (at each run's
best-validation checkpoint) never enters the choice. Runs that diverged, failed or never finished are listed, not
dropped: a diverged run that reached a validation checkpoint still counts with that checkpoint's test accuracy.
Runs of the successor cells (paper.BASELINES) on a table's datasets are rows after the paper's, chosen the same way,
beside their authors' reported numbers and measured against their own preset's iterations. A run of a task with no
column in the tables (one given by `dataset._target_`) is listed in runs.csv only.

Writes <out>/table1.md, <out>/table2.md, <out>/runs.csv (one line per run), <out>/rows.csv (one line per row) and,
beside full tables, <out>/gap.md, the gap ledger (antisym.results.gap).
Run directories are named relative to <out>, as a markdown link would be. Which run answers each row is rows.py's,
how the tables read render.py's; this module writes the files.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from antisym.results.curves import plot_gap_curves, plot_learning_curves
from antisym.results.gap import ledger_rows, load_spec, render_gap
from antisym.results.paper import (
    preset_file,
    preset_name,
    reference_iterations,
)
from antisym.results.render import (
    command_line,
    describe_segments,
    render_table,
    shown,
)
from antisym.results.rows import (
    RowResult,
    Run,
    build_rows,
    scan_runs,
)
from antisym.training.rundir import atomic_write_text

RUNS_CSV_FIELDS = (
    "table",
    "preset",
    "model",
    "dataset",
    "seed",
    "status",
    "selected",
    "steps",
    "max_steps",
    "paper_iterations",
    "best_val_acc",
    "best_step",
    "test_acc",
    "final_test_acc",
    "params",
    "hidden_size",
    "config",
    "git_commit",
    "device",
    "segments",
    "started_at",
    "finished_at",
    "wall_time_s",
    "quick",
    "error",
    "run_dir",
)
ROWS_CSV_FIELDS = (
    "table",
    "method",
    "dataset",
    "model",
    "preset",
    "config",
    "n_seeds",
    "n_runs",
    "test_acc_mean",
    "test_acc_std",
    "val_acc_mean",
    "paper_acc",
    "delta",
    "units",
    "paper_units",
    "params",
    "paper_params",
    "steps",
    "paper_iterations",
    "n_configs",
    "not_completed",
    "reference",
)


def run_record(run: Run, selected: bool, base: Path) -> dict[str, Any]:
    return {
        "table": run.table,
        "preset": run.preset,
        "model": run.model,
        "dataset": run.dataset,
        "seed": run.seed,
        "status": run.status,
        "selected": int(selected),
        "steps": run.get("steps"),
        "max_steps": run.knobs["trainer"].get("max_steps"),
        "paper_iterations": reference_iterations(run.model, run.dataset),
        "best_val_acc": run.get("best_val_acc"),
        "best_step": run.get("best_step"),
        "test_acc": run.get("test_acc"),
        "final_test_acc": run.get("final_test_acc"),
        "params": run.get("params"),
        "hidden_size": run.cfg["model"].get("hidden_size"),
        "config": run.label,
        "git_commit": run.get("git_commit"),
        "device": run.get("device"),
        "segments": describe_segments(run),
        "started_at": run.get("started_at"),
        "finished_at": run.get("finished_at"),
        "wall_time_s": run.get("wall_time_s"),
        "quick": int(run.quick),
        "error": run.get("error"),
        "run_dir": shown(run.path, base),
    }


def row_record(row: RowResult) -> dict[str, Any]:
    paper = row.reference
    chosen = row.chosen
    return {
        "table": row.table,
        "method": row.method.strip("`"),
        "dataset": row.dataset,
        "model": row.model,
        "preset": preset_name(row.model, row.dataset) if preset_file(row.model, row.dataset) else None,
        "config": chosen.label if chosen else None,
        "n_seeds": len(chosen.results) if chosen else 0,
        "n_runs": len(row.runs),
        "test_acc_mean": row.test_mean,
        "test_acc_std": chosen.std("test_acc") if chosen else None,
        "val_acc_mean": chosen.mean("best_val_acc") if chosen else None,
        "paper_acc": None if row.paper_acc is None else round(row.paper_acc / 100, 4),
        "delta": None if row.delta is None else round(row.delta / 100, 6),
        "units": chosen.hidden_size if chosen else None,
        "paper_units": paper.units if paper else None,
        "params": row.params if chosen else None,
        "paper_params": paper.params if paper else None,
        "steps": row.steps if chosen else None,
        "paper_iterations": row.iterations,
        "n_configs": len(row.candidates),
        "not_completed": len(row.not_completed),
        "reference": f"reported by the authors: {paper.note}" if row.baseline else "the paper" if paper else None,
    }


def write_csv(path: Path, fieldnames: Sequence[str], records: Iterable[Mapping[str, Any]]) -> None:
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(fieldnames))
    writer.writeheader()
    for rec in records:
        writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in fieldnames})
    atomic_write_text(path, text.getvalue())


class QuickRunsError(ValueError):
    pass


def write_tables(
    roots: Sequence[str | Path],
    out_dir: str | Path,
    tables: Sequence[int] = (1, 2),
    quick: bool = False,
    note: str = "",
) -> dict[int, list[RowResult]]:
    """Read the runs under roots and write table<N>.md, runs.csv and rows.csv into out_dir; returns the rows."""
    roots = [Path(r) for r in roots]
    runs, skipped = scan_runs(roots)
    for path, why in skipped:
        print(f"antisym.results: {path} not counted: {why}", file=sys.stderr)
    if not quick and any(r.quick for r in runs):
        raise QuickRunsError(
            "QUICK runs (config quick=true) found under "
            + ", ".join(map(str, roots))
            + ": they never go into the full tables. Pass --quick (writes results/local/quick/) or point --runs "
            "elsewhere."
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Both tables' rows always go into the CSVs (so TABLE=1 does not drop Table 2's runs); the markdown is written
    # for the tables asked for.
    result = {table: build_rows([r for r in runs if r.table == table], table) for table in (1, 2)}
    spec = load_spec()
    ledger = [] if quick else ledger_rows(runs, spec)
    for table in tables:
        mine = [r for r in runs if r.table == table]
        anchors = [(row.model, row.dataset) for row in ledger]
        text = render_table(table, result[table], mine, roots, quick, note, skipped, out_dir, anchors)
        if plot_learning_curves(result[table], table, out_dir):
            text += (
                f"\nLearning curves: `table{table}_curves.png` (validation accuracy against iteration per row, mean "
                "over seeds with a min-max band, the seeds and how far each reaches in the legend; dashed: the test "
                "accuracy reported, the paper's or a successor's authors').\n"
            )
        atomic_write_text(out_dir / f"table{table}.md", text)
    if ledger:
        by_row = {(row.model, row.dataset): row for rows in result.values() for row in rows}
        text = render_gap(ledger, by_row, spec, len(runs), out_dir, command_line())
        if plot_gap_curves(ledger, out_dir):
            text += (
                "\nCurves: `gap_curves.png`, per row its open choices' validation curves (mean over seeds, min-max "
                "band) beside the setup's (dashed), cut where the candidates stop; the decision step dotted; a budget "
                "run in a panel of its own.\n"
            )
        atomic_write_text(out_dir / "gap.md", text)
    selected = {id(r) for rows in result.values() for row in rows if row.chosen for r in row.chosen.results}
    write_csv(out_dir / "runs.csv", RUNS_CSV_FIELDS, (run_record(r, id(r) in selected, out_dir) for r in runs))
    write_csv(out_dir / "rows.csv", ROWS_CSV_FIELDS, (row_record(row) for rows in result.values() for row in rows))
    return result
