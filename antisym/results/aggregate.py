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
Run directories are named relative to <out>, as a markdown link would be.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from antisym.checks import import_class
from antisym.config import experiment_settings, flatten
from antisym.data.files import CIFAR_BATCH_SIZE, MNIST_SIZES
from antisym.data.tasks import TASKS
from antisym.errors import UserError
from antisym.results.curves import plot_learning_curves
from antisym.results.gap import ledger_rows, load_spec, render_gap
from antisym.results.paper import (
    BASELINES,
    CAPTIONS,
    COLUMNS,
    DATASETS,
    ITERATIONS,
    METHODS,
    OTHER_ROWS,
    PAPER,
    PAPER_TASK,
    TABLE_OF_DATASET,
    PaperRow,
    baseline_rows,
    preset_file,
    preset_name,
    reference_iterations,
    table_rows,
)
from antisym.results.sensitivity import sensitivity_lines
from antisym.training.rundir import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    FINISHED,
    METRICS_FILE,
    SUMMARY_FILE,
    SUPERSEDED,
    Status,
    effective_status,
    load_config,
    read_metrics,
    read_summary,
    recorded_segments,
)
from antisym.training.runs import compose

OFFICIAL_SIZES = {  # (train + validation, test) examples of each task's official release
    "mnist": (MNIST_SIZES[True], MNIST_SIZES[False]),
    "pmnist": (MNIST_SIZES[True], MNIST_SIZES[False]),
    "cifar10": (5 * CIFAR_BATCH_SIZE, CIFAR_BATCH_SIZE),
    "noisy_cifar10": (5 * CIFAR_BATCH_SIZE, CIFAR_BATCH_SIZE),
}
SKIP_DIRS = {".hydra", ".submitit", CHECKPOINT_DIR, "wandb", SUPERSEDED}
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


# Keys a paper row's label names only where a run set them (their defaults are left out of the knobs: ADDED_KEYS).
ADDED_OPTIMIZER_KEYS = ("initial_accumulator_value",)
PAPER_MODEL_KEYS = ("_target_", "name", "hidden_size", "impl", "precision", "eps", "gamma", "init_std")  # named above


def run_knobs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What defines a configuration, by section: the experiment settings (antisym.config) except the seed, so that
    runs differing only in seed form one configuration of a row."""
    knobs: dict[str, dict[str, Any]] = {"model": {}, "dataset": {}, "optimizer": {}, "trainer": {}}
    for key, value in experiment_settings(cfg).items():
        section, _, name = key.partition(".")
        if section in knobs and key != "trainer.seed":
            knobs[section][name] = value
    return knobs


@functools.cache
def preset_dataset(preset: str) -> dict[str, Any] | None:
    """The dataset settings `preset` composes to; None without a preset or for one that no longer composes."""
    from hydra.errors import HydraException

    if not preset:
        return None
    try:
        return run_knobs(compose(preset, []))["dataset"]
    except HydraException:
        return None


def describe(knobs: Mapping[str, Any], data_changes: Mapping[str, Any] | None = None) -> str:
    """A short human label of a configuration: optimizer, lr, the model's knobs, the data settings changed from the
    preset's (another task, or another reading of the paper's) and anything unusual."""
    model, opt, trainer = knobs["model"], knobs["optimizer"], knobs["trainer"]
    name = str(opt.get("_target_", "?")).rsplit(".", 1)[-1]
    parts = [f"{name} lr={opt.get('lr')}"]
    if opt.get("momentum"):
        parts.append(f"momentum={opt['momentum']}")
    parts += [f"{k}={v}" for k, v in sorted(opt.items()) if k in ADDED_OPTIMIZER_KEYS]
    if row_model(model) in PAPER[1].keys() | PAPER[2].keys():
        if row_model(model) != "lstm":
            parts.append(f"eps={model.get('eps')} gamma={model.get('gamma')}")
        parts.append(f"sigma_w={model.get('init_std')}")
        parts += [f"{k}={v}" for k, v in sorted(model.items()) if k not in PAPER_MODEL_KEYS]
    else:  # a successor or your own cell: every knob it has
        parts += [f"{k}={v}" for k, v in sorted(model.items()) if k not in ("_target_", "name", "hidden_size", "impl")]
    if trainer.get("grad_clip"):
        parts.append(f"clip={trainer['grad_clip']}")
    if trainer.get("lr_schedule", "constant") != "constant":
        parts.append(f"schedule={trainer['lr_schedule']}")
    if trainer.get("batch_size") != 128:
        parts.append(f"batch={trainer.get('batch_size')}")
    if trainer.get("max_steps") != reference_iterations(row_model(model), row_dataset(knobs["dataset"])):
        parts.append(f"steps={trainer.get('max_steps')}")
    parts += [f"{k}={v}" for k, v in (data_changes or {}).items()]
    return " ".join(parts)


@functools.cache
def _row_of_class() -> dict[type, str]:
    """The classes behind the tables' rows (the built-in models and the successor baselines) -> their row."""
    from antisym.models import BUILTIN
    from antisym.models.cornn import CoRNNClassifier
    from antisym.models.lipschitz import LipschitzRNNClassifier

    classes = {**BUILTIN, "cornn": CoRNNClassifier, "lipschitz": LipschitzRNNClassifier}
    return {cls: name for name, cls in classes.items()}


