"""The training loop: iteration-based, as the paper counts training length, with periodic validation.

`run(cfg, run_dir)` is what train.py calls. Under the run directory's lock it checks the whole config (before any
data is read), decides whether the directory is resumed, skipped or started afresh (refusing changed settings),
then trains, writing the resolved config, metrics.jsonl, checkpoints/{last,best}.pt and summary.json. Every way a
run ends leaves a summary whose `status` says how: completed, diverged, failed or interrupted.

Read `_train` top to bottom: set up, step until every run has stopped, finish. What one run does in its directory
is member.py; packing several runs into one forward pass is pack.py; when to stop is stopping.py.
"""

from __future__ import annotations

import contextlib
import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from antisym.config import as_container
from antisym.errors import UserError
from antisym.models.jacobian import jacobian_eigen_stats
from antisym.training import pack
from antisym.training.checkpoint import atomic_save
from antisym.training.member import (
    Checked,
    Job,
    Member,
    evaluate_split,
    fail,
    finish,
    prepare,
    save_checkpoint,
    set_up,
    show_progress,
)
from antisym.training.rundir import TEST_PROBE, remove_if_empty, unwritable
from antisym.training.stopping import StopRequest, still_training
from antisym.training.threads import apply_threads, flushed_denormals

__all__ = ["Job", "run", "run_pack"]

log = logging.getLogger("antisym")


def run(
    cfg: Any, run_dir: str | Path, overrides: list[str] | None = None, checked: Checked | None = None
) -> dict[str, Any]:
    """Train one configuration into run_dir; returns the summary (also written to summary.json).

    A solo run is a pack of one (`run_pack`). `overrides` is recorded as overrides.yaml when this call trains;
    `checked` is the model a pre-check built for this run (train.py's), trained where its settings are the run's.
    """
    (result,) = run_pack([Job(as_container(cfg), Path(run_dir), overrides, checked)])
    if isinstance(result, BaseException):
        raise result
    return result


def run_pack(jobs: list[Job], pack_id: str | None = None) -> list[dict[str, Any] | BaseException]:
    """Train several runs of one shape as one (packed sweeps), each still an ordinary run directory.

    Every member is prepared alone (lock, settings checks, resume or skip) and, if it trains, trained in one loop
    with the others: their forward passes are one batched recurrence where the model class has `packed_forward`.
    A member that is refused, fails to load or diverges stops alone; the others go on. Returns, per job, its
    summary or the exception that stopped it. `pack_id` adds a `pack` record to the summaries.
    """
    results: list[dict[str, Any] | BaseException | None] = [None] * len(jobs)
    refused: list[tuple[Path, bool]] = []  # (run dir, whether it was there before)
    threads = (jobs[0].cfg.get("trainer") or {}).get("threads", 0) if jobs else 0
    applied = None  # set before the segments record it; logged only once something trains (a refusal logs nothing)
    if isinstance(threads, int) and not isinstance(threads, bool) and threads >= 0:  # else refused in prepare
        applied = apply_threads(threads)
    with ExitStack() as locks:
        members: list[Member] = []
        for i, job in enumerate(jobs):
            prepared = _prepare(job, locks, refused)
            if not isinstance(prepared, Member):  # skipped (its summary) or refused (the exception)
                results[i] = prepared
                continue
            prepared.index = i
            if pack_id is not None:
                prepared.summary["pack"] = {"id": pack_id, "member": i, "size": len(jobs)}
            members.append(prepared)
        if members:
            log.info("torch threads: %d (trainer.threads=%d)", applied, threads)
        with flushed_denormals(bool(members) and members[0].trainer.flush_denormal):  # a pack shares one setting
            _train(members)
        for member in members:
            results[member.index] = member.result
            if isinstance(member.result, UserError) and member.metrics is None:
                refused.append((member.run_dir, member.before.existed))
    for run_dir, existed in refused:  # the locks are released: a refused run leaves no directory it made
        if not existed:
            remove_if_empty(run_dir)
    return results  # type: ignore[return-value]


def _prepare(job: Job, locks: ExitStack, refused: list[tuple[Path, bool]]) -> Member | dict[str, Any] | BaseException:
    """A job's member under its directory's lock (held by `locks`), or the summary of a completed run it skips, or
    the exception that refused it (this member only; one that leaves nothing half-written goes into `refused`)."""
    existed = job.run_dir.exists()
    try:
        locks.enter_context(job.dir.lock())
        return prepare(job)
    except UserError as err:  # refused, invalid or unreadable (some of these are OSErrors too)
        refused.append((job.run_dir, existed))
        return err
    except OSError as err:  # a read-only folder, a full disk: nothing half-written
        refused.append((job.run_dir, existed))
        return unwritable(job.run_dir, err, "before training started; nothing was trained")
    except Exception as err:
        return err


