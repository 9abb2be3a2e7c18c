"""Which run answers a table's row: run directories read as records (`Run`), grouped by configuration
(`Candidate`) and chosen per row (`select`, `build_rows`) by mean best-validation accuracy, never by test accuracy.
What the tables print of them is render.py's; the files they are written to, aggregate.py's."""

from __future__ import annotations

import functools
import json
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from antisym.checks import import_class
from antisym.config import experiment_settings
from antisym.data.files import CIFAR_BATCH_SIZE, MNIST_SIZES
from antisym.data.tasks import TASKS
from antisym.errors import UserError
from antisym.results.paper import (
    BASELINES,
    DATASETS,
    ITERATIONS,
    METHODS,
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
from antisym.training.rundir import CHECKPOINT_DIR, FINISHED, SUPERSEDED, RunDir, Status
from antisym.training.runs import compose

OFFICIAL_SIZES = {  # (train + validation, test) examples of each task's official release
    "mnist": (MNIST_SIZES[True], MNIST_SIZES[False]),
    "pmnist": (MNIST_SIZES[True], MNIST_SIZES[False]),
    "cifar10": (5 * CIFAR_BATCH_SIZE, CIFAR_BATCH_SIZE),
    "noisy_cifar10": (5 * CIFAR_BATCH_SIZE, CIFAR_BATCH_SIZE),
}
SKIP_DIRS = {".hydra", ".submitit", CHECKPOINT_DIR, "wandb", SUPERSEDED}


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
    if trainer.get("lr_schedule", "constant") == "step":
        parts.append(f"schedule=step x{trainer.get('lr_decay_factor')} at {trainer.get('lr_decay_steps')}")
    elif trainer.get("lr_schedule", "constant") != "constant":
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
    def dir(self) -> RunDir:
        return RunDir(self.path)

    @property
    def status(self) -> str:
        return self.dir.status(self.summary)

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
        """The dataset settings this run changed from its preset's."""
        preset = preset_dataset(self.preset) or {}
        mine = self.knobs["dataset"]
        return {k: v for k, v in sorted(mine.items()) if preset.get(k, v) != v}

    @property
    def label(self) -> str:
        return describe(self.knobs, self.data_changes)

    def get(self, key: str) -> Any:
        return (self.summary or {}).get(key)

    @property
    def steps(self) -> int:
        """Iterations trained, as its summary says (0 before its first checkpoint)."""
        return int(self.get("steps") or 0)

    @property
    def max_steps(self) -> int:
        """Iterations it was configured for (trainer.max_steps; 0 where the record does not say)."""
        return int(self.knobs["trainer"].get("max_steps", 0))

    @property
    def branched_at(self) -> int | None:
        """The step a branch (trainer.init_from) started at, its source checkpoint's; None for a run from step 0."""
        steps = [int(seg["branched_from"]["step"]) for seg in (self.summary or {}).get("segments", [])
                 if "branched_from" in seg]  # fmt: skip
        return min(steps) if steps else None

    def curve(self, split: str = "val") -> dict[int, float]:
        """Accuracy by step on a split of metrics.jsonl: validation, or TEST_PROBE (trainer.test_every_eval)."""
        rows = self.dir.metrics()
        return {int(r["step"]): float(r["acc"]) for r in rows if r.get("split") == split and "step" in r}

    @property
    def has_result(self) -> bool:
        """Finished (completed or diverged) with a best-validation checkpoint, hence a test accuracy."""
        return self.status in FINISHED and self.get("best_val_acc") is not None and self.get("test_acc") is not None


def read_run(path: Path) -> Run | str:
    """The run in a run directory, or why it cannot be counted (its config or summary missing or damaged, a damaged
    metrics line): such a directory is listed with the reason, never dropped silently."""
    run_dir = RunDir(path)
    try:
        cfg = run_dir.config()
    except Exception as err:  # YAML that does not parse: a torn or hand-edited file
        return f"config.yaml cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120]})"
    if cfg is None:
        return "no config.yaml"
    missing = [s for s in ("model", "dataset", "trainer") if not isinstance(cfg.get(s), Mapping)]
    if missing:
        return f"config.yaml has no {', '.join(missing)} section (emptied or truncated)"
    try:
        summary = run_dir.summary()
        run_dir.metrics()
    except UserError as err:
        return str(err).split(". ")[0]
    return Run(path, cfg, summary)


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
            if not RunDir(path).is_run():
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
    return run.status == Status.COMPLETED, run.steps


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
    return run.max_steps >= (reference_iterations(run.model, run.dataset) or 0)


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
        steps = self.runs[0].max_steps
        if "max_steps" in task and steps > task["max_steps"]:
            off["max_steps"] = steps
        if trainer.get("eval_limit"):
            off["eval_limit"] = trainer["eval_limit"]
        return off

    @property
    def branched(self) -> bool:
        """A branch (trainer.init_from) is a reading of the run it started from, whose first steps it shares: the
        ledger compares it, the tables never choose it over the row's own runs."""
        return any(r.branched_at is not None for r in self.runs)

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
        return max(runs, key=lambda r: (float(r.get("best_val_acc")), r.steps), default=None)

    @property
    def iterations(self) -> int | None:
        """reference_iterations, or for a successor without a preset the longest its runs were configured for."""
        own = (r.max_steps for r in self.runs)
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
        values = sorted({r.steps for r in self.chosen.results})
        return "/".join(f"{v:,}" for v in values)

    @property
    def short(self) -> bool:
        """The chosen runs were configured for fewer iterations than the paper's (a successor's: its preset's)."""
        return bool(self.chosen) and any(r.max_steps < (self.iterations or 0) for r in self.chosen.results)


def select(runs: Sequence[Run], task: Mapping[str, Any] | None = None) -> tuple[list[Candidate], Candidate | None]:
    """Group runs by configuration; choose the highest mean best-val accuracy (then more seeds, then the key).
    Where the row has a paper-length run, only paper-length configurations are chosen: a short screen stays in the
    comparison, and the row shows "k of N iterations" until its paper-length runs finish. A configuration trained on
    data settings other than `task`'s (the paper's statement of the task), or evaluated on part of the splits, is
    compared, never chosen: it answers another question than the paper's row; so is a branch. Where the row has
    runs on the official release's data, a configuration trained on other data (a subset, altered examples) is never
    chosen either."""
    groups: dict[str, Candidate] = {}
    for run in runs:
        groups.setdefault(run.key, Candidate(run.key)).runs.append(run)
    candidates = sorted(groups.values(), key=lambda c: c.label)
    on_task = [c for c in candidates if not c.off_task(task or {}) and not c.branched]
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
