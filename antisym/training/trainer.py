"""The training loop: iteration-based, as the paper counts training length, with periodic validation.

`run(cfg, run_dir)` is what train.py calls. Under the run directory's lock it checks the whole config (before any
data is read), decides whether the directory is resumed, skipped or started afresh (refusing changed settings),
then trains, writing the resolved config, metrics.jsonl, checkpoints/{last,best}.pt and summary.json. Every way a
run ends leaves a summary whose `status` says how: completed, diverged, failed or interrupted.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import to_absolute_path
from omegaconf import OmegaConf
from torch import nn
from tqdm import tqdm

from antisym.analysis.jacobian import jacobian_eigen_stats
from antisym.config import RunConfig, settings_differences
from antisym.data import SequenceTask, build_task, task_spec
from antisym.errors import CheckpointError, ConfigError, UserError
from antisym.models import build_model, count_parameters
from antisym.provenance import device_description, git_state
from antisym.training.checkpoint import atomic_save, load_checkpoint, restore_train_state, save_train_state
from antisym.training.metrics import MetricsLogger
from antisym.training.optim import build_optimizer, lr_factor
from antisym.training.rundir import (
    CONFIG_FILE,
    METRICS_FILE,
    OVERRIDES_FILE,
    SUMMARY_FILE,
    RunLock,
    holds_run,
    move_aside,
    read_summary,
    write_json,
)

log = logging.getLogger("antisym")


class SettingsChangedError(UserError):
    """The run directory holds a run trained under other settings than the ones given."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is available; use trainer.device=auto or cpu.")
    return torch.device(name)


class BatchSampler:
    """Shuffled epochs of training indices from a seeded generator; its state goes into checkpoints."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, min(batch_size, n)
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch_size > self.n:  # drop the ragged tail, start a new epoch
            self.order = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.pos = state["order"], state["pos"]


@torch.no_grad()
def evaluate(model: nn.Module, task: SequenceTask, batch_size: int, device: torch.device) -> dict[str, float]:
    """Mean loss and accuracy over a whole split."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(task), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(task)), device=task.labels.device)
        x, y = task.batch(idx)
        logits = model(x.to(device))
        y = y.to(device)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(-1) == y).sum().item()
    model.train()
    return {"loss": loss_sum / max(1, len(task)), "acc": correct / max(1, len(task))}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class StopRequest:
    """SIGINT / SIGTERM set a flag that the loop reads between steps, so the run stops at a step boundary with a
    consistent checkpoint. A second Ctrl-C stops at once (no checkpoint)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name
        log.warning("%s received: stopping after this step (Ctrl-C again to stop at once)", self.reason)

    @contextmanager
    def installed(self):
        previous = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (a launcher's worker thread): signals stay as they were
            pass
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _container(cfg: Any) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def run(cfg: Any, run_dir: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train one configuration into run_dir; returns the summary (also written to summary.json).

    `overrides` (the command line that composed cfg) is recorded as overrides.yaml when this call trains.
    """
    run_dir = Path(run_dir)
    with RunLock(run_dir):
        return _run_locked(_container(cfg), run_dir, overrides)


def _saved_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CONFIG_FILE
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False) if path.is_file() else None


def _refuse(run_dir: Path, diffs: list[str], what: str) -> SettingsChangedError:
    return SettingsChangedError(
        f"{run_dir} holds a run {what} under other settings ({'; '.join(diffs)}). Its results would be reported "
        "under settings that did not produce them, so it is left as it is. Give the same settings to continue it, "
        "or write the new run to another directory (hydra.run.dir=..., or another hydra.sweep.dir for a sweep)."
    )


def _record_settings(run_dir: Path, cfg: dict[str, Any], overrides: list[str] | None) -> None:
    OmegaConf.save(OmegaConf.create(cfg), run_dir / CONFIG_FILE)
    if overrides is not None:
        OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / OVERRIDES_FILE)


def _resume_source(resume: bool | str, run_dir: Path) -> Path | None:
    """trainer.resume: false, true (this run dir) or a path to an earlier run dir or checkpoint file."""
    if resume is False:
        return None
    path = run_dir if resume is True else Path(to_absolute_path(str(resume)))
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if path.is_file():
        return path
    if resume is True:
        log.info("trainer.resume=true but %s does not exist yet: starting from step 0.", path)
        return None
    raise CheckpointError(f"trainer.resume={resume} but there is no checkpoint at {path}.")


