"""python -m antisym.results.verify [FOLDER ...] [--data-root DIR] [--no-eval] [--tolerance N] [--out FILE] [--reuse]

Re-checks run records without retraining: a table's number is only as good as the record it comes from, and a
record trained on one machine (a GPU lease, a CPU lane) is read on every other. For each run directory below the
folders (default results/runs):

- **the record agrees with itself**: `best_val_acc` / `best_step` are the first best validation row of
  metrics.jsonl, `test_acc` / `final_test_acc` its test row, `checkpoints/best.pt` holds that step, metrics.jsonl
  ends at the summary's steps, a completed run trained its `trainer.max_steps`, its config builds a model of the
  recorded parameter count that loads the checkpoint, the device its summary names for the best step is the kind
  the checkpoint's tensors were saved on, and a data file it calls official has the official MD5: an edit that
  keeps summary and metrics in step still meets another file;
- **its provenance**: every segment (start, resume) names a commit (known to this checkout's history) and a device;
- **its numbers come back** (with the data at hand): the best checkpoint evaluated again on the validation and test
  splits, in the run's dtype, evaluation limit and denormal setting, against what the record says, in examples;
  data files at hand whose MD5s are not those the record says it trained on make it differ. Another device or
  thread count sums in another order and may round a close call the other way: `--tolerance` is how many examples
  a split may differ by (default 0 on the kind of device that trained it, read from its checkpoint rather than its
  summary, 2 elsewhere). Past it, the
  checkpoint is evaluated once more in float64: where that changes at least as many predictions as the counts
  differ by, rounding decides the model's predictions (a chaotic, near-chance model) and the record is consistent
  within that, said in a note; otherwise it differs.

With `--out FILE`, each finished run's re-evaluated counts also go to FILE's `.json` beside it, with a hash of the
run's config, summary, metrics and best checkpoint. `--reuse` carries those counts over for a run whose files hash
the same (the record checks and the data check run again; only the evaluation is skipped, and a note says from
which report): a session re-checks what its lanes finished in minutes, not the whole records' half hour. A run that
FILE's .json lacks (a fresh clone has no results/local/) takes the committed report's counts,
results/verify_records.json. Before the first run, a line on stderr says how many runs will be evaluated again.

Ctrl-C stops at once: the report (and its .json, keeping the earlier counts of the runs not reached) says what was
checked before it, so `--reuse` goes on from there; exit 130.

A record is data, never code: a run whose config names a class from outside the antisym package (and torch's
optimizers) is not re-evaluated, and the note says why, unless `--allow-target package.module.Class` names it.

Exit 0 when every record checked agrees, 1 when any differs, 2 on bad input. Runs still training are listed, not
checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from antisym.config import RunConfig
from antisym.data import SequenceTask, build_task, task_files, task_spec
from antisym.data.files import OFFICIAL_MD5, fingerprint
from antisym.errors import UserError
from antisym.models import build_model, count_parameters
from antisym.models.ensemble import cast
from antisym.provenance import commit_known, git_state, provenance
from antisym.results.render import command_line, shown
from antisym.results.rows import Run, scan_runs
from antisym.training.checkpoint import load_checkpoint, load_permutation, saved_device_kinds
from antisym.training.devices import DTYPES
from antisym.training.evaluation import eval_size, evaluate
from antisym.training.rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    FINISHED,
    LAST_CHECKPOINT,
    METRICS_FILE,
    PERMUTATION_FILE,
    SUMMARY_FILE,
    Status,
    recorded_segments,
)
from antisym.training.threads import flushed_denormals
from antisym.trust import UntrustedTargetError, check_targets

OTHER_DEVICE_TOLERANCE = 2  # examples a split may differ by when re-evaluated on another kind of device
# The committed report's counts: what --reuse falls back on where --out's own .json lacks a run (a fresh clone).
COMMITTED_COUNTS = Path(__file__).resolve().parents[2] / "results" / "verify_records.json"


@dataclass
class Verdict:
    """What re-checking one run directory found."""

    path: Path
    status: str
    steps: int
    failures: list[str] = field(default_factory=list)  # the record disagrees with itself or with its checkpoint
    notes: list[str] = field(default_factory=list)  # provenance gaps, what could not be checked and why
    # split -> (correct as recorded, correct now, examples, predictions float64 changes: measured past the tolerance)
    counts: dict[str, tuple[int, int, int, int | None]] = field(default_factory=dict)
    files_hash: str = ""  # of the files the counts were evaluated from (files_hash)
    counted: dict[str, str] = field(default_factory=dict)  # date and commit of the report that evaluated the counts

    @property
    def verdict(self) -> str:
        if self.status == Status.RUNNING:
            return "training now: not checked"
        if self.failures:
            return "DIFFERS"
        if not self.counts and self.status not in FINISHED:
            return "files agree; unfinished, so nothing to re-evaluate yet"
        if not self.counts:
            return "record agrees; not re-evaluated (notes say why)"
        off = max(abs(now - recorded) for recorded, now, _, _ in self.counts.values())
        changed = max((k for *_, k in self.counts.values() if k is not None), default=None)
        if changed is not None:
            return f"within its float sensitivity ({changed:,} predictions change in float64)"
        return "verified" if off == 0 else f"verified within {off} example{'s' * (off > 1)}"


def best_val_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The validation row the trainer kept as best: the first to reach the highest accuracy (it keeps a new best only
    when strictly higher)."""
    best = None
    for row in rows:
        if row.get("split") == "val" and row.get("acc") is not None and (best is None or row["acc"] > best["acc"]):
            best = row
    return best


