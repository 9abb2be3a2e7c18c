"""One run in training, alone or as a member of a pack: from what its directory does (skip, refuse, resume or start)
through its data, model and checkpoints to the summary that says how it ended.

The loop (trainer.py) only steps members; everything a member writes to its run directory goes through here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hydra.utils import to_absolute_path
from torch import Tensor, nn
from tqdm import tqdm

from antisym.config import RunConfig, TrainerConfig
from antisym.data import DataError, SequenceTask, build_task, task_class, task_files, task_spec
from antisym.data.files import check_present, fingerprint
from antisym.errors import ConfigError, UserError
from antisym.models import build_model, count_parameters
from antisym.provenance import code_version, device_description
from antisym.training.branch import open_branch
from antisym.training.checkpoint import atomic_save, load_checkpoint, restore_train_state
from antisym.training.devices import DTYPES, resolve_device
from antisym.training.evaluation import eval_size, evaluate
from antisym.training.metrics import MetricsLogger
from antisym.training.optim import build_optimizer
from antisym.training.rundir import (
    SUMMARY_FILE,
    RunDir,
    Snapshot,
    Status,
    resume_source,
    segments_before,
    skips_completed,
    take_over,
    unwritable,
)
from antisym.training.sampling import BatchSampler

log = logging.getLogger("antisym")
# Held around every use of torch's global generator (seed, then initialise a model): packs trained side by side in
# threads (the campaign's concurrent packs) would otherwise draw each other's initial weights.
GLOBAL_RNG = threading.Lock()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True)
class Checked:
    """A model a pre-check built (its constructor checks its own ranges), and what it was built from: a run of the
    same model, task and seed trains this very model instead of building another."""

    key: str
    model: nn.Module


@dataclass
class Job:
    """One run to train: its resolved config, directory and the command-line overrides that composed it."""

    cfg: dict[str, Any]
    run_dir: Path
    overrides: list[str] | None = None
    checked: Checked | None = None  # the model the command's pre-check built for it, trained instead of a second

    @property
    def dir(self) -> RunDir:
        return RunDir(self.run_dir)


@dataclass
class Member:
    """A run being trained: its settings and summary, (once set up) its data, model and training state, and (once
    it stops) its result."""

    job: Job
    settings: RunConfig
    device: torch.device
    summary: dict[str, Any]
    state: dict[str, Any] | None
    state_path: Path | None
    t0: float  # time.monotonic() at the start less the time before a resume: a clock set back changes nothing
    before: Snapshot  # the directory's files before this call: put back if it is refused before its first step
    index: int = 0
    status: str | None = None  # None while training
    step: int = 0
    saved_step: int = 0  # the step of the last checkpoint on disk (last.pt)
    best: dict[str, Any] = field(default_factory=lambda: {"val_acc": -1.0, "step": -1})
    tasks: dict[str, SequenceTask] = field(default_factory=dict)
    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    base_lrs: list[float] = field(default_factory=list)
    sampler: BatchSampler | None = None
    noise_gen: torch.Generator | None = None
    metrics: MetricsLogger | None = None
    jacobian_x: Tensor | None = None
    bar: tqdm | None = None
    result: dict[str, Any] | BaseException | None = None  # the summary, or the exception that stopped it

    @property
    def run_dir(self) -> Path:
        return self.job.run_dir

    @property
    def dir(self) -> RunDir:
        return self.job.dir

    @property
    def trainer(self) -> TrainerConfig:
        return self.settings.trainer


def prepare(job: Job) -> Member | dict[str, Any]:
    """Check the settings and decide what this directory does: skip (returns the completed summary), refuse (raises),
    resume or start afresh (returns the member, its settings recorded and a running summary written)."""
    cfg, run_dir = job.cfg, job.run_dir
    settings, device, model = check_settings(cfg, checked=job.checked)  # a refusal here writes nothing
    if not settings.data.download:
        check_present(to_absolute_path(settings.data.root), task_files(settings.task))
    previous = job.dir.summary()
    t = settings.trainer
    if skips_completed(run_dir, cfg, previous, t.skip_completed, t.resume):
        return previous
    if t.init_from is not None and not isinstance(t.resume, bool):
        raise ConfigError(
            f"trainer.resume={t.resume} and trainer.init_from={t.init_from} both name a run to continue; give one "
            "(init_from: a new run from another's checkpoint; resume: the same run, its settings kept)."
        )
    source = resume_source(run_dir, cfg, t.resume)
    branch = None
    if t.init_from is not None and source is None:  # a fresh start: from the source's checkpoint
        branch = open_branch(t.init_from, cfg, t, to_absolute_path)  # read and checked; nothing written yet
        log.info("%s: a branch of %s at step %d (trainer.init_from)", run_dir, branch.source.where(
            branch.source.checkpoint), branch.step)  # fmt: skip
        previous = branch.summary  # the data files and segments the branch inherits
    if source is not None and source.parent.parent == run_dir:  # the metrics a resume rewrites: refused if not rows
        job.dir.metrics(strict=True)
    state = branch.state if branch is not None else None
    if source is not None:
        state = load_checkpoint(
            source,
            "Resume from a good copy, or start again with trainer.resume=false (the old files are kept in "
            "superseded/).",
        )
    if state is not None and state.get("step", 0) > t.max_steps:
        raise ConfigError(
            f"trainer.max_steps={t.max_steps} is below the step of the checkpoint to continue ({state['step']}, "
            f"{source or t.init_from}); set trainer.max_steps >= {state['step']} or start a new run."
        )
    start_step = state.get("step", 0) if state is not None else 0
    imported = (settings.model.target, settings.optimizer.target, task_class(settings.task))
    version = code_version(modules=[cls.__module__ for cls in imported])
    if version.get("git_untracked"):
        log.warning("%s: recorded as dirty: it imports files git does not track: %s", run_dir,
                    ", ".join(version["git_untracked"]))  # fmt: skip
    segment = {
        "from_step": start_step,
        "at": now(),
        **version,
        "git_commit": version["git_commit"] or "unknown",
        "device": device_description(str(device)),
        "torch": str(torch.__version__),  # a plain str: checkpoints load with weights_only
        "flush_denormal": settings.trainer.flush_denormal,
    }
    summary: dict[str, Any] = {
        "status": Status.RUNNING,
        "steps": start_step,  # what a resume of it continues from
        **{k: v for k, v in segment.items() if k.startswith("git_")},  # commit, dirty, and where the commit came from
        "started_at": segment["at"],
        "model": cfg.get("model", {}).get("name"),
        "dataset": cfg.get("dataset", {}).get("name"),
        "tags": list(cfg.get("tags") or []),
    }
    if branch is not None:
        segment["branched_from"] = branch.record
    before = take_over(run_dir, source)
    summary["segments"] = [*(segments_before(state, previous) if state is not None else []), segment]
    if state is not None:
        if previous is not None and previous.get("data_files"):  # what it trained on: checked once data is found
            summary["data_files"] = previous["data_files"]
        summary["started_at"] = state.get("started_at", summary["started_at"])
    summary["device"] = segment["device"]
    try:
        if branch is not None:  # the source's files, as a resume of this directory reads them
            branch.write(run_dir, before.written)
            source = job.dir.last_checkpoint
        job.dir.record_settings(cfg, job.overrides)
        job.dir.write_summary(summary)
    except BaseException:  # a full disk, a signal: the directory as it was, nothing half-recorded
        with contextlib.suppress(OSError):
            before.restore()
        raise
    elapsed_before = float(state.get("wall_time_s", 0.0)) if state is not None else 0.0
    t0 = time.monotonic() - elapsed_before
    return Member(job, settings, device, summary, state, source, t0, before, model=model)


def model_key(settings: RunConfig) -> str:
    """What a run's initial model is built from: its class and settings, the task's shapes, the seed."""
    return repr((settings.model, settings.task, settings.trainer.seed))


def check_settings(
    cfg: Any, *, device: bool = True, checked: Checked | None = None
) -> tuple[RunConfig, torch.device | None, nn.Module]:
    """Every check that needs neither data nor a run directory: the config's values and types, the model (built on
    the CPU from the run's seed: its constructor checks its own ranges, and the run trains this very model; `checked`'s
    where it was built from the same settings) and, with `device`, the device there. train.py runs it on every job
    of a command before Hydra starts any."""
    settings = RunConfig.from_cfg(cfg)
    if checked is not None and checked.key == model_key(settings):
        model = checked.model
    else:
        spec = task_spec(settings.task)
        with GLOBAL_RNG:
            torch.manual_seed(settings.trainer.seed)
            model = build_model(settings.model, spec.input_size, spec.num_classes)
    return settings, resolve_device(settings.trainer.device) if device else None, model


def evaluate_split(m: Member, split: str, what: str) -> dict[str, float]:
    """evaluate() of a member on a split under trainer.eval_limit, with a log line first: a long evaluation (the
    final test set twice, on a CPU) shows what it is doing instead of looking hung."""
    t = m.trainer
    n = eval_size(m.tasks[split], t.eval_limit)
    log.info(
        "%s: %s on %d %s examples%s",
        m.run_dir,
        what,
        n,
        split,
        " (trainer.eval_limit)" if n < len(m.tasks[split]) else "",
    )
    return evaluate(m.model, m.tasks[split], t.eval_batch_size, m.device, DTYPES[t.dtype], t.eval_limit)


def show_progress(m: Member, loss: float) -> None:
    """The bar's postfix, set every step after that step's validation: the bar closes on the run's best validation
    accuracy, the one the final log line reports, not the one before the last evaluation."""
    best_val = f"{m.best['val_acc']:.3f}" if m.best["step"] >= 0 else "-"
    m.bar.set_postfix(loss=f"{loss:.3f}", best_val=best_val, refresh=False)


def set_up(member: Member) -> None:
    """Data, model, optimizer, sampler and generators of one member, restored from its checkpoint when resuming."""
    t, device = member.trainer, member.device
    data = member.settings.data
    root = to_absolute_path(data.root)
    member.tasks = {
        split: build_task(member.settings.task, root, split, data.download, data.allow_subset).to(device)
        for split in ("train", "val", "test")
    }
    check_data(member, fingerprint(root, member.tasks["train"].task.files))
    if t.batch_size > len(member.tasks["train"]):
        raise ConfigError(
            f"trainer.batch_size={t.batch_size} is larger than the training set ({len(member.tasks['train']):,} "
            f"examples after the validation split); set trainer.batch_size <= {len(member.tasks['train'])}."
        )
    if member.tasks["train"].permutation is not None:
        atomic_save(member.tasks["train"].permutation.cpu(), member.dir.permutation_file)
    member.model = member.model.to(device, DTYPES[t.dtype])  # as check_settings built it, from the run's seed
    member.optimizer = build_optimizer(member.settings.optimizer, member.model)
    member.base_lrs = [g["lr"] for g in member.optimizer.param_groups]
    member.sampler = BatchSampler(len(member.tasks["train"]), t.batch_size, t.seed)
    member.noise_gen = torch.Generator(device=device).manual_seed(t.seed + 1)
    member.summary.update(
        params=count_parameters(member.model),
        train_size=len(member.tasks["train"]),
        val_size=len(member.tasks["val"]),
        test_size=len(member.tasks["test"]),
        max_steps=t.max_steps,
    )
    if member.state is not None:
        rest = restore_train_state(
            member.state, member.state_path, member.model, member.optimizer, member.sampler, member.noise_gen
        )
        member.step, member.best = rest["step"], rest["best"]
        member.saved_step = member.step
        log.info("resumed from %s at step %d", member.state_path, member.step)
    if t.jacobian_every > 0:  # a fixed validation batch for the Jacobian metric
        n = min(t.jacobian_batch, len(member.tasks["val"]))
        member.jacobian_x = member.tasks["val"].batch(torch.arange(n))[0].to(device, DTYPES[t.dtype])
    cfg = member.job.cfg
    resume_step = member.step if member.state is not None else None
    member.metrics = MetricsLogger(member.dir.metrics_file, member.settings.wandb, cfg, member.run_dir, resume_step)
    log.info(
        "%s on %s: %d parameters, %s, %d of %d iterations to train, run dir %s",
        member.summary["model"],
        member.summary["dataset"],
        member.summary["params"],
        device,
        t.max_steps - member.step,
        t.max_steps,
        member.run_dir,
    )


def check_data(member: Member, files: dict[str, dict[str, Any]]) -> None:
    """Record the data files a run reads (size, MD5, whether file and content are the official release's); refuse to
    continue a run on other files than it trained on (a resume under another data.root is fine where the files are
    the same)."""
    before = member.summary.get("data_files")
    if before:
        changed = [f"{name} (MD5 {before.get(name, {}).get('md5')} -> {now['md5']})"
                   for name, now in files.items() if before.get(name, {}).get("md5") != now["md5"]]  # fmt: skip
        if changed:
            raise DataError(
                f"{member.run_dir} trained on other data files than those under {member.settings.data.root}: "
                f"{'; '.join(changed)}. Continuing it would report a run of neither. Point data.root at the files "
                "it trained on, or start the run afresh in another directory."
            )
    other = [name for name, f in files.items() if f.get("content") == "other"]
    if other:
        meant = "a subset is meant (data.allow_subset=true)" if member.settings.data.allow_subset else (
            "altered examples")  # fmt: skip
        log.warning("%s: other examples than the official release's in %s (%s): the tables never report this run "
                    "as a paper's row beside runs on the official data.", member.run_dir, ", ".join(other),
                    meant)  # fmt: skip
    member.summary["data_files"] = files


def save_checkpoint(m: Member) -> None:
    """last.pt: everything needed to continue exactly (model, optimizer, sampler and noise generator states, step,
    best validation result, and the elapsed wall time and start date, which survive a resume); the running summary
    takes its step, so a run killed outright (SIGKILL, a lease's end) is read back at the step it resumes from."""
    state = {
        "model": m.model.state_dict(),
        "optimizer": m.optimizer.state_dict(),
        "sampler": m.sampler.state_dict(),
        "noise_gen": m.noise_gen.get_state(),
        "step": m.step,
        "best": m.best,
        "wall_time_s": time.monotonic() - m.t0,
        "started_at": m.summary["started_at"],
        "segments": m.summary["segments"],
    }
    atomic_save(state, m.dir.last_checkpoint)
    m.saved_step = m.step
    m.summary.update(steps=m.step, wall_time_s=state["wall_time_s"])  # a killed run's record still says how far
    m.dir.write_summary(m.summary)


def finish(m: Member) -> dict[str, Any]:
    """Test accuracy at the best-validation checkpoint and of the final model; the summary written and returned.
    Where the best checkpoint is the final model, the test split is evaluated once (on pixel tasks it takes most of
    a short run); a run that diverged at its first step has no model worth evaluating, and says so."""
    summary, best = m.summary, m.best
    summary.update(
        status=m.status,
        steps=m.step,
        best_val_acc=best["val_acc"] if best["step"] >= 0 else None,
        best_step=best["step"] if best["step"] >= 0 else None,
    )
    if m.status != Status.INTERRUPTED:
        summary["test_acc"] = summary["final_test_acc"] = None
        if m.step > 0:
            summary["final_test_acc"] = evaluate_split(m, "test", "final model, test")["acc"]
        if best["step"] == m.step:  # the best checkpoint holds these very weights
            summary["test_acc"] = summary["final_test_acc"]
        elif best["step"] >= 0:
            best_state = load_checkpoint(m.dir.best_checkpoint, "Retrain the run: its best checkpoint is lost.")
            m.model.load_state_dict(best_state["model"])
            summary["test_acc"] = evaluate_split(m, "test", f"best checkpoint (step {best['step']}), test")["acc"]
        summary["finished_at"] = now()
        m.metrics.log(
            {"step": m.step, "split": "test", "acc": summary["test_acc"], "final_acc": summary["final_test_acc"]}
        )
    summary["wall_time_s"] = time.monotonic() - m.t0
    m.metrics.close(summary)
    m.dir.write_summary(summary)
    log.info("%s: %s", m.run_dir, result_line(summary))
    return summary


def how_it_ended(summary: dict[str, Any]) -> str:
    """The final log line's account of a run's length: `steps` counts the steps completed (what a resume continues
    from), so a run that diverged at step k says so beside its k - 1 completed steps, as the divergence warning does."""
    if summary["status"] == Status.DIVERGED:
        return f"diverged at step {summary['diverged_at_step']} ({summary['steps']} steps completed)"
    return f"{summary['status']} after {summary['steps']} steps"


def result_line(summary: dict[str, Any]) -> str:
    """The final log line: how the run ended and what was evaluated, in words where a number is absent (never
    `None`: a run that diverged at its first step has no checkpoint, an interrupted one no test evaluation)."""
    ended, best, test, final = (how_it_ended(summary), summary.get("best_step"), summary.get("test_acc"),
                                summary.get("final_test_acc"))  # fmt: skip
    if best is None and final is None:
        return f"{ended}: " + (
            "no checkpoint to evaluate" if summary["status"] == Status.DIVERGED else "no validation yet"
        )
    said = [f"best val acc {summary['best_val_acc']:.4f} at step {best:,}" if best is not None else "no validation"]
    if test is not None:
        said.append(f"test acc {test:.4f} at that checkpoint")
    if final is not None and best != summary["steps"]:
        said.append(f"final model's test acc {final:.4f}")
    if summary["status"] == Status.INTERRUPTED:
        said.append("test split not evaluated until the run finishes")
    return f"{ended}: {', '.join(said)}"


def fail(member: Member, err: BaseException) -> BaseException:
    """Record a member that stopped on an error (or a second Ctrl-C, as interrupted at its last checkpoint)."""
    interrupted = isinstance(err, KeyboardInterrupt)
    member.status = Status.INTERRUPTED if interrupted else Status.FAILED
    if isinstance(err, OSError) and not isinstance(err, UserError) and member.metrics is None:
        err = unwritable(member.run_dir, err, "before training started; nothing was trained")
    if isinstance(err, UserError) and member.metrics is None:
        with contextlib.suppress(OSError):  # refused while setting up (data, batch size, a full disk): the
            member.before.restore()  # directory as it was
        return err
    if interrupted:  # stopped at once: the steps since the last checkpoint are lost, the record says so
        member.summary.update(status=Status.INTERRUPTED, steps=member.saved_step, stop_reason="SIGINT (second)")
    else:  # a checkpoint that failed to load still holds its step
        on_disk = max(member.step, (member.state or {}).get("step", 0))
        member.summary.update(status=Status.FAILED, steps=on_disk, error=f"{type(err).__name__}: {err}")
    member.summary["wall_time_s"] = time.monotonic() - member.t0
    try:
        member.dir.write_summary(member.summary)
        said = f"its {SUMMARY_FILE} says so"
    except OSError:  # the disk that failed the run fails its summary too: it still says 'running' (killed)
        said = f"its {SUMMARY_FILE} could not be written either and reads as interrupted"
    if isinstance(err, OSError) and not isinstance(err, UserError):
        err = unwritable(member.run_dir, err, f"at step {member.step}; {said}")
    if isinstance(err, UserError):
        err.recorded = True  # stopped after it started training: its log lines are its own
    return err