def method_of(model: str) -> str:
    """A row's name: the paper's method, a successor's, or for another cell its class path."""
    return METHODS.get(model, f"`{model}`")


def package_class(target: str) -> type | None:
    """The class a record's `_target_` names, imported only from this package: a record is data, and a path to any
    other module (a user's cell, or a module shipped beside a record) names no row of the paper's tables, so it is
    never imported to find out (importing it would run its code)."""
    if not target.startswith(f"{__package__.split('.')[0]}."):
        return None
    try:
        return import_class(target)
    except Exception:  # renamed or removed since the record was written: no row either
        return None


def row_model(model_cfg: Mapping[str, Any]) -> str:
    """The row a run belongs to, by the class it trained (`_target_`), never by the free label `model.name` (an
    AntisymmetricRNN run named "gated" is an AntisymmetricRNN run). A class that is no row of the tables (your own
    cell) keeps its dotted path and is a row of the tables' "Other cells"; a config from before `_target_` existed
    names a built-in model by `name`."""
    target = model_cfg.get("_target_")
    if target is None:
        return str(model_cfg.get("name"))
    cls = package_class(str(target))
    return _row_of_class().get(cls, str(target)) if cls else str(target)


def row_dataset(dataset_cfg: Mapping[str, Any]) -> str:
    """The column a run belongs to, by the class of its task: a paper's task by its name, any other task by its
    `_target_` (a task with no column of the tables: its runs are listed in runs.csv, in no table)."""
    target = dataset_cfg.get("_target_")
    if target is None:
        return str(dataset_cfg.get("name"))
    cls = package_class(str(target))
    return next((name for name, task in TASKS.items() if task is cls), str(target))


@dataclass
class Run:
    path: Path
    cfg: dict[str, Any]
    summary: dict[str, Any] | None

    @property
    def status(self) -> str:
        return effective_status(self.path, self.summary)

    @property
    def model(self) -> str:
        return row_model(self.cfg["model"])

    @property
    def dataset(self) -> str:
        return row_dataset(self.cfg["dataset"])

    @property
    def table(self) -> int | None:
        return TABLE_OF_DATASET.get(self.dataset)

    @property
    def seed(self) -> int:
        return int(self.cfg.get("trainer", {}).get("seed", 0))

    @property
    def preset(self) -> str:
        return str((self.cfg.get("preset") or {}).get("name", ""))

    @property
    def quick(self) -> bool:
        return bool(self.cfg.get("quick", False))

    @property
    def knobs(self) -> dict[str, Any]:
        return run_knobs(self.cfg)

    @property
    def key(self) -> str:
        return json.dumps(self.knobs, sort_keys=True, default=str)

    @property
    def data_changes(self) -> dict[str, Any]:
        """The dataset settings this run changed from its preset's (max_steps aside: the label's steps say it)."""
        preset = preset_dataset(self.preset) or {}
        mine = self.knobs["dataset"]
        return {k: v for k, v in sorted(mine.items()) if k != "max_steps" and preset.get(k, v) != v}

    @property
    def label(self) -> str:
        return describe(self.knobs, self.data_changes)

    def get(self, key: str) -> Any:
        return (self.summary or {}).get(key)

    def curve(self, split: str = "val") -> dict[int, float]:
        """Accuracy by step on a split of metrics.jsonl: validation, or TEST_PROBE (trainer.test_every_eval)."""
        rows = read_metrics(self.path / METRICS_FILE)
        return {int(r["step"]): float(r["acc"]) for r in rows if r.get("split") == split and "step" in r}

    @property
    def has_result(self) -> bool:
        """Finished (completed or diverged) with a best-validation checkpoint, hence a test accuracy."""
        return self.status in FINISHED and self.get("best_val_acc") is not None and self.get("test_acc") is not None


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY_FILE).is_file() or (path / CONFIG_FILE).is_file() or (path / ".hydra").is_dir()