def check_record(run: Run, rows: list[dict[str, Any]]) -> tuple[list[str], list[str], dict[str, Any] | None]:
    """Where a record disagrees with its own metrics, checkpoints and config (failures), what it shows of a stop
    between writing two of its files (notes), and its best validation row."""
    summary, failures, notes = run.summary or {}, [], []
    if run.dir.permutation_file.is_file():
        load_permutation(run.dir.permutation_file, "Retrain the run.")  # a tensor, or CheckpointError
    if run.status in FINISHED:
        best = best_val_row(rows)
        want = (best["acc"], best["step"]) if best else (None, None)
        got = (summary.get("best_val_acc"), summary.get("best_step"))
        if got != want:
            failures.append(f"summary says best validation {got[0]} at step {got[1]}; metrics.jsonl's best is "
                            f"{want[0]} at step {want[1]}")  # fmt: skip
        test = [r for r in rows if r.get("split") == "test"]
        if summary.get("test_acc") is not None or test:
            last = test[-1] if test else {}
            for key, col in (("test_acc", "acc"), ("final_test_acc", "final_acc")):
                if summary.get(key) != last.get(col):
                    failures.append(f"summary says {key} {summary.get(key)}; metrics.jsonl's test row {last.get(col)}")
        failures += length_problems(run, rows)
    elif run.dir.last_checkpoint.is_file():
        # Unfinished: last.pt is what a resume continues from. A run killed between writing last.pt and the summary
        # (or metrics.jsonl and best.pt) leaves the other one step of validation ahead: the resume settles it.
        state = load_checkpoint(run.dir.last_checkpoint, "Resume the run to write it again.")
        saved, steps = int(state.get("step", 0)), summary.get("steps")
        if steps is None or steps > saved:
            failures.append(f"summary says {steps} steps; {LAST_CHECKPOINT} holds step {saved}")
        elif steps < saved:
            notes.append(f"summary says {steps:,} steps, {LAST_CHECKPOINT} {saved:,} (stopped between writing them)")
        best = best_val_row([r for r in rows if r.get("step", 0) <= saved])
        kept = state.get("best", {}).get("step", -1)
        if (best["step"] if best else -1) != kept:
            failures.append(f"{LAST_CHECKPOINT} keeps step {kept} as the best; metrics.jsonl's best up to step "
                            f"{saved:,} is step {best['step'] if best else None}")  # fmt: skip
    else:
        return failures, notes, None
    if best is not None:
        if not run.dir.best_checkpoint.is_file():
            failures.append(
                f"no {BEST_CHECKPOINT}, though metrics.jsonl has a best validation row (step {best['step']})"
            )
            return failures, notes, best
        held = load_checkpoint(run.dir.best_checkpoint, "Retrain the run.").get("step")
        if held != best["step"] and (run.status in FINISHED or held < best["step"]):
            failures.append(f"{BEST_CHECKPOINT} holds step {held}; the best validation row is step {best['step']}")
        elif held != best["step"]:
            notes.append(f"{BEST_CHECKPOINT} holds step {held}, after {LAST_CHECKPOINT} (stopped between writing them)")
    return failures, notes, best