def _run_locked(cfg: dict[str, Any], run_dir: Path, overrides: list[str] | None) -> dict[str, Any]:
    previous = read_summary(run_dir)
    commit, dirty = git_state()
    summary: dict[str, Any] = {
        "status": "running",
        "steps": 0,
        "git_commit": commit or "unknown",
        "git_dirty": dirty,
        "started_at": now(),
        "model": cfg.get("model", {}).get("name"),
        "dataset": cfg.get("dataset", {}).get("name"),
        "tags": list(cfg.get("tags") or []),
    }
    started = time.time()
    try:
        settings = RunConfig.from_cfg(cfg)
        # Built once on the CPU before any data is read: the model's constructor checks its own ranges.
        spec = task_spec(settings.task)
        build_model(settings.model, spec.input_size, spec.num_classes)
        device = resolve_device(settings.trainer.device)
    except UserError as err:
        if not holds_run(run_dir):  # never overwrite the files of a run already there
            _record_settings(run_dir, cfg, overrides)
            summary.update(status="failed", error=f"{type(err).__name__}: {err}", wall_time_s=0.0)
            write_json(summary, run_dir / SUMMARY_FILE)
        raise

    t = settings.trainer
    saved = _saved_config(run_dir)
    if t.skip_completed and previous is not None and previous.get("status") == "completed" and saved is not None:
        if not settings_differences(saved, cfg, allow_longer=False):
            log.info("%s already completed (trainer.skip_completed=true): skipped", run_dir)
            return previous
        diffs = settings_differences(saved, cfg)
        if diffs or t.resume is False:
            raise _refuse(run_dir, diffs or ["trainer.max_steps raised; add trainer.resume=true"], "completed")

    source = _resume_source(t.resume, run_dir)
    state = None
    if source is not None:
        source_cfg = saved if source.parent.parent == run_dir else _saved_config(source.parent.parent)
        diffs = settings_differences(source_cfg, cfg) if source_cfg is not None else []
        if diffs:
            raise _refuse(run_dir, diffs, f"checkpointed at {source}")
        state = load_checkpoint(
            source,
            "Resume from a good copy, or start again with trainer.resume=false (the old files are kept in "
            "superseded/).",
        )
        if state.get("step", 0) > t.max_steps:
            raise ConfigError(
                f"trainer.max_steps={t.max_steps} is below the step of the checkpoint to resume ({state['step']}, "
                f"{source}); set trainer.max_steps >= {state['step']} or start a new run."
            )
    if source is None or source.parent.parent != run_dir:
        move_aside(run_dir, "a fresh start (no checkpoint resumed) in a directory that held a run")
    if state is not None:
        summary["started_at"] = state.get("started_at", summary["started_at"])
        summary["resumed"] = [*state.get("resumed", []), {"at_step": state.get("step", 0), "at": now()}]

    _record_settings(run_dir, cfg, overrides)
    summary["device"] = device_description(str(device))
    write_json(summary, run_dir / SUMMARY_FILE)
    elapsed_before = float(state.get("wall_time_s", 0.0)) if state is not None else 0.0
    try:
        return _train(settings, cfg, run_dir, device, summary, state, source, started - elapsed_before)
    except BaseException as err:
        summary.update(
            status="failed", error=f"{type(err).__name__}: {err}", wall_time_s=time.time() - started + elapsed_before
        )
        write_json(summary, run_dir / SUMMARY_FILE)
        raise