def read_run(path: Path) -> Run | str:
    """The run in a run directory, or why it cannot be counted (its config or summary missing or damaged, a damaged
    metrics line): such a directory is listed with the reason, never dropped silently."""
    try:
        cfg = load_config(path)
    except Exception as err:  # YAML that does not parse: a torn or hand-edited file
        return f"config.yaml cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    if cfg is None:
        return "no config.yaml"
    missing = [s for s in ("model", "dataset", "trainer") if not isinstance(cfg.get(s), Mapping)]
    if missing:
        return f"config.yaml has no {', '.join(missing)} section (emptied or truncated)"
    try:
        summary = read_summary(path)
        if (path / METRICS_FILE).is_file():
            read_metrics(path / METRICS_FILE)
    except UserError as err:
        return str(err).split(". ")[0]
    return Run(path, cfg, summary)


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


def scan_runs(roots: Iterable[str | Path]) -> tuple[list[Run], list[tuple[Path, str]]]:
    """Every run directory below the roots (a root may itself be a run directory), sorted by path; and the run
    directories that could not be read, each with why."""
    runs, skipped = [], []
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for dirpath, dirnames, _ in os.walk(root):
            path = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            if not is_run_dir(path):
                continue
            dirnames[:] = []  # runs do not nest
            run = read_run(path)
            if isinstance(run, Run):
                runs.append(run)
            else:
                skipped.append((path, run))
    return sorted(runs, key=lambda r: str(r.path)), sorted(skipped)


def collect_runs(roots: Iterable[str | Path]) -> list[Run]:
    """The readable runs of `scan_runs`."""
    return scan_runs(roots)[0]


def _progress(run: Run) -> tuple[bool, int]:
    return run.status == Status.COMPLETED, int(run.get("steps") or 0)


def on_other_data(run: Run) -> bool:
    """Trained or tested on other examples than the official release of its task: fewer (train + validation, test,
    as its summary counts them), or a data file whose recorded content is not the release's. A task this suite does
    not know the release of, or a record from before contents were recorded, is never taken for other data."""
    official = OFFICIAL_SIZES.get(run.dataset)
    sizes = [run.get(k) for k in ("train_size", "val_size", "test_size")]
    if official is not None and None not in sizes and (int(sizes[0]) + int(sizes[1]), int(sizes[2])) != official:
        return True
    return any(f.get("content") == "other" for f in (run.get("data_files") or {}).values())


def full_length(run: Run) -> bool:
    """Configured for the row's reference iterations (the paper's; a successor's preset's) or more."""
    return int(run.knobs["trainer"].get("max_steps", 0)) >= (reference_iterations(run.model, run.dataset) or 0)


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