def length_problems(run: Run, rows: list[dict[str, Any]]) -> list[str]:
    """Where a finished record's length disagrees with itself: its metrics end at the step its summary says (the
    test row is written at the last step), and a completed run trained its config's max_steps (which the summary
    repeats): max_steps edited in config and summary alike still meets the metrics' end."""
    summary, problems = run.summary or {}, []
    steps, max_steps = summary.get("steps"), run.cfg.get("trainer", {}).get("max_steps")
    end = max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=None)
    if end != steps:
        problems.append(f"summary says {steps} steps; metrics.jsonl's rows end at step {end}")
    if run.status == Status.COMPLETED and steps != max_steps:
        problems.append(f"completed after {steps} steps, but trainer.max_steps is {max_steps}")
    if summary.get("max_steps", max_steps) != max_steps:
        problems.append(f"summary says max_steps {summary['max_steps']}; config.yaml's trainer.max_steps {max_steps}")
    return problems


def data_record_problems(summary: dict[str, Any]) -> list[str]:
    """Data files a summary calls the official release's whose MD5 is not the official one (an edited MD5)."""
    return [
        f"summary says {name} was the official file, but records MD5 {entry.get('md5')}, not its {OFFICIAL_MD5[name]}"
        for name, entry in ((summary.get("data_files") or {}).items())
        if entry.get("official") and entry.get("md5") != OFFICIAL_MD5.get(name)
    ]


def model_problems(run: Run) -> tuple[nn.Module | None, list[str]]:
    """The model its config builds with the best checkpoint loaded, or where the record disagrees with it: the
    checkpoint's tensors must fit it (names and shapes) and its parameter count be the summary's `params`."""
    settings = RunConfig.from_cfg(run.cfg)
    spec = task_spec(settings.task)
    model = build_model(settings.model, spec.input_size, spec.num_classes)
    try:
        model.load_state_dict(load_checkpoint(run.dir.best_checkpoint, "Retrain the run.")["model"])
    except (RuntimeError, KeyError) as err:
        return None, [f"{BEST_CHECKPOINT} does not fit the model its config builds ({str(err).splitlines()[0]})"]
    params, recorded = count_parameters(model), (run.summary or {}).get("params")
    if recorded is not None and recorded != params:
        return None, [f"summary says {recorded:,} parameters; its config builds (and {BEST_CHECKPOINT} holds) "
                      f"{params:,}"]  # fmt: skip
    return model, []


def kind(device: Any) -> str:
    """cpu or cuda, from a device as a record describes it ("cuda: NVIDIA H100 ...")."""
    return str(device or "").split(":")[0].strip()


def trained_kinds(run: Run, best_step: int) -> tuple[set[str], list[str]]:
    """The kinds of device that computed the recorded counts (the best checkpoint's: its tensors say where they were
    saved; and the last segment's, which evaluated the test split), and where the summary disagrees with the
    checkpoint (an edited device is flagged, and never sets the tolerance)."""
    summary, problems = run.summary or {}, []
    saved = saved_device_kinds(run.dir.best_checkpoint)
    said = segment_at(summary, best_step).get("device")
    if said and kind(said) not in saved:
        problems.append(f"summary says step {best_step:,} was trained on {said}, but {BEST_CHECKPOINT} holds "
                        f"tensors saved on {', '.join(sorted(saved))}")  # fmt: skip
    last = recorded_segments(summary)[-1].get("device")
    if summary.get("segments") and summary.get("device") != last:
        problems.append(f"summary says device {summary.get('device')}; its last segment {last}")
    return saved | ({kind(last)} if last else set()), problems


def provenance_notes(summary: dict[str, Any]) -> list[str]:
    """What a record does not say about the code and machine that trained each of its segments."""
    notes = []
    for seg in recorded_segments(summary):
        part = f"steps from {seg.get('from_step', 0):,}" if summary.get("segments") else "its last session"
        commit = seg.get("git_commit")
        if not commit or commit == "unknown":
            notes.append(f"{part}: commit not recorded")
        elif commit_known(commit.removesuffix("-dirty")) is False:  # -dirty: a lease's commit named as git_commit()
            notes.append(f"{part}: commit {commit[:12]} is not in this checkout's history")
        if seg.get("git_dirty") or str(commit).endswith("-dirty"):
            notes.append(f"{part}: trained from a tree with uncommitted changes to {str(commit)[:12]}")
        if not seg.get("device"):
            notes.append(f"{part}: device not recorded")
    return notes


