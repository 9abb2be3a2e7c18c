"""The tables in markdown: the rows' cells, the paper's numbers beside ours, the runs that did not finish, the
configurations compared and their sweeps, and where every run came from."""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from antisym.config import flatten
from antisym.results.paper import (
    BASELINES,
    CAPTIONS,
    COLUMNS,
    DATASETS,
    METHODS,
    OTHER_ROWS,
    PAPER,
    PaperRow,
    preset_file,
)
from antisym.results.rows import (
    Candidate,
    RowResult,
    Run,
    full_length,
    method_of,
)
from antisym.results.sensitivity import sensitivity_lines
from antisym.training.rundir import (
    Status,
    recorded_segments,
)


def command_line() -> str:
    """The command that is running, as typed: `python -m <module> ...` for a module run with -m (its argv[0] is the
    absolute path of its __main__.py, which would name this machine's folders in committed tables)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = f"python -m {spec.name.removesuffix('.__main__')}" if spec else Path(sys.argv[0]).name
    return " ".join([prog, *sys.argv[1:]]) if sys.argv[0] else "antisym.results"


def shown(path: str | Path, base: Path) -> str:
    """A run's path as the tables print it: relative to the folder they are written to, so that committed tables
    name the same directories on every clone (and a lane's absolute paths do not leak into them)."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def progress_cell(row: RowResult) -> str:
    """How far an unfinished row is, never a partial accuracy: its paper-length runs' progress towards the row's
    iterations, and where several configurations train at that length, each one's furthest run (a new setup's run
    starts behind an old one's); where it has none, its screens' progress labelled as theirs, towards their own
    shorter length (a 5,000-iteration screen at 3,982 is not 3,982 of the paper's 50,000 done)."""
    runs = row.on_task
    if not runs:
        return "not run on the paper's task (only on other data settings)"
    full = [[r for r in c.runs if full_length(r)] for c in row.on_task_candidates]
    furthest = sorted((max(f, key=lambda r: r.steps) for f in full if f), key=lambda r: r.steps, reverse=True)
    if furthest:
        cell = f"{furthest[0].steps:,} of {row.iterations:,} iterations"
        each = ", ".join(f"{r.path.parent.name}/{r.path.name} at {r.steps:,}" for r in furthest)
        return cell + (f"; the furthest run of each configuration: {each}" if len(furthest) > 1 else "")
    done, length = max((r.steps, r.max_steps) for r in runs)
    return f"screen: {done:,} of {length:,} iterations"


def chosen_cell(row: RowResult, cand: Candidate) -> str:
    """✓ for the row's configuration; for one that answers another question (other data settings than the paper's,
    an evaluation on part of the splits, other data beside runs on the official release's), why it never is."""
    off = cand.off_task(row.task)
    why = [f"{k}={v}, the paper's {row.task[k]}" for k, v in off.items() if k in row.task]
    if "eval_limit" in off:
        why.append(f"eval_limit={off['eval_limit']}: evaluated on that many examples, not the whole splits")
    if cand.other_data and any(not c.other_data for c in row.candidates):
        why.append("other data than the official release's (a subset, or altered examples), beside runs on it")
    if why:
        return "never: " + "; ".join(why)
    return "✓" if cand is row.chosen else ""


def acc_cell(row: RowResult) -> str:
    if row.chosen is None:
        lead = row.leading
        if lead is None:
            return progress_cell(row) if row.runs else "not run"
        test = f", test {pct(lead.get('test_acc'))}" if lead.get("test_acc") is not None else ""
        of = lead.max_steps
        return (f"*unfinished* ({progress_cell(row)}); best so far: val {pct(lead.get('best_val_acc'))}{test} "
                f"({lead.path.parent.name}/{lead.path.name}, at {lead.steps:,} of its {of:,} "
                "iterations)")  # fmt: skip
    mean, std = row.test_mean, row.chosen.std("test_acc")
    return f"{pct(mean)} ± {pct(std)}" if std is not None else f"{pct(mean)} (1 seed)"


def seeds_cell(row: RowResult) -> str:
    if row.chosen is None:
        return "0"
    n = len(row.chosen.results)
    diverged = sum(r.status == Status.DIVERGED for r in row.chosen.results)
    missing = row.chosen.seeds_without_result
    twins = len(row.chosen.duplicates)
    extra = [f"{diverged} diverged"] * bool(diverged) + [f"{missing} without result"] * bool(missing)
    extra += [f"{twins} duplicate director{'y' if twins == 1 else 'ies'} counted once"] * bool(twins)
    return f"{n}" + (f" ({', '.join(extra)})" if extra else "")


def fmt_delta(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}"


def fmt_ref(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def method_line(ref: PaperRow, name: str, rows: Sequence[RowResult]) -> str:
    """One method of the summary table: ours, the reference number and Δ per column, then units and params."""
    cells = []
    units, params = set(), []
    for row in rows:
        delta = "— (short)" if row.short and row.paper_acc is not None else fmt_delta(row.delta)
        cells += [acc_cell(row), fmt_ref(row.paper_acc), delta]
        if row.chosen:
            units.add(row.chosen.hidden_size)
            params.append(f"{row.params} ({COLUMNS[row.dataset]})")
    ours_units = "/".join(str(u) for u in sorted(units)) or "—"
    if len({p.split(" (")[0] for p in params}) == 1:  # the same count in both columns: say it once
        params = [params[0].split(" (")[0]]
    return (
        f"| {name} | "
        + " | ".join(cells)
        + f" | {ours_units} / {ref.units} | {'; '.join(params) or '—'} / {ref.params} |"
    )


def trained_under(run: Run, key: str) -> list[str]:
    """The distinct values of `key` (git_commit, device) over a run's segments, in order; `not recorded` for a
    segment of a checkpoint written before segments named their source."""
    return list(dict.fromkeys(str(s.get(key) or "not recorded") for s in recorded_segments(run.summary or {})))


def describe_segments(run: Run) -> str:
    """runs.csv's account of what trained a run: "from 0: <commit> on <device>; from 3790: ..."."""
    return "; ".join(
        f"from {s.get('from_step')}: {str(s.get('git_commit') or 'not recorded')[:10]} on "
        f"{s.get('device') or 'not recorded'}"
        for s in recorded_segments(run.summary or {})
    )


def runs_provenance(runs: Sequence[Run]) -> list[str]:
    """The lines under a table saying which commits, devices and dates its runs came from; a run resumed under other
    code or on another machine counts under each."""
    commits = Counter(c for r in runs for c in trained_under(r, "git_commit"))
    devices = Counter(d for r in runs for d in trained_under(r, "device"))
    started = sorted(str(r.get("started_at")) for r in runs if r.get("started_at"))
    finished = sorted(str(r.get("finished_at")) for r in runs if r.get("finished_at"))

    def counted(c: Counter) -> str:
        return ", ".join(f"`{k}` ({v} run{'s' * (v != 1)})" for k, v in c.most_common()) or "—"

    return [
        f"- commits: {counted(commits)}",
        f"- devices: {counted(devices)}",
        f"- dates: started {started[0] if started else '—'} … finished {finished[-1] if finished else '—'}",
    ]


def table_header(cols: Sequence[str], reference: str, whose: str) -> list[str]:
    """Header of a method-by-dataset table: ours, the reference number and the difference per column."""
    columns = " | ".join(f"{COLUMNS[c]} (ours) | {COLUMNS[c]} ({reference}) | Δ" for c in cols)
    return [
        f"| method | {columns} | # units (ours / {whose}) | # params (ours / {whose}) |",
        "|---|" + "---|---|---|" * len(cols) + "---|---|",
    ]


def unfinished_detail(run: Run) -> str:
    """Why a run has no final result: where it diverged, or how it stopped and what resuming it does."""
    if run.status == Status.DIVERGED:
        reason = run.get("diverged_reason") or "non-finite loss"
        best = run.get("best_step")
        kept = f"best val checkpoint at step {best:,}" if best is not None else "no validation before it: no checkpoint"
        return f"{reason} at step {run.get('diverged_at_step')}; {kept}"
    if run.status == Status.RUNNING:
        return "training now (a live process holds its lock): its record moves as it trains"
    stop = run.get("stop_reason") or "killed: no clean stop recorded"
    return f"{run.status} ({stop}): resumes from its last checkpoint"


def render_table(
    table: int,
    rows: Sequence[RowResult],
    runs: Sequence[Run],
    roots: Sequence[Path],
    quick: bool,
    note: str = "",
    skipped: Sequence[tuple[Path, str]] = (),
    base: Path = Path("."),
    ledger: Sequence[tuple[str, str]] = (),
) -> str:
    """Table <table> in markdown, section by section; paths are printed relative to `base`, the folder the table is
    written to; `ledger`: the (model, dataset) rows of the gap ledger written beside it."""
    by_model: dict[str, list[RowResult]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
    multi = [row for row in rows if len(row.candidates) > 1]
    sections = [
        _preamble(table, rows, runs, roots, quick, note, base),
        _beside_the_paper(table, by_model, ledger),
        _successors(table, by_model),
        _other_cells(rows),
        _per_row(rows),
        _not_finished(rows, runs, base),
        _not_counted(rows, skipped, base),
        _compared(multi),
        sensitivity_lines(rows),
        _provenance(runs),
    ]
    return "\n".join(line for section in sections for line in section)


def _preamble(
    table: int,
    rows: Sequence[RowResult],
    runs: Sequence[Run],
    roots: Sequence[Path],
    quick: bool,
    note: str,
    base: Path,
) -> list[str]:
    """Notes on what kind of table this is (QUICK, no runs, short rows), its title and how it was built."""
    out = [f"> **{note}**", ""] if note else []
    if quick:
        out += [
            "> **QUICK smoke run** — tiny iteration counts, hidden sizes and seeds, to check the pipeline end to",
            f"> end. These numbers say nothing about the paper; the real tables: results/campaign/table{table}.md (the",
            "> committed records) and results/local/ (`make reproduce-table`).",
            "",
        ]
    if not runs:
        where = ", ".join(f"`{shown(p, base)}`" for p in roots)
        out += [f"> **No run directories found under {where}: this table holds the paper's numbers only.**", ""]
    out += [f"# Table {table}{' (QUICK)' if quick else ''}: {CAPTIONS[table]}", ""]
    if any(r.short for r in rows) and not quick:
        out += [
            "> **Warning:** some rows below ran fewer iterations than the paper (successors: than their preset; see",
            "> *iterations*); they are not full-length results.",
            "",
        ]
    out += [
        f"Rebuilt by `python -m antisym.results` from {len(runs)} run director{'y' if len(runs) == 1 else 'ies'} "
        f"under {', '.join(f'`{shown(p, base)}`' for p in roots)} on {time.strftime('%Y-%m-%d %H:%M:%S %z')}.",
        "Ours: test accuracy (%) at each run's best-validation checkpoint, mean ± sample std over seeds, for the",
        "configuration of the row with the highest mean validation accuracy (test accuracy never enters the choice)",
        "among those trained on the task as the paper states it (docs/tables.md). Δ = ours − paper, in points.",
        "",
    ]
    return out


def _beside_the_paper(
    table: int, by_model: Mapping[str, list[RowResult]], ledger: Sequence[tuple[str, str]]
) -> list[str]:
    """The paper's rows and ours beside them, the rows it quotes, the gap ledger's links and the paper's notes."""
    cols = DATASETS[table]
    out = ["## Beside the paper", "", *table_header(cols, "paper", "paper")]
    for model, paper_row in PAPER[table].items():
        out.append(method_line(paper_row, paper_row.method + ("¹" if paper_row.note else ""), by_model[model]))
    for other in OTHER_ROWS[table]:
        cells = []
        for c in cols:
            cells += ["not run", f"{other.acc[c]:.1f}", "—"]
        out.append(f"| {other.method} | " + " | ".join(cells) + f" | — / {other.units} | — / {other.params} |")
    if ledger:
        links = ", ".join(f"[{METHODS[m]}, {COLUMNS[d]}](gap.md#{m}-{d})" for m, d in ledger if d in cols)
        out += ["", f"Why rows fall short of the paper, and each choice it leaves open tried alone: the gap ledger, "
                    f"[gap.md](gap.md) ({links})."]  # fmt: skip
    notes = [p.note for p in PAPER[table].values() if p.note]
    if notes:
        out += ["", f"¹ {notes[0]}."]
    if table == 2:
        out += [
            "",
            "The paper's # params column is for pixel-by-pixel CIFAR-10 (m=3); noise padded (m=96) models have "
            "more input weights (our counts show both).",
        ]
    return out


def _successors(table: int, by_model: Mapping[str, list[RowResult]]) -> list[str]:
    """The later cells beside their authors' reported numbers."""
    cols = DATASETS[table]
    out: list[str] = []
    successors = [m for m in BASELINES[table] if m in by_model]
    if successors:
        out += [
            "",
            "## Beside the paper: successors",
            "",
            "Later cells trained with their authors' settings (conf/experiment/baselines/), chosen like the rows",
            "above. *reported*: the test accuracy reported for them, each labelled by its source below (the",
            "authors' README or log, or a later paper quoting them); units and params after the slash: the authors'",
            "code's, at the preset's column. Their iterations are their presets' own, not the paper's.",
            "",
            *table_header(cols, "reported", "authors'"),
        ]
        refs = {m: BASELINES[table][m] for m in successors}
        out += [method_line(ref, ref.method, by_model[m]) for m, ref in refs.items()]
        out += ["", *(f"- {ref.method}, reported: {ref.note}." for ref in refs.values())]
    return out


def _other_cells(rows: Sequence[RowResult]) -> list[str]:
    """Cells that are neither the paper's nor the successors'."""
    out: list[str] = []
    others = [row for row in rows if row.reference is None]
    if others:
        out += [
            "",
            "## Other cells",
            "",
            "Cells that are neither the paper's rows nor the successors (your own, by `model._target_`), on the",
            "paper's tasks as it states them, each configuration chosen like the rows above. Their iterations are",
            "set against the paper's: a shorter run is marked **short**, and nothing here is a difference from the",
            "paper's numbers.",
            "",
            "| cell | task | ours | seeds | val acc | params | iterations (ours / paper) | configuration chosen |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in others:
            chosen = row.chosen
            out.append(
                f"| {row.method} | {COLUMNS[row.dataset]} | {acc_cell(row)} | {seeds_cell(row)} | "
                f"{pct(chosen.mean('best_val_acc')) if chosen else '—'} | {row.params} | "
                f"{row.steps} / {row.iterations or 0:,}{' **short**' if row.short else ''} | "
                f"{chosen.label if chosen else '—'} |"
            )
    return out


def _per_row(rows: Sequence[RowResult]) -> list[str]:
    """Every row: preset, ours, seeds, the paper's, Δ, size, iterations and the configuration chosen."""
    out = [
        "",
        "## Per row",
        "",
        "| method | task | preset | ours | seeds | paper | Δ | val acc | units | params | iterations (ours / paper) "
        "| configuration chosen | configurations tried |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        chosen = row.chosen
        ref = fmt_ref(row.paper_acc) + (" (reported)" if row.baseline and row.paper_acc is not None else "")
        iterations = "—" if row.iterations is None else f"{row.iterations:,}"
        if row.baseline and row.iterations is not None:  # a successor's own schedule, not the paper's
            iterations += " (preset)" if preset_file(row.model, row.dataset) else " (configured)"
        out.append(
            f"| {row.method} | {COLUMNS[row.dataset]} | {row.preset} | {acc_cell(row)} | "
            f"{seeds_cell(row)} | {ref} | {fmt_delta(row.delta)} | "
            f"{pct(chosen.mean('best_val_acc')) if chosen else '—'} | {chosen.hidden_size if chosen else '—'} | "
            f"{row.params} | {row.steps} / {iterations}{' **short**' if row.short else ''} | "
            f"{chosen.label if chosen else '—'} | {len(row.candidates)} |"
        )
    return out


def _not_finished(rows: Sequence[RowResult], runs: Sequence[Run], base: Path) -> list[str]:
    """The runs that diverged, failed or did not finish, with why."""
    bad = [r for row in rows for r in row.not_completed]
    out = ["", "## Runs that diverged, failed or did not finish", ""]
    if bad:
        out += ["| row | seed | status | steps | detail | run directory |", "|---|---|---|---|---|---|"]
        for r in bad:
            detail = str(r.get("error") or unfinished_detail(r)).replace("|", "\\|").replace("\n", " ")[:200]
            steps = f"{r.steps:,} / {r.max_steps:,}"
            out.append(
                f"| {method_of(r.model)}, {COLUMNS[r.dataset]} | {r.seed} | {r.status} | {steps} | {detail} "
                f"| `{shown(r.path, base)}` |"
            )
    elif runs:
        out.append("None: every run behind this table completed.")
    else:
        out.append("No runs: nothing has been trained for this table yet.")
    return out


def _not_counted(rows: Sequence[RowResult], skipped: Sequence[tuple[Path, str]], base: Path) -> list[str]:
    """Run directories counted once (a copy of a seed) or not at all (unreadable), with why."""
    out: list[str] = []
    twins = [(r, kept) for row in rows for c in row.candidates for r, kept in c.duplicates]
    if twins or skipped:
        out += ["", "## Run directories not counted", "", "| run directory | why |", "|---|---|"]
        out += [f"| `{shown(r.path, base)}` | seed {r.seed} of the same configuration as `{shown(kept.path, base)}`, "
                "counted once |"
                for r, kept in twins]  # fmt: skip
        out += [f"| `{shown(path, base)}` | {why.replace(str(path), shown(path, base)).replace('|', '/')} |"
                for path, why in skipped]  # fmt: skip
    return out


def _compared(multi: Sequence[RowResult]) -> list[str]:
    """The configurations each row compared, and their sweeps as grids."""
    out: list[str] = []
    if multi:
        out += [
            "",
            "## Configurations compared (by mean validation accuracy)",
            "",
            "| row | configuration | runs with a result | val acc | test acc | chosen |",
            "|---|---|---|---|---|---|",
        ]
        for row in multi:
            for cand in sorted(row.candidates, key=lambda c: -(c.mean("best_val_acc") or -1.0)):
                out.append(
                    f"| {row.method}, {COLUMNS[row.dataset]} | {cand.label} | "
                    f"{len(cand.results)}/{len(cand.runs)} | {pct(cand.mean('best_val_acc'))} | "
                    f"{pct(cand.mean('test_acc'))} | {chosen_cell(row, cand)} |"
                )

    grids = [line for row in multi for line in sweep_grid(row)]
    if grids:
        out += ["", "## Sweeps (best validation accuracy %, mean over seeds)", "", *grids]
    return out


def _provenance(runs: Sequence[Run]) -> list[str]:
    """Where the runs came from, and the command that wrote the table."""
    return [
        "",
        "## Provenance",
        "",
        *runs_provenance(runs),
        f"- generated: {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by `{command_line()}`",
        "",
    ]


def hashable(value: Any) -> Any:
    """A setting's value as a key (a list, e.g. trainer.lr_decay_steps, as a tuple); `as_written` undoes it."""
    return tuple(value) if isinstance(value, list) else value


def as_written(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def grid_value(value: Any) -> str:
    """A setting's value in a sweep grid: `default` where a configuration lacks the key, a list as written."""
    return "default" if value is None else str(as_written(value))


def sweep_grid(row: RowResult) -> list[str]:
    """A row's configurations as the grid of the keys that vary between them: the values of the one with the most
    (a length never) as columns, the others' as rows; a cell is the mean best validation accuracy (seeds in
    brackets), ✗ where a run diverged, · where the point was not trained. Nothing where no key varies."""
    settings = [(c, {k: hashable(v) for k, v in flatten(c.runs[0].knobs).items() if k != "trainer.eval_every"})
                for c in row.candidates]  # fmt: skip
    keys = sorted(k for k in set().union(*(s for _, s in settings)) if len({repr(s.get(k)) for _, s in settings}) > 1)
    if not keys:
        return []
    values = {k: sorted({s.get(k) for _, s in settings}, key=repr) for k in keys}
    swept = [k for k in keys if not k.endswith("max_steps")] or keys  # a length is a row's label, not a column
    inner = max(swept, key=lambda k: (len(values[k]), k))  # the key with the most values: the columns
    outer = [k for k in keys if k != inner]
    cells: dict[tuple, str] = {}
    for cand, s in settings:
        runs = [r for r in cand.runs if r.get("best_val_acc") is not None]
        mean = statistics.fmean(float(r.get("best_val_acc")) for r in runs) if runs else None
        mark = " ✗" if any(r.status == Status.DIVERGED for r in cand.runs) else ""
        cells[tuple(s.get(k) for k in (*outer, inner))] = f"{pct(mean)} ({len(runs)}){mark}"
    head = ", ".join(k.split(".", 1)[1] if "." in k else k for k in outer) or " "
    lines = [f"{row.method}, {COLUMNS[row.dataset]}:", "",
             f"| {head} \\ {inner.split('.', 1)[-1]} | "
             + " | ".join(grid_value(v) for v in values[inner]) + " |",
             "|---|" + "---|" * len(values[inner])]  # fmt: skip
    for combo in itertools.product(*(values[k] for k in outer)):
        if not any(key[: len(outer)] == combo for key in cells):
            continue
        label = ", ".join(grid_value(v) for v in combo) or "all"
        lines.append(f"| {label} | " + " | ".join(cells.get((*combo, v), "·") for v in values[inner]) + " |")
    return [*lines, ""]