@dataclass
class Candidate:
    """All runs of one configuration of one row (one per seed, ideally)."""

    key: str
    runs: list[Run] = field(default_factory=list)

    @property
    def results(self) -> list[Run]:
        """One run with a result per seed: two directories of one seed and configuration (a copy, a rerun elsewhere)
        count once, the one further along (completed first, then more steps, then the first by path)."""
        best: dict[int, Run] = {}
        for run in self.runs:
            if run.has_result and (run.seed not in best or _progress(run) > _progress(best[run.seed])):
                best[run.seed] = run
        return sorted(best.values(), key=lambda r: r.seed)

    @property
    def duplicates(self) -> list[tuple[Run, Run]]:
        """(run, the run of its seed that counts instead) for every result counted once."""
        counted = {r.seed: r for r in self.results}
        return [(r, counted[r.seed]) for r in self.runs if r.has_result and r is not counted[r.seed]]

    @property
    def seeds_without_result(self) -> int:
        return len({r.seed for r in self.runs} - {r.seed for r in self.results})

    @property
    def label(self) -> str:
        return self.runs[0].label

    def off_task(self, task: Mapping[str, Any]) -> dict[str, Any]:
        """The settings of `task` (the paper's statement of it: data settings, and `max_steps`, its iterations, which
        a run may fall short of but not exceed) that this configuration trained otherwise; and, for any row, an
        evaluation on part of the splits (`trainer.eval_limit`), whose accuracies mean something else."""
        data, trainer = self.runs[0].knobs["dataset"], self.runs[0].knobs["trainer"]
        off = {k: data[k] for k, v in task.items() if k != "max_steps" and k in data and data[k] != v}
        steps = int(trainer.get("max_steps", 0))
        if "max_steps" in task and steps > task["max_steps"]:
            off["max_steps"] = steps
        if trainer.get("eval_limit"):
            off["eval_limit"] = trainer["eval_limit"]
        return off

    @property
    def other_data(self) -> bool:
        """Trained or tested on other examples than the task's official release: fewer (data.allow_subset), or files
        whose content differs from it (altered pixels or labels)."""
        return any(on_other_data(r) for r in self.runs)

    @property
    def hidden_size(self) -> int:
        return int(self.runs[0].cfg["model"]["hidden_size"])

    def mean(self, key: str) -> float | None:
        values = [float(r.get(key)) for r in self.results]
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        values = [float(r.get(key)) for r in self.results]
        return statistics.stdev(values) if len(values) >= 2 else None


@dataclass
class RowResult:
    table: int
    model: str
    dataset: str
    runs: list[Run]
    candidates: list[Candidate]
    chosen: Candidate | None
    task: dict[str, Any] = field(default_factory=dict)  # the paper's data settings for this row (PAPER_TASK)

    @property
    def on_task_candidates(self) -> list[Candidate]:
        """The configurations trained on the row's task: what its progress and its curve come from."""
        return [c for c in self.candidates if not c.off_task(self.task)]

    @property
    def on_task(self) -> list[Run]:
        """The runs trained on the row's task: what its progress counts."""
        return [r for c in self.on_task_candidates for r in c.runs]

    @property
    def reference(self) -> PaperRow | None:
        """The paper's row, or a successor's with its authors' reported (unconfirmed) numbers; None for another cell."""
        return PAPER[self.table].get(self.model) or BASELINES[self.table].get(self.model)

    @property
    def baseline(self) -> bool:
        return self.model in BASELINES[self.table]

    @property
    def method(self) -> str:
        return method_of(self.model)

    @property
    def paper_acc(self) -> float | None:
        return self.reference.acc.get(self.dataset) if self.reference else None

    @property
    def test_mean(self) -> float | None:
        return self.chosen.mean("test_acc") if self.chosen else None

    @property
    def delta(self) -> float | None:
        """ours - the reference number, in points; None where either is missing or the runs are shorter than the
        reference's iterations (not comparable)."""
        if self.test_mean is None or self.paper_acc is None or self.short:
            return None
        return 100 * self.test_mean - self.paper_acc

    @property
    def leading(self) -> Run | None:
        """While no configuration is chosen: the on-task run with the best validation accuracy so far."""
        runs = [r for r in self.on_task if r.get("best_val_acc") is not None]
        return max(runs, key=lambda r: (float(r.get("best_val_acc")), int(r.get("steps") or 0)), default=None)

    @property
    def iterations(self) -> int | None:
        """reference_iterations, or for a successor without a preset the longest its runs were configured for."""
        own = (int(r.knobs["trainer"].get("max_steps", 0)) for r in self.runs)
        return reference_iterations(self.model, self.dataset) or max(own, default=None)

    @property
    def preset(self) -> str:
        presets = sorted({r.preset for r in self.runs if r.preset})
        if not presets and preset_file(self.model, self.dataset):
            presets = [preset_name(self.model, self.dataset)]
        return ", ".join(presets) or "—"

    @property
    def not_completed(self) -> list[Run]:
        return [r for r in self.runs if r.status != Status.COMPLETED]

    @property
    def params(self) -> str:
        values = sorted({r.get("params") for r in (self.chosen.results if self.chosen else []) if r.get("params")})
        return "/".join(f"{v:,}" for v in values) or "—"

    @property
    def steps(self) -> str:
        if not self.chosen:
            return "—"
        values = sorted({int(r.get("steps") or 0) for r in self.chosen.results})
        return "/".join(f"{v:,}" for v in values)

    @property
    def short(self) -> bool:
        """The chosen runs were configured for fewer iterations than the paper's (a successor's: its preset's)."""
        return bool(self.chosen) and any(
            int(r.knobs["trainer"].get("max_steps", 0)) < (self.iterations or 0) for r in self.chosen.results
        )