def segment_at(summary: dict[str, Any], step: int) -> dict[str, Any]:
    """The segment that trained (and evaluated) `step`: the last one starting before it."""
    segments = recorded_segments(summary)
    return next((s for s in reversed(segments) if (s.get("from_step") or 0) < step), segments[0])


@torch.no_grad()
def float_sensitivity(model: nn.Module, task: SequenceTask, batch_size: int, limit: int) -> int:
    """How many of a split's predictions change when the checkpoint is evaluated in float64 rather than float32.
    A model whose state trajectories amplify rounding over hundreds of steps (a large eps * |W|, near-chance
    accuracy) cannot be pinned closer than that on any device: one such H100 record's validation pass changes about
    200 of 5,000 predictions in float64 on the CPU (results/verify_records.md)."""
    n = eval_size(task, limit)
    device = next(model.parameters()).device
    single, double = cast(model, torch.float32).eval(), cast(model, torch.float64).eval()
    changed = 0
    for start in range(0, n, batch_size):
        x = task.batch(torch.arange(start, min(start + batch_size, n)))[0].to(device)
        changed += int((single(x.float()).argmax(-1) != double(x.double()).argmax(-1)).sum())
    return changed


def data_problem(run: Run, data_root: str) -> tuple[str | None, str | None]:
    """Why the data at hand cannot re-evaluate the run: absent (a note), or other files than its summary says it
    trained on (a failure: the recorded MD5s must be the files' wherever they are at hand); (None, None) if neither."""
    files = task_files(RunConfig.from_cfg(run.cfg).task)
    missing = [f for f in files if not (Path(data_root) / f).is_file()]
    if missing:
        return f"data not found under {data_root} ({', '.join(missing[:2])}); give --data-root", None
    trained_on = (run.summary or {}).get("data_files") or {}
    here = fingerprint(data_root, files)
    other = [f for f in files if f in trained_on and trained_on[f].get("md5") != here[f]["md5"]]
    if other:
        return None, (
            f"its summary records other data files than those under {data_root} (MD5 of {', '.join(other)}): an "
            "edited record, or data other than it trained on; give --data-root the files it trained on"
        )
    return None, None


def files_hash(run_dir: Path) -> str:
    """sha256 over what a re-evaluation reads of a run: config, permutation, summary, metrics, best checkpoint."""
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, PERMUTATION_FILE, SUMMARY_FILE, METRICS_FILE, BEST_CHECKPOINT):
        path = run_dir / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"absent") + b"\0")
    return digest.hexdigest()


def reevaluate(
    run: Run, model: nn.Module, best_step: int, data_root: str, device: torch.device, allowed: int
) -> dict[str, tuple[int, int, int, int | None]] | str:
    """Correct predictions of the best checkpoint (loaded in `model`) on the validation and test splits, recorded and
    now, and where they differ by more than `allowed`, its float sensitivity there; or why the run cannot be
    re-evaluated here (a permutation other than its seed gives now)."""
    settings = RunConfig.from_cfg(run.cfg)
    summary, t = run.summary or {}, settings.trainer
    tasks = {s: build_task(settings.task, data_root, s, False, settings.data.allow_subset) for s in ("val", "test")}
    saved = run.dir.permutation_file
    if saved.is_file() and not torch.equal(load_permutation(saved, "Retrain the run."), tasks["val"].permutation):
        return f"{saved.name} is not the permutation its dataset.permutation_seed gives now"
    model.to(device, DTYPES[t.dtype])
    recorded = {"val": summary.get("best_val_acc"), "test": summary.get("test_acc")}
    counts = {}
    for split, task in tasks.items():
        if recorded[split] is None:
            continue
        step = best_step if split == "val" else int(summary.get("steps", best_step))
        with flushed_denormals(bool(segment_at(summary, step).get("flush_denormal"))):
            acc = evaluate(model, task.to(device), t.eval_batch_size, device, DTYPES[t.dtype], t.eval_limit)["acc"]
        n = eval_size(task, t.eval_limit)
        then, now = round(recorded[split] * n), round(acc * n)
        changed = float_sensitivity(model, task, t.eval_batch_size, t.eval_limit) if abs(now - then) > allowed else None
        counts[split] = (then, now, n, changed)
    return counts