def _train(
    settings: RunConfig,
    cfg: dict[str, Any],
    run_dir: Path,
    device: torch.device,
    summary: dict,
    state: dict | None,
    state_path: Path | None,
    t0: float,
) -> dict:
    """The loop. t0: the wall-clock origin of the run (now minus the time spent before a resume)."""
    t = settings.trainer
    root = to_absolute_path(settings.data.root)
    tasks = {
        split: build_task(settings.task, root, split, settings.data.download, settings.data.allow_subset).to(device)
        for split in ("train", "val", "test")
    }
    if tasks["train"].permutation is not None:
        torch.save(tasks["train"].permutation.cpu(), run_dir / "permutation.pt")
    spec = tasks["train"].spec

    torch.manual_seed(t.seed)
    model = build_model(settings.model, spec.input_size, spec.num_classes).to(device)
    optimizer = build_optimizer(settings.optimizer, model)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    sampler = BatchSampler(len(tasks["train"]), t.batch_size, t.seed)
    noise_gen = torch.Generator(device=device).manual_seed(t.seed + 1)
    summary.update(
        params=count_parameters(model),
        train_size=len(tasks["train"]),
        val_size=len(tasks["val"]),
        test_size=len(tasks["test"]),
        max_steps=t.max_steps,
    )
    log.info(
        "%s on %s: %d parameters, %s, run dir %s",
        summary["model"],
        summary["dataset"],
        summary["params"],
        device,
        run_dir,
    )

    ckpt_dir = run_dir / "checkpoints"
    step, best = 0, {"val_acc": -1.0, "step": -1}
    if state is not None:
        rest = restore_train_state(state, state_path, model, optimizer, sampler, noise_gen)
        step, best = rest["step"], rest["best"]
        log.info("resumed from %s at step %d", state_path, step)
    if t.jacobian_every > 0:  # a fixed validation batch for the Jacobian metric
        jacobian_x = tasks["val"].batch(torch.arange(min(t.jacobian_batch, len(tasks["val"]))))[0]

    def checkpoint() -> None:
        save_train_state(
            ckpt_dir / "last.pt",
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            sampler=sampler.state_dict(),
            noise_gen=noise_gen.get_state(),
            step=step,
            best=best,
            wall_time_s=time.time() - t0,
            started_at=summary["started_at"],
            resumed=summary.get("resumed", []),
        )

    status, stop = "completed", StopRequest()
    limit = t.time_limit_s
    started = time.time()
    with (
        MetricsLogger(
            run_dir / METRICS_FILE, settings.wandb, cfg, run_dir, step if state is not None else None
        ) as metrics,
        tqdm(total=t.max_steps, initial=step, disable=not t.progress, dynamic_ncols=True) as bar,
        stop.installed(),
    ):
        model.train()
        while step < t.max_steps:
            if stop.reason is None and limit and time.time() - started > limit:
                stop.reason = "time_limit"
            if stop.reason is not None:
                status = "interrupted"
                checkpoint()
                summary["stop_reason"] = stop.reason
                break
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * lr_factor(t, step)
            idx = sampler.next().to(tasks["train"].labels.device)
            x, y = tasks["train"].batch(idx, noise_gen)
            logits = model(x.to(device))
            loss = F.cross_entropy(logits, y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            # clip_grad_norm_ with an infinite bound only measures; the norm is logged and checked either way.
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip or math.inf).item()
            if not (math.isfinite(loss.item()) and math.isfinite(grad_norm)):
                # Stop before the step: the parameters and the checkpoints written so far stay finite.
                status = "diverged"
                what = "loss" if not math.isfinite(loss.item()) else "gradient norm"
                summary.update(diverged_at_step=step + 1, diverged_reason=f"non-finite {what}")
                kept = f"checkpoints up to step {step} are kept" if best["step"] >= 0 else "no checkpoint was written"
                log.warning(
                    "non-finite %s (loss %s, gradient norm %s) at step %d: stopping; %s.",
                    what,
                    loss.item(),
                    grad_norm,
                    step + 1,
                    kept,
                )
                break
            optimizer.step()
            step += 1

            if step % t.log_every == 0 or step == 1:
                acc = (logits.argmax(-1) == y.to(device)).float().mean().item()
                row = {"loss": loss.item(), "acc": acc, "grad_norm": grad_norm, "lr": optimizer.param_groups[0]["lr"]}
                metrics.log({"step": step, "split": "train", **row, "time_s": time.time() - t0})
                bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}")
            if t.jacobian_every > 0 and step % t.jacobian_every == 0:
                metrics.log({"step": step, "split": "jacobian", **jacobian_eigen_stats(model, jacobian_x.to(device))})
            if step % t.eval_every == 0 or step == t.max_steps:
                val = evaluate(model, tasks["val"], t.eval_batch_size, device)
                metrics.log({"step": step, "split": "val", **val})
                if val["acc"] > best["val_acc"]:
                    best = {"val_acc": val["acc"], "step": step}
                    atomic_save({"model": model.state_dict(), "step": step}, ckpt_dir / "best.pt")
                checkpoint()
                bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{val['acc']:.3f}")
            bar.update(1)

        summary.update(
            status=status,
            steps=step,
            best_val_acc=best["val_acc"] if best["step"] >= 0 else None,
            best_step=best["step"] if best["step"] >= 0 else None,
        )
        if status != "interrupted":
            summary["final_test_acc"] = evaluate(model, tasks["test"], t.eval_batch_size, device)["acc"]
            summary["test_acc"] = None
            if best["step"] >= 0:
                best_state = load_checkpoint(ckpt_dir / "best.pt", "Retrain the run: its best checkpoint is lost.")
                model.load_state_dict(best_state["model"])
                summary["test_acc"] = evaluate(model, tasks["test"], t.eval_batch_size, device)["acc"]
            summary["finished_at"] = now()
            metrics.log(
                {"step": step, "split": "test", "acc": summary["test_acc"], "final_acc": summary["final_test_acc"]}
            )
        summary["wall_time_s"] = time.time() - t0
        metrics.close(summary)
    write_json(summary, run_dir / SUMMARY_FILE)
    log.info(
        "%s after %d steps: best val acc %s, test acc %s",
        status,
        step,
        summary["best_val_acc"],
        summary.get("test_acc"),
    )
    return summary
