"""The training loop: iteration-based, as the paper counts training length, with periodic validation.

`run(cfg, run_dir)` is what train.py calls. It validates the whole config before reading any data, writes the
resolved config, metrics.jsonl, checkpoints/{last,best}.pt and summary.json into run_dir, and always leaves a
summary whose `status` says whether the run completed, diverged or failed.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from antisym.analysis.jacobian import jacobian_eigen_stats
from antisym.data import SequenceTask, build_task, task_spec, validate_dataset_cfg
from antisym.errors import CheckpointError, ConfigError
from antisym.models import build_model, count_parameters, validate_model_cfg
from antisym.provenance import device_description, git_commit
from antisym.training.checkpoint import (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    atomic_save,
    read_summary,
    write_json,
)
from antisym.training.metrics import MetricsLogger
from antisym.training.optim import build_optimizer, lr_factor, optimizer_class, validate_schedule

log = logging.getLogger("antisym")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA device is available; use trainer.device=auto or cpu.")
    return torch.device(name)


def validate(cfg: DictConfig) -> None:
    """Every check that can fail without data, so bad input stops before anything expensive starts."""
    validate_model_cfg(OmegaConf.to_container(cfg.model, resolve=True))
    validate_dataset_cfg(OmegaConf.to_container(cfg.dataset, resolve=True))
    optimizer_class(OmegaConf.to_container(cfg.optimizer, resolve=True))
    t = cfg.trainer
    validate_schedule(t)
    for key in ("max_steps", "batch_size", "eval_every", "eval_batch_size", "log_every"):
        if not isinstance(t[key], int) or t[key] <= 0:
            raise ConfigError(f"trainer.{key} must be a positive integer, got {t[key]!r}.")
    if float(cfg.optimizer.lr) <= 0:
        raise ConfigError(f"optimizer.lr must be > 0, got {cfg.optimizer.lr}.")
    if float(t.grad_clip) < 0:
        raise ConfigError(f"trainer.grad_clip must be >= 0 (0 turns clipping off), got {t.grad_clip}.")
    resolve_device(str(t.device))


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


def resume_path(cfg: DictConfig, run_dir: Path) -> Path | None:
    """trainer.resume: false, true (this run dir) or a path to an earlier run dir or checkpoint file."""
    resume = cfg.trainer.resume
    if resume is False or resume is None:
        return None
    path = run_dir if resume is True else Path(to_absolute_path(str(resume)))
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        if resume is True:
            log.info("trainer.resume=true but %s does not exist yet: starting from step 0.", path)
            return None
        raise CheckpointError(f"trainer.resume={resume} but there is no checkpoint at {path}.")
    return path


def run(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Train one configuration into run_dir; returns the summary (also written to summary.json)."""
    run_dir = Path(run_dir)
    # trainer.skip_completed (set by the reproduction pipeline and the sweeps, antisym.results): a run directory whose
    # summary.json already says completed is left untouched, so rerunning a sweep trains only what is missing.
    done = read_summary(run_dir) if cfg.trainer.get("skip_completed", False) else None
    if done is not None and done.get("status") == "completed":
        log.info("%s already completed (trainer.skip_completed=true): skipped", run_dir)
        return done
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    summary: dict[str, Any] = {
        "status": "running",
        "steps": 0,
        "git_commit": git_commit(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "tags": list(cfg.get("tags", [])),
    }
    try:
        validate(cfg)
        device = resolve_device(str(cfg.trainer.device))
        summary["device"] = device_description(str(device))
        OmegaConf.save(cfg, run_dir / CONFIG_FILE, resolve=True)
        return _train(cfg, run_dir, device, summary, started)
    except BaseException as err:
        summary.update(status="failed", error=f"{type(err).__name__}: {err}", wall_time_s=time.time() - started)
        write_json(summary, run_dir / SUMMARY_FILE)
        raise


def _train(cfg: DictConfig, run_dir: Path, device: torch.device, summary: dict, started: float) -> dict:
    t = cfg.trainer
    root = to_absolute_path(str(cfg.data.root))
    tasks = {
        split: build_task(cfg.dataset, root, split, download=bool(cfg.data.download)).to(device)
        for split in ("train", "val", "test")
    }
    if tasks["train"].permutation is not None:
        torch.save(tasks["train"].permutation.cpu(), run_dir / "permutation.pt")
    spec = task_spec(cfg.dataset)

    torch.manual_seed(int(t.seed))
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), spec.input_size, spec.num_classes)
    model.to(device)
    optimizer = build_optimizer(OmegaConf.to_container(cfg.optimizer, resolve=True), model)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    sampler = BatchSampler(len(tasks["train"]), int(t.batch_size), int(t.seed))
    noise_gen = torch.Generator(device=device).manual_seed(int(t.seed) + 1)
    summary.update(
        params=count_parameters(model),
        train_size=len(tasks["train"]),
        val_size=len(tasks["val"]),
        test_size=len(tasks["test"]),
        max_steps=int(t.max_steps),
    )
    log.info(
        "%s on %s: %d parameters, %s, run dir %s", cfg.model.name, cfg.dataset.name, summary["params"], device, run_dir
    )

    ckpt_dir = run_dir / "checkpoints"
    step, best = 0, {"val_acc": -1.0, "step": -1}
    ckpt_path = resume_path(cfg, run_dir)
    if ckpt_path is not None:
        # On the CPU: generator states must stay CPU tensors; load_state_dict moves the rest to the model's device.
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sampler.load_state_dict(state["sampler"])
        noise_gen.set_state(state["noise_gen"])
        step, best = state["step"], state["best"]
        log.info("resumed from %s at step %d", ckpt_path, step)
    if int(t.jacobian_every) > 0:  # a fixed validation batch for the Jacobian metric
        jacobian_x = tasks["val"].batch(torch.arange(min(int(t.jacobian_batch), len(tasks["val"]))))[0]

    metrics = MetricsLogger(
        run_dir / METRICS_FILE,
        cfg.logger.wandb,
        OmegaConf.to_container(cfg, resolve=True),
        run_dir,
        resume_step=step if ckpt_path is not None else None,
    )
    bar = tqdm(total=int(t.max_steps), initial=step, disable=not t.progress, dynamic_ncols=True)
    status = "completed"
    model.train()
    while step < int(t.max_steps):
        for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base * lr_factor(t, step)
        idx = sampler.next().to(tasks["train"].labels.device)
        x, y = tasks["train"].batch(idx, noise_gen)
        logits = model(x.to(device))
        loss = F.cross_entropy(logits, y.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # clip_grad_norm_ with an infinite bound only measures; the norm is logged and checked either way.
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), float(t.grad_clip) or math.inf).item()
        if not (math.isfinite(loss.item()) and math.isfinite(grad_norm)):
            # Stop before the step: the parameters and the checkpoints written so far stay finite.
            status = "diverged"
            summary["diverged_at_step"] = step + 1
            log.warning(
                "loss %s, gradient norm %s at step %d: stopping; checkpoints up to step %d are kept.",
                loss.item(),
                grad_norm,
                step + 1,
                step,
            )
            break
        optimizer.step()
        step += 1

        if step % int(t.log_every) == 0 or step == 1:
            acc = (logits.argmax(-1) == y.to(device)).float().mean().item()
            metrics.log(
                {
                    "step": step,
                    "split": "train",
                    "loss": loss.item(),
                    "acc": acc,
                    "grad_norm": grad_norm,
                    "lr": optimizer.param_groups[0]["lr"],
                    "time_s": time.time() - started,
                }
            )
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc:.3f}")
        if int(t.jacobian_every) > 0 and step % int(t.jacobian_every) == 0:
            metrics.log({"step": step, "split": "jacobian", **jacobian_eigen_stats(model, jacobian_x.to(device))})
        if step % int(t.eval_every) == 0 or step == int(t.max_steps):
            val = evaluate(model, tasks["val"], int(t.eval_batch_size), device)
            metrics.log({"step": step, "split": "val", **val})
            if val["acc"] > best["val_acc"]:
                best = {"val_acc": val["acc"], "step": step}
                atomic_save({"model": model.state_dict(), "step": step}, ckpt_dir / "best.pt")
            atomic_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "sampler": sampler.state_dict(),
                    "noise_gen": noise_gen.get_state(),
                    "step": step,
                    "best": best,
                },
                ckpt_dir / "last.pt",
            )
            bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{val['acc']:.3f}")
        bar.update(1)
    bar.close()

    final_test = evaluate(model, tasks["test"], int(t.eval_batch_size), device)
    summary.update(
        status=status,
        steps=step,
        best_val_acc=best["val_acc"] if best["step"] >= 0 else None,
        best_step=best["step"] if best["step"] >= 0 else None,
        final_test_acc=final_test["acc"],
    )
    if best["step"] >= 0:
        model.load_state_dict(torch.load(ckpt_dir / "best.pt", map_location=device, weights_only=False)["model"])
        summary["test_acc"] = evaluate(model, tasks["test"], int(t.eval_batch_size), device)["acc"]
    else:
        summary["test_acc"] = None
    summary.update(wall_time_s=time.time() - started, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    metrics.log({"step": step, "split": "test", "acc": summary["test_acc"], "final_acc": final_test["acc"]})
    metrics.close(summary)
    write_json(summary, run_dir / SUMMARY_FILE)
    log.info(
        "%s after %d steps: best val acc %s, test acc %s", status, step, summary["best_val_acc"], summary["test_acc"]
    )
    return summary