def verify_run(
    run: Run,
    data_root: str | None,
    device: torch.device | None,
    tolerance: int | None,
    earlier: dict[str, Any] | None = None,
    allow: Iterable[str] = (),
) -> Verdict:
    """Every check of the module docstring on one run directory; re-evaluation only with a device. `earlier`: an
    earlier report's entry for this run (--reuse), whose counts stand in for the evaluation if its files hash the
    same and it was evaluated on this kind of device. `allow`: classes from outside the suite that the run's config
    may name and the user trusts to be imported (antisym.trust); a run naming any other is neither built nor
    re-evaluated."""
    summary = run.summary or {}
    verdict = Verdict(run.path, run.status, run.steps)
    if run.status == Status.RUNNING:
        return verdict
    try:
        rows = run.dir.metrics()
        verdict.failures, notes, best = check_record(run, rows)
    except UserError as err:
        verdict.failures.append(str(err).split(". ")[0])
        return verdict
    verdict.notes = notes + provenance_notes(summary)
    verdict.failures += data_record_problems(summary)
    if run.status not in FINISHED or verdict.failures or best is None:
        if run.status in FINISHED and not verdict.failures:
            verdict.notes.append("not re-evaluated: no validation row")
        return verdict
    try:
        check_targets(run.cfg, allow, run.dir.config_file)
    except UntrustedTargetError as err:
        verdict.notes.append(f"not re-evaluated: {err}")
        return verdict
    try:
        model, problems = model_problems(run)
        kinds, device_problems = trained_kinds(run, best["step"])
    except UserError as err:  # a config that no longer checks, a damaged checkpoint
        verdict.failures.append(str(err).split(". ")[0])
        return verdict
    verdict.failures += problems + device_problems
    if model is None or verdict.failures:
        return verdict
    if device is None:
        verdict.notes.append("not re-evaluated: --no-eval")
        return verdict
    root = data_root or str(run.cfg.get("data", {}).get("root", ""))
    absent, other = data_problem(run, root)
    if absent or other:
        verdict.notes += [f"not re-evaluated: {absent}"] if absent else []
        verdict.failures += [other] if other else []
        return verdict
    allowed = tolerance if tolerance is not None else (0 if kinds == {device.type} else OTHER_DEVICE_TOLERANCE)
    verdict.files_hash = files_hash(run.path)
    same = carried(run, earlier, device)
    if same:
        counts = {k: tuple(v) for k, v in earlier["counts"].items()}
    else:
        counts = reevaluate(run, model, best["step"], root, device, allowed)
    if isinstance(counts, str):
        verdict.notes.append(f"not re-evaluated: {counts}")
        return verdict
    if same:
        verdict.counted = {"date": earlier["date"], "commit": earlier["commit"]}
        verdict.notes.append(f"re-evaluation carried over from the report of {earlier['date']} (commit "
                             f"{earlier['commit'][:12]}): config, summary, metrics and best checkpoint "
                             "unchanged")  # fmt: skip
    verdict.counts = counts
    for split, (recorded, now, n, changed) in counts.items():
        said = f"{split}: the record says {recorded:,} of {n:,} correct, its best checkpoint gives {now:,} now"
        if changed is not None and abs(now - recorded) <= changed:
            verdict.notes.append(f"{said}, beyond the tolerance ({allowed}) but within what float64 changes "
                                 f"({changed:,} predictions): rounding decides this model's predictions")  # fmt: skip
        elif changed is not None:
            verdict.failures.append(f"{said} (tolerance {allowed}; float64 changes {changed:,} predictions)")
    return verdict


def count_cell(verdict: Verdict, split: str) -> str:
    if split not in verdict.counts:
        return "—"
    recorded, now, n, _ = verdict.counts[split]
    return f"{recorded:,} → {now:,} of {n:,}"