def select(runs: Sequence[Run], task: Mapping[str, Any] | None = None) -> tuple[list[Candidate], Candidate | None]:
    """Group runs by configuration; choose the highest mean best-val accuracy (then more seeds, then the key).
    Where the row has a paper-length run, only paper-length configurations are chosen: a short screen stays in the
    comparison, and the row shows "k of N iterations" until its paper-length runs finish. A configuration trained on
    data settings other than `task`'s (the paper's statement of the task), or evaluated on part of the splits, is
    compared, never chosen: it answers another question than the paper's row. Where the row has runs on the official
    release's data, a configuration trained on other data (a subset, altered examples) is never chosen either."""
    groups: dict[str, Candidate] = {}
    for run in runs:
        groups.setdefault(run.key, Candidate(run.key)).runs.append(run)
    candidates = sorted(groups.values(), key=lambda c: c.label)
    on_task = [c for c in candidates if not c.off_task(task or {})]
    if any(not c.other_data for c in on_task):
        on_task = [c for c in on_task if not c.other_data]
    paper_length = any(full_length(r) for c in on_task for r in c.runs)
    scored = [c for c in on_task if c.results and (not paper_length or all(full_length(r) for r in c.runs))]
    chosen = max(scored, key=lambda c: (c.mean("best_val_acc"), len(c.results), c.key), default=None)
    return candidates, chosen


def build_rows(runs: Sequence[Run], table: int) -> list[RowResult]:
    """The paper's rows, then each successor cell's (every column of the table) when it has runs on the table, then
    every other cell's (your own) on each column it has runs on, held to the paper's statement of the task."""
    successors = {r.model for r in runs} & BASELINES[table].keys()
    known = PAPER[table].keys() | BASELINES[table].keys()
    others = sorted({(r.model, r.dataset) for r in runs if r.model not in known and r.dataset in DATASETS[table]})
    rows = []
    for model, dataset in table_rows(table) + [(m, d) for m, d in baseline_rows(table) if m in successors] + others:
        mine = [r for r in runs if r.model == model and r.dataset == dataset]
        paper_task = {**PAPER_TASK.get(dataset, {}), "max_steps": ITERATIONS[dataset]}
        task = {} if model in BASELINES[table] else paper_task
        candidates, chosen = select(mine, task)
        rows.append(RowResult(table, model, dataset, mine, candidates, chosen, task))
    return rows


