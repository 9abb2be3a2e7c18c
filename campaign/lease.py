"""One lease of the device: parity once per kernel version, the next unfinished runs under a wall-clock budget, then
the changed records packed for the trip back.

Every run is trained by `antisym.training.trainer.run` into its record directory with trainer.resume=true and
trainer.skip_completed=true, so a lease continues where the last one stopped, and with trainer.time_limit_s set to
what is left of the budget less `margin_s` (the final evaluation and the archiving), so the last run stops cleanly at a
step boundary with its checkpoint written. A run that fails or diverges is recorded and the lease goes on; a run
whose data is not under --data-root is passed over. A parity failure stops the lease before any training; a GPU that
stops answering stops it too, and the run it broke is put back as it was, so no partial record travels.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from antisym.data import task_files
from antisym.plan import Plan, PlannedRun, compose_run, planned_state, planned_steps, resolve
from antisym.provenance import COMMIT_ENV
from antisym.training.rundir import RunDir, RunLockedError
from antisym.training.runs import RunState, first_pack, pack_key
from campaign import kernel_gate, progress
from campaign.limits import FILES_BACK
from campaign.records import archive_records

log = logging.getLogger("antisym")
REPORT_FILES = ("progress.json", "progress.md", "campaign.log")  # what the lease returns beside the archives


@dataclass
class Lease:
    plan: Plan
    records: Path
    data_root: Path
    out: Path
    budget_s: float
    device: str = "auto"
    commit: str | None = None
    margin_s: float = 60.0  # kept back from the last run: its final evaluation and the archiving
    min_run_s: float = 30.0  # no run is started on less
    retry_failed: bool = False
    launcher_why: str | None = None  # how the launcher was chosen, where the GPU check chose it
    lane: str | None = None  # the plan's lane (its blocks, in its order); None: every block in plan order
    threads: int | None = None  # trainer.threads of every run (None: the trainer's default)
    archive: bool = True  # archive the changed records for the trip back (a lane training in place needs none)
    clock: Callable[[], float] = time.monotonic


def launcher_from_check(plan: Plan, gpu_check: Path) -> tuple[Plan, str]:
    """The plan with the launcher the GPU check measured best at the pMNIST shape, and why: packed with the
    recommended pack_size where a fused pack beat everything else; solo where a solo run (or an eager pack, which the
    campaign does not run: model.impl=auto packs run fused) did; the plan as it is where nothing was measured."""
    from campaign.gpu_check.verdict import pack_size

    try:
        pick = pack_size(json.loads(gpu_check.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return plan, f"{plan.launcher} as planned: no packed rows in {gpu_check} ({type(err).__name__}: {err})"
    if pick is None:
        return plan, f"{plan.launcher} as planned: no packed rows in {gpu_check}"
    measured = f"{pick['variant']}, R = {pick['R']}, {pick['run_iters_per_s']:.1f} run-iterations/s"
    if pick["pack_size"] > 1 and pick["variant"].startswith("fused"):
        size = pick["pack_size"]
        return replace(plan, launcher="packed", pack_size=size), f"packed, pack_size {size} (best measured: {measured})"
    return replace(plan, launcher="solo", pack_size=1), f"solo (best measured: {measured})"


def missing_data(cfg: dict[str, Any], root: Path) -> list[str]:
    """The data files a run needs that are not under root (the device is offline: nothing can be downloaded)."""
    return [f for f in task_files(cfg["dataset"]) if not (root / f).is_file()]


def device_healthy(device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    try:
        torch.ones(1, device=device).sum().item()
        torch.cuda.synchronize(device)
    except Exception:  # any CUDA error: the device is gone for this process
        return False
    return True


def lease_overrides(lease: Lease, time_limit_s: int) -> list[str]:
    """What every run of the lease adds to its plan overrides (all free keys: a resume accepts them)."""
    device = [] if lease.device == "auto" else [f"trainer.device={lease.device}"]
    threads = [] if lease.threads is None else [f"trainer.threads={lease.threads}"]
    return [
        f"data.root={lease.data_root.resolve()}",
        "data.download=false",
        "trainer.resume=true",
        "trainer.skip_completed=true",
        f"trainer.time_limit_s={time_limit_s}",
        *device,
        *threads,
    ]


def train_group(
    lease: Lease, runs: list[tuple[PlannedRun, dict[str, Any], list[str]]], device: torch.device
) -> list[dict[str, Any]]:
    """Train runs (composed: run, cfg, overrides) as one pack (a solo run is a pack of one); per run
    {"outcome": trained | error | gpu failure, "recorded": whether it has a summary}. If the GPU fails, every run of
    the pack is put back as it was."""
    from antisym.training.trainer import Job, run_pack

    dirs = [lease.records / run.rel_dir for run, _, _ in runs]
    with tempfile.TemporaryDirectory() as tmp:
        backups = [Path(tmp) / str(i) for i in range(len(runs))]
        for run_dir, backup in zip(dirs, backups, strict=True):
            if run_dir.exists():
                shutil.copytree(run_dir, backup)
        pack_id = f"{lease.plan.name}-{time.strftime('%Y%m%d-%H%M%S')}" if len(runs) > 1 else None
        clock = time.monotonic()
        try:
            results = run_pack(
                [Job(cfg, d, overrides) for (_, cfg, overrides), d in zip(runs, dirs, strict=True)], pack_id
            )
        except Exception as err:  # the shared computation crashed: every member has it
            results = [err] * len(runs)
        wall_s = round(time.monotonic() - clock, 1)  # with setup and final evaluation: what the pack cost the lease
        errors = [f"{type(r).__name__}: {r}" if isinstance(r, BaseException) else None for r in results]
        if any(errors) and not device_healthy(device):
            for run_dir, backup in zip(dirs, backups, strict=True):
                shutil.rmtree(run_dir, ignore_errors=True)
                if backup.exists():
                    shutil.copytree(backup, run_dir)
            return [{"outcome": "gpu failure", "error": next(e for e in errors if e)} for _ in runs]
    out = []
    for (run, _, _), run_dir, result, error in zip(runs, dirs, results, errors, strict=True):
        if isinstance(result, RunLockedError):  # another lane took it between this lane's look and its start
            log.info("%s: another process took it first (passed over)", run.rel_dir)
            outcome = {"outcome": "running", "error": error}
        elif error:
            log.error("%s: %s (the lease goes on)", run.rel_dir, error)
            outcome = {"outcome": "error", "error": error}
        else:
            outcome = {"outcome": "trained"}
        summary = None if outcome["outcome"] == "running" else RunDir(run_dir).summary()  # the other writer's
        # An attempt that failed wrote no summary of its own: an earlier segment's stop reason is not this lease's.
        stop_reason = None if error else (summary or {}).get("stop_reason")
        out.append(
            outcome
            | {"recorded": summary is not None, "stop_reason": stop_reason}
            | {"pack_size": len(runs), "wall_s": wall_s}
        )
    return out


def compose_for_lease(lease: Lease, run: PlannedRun, time_limit_s: int) -> tuple[dict, list[str]] | dict[str, Any]:
    """(cfg, overrides) of a run as this lease trains it, or the outcome that keeps it from training."""
    try:
        cfg, overrides = compose_run(run, lease_overrides(lease, time_limit_s))
    except Exception as err:  # a plan that names a preset or key that does not exist
        return {"outcome": "error", "error": f"cannot compose: {type(err).__name__}: {err}"}
    missing = missing_data(cfg, lease.data_root)
    if missing:
        return {"outcome": "no data", "error": f"not under {lease.data_root}: {', '.join(missing)}"}
    return cfg, overrides


def next_group(
    lease: Lease, attempted: set[str], started: float
) -> tuple[list[tuple[PlannedRun, dict, list[str]]], list[tuple[PlannedRun, dict]], dict[PlannedRun, RunState]] | str:
    """The next pack to train (the next run and the runs after it in its block that can share its pack, at most
    pack_size) and the runs passed over on the way (no data, cannot compose), with their states before; or why
    there is none: "done" (nothing left to try) or "budget spent". The runs returned count as attempted."""
    plan = resolve(lease.plan, lease.records)  # a screen finished in this lease lets its seeds start in it
    states = {r: planned_state(lease.records, r) for r in plan.lane_runs(lease.lane) if r.rel_dir not in attempted}
    todo = [r for r, state in states.items() if state.todo(lease.retry_failed)]
    if not todo:
        return "done"
    time_limit = int(lease.budget_s - (lease.clock() - started) - lease.margin_s)
    if time_limit < lease.min_run_s:
        return "budget spent"
    block = itertools.takewhile(lambda r: r.block == todo[0].block, todo)
    composed = ((run, compose_for_lease(lease, run, time_limit)) for run in block)
    pack = first_pack(
        composed, lambda item: None if isinstance(item[1], dict) else pack_key(item[1][0]), lease.plan.pack_size
    )
    if isinstance(pack[0][1], dict):  # the next run cannot train here (no data, cannot compose): passed over
        group, passed = [], [pack[0]]
    else:
        group, passed = [(run, cfg, overrides) for run, (cfg, overrides) in pack], []
    befores = {run: states[run] for run in [*(p[0] for p in passed), *(g[0] for g in group)]}
    attempted.update(run.rel_dir for run in befores)
    for run, before in befores.items():
        log.info("campaign: %s (%s, %d steps) with %d s left", run.rel_dir, before.status, before.steps, time_limit)
        if run.chosen:
            log.info("campaign: %s at the point of %s: %s", run.rel_dir, run.chosen, " ".join(run.point))
    return group, passed, befores


def train_on_stream(lease: Lease, group: list, device: torch.device) -> list[dict[str, Any]]:
    """train_group on a CUDA stream of its own where packs run side by side, so their kernels overlap."""
    if device.type != "cuda" or lease.plan.concurrent == 1:
        return train_group(lease, group, device)
    with torch.cuda.stream(torch.cuda.Stream(device)):
        return train_group(lease, group, device)


def submit(pool: ThreadPoolExecutor | None, fn: Callable[..., Any], *args: Any) -> Future:
    """fn(*args) on the pool, or here and now (one pack at a time: the trainer keeps the main thread's signals)."""
    if pool is not None:
        return pool.submit(fn, *args)
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as err:
        future.set_exception(err)
    return future


@contextmanager
def commit_named(commit: str | None) -> Iterator[None]:
    """ANTISYM_COMMIT set to the commit the lease's tree was copied from, while it trains: a device's copy has no
    .git, so the trainer takes the commit from it into each run's summary and checkpoint as the run starts (git,
    where there is one, wins)."""
    before = os.environ.get(COMMIT_ENV)
    if commit:
        os.environ[COMMIT_ENV] = commit
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(COMMIT_ENV, None)
        else:
            os.environ[COMMIT_ENV] = before


def run_lease(lease: Lease) -> tuple[int, dict[str, Any]]:
    """(exit code, the progress report): 0 done, 3 parity failed, 4 the GPU failed."""
    with commit_named(lease.commit):
        return _run_lease(lease)


def _run_lease(lease: Lease) -> tuple[int, dict[str, Any]]:
    from antisym.training.devices import resolve_device

    started = lease.clock()
    device = resolve_device(lease.device)
    planned = planned_steps(lease.plan)
    report: dict[str, Any] = {
        "plan": lease.plan.name,
        "commit": lease.commit,
        "device": str(device),
        "budget_s": lease.budget_s,
        "launcher": (lease.launcher_why or f"{lease.plan.launcher} (pack_size {lease.plan.pack_size})")
        + (f", {lease.plan.concurrent} packs side by side" if lease.plan.concurrent > 1 else ""),
        "blocks_before": progress.blocks(lease.plan, lease.records, planned),
        "runs": [],
        "archives": [],
    }
    report["parity"] = kernel_gate.ensure_parity(lease.records, device)
    code, units = 0, []
    if report["parity"]["status"] == "failed":
        report["stopped"] = "the fused kernels failed parity: no run was trained, the records are as they were"
        code = 3
    elif report["parity"]["status"] == "passed":
        units.append(f"{kernel_gate.PARITY_DIR}/{report['parity']['key']}.json")
    attempted: set[str] = set()  # tried in this lease (an error or missing data is not retried within it)
    running: dict[Future, dict[PlannedRun, RunState]] = {}
    stop: str | None = None
    workers = lease.plan.concurrent  # packs trained side by side, each in a thread on its own CUDA stream
    with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        while True:
            while code == 0 and stop is None and len(running) < workers:
                nxt = next_group(lease, attempted, started)
                if isinstance(nxt, str):  # nothing left, or too little time to start more
                    if nxt == "budget spent" and not running:
                        stop = nxt
                    break
                group, passed, befores = nxt
                if passed:  # nothing to train: their outcomes are known now
                    running[submit(None, lambda p=passed: [outcome for _, outcome in p])] = {
                        run: befores[run] for run, _ in passed
                    }
                if group:
                    running[submit(pool, train_on_stream, lease, group, device)] = {
                        run: befores[run] for run, _, _ in group
                    }
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                befores = running.pop(future)
                results = future.result()
                for run, result in zip(befores, results, strict=True):
                    after = planned_state(lease.records, run)
                    report["runs"].append(
                        {"run": run.rel_dir, "before": vars(befores[run]), "after": vars(after),
                         "max_steps": planned[run.rel_dir]} | result
                        | ({"chosen": run.chosen, "point": list(run.point)} if run.chosen else {})
                    )  # fmt: skip
                    if result["outcome"] == "gpu failure":
                        stop = f"the GPU failed ({result['error']}); {run.rel_dir} was put back as it was"
                        code = 4
                    if result.get("recorded"):
                        units.append(run.rel_dir)
                    if result.get("stop_reason") == "time_limit" and stop is None:
                        stop = "budget spent"
                    if result.get("stop_reason") in ("SIGINT", "SIGTERM") and stop is None:
                        stop = f"stopped by {result['stop_reason']}"  # the whole lease, as the signal asks
    if stop is not None:
        report["stopped"] = stop
    others = [p for p in lease.out.glob("*") if p.name not in REPORT_FILES] if lease.out.is_dir() else []
    room = FILES_BACK - len(REPORT_FILES) - len(others)  # what is already there (a GPU check's report) travels too
    archives = archive_records(lease.records, units, lease.out, max(room, 1)) if units and lease.archive else []
    report.update(
        archives=[a.name for a in archives],
        blocks_after=progress.blocks(lease.plan, lease.records, planned),
        wall_s=round(lease.clock() - started, 1),
    )
    report.setdefault("stopped", "plan done")
    progress.write_report(report, lease.out)
    return code, report