def render(verdicts: list[Verdict], base: Path, header: dict[str, Any]) -> str:
    """The report: one line per run directory, then each finding and note in full."""
    tally = {v: sum(x.verdict == v for x in verdicts) for v in dict.fromkeys(x.verdict for x in verdicts)}
    lines = [
        "# Run records re-checked",
        "",
        f"`{header['command']}` on {header['date_utc']}: commit `{header['git_commit']}`"
        f"{' (uncommitted changes)' if header['git_dirty'] else ''}, {header['device']}, torch "
        f"{header['versions'].get('torch')}, {header['wall_time_s']:.0f} s. Data: {header['data']}. "
        f"Tolerance: {header['tolerance']}.",
        *(["", f"**{header['partial']}**"] if header.get("partial") else []),
        "",
        "Correct predictions of each finished run's best checkpoint, as its record says → as evaluated again here. "
        "What each check is: `python -m antisym.results.verify --help`.",
        "",
        f"{len(verdicts)} run directories: " + ", ".join(f"{n} {v}" for v, n in tally.items()) + ".",
        "",
        "| run | status | steps | validation | test | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for v in verdicts:
        lines.append(f"| `{shown(v.path, base)}` | {v.status} | {v.steps:,} | {count_cell(v, 'val')} | "
                     f"{count_cell(v, 'test')} | {v.verdict} |")  # fmt: skip
    failures = [f"- `{shown(v.path, base)}`: {text}" for v in verdicts for text in v.failures]
    if failures:
        lines += ["", "## Where records differ", "", *failures]
    notes: dict[str, list[str]] = {}  # each note once, with every run it concerns
    for v in verdicts:
        for text in v.notes:
            notes.setdefault(text, []).append(f"`{shown(v.path, base)}`")
    if notes:
        lines += ["", "## Notes", ""]
        for text, runs in notes.items():  # a note shared by many runs lists them beneath it, one a line
            lines += (
                [f"- {text}: {runs[0]}"]
                if len(runs) == 1
                else [f"- {text} ({len(runs)} runs):", *(f"  - {r}" for r in runs)]
            )
    return "\n".join(lines) + "\n"


def write_counts(
    path: Path,
    verdicts: list[Verdict],
    base: Path,
    header: dict[str, Any],
    tolerance: int | None,
    kept: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Each re-evaluated run's counts with the hash of its files, for a later --reuse; a carried entry keeps the
    date and commit of the report that evaluated it. `kept`: earlier entries (by absolute path) of runs this check
    did not reach (it was interrupted), so that a --reuse after it loses nothing."""
    here = {"date": header["date_utc"], "commit": header["git_commit"]}
    runs = {shown(p, base): entry for p, entry in (kept or {}).items()}
    runs |= {
        shown(v.path, base): (v.counted or here)
        | {"hash": v.files_hash, "device": header["device_kind"], "counts": v.counts}
        for v in verdicts
        if v.counts
    }
    path.write_text(json.dumps({"tolerance": tolerance, "runs": runs}, indent=1) + "\n")


def read_counts(path: Path, tolerance: int | None) -> dict[str, dict[str, Any]]:
    """The runs of an earlier --out's .json by absolute path (its keys are relative to its folder), if it was judged
    with the same --tolerance (else none)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    runs = data.get("runs", {}) if data.get("tolerance") == tolerance else {}
    return {str((path.parent / key).resolve()): entry for key, entry in runs.items()}


def earlier_counts(out: Path, tolerance: int | None) -> dict[str, dict[str, Any]]:
    """What --reuse carries over: --out's own .json, and for the runs it lacks the committed report's."""
    return read_counts(COMMITTED_COUNTS, tolerance) | read_counts(out.with_suffix(".json"), tolerance)


def carried(run: Run, earlier: dict[str, Any] | None, device: torch.device) -> bool:
    """Whether `earlier` (a report's entry for this run) stands in for evaluating it again on `device`."""
    return bool(earlier) and earlier.get("hash") == files_hash(run.path) and earlier.get("device") == device.type


def plan_line(runs: list[Run], earlier: dict[str, dict[str, Any]], device: torch.device | None) -> str:
    """What the check will cost, said before it starts: how many finished runs it evaluates again."""
    finished = [r for r in runs if r.status in FINISHED]
    if device is None:
        return f"verify: {len(runs)} run directories, records only (--no-eval)"
    reused = sum(carried(r, earlier.get(str(r.path.resolve())), device) for r in finished)
    return (
        f"verify: {len(runs)} run directories; {len(finished) - reused} of {len(finished)} finished runs to evaluate "
        "again"
        + (f" ({reused} carried over from earlier reports)" if reused else "")
        + f" on {device} (about a minute each for a noise-padded run on one core)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m antisym.results.verify",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("folders", nargs="*", default=["results/runs"], help="folders of run directories")
    parser.add_argument("--data-root", default=os.environ.get("ANTISYM_DATA"),
                        help="where the data are (default: ANTISYM_DATA, else each run's data.root)")  # fmt: skip
    parser.add_argument("--no-eval", action="store_true", help="check the records only, evaluate nothing")
    parser.add_argument("--device", default="cpu", help="where to evaluate (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    parser.add_argument("--tolerance", type=int, help="examples a split may differ by (default: 0 on the device "
                        f"kind that trained the run, else {OTHER_DEVICE_TOLERANCE})")  # fmt: skip
    parser.add_argument("--out", help="also write the report to this markdown file (and its counts to .json)")
    parser.add_argument("--allow-target", action="append", default=[], metavar="package.module.Class",
                        help="a class from outside antisym that a run's config may name and that you trust to be "
                        "imported (repeatable); a run naming any other is not re-evaluated: a record is data, never "
                        "code")  # fmt: skip
    parser.add_argument("--reuse", action="store_true", help="carry counts over from --out's .json for runs whose "
                        "config, summary, metrics and best checkpoint are unchanged")  # fmt: skip
    args = parser.parse_args(argv)
    missing = [f for f in args.folders if not Path(f).exists()]
    if missing or (args.tolerance is not None and args.tolerance < 0):
        what = f"no folder {', '.join(missing)}" if missing else f"--tolerance must be >= 0, got {args.tolerance}"
        print(f"error: {what}. Give the folders that hold run directories (default results/runs) and a tolerance "
              "in examples (0 or more).", file=sys.stderr)  # fmt: skip
        return 2
    if args.reuse and not args.out:
        print("error: --reuse reads the counts of an earlier report written with --out FILE (FILE's .json); give "
              "--out with it, e.g. --out results/verify_records.md --reuse.", file=sys.stderr)  # fmt: skip
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no GPU here; re-check on the CPU (--device cpu).", file=sys.stderr)
        return 2
    started, (commit, dirty) = time.time(), git_state()  # the code that checks: read before any file can change
    torch.set_num_threads(args.threads)
    device = None if args.no_eval else torch.device(args.device)
    out = Path(args.out) if args.out else None
    base = out.parent if out else Path.cwd()
    earlier = earlier_counts(out, args.tolerance) if args.reuse and out else {}
    runs, unreadable = scan_runs(args.folders)
    if not runs and not unreadable:
        print(f"error: no run directories under {', '.join(args.folders)}.", file=sys.stderr)
        return 2
    print(plan_line(runs, earlier, device), file=sys.stderr)
    verdicts: list[Verdict] = []
    try:
        for run in runs:  # a line each on stderr: re-evaluating a noise-padded run takes a minute on one core
            t0 = time.time()
            earlier_entry = earlier.get(str(run.path.resolve()))
            verdicts.append(verify_run(run, args.data_root, device, args.tolerance, earlier_entry, args.allow_target))
            print(f"{run.path}: {verdicts[-1].verdict} ({time.time() - t0:.0f} s)", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C: report what was checked, keep the counts of the runs not reached
        pass
    unreached = [str(r.path.resolve()) for r in runs[len(verdicts) :]]
    verdicts += [Verdict(path, "unreadable", 0, failures=[why]) for path, why in unreadable]
    header = provenance("antisym.results.verify", vars(args), started, args.device)
    tolerance = f"{args.tolerance} examples" if args.tolerance is not None else (
        f"0 examples for runs trained on {args.device}, {OTHER_DEVICE_TOLERANCE} for the others")  # fmt: skip
    data = "not evaluated (--no-eval)" if args.no_eval else (args.data_root or "each run's data.root")
    header.update(git_commit=commit, git_dirty=dirty, command=command_line(), tolerance=tolerance, data=data,
                  device_kind=torch.device(args.device).type)  # fmt: skip
    if unreached:
        header["partial"] = (f"Interrupted (Ctrl-C) after {len(runs) - len(unreached)} of {len(runs)} run "
                             f"directories: the other {len(unreached)} are not in this report.")  # fmt: skip
        print(f"{header['partial']} Run again with --reuse to go on from here.", file=sys.stderr)
    report = render(verdicts, base, header)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report)
        kept = {p: e for p, e in earlier.items() if p in set(unreached)}
        write_counts(out.with_suffix(".json"), verdicts, base, header, args.tolerance, kept)
    print(report, end="")
    if unreached:
        return 130
    return 1 if any(v.failures for v in verdicts) else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the first run or while the report was written: no report to trust
        print("interrupted: no report written; run the same command again.", file=sys.stderr)
        sys.exit(130)