def progress_cell(row: RowResult) -> str:
    """How far an unfinished row is, never a partial accuracy: its paper-length runs' progress towards the row's
    iterations; where it has none, its screens' progress labelled as theirs, towards their own shorter length (a
    5,000-iteration screen at 3,982 is not 3,982 of the paper's 50,000 done)."""
    runs = row.on_task
    if not runs:
        return "not run on the paper's task (only on other data settings)"
    full = [r for r in runs if full_length(r)]
    if full:
        return f"{max(int(r.get('steps') or 0) for r in full):,} of {row.iterations:,} iterations"
    done, length = max((int(r.get("steps") or 0), int(r.knobs["trainer"].get("max_steps", 0))) for r in runs)
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
        of = int(lead.knobs["trainer"].get("max_steps", 0))
        return (f"*unfinished* ({progress_cell(row)}); best so far: val {pct(lead.get('best_val_acc'))}{test} "
                f"(a run at {int(lead.get('steps') or 0):,} of its {of:,} iterations)")  # fmt: skip
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
    """Table <table> in markdown; paths are printed relative to `base`, the folder the table is written to; `ledger`:
    the (model, dataset) rows of the gap ledger written beside it."""
    cols = DATASETS[table]
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
        "## Beside the paper",
        "",
        *table_header(cols, "paper", "paper"),
    ]
    by_model: dict[str, list[RowResult]] = {}
    for row in rows:
        by_model.setdefault(row.model, []).append(row)
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
    out += [
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

    bad = [r for row in rows for r in row.not_completed]
    out += ["", "## Runs that diverged, failed or did not finish", ""]
    if bad:
        out += ["| row | seed | status | steps | detail | run directory |", "|---|---|---|---|---|---|"]
        for r in bad:
            detail = str(r.get("error") or unfinished_detail(r)).replace("|", "\\|").replace("\n", " ")[:200]
            steps = f"{r.get('steps') or 0:,} / {int(r.knobs['trainer'].get('max_steps', 0)):,}"
            out.append(
                f"| {method_of(r.model)}, {COLUMNS[r.dataset]} | {r.seed} | {r.status} | {steps} | {detail} "
                f"| `{shown(r.path, base)}` |"
            )
    elif runs:
        out.append("None: every run behind this table completed.")
    else:
        out.append("No runs: nothing has been trained for this table yet.")

    twins = [(r, kept) for row in rows for c in row.candidates for r, kept in c.duplicates]
    if twins or skipped:
        out += ["", "## Run directories not counted", "", "| run directory | why |", "|---|---|"]
        out += [f"| `{shown(r.path, base)}` | seed {r.seed} of the same configuration as `{shown(kept.path, base)}`, "
                "counted once |"
                for r, kept in twins]  # fmt: skip
        out += [f"| `{shown(path, base)}` | {why.replace(str(path), shown(path, base)).replace('|', '/')} |"
                for path, why in skipped]  # fmt: skip

    multi = [row for row in rows if len(row.candidates) > 1]
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
    out += sensitivity_lines(rows)

    out += [
        "",
        "## Provenance",
        "",
        *runs_provenance(runs),
        f"- generated: {time.strftime('%Y-%m-%dT%H:%M:%S%z')} by `{command_line()}`",
        "",
    ]
    return "\n".join(out)


def sweep_grid(row: RowResult) -> list[str]:
    """A row's configurations as the grid of the keys that vary between them: the values of the one with the most
    (a length never) as columns, the others' as rows; a cell is the mean best validation accuracy (seeds in
    brackets), ✗ where a run diverged, · where the point was not trained. Nothing where no key varies."""
    settings = [(c, {k: v for k, v in flatten(c.runs[0].knobs).items() if k != "trainer.eval_every"})
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
             + " | ".join("default" if v is None else str(v) for v in values[inner]) + " |",
             "|---|" + "---|" * len(values[inner])]  # fmt: skip
    for combo in itertools.product(*(values[k] for k in outer)):
        if not any(key[: len(outer)] == combo for key in cells):
            continue
        label = ", ".join("default" if v is None else str(v) for v in combo) or "all"
        lines.append(f"| {label} | " + " | ".join(cells.get((*combo, v), "·") for v in values[inner]) + " |")
    return [*lines, ""]


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
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames))
        writer.writeheader()
        for rec in records:
            writer.writerow({k: "" if rec.get(k) is None else rec.get(k) for k in fieldnames})
    os.replace(tmp, path)


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
        tmp = out_dir / f"table{table}.md.tmp"
        tmp.write_text(text)
        os.replace(tmp, out_dir / f"table{table}.md")
    if ledger:
        by_row = {(row.model, row.dataset): row for rows in result.values() for row in rows}
        text = render_gap(ledger, by_row, spec, len(runs), out_dir, command_line())
        (out_dir / "gap.md.tmp").write_text(text)
        os.replace(out_dir / "gap.md.tmp", out_dir / "gap.md")
    selected = {id(r) for rows in result.values() for row in rows if row.chosen for r in row.chosen.results}
    write_csv(out_dir / "runs.csv", RUNS_CSV_FIELDS, (run_record(r, id(r) in selected, out_dir) for r in runs))
    write_csv(out_dir / "rows.csv", ROWS_CSV_FIELDS, (row_record(row) for rows in result.values() for row in rows))
    return result