def _train(members: list[Member]) -> None:
    """The loop: set every member up, step them until each has stopped, finish each. Each member's summary, or the
    exception that stopped it, is left in `member.result`; a solo run's crash (or second Ctrl-C) is raised."""
    stop = StopRequest()
    with stop.installed(), logging_redirect_tqdm():  # a signal in any phase stops cleanly; log lines keep the bar
        crash = _set_up(members)
        live = [m for m in members if m.status is None]
        crash = _steps(live, stop) or crash
        finished = _finish(live)
        crash = crash or finished
    if crash is not None and len(members) == 1:
        stopped = members[0].result
        raise stopped if isinstance(stopped, UserError | KeyboardInterrupt) else crash


def _set_up(members: list[Member]) -> BaseException | None:
    """Data, model and optimizer of each member; one that fails to set up stops alone."""
    crash = None
    for m in members:
        try:
            set_up(m)  # a signal while the data load sets the flag: the loop then stops at its first check
        except Exception as err:
            m.result = fail(m, err)
        except KeyboardInterrupt as err:  # a second Ctrl-C while loading: nothing trained since the checkpoint
            m.result = crash = fail(m, err)
    return crash


def _steps(live: list[Member], stop: StopRequest) -> BaseException | None:
    """Step the members until each has stopped (stopping.py decides when). A crash of the shared computation, or a
    second Ctrl-C, fails the members still training and is returned; those that had stopped finish as usual."""
    started = time.monotonic()
    for m in live:
        m.bar = tqdm(total=m.trainer.max_steps, initial=m.step, disable=not m.trainer.progress)
    try:
        while active := still_training(live, stop, started):
            for m, out in pack.step(active):
                _after_step(m, out)
    except BaseException as err:
        for m in (m for m in live if m.status is None):
            m.result = fail(m, err)
            with contextlib.suppress(OSError):  # a full disk fails the buffered rows' flush too
                m.metrics.close()
        return err
    finally:
        for m in live:
            m.bar.close()
    return None


def _after_step(m: Member, out: pack.StepOut) -> None:
    """The member's optimizer step on its own gradient, then what follows a step: a training row, the Jacobian
    metric, and at each validation its checkpoints."""
    t = m.trainer
    m.optimizer.step()
    m.step += 1
    if m.step % t.log_every == 0 or m.step == 1:
        acc = (out.logits.argmax(-1) == out.y).float().mean().item()
        row = {"loss": out.loss, "acc": acc, "grad_norm": out.grad_norm, "lr": m.optimizer.param_groups[0]["lr"]}
        m.metrics.log({"step": m.step, "split": "train", **row, "time_s": time.monotonic() - m.t0})
    if t.jacobian_every > 0 and m.step % t.jacobian_every == 0:
        m.metrics.log({"step": m.step, "split": "jacobian", **jacobian_eigen_stats(m.model, m.jacobian_x)})
    if m.step % t.eval_every == 0 or m.step == t.max_steps:
        _validate(m)
    show_progress(m, out.loss)
    m.bar.update(1)


def _validate(m: Member) -> None:
    """Validation accuracy, a test pass beside it under trainer.test_every_eval (reported, never choosing), best.pt
    where validation improved, and last.pt."""
    val = evaluate_split(m, "val", f"step {m.step}, validation")
    m.metrics.log({"step": m.step, "split": "val", **val})
    if m.trainer.test_every_eval:
        test = evaluate_split(m, "test", f"step {m.step}, test (trainer.test_every_eval)")
        m.metrics.log({"step": m.step, "split": TEST_PROBE, **test})
    if val["acc"] > m.best["val_acc"]:
        m.best = {"val_acc": val["acc"], "step": m.step}
        atomic_save({"model": m.model.state_dict(), "step": m.step}, m.dir.best_checkpoint)
    save_checkpoint(m)


def _finish(live: list[Member]) -> KeyboardInterrupt | None:
    """Each member that stopped without an error finishes: its test evaluations and summary."""
    crash = None
    for m in live:
        if m.result is not None:
            continue
        try:  # a first signal here lets the final evaluation finish: the run was done
            m.result = finish(m)
        except (Exception, KeyboardInterrupt) as err:  # a second Ctrl-C in the final evaluation
            m.result = fail(m, err)
            crash = crash or (err if isinstance(err, KeyboardInterrupt) else None)
    return crash
